/* norm_layer.c: native_layer_norm / native_group_norm and their backward ops.
 * Both normalize over a set of dims of a (possibly reshaped) input, so they
 * share the statistics and the input-gradient formula
 *   dx = rstd * (dy' - mean(dy') - xhat * mean(dy' * xhat)),  dy' = dy * w. */
#include <math.h>

#include "lower/lower_reduce.h"

/* Biased mean and rstd of x over rd (dims dropped) and xhat (full shape). */
static tpj_status_t tpj_norm_stats(tpj_graph_t* g, tpj_value_t x, const tpj_reduce_dims_t* rd,
                                   double eps, tpj_value_t* out_mean, tpj_value_t* out_rstd,
                                   tpj_value_t* out_xhat) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_value_t mb, d, sq, var, rb;
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, x, rd, out_mean));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, *out_mean, rd, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, mb, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, d, &sq));
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, sq, rd, &var));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_ADD, var, eps, &var));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_RSQRT, var, out_rstd));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, *out_rstd, rd, t, &rb));
  return tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, rb, out_xhat);
}

/* rstd_full * (gx - mean(gx) - xhat * mean(gx * xhat)), means over rd. */
static tpj_status_t tpj_norm_grad_input(tpj_graph_t* g, tpj_value_t gx, tpj_value_t xhat,
                                        tpj_value_t rstd_full, const tpj_reduce_dims_t* rd,
                                        tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, gx);
  const tpj_type_t* t = &t_c;
  tpj_value_t m1, m1b, gxh, m2, m2b, a, b;
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, gx, rd, &m1));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, m1, rd, t, &m1b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, gx, xhat, &gxh));
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, gxh, rd, &m2));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, m2, rd, t, &m2b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, gx, m1b, &a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, m2b, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a, b, &a));
  return tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, rstd_full, out);
}

/* The dims from `axis` to the end of a rank-`rank` tensor. */
static void tpj_norm_trailing(int64_t rank, int64_t axis, tpj_reduce_dims_t* rd) {
  *rd = (tpj_reduce_dims_t){.rank = rank};
  for (int64_t d = axis; d < rank; ++d) {
    rd->mask[d] = true;
    rd->dims[rd->count++] = d;
  }
}

/* Axis where normalized_shape (argument i) starts, checked against x. */
static tpj_status_t tpj_norm_axis(const tpj_lower_call_t* call, size_t i, const tpj_type_t* t,
                                  int64_t* out_axis) {
  const int64_t* ns;
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, i, &ns, &n));
  int64_t axis = (int64_t)t->rank - (int64_t)n;
  if (axis < 0)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: normalized_shape has %zu dims (input rank %d)",
                      call->target, n, (int)t->rank);
  for (size_t k = 0; k < n; ++k)
    if (t->dims[axis + (int64_t)k] != ns[k])
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "%s: normalized_shape[%zu] does not match the input (got %lld, "
                        "expected %lld)", call->target, k, (long long)ns[k],
                        (long long)t->dims[axis + (int64_t)k]);
  *out_axis = axis;
  return NULL;
}

/* out = xhat * w + b with optional w, b broadcast (trailing) to xhat. */
static tpj_status_t tpj_norm_affine(tpj_graph_t* g, tpj_value_t xhat, tpj_value_t w,
                                    tpj_value_t b, tpj_value_t* out) {
  if (w != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_reduce_binb(g, TPJ_BINARY_OP_MUL, xhat, w, &xhat));
  if (b != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_reduce_binb(g, TPJ_BINARY_OP_ADD, xhat, b, &xhat));
  *out = xhat;
  return NULL;
}

/* native_layer_norm(input, normalized_shape, weight?, bias?, eps). */
TPJ_LOWERING(tpj_lower_reduce_layer_norm) {
  tpj_value_t x, w, b, mean, rstd, xhat, y;
  double eps;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  int64_t axis;
  TPJ_RETURN_IF_ERROR(tpj_norm_axis(call, 1, t, &axis));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 2, acc, &w));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 3, acc, &b));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 4, &eps));
  tpj_reduce_dims_t rd;
  tpj_norm_trailing(t->rank, axis, &rd);
  TPJ_RETURN_IF_ERROR(tpj_norm_stats(g, x, &rd, eps, &mean, &rstd, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_norm_affine(g, xhat, w, b, &y));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, y, tpj_lower_out_type(call, 0), &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, mean, tpj_lower_out_type(call, 1), &out[1]));
  return tpj_reduce_finish(g, rstd, tpj_lower_out_type(call, 2), &out[2]);
}

