/* tpj/runtime.h: the process-wide compile cache, runtime metrics and trace.
 *
 * Compile cache. Compiling StableHLO is slow (tens to hundreds of ms), and the
 * same graph is compiled again and again (re-traces, the eager single-op
 * runner, tests). tpj_runtime_compile_cached buckets every compile by a 64-bit
 * FNV-1a hash of (program text, compile options, plugin path), then confirms a
 * hit by comparing the client, the options and the full text, so a hash
 * collision can never hand back the wrong program. The disk tier below, which
 * cannot keep the text to compare, is keyed and verified by SHA-256. Compiles
 * run outside the cache lock; when two threads compile the same program at
 * once, the first to finish wins and the other's executable is dropped.
 *
 * Ownership: cached executables are reference counted through an opaque handle,
 * tpj_cached_executable_t. The cache holds one reference per entry; every handle
 * returned to a caller carries one more reference, dropped with
 * tpj_cached_executable_release. The underlying tpj_executable_t is destroyed
 * when the last reference goes. A handle's client must outlive the handle:
 * call tpj_runtime_cache_evict_client(client) before tpj_client_destroy(client)
 * and release every handle of that client first.
 *
 * Metrics are lock-free process-wide counters, a sink the cache, the launch
 * paths and the extension push into; every function here is thread-safe.
 */
#ifndef TPJ_RUNTIME_H_
#define TPJ_RUNTIME_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/pjrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------- compile cache -- */

typedef struct tpj_cached_executable_s tpj_cached_executable_t;

/* The cache key of a program: FNV-1a over the text, the options (NULL = one
 * replica, one partition, no SPMD) and the plugin path of `client`. */
uint64_t tpj_runtime_cache_key(const tpj_client_t* client, const char* program,
                               size_t program_len, const tpj_compile_options_t* options);

/* Returns the executable for `program` on `client`: the one in memory
 * (metrics: one cache hit), else the one in the disk tier below (metrics: one
 * disk hit), else a fresh compile (metrics: one compile and its seconds) that
 * is then written to the disk tier (metrics: one disk write).
 * *out_executable carries a reference owned by the caller. out_hit (may be
 * NULL) tells whether a cache tier answered (no compile). Compile errors are
 * returned as they come from the plugin, annotated with "compile". */
tpj_status_t tpj_runtime_compile_cached(tpj_client_t* client, const char* program,
                                        size_t program_len,
                                        const tpj_compile_options_t* options,
                                        tpj_cached_executable_t** out_executable,
                                        bool* out_hit) TPJ_MUST_USE;

/* Caches `executable` (ownership taken, also on error), compiled or
 * deserialized elsewhere from `program`, as tpj_runtime_compile_cached would
 * have: when the program is cached already, that entry is returned and
 * `executable` destroyed. Counts no compile. */
tpj_status_t tpj_runtime_cache_adopt(tpj_client_t* client, const char* program,
                                     size_t program_len, const tpj_compile_options_t* options,
                                     tpj_executable_t* executable,
                                     tpj_cached_executable_t** out_executable) TPJ_MUST_USE;

/* The executable behind a handle (borrowed: lives as long as the handle). */
tpj_executable_t* tpj_cached_executable_get(const tpj_cached_executable_t* handle);
uint64_t tpj_cached_executable_key(const tpj_cached_executable_t* handle);
void tpj_cached_executable_retain(tpj_cached_executable_t* handle);
/* Drops one reference; accepts NULL. */
void tpj_cached_executable_release(tpj_cached_executable_t* handle);

/* Drops the cache's references to every entry compiled for `client`. */
void tpj_runtime_cache_evict_client(const tpj_client_t* client);
/* Drops the cache's references to every entry. */
void tpj_runtime_cache_clear(void);
size_t tpj_runtime_cache_size(void);

/* ------------------------------------------------------------ disk cache -- */

/* The persistent tier under the compile cache: one file per program in
 * $TORCH_PJRT_CACHE_DIR (default ~/.cache/torch_pjrt; set it to "" or "off" to
 * disable; read on every call). tpj_runtime_compile_cached looks there after a
 * memory miss and writes there after a compile.
 *
 * The disk key is a SHA-256 digest of the program text, the compile options
 * and the identity of the plugin build: its path, file size and mtime, PJRT
 * API version, xla_version attribute, the client's platform name and version
 * and its device counts, so bytes from another program, plugin or version are
 * never loaded. The file is named by the key's 64 hex digits (".tpjx") and
 * holds a header (magic, format version, the key digest, payload length and
 * SHA-256, and a SHA-256 of the header itself) and then the bytes of
 * PJRT_Executable_Serialize. Files are written to a temporary name in the same
 * directory and renamed into place, so readers see either the old or the new
 * file ($TORCH_PJRT_CACHE_FSYNC=1 also fsyncs it first). A file that is
 * truncated, corrupt, foreign or holds another key's executable is logged
 * (one warning per file), deleted and recompiled; a missing file is a plain
 * miss. When the plugin lacks the serialize slots the tier is off (debug log). */

