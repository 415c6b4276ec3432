/* special_dist.c: pairwise distances _cdist_forward and _pdist_forward (no
 * Core-ATen decomposition). Both form explicit differences and reduce them
 * with the p-norm (p = 0 counts nonzeros, p = inf takes the max), computing
 * f16/bf16 in f32. cdist always uses the difference form: it is at least as
 * accurate as eager's matmul shortcut for p = 2 on rows longer than 25.
 */
#include <math.h>
#include <stdlib.h>

#include "lower/lower_special.h"

/* ||d||_p over the last dim of d (compute dtype), dropping that dim. */
static tpj_status_t sp_pnorm_last(tpj_graph_t* g, tpj_value_t d, double p, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, d);
  int64_t last[1] = {t->rank - 1};
  tpj_value_t a, k, r;
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, d, &a));
  if (p == 0.0) {
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &k));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a, k, &a));
    TPJ_RETURN_IF_ERROR(tpj_build_convert(g, a, t->dtype, &a));
    return tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_ADD, last, 1, out);
  }
  if (isinf(p)) {
    TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_MAX, last, 1, &r));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, r), 0.0, &k));
    return tpj_build_binary(g, TPJ_BINARY_OP_MAX, r, k, out); /* empty rows give 0 */
  }
  if (p == 1.0) return tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_ADD, last, 1, out);
  if (p == 2.0) {
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, a, &a));
    TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_ADD, last, 1, &r));
    return tpj_build_unary(g, TPJ_UNARY_OP_SQRT, r, out);
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, p, &k));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_POW, a, k, &a));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_ADD, last, 1, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, r), 1.0 / p, &k));
  return tpj_build_binary(g, TPJ_BINARY_OP_POW, r, k, out);
}

static tpj_status_t sp_read_p(const tpj_lower_call_t* call, size_t i, double* out_p) {
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, i, out_p));
  if (*out_p < 0 || isnan(*out_p)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: p must be a non-negative number (got %g)",
                      call->target, *out_p);
  }
  return NULL;
}

/* _cdist_forward(x1 [..., P, M], x2 [..., R, M], p, compute_mode) -> [..., P, R]. */
TPJ_LOWERING(tpj_lower_sp_cdist) {
  tpj_value_t x1, x2, d, r;
  double p;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x1));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x2));
  TPJ_RETURN_IF_ERROR(sp_read_p(call, 2, &p));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* t1 = tpj_lower_type(g, x1);
  const tpj_type_t* t2 = tpj_lower_type(g, x2);
  if (t1->rank < 2 || t2->rank < 2 || ot->rank < 2 || t1->dims[t1->rank - 1] != t2->dims[t2->rank - 1]) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected [..., P, M] and [..., R, M] inputs (got "
                      "ranks %d and %d)", call->target, t1->rank, t2->rank);
  }
  int32_t rk = ot->rank + 1; /* [..., P, R, M] */
  int64_t m = t1->dims[t1->rank - 1];
  tpj_dtype_t cd = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  if (rk > TPJ_MAX_RANK) return TPJ_LOWER_UNSUPPORTED(call, "rank %d output is too large", ot->rank);
  int64_t full[TPJ_MAX_RANK + 1];
  for (int32_t i = 0; i < ot->rank; ++i) full[i] = ot->dims[i];
  full[rk - 1] = m;
  /* x1 as [..., P, 1, M], x2 as [..., 1, R, M] (batch broadcast to the output's). */
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x1, cd, &x1));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x2, cd, &x2));
  int64_t s1[3] = {t1->dims[t1->rank - 2], 1, m}, s2[3] = {1, t2->dims[t2->rank - 2], m};
  int64_t r1[TPJ_MAX_RANK + 1], r2[TPJ_MAX_RANK + 1];
  for (int32_t i = 0; i < t1->rank - 2; ++i) r1[i] = t1->dims[i];
  for (int32_t i = 0; i < 3; ++i) r1[t1->rank - 2 + i] = s1[i];
  for (int32_t i = 0; i < t2->rank - 2; ++i) r2[i] = t2->dims[i];
  for (int32_t i = 0; i < 3; ++i) r2[t2->rank - 2 + i] = s2[i];
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x1, r1, (size_t)t1->rank + 1, &x1));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x2, r2, (size_t)t2->rank + 1, &x2));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, x1, full, (size_t)rk, &x1));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, x2, full, (size_t)rk, &x2));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x1, x2, &d));
  TPJ_RETURN_IF_ERROR(sp_pnorm_last(g, d, p, &r));
  return tpj_lower_convert(g, r, ot->dtype, &out[0]);
}

