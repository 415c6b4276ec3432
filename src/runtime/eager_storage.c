/* eager_storage.c: storages of the eager "pjrt" device. A storage is a flat
 * PJRT buffer replaced wholesale on every write, so all views of a storage
 * see writes. Live storages are listed so synchronize can wait for them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_checks.h"
#include "runtime/eager_internal.h"
#include "tpj/runtime.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static tpj_client_t* g_client;
static tpj_eager_storage_t* g_live;
static uint64_t g_live_count;
static uint64_t g_stats[4];

tpj_status_t tpj_eager_init(tpj_client_t* client) {
  TPJ_CHECK_ARG(client, "eager init: client is NULL");
  pthread_mutex_lock(&g_lock);
  tpj_status_t st = NULL;
  if (g_client && g_client != client && g_live_count > 0) {
    st = TPJ_STATUS(FAILED_PRECONDITION,
                    "eager init: a different client is already in use by %llu storages",
                    (unsigned long long)g_live_count);
  }
  bool changed = !st && g_client != client;
  if (!st) g_client = client;
  pthread_mutex_unlock(&g_lock);
  /* Programs and scalar buffers of the previous client must not be reused. */
  if (changed) {
    tpj_eager_cache_clear();
    tpj_eager_inflight_clear();
  }
  return st;
}

tpj_client_t* tpj_eager_client(void) {
  pthread_mutex_lock(&g_lock);
  tpj_client_t* c = g_client;
  pthread_mutex_unlock(&g_lock);
  return c;
}

size_t tpj_eager_device_count(void) {
  tpj_client_t* c = tpj_eager_client();
  return c ? tpj_client_addressable_device_count(c) : 0;
}

static tpj_status_t storage_new(size_t nbytes, size_t device, tpj_eager_storage_t** out) {
  *out = NULL;
  tpj_client_t* c = tpj_eager_client();
  if (!c) return TPJ_STATUS(FAILED_PRECONDITION, "eager storage: the device is not initialized");
  size_t n = tpj_client_addressable_device_count(c);
  TPJ_CHECK_ARG(device < n && device < TPJ_EAGER_MAX_DEVICES,
                "eager storage: device index out of range (got %zu, expected < %zu)", device, n);
  tpj_eager_storage_t* s = calloc(1, sizeof(*s));
  if (!s) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager storage: out of memory");
  s->nbytes = nbytes;
  s->device = device;
  pthread_mutex_lock(&g_lock);
  s->next = g_live;
  if (g_live) g_live->prev = s;
  g_live = s;
  ++g_live_count;
  pthread_mutex_unlock(&g_lock);
  tpj_eager_memory_count(device, nbytes, true);
  *out = s;
  return NULL;
}

tpj_status_t tpj_eager_storage_create(size_t nbytes, size_t device,
                                      tpj_eager_storage_t** out_storage) {
  TPJ_CHECK_ARG(out_storage, "eager storage: out_storage is NULL");
  *out_storage = NULL;
  if (device < tpj_eager_device_count()) TPJ_RETURN_IF_ERROR(tpj_eager_memory_check(device, nbytes));
  return storage_new(nbytes, device, out_storage);
}

tpj_status_t tpj_eager_storage_wrap(tpj_buffer_t* buffer, tpj_eager_storage_t** out_storage) {
  TPJ_CHECK_ARG(buffer && out_storage, "eager storage wrap: NULL argument");
  size_t rank = tpj_buffer_rank(buffer);
  const int64_t* dims = tpj_buffer_dims(buffer);
  int64_t numel = 1;
  for (size_t i = 0; i < rank; ++i) numel *= dims[i];
  tpj_dtype_t dt = tpj_buffer_dtype(buffer);
  tpj_status_t st = storage_new((size_t)numel * tpj_dtype_size(dt),
                                tpj_buffer_device_index(buffer), out_storage);
  if (st) {
    tpj_buffer_destroy(buffer);
    return st;
  }
  tpj_eager_storage_replace(*out_storage, buffer, dt);
  return NULL;
}