/* Sum of v over the dims NOT in rd, written as output i (or None). */
static tpj_status_t tpj_norm_param_grad(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        size_t i, tpj_value_t v, const tpj_reduce_dims_t* rd,
                                        tpj_value_t* out) {
  const tpj_type_t* ot = tpj_lower_out_type(call, i);
  if (ot->dtype == TPJ_DTYPE_INVALID) {
    *out = TPJ_VALUE_NONE;
    return NULL;
  }
  tpj_reduce_dims_t outer = {.rank = rd->rank};
  for (int64_t d = 0; d < rd->rank; ++d)
    if (!rd->mask[d]) {
      outer.mask[d] = true;
      outer.dims[outer.count++] = d;
    }
  tpj_value_t s;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, v, TPJ_REDUCE_KIND_ADD, &outer, &s));
  return tpj_reduce_finish(g, s, ot, out);
}

/* native_layer_norm_backward(grad_out, input, normalized_shape, mean, rstd,
 * weight?, bias?, output_mask[3]). */
TPJ_LOWERING(tpj_lower_reduce_layer_norm_backward) {
  tpj_value_t dy, x, mean, rstd, w, mb, rb, xhat, gx, gi, gxh;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 0, acc, &dy));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 1, acc, &x));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 3, acc, &mean));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 4, acc, &rstd));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 5, acc, &w));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  int64_t axis;
  TPJ_RETURN_IF_ERROR(tpj_norm_axis(call, 2, t, &axis));
  tpj_reduce_dims_t rd;
  tpj_norm_trailing(t->rank, axis, &rd);
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, mean, &rd, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, rstd, &rd, t, &rb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, mb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, rb, &xhat));
  gx = dy;
  if (w != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_reduce_binb(g, TPJ_BINARY_OP_MUL, dy, w, &gx));
  if (tpj_lower_out_type(call, 0)->dtype == TPJ_DTYPE_INVALID) {
    out[0] = TPJ_VALUE_NONE;
  } else {
    TPJ_RETURN_IF_ERROR(tpj_norm_grad_input(g, gx, xhat, rb, &rd, &gi));
    TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, gi, tpj_lower_out_type(call, 0), &out[0]));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dy, xhat, &gxh));
  TPJ_RETURN_IF_ERROR(tpj_norm_param_grad(g, call, 1, gxh, &rd, &out[1]));
  return tpj_norm_param_grad(g, call, 2, dy, &rd, &out[2]);
}

/* Group-norm layout: x as [N, G, C/G, HxW]; w/b as [G, C/G] broadcast over it. */
typedef struct tpj_gn_shape_s {
  int64_t dims[4];
} tpj_gn_shape_t;

static tpj_status_t tpj_gn_shape(const tpj_lower_call_t* call, size_t first, const tpj_type_t* t,
                                 tpj_gn_shape_t* out_shape) {
  int64_t n, c, hw, grp;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first + 1, &c));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first + 2, &hw));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first + 3, &grp));
  if (grp <= 0 || c % grp != 0 || n * c * hw != tpj_type_numel(t))
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s: bad group norm sizes (got N=%lld C=%lld HxW=%lld group=%lld for "
                      "%lld elements)", call->target, (long long)n, (long long)c,
                      (long long)hw, (long long)grp, (long long)tpj_type_numel(t));
  *out_shape = (tpj_gn_shape_t){{n, grp, c / grp, hw}};
  return NULL;
}

