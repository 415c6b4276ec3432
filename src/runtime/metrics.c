/* metrics.c: process-wide runtime counters (compiles, cache hits, disk tier
 * hits and writes, executions, transfer bytes, fallbacks, and the time spent
 * compiling, executing and copying). A sink: the cache, the launch paths and
 * the extension push counts in, metrics reads nothing back from them. Plain
 * C11 atomics, so any thread bumps them without a lock; times in nanoseconds. */
#include <stdatomic.h>
#include <time.h>

#include "tpj/runtime.h"

static atomic_uint_fast64_t g_compiles;
static atomic_uint_fast64_t g_cache_hits;
static atomic_uint_fast64_t g_compile_ns;
static atomic_uint_fast64_t g_executions;
static atomic_uint_fast64_t g_bytes_h2d;
static atomic_uint_fast64_t g_bytes_d2h;
static atomic_uint_fast64_t g_fallbacks;
static atomic_uint_fast64_t g_dist_staged;
static atomic_uint_fast64_t g_disk_hits;
static atomic_uint_fast64_t g_disk_writes;
static atomic_uint_fast64_t g_execute_ns;
static atomic_uint_fast64_t g_h2d_ns;
static atomic_uint_fast64_t g_d2h_ns;
static atomic_uint_fast64_t g_cache_entries; /* a level pushed by the cache */

void tpj_runtime_metrics_get(tpj_metrics_t* out_metrics) {
  if (!out_metrics) return;
  out_metrics->compiles = atomic_load(&g_compiles);
  out_metrics->cache_hits = atomic_load(&g_cache_hits);
  out_metrics->compile_seconds = (double)atomic_load(&g_compile_ns) * 1e-9;
  out_metrics->executions = atomic_load(&g_executions);
  out_metrics->bytes_h2d = atomic_load(&g_bytes_h2d);
  out_metrics->bytes_d2h = atomic_load(&g_bytes_d2h);
  out_metrics->fallbacks = atomic_load(&g_fallbacks);
  out_metrics->dist_staged_bytes = atomic_load(&g_dist_staged);
  out_metrics->cache_entries = atomic_load(&g_cache_entries);
  out_metrics->disk_hits = atomic_load(&g_disk_hits);
  out_metrics->disk_writes = atomic_load(&g_disk_writes);
  out_metrics->execute_seconds = (double)atomic_load(&g_execute_ns) * 1e-9;
  out_metrics->h2d_seconds = (double)atomic_load(&g_h2d_ns) * 1e-9;
  out_metrics->d2h_seconds = (double)atomic_load(&g_d2h_ns) * 1e-9;
}

void tpj_runtime_metrics_reset(void) {
  atomic_store(&g_compiles, 0);
  atomic_store(&g_cache_hits, 0);
  atomic_store(&g_compile_ns, 0);
  atomic_store(&g_executions, 0);
  atomic_store(&g_bytes_h2d, 0);
  atomic_store(&g_bytes_d2h, 0);
  atomic_store(&g_fallbacks, 0);
  atomic_store(&g_dist_staged, 0);
  atomic_store(&g_disk_hits, 0);
  atomic_store(&g_disk_writes, 0);
  atomic_store(&g_execute_ns, 0);
  atomic_store(&g_h2d_ns, 0);
  atomic_store(&g_d2h_ns, 0);
}

void tpj_runtime_metrics_add_execution(void) { atomic_fetch_add(&g_executions, 1); }
void tpj_runtime_metrics_add_bytes_h2d(uint64_t bytes) {
  atomic_fetch_add(&g_bytes_h2d, bytes);
}
void tpj_runtime_metrics_add_bytes_d2h(uint64_t bytes) {
  atomic_fetch_add(&g_bytes_d2h, bytes);
}
void tpj_runtime_metrics_add_fallback(void) {
  atomic_fetch_add(&g_fallbacks, 1);
  tpj_runtime_trace_note_fallback(NULL);
}
void tpj_runtime_metrics_add_dist_staged(uint64_t bytes) {
  atomic_fetch_add(&g_dist_staged, bytes);
}
void tpj_runtime_metrics_add_cache_hit(void) { atomic_fetch_add(&g_cache_hits, 1); }
void tpj_runtime_metrics_add_disk_hit(void) { atomic_fetch_add(&g_disk_hits, 1); }
void tpj_runtime_metrics_add_disk_write(void) { atomic_fetch_add(&g_disk_writes, 1); }
void tpj_runtime_metrics_set_cache_entries(uint64_t entries) {
  atomic_store(&g_cache_entries, entries);
}

void tpj_runtime_metrics_add_compile(double seconds) {
  atomic_fetch_add(&g_compiles, 1);
  if (seconds > 0) atomic_fetch_add(&g_compile_ns, (uint_fast64_t)(seconds * 1e9));
}

uint64_t tpj_runtime_metrics_now_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tpj_runtime_metrics_add_execute_ns(uint64_t ns) { atomic_fetch_add(&g_execute_ns, ns); }
void tpj_runtime_metrics_add_h2d_ns(uint64_t ns) { atomic_fetch_add(&g_h2d_ns, ns); }
void tpj_runtime_metrics_add_d2h_ns(uint64_t ns) { atomic_fetch_add(&g_d2h_ns, ns); }
