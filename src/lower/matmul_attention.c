/* matmul_attention.c: _scaled_dot_product_flash_attention_for_cpu and its
 * backward, with grouped-query heads (k/v heads dividing q heads). On torch
 * 2.13 AOTAutograd decomposes the forward into bmm/softmax but keeps the fused
 * backward, and feeds it the attention probabilities in the `logsumexp` slot;
 * the backward here therefore recomputes the probabilities from q, k and the
 * mask and never reads `out` or `logsumexp`. */
#include <math.h>
#include <string.h>

#include "lower/lower_reduce.h"

/* dot_general over the nb leading batch dims contracting a[ca] with b[cb]. */
static tpj_status_t tpj_attn_dot(tpj_graph_t* g, tpj_value_t a, tpj_value_t b, int64_t nb,
                                 int64_t ca, int64_t cb, tpj_value_t* out) {
  static const int64_t batch[TPJ_MAX_RANK] = {0, 1, 2, 3, 4, 5, 6, 7};
  tpj_dot_dims_t dd = {.lhs_batch = batch, .num_lhs_batch = (size_t)nb,
                       .rhs_batch = batch, .num_rhs_batch = (size_t)nb,
                       .lhs_contract = &ca, .num_lhs_contract = 1,
                       .rhs_contract = &cb, .num_rhs_contract = 1};
  return tpj_build_dot_general(g, a, b, &dd, TPJ_DTYPE_INVALID, out);
}

/* Inputs in f32-or-wider, the scale, and the mask flags. */
typedef struct tpj_attn_s {
  tpj_value_t q, k, v; /* [batch..., L, E], [batch..., S, E], [batch..., S, Ev] */
  int64_t nb;          /* number of batch dims; the last one holds the heads */
  int64_t groups;      /* q heads per k/v head (1 without grouped-query heads) */
  double scale;
} tpj_attn_t;

/* Grouped-query heads: x [batch..., Hk, S, E] -> [batch..., Hk * groups, S, E],
 * q head h reading k/v head h / groups (repeat_interleave over the heads). */
static tpj_status_t tpj_attn_repeat_heads(tpj_graph_t* g, int64_t nb, int64_t groups,
                                          tpj_value_t x, tpj_value_t* out) {
  const tpj_type_t t = *tpj_lower_type(g, x);
  int64_t split[TPJ_MAX_RANK], bcast[TPJ_MAX_RANK], keep[TPJ_MAX_RANK];
  for (int64_t d = 0, j = 0; d < t.rank; ++d) {
    split[j] = bcast[j] = t.dims[d];
    ++j;
    if (d == nb - 1) split[j] = 1, bcast[j] = groups, ++j;
  }
  tpj_value_t y;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, split, (size_t)t.rank + 1, &y));
  for (int64_t d = 0; d < t.rank + 1; ++d) keep[d] = d;
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, y, bcast, (size_t)t.rank + 1, keep, &y));
  int64_t dims[TPJ_MAX_RANK];
  memcpy(dims, t.dims, sizeof(int64_t) * (size_t)t.rank);
  dims[nb - 1] *= groups;
  return tpj_build_reshape(g, y, dims, (size_t)t.rank, out);
}

/* The gradient of tpj_attn_repeat_heads: sums each group of q heads back onto
 * its k/v head, [batch..., Hk * groups, S, E] -> [batch..., Hk, S, E]. */
static tpj_status_t tpj_attn_fold_heads(tpj_graph_t* g, int64_t nb, int64_t groups,
                                        tpj_value_t x, tpj_value_t* out) {
  if (groups == 1) return *out = x, NULL;
  const tpj_type_t t = *tpj_lower_type(g, x);
  int64_t split[TPJ_MAX_RANK];
  for (int64_t d = 0, j = 0; d < t.rank; ++d) {
    split[j++] = d == nb - 1 ? t.dims[d] / groups : t.dims[d];
    if (d == nb - 1) split[j++] = groups;
  }
  tpj_value_t y;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, split, (size_t)t.rank + 1, &y));
  tpj_reduce_dims_t rd = {.rank = t.rank + 1, .count = 1};
  rd.dims[0] = nb;
  rd.mask[nb] = true;
  return tpj_reduce_apply(g, y, TPJ_REDUCE_KIND_ADD, &rd, out);
}