void tpj_eager_storage_destroy(tpj_eager_storage_t* s) {
  if (!s) return;
  pthread_mutex_lock(&g_lock);
  if (s->prev) s->prev->next = s->next;
  else g_live = s->next;
  if (s->next) s->next->prev = s->prev;
  --g_live_count;
  pthread_mutex_unlock(&g_lock);
  tpj_eager_memory_count(s->device, s->nbytes, false);
  tpj_buffer_destroy(s->buffer);
  free(s);
}

size_t tpj_eager_storage_nbytes(const tpj_eager_storage_t* s) { return s ? s->nbytes : 0; }
size_t tpj_eager_storage_device(const tpj_eager_storage_t* s) { return s ? s->device : 0; }
tpj_dtype_t tpj_eager_storage_dtype(const tpj_eager_storage_t* s) {
  return s ? s->dtype : TPJ_DTYPE_INVALID;
}

int64_t tpj_eager_storage_numel(const tpj_eager_storage_t* s, tpj_dtype_t dtype) {
  size_t item = tpj_dtype_size(dtype);
  return item ? (int64_t)(s->nbytes / item) : 0;
}

/* Every buffer kept here is 1-D: programs return flat results and retyping
 * makes flat buffers. Retyping re-reads the storage through the host (zeros
 * when never written): for a read with an element size other than its
 * buffer's (byte views from torch.save / UntypedStorage), and for the zeros of
 * a never-written storage when the op runner (eager_run.c) cannot make them
 * on the device. Same-size reinterpretation is a bitcast in the program. */
tpj_status_t tpj_eager_storage_retype(tpj_eager_storage_t* s, tpj_dtype_t dtype) {
  int64_t n = tpj_eager_storage_numel(s, dtype);
  size_t bytes = (size_t)n * tpj_dtype_size(dtype);
  void* host = calloc(1, s->nbytes ? s->nbytes : 1);
  if (!host) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager storage: out of memory (%zu bytes)",
                               s->nbytes);
  tpj_status_t st = NULL;
  uint64_t t0 = tpj_runtime_trace_enabled() ? tpj_runtime_metrics_now_ns() : 0;
  if (s->buffer) {
    size_t have = (size_t)tpj_eager_storage_numel(s, s->dtype) * tpj_dtype_size(s->dtype);
    st = tpj_buffer_to_host(s->buffer, host, have);
    if (!st) tpj_runtime_metrics_add_bytes_d2h(have);
    if (!st && t0) tpj_runtime_trace_copy(TPJ_TRACE_COPY_D2H, have, s->device, t0,
                                          tpj_runtime_metrics_now_ns());
  }
  tpj_buffer_t* b = NULL;
  if (!st) {
    st = tpj_buffer_from_host(tpj_eager_client(), host, dtype, &n, 1, s->device,
                              TPJ_HOST_SEMANTICS_COPY, &b);
  }
  free(host);
  TPJ_RETURN_IF_ERROR(st);
  tpj_runtime_metrics_add_bytes_h2d(bytes);
  if (t0) tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, bytes, s->device, t0,
                                 tpj_runtime_metrics_now_ns());
  tpj_eager_storage_replace(s, b, dtype);
  return NULL;
}

void tpj_eager_storage_replace(tpj_eager_storage_t* s, tpj_buffer_t* buffer, tpj_dtype_t dtype) {
  tpj_buffer_destroy(s->buffer);
  s->buffer = buffer;
  s->dtype = dtype;
}

tpj_status_t tpj_eager_storage_set_buffer(tpj_eager_storage_t* s, tpj_buffer_t* buffer) {
  tpj_status_t st = NULL;
  if (!s || !buffer) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "eager storage set buffer: NULL argument");
  } else if (tpj_buffer_rank(buffer) != 1) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "eager storage set buffer: buffer must be 1-D (got rank "
                    "%zu)", tpj_buffer_rank(buffer));
  } else if ((size_t)tpj_buffer_dims(buffer)[0] * tpj_dtype_size(tpj_buffer_dtype(buffer)) !=
             s->nbytes) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "eager storage set buffer: size mismatch (got %lld "
                    "elements of %zu bytes, expected %zu bytes)",
                    (long long)tpj_buffer_dims(buffer)[0],
                    tpj_dtype_size(tpj_buffer_dtype(buffer)), s->nbytes);
  } else if (tpj_buffer_device_index(buffer) != s->device) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "eager storage set buffer: buffer is on device %zu "
                    "(expected the storage's device %zu)", tpj_buffer_device_index(buffer),
                    s->device);
  }
  if (st) {
    tpj_buffer_destroy(buffer);
    return st;
  }
  tpj_eager_storage_replace(s, buffer, tpj_buffer_dtype(buffer));
  return NULL;
}

