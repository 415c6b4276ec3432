/* special_scan.c: the prefix scans cummax, cummin (values + indices) and
 * logcumsumexp, which PyTorch keeps as ATen ops. Each is a reduce_window whose
 * window spans the whole dim, padded in front, with a custom body: NaN-
 * propagating max/min, or a stable logaddexp. cummax/cummin indices follow
 * PyTorch's CPU kernel: the latest position where the running extreme was
 * reached (ties go to the later index; after a NaN, the latest NaN).
 */
#include <math.h>

#include "lower/lower_special.h"

/* reduce_window over the prefix [0, i] of dim for every i. */
static tpj_status_t sp_prefix(tpj_graph_t* g, tpj_value_t x, int64_t dim, tpj_value_t init,
                              int32_t body, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t wdims[TPJ_MAX_RANK], strides[TPJ_MAX_RANK], pad[2 * TPJ_MAX_RANK];
  for (int32_t d = 0; d < t->rank; ++d) {
    wdims[d] = d == dim ? t->dims[d] : 1;
    strides[d] = 1;
    pad[2 * d] = d == dim ? t->dims[d] - 1 : 0;
    pad[2 * d + 1] = 0;
  }
  tpj_window_t w = {.rank = (size_t)t->rank, .dims = wdims, .strides = strides,
                    .padding = pad};
  return tpj_build_reduce_window(g, x, init, &w, body, out);
}

/* Body (a, b) -> the larger (smaller) one; NaN wins. */
static tpj_status_t sp_extreme_body(tpj_graph_t* g, tpj_dtype_t dt, bool is_max,
                                    int32_t* out_region) {
  tpj_type_t ts[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t a[2], pick, r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, ts, 2, a));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, is_max ? TPJ_COMPARE_DIR_GT : TPJ_COMPARE_DIR_LT,
                                        a[0], a[1], &pick));
  if (tpj_dtype_is_float(dt)) {
    tpj_value_t nan;
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[0], a[0], &nan));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, pick, nan, &pick));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, pick, a[0], a[1], &r));
  return tpj_graph_region_end(g, &r, 1, out_region);
}

/* Identity of the max (min) body: the lowest (highest) value of dt. */
static tpj_status_t sp_extreme_init(tpj_graph_t* g, tpj_dtype_t dt, bool is_max,
                                    tpj_value_t* out) {
  if (tpj_dtype_is_float(dt)) return tpj_lower_scalar(g, dt, is_max ? -INFINITY : INFINITY, out);
  int64_t lo, hi;
  size_t bits = tpj_dtype_size(dt) * 8;
  if (tpj_dtype_is_unsigned_int(dt)) {
    lo = 0;
    hi = bits >= 64 ? -1 : (int64_t)((1ull << bits) - 1);
  } else {
    hi = bits >= 64 ? INT64_MAX : (int64_t)((1ull << (bits - 1)) - 1);
    lo = -hi - 1;
  }
  return tpj_build_splat_int(g, dt, NULL, 0, is_max ? lo : hi, out);
}

/* cummax / cummin(self, dim) -> (values, indices). */
static tpj_status_t sp_cum_extreme(tpj_graph_t* g, const tpj_lower_call_t* call, bool is_max,
                                   tpj_value_t* out) {
  tpj_value_t x, cv, hit, idx, pos, none, init, iinit;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  tpj_type_t t = *tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t.rank, &dim));
  const tpj_type_t* vt = tpj_lower_out_type(call, 0);
  const tpj_type_t* it = tpj_lower_out_type(call, 1);
  if (t.rank == 0 || tpj_type_numel(&t) == 0) {
    TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, x, vt, &out[0]));
    return tpj_lower_full(g, it, 0.0, &out[1]);
  }
  if (t.dtype == TPJ_DTYPE_PRED) {
    TPJ_RETURN_IF_ERROR(tpj_build_convert(g, x, TPJ_DTYPE_S32, &x));
    t.dtype = TPJ_DTYPE_S32;
  }
  int32_t body, ibody;
  TPJ_RETURN_IF_ERROR(sp_extreme_init(g, t.dtype, is_max, &init));
  TPJ_RETURN_IF_ERROR(sp_extreme_body(g, t.dtype, is_max, &body));
  TPJ_RETURN_IF_ERROR(sp_prefix(g, x, dim, init, body, &cv));
  /* hit: x is NaN, or x equals the running extreme (a new or tied extreme). */
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, x, cv, &hit));
  if (tpj_dtype_is_float(t.dtype)) {
    tpj_value_t nan;
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, x, x, &nan));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, hit, nan, &hit));
  }
  tpj_type_t st = t;
  st.dtype = TPJ_DTYPE_S64;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &st, dim, &pos));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &st, -1.0, &none));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, hit, pos, none, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, TPJ_DTYPE_S64, -1.0, &iinit));
  TPJ_RETURN_IF_ERROR(tpj_lower_reduce_body(g, TPJ_DTYPE_S64, TPJ_REDUCE_KIND_MAX, &ibody));
  TPJ_RETURN_IF_ERROR(sp_prefix(g, idx, dim, iinit, ibody, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, cv, vt, &out[0]));
  return tpj_lower_coerce(g, idx, it, &out[1]);
}

TPJ_LOWERING(tpj_lower_sp_cummax) { return sp_cum_extreme(g, call, true, out); }
TPJ_LOWERING(tpj_lower_sp_cummin) { return sp_cum_extreme(g, call, false, out); }

/* Body (a, b) -> log(exp(a) + exp(b)) = hi + log1p(exp(lo - hi)); hi itself
 * when it is +-inf (so -inf + -inf stays -inf and inf does not become NaN). */
static tpj_status_t sp_logaddexp_body(tpj_graph_t* g, tpj_dtype_t dt, int32_t* out_region) {
  tpj_type_t ts[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t a[2], hi, lo, d, r, inf, ahi, isinf;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, ts, 2, a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MAX, a[0], a[1], &hi));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MIN, a[0], a[1], &lo));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, lo, hi, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, d, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG1P, d, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, hi, d, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, dt, INFINITY, &inf));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, hi, &ahi));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, ahi, inf, &isinf));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, isinf, hi, r, &r));
  /* NaN in either operand wins (max/min alone do not promise that) */
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[0], a[0], &isinf));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, isinf, a[0], r, &r));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[1], a[1], &isinf));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, isinf, a[1], r, &r));
  return tpj_graph_region_end(g, &r, 1, out_region);
}

/* logcumsumexp(self, dim): f16/bf16 accumulate in f32. */
TPJ_LOWERING(tpj_lower_sp_logcumsumexp) {
  tpj_value_t x, init, r;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (!tpj_dtype_is_float(ot->dtype)) {
    return TPJ_LOWER_UNSUPPORTED(call, "logcumsumexp needs a floating output (got dtype %d)",
                                 (int)ot->dtype);
  }
  tpj_dtype_t cd = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, cd, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  if (t->rank == 0 || tpj_type_numel(t) == 0) return tpj_lower_coerce(g, x, ot, &out[0]);
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, cd, -INFINITY, &init));
  TPJ_RETURN_IF_ERROR(sp_logaddexp_body(g, cd, &body));
  TPJ_RETURN_IF_ERROR(sp_prefix(g, x, dim, init, body, &r));
  return tpj_lower_coerce(g, r, ot, &out[0]);
}
