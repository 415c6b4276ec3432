/* shape_pad.c: reflection_pad{1,2,3}d and replication_pad{1,2,3}d with their
 * backwards. Core ATen usually decomposes the forwards into index ops but keeps
 * the backwards (conv padding_mode="reflect"/"replicate" in training); both are
 * per-dim index maps: the forward gathers, the backward scatter-adds. */
#include "lower/lower_shape.h"

/* Source index of each output position along one padded dim (s64 [n_out]):
 * i = o - lo, then clamped (replicate) or mirrored without repeating the edge
 * (reflect: |i|, then (in-1) - |(in-1) - i|). */
static tpj_status_t tpj_pad_index_map(tpj_graph_t* g, bool reflect, int64_t n_out, int64_t lo,
                                      int64_t n_in, tpj_value_t* out) {
  tpj_type_t t = {.dtype = TPJ_DTYPE_S64, .rank = 1};
  t.dims[0] = n_out;
  tpj_value_t i, c_lo, c_last, zero;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &t, 0, &i));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n_out, 1, lo, &c_lo));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n_out, 1, n_in - 1, &c_last));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, i, c_lo, &i));
  if (!reflect) {
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n_out, 1, 0, &zero));
    return tpj_build_clamp(g, zero, i, c_last, out);
  }
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, i, &i));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, c_last, i, &i));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, i, &i));
  return tpj_build_binary(g, TPJ_BINARY_OP_SUB, c_last, i, out);
}

/* Moves dim d of v to the front (front = true) or the front dim back to d. */
static tpj_status_t tpj_pad_move(tpj_graph_t* g, tpj_value_t v, int64_t d, bool front,
                                 tpj_value_t* out) {
  return front ? tpj_shape_move_block_front(g, v, 1, d, out)
               : tpj_shape_move_block(g, v, 1, d, out);
}

/* Padding list (2 * k ints, last dim first) checked against x's rank and
 * sizes: reflect needs 0 <= pad < size; replicate needs size > 0 and a
 * non-empty result (a negative pad crops). */
static tpj_status_t tpj_pad_args(const tpj_lower_call_t* call, size_t pi, size_t k,
                                 const tpj_type_t* xt, bool reflect, const int64_t** out_pad) {
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, pi, out_pad, &n));
  if (n != 2 * k || xt->rank < (int64_t)k || xt->rank > (int64_t)k + 2)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: padding must have %zu ints for a rank %zu-%zu "
                      "input (got %zu ints, rank %d)", call->target, 2 * k, k, k + 2, n,
                      (int)xt->rank);
  for (size_t j = 0; j < 2 * k; ++j) {
    int64_t size = xt->dims[xt->rank - 1 - (int64_t)(j / 2)], p = (*out_pad)[j];
    int64_t n_out = size + (*out_pad)[j & ~(size_t)1] + (*out_pad)[j | 1];
    if (reflect ? (p < 0 || p >= size) : (size == 0 || n_out <= 0))
      return TPJ_LOWER_UNSUPPORTED(call, "padding %lld for a dim of size %lld (reflect "
                                   "needs 0 <= pad < size, replicate a non-empty dim and "
                                   "result)", (long long)p, (long long)size);
  }
  return NULL;
}

/* (self, padding) -> out. */
static tpj_status_t tpj_pad_forward(tpj_graph_t* g, const tpj_lower_call_t* call,
                                    tpj_value_t* out, size_t k, bool reflect) {
  tpj_value_t x, idx;
  const int64_t* pad;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t xt = *tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_pad_args(call, 1, k, &xt, reflect, &pad));
  for (size_t j = 0; j < k; ++j) {
    int64_t d = xt.rank - 1 - (int64_t)j;
    int64_t n_in = xt.dims[d], n_out = n_in + pad[2 * j] + pad[2 * j + 1];
    TPJ_RETURN_IF_ERROR(tpj_pad_index_map(g, reflect, n_out, pad[2 * j], n_in, &idx));
    TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, &d, &idx, 1, &x));
    TPJ_RETURN_IF_ERROR(tpj_pad_move(g, x, d, false, &x));
  }
  return tpj_lower_coerce(g, x, tpj_lower_out_type(call, 0), &out[0]);
}

/* (grad_output, self, padding) -> grad_input: per padded dim, scatter-add the
 * gradient rows onto the source rows they were copied from. */
static tpj_status_t tpj_pad_backward(tpj_graph_t* g, const tpj_lower_call_t* call,
                                     tpj_value_t* out, size_t k, bool reflect) {
  tpj_value_t gr, x, idx, acc;
  const int64_t* pad;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &gr));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  const tpj_type_t xt = *tpj_lower_type(g, x);
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_pad_args(call, 2, k, &xt, reflect, &pad));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, gr, ot->dtype, &gr));
  for (size_t j = 0; j < k; ++j) {
    int64_t d = xt.rank - 1 - (int64_t)j;
    tpj_type_t at = *tpj_lower_type(g, gr);
    int64_t n_out = at.dims[d], n_in = xt.dims[d];
    if (n_out != n_in + pad[2 * j] + pad[2 * j + 1])
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: grad_output size %lld at dim %lld does not "
                        "match input %lld + padding", call->target, (long long)n_out,
                        (long long)d, (long long)n_in);
    at.dims[d] = n_in;
    TPJ_RETURN_IF_ERROR(tpj_pad_index_map(g, reflect, n_out, pad[2 * j], n_in, &idx));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &at, 0.0, &acc));
    TPJ_RETURN_IF_ERROR(tpj_pad_move(g, gr, d, true, &gr));
    TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, acc, &d, &idx, 1, gr,
                                              TPJ_SHAPE_COMBINE_ADD, &gr));
  }
  return tpj_lower_coerce(g, gr, ot, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_reflection_pad1d) { return tpj_pad_forward(g, call, out, 1, true); }
TPJ_LOWERING(tpj_lower_shape_reflection_pad2d) { return tpj_pad_forward(g, call, out, 2, true); }
TPJ_LOWERING(tpj_lower_shape_reflection_pad3d) { return tpj_pad_forward(g, call, out, 3, true); }
TPJ_LOWERING(tpj_lower_shape_replication_pad1d) { return tpj_pad_forward(g, call, out, 1, false); }
TPJ_LOWERING(tpj_lower_shape_replication_pad2d) { return tpj_pad_forward(g, call, out, 2, false); }
TPJ_LOWERING(tpj_lower_shape_replication_pad3d) { return tpj_pad_forward(g, call, out, 3, false); }

TPJ_LOWERING(tpj_lower_shape_reflection_pad1d_backward) {
  return tpj_pad_backward(g, call, out, 1, true);
}
TPJ_LOWERING(tpj_lower_shape_reflection_pad2d_backward) {
  return tpj_pad_backward(g, call, out, 2, true);
}
TPJ_LOWERING(tpj_lower_shape_reflection_pad3d_backward) {
  return tpj_pad_backward(g, call, out, 3, true);
}
TPJ_LOWERING(tpj_lower_shape_replication_pad1d_backward) {
  return tpj_pad_backward(g, call, out, 1, false);
}
TPJ_LOWERING(tpj_lower_shape_replication_pad2d_backward) {
  return tpj_pad_backward(g, call, out, 2, false);
}
TPJ_LOWERING(tpj_lower_shape_replication_pad3d_backward) {
  return tpj_pad_backward(g, call, out, 3, false);
}