/* Checks q, k, v agree on the batch dims, allowing k/v heads (the last batch
 * dim, equal for k and v) to divide q's; sets a->groups. */
static tpj_status_t tpj_attn_check_heads(const tpj_lower_call_t* call, const tpj_type_t* tq,
                                         const tpj_type_t* tk, const tpj_type_t* tv,
                                         tpj_attn_t* a) {
  a->groups = 1;
  for (int64_t d = 0; d < a->nb; ++d) {
    if (tk->dims[d] == tq->dims[d] && tv->dims[d] == tq->dims[d]) continue;
    bool gqa = d == a->nb - 1 && tk->dims[d] == tv->dims[d] && tk->dims[d] > 0 &&
               tq->dims[d] % tk->dims[d] == 0;
    if (!gqa)
      return TPJ_LOWER_UNSUPPORTED(call, "q, k, v batch/head dims differ at dim %lld "
                        "(got %lld, %lld, %lld; k/v heads must equal or divide q heads)",
                        (long long)d, (long long)tq->dims[d],
                        (long long)tk->dims[d], (long long)tv->dims[d]);
    a->groups = tq->dims[d] / tk->dims[d];
  }
  return NULL;
}

/* x's batch dims of size 1 broadcast to q's (tq), as PyTorch's attention
 * broadcasts k and v (HF Falcon's one shared k/v head without enable_gqa). */
static tpj_status_t tpj_attn_broadcast(tpj_graph_t* g, int64_t nb, const tpj_type_t* tq,
                                       tpj_value_t* x) {
  const tpj_type_t t = *tpj_lower_type(g, *x);
  int64_t dims[TPJ_MAX_RANK];
  bool any = false;
  for (int64_t d = 0; d < t.rank; ++d) {
    dims[d] = t.dims[d];
    if (d < nb && t.dims[d] == 1 && tq->dims[d] != 1) dims[d] = tq->dims[d], any = true;
  }
  return any ? tpj_lower_broadcast_to(g, *x, dims, (size_t)t.rank, x) : NULL;
}

/* q, k, v at qi..qi+2; dropout_p at di; scale at si; with `bcast`, k and v
 * batch dims of size 1 broadcast to q's (forward only: the backward's
 * gradients keep k's and v's shapes). */
static tpj_status_t tpj_attn_load(tpj_graph_t* g, const tpj_lower_call_t* call, size_t qi,
                                  size_t di, size_t si, bool bcast, tpj_attn_t* a) {
  tpj_value_t* vals[3] = {&a->q, &a->k, &a->v};
  tpj_dtype_t acc = TPJ_DTYPE_INVALID;
  for (size_t i = 0; i < 3; ++i) {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, qi + i, vals[i]));
    if (i == 0) acc = tpj_reduce_acc_dtype(tpj_lower_type(g, a->q)->dtype);
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, *vals[i], acc, vals[i]));
  }
  const tpj_type_t tq_c = *tpj_lower_type(g, a->q);
  const tpj_type_t* tq = &tq_c;
  tpj_type_t tk_c = *tpj_lower_type(g, a->k);
  const tpj_type_t* tk = &tk_c;
  tpj_type_t tv_c = *tpj_lower_type(g, a->v);
  const tpj_type_t* tv = &tv_c;
  if (tq->rank < 2 || tk->rank != tq->rank || tv->rank != tq->rank)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: q, k, v ranks (got %d, %d, %d)", call->target,
                      (int)tq->rank, (int)tk->rank, (int)tv->rank);
  a->nb = tq->rank - 2;
  if (bcast) {
    TPJ_RETURN_IF_ERROR(tpj_attn_broadcast(g, a->nb, tq, &a->k));
    TPJ_RETURN_IF_ERROR(tpj_attn_broadcast(g, a->nb, tq, &a->v));
    tk_c = *tpj_lower_type(g, a->k);
    tv_c = *tpj_lower_type(g, a->v);
  }
  TPJ_RETURN_IF_ERROR(tpj_attn_check_heads(call, tq, tk, tv, a));
  if (a->groups > 1) {
    TPJ_RETURN_IF_ERROR(tpj_attn_repeat_heads(g, a->nb, a->groups, a->k, &a->k));
    TPJ_RETURN_IF_ERROR(tpj_attn_repeat_heads(g, a->nb, a->groups, a->v, &a->v));
  }
  double dropout;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, di, &dropout));
  if (dropout != 0.0) return TPJ_LOWER_UNSUPPORTED(call, "dropout_p (got %g)", dropout);
  double dflt = 1.0 / sqrt((double)tq->dims[tq->rank - 1]);
  return tpj_lower_arg_float_or(call, si, dflt, &a->scale);
}

