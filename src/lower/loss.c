/* loss.c: nll_loss (1-d and 2-d, forward and backward), mse_loss and
 * binary_cross_entropy with their backward ops. Class picking uses a one-hot
 * mask (iota == target) and select, so ignored or padded entries never turn a
 * NaN/inf input into a NaN result. Reduction codes: 0 none, 1 mean, 2 sum. */
#include "lower/lower_reduce.h"

/* Reduces `loss` over all dims for reduction 1 (mean) / 2 (sum); 0 keeps it. */
static tpj_status_t tpj_loss_reduce(tpj_graph_t* g, const tpj_lower_call_t* call,
                                    tpj_value_t loss, int64_t reduction, tpj_value_t* out) {
  if (reduction == 0) {
    *out = loss;
    return NULL;
  }
  if (reduction != 1 && reduction != 2)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: unknown reduction (got %lld, expected 0, 1 or 2)",
                      call->target, (long long)reduction);
  tpj_reduce_dims_t rd;
  tpj_reduce_dims_all(tpj_lower_type(g, loss)->rank, &rd);
  if (reduction == 1) return tpj_reduce_mean_of(g, loss, &rd, out);
  return tpj_reduce_apply(g, loss, TPJ_REDUCE_KIND_ADD, &rd, out);
}

/* Pieces of nll_loss for input x (acc dtype, shape S) and target (S without
 * the class dim): the one-hot mask over S and the effective weight per target
 * element (weight[target] * (target != ignore_index)). */
typedef struct tpj_nll_s {
  tpj_value_t x;       /* S, acc dtype */
  tpj_value_t onehot;  /* S, pred */
  tpj_value_t w_eff;   /* S without class dim, acc dtype */
  int64_t class_dim;
  int64_t reduction;
} tpj_nll_t;

/* Arguments: self at xi, target at xi+1, weight? at xi+2, reduction, ignore_index. */
static tpj_status_t tpj_nll_prepare(tpj_graph_t* g, const tpj_lower_call_t* call, size_t xi,
                                    tpj_nll_t* n) {
  tpj_value_t x, tgt, w, ign, keep, zero;
  int64_t ignore_index;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, xi, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, xi + 1, &tgt));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &n->x));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, xi + 2, acc, &w));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, xi + 3, &n->reduction));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, xi + 4, &ignore_index));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, tgt, TPJ_DTYPE_S64, &tgt));
  const tpj_type_t t_c = *tpj_lower_type(g, n->x);
  const tpj_type_t* t = &t_c;
  const tpj_type_t tt_c = *tpj_lower_type(g, tgt);
  const tpj_type_t* tt = &tt_c;
  n->class_dim = t->rank == 1 ? 0 : 1;
  if (t->rank < 1 || tt->rank != t->rank - 1)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: target rank %d does not fit input rank %d",
                      call->target, (int)tt->rank, (int)t->rank);
  int64_t classes = t->dims[n->class_dim];
  TPJ_RETURN_IF_ERROR(tpj_lower_check_range(g, tgt, 0, classes, &ignore_index, "%s: target {} "
                                            "is out of bounds (expected 0..%lld or "
                                            "ignore_index %lld)", call->target,
                                            (long long)classes - 1, (long long)ignore_index));
  int64_t bd[TPJ_MAX_RANK];
  for (int64_t d = 0, k = 0; d < t->rank; ++d)
    if (d != n->class_dim) bd[k++] = d;
  tpj_type_t it = *t;
  it.dtype = TPJ_DTYPE_S64;
  tpj_value_t iota, tb;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, n->class_dim, &iota));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, tgt, t->dims, (size_t)t->rank, bd, &tb));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, iota, tb, &n->onehot));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, tt->dims, (size_t)tt->rank,
                                          ignore_index, &ign));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, tgt, ign, &keep));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, keep, acc, &n->w_eff));
  if (w != TPJ_VALUE_NONE) {
    tpj_value_t wb, ws, wt;
    int64_t cd = n->class_dim;
    TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, w, t->dims, (size_t)t->rank, &cd, &wb));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, n->onehot, wb, zero, &ws));
    TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, ws, TPJ_REDUCE_KIND_ADD, &cd, 1, &wt));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, n->w_eff, wt, &n->w_eff));
  }
  return NULL;
}

