/* reduce_index.c: reductions that return positions (max/min.dim, argmax,
 * argmin) and the prefix scans cumsum/cumprod. Arg-reductions are one
 * variadic reduce over (value, iota) whose body keeps the first occurrence and
 * lets NaN win, as PyTorch does; scans are a reduce_window over a prefix. */
#include <math.h>

#include "lower/lower_reduce.h"

/* Body over (acc_v, acc_i, x_v, x_i): the better value (NaN beats everything),
 * and on ties the smaller index. Commutative and associative. */
static tpj_status_t tpj_reduce_arg_body(tpj_graph_t* g, tpj_dtype_t dt, bool is_max,
                                        int32_t* out_region) {
  tpj_type_t ts[4] = {tpj_type_scalar(dt), tpj_type_scalar(TPJ_DTYPE_S64),
                      tpj_type_scalar(dt), tpj_type_scalar(TPJ_DTYPE_S64)};
  tpj_value_t a[4];
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, ts, 4, a));
  tpj_compare_dir_t dir = is_max ? TPJ_COMPARE_DIR_GT : TPJ_COMPARE_DIR_LT;
  tpj_value_t better, eq, mi, idx_tie, v, i, res[2];
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, dir, a[0], a[2], &better));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, a[0], a[2], &eq));
  if (tpj_dtype_is_float(dt)) {
    tpj_value_t anan, bnan, bnum, t;
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[0], a[0], &anan));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[2], a[2], &bnan));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NOT, bnan, &bnum));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, anan, bnum, &t));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, better, t, &better));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, anan, bnan, &t));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, eq, t, &eq));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MIN, a[1], a[3], &mi));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, eq, mi, a[3], &idx_tie));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, better, a[0], a[2], &v));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, better, a[1], idx_tie, &i));
  res[0] = v;
  res[1] = i;
  return tpj_graph_region_end(g, res, 2, out_region);
}

/* Lowest (for max) / highest (for min) value of dt as the reduce init. */
static tpj_status_t tpj_reduce_arg_init(tpj_graph_t* g, tpj_dtype_t dt, bool is_max,
                                        tpj_value_t* out) {
  if (tpj_dtype_is_float(dt)) return tpj_lower_scalar(g, dt, is_max ? -INFINITY : INFINITY, out);
  if (dt == TPJ_DTYPE_PRED) return tpj_lower_scalar(g, dt, is_max ? 0.0 : 1.0, out);
  int64_t lo, hi;
  size_t bits = tpj_dtype_size(dt) * 8;
  if (tpj_dtype_is_unsigned_int(dt)) {
    lo = 0;
    hi = bits >= 64 ? -1 : (int64_t)((1ull << bits) - 1); /* u64 max wraps to -1 */
  } else {
    hi = bits >= 64 ? INT64_MAX : (int64_t)((1ull << (bits - 1)) - 1);
    lo = -hi - 1;
  }
  return tpj_build_splat_int(g, dt, NULL, 0, is_max ? lo : hi, out);
}

/* Arg-reduction of x along `dim` (x already reshaped as needed): values and
 * s64 indices with `dim` dropped. */
static tpj_status_t tpj_reduce_arg_along(tpj_graph_t* g, const tpj_lower_call_t* call,
                                         tpj_value_t x, int64_t dim, bool is_max,
                                         tpj_value_t* out_v, tpj_value_t* out_i) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  if (t->rank > 0 && t->dims[dim] == 0)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: cannot reduce an empty dim %lld (no identity)",
                      call->target, (long long)dim);
  if (t->rank == 0) {
    *out_v = x;
    return tpj_build_splat_int(g, TPJ_DTYPE_S64, NULL, 0, 0, out_i);
  }
  tpj_type_t it = *t;
  it.dtype = TPJ_DTYPE_S64;
  tpj_value_t in[2], init[2], res[2];
  int32_t body;
  in[0] = x;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, dim, &in[1]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_arg_init(g, t->dtype, is_max, &init[0]));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, NULL, 0, 0, &init[1]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_arg_body(g, t->dtype, is_max, &body));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce(g, in, init, 2, &dim, 1, body, res));
  *out_v = res[0];
  *out_i = res[1];
  return NULL;
}