/* Scaled, masked scores [batch..., L, S]; is_causal at ci, attn_mask at mi. */
static tpj_status_t tpj_attn_scores(tpj_graph_t* g, const tpj_lower_call_t* call,
                                    const tpj_attn_t* a, size_t ci, size_t mi,
                                    tpj_value_t* out) {
  tpj_value_t s, ninf;
  bool causal;
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, a->q, a->k, a->nb, a->nb + 1, a->nb + 1, &s));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, s, a->scale, &s));
  const tpj_type_t st_c = *tpj_lower_type(g, s);
  const tpj_type_t* st = &st_c;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, st, -INFINITY, &ninf));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, ci, &causal));
  if (causal) {
    tpj_type_t it = *st;
    it.dtype = TPJ_DTYPE_S64;
    tpj_value_t row, col, keep;
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, a->nb, &row));
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, a->nb + 1, &col));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LE, col, row, &keep));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, keep, s, ninf, &s));
  }
  if (!tpj_lower_arg_is_none(call, mi)) {
    tpj_value_t m;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, mi, &m));
    if (tpj_lower_type(g, m)->dtype == TPJ_DTYPE_PRED) {
      TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, m, st->dims, (size_t)st->rank, &m));
      TPJ_RETURN_IF_ERROR(tpj_build_select(g, m, s, ninf, &s));
    } else {
      TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, m, st, &m));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, s, m, &s));
    }
  }
  *out = s;
  return NULL;
}

/* x where `cond` is false, else the constant c (x's dtype and shape). */
static tpj_status_t tpj_attn_where_const(tpj_graph_t* g, tpj_value_t cond, double c,
                                         tpj_value_t x, tpj_value_t* out) {
  tpj_value_t k;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, x), c, &k));
  return tpj_build_select(g, cond, k, x, out);
}

/* Softmax probabilities over the last dim, and optionally the logsumexp. A
 * fully masked row (max -inf) gives probabilities 0 and logsumexp 0, as the
 * eager CPU kernel does, instead of NaN. */
static tpj_status_t tpj_attn_probs(tpj_graph_t* g, tpj_value_t s, tpj_value_t* out_p,
                                   tpj_value_t* out_lse) {
  const tpj_type_t st_c = *tpj_lower_type(g, s);
  const tpj_type_t* st = &st_c;
  tpj_reduce_dims_t rd = {.rank = st->rank, .count = 1};
  rd.dims[0] = st->rank - 1;
  rd.mask[st->rank - 1] = true;
  tpj_value_t m, ninf, dead, mb, e, sum, sb;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, s, TPJ_REDUCE_KIND_MAX, &rd, &m));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, m), -INFINITY, &ninf));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, m, ninf, &dead));
  TPJ_RETURN_IF_ERROR(tpj_attn_where_const(g, dead, 0.0, m, &m));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, m, &rd, st, &mb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, s, mb, &e));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, e, &e));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, e, TPJ_REDUCE_KIND_ADD, &rd, &sum));
  TPJ_RETURN_IF_ERROR(tpj_attn_where_const(g, dead, 1.0, sum, &sum));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, sum, &rd, st, &sb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, e, sb, out_p));
  if (!out_lse) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, sum, &sum));
  return tpj_build_binary(g, TPJ_BINARY_OP_ADD, sum, m, out_lse);
}

