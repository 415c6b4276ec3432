/* eager_ops.c: eager entry points that need no PyTorch types, kept in C so
 * the C++ registration file (python/csrc/device.cpp) stays thin: normal_
 * through the lowering table, and writing an op's results into several views
 * (in-place and out= ops). */
#include <string.h>

#include "runtime/eager_internal.h"

tpj_status_t tpj_eager_normal_into(const tpj_eager_tensor_t* dst, double mean, double std,
                                   const uint64_t seed[2]) {
  static const char kTarget[] = "aten::normal.float_float";
  TPJ_CHECK_ARG(dst && dst->storage && seed, "eager normal_: NULL argument");
  if (tpj_eager_view_numel(dst) == 0) return NULL;
  if (!tpj_lower_is_supported(kTarget))
    return TPJ_STATUS(NOT_FOUND, "eager normal_: no lowering for %s", kTarget);
  /* normal(mean, std, size, generator, dtype, layout, device, pin_memory, seed) */
  tpj_arg_t a[9];
  memset(a, 0, sizeof(a));
  a[0].kind = TPJ_ARG_KIND_FLOAT;
  a[0].f = mean;
  a[1].kind = TPJ_ARG_KIND_FLOAT;
  a[1].f = std;
  a[2].kind = TPJ_ARG_KIND_INT_LIST;
  a[2].ints = dst->sizes;
  a[2].count = (size_t)dst->rank;
  a[3].kind = TPJ_ARG_KIND_OTHER;
  a[4].kind = TPJ_ARG_KIND_DTYPE;
  a[4].i = dst->dtype;
  a[5].kind = TPJ_ARG_KIND_OTHER;
  a[6].kind = TPJ_ARG_KIND_OTHER;
  a[7].kind = TPJ_ARG_KIND_NONE;
  a[8].kind = TPJ_ARG_KIND_TENSOR;
  a[8].tensor = 0; /* extra input 0 */
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_type_init(dst->dtype, dst->sizes, (size_t)dst->rank, &t));
  tpj_buffer_t* sb = NULL;
  TPJ_RETURN_IF_ERROR(tpj_eager_seed_create(seed, dst->storage->device, &sb));
  const bool lift[9] = {true, true};
  tpj_eager_op_t op = {kTarget, a, 9, NULL, 0, &sb, 1, &t, 1, dst->storage->device, lift};
  tpj_status_t st = tpj_eager_op_run_into(&op, dst);
  tpj_buffer_destroy(sb);
  return st;
}

tpj_status_t tpj_eager_op_run_writes(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dsts,
                                     size_t num_dsts) {
  TPJ_CHECK_ARG(op && op->target && (dsts || num_dsts == 0), "eager op: NULL argument");
  if (num_dsts == 1 && op->num_outs == 1) return tpj_eager_op_run_into(op, &dsts[0]);
  tpj_buffer_t* bufs[64] = {0};
  TPJ_CHECK_ARG(op->num_outs <= 64, "eager op %s: too many outputs (got %zu)", op->target,
                op->num_outs);
  TPJ_RETURN_IF_ERROR(tpj_eager_op_run(op, bufs));
  tpj_status_t st = NULL;
  for (size_t k = 0; k < num_dsts && k < op->num_outs && !st; ++k) {
    if (bufs[k]) st = tpj_eager_write_buffer(bufs[k], &dsts[k]);
  }
  for (size_t k = 0; k < op->num_outs; ++k) tpj_buffer_destroy(bufs[k]);
  return st;
}