/* Rows idx[k] of x [N, M] -> [K, M]. */
static tpj_status_t sp_take_rows(tpj_graph_t* g, tpj_value_t x, tpj_value_t idx,
                                 tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t offset[1] = {1}, collapsed[1] = {0}, map[1] = {0}, sizes[2] = {1, t->dims[1]};
  tpj_gather_dims_t gd = {.offset_dims = offset, .num_offset_dims = 1,
                          .collapsed_slice_dims = collapsed, .num_collapsed_slice_dims = 1,
                          .start_index_map = map, .num_start_index_map = 1,
                          .index_vector_dim = 1, .slice_sizes = sizes, .num_slice_sizes = 2};
  return tpj_build_gather(g, x, idx, &gd, out);
}

/* _pdist_forward(self [N, M], p) -> [N (N - 1) / 2], pairs i < j row-major. */
TPJ_LOWERING(tpj_lower_sp_pdist) {
  tpj_value_t x, a, b, d, r, ii, jj;
  double p;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(sp_read_p(call, 1, &p));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (t->rank != 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected a 2-d input (got rank %d)", call->target,
                      t->rank);
  }
  int64_t n = t->dims[0], k = n * (n - 1) / 2;
  if (k == 0) return tpj_lower_full(g, ot, 0.0, &out[0]);
  int64_t* idx = malloc(2 * (size_t)k * sizeof(int64_t));
  if (!idx) return TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: no memory for %lld pairs", call->target, (long long)k);
  int64_t q = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j, ++q) {
      idx[q] = i;
      idx[k + q] = j;
    }
  tpj_type_t it = {.dtype = TPJ_DTYPE_S64, .rank = 2, .dims = {k, 1}};
  tpj_status_t st = tpj_build_constant(g, &it, idx, (size_t)k * sizeof(int64_t), &ii);
  if (!st) st = tpj_build_constant(g, &it, idx + k, (size_t)k * sizeof(int64_t), &jj);
  free(idx);
  TPJ_RETURN_IF_ERROR(st);
  tpj_dtype_t cd = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, cd, &x));
  TPJ_RETURN_IF_ERROR(sp_take_rows(g, x, ii, &a));
  TPJ_RETURN_IF_ERROR(sp_take_rows(g, x, jj, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a, b, &d));
  TPJ_RETURN_IF_ERROR(sp_pnorm_last(g, d, p, &r));
  return tpj_lower_convert(g, r, ot->dtype, &out[0]);
}

/* dist(self, other, p): ||self - other||_p over all elements (broadcast). */
TPJ_LOWERING(tpj_lower_sp_dist) {
  tpj_value_t a, b, d, r;
  double p;
  tpj_type_t bt;
  TPJ_RETURN_IF_ERROR(sp_read_p(call, 2, &p));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &a));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &b));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_shape(call, tpj_lower_type(g, a), tpj_lower_type(g, b), &bt));
  bt.dtype = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, a, &bt, &a));
  TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, b, &bt, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a, b, &d));
  int64_t n[1] = {tpj_type_numel(&bt)};
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, d, n, 1, &d));
  TPJ_RETURN_IF_ERROR(sp_pnorm_last(g, d, p, &r));
  return tpj_lower_coerce(g, r, ot, &out[0]);
}