/* max.dim / min.dim(self, int dim, bool keepdim) -> (values, indices). */
static tpj_status_t tpj_reduce_minmax_dim(tpj_graph_t* g, const tpj_lower_call_t* call,
                                          bool is_max, tpj_value_t* out) {
  tpj_value_t x, v, i;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, tpj_lower_type(g, x)->rank, &dim));
  TPJ_RETURN_IF_ERROR(tpj_reduce_arg_along(g, call, x, dim, is_max, &v, &i));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, v, tpj_lower_out_type(call, 0), &out[0]));
  return tpj_reduce_finish(g, i, tpj_lower_out_type(call, 1), &out[1]);
}

TPJ_LOWERING(tpj_lower_reduce_max_dim) { return tpj_reduce_minmax_dim(g, call, true, out); }
TPJ_LOWERING(tpj_lower_reduce_min_dim) { return tpj_reduce_minmax_dim(g, call, false, out); }

/* argmax / argmin(self, int? dim, bool keepdim): dim None flattens. */
static tpj_status_t tpj_reduce_argext(tpj_graph_t* g, const tpj_lower_call_t* call,
                                      bool is_max, tpj_value_t* out) {
  tpj_value_t x, v, i;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  int64_t dim = 0;
  if (tpj_lower_arg_is_none(call, 1)) {
    int64_t n = tpj_type_numel(t);
    if (n == 0)
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: cannot reduce an empty tensor", call->target);
    TPJ_RETURN_IF_ERROR(tpj_reduce_reshape(g, x, &n, 1, &x));
  } else {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
    TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  }
  TPJ_RETURN_IF_ERROR(tpj_reduce_arg_along(g, call, x, dim, is_max, &v, &i));
  return tpj_reduce_finish(g, i, tpj_lower_out_type(call, 0), &out[0]);
}

TPJ_LOWERING(tpj_lower_reduce_argmax) { return tpj_reduce_argext(g, call, true, out); }
TPJ_LOWERING(tpj_lower_reduce_argmin) { return tpj_reduce_argext(g, call, false, out); }

/* cumsum / cumprod(self, int dim, *, dtype?): reduce_window whose window spans
 * the whole dim, padded with n-1 identity elements in front. */
static tpj_status_t tpj_reduce_scan(tpj_graph_t* g, const tpj_lower_call_t* call,
                                    tpj_reduce_kind_t kind, tpj_value_t* out) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t x, init, r;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(ot->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &x));
  t_c = *tpj_lower_type(g, x);
  if (t->rank == 0 || tpj_type_numel(t) == 0) return tpj_reduce_finish(g, x, ot, &out[0]);
  int64_t wdims[TPJ_MAX_RANK], strides[TPJ_MAX_RANK], pad[2 * TPJ_MAX_RANK];
  for (int32_t d = 0; d < t->rank; ++d) {
    wdims[d] = d == dim ? t->dims[d] : 1;
    strides[d] = 1;
    pad[2 * d] = d == dim ? t->dims[d] - 1 : 0;
    pad[2 * d + 1] = 0;
  }
  tpj_window_t w = {.rank = (size_t)t->rank, .dims = wdims, .strides = strides,
                    .padding = pad};
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, acc, kind == TPJ_REDUCE_KIND_ADD ? 0.0 : 1.0, &init));
  TPJ_RETURN_IF_ERROR(tpj_lower_reduce_body(g, acc, kind, &body));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_window(g, x, init, &w, body, &r));
  return tpj_reduce_finish(g, r, ot, &out[0]);
}

TPJ_LOWERING(tpj_lower_reduce_cumsum) { return tpj_reduce_scan(g, call, TPJ_REDUCE_KIND_ADD, out); }
TPJ_LOWERING(tpj_lower_reduce_cumprod) {
  return tpj_reduce_scan(g, call, TPJ_REDUCE_KIND_MUL, out);
}
