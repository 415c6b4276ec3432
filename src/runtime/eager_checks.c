/* eager_checks.c: the eager device's side of runtime checks (tpj/ir.h). An
 * op's program returns its (bad, value) pairs as one extra buffer, which stays
 * pending here while the op runs asynchronously; the next synchronization (a
 * host read, tpj_eager_synchronize) copies every pending result to the host
 * at once and raises the first failed check, as CUDA reports a device assert
 * at the next sync. (Starting the copy at launch would block the launch on
 * the CPU plugin, serializing the op stream: measured 4x on an index-heavy
 * training step.) */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_checks.h"
#include "tpj/runtime.h"

struct tpj_eager_checks_s {
  int refs;               /* atomic */
  size_t count;
  tpj_check_t* checks;    /* (count), messages owned */
};

typedef struct pending_s {
  tpj_eager_checks_t* checks; /* one reference */
  tpj_buffer_t* buffer;       /* the check result, owned */
  tpj_event_t* event;         /* copy into values (started by a flush), owned */
  int64_t* values;            /* (2 * count) */
} pending_t;

/* Pending results beyond this are read at once (the oldest are long done). */
#define TPJ_EAGER_CHECKS_MAX_PENDING 256

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pending_t g_pending[TPJ_EAGER_CHECKS_MAX_PENDING];
static size_t g_num_pending;
static bool g_disabled; /* torch_pjrt.config.check_indices = False */

void tpj_eager_set_checks_enabled(bool enabled) {
  __atomic_store_n(&g_disabled, !enabled, __ATOMIC_RELAXED);
}

bool tpj_eager_checks_enabled(void) { return !__atomic_load_n(&g_disabled, __ATOMIC_RELAXED); }

void tpj_eager_checks_release(tpj_eager_checks_t* c) {
  if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  for (size_t i = 0; i < c->count; ++i) free((char*)c->checks[i].message);
  free(c->checks);
  free(c);
}

void tpj_eager_checks_retain(tpj_eager_checks_t* c) {
  if (c) __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

size_t tpj_eager_checks_count(const tpj_eager_checks_t* c) { return c ? c->count : 0; }

tpj_status_t tpj_eager_checks_from_graph(const tpj_graph_t* g, tpj_eager_checks_t** out) {
  size_t n = tpj_graph_check_count(g);
  return tpj_eager_checks_create(n ? tpj_graph_check(g, 0) : NULL, n, out);
}

tpj_status_t tpj_eager_checks_create(const tpj_check_t* checks, size_t n,
                                     tpj_eager_checks_t** out) {
  *out = NULL;
  if (n == 0) return NULL;
  TPJ_CHECK_ARG(checks, "eager checks: checks is NULL (got %zu)", n);
  tpj_eager_checks_t* c = calloc(1, sizeof(*c));
  if (c) c->checks = calloc(n, sizeof(*c->checks));
  if (!c || !c->checks) {
    free(c);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager checks: out of memory");
  }
  c->refs = 1;
  for (size_t i = 0; i < n; ++i, ++c->count) {
    const tpj_check_t* k = &checks[i];
    c->checks[i].kind = k->kind;
    c->checks[i].message = strdup(k->message);
    if (!c->checks[i].message) {
      tpj_eager_checks_release(c);
      return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager checks: out of memory");
    }
  }
  *out = c;
  return NULL;
}

tpj_status_t tpj_eager_checks_evaluate(const tpj_eager_checks_t* c, const int64_t* values) {
  return c ? tpj_check_results(c->checks, c->count, values) : NULL;
}

static void pending_free(pending_t* p) {
  tpj_event_destroy(p->event);
  tpj_buffer_destroy(p->buffer);
  tpj_eager_checks_release(p->checks);
  free(p->values);
  memset(p, 0, sizeof(*p));
}

/* Waits for one pending result's copy (started with status `started`) and
 * frees it; returns its first failure. */
static tpj_status_t pending_finish(pending_t* p, tpj_status_t started) {
  tpj_status_t st = started;
  if (!st && p->event) st = tpj_event_await(p->event);
  if (!st) st = tpj_check_results(p->checks->checks, p->checks->count, p->values);
  pending_free(p);
  return st;
}

/* Copies every pending result to the host (all copies started first, then
 * awaited), frees them (under g_lock); keeps the first failure. */
static tpj_status_t flush_locked(void) {
  tpj_status_t first = NULL, started[TPJ_EAGER_CHECKS_MAX_PENDING];
  uint64_t t0 = tpj_runtime_metrics_now_ns(), bytes = 0;
  for (size_t i = 0; i < g_num_pending; ++i) {
    pending_t* p = &g_pending[i];
    size_t n = 2 * p->checks->count * sizeof(int64_t);
    started[i] = tpj_buffer_to_host_async(p->buffer, p->values, n, &p->event);
    if (!started[i]) bytes += n;
  }
  for (size_t i = 0; i < g_num_pending; ++i) {
    tpj_status_t st = pending_finish(&g_pending[i], started[i]);
    if (st && !first) first = st;
    else tpj_status_free(st);
  }
  if (g_num_pending) {  /* the check results are device -> host copies like any other */
    tpj_runtime_metrics_add_bytes_d2h(bytes);
    tpj_runtime_metrics_add_d2h_ns(tpj_runtime_metrics_now_ns() - t0);
  }
  g_num_pending = 0;
  return first;
}

tpj_status_t tpj_eager_checks_defer(tpj_eager_checks_t* checks, tpj_buffer_t* buffer) {
  size_t n = 2 * checks->count;
  pending_t p = {checks, buffer, NULL, calloc(n, sizeof(int64_t))};
  tpj_eager_checks_retain(checks);
  tpj_status_t st = p.values ? NULL : TPJ_STATUS(RESOURCE_EXHAUSTED, "eager checks: out of memory");
  if (st) { /* nothing can be checked: the op's error is the answer */
    pending_free(&p);
    return st;
  }
  pthread_mutex_lock(&g_lock);
  if (g_num_pending == TPJ_EAGER_CHECKS_MAX_PENDING) st = flush_locked();
  g_pending[g_num_pending++] = p;
  pthread_mutex_unlock(&g_lock);
  return st;
}

tpj_status_t tpj_eager_checks_flush(void) {
  if (__atomic_load_n(&g_num_pending, __ATOMIC_RELAXED) == 0) return NULL;
  pthread_mutex_lock(&g_lock);
  tpj_status_t st = g_num_pending ? flush_locked() : NULL;
  pthread_mutex_unlock(&g_lock);
  return st;
}
