/* eager_internal.h: shared pieces of the eager device runtime (internal).
 * eager_storage.c owns storages and the client (it runs no ops), eager_view.c
 * builds the view read/write ops, eager_run.c keys, compiles and runs the
 * programs and gives never-written storages their zeros. */
#ifndef TPJ_EAGER_INTERNAL_H_
#define TPJ_EAGER_INTERNAL_H_

#include "tpj/eager.h"

struct tpj_eager_storage_s {
  tpj_buffer_t* buffer;  /* 1-D [nbytes / itemsize] of dtype; NULL = zeros */
  tpj_dtype_t dtype;     /* INVALID until the first write */
  size_t nbytes;
  size_t device;
  struct tpj_eager_storage_s* prev; /* live list (for synchronize) */
  struct tpj_eager_storage_s* next;
};

/* The ready events (tpj_buffer_ready_event) of the live storages' buffers on
 * `device` that are not ready yet: the work in flight there. *out_events is a
 * malloc'd array of *out_count events (NULL when none); the caller destroys
 * each event and frees the array. */
tpj_status_t tpj_eager_storage_pending_events(size_t device, tpj_event_t*** out_events,
                                              size_t* out_count) TPJ_MUST_USE;
/* Work in flight (eager_event.c): the completion event of every program the
 * runtime launches is kept, per executing device, until it is ready, so that
 * events see programs whose results were already released. add takes
 * ownership of `event` (NULL is ignored); await waits for all of them and
 * returns the first failure; clear forgets them (the client changed). */
void tpj_eager_inflight_add(size_t device, tpj_event_t* event);
tpj_status_t tpj_eager_inflight_await(void) TPJ_MUST_USE;
void tpj_eager_inflight_clear(void);
/* Elements of the storage when kept as `dtype`. */
int64_t tpj_eager_storage_numel(const tpj_eager_storage_t* s, tpj_dtype_t dtype);
/* Re-reads the storage through the host as a flat buffer of `dtype` (zeros
 * when it was never written). The op runner (eager_run.c) uses it for a
 * storage kept with another element size, and for a never-written one when
 * the zeros program on the device fails; storage code never runs ops. */
tpj_status_t tpj_eager_storage_retype(tpj_eager_storage_t* s, tpj_dtype_t dtype) TPJ_MUST_USE;
/* Replaces the buffer (takes ownership of `buffer`). */
void tpj_eager_storage_replace(tpj_eager_storage_t* s, tpj_buffer_t* buffer, tpj_dtype_t dtype);

/* true when the view is row-major contiguous (size-1 dims ignored). */
bool tpj_eager_view_contiguous(const tpj_eager_tensor_t* v);
int64_t tpj_eager_view_numel(const tpj_eager_tensor_t* v);
/* Reads view `v` out of the flat storage value `flat` (1-D, storage dtype),
 * giving a value of v's dtype and shape. */
tpj_status_t tpj_eager_view_read(tpj_graph_t* g, tpj_value_t flat, const tpj_eager_tensor_t* v,
                                 tpj_value_t* out) TPJ_MUST_USE;
/* Writes `update` (v's shape; converted to the flat dtype) into view v of the
 * flat storage value; `flat` may be TPJ_VALUE_NONE when v covers the whole
 * storage contiguously. */
tpj_status_t tpj_eager_view_write(tpj_graph_t* g, tpj_value_t flat, int64_t flat_numel,
                                  tpj_dtype_t flat_dtype, const tpj_eager_tensor_t* v,
                                  tpj_value_t update, tpj_value_t* out) TPJ_MUST_USE;
/* true when writing v replaces every element of its storage (kept as v's dtype). */
bool tpj_eager_view_covers_storage(const tpj_eager_tensor_t* v);

/* Devices whose memory is counted (eager_memory.c); storage_new rejects more. */
#define TPJ_EAGER_MAX_DEVICES 1024
/* Counts a storage of `nbytes` in (alloc) or out of its device's totals. */
void tpj_eager_memory_count(size_t device, uint64_t nbytes, bool alloc);
/* tpj_eager_memory_check for the buffers an op run makes: its outputs, or
 * dst's whole storage (a write replaces the storage's buffer). */
tpj_status_t tpj_eager_memory_check_outputs(const tpj_eager_op_t* op,
                                            const tpj_eager_tensor_t* dst) TPJ_MUST_USE;
/* A program that cannot be built (a lowering that cannot give the expected
 * outputs: INTERNAL) or that the plugin does not compile (`compiled`: any code
 * but RESOURCE_EXHAUSTED) becomes UNIMPLEMENTED, "no lowering for this case"
 * (see tpj_eager_op_run). Takes ownership of `st`. */
tpj_status_t tpj_eager_status_no_lowering(tpj_status_t st, bool compiled) TPJ_MUST_USE;

void tpj_eager_stats_count(int which); /* 0 op, 1 signature hit, 2 program, 3 copy */

/* Scalars as runtime inputs (eager_scalar.c). A cached rank-0 buffer holding
 * `bytes` of dtype on device; release each reference returned by get. */
typedef struct tpj_eager_scalar_s tpj_eager_scalar_t;
tpj_status_t tpj_eager_scalar_get(tpj_dtype_t dtype, const void* bytes, size_t device,
                                  tpj_eager_scalar_t** out_scalar) TPJ_MUST_USE;
tpj_buffer_t* tpj_eager_scalar_buffer(const tpj_eager_scalar_t* s);
void tpj_eager_scalar_release(tpj_eager_scalar_t* s);
void tpj_eager_scalar_cache_clear(void);
/* false for targets whose scalar arguments must stay program constants. */
bool tpj_eager_lift_allowed(const char* target);
/* Remembers that target's lowering needs its scalars at build time. */
void tpj_eager_lift_forbid(const char* target);
/* The dtype a lifted INT/FLOAT argument is passed in (wrapped-number rules). */
tpj_dtype_t tpj_eager_lift_dtype(const tpj_arg_t* arg, const tpj_eager_op_t* op);

#endif /* TPJ_EAGER_INTERNAL_H_ */
