/* tpj/collective.h: one collective (all_reduce, all_gather, reduce_scatter,
 * all_to_all) across the local devices of one client, run by the plugin as a
 * compiled StableHLO program on device memory.
 *
 * tpj_collective_run takes one buffer per device (buffer d on addressable
 * device d, all of one dtype and shape) and returns one result per device.
 * The program (src/runtime/collective.c) is the op over one parameter,
 * compiled through the compile cache with num_replicas = the device count,
 * so the plugin's in-process collectives move the data (the XLA CPU plugin
 * with cpu_device_count = N has them). It is made once per signature (client,
 * kind, reduce kind, dims, dtype, shape, device count, group layout) and kept
 * in a process-wide cache; call tpj_collective_cache_evict_client(client)
 * before tpj_runtime_cache_evict_client and tpj_client_destroy.
 *
 * Thread safety: every function is thread-safe.
 */
#ifndef TPJ_COLLECTIVE_H_
#define TPJ_COLLECTIVE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tpj_collective_kind_e {
  TPJ_COLLECTIVE_KIND_ALL_REDUCE = 0,
  TPJ_COLLECTIVE_KIND_ALL_GATHER = 1,
  TPJ_COLLECTIVE_KIND_REDUCE_SCATTER = 2,
  TPJ_COLLECTIVE_KIND_ALL_TO_ALL = 3,
} tpj_collective_kind_t;

typedef struct tpj_collective_op_s {
  tpj_collective_kind_t kind;
  tpj_reduce_kind_t reduce; /* ALL_REDUCE, REDUCE_SCATTER: add, mul, max, min, and, or */
  /* ALL_GATHER: all_gather_dim; REDUCE_SCATTER: scatter_dimension;
   * ALL_TO_ALL: split_dimension. */
  int64_t dim;
  int64_t concat_dim;       /* ALL_TO_ALL: concat_dimension */
  /* (num_groups, group_size) device indices that partition the devices of
   * the call (tpj/ir.h, tpj_collective_groups_t); NULL with num_groups and
   * group_size 0: one group of every device, in order. */
  const int64_t* replica_groups;
  size_t num_groups;
  size_t group_size;
} tpj_collective_op_t;

/* The StableHLO text of the op over one parameter of `type` on num_devices
 * replicas, as tpj_collective_run compiles it. *out_text is malloc'd (free
 * with free()); out_len may be NULL. Builder errors come back as they are
 * ("stablehlo.reduce_scatter: ..."). */
tpj_status_t tpj_collective_program_text(const tpj_collective_op_t* op, const tpj_type_t* type,
                                         size_t num_devices, char** out_text,
                                         size_t* out_len) TPJ_MUST_USE;

/* Runs the op across devices 0..num_devices-1 of `client`: buffers (num_devices,
 * borrowed) hold each device's operand, out_buffers (num_devices, caller-
 * allocated) receive each device's result, owned by the caller. wait: return
 * once the program completed (its failure is the returned status); otherwise
 * once launched (the results' buffers become ready later, and eager
 * synchronization waits for the launch). On error no result is left
 * (out_buffers are NULL). INVALID_ARGUMENT for buffers that do not fit
 * (a NULL one, one on another device, dtypes or shapes that differ, more
 * devices than the client has, a group layout over another device count). */
tpj_status_t tpj_collective_run(tpj_client_t* client, const tpj_collective_op_t* op,
                                tpj_buffer_t* const* buffers, size_t num_devices, bool wait,
                                tpj_buffer_t** out_buffers) TPJ_MUST_USE;

/* Drops the cached programs of `client` (each holds a compiled executable of it). */
void tpj_collective_cache_evict_client(const tpj_client_t* client);
void tpj_collective_cache_clear(void);
size_t tpj_collective_cache_size(void);

#ifdef __cplusplus
}
#endif

#endif /* TPJ_COLLECTIVE_H_ */
