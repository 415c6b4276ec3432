/* tpj/eager.h: the eager "pjrt" device runtime (one ATen op at a time).
 *
 * A storage is a flat 1-D PJRT buffer holding the storage's elements. Tensors
 * are views (sizes, strides, element offset) into a storage. Each op runs as a
 * one-op StableHLO program: every tensor input is read out of its storage
 * buffer inside the program (slice/reshape fast path, else a gather over the
 * strided index set), the op is lowered through the C lowering table
 * (tpj/lower.h), and the results come back as new contiguous buffers. A write
 * into a view (copy_, in-place ops) runs a scatter program and replaces the
 * storage's buffer, so every view of that storage sees the write.
 *
 * Programs are keyed by a signature (op name, argument kinds, non-lifted
 * scalar values, input dtypes/sizes/strides/offsets/storage sizes, expected output
 * types) that is looked up before any StableHLO is built; a miss builds,
 * emits and compiles through tpj_runtime_compile_cached. Executions are
 * asynchronous; reading to host waits.
 *
 * Thread safety: the signature cache is locked; a storage must not be written
 * by two threads at once (as for any PyTorch tensor).
 */
#ifndef TPJ_EAGER_H_
#define TPJ_EAGER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"
#include "tpj/lower.h"
#include "tpj/pjrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the client every eager op runs on (borrowed: it must outlive every
 * storage). Calling again with the same client is a no-op; a different client
 * is FAILED_PRECONDITION once storages exist. */
tpj_status_t tpj_eager_init(tpj_client_t* client) TPJ_MUST_USE;
/* The client set by tpj_eager_init, or NULL. */
tpj_client_t* tpj_eager_client(void);
size_t tpj_eager_device_count(void);

/* ---------------------------------------------------------------- storage -- */

typedef struct tpj_eager_storage_s tpj_eager_storage_t;

/* A storage of `nbytes` on addressable device `device`. Its buffer is created
 * lazily: until the first write its contents read as zeros. */
tpj_status_t tpj_eager_storage_create(size_t nbytes, size_t device,
                                      tpj_eager_storage_t** out_storage) TPJ_MUST_USE;
/* Wraps an existing buffer (takes ownership) as a storage of its bytes. */
tpj_status_t tpj_eager_storage_wrap(tpj_buffer_t* buffer, tpj_eager_storage_t** out_storage)
    TPJ_MUST_USE;
void tpj_eager_storage_destroy(tpj_eager_storage_t* storage);
size_t tpj_eager_storage_nbytes(const tpj_eager_storage_t* storage);
size_t tpj_eager_storage_device(const tpj_eager_storage_t* storage);
/* The element type the buffer is kept in (INVALID before the first write). */
tpj_dtype_t tpj_eager_storage_dtype(const tpj_eager_storage_t* storage);
/* The storage's whole flat buffer (1-D, borrowed: valid until the next write
 * into the storage) when the storage is kept as `dtype`; a never-written
 * storage first gets zeros of `dtype` (made on the device). *out_buffer is
 * NULL when the storage is kept as another dtype: read it through a view
 * (tpj_eager_materialize) instead. Used to pass storages to compiled programs. */
tpj_status_t tpj_eager_storage_buffer(tpj_eager_storage_t* storage, tpj_dtype_t dtype,
                                      tpj_buffer_t** out_buffer) TPJ_MUST_USE;
/* Makes `buffer` the storage's contents (kept as the buffer's dtype), e.g. a
 * compiled program's result. Takes ownership of `buffer`, also on error (then
 * it is destroyed). It must be 1-D, on the storage's device, and hold exactly
 * the storage's bytes; every view of the storage sees the new contents. */
tpj_status_t tpj_eager_storage_set_buffer(tpj_eager_storage_t* storage, tpj_buffer_t* buffer)
    TPJ_MUST_USE;

/* ------------------------------------------------------------------ views -- */

typedef struct tpj_eager_tensor_s {
  tpj_eager_storage_t* storage; /* borrowed */
  tpj_dtype_t dtype;
  int32_t rank;
  int64_t sizes[TPJ_MAX_RANK];   /* (rank) */
  int64_t strides[TPJ_MAX_RANK]; /* (rank) in elements */
  int64_t offset;                /* storage offset in elements */
  /* Non-NULL: a rank-0 host value of dtype (e.g. a CPU scalar tensor) that is
   * passed as a rank-0 runtime input (keyed by dtype, not value); storage is
   * then ignored. */
  const void* host_scalar;
} tpj_eager_tensor_t;

/* Runs one ATen op. `args` follow tpj/lower.h, except that a TENSOR argument's
 * .tensor (and each entry of a TENSOR_LIST's .tensors) is an index into
 * `inputs` (or TPJ_VALUE_NONE). `extra_inputs` are appended to the program as
 * plain parameters after the views (e.g. the RNG seed of random ops) and are
 * referred to by index num_inputs + i. `liftable` (NULL, or num_args flags)
 * marks INT/FLOAT arguments that are values (Scalar/float in the schema, not
 * sizes or dims): they become rank-0 runtime inputs of the program, so a new
 * value reuses the compiled program (unless the target's lowering needs the
 * value at build time; that is detected once per target and remembered).
 * Host scalars (tpj_eager_tensor_t.host_scalar) are always runtime inputs.
 * out_buffers[i] receives a new
 * 1-D buffer holding out_types[i] in row-major order on `device` (NULL for a
 * None output); wrap it with tpj_eager_storage_wrap. */