/* The directory in use, or NULL when the tier is disabled. Free with free(). */
char* tpj_runtime_disk_cache_dir(void);
/* The disk key of a program (see above). */
TPJ_MUST_USE tpj_status_t tpj_runtime_disk_cache_key(const tpj_client_t* client,
                                                     const char* program, size_t program_len,
                                                     const tpj_compile_options_t* options,
                                                     tpj_digest_t* out_key);
/* The file an entry lives in; *out_path (free with free()) is NULL when the
 * tier is disabled. */
tpj_status_t tpj_runtime_disk_cache_entry_path(const tpj_client_t* client,
                                               const char* program, size_t program_len,
                                               const tpj_compile_options_t* options,
                                               char** out_path) TPJ_MUST_USE;
/* Loads the entry for a program; *out_executable (caller destroys) is NULL on
 * a miss of any kind (metrics: one disk hit otherwise). Only bad arguments are
 * errors; a rejected file is logged as a warning and deleted, any other miss
 * is logged at debug level. */
tpj_status_t tpj_runtime_disk_cache_load(tpj_client_t* client, const char* program,
                                         size_t program_len,
                                         const tpj_compile_options_t* options,
                                         tpj_executable_t** out_executable) TPJ_MUST_USE;
/* Serializes `executable` (compiled from `program`) into its entry file
 * (metrics: one disk write). A disabled tier is not an error (*out_written
 * false); I/O and plugin failures are. out_written may be NULL. */
tpj_status_t tpj_runtime_disk_cache_store(tpj_client_t* client, const char* program,
                                          size_t program_len,
                                          const tpj_compile_options_t* options,
                                          tpj_executable_t* executable, bool* out_written)
    TPJ_MUST_USE;

/* ---------------------------------------------------------------- metrics -- */

typedef struct tpj_metrics_s {
  uint64_t compiles;        /* graphs compiled by tpj_runtime_compile_cached */
  uint64_t cache_hits;      /* compiles answered by the cache */
  double compile_seconds;   /* wall time spent compiling (misses only) */
  uint64_t executions;      /* executable launches */
  uint64_t bytes_h2d;       /* bytes copied host -> device */
  uint64_t bytes_d2h;       /* bytes copied device -> host */
  uint64_t fallbacks;       /* ops or graphs that ran on the fallback path */
  uint64_t cache_entries;   /* executables in the cache now (not reset) */
  uint64_t disk_hits;       /* compiles answered by the disk tier */
  uint64_t disk_writes;     /* executables written to the disk tier */
  double execute_seconds;   /* wall time in executable launches, including the wait
                               for completion where the caller waits */
  double h2d_seconds;       /* wall time in host -> device copies (to completion) */
  double d2h_seconds;       /* wall time in device -> host copies (to completion) */
  uint64_t dist_staged_bytes; /* bytes that torch.distributed collectives staged
                                 through host memory (device -> host -> device) */
} tpj_metrics_t;

void tpj_runtime_metrics_get(tpj_metrics_t* out_metrics);
/* Zeroes every counter except cache_entries. */
void tpj_runtime_metrics_reset(void);

void tpj_runtime_metrics_add_execution(void);
void tpj_runtime_metrics_add_bytes_h2d(uint64_t bytes);
void tpj_runtime_metrics_add_bytes_d2h(uint64_t bytes);
void tpj_runtime_metrics_add_fallback(void);
/* torch.distributed's staged collectives (python/csrc/device_dist.cpp). */
void tpj_runtime_metrics_add_dist_staged(uint64_t bytes);
/* Used by the cache; exposed for callers that compile without it. */
void tpj_runtime_metrics_add_compile(double seconds);
void tpj_runtime_metrics_add_cache_hit(void);
void tpj_runtime_metrics_add_disk_hit(void);
void tpj_runtime_metrics_add_disk_write(void);
/* The number of executables cached now; the compile cache sets it whenever it
 * changes (metrics reads nothing from the cache). */
void tpj_runtime_metrics_set_cache_entries(uint64_t entries);

/* Timing counters. tpj_runtime_metrics_now_ns() reads CLOCK_MONOTONIC (one
 * vDSO call, no syscall on Linux); callers take two readings around the work
 * and add the difference, in nanoseconds, to the matching counter. */
uint64_t tpj_runtime_metrics_now_ns(void);
void tpj_runtime_metrics_add_execute_ns(uint64_t ns);
void tpj_runtime_metrics_add_h2d_ns(uint64_t ns);
void tpj_runtime_metrics_add_d2h_ns(uint64_t ns);

/* ------------------------------------------------------------------ trace -- */

