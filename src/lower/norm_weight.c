/* norm_weight.c: _weight_norm_interface (w = v * g / ||v||, the norm taken over
 * every dim but `dim`) and its backward, which Core ATen keeps fused in
 * training graphs of weight-normed convolutions (Wav2Vec2's positional conv).
 * The norms are computed and kept in the accumulation dtype. */
#include "lower/lower_nn.h"
#include "lower/lower_reduce.h"

/* Dims reduced by the norm: every dim where the kept shape (g / norms) is 1. */
static void tpj_wn_dims(const tpj_type_t* v, const tpj_type_t* kept, tpj_reduce_dims_t* rd) {
  *rd = (tpj_reduce_dims_t){.rank = v->rank};
  for (int64_t d = 0; d < v->rank; ++d) {
    bool r = kept->rank != v->rank || kept->dims[d] == 1;
    rd->mask[d] = r;
    if (r) rd->dims[rd->count++] = d;
  }
}

/* sum over rd of a * b, broadcast back to a's shape. */
static tpj_status_t tpj_wn_dot(tpj_graph_t* g, tpj_value_t a, tpj_value_t b,
                               const tpj_reduce_dims_t* rd, tpj_value_t* out) {
  tpj_value_t p, s;
  const tpj_type_t at = *tpj_lower_type(g, a);
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, b, &p));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, p, TPJ_REDUCE_KIND_ADD, rd, &s));
  return tpj_reduce_expand(g, s, rd, &at, out);
}

/* (v, g, dim) -> (w, norms). */
TPJ_LOWERING(tpj_lower_nn_weight_norm) {
  tpj_value_t v, gv, n, w;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &gv));
  const tpj_type_t* nt = tpj_lower_out_type(call, 1);
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, acc, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, gv, acc, &gv));
  const tpj_type_t vt = *tpj_lower_type(g, v);
  tpj_reduce_dims_t rd;
  tpj_wn_dims(&vt, nt, &rd);
  TPJ_RETURN_IF_ERROR(tpj_wn_dot(g, v, v, &rd, &n));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_SQRT, n, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, gv, vt.dims, (size_t)vt.rank, &gv));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, gv, n, &w));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, v, w, &w));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, w, tpj_lower_out_type(call, 0), &out[0]));
  tpj_value_t nr;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, n, TPJ_REDUCE_KIND_MAX, &rd, &nr));
  return tpj_reduce_finish(g, nr, nt, &out[1]);
}

/* (grad_w, saved_v, saved_g, saved_norms, dim) -> (grad_v, grad_g):
 * grad_g = sum(grad_w * v) / n, grad_v = g / n * (grad_w - v * grad_g / n). */
TPJ_LOWERING(tpj_lower_nn_weight_norm_backward) {
  tpj_value_t gw, v, gv, n, gg, t, gvv;
  const tpj_value_t* ins[4] = {&gw, &v, &gv, &n};
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  for (size_t i = 0; i < 4; ++i) {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, i, (tpj_value_t*)ins[i]));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, *ins[i], acc, (tpj_value_t*)ins[i]));
  }
  const tpj_type_t vt = *tpj_lower_type(g, v);
  const tpj_type_t kt = *tpj_lower_type(g, n);
  tpj_reduce_dims_t rd;
  tpj_wn_dims(&vt, &kt, &rd);
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, n, vt.dims, (size_t)vt.rank, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, gv, vt.dims, (size_t)vt.rank, &gv));
  TPJ_RETURN_IF_ERROR(tpj_wn_dot(g, gw, v, &rd, &gg));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, gg, n, &gg)); /* grad_g, full */
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, v, gg, &t));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, t, n, &t));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, gw, t, &t));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, gv, n, &gvv));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, gvv, t, &t));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, t, tpj_lower_out_type(call, 0), &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, gg, TPJ_REDUCE_KIND_MAX, &rd, &gg));
  return tpj_reduce_finish(g, gg, tpj_lower_out_type(call, 1), &out[1]);
}