/* nll_loss_forward / nll_loss2d_forward(self, target, weight?, reduction,
 * ignore_index) -> (output, total_weight). */
TPJ_LOWERING(tpj_lower_reduce_nll_loss) {
  tpj_nll_t n;
  TPJ_RETURN_IF_ERROR(tpj_nll_prepare(g, call, 0, &n));
  const tpj_type_t t_c = *tpj_lower_type(g, n.x);
  const tpj_type_t* t = &t_c;
  tpj_value_t zero, sel, picked, loss, total, r;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, n.onehot, n.x, zero, &sel));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, sel, TPJ_REDUCE_KIND_ADD, &n.class_dim, 1,
                                              &picked));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, picked, n.w_eff, &loss));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NEGATE, loss, &loss));
  if (n.reduction != 1 && n.reduction != 2) {
    TPJ_RETURN_IF_ERROR(tpj_loss_reduce(g, call, loss, n.reduction, &loss));
    TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, loss, tpj_lower_out_type(call, 0), &out[0]));
    /* PyTorch fills total_weight for an unbatched input even without reduction */
    if (t->rank == 1)
      return tpj_reduce_finish(g, n.w_eff, tpj_lower_out_type(call, 1), &out[1]);
    return tpj_reduce_const_out(g, call, 1, 0.0, &out[1]);
  }
  TPJ_RETURN_IF_ERROR(tpj_loss_reduce(g, call, loss, 2, &r));
  TPJ_RETURN_IF_ERROR(tpj_loss_reduce(g, call, n.w_eff, 2, &total));
  if (n.reduction == 1) TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, r, total, &r));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]));
  return tpj_reduce_finish(g, total, tpj_lower_out_type(call, 1), &out[1]);
}

/* nll_loss_backward / nll_loss2d_backward(grad_output, self, target, weight?,
 * reduction, ignore_index, total_weight): -w_eff * scale at the target class. */
TPJ_LOWERING(tpj_lower_reduce_nll_loss_backward) {
  tpj_nll_t n;
  TPJ_RETURN_IF_ERROR(tpj_nll_prepare(g, call, 1, &n));
  const tpj_type_t t_c = *tpj_lower_type(g, n.x);
  const tpj_type_t* t = &t_c;
  tpj_value_t go, scale, v, vb, zero, r;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, go, t->dtype, &go));
  scale = go;
  if (n.reduction == 1) {
    tpj_value_t tw;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 6, &tw));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, tw, t->dtype, &tw));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, go, tw, &scale));
  }
  if (n.reduction != 0) {
    const tpj_type_t wt_c = *tpj_lower_type(g, n.w_eff);
    const tpj_type_t* wt = &wt_c;
    TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, scale, wt->dims, (size_t)wt->rank, &scale));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, n.w_eff, scale, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NEGATE, v, &v));
  int64_t bd[TPJ_MAX_RANK];
  for (int64_t d = 0, k = 0; d < t->rank; ++d)
    if (d != n.class_dim) bd[k++] = d;
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, v, t->dims, (size_t)t->rank, bd, &vb));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, n.onehot, vb, zero, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* Loads self (at xi) and target (xi+1) in the acc dtype of output 0. */
static tpj_status_t tpj_loss_pair(tpj_graph_t* g, const tpj_lower_call_t* call, size_t xi,
                                  tpj_value_t* out_x, tpj_value_t* out_t) {
  const tpj_type_t* xt;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, xi, out_x));
  xt = tpj_lower_type(g, *out_x);
  tpj_type_t at = *xt;
  at.dtype = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, *out_x, at.dtype, out_x));
  return tpj_lower_arg_as(g, call, xi + 1, &at, out_t);
}