tpj_status_t tpj_eager_synchronize(void) {
  /* Waits under the lock: a storage destroyed meanwhile would free its buffer. */
  pthread_mutex_lock(&g_lock);
  size_t n = 0, cap = (size_t)g_live_count;
  tpj_buffer_t** bufs = cap ? malloc(cap * sizeof(*bufs)) : NULL;
  if (cap && !bufs) {
    pthread_mutex_unlock(&g_lock);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager synchronize: out of memory (%zu storages)", cap);
  }
  for (tpj_eager_storage_t* s = g_live; s && bufs; s = s->next) {
    if (s->buffer && n < cap) bufs[n++] = s->buffer;
  }
  tpj_status_t st = NULL;
  for (size_t i = 0; i < n && !st; ++i) st = tpj_buffer_await(bufs[i]);
  pthread_mutex_unlock(&g_lock);
  free(bufs);
  tpj_status_t programs = tpj_eager_inflight_await(); /* also those whose results are gone */
  if (!st) st = programs;
  else tpj_status_free(programs);
  if (!st) st = tpj_eager_checks_flush();
  return st;
}

/* Called under g_lock: the ready event of s's buffer if it is not ready yet
 * (*out NULL when it is ready or there is no buffer). */
static tpj_status_t pending_event_of(tpj_eager_storage_t* s, tpj_event_t** out) {
  *out = NULL;
  if (!s->buffer || tpj_buffer_is_deleted(s->buffer)) return NULL;
  tpj_event_t* e = NULL;
  TPJ_RETURN_IF_ERROR(tpj_buffer_ready_event(s->buffer, &e));
  if (tpj_event_is_ready(e)) tpj_event_destroy(e);
  else *out = e;
  return NULL;
}

tpj_status_t tpj_eager_storage_pending_events(size_t device, tpj_event_t*** out_events,
                                              size_t* out_count) {
  TPJ_CHECK_ARG(out_events && out_count, "eager pending events: NULL argument");
  *out_events = NULL;
  *out_count = 0;
  pthread_mutex_lock(&g_lock);
  size_t n = 0, cap = (size_t)g_live_count;
  tpj_event_t** events = cap ? calloc(cap, sizeof(*events)) : NULL;
  tpj_status_t st = cap && !events
                        ? TPJ_STATUS(RESOURCE_EXHAUSTED, "eager pending events: out of memory "
                                     "(%zu storages)", cap)
                        : NULL;
  for (tpj_eager_storage_t* s = g_live; s && !st && n < cap; s = s->next) {
    if (s->device != device) continue;
    st = pending_event_of(s, &events[n]);
    if (!st && events[n]) ++n;
  }
  pthread_mutex_unlock(&g_lock);
  if (st) {
    for (size_t i = 0; i < n; ++i) tpj_event_destroy(events[i]);
    free(events);
    return st;
  }
  *out_events = events;
  *out_count = n;
  return NULL;
}

void tpj_eager_stats_count(int which) {
  if (which >= 0 && which < 4) __atomic_fetch_add(&g_stats[which], 1, __ATOMIC_RELAXED);
}

void tpj_eager_stats_get(tpj_eager_stats_t* out) {
  if (!out) return;
  out->ops = __atomic_load_n(&g_stats[0], __ATOMIC_RELAXED);
  out->signature_hits = __atomic_load_n(&g_stats[1], __ATOMIC_RELAXED);
  out->programs = __atomic_load_n(&g_stats[2], __ATOMIC_RELAXED);
  out->cross_device_copies = __atomic_load_n(&g_stats[3], __ATOMIC_RELAXED);
  pthread_mutex_lock(&g_lock);
  out->live_storages = g_live_count;
  pthread_mutex_unlock(&g_lock);
}