/* (query, key, value, attn_mask?, dropout_p, is_causal, scale?, *, enable_gqa) -> out:
 * the composite op itself, as torch.export keeps it when its decomposition
 * cannot be traced (HF GPT-2's strides). */
TPJ_LOWERING(tpj_lower_reduce_sdpa) {
  tpj_attn_t a;
  tpj_value_t s, p, o;
  TPJ_RETURN_IF_ERROR(tpj_attn_load(g, call, 0, 4, 6, true, &a));
  bool gqa = false;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 7, &gqa));
  if (a.groups > 1 && !gqa) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: query and key have different head counts "
                      "(expected enable_gqa=True for grouped-query attention)", call->target);
  }
  TPJ_RETURN_IF_ERROR(tpj_attn_scores(g, call, &a, 5, 3, &s));
  TPJ_RETURN_IF_ERROR(tpj_attn_probs(g, s, &p, NULL));
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, p, a.v, a.nb, a.nb + 1, a.nb, &o));
  return tpj_reduce_finish(g, o, tpj_lower_out_type(call, 0), &out[0]);
}

/* (query, key, value, dropout_p, is_causal, *, attn_mask?, scale?) -> (out, lse). */
TPJ_LOWERING(tpj_lower_reduce_sdpa_cpu) {
  tpj_attn_t a;
  tpj_value_t s, p, lse, o;
  TPJ_RETURN_IF_ERROR(tpj_attn_load(g, call, 0, 3, 6, false, &a));
  TPJ_RETURN_IF_ERROR(tpj_attn_scores(g, call, &a, 4, 5, &s));
  TPJ_RETURN_IF_ERROR(tpj_attn_probs(g, s, &p, &lse));
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, p, a.v, a.nb, a.nb + 1, a.nb, &o));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, o, tpj_lower_out_type(call, 0), &out[0]));
  return tpj_reduce_finish(g, lse, tpj_lower_out_type(call, 1), &out[1]);
}

/* (grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *,
 * attn_mask?, scale?) -> (grad_query, grad_key, grad_value). */
TPJ_LOWERING(tpj_lower_reduce_sdpa_cpu_backward) {
  tpj_attn_t a;
  tpj_value_t go, s, p, dv, dp, t, dsum, ds, dq, dk;
  TPJ_RETURN_IF_ERROR(tpj_attn_load(g, call, 1, 6, 9, false, &a));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, go, tpj_lower_type(g, a.q)->dtype, &go));
  TPJ_RETURN_IF_ERROR(tpj_attn_scores(g, call, &a, 7, 8, &s));
  TPJ_RETURN_IF_ERROR(tpj_attn_probs(g, s, &p, NULL));
  int64_t nb = a.nb;
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, p, go, nb, nb, nb, &dv));
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, go, a.v, nb, nb + 1, nb + 1, &dp));
  const tpj_type_t pt_c = *tpj_lower_type(g, p);
  const tpj_type_t* pt = &pt_c;
  tpj_reduce_dims_t rd = {.rank = pt->rank, .count = 1};
  rd.dims[0] = pt->rank - 1;
  rd.mask[pt->rank - 1] = true;
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dp, p, &t));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, t, TPJ_REDUCE_KIND_ADD, &rd, &dsum));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, dsum, &rd, pt, &dsum));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, dp, dsum, &ds));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, ds, p, &ds));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, ds, a.scale, &ds));
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, ds, a.k, nb, nb + 1, nb, &dq));
  TPJ_RETURN_IF_ERROR(tpj_attn_dot(g, ds, a.q, nb, nb, nb, &dk));
  TPJ_RETURN_IF_ERROR(tpj_attn_fold_heads(g, nb, a.groups, dk, &dk));
  TPJ_RETURN_IF_ERROR(tpj_attn_fold_heads(g, nb, a.groups, dv, &dv));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, dq, tpj_lower_out_type(call, 0), &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, dk, tpj_lower_out_type(call, 1), &out[1]));
  return tpj_reduce_finish(g, dv, tpj_lower_out_type(call, 2), &out[2]);
}
