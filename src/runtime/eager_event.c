/* eager_event.c: events of the eager device (torch.pjrt.Event). PJRT has no
 * stream markers, so an event captures the device's work in flight (the ready
 * events of its pending storage buffers) and counts them down in on-ready
 * callbacks, which also stamp the completion time that elapsed_ms reads. */
#include <pthread.h>
#include <stdlib.h>
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
  record_t* rec; /* NULL until recorded */
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

tpj_status_t tpj_eager_event_create(bool timing, tpj_eager_event_t** out_event) {
  TPJ_CHECK_ARG(out_event, "eager event create: out_event is NULL");
  *out_event = NULL;
  tpj_eager_event_t* e = (tpj_eager_event_t*)calloc(1, sizeof(*e));
  if (!e) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager event create: out of memory");
  e->timing = timing;
  *out_event = e;
  return NULL;
}

void tpj_eager_event_destroy(tpj_eager_event_t* event) {
  if (!event) return;
  if (event->rec) record_unref(event->rec);
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

/* Registers on_ready for each event (destroying them) into record r. */
static void record_capture(record_t* r, tpj_event_t** events, size_t n) {
  pthread_mutex_lock(&r->mu);
  r->refs += (int)n;
  r->pending += n;
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; i < n; ++i) {
    tpj_status_t st = tpj_event_on_ready(events[i], on_ready, r);
    if (st) { /* not registered: count it down here, with the reason */
      on_ready(tpj_status_annotate(st, "watching a pending buffer"), r);
    }
    /* The callback stays registered on the plugin's side after this. */
    tpj_event_destroy(events[i]);
  }
}

tpj_status_t tpj_eager_event_record(tpj_eager_event_t* event, size_t device) {
  TPJ_CHECK_ARG(event, "eager event record: event is NULL");
  size_t count = tpj_eager_device_count();
  TPJ_CHECK_ARG(device < count, "eager event record: device index out of range (got %zu, "
                "expected < %zu)", device, count);
  record_t* r = NULL;
  TPJ_RETURN_IF_ERROR(record_new(&r));
  tpj_event_t** events = NULL;
  size_t n = 0;
  tpj_status_t st = tpj_eager_storage_pending_events(device, &events, &n);
  if (st) {
    record_unref(r);
    return tpj_status_annotate(st, "eager event record");
  }
  record_capture(r, events, n);
  free(events);
  record_finish_one(r, NULL);
  if (event->rec) record_unref(event->rec);
  event->rec = r;
  return NULL;
}

bool tpj_eager_event_is_recorded(const tpj_eager_event_t* event) {
  return event && event->rec;
}

tpj_status_t tpj_eager_event_query(tpj_eager_event_t* event, bool* out_done) {
  TPJ_CHECK_ARG(event && out_done, "eager event query: NULL argument");
  *out_done = true;
  record_t* r = event->rec;
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  *out_done = r->pending == 0;
  tpj_status_t st = *out_done ? error_copy(r) : NULL;
  pthread_mutex_unlock(&r->mu);
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
  pthread_mutex_lock(&e->rec->mu);
  bool done = e->rec->pending == 0;
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
  *out_idle = n == 0;
  return NULL;
}