/* Optional per-channel [C] tensor as [N, G, C/G, HxW] (or NONE). */
static tpj_status_t tpj_gn_channel(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                   tpj_dtype_t acc, const tpj_gn_shape_t* s, tpj_value_t* out) {
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, i, acc, &v));
  if (v == TPJ_VALUE_NONE) {
    *out = v;
    return NULL;
  }
  static const int64_t bd[2] = {1, 2};
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, &s->dims[1], 2, &v));
  return tpj_build_broadcast_in_dim(g, v, s->dims, 4, bd, out);
}

static const tpj_reduce_dims_t tpj_gn_rd = {
    .rank = 4, .count = 2, .dims = {2, 3}, .mask = {false, false, true, true}};

/* native_group_norm(input, weight?, bias?, N, C, HxW, group, eps). */
TPJ_LOWERING(tpj_lower_reduce_group_norm) {
  tpj_value_t x, w, b, mean, rstd, xhat, y;
  double eps;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  tpj_gn_shape_t s;
  TPJ_RETURN_IF_ERROR(tpj_gn_shape(call, 3, tpj_lower_type(g, x), &s));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 7, &eps));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &x));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, s.dims, 4, &x));
  TPJ_RETURN_IF_ERROR(tpj_gn_channel(g, call, 1, acc, &s, &w));
  TPJ_RETURN_IF_ERROR(tpj_gn_channel(g, call, 2, acc, &s, &b));
  TPJ_RETURN_IF_ERROR(tpj_norm_stats(g, x, &tpj_gn_rd, eps, &mean, &rstd, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_norm_affine(g, xhat, w, b, &y));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, y, tpj_lower_out_type(call, 0), &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, mean, tpj_lower_out_type(call, 1), &out[1]));
  return tpj_reduce_finish(g, rstd, tpj_lower_out_type(call, 2), &out[2]);
}

/* Per-channel gradient sum of v ([N, G, C/G, HxW]) over N and HxW -> [C]. */
static tpj_status_t tpj_gn_param_grad(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                      tpj_value_t v, tpj_value_t* out) {
  static const tpj_reduce_dims_t outer = {
      .rank = 4, .count = 2, .dims = {0, 3}, .mask = {true, false, false, true}};
  if (tpj_lower_out_type(call, i)->dtype == TPJ_DTYPE_INVALID) {
    *out = TPJ_VALUE_NONE;
    return NULL;
  }
  tpj_value_t s;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, v, TPJ_REDUCE_KIND_ADD, &outer, &s));
  return tpj_reduce_finish(g, s, tpj_lower_out_type(call, i), out);
}

/* native_group_norm_backward(grad_out, input, mean, rstd, weight?, N, C, HxW,
 * group, output_mask[3]). */
TPJ_LOWERING(tpj_lower_reduce_group_norm_backward) {
  tpj_value_t dy, x, mean, rstd, w, mb, rb, xhat, gx, gi, gxh;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  tpj_gn_shape_t s;
  TPJ_RETURN_IF_ERROR(tpj_gn_shape(call, 5, tpj_lower_type(g, x), &s));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 0, acc, &dy));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 1, acc, &x));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 2, acc, &mean));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 3, acc, &rstd));
  TPJ_RETURN_IF_ERROR(tpj_gn_channel(g, call, 4, acc, &s, &w));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, s.dims, 4, &x));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, dy, s.dims, 4, &dy));
  tpj_type_t t4;
  TPJ_RETURN_IF_ERROR(tpj_type_init(acc, s.dims, 4, &t4));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, mean, &tpj_gn_rd, &t4, &mb));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, rstd, &tpj_gn_rd, &t4, &rb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, mb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, rb, &xhat));
  gx = dy;
  if (w != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dy, w, &gx));
  if (tpj_lower_out_type(call, 0)->dtype == TPJ_DTYPE_INVALID) {
    out[0] = TPJ_VALUE_NONE;
  } else {
    TPJ_RETURN_IF_ERROR(tpj_norm_grad_input(g, gx, xhat, rb, &tpj_gn_rd, &gi));
    TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, gi, tpj_lower_out_type(call, 0), &out[0]));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dy, xhat, &gxh));
  TPJ_RETURN_IF_ERROR(tpj_gn_param_grad(g, call, 1, gxh, &out[1]));
  return tpj_gn_param_grad(g, call, 2, dy, &out[2]);
}