typedef struct tpj_eager_op_s {
  const char* target;            /* "aten::add.Tensor" */
  const tpj_arg_t* args;         /* (num_args) */
  size_t num_args;
  const tpj_eager_tensor_t* inputs; /* (num_inputs) */
  size_t num_inputs;
  tpj_buffer_t* const* extra_inputs; /* (num_extra) borrowed */
  size_t num_extra;
  const tpj_type_t* out_types;   /* (num_outs) */
  size_t num_outs;
  size_t device;
  const bool* liftable;          /* (num_args) or NULL */
} tpj_eager_op_t;
/* Errors: UNIMPLEMENTED, NOT_FOUND (no lowering) or INVALID_ARGUMENT when the
 * op cannot be lowered, built or compiled for these arguments (the caller may
 * run it elsewhere); RESOURCE_EXHAUSTED when
 * the device is out of memory; any other code is a plugin or runtime failure
 * that no fallback may hide. */
tpj_status_t tpj_eager_op_run(const tpj_eager_op_t* op, tpj_buffer_t** out_buffers) TPJ_MUST_USE;
/* Runs a one-output op and writes its result into the view `dst` (converted
 * to dst's dtype) in the same program: in-place and out= variants. */
tpj_status_t tpj_eager_op_run_into(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dst)
    TPJ_MUST_USE;

/* In-place / out= ops: result k of `op` is written into view dsts[k]
 * (converted to its dtype); one result into one view runs as one program. */
tpj_status_t tpj_eager_op_run_writes(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dsts,
                                     size_t num_dsts) TPJ_MUST_USE;
/* dst.normal_(mean, std) through the aten::normal.float_float lowering, with
 * the generator state `seed` (two words; NOT_FOUND without that lowering). */
tpj_status_t tpj_eager_normal_into(const tpj_eager_tensor_t* dst, double mean, double std,
                                   const uint64_t seed[2]) TPJ_MUST_USE;
/* The RNG state input of random ops: u64[2] on `device` (owned by the caller). */
tpj_status_t tpj_eager_seed_create(const uint64_t words[2], size_t device,
                                   tpj_buffer_t** out_buffer) TPJ_MUST_USE;

/* dst[...] = src (converted to dst's dtype); shapes must be equal (expand src
 * first to broadcast). Works across devices. */
tpj_status_t tpj_eager_copy(const tpj_eager_tensor_t* src, const tpj_eager_tensor_t* dst)
    TPJ_MUST_USE;
/* dst[...] = buffer (same shape as dst; converted to dst's dtype). */
tpj_status_t tpj_eager_write_buffer(tpj_buffer_t* buffer, const tpj_eager_tensor_t* dst)
    TPJ_MUST_USE;
/* Host row-major data of dst's dtype and shape -> dst. */
tpj_status_t tpj_eager_write_host(const void* data, size_t nbytes,
                                  const tpj_eager_tensor_t* dst) TPJ_MUST_USE;
/* src -> host row-major data (waits). */
tpj_status_t tpj_eager_read_host(const tpj_eager_tensor_t* src, void* data, size_t nbytes)
    TPJ_MUST_USE;
/* The view as a new contiguous buffer (*out_buffer owned by the caller). */
tpj_status_t tpj_eager_materialize(const tpj_eager_tensor_t* src, tpj_buffer_t** out_buffer)
    TPJ_MUST_USE;

/* Waits for every storage's pending computation and every program launched
 * (also those whose results were released; their failure is returned), then
 * raises the first runtime check (out-of-range index, integer division by
 * zero) that failed in an op since the last synchronization. Host reads
 * raise the checks too. */
tpj_status_t tpj_eager_synchronize(void) TPJ_MUST_USE;

/* Runtime checks in eager programs (tpj/ir.h), on by default; part of every
 * program's signature, so toggling never runs a stale program. */
void tpj_eager_set_checks_enabled(bool enabled);
bool tpj_eager_checks_enabled(void);

typedef struct tpj_eager_stats_s {
  uint64_t ops;            /* tpj_eager_op_run calls */
  uint64_t signature_hits; /* programs found by signature, no StableHLO built */
  uint64_t programs;       /* programs built (signature misses) */
  uint64_t live_storages;
  uint64_t cross_device_copies; /* buffers an op moved to another device */
} tpj_eager_stats_t;
void tpj_eager_stats_get(tpj_eager_stats_t* out_stats);
/* Drops every cached eager program (the runtime compile cache keeps its own). */
void tpj_eager_cache_clear(void);

/* ----------------------------------------------------------------- memory -- */

/* Device memory as torch.pjrt.memory_stats reports it (eager_memory.c). The
 * runtime counts storages: a storage counts its bytes from creation to
 * destruction, also while deferred (never written, no device buffer yet), as
 * a CUDA allocation would. There is no caching allocator, so nothing is
 * reserved beyond the live storages. `plugin` is what PJRT_Device_MemoryStats
 * says (all -1 where the plugin does not report it). */
