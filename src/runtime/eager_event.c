/* eager_event.c: events of the eager device (torch.pjrt.Event). PJRT has no
 * stream markers, so an event captures the device's work in flight (the
 * programs launched and not done, tracked here, and the pending buffers of
 * live storages) and counts them down in on-ready callbacks, which also stamp
 * the completion time that elapsed_ms reads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/eager_internal.h"

/* One record of an event: shared by the event and every pending callback, so
 * either may outlive the other; freed when the last reference goes. */
typedef struct record_s {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;            /* the event + one per registered callback */
  size_t pending;      /* captured events not ready yet (+1 while recording) */
  int64_t done_ns;     /* CLOCK_MONOTONIC time pending reached 0 */
  tpj_status_t error;  /* the first captured failure */
} record_t;

struct tpj_eager_event_s {
  bool timing;
  record_t* rec;          /* NULL until recorded */
  tpj_event_t** watched;  /* (num_watched) references to what rec watches */
  size_t num_watched;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void record_unref(record_t* r) {
  pthread_mutex_lock(&r->mu);
  bool last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (!last) return;
  tpj_status_free(r->error);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* One captured event (or the recording itself) is done; takes `st`. */
static void record_finish_one(record_t* r, tpj_status_t st) {
  pthread_mutex_lock(&r->mu);
  if (st && !r->error) {
    r->error = st; /* kept */
    st = NULL;
  }
  if (--r->pending == 0) {
    r->done_ns = now_ns();
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  tpj_status_free(st);
}

static void on_ready(tpj_status_t st, void* user) {
  record_t* r = (record_t*)user;
  record_finish_one(r, st);
  record_unref(r);
}

/* A copy of the record's error (the caller owns it), or NULL. Under r->mu. */
static tpj_status_t error_copy(const record_t* r) {
  if (!r->error) return NULL;
  return tpj_status_make(tpj_status_code(r->error), tpj_status_file(r->error),
                         tpj_status_line(r->error), "work captured by a pjrt event failed: %s",
                         tpj_status_message(r->error));
}

/* ------------------------------------------------------- work in flight -- */

/* The completion events of the programs the runtime launched, oldest first,
 * kept until they are ready. Programs finish roughly in launch order, so
 * each add drops the ready ones at the front; a full array is compacted. */
typedef struct inflight_s {
  tpj_event_t* event;
  size_t device;
} inflight_t;

static pthread_mutex_t g_inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static inflight_t* g_inflight;
static size_t g_inflight_n, g_inflight_cap;

/* Under g_inflight_lock. */
static void inflight_prune_front(void) {
  size_t k = 0;
  while (k < g_inflight_n && tpj_event_is_ready(g_inflight[k].event)) {
    tpj_event_destroy(g_inflight[k++].event);
  }
  if (!k) return;
  memmove(g_inflight, g_inflight + k, (g_inflight_n - k) * sizeof(*g_inflight));
  g_inflight_n -= k;
}

/* Under g_inflight_lock: drops every ready entry; grows a still half-full array. */
static bool inflight_make_room(void) {
  size_t n = 0;
  for (size_t i = 0; i < g_inflight_n; ++i) {
    if (tpj_event_is_ready(g_inflight[i].event)) tpj_event_destroy(g_inflight[i].event);
    else g_inflight[n++] = g_inflight[i];
  }
  g_inflight_n = n;
  if (n < g_inflight_cap / 2) return true;
  size_t cap = g_inflight_cap ? 2 * g_inflight_cap : 64;
  inflight_t* grown = (inflight_t*)realloc(g_inflight, cap * sizeof(*grown));
  if (!grown) return n < g_inflight_cap;
  g_inflight = grown;
  g_inflight_cap = cap;
  return true;
}

void tpj_eager_inflight_add(size_t device, tpj_event_t* event) {
  if (!event) return;
  pthread_mutex_lock(&g_inflight_lock);
  inflight_prune_front();
  bool room = g_inflight_n < g_inflight_cap || inflight_make_room();
  if (room) g_inflight[g_inflight_n++] = (inflight_t){event, device};
  pthread_mutex_unlock(&g_inflight_lock);
  if (room) return;
  /* Out of memory: wait for this program now rather than lose track of it. */
  tpj_status_t st = tpj_event_await(event);
  if (st) TPJ_LOG(WARNING, "eager program failed: %s", tpj_status_message(st));
  tpj_status_free(st);
  tpj_event_destroy(event);
}

tpj_status_t tpj_eager_inflight_await(void) {
  /* Takes the list, so other threads keep launching while this waits. */
  pthread_mutex_lock(&g_inflight_lock);
  inflight_t* taken = g_inflight;
  size_t n = g_inflight_n;
  g_inflight = NULL;
  g_inflight_n = g_inflight_cap = 0;
  pthread_mutex_unlock(&g_inflight_lock);
  tpj_status_t first = NULL;
  for (size_t i = 0; i < n; ++i) {
    tpj_status_t st = tpj_event_await(taken[i].event);
    tpj_event_destroy(taken[i].event);
    if (st && !first) first = tpj_status_annotate(st, "an eager program failed");
    else tpj_status_free(st);
  }
  free(taken);
  return first;
}

void tpj_eager_inflight_clear(void) {
  pthread_mutex_lock(&g_inflight_lock);
  for (size_t i = 0; i < g_inflight_n; ++i) tpj_event_destroy(g_inflight[i].event);
  g_inflight_n = 0;
  pthread_mutex_unlock(&g_inflight_lock);
}

tpj_status_t tpj_eager_event_create(bool timing, tpj_eager_event_t** out_event) {
  TPJ_CHECK_ARG(out_event, "eager event create: out_event is NULL");
  *out_event = NULL;
  tpj_eager_event_t* e = (tpj_eager_event_t*)calloc(1, sizeof(*e));
  if (!e) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager event create: out of memory");
  e->timing = timing;
  *out_event = e;
  return NULL;
}

static void release_watched(tpj_event_t** watched, size_t n) {
  for (size_t i = 0; i < n; ++i) tpj_event_destroy(watched[i]);
  free(watched);
}

void tpj_eager_event_destroy(tpj_eager_event_t* event) {
  if (!event) return;
  if (event->rec) record_unref(event->rec);
  release_watched(event->watched, event->num_watched);
  free(event);
}

static tpj_status_t record_new(record_t** out) {
  record_t* r = (record_t*)calloc(1, sizeof(*r));
  if (!r) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager event record: out of memory");
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->refs = 1;
  r->pending = 1; /* the recording itself, finished after every registration */
  *out = r;
  return NULL;
}

/* Appends a reference to each tracked program of `device` not done yet. */
static tpj_status_t add_programs(size_t device, tpj_event_t*** events, size_t* n) {
  pthread_mutex_lock(&g_inflight_lock);
  inflight_prune_front();
  tpj_event_t** grown = (tpj_event_t**)realloc(*events, (*n + g_inflight_n + 1) *
                                                           sizeof(**events));
  if (grown) {
    *events = grown;
    for (size_t i = 0; i < g_inflight_n; ++i) {
      tpj_event_t* e = g_inflight[i].event;
      if (g_inflight[i].device == device && !tpj_event_is_ready(e)) {
        grown[(*n)++] = tpj_event_ref(e);
      }
    }
  }
  pthread_mutex_unlock(&g_inflight_lock);
  return grown ? NULL : TPJ_STATUS(RESOURCE_EXHAUSTED, "eager event record: out of memory");
}

/* Counts down r in an on-ready callback of each event. */
static void record_watch(record_t* r, tpj_event_t** events, size_t n) {
  pthread_mutex_lock(&r->mu);
  r->refs += (int)n;
  r->pending += n;
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; i < n; ++i) {
    tpj_status_t st = tpj_event_on_ready(events[i], on_ready, r);
    if (st) { /* not registered: count it down here, with the reason */
      on_ready(tpj_status_annotate(st, "watching pending work"), r);
    }
  }
}

tpj_status_t tpj_eager_event_record(tpj_eager_event_t* event, size_t device) {
  TPJ_CHECK_ARG(event, "eager event record: event is NULL");
  size_t count = tpj_eager_device_count();
  TPJ_CHECK_ARG(device < count, "eager event record: device index out of range (got %zu, "
                "expected < %zu)", device, count);
  tpj_event_t** events = NULL;
  size_t n = 0;
  tpj_status_t st = tpj_eager_storage_pending_events(device, &events, &n);
  if (!st) st = add_programs(device, &events, &n);
  record_t* r = NULL;
  if (!st) st = record_new(&r);
  if (st) {
    release_watched(events, n);
    return tpj_status_annotate(st, "eager event record");
  }
  record_watch(r, events, n);
  record_finish_one(r, NULL);
  if (event->rec) record_unref(event->rec);
  release_watched(event->watched, event->num_watched);
  event->rec = r;
  event->watched = events;
  event->num_watched = n;
  return NULL;
}

bool tpj_eager_event_is_recorded(const tpj_eager_event_t* event) {
  return event && event->rec;
}

/* Whether the recorded event's work is done. PJRT may report an event ready
 * a moment before its on-ready callback has run: then this waits for the
 * callbacks, so that the error and completion time are in place. */
static bool record_done(tpj_eager_event_t* e) {
  record_t* r = e->rec;
  pthread_mutex_lock(&r->mu);
  bool done = r->pending == 0;
  pthread_mutex_unlock(&r->mu);
  if (done) return true;
  for (size_t i = 0; i < e->num_watched; ++i) {
    if (!tpj_event_is_ready(e->watched[i])) return false;
  }
  pthread_mutex_lock(&r->mu);
  while (r->pending > 0) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  return true;
}

tpj_status_t tpj_eager_event_query(tpj_eager_event_t* event, bool* out_done) {
  TPJ_CHECK_ARG(event && out_done, "eager event query: NULL argument");
  *out_done = true;
  if (!event->rec) return NULL;
  *out_done = record_done(event);
  if (!*out_done) return NULL;
  pthread_mutex_lock(&event->rec->mu);
  tpj_status_t st = error_copy(event->rec);
  pthread_mutex_unlock(&event->rec->mu);
  return st;
}

tpj_status_t tpj_eager_event_synchronize(tpj_eager_event_t* event) {
  TPJ_CHECK_ARG(event, "eager event synchronize: event is NULL");
  record_t* r = event->rec;
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  while (r->pending > 0) pthread_cond_wait(&r->cv, &r->mu);
  tpj_status_t st = error_copy(r);
  pthread_mutex_unlock(&r->mu);
  return st;
}

/* The completion time of a timing event that is recorded and done. */
static tpj_status_t done_time(tpj_eager_event_t* e, const char* which, int64_t* out_ns) {
  TPJ_CHECK_ARG(e->timing, "eager event elapsed: the %s event was created without timing "
                "(got enable_timing=False, expected True)", which);
  if (!e->rec) {
    return TPJ_STATUS(FAILED_PRECONDITION, "eager event elapsed: the %s event was never "
                      "recorded (record it before asking for the elapsed time)", which);
  }
  bool done = record_done(e);
  pthread_mutex_lock(&e->rec->mu);
  *out_ns = e->rec->done_ns;
  pthread_mutex_unlock(&e->rec->mu);
  if (!done) {
    return TPJ_STATUS(FAILED_PRECONDITION, "eager event elapsed: the %s event is not "
                      "complete yet (synchronize it first)", which);
  }
  return NULL;
}

tpj_status_t tpj_eager_event_elapsed_ms(tpj_eager_event_t* start, tpj_eager_event_t* end,
                                        double* out_ms) {
  TPJ_CHECK_ARG(start && end && out_ms, "eager event elapsed: NULL argument");
  *out_ms = 0.0;
  int64_t t0 = 0, t1 = 0;
  TPJ_RETURN_IF_ERROR(done_time(start, "start", &t0));
  TPJ_RETURN_IF_ERROR(done_time(end, "end", &t1));
  *out_ms = (double)(t1 - t0) / 1e6;
  return NULL;
}

tpj_status_t tpj_eager_device_query(size_t device, bool* out_idle) {
  TPJ_CHECK_ARG(out_idle, "eager device query: out_idle is NULL");
  *out_idle = true;
  size_t count = tpj_eager_device_count();
  TPJ_CHECK_ARG(device < count, "eager device query: device index out of range (got %zu, "
                "expected < %zu)", device, count);
  tpj_event_t** events = NULL;
  size_t n = 0;
  TPJ_RETURN_IF_ERROR(tpj_eager_storage_pending_events(device, &events, &n));
  for (size_t i = 0; i < n; ++i) tpj_event_destroy(events[i]);
  free(events);
  pthread_mutex_lock(&g_inflight_lock);
  inflight_prune_front();
  for (size_t i = 0; i < g_inflight_n && !n; ++i) {
    if (g_inflight[i].device == device && !tpj_event_is_ready(g_inflight[i].event)) ++n;
  }
  pthread_mutex_unlock(&g_inflight_lock);
  *out_idle = n == 0;
  return NULL;
}
