/* norm_softmax.c: _softmax / _log_softmax and their backward ops. Forward
 * subtracts the row max before exp (numerically stable, and an all -inf row
 * gives NaN exactly as in PyTorch); bf16/f16 are computed in f32. */
#include "lower/lower_reduce.h"

/* Shifted input x - max(x, dim) in acc dtype, plus the dim set and sum(exp). */
static tpj_status_t tpj_softmax_parts(tpj_graph_t* g, const tpj_lower_call_t* call,
                                      tpj_value_t* out_shifted, tpj_value_t* out_exp,
                                      tpj_value_t* out_sum, tpj_reduce_dims_t* out_rd) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t x, m, mb;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, tpj_reduce_acc_dtype(ot->dtype), &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  tpj_reduce_dims_t rd = {.rank = t->rank};
  if (t->rank > 0) {
    rd.count = 1;
    rd.dims[0] = dim;
    rd.mask[dim] = true;
  }
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, x, TPJ_REDUCE_KIND_MAX, &rd, &m));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, m, &rd, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, mb, out_shifted));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, *out_shifted, out_exp));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, *out_exp, TPJ_REDUCE_KIND_ADD, &rd, out_sum));
  *out_rd = rd;
  return NULL;
}

TPJ_LOWERING(tpj_lower_reduce_softmax) {
  tpj_value_t sh, e, s, sb, r;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_softmax_parts(g, call, &sh, &e, &s, &rd));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, s, &rd, tpj_lower_type(g, e), &sb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, e, sb, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

TPJ_LOWERING(tpj_lower_reduce_log_softmax) {
  tpj_value_t sh, e, s, l, lb, r;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_softmax_parts(g, call, &sh, &e, &s, &rd));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, s, &l));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, l, &rd, tpj_lower_type(g, sh), &lb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, sh, lb, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* (grad_output, output, dim, input_dtype): loads both in acc dtype. */
static tpj_status_t tpj_softmax_bw_args(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t* out_grad, tpj_value_t* out_y,
                                        tpj_reduce_dims_t* out_rd) {
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, out_grad));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, out_y));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, *out_grad, acc, out_grad));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, *out_y, acc, out_y));
  const tpj_type_t t_c = *tpj_lower_type(g, *out_y);
  const tpj_type_t* t = &t_c;
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  tpj_reduce_dims_t rd = {.rank = t->rank};
  if (t->rank > 0) {
    rd.count = 1;
    rd.dims[0] = dim;
    rd.mask[dim] = true;
  }
  *out_rd = rd;
  return NULL;
}

/* grad_input = y * (g - sum(g * y, dim)). */
TPJ_LOWERING(tpj_lower_reduce_softmax_backward) {
  tpj_value_t gr, y, gy, s, sb, d, r;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_softmax_bw_args(g, call, &gr, &y, &rd));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, gr, y, &gy));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, gy, TPJ_REDUCE_KIND_ADD, &rd, &s));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, s, &rd, tpj_lower_type(g, y), &sb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, gr, sb, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, y, d, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* grad_input = g - exp(y) * sum(g, dim). */
TPJ_LOWERING(tpj_lower_reduce_log_softmax_backward) {
  tpj_value_t gr, y, e, s, sb, m, r;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_softmax_bw_args(g, call, &gr, &y, &rd));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, y, &e));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, gr, TPJ_REDUCE_KIND_ADD, &rd, &s));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, s, &rd, tpj_lower_type(g, y), &sb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, e, sb, &m));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, gr, m, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}