/* mse_loss(self, target, reduction). */
TPJ_LOWERING(tpj_lower_reduce_mse_loss) {
  tpj_value_t x, y, d, r;
  int64_t red;
  TPJ_RETURN_IF_ERROR(tpj_loss_pair(g, call, 0, &x, &y));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &red));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, y, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, d, &d));
  TPJ_RETURN_IF_ERROR(tpj_loss_reduce(g, call, d, red, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* grad_output (argument 0) broadcast to x's type, divided by numel for mean. */
static tpj_status_t tpj_loss_grad_scale(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t x, int64_t red, tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_value_t go;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 0, t, &go));
  if (red == 1) return tpj_reduce_binc(g, TPJ_BINARY_OP_DIV, go, (double)tpj_type_numel(t), out);
  *out = go;
  return NULL;
}

/* mse_loss_backward(grad_output, self, target, reduction) = 2 (x - y) g. */
TPJ_LOWERING(tpj_lower_reduce_mse_loss_backward) {
  tpj_value_t x, y, d, go, r;
  int64_t red;
  TPJ_RETURN_IF_ERROR(tpj_loss_pair(g, call, 1, &x, &y));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &red));
  TPJ_RETURN_IF_ERROR(tpj_loss_grad_scale(g, call, x, red, &go));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, y, &d));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, d, 2.0, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, go, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* max(v, -100): PyTorch clamps the logs of binary_cross_entropy. */
static tpj_status_t tpj_bce_clamped_log(tpj_graph_t* g, tpj_unary_op_t op, tpj_value_t v,
                                        tpj_value_t* out) {
  tpj_value_t l;
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, op, v, &l));
  return tpj_reduce_binc(g, TPJ_BINARY_OP_MAX, l, -100.0, out);
}

/* binary_cross_entropy(self, target, weight?, reduction):
 * (y - 1) * max(log1p(-x), -100) - y * max(log(x), -100), times weight. */
TPJ_LOWERING(tpj_lower_reduce_bce) {
  tpj_value_t x, y, w, nx, l1, l2, a, b, r;
  int64_t red;
  TPJ_RETURN_IF_ERROR(tpj_loss_pair(g, call, 0, &x, &y));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &red));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NEGATE, x, &nx));
  TPJ_RETURN_IF_ERROR(tpj_bce_clamped_log(g, TPJ_UNARY_OP_LOG1P, nx, &l1));
  TPJ_RETURN_IF_ERROR(tpj_bce_clamped_log(g, TPJ_UNARY_OP_LOG, x, &l2));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_SUB, y, 1.0, &a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, l1, &a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, y, l2, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a, b, &r));
  if (!tpj_lower_arg_is_none(call, 2)) {
    const tpj_type_t xt = *tpj_lower_type(g, x);
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 2, &xt, &w));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, r, w, &r));
  }
  TPJ_RETURN_IF_ERROR(tpj_loss_reduce(g, call, r, red, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* binary_cross_entropy_backward(grad_output, self, target, weight?, reduction):
 * g * (x - y) / max((1 - x) * x, 1e-12), times weight. */
TPJ_LOWERING(tpj_lower_reduce_bce_backward) {
  tpj_value_t x, y, w, go, d, one_m, den, r;
  int64_t red;
  TPJ_RETURN_IF_ERROR(tpj_loss_pair(g, call, 1, &x, &y));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 4, &red));
  TPJ_RETURN_IF_ERROR(tpj_loss_grad_scale(g, call, x, red, &go));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, y, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NEGATE, x, &one_m));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_ADD, one_m, 1.0, &one_m));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, one_m, x, &den));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MAX, den, 1e-12, &den));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, d, den, &r));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, r, go, &r));
  if (!tpj_lower_arg_is_none(call, 3)) {
    const tpj_type_t xt = *tpj_lower_type(g, x);
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 3, &xt, &w));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, r, w, &r));
  }
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}