/* A Chrome trace-event file (the JSON Perfetto and chrome://tracing open) of
 * where time goes: tpj_runtime_trace_start(path) begins collecting in memory,
 * tpj_runtime_trace_stop() writes {"traceEvents": [...]} to the path. While a
 * trace runs, the runtime records a complete ("X") span for every compile
 * (cache "memory", "disk" or "none", the op count, seconds), every launch (its
 * enqueue on the calling thread; its completion, stamped in a PJRT on-ready
 * callback, on a per-device track "pjrt device N"), every host<->device copy
 * (bytes, direction) and every eager op; every fallback is an instant event.
 * Callers add their own spans (tpj_runtime_trace_span); the PyTorch extension
 * adds torch.profiler.record_function ranges and the CPU fallback of each op.
 * Timestamps are CLOCK_MONOTONIC (tpj_runtime_metrics_now_ns), written in
 * microseconds since the start. Every function is thread-safe; when no trace
 * runs each hook costs one relaxed atomic load. */

/* true while a trace runs. */
bool tpj_runtime_trace_enabled(void);
/* Starts a trace to be written to `path` (created now, so a bad path fails
 * here). FAILED_PRECONDITION when one already runs. */
tpj_status_t tpj_runtime_trace_start(const char* path) TPJ_MUST_USE;
/* Ends the trace and writes its file; *out_events (may be NULL) gets the
 * number of events written. Waits up to a second for the completion callbacks
 * of launches still in flight. FAILED_PRECONDITION when no trace runs. */
tpj_status_t tpj_runtime_trace_stop(uint64_t* out_events) TPJ_MUST_USE;
/* Called (outside any lock) with true after a trace starts and false before
 * it stops; one observer per process, NULL removes it. Set while a trace runs,
 * it is called with true at once. */
typedef void (*tpj_trace_observer_fn)(bool tracing, void* user);
void tpj_runtime_trace_set_observer(tpj_trace_observer_fn fn, void* user);

/* One argument of an event: a string when str is not NULL, else num. */
typedef struct tpj_trace_arg_s {
  const char* key;
  const char* str;
  double num;
} tpj_trace_arg_t;

typedef struct tpj_trace_span_s {
  const char* cat;       /* category: "compile", "launch", "copy", "user", ... */
  const char* name;
  uint64_t start_ns;     /* tpj_runtime_metrics_now_ns() readings */
  uint64_t end_ns;
  uint64_t tid;          /* 0: the calling thread (tpj_runtime_trace_thread_id) */
  const tpj_trace_arg_t* args;
  size_t num_args;
} tpj_trace_span_t;

/* Records a span (nothing when no trace runs). Spans of one thread must nest. */
void tpj_runtime_trace_span(const tpj_trace_span_t* span);
/* An instant event on the calling thread, now. */
void tpj_runtime_trace_instant(const char* cat, const char* name, const tpj_trace_arg_t* args,
                               size_t num_args);
/* The calling thread's track id in traces (small, stable, never 0). */
uint64_t tpj_runtime_trace_thread_id(void);

/* The runtime's own hooks, one call where the matching metric is counted. */
typedef struct tpj_trace_launch_s {
  uint64_t key;                /* the program's compile-cache key, 0 if unknown */
  const char* op;              /* eager op target, or NULL */
  size_t device;               /* device of the first (only) shard */
  size_t num_devices;          /* shard d runs on device + d */
  uint64_t start_ns;           /* the execute call */
  uint64_t end_ns;
  tpj_event_t* const* events;  /* (num_devices) completion events or NULL, borrowed */
} tpj_trace_launch_t;
void tpj_runtime_trace_launch(const tpj_trace_launch_t* launch);
/* A compile-cache lookup of `program` ("memory", "disk" or "none" = compiled). */
void tpj_runtime_trace_compile(uint64_t key, const char* program, size_t program_len,
                               const char* cache, uint64_t start_ns, uint64_t end_ns);
typedef enum tpj_trace_copy_e { TPJ_TRACE_COPY_H2D, TPJ_TRACE_COPY_D2H } tpj_trace_copy_t;
void tpj_runtime_trace_copy(tpj_trace_copy_t direction, uint64_t bytes, size_t device,
                            uint64_t start_ns, uint64_t end_ns);
/* Counted by tpj_runtime_metrics_add_fallback: an instant event and one more
 * on this thread's fallback count (tpj_runtime_trace_thread_fallbacks), so an
 * enclosing span can tell that an op fell back inside it. */
void tpj_runtime_trace_note_fallback(const char* op);
uint64_t tpj_runtime_trace_thread_fallbacks(void);
/* The span of an op that ran on the fallback path. */
void tpj_runtime_trace_fallback(const char* op, uint64_t start_ns, uint64_t end_ns);

#ifdef __cplusplus
}
#endif

#endif /* TPJ_RUNTIME_H_ */