typedef struct tpj_eager_memory_stats_s {
  uint64_t allocated_bytes;       /* live storages */
  uint64_t peak_allocated_bytes;  /* since the last reset_peak */
  uint64_t total_allocated_bytes; /* since the last reset_accumulated */
  uint64_t total_freed_bytes;
  uint64_t allocations;           /* live storages */
  uint64_t peak_allocations;
  uint64_t total_allocations;
  uint64_t total_frees;
  uint64_t num_ooms;              /* out-of-memory errors raised for the device */
  uint64_t peak_temporary_bytes;  /* largest compiled-program temporaries launched
                                     since reset_peak (0: none reported) */
  tpj_device_memory_t plugin;
} tpj_eager_memory_stats_t;
tpj_status_t tpj_eager_memory_stats(size_t device,
                                    tpj_eager_memory_stats_t* out_stats) TPJ_MUST_USE;
void tpj_eager_memory_reset_peak(size_t device);
void tpj_eager_memory_reset_accumulated(size_t device);
void tpj_eager_memory_note_oom(size_t device);
/* Called before each launch of `executable` on `device`: the program's
 * temporaries (tpj_executable_temp_bytes, where the plugin reports them) count
 * toward the device's peak while it runs (peak_allocated_bytes >= allocated +
 * temporaries), and a launch whose temporaries exceed the free memory is
 * RESOURCE_EXHAUSTED before it is enqueued (TPJ_EAGER_MEMORY_CHECK_MIN applies). */
tpj_status_t tpj_eager_memory_launch(size_t device,
                                     const tpj_executable_t* executable) TPJ_MUST_USE;
/* Free and total bytes of the device: the plugin's bytes_limit minus its
 * bytes_in_use where it reports them; for the CPU plugin the host's
 * available memory (MemAvailable, capped by RLIMIT_AS); UNIMPLEMENTED when
 * neither is known. */
tpj_status_t tpj_eager_memory_info(size_t device, uint64_t* out_free,
                                   uint64_t* out_total) TPJ_MUST_USE;
/* RESOURCE_EXHAUSTED naming the bytes and the device when `nbytes` (at least
 * TPJ_EAGER_MEMORY_CHECK_MIN) exceeds the device's free memory; OK when the
 * free memory is unknown or the request is small (the plugin's own error,
 * also RESOURCE_EXHAUSTED, then surfaces at the next synchronization). */
#define TPJ_EAGER_MEMORY_CHECK_MIN ((size_t)16 << 20)
tpj_status_t tpj_eager_memory_check(size_t device, size_t nbytes) TPJ_MUST_USE;

/* ----------------------------------------------------------------- events -- */

/* Events of the eager device (eager_event.c), behind torch.pjrt.Event. PJRT
 * gives a device one queue, so an event is not a marker in a stream: recording
 * captures the work in flight on the device at that moment: the completion
 * events of the programs the runtime launched there that are not done (also
 * those whose results were released), and the ready events of its live
 * storage buffers not computed yet (transfers, compiled programs' results).
 * The event is complete once all of them are ready (at once when there were
 * none); its completion time is when the last one became ready
 * (CLOCK_MONOTONIC, taken in the plugin's on-ready callback). A captured
 * computation's error is the event's error from then on, until the event is
 * recorded again. */
typedef struct tpj_eager_event_s tpj_eager_event_t;
/* `timing`: completion times are kept for tpj_eager_event_elapsed_ms. */
tpj_status_t tpj_eager_event_create(bool timing, tpj_eager_event_t** out_event) TPJ_MUST_USE;
/* Safe while captured work is still in flight (it is released when done). */
void tpj_eager_event_destroy(tpj_eager_event_t* event);
/* Captures the work in flight on addressable device `device` (replacing what
 * an earlier record captured). */
tpj_status_t tpj_eager_event_record(tpj_eager_event_t* event, size_t device) TPJ_MUST_USE;
bool tpj_eager_event_is_recorded(const tpj_eager_event_t* event);
/* *out_done: false while captured work is in flight; true when it is all
 * done or the event was never recorded. Once done, returns the error of the
 * captured work, if any (a new status at every call). */
tpj_status_t tpj_eager_event_query(tpj_eager_event_t* event, bool* out_done) TPJ_MUST_USE;
/* Blocks until the captured work is done; returns its error, if any. */
tpj_status_t tpj_eager_event_synchronize(tpj_eager_event_t* event) TPJ_MUST_USE;
/* Milliseconds from start's completion to end's. Both must have been created
 * with timing (INVALID_ARGUMENT), recorded and complete (FAILED_PRECONDITION). */
tpj_status_t tpj_eager_event_elapsed_ms(tpj_eager_event_t* start, tpj_eager_event_t* end,
                                        double* out_ms) TPJ_MUST_USE;
/* *out_idle: whether no work is in flight on the device (its stream query). */
tpj_status_t tpj_eager_device_query(size_t device, bool* out_idle) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_EAGER_H_ */
