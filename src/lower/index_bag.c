/* index_bag.c: _embedding_bag (nn.EmbeddingBag: sum / mean / max over bags
 * of 1-D indices delimited by offsets) and its dense backward. Core ATen keeps
 * both fused; here they are gathers and scatters keyed by offset2bag, with
 * the auxiliary outputs (offset2bag, bag_size, max_indices) laid out as the
 * eager CPU kernel returns them, since the backward consumes them. */
#include <math.h>

#include "lower/lower_reduce.h"
#include "lower/lower_shape.h"

enum { TPJ_BAG_SUM = 0, TPJ_BAG_MEAN = 1, TPJ_BAG_MAX = 2 };

/* Shared inputs of the forward and backward. */
typedef struct tpj_bag_s {
  tpj_value_t idx;   /* s64 [n], wrapped against num_weights */
  tpj_value_t valid; /* pred [n]: index != padding_idx */
  int64_t n, bags, dim, mode;
} tpj_bag_t;

/* s64 [n] splat. */
static tpj_status_t tpj_bag_splat(tpj_graph_t* g, int64_t n, int64_t v, tpj_value_t* out) {
  return tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, v, out);
}

/* idx, valid from indices (arg ii) and padding_idx (arg pi). */
static tpj_status_t tpj_bag_indices(tpj_graph_t* g, const tpj_lower_call_t* call, size_t ii,
                                    size_t pi, int64_t num_weights, tpj_bag_t* b) {
  tpj_value_t raw, pv;
  int64_t pad;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, ii, &raw));
  const tpj_type_t* it = tpj_lower_type(g, raw);
  if (it->rank != 1)
    return TPJ_LOWER_UNSUPPORTED(call, "indices must be 1-D (got rank %d)", (int)it->rank);
  b->n = it->dims[0];
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, raw, TPJ_DTYPE_S64, &raw));
  TPJ_RETURN_IF_ERROR(tpj_shape_wrap_index(g, call, raw, num_weights, 0, false, &b->idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, pi, -1, &pad));
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->n, pad < 0 ? -1 : pad, &pv));
  return tpj_build_compare(g, TPJ_COMPARE_DIR_NE, raw, pv, &b->valid);
}

/* offset2bag[i] = #{b < bags + last : offsets[b] <= i} - 1 (s64 [n]). With
 * include_last_offset (last = 1), indices at or past offsets[bags] get bag
 * `bags`, out of range, which the scatters drop as the eager kernel ignores them. */
static tpj_status_t tpj_bag_offset2bag(tpj_graph_t* g, const tpj_lower_call_t* call, size_t oi,
                                       const tpj_bag_t* b, int64_t last, tpj_value_t* out) {
  tpj_value_t off, pos, le, one;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, oi, &off));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, off, TPJ_DTYPE_S64, &off));
  int64_t nob = tpj_lower_type(g, off)->dims[0];
  int64_t start = 0, limit = b->bags + last < nob ? b->bags + last : nob, stride = 1;
  int64_t nb[2] = {b->n, limit};
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, off, &start, &limit, &stride, 1, &off));
  int64_t d1 = 1;
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, off, nb, 2, &d1, &off));
  tpj_type_t pt = {.dtype = TPJ_DTYPE_S64, .rank = 2, .dims = {b->n, limit}};
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &pt, 0, &pos));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LE, off, pos, &le));
  TPJ_RETURN_IF_ERROR(tpj_build_convert(g, le, TPJ_DTYPE_S64, &le));
  tpj_reduce_dims_t rd = {.rank = 2, .count = 1, .dims = {1}, .mask = {false, true}};
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, le, TPJ_REDUCE_KIND_ADD, &rd, &le));
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->n, 1, &one));
  return tpj_build_binary(g, TPJ_BINARY_OP_SUB, le, one, out);
}

/* valid &= offset2bag < bags (indices past the last offset belong to no bag). */
static tpj_status_t tpj_bag_in_range(tpj_graph_t* g, tpj_bag_t* b, tpj_value_t o2b) {
  tpj_value_t nb, in;
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->n, b->bags, &nb));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, o2b, nb, &in));
  return tpj_build_binary(g, TPJ_BINARY_OP_AND, b->valid, in, &b->valid);
}

/* Number of valid indices per bag (s64 [bags]). */
static tpj_status_t tpj_bag_sizes(tpj_graph_t* g, const tpj_bag_t* b, tpj_value_t o2b,
                                  tpj_value_t* out) {
  tpj_value_t zeros, ones;
  int64_t zero = 0;
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->bags, 0, &zeros));
  TPJ_RETURN_IF_ERROR(tpj_build_convert(g, b->valid, TPJ_DTYPE_S64, &ones));
  return tpj_shape_scatter_adv(g, zeros, &zero, &o2b, 1, ones, TPJ_SHAPE_COMBINE_ADD, out);
}

/* Broadcasts a [n] (or [bags]) vector along the embedding dim: [len, dim]. */
static tpj_status_t tpj_bag_rows(tpj_graph_t* g, tpj_value_t v, int64_t len, int64_t dim,
                                 tpj_value_t* out) {
  int64_t nd[2] = {len, dim}, d0 = 0;
  return tpj_build_broadcast_in_dim(g, v, nd, 2, &d0, out);
}

/* x where cond (a [len] pred) holds, else c. */
static tpj_status_t tpj_bag_mask(tpj_graph_t* g, tpj_value_t cond, tpj_value_t x, double c,
                                 tpj_value_t* out) {
  const tpj_type_t xt = *tpj_lower_type(g, x);
  tpj_value_t fill;
  TPJ_RETURN_IF_ERROR(tpj_bag_rows(g, cond, xt.dims[0], xt.dims[1], &cond));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &xt, c, &fill));
  return tpj_build_select(g, cond, x, fill, out);
}

/* Max mode: per (bag, d) the max over valid rows (0 for an empty bag) and the
 * index of its first occurrence (0 for an empty bag). */
static tpj_status_t tpj_bag_max(tpj_graph_t* g, const tpj_bag_t* b, tpj_value_t rows,
                                tpj_value_t o2b, tpj_value_t size, tpj_value_t* out_max,
                                tpj_value_t* out_arg) {
  const tpj_type_t rt = *tpj_lower_type(g, rows);
  tpj_type_t bt = rt, pt = rt;
  bt.dims[0] = b->bags;
  pt.dtype = TPJ_DTYPE_S64;
  int64_t zero = 0;
  tpj_value_t init, mx, back, hit, pos, big, first, nz, zb;
  TPJ_RETURN_IF_ERROR(tpj_bag_mask(g, b->valid, rows, -INFINITY, &rows));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &bt, -INFINITY, &init));
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, init, &zero, &o2b, 1, rows,
                                            TPJ_SHAPE_COMBINE_MAX, &mx));
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, mx, &zero, &o2b, 1, &back));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, rows, back, &hit));
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &pt, 0, &pos));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &pt, (double)b->n, &big));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, hit, pos, big, &pos));
  bt.dtype = TPJ_DTYPE_S64;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &bt, (double)b->n, &first));
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, first, &zero, &o2b, 1, pos,
                                            TPJ_SHAPE_COMBINE_MIN, &first));
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, b->idx, &zero, &first, 1, out_arg));
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->bags, 0, &zb));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GT, size, zb, &nz));
  TPJ_RETURN_IF_ERROR(tpj_bag_mask(g, nz, *out_arg, 0.0, out_arg));
  return tpj_bag_mask(g, nz, mx, 0.0, out_max);
}

/* Sum / mean over valid rows (per_sample_weights already applied). */
static tpj_status_t tpj_bag_sum(tpj_graph_t* g, const tpj_bag_t* b, tpj_value_t rows,
                                tpj_value_t o2b, tpj_value_t size, tpj_value_t* out) {
  tpj_type_t bt = *tpj_lower_type(g, rows);
  bt.dims[0] = b->bags;
  int64_t zero = 0;
  tpj_value_t acc, cnt, one;
  TPJ_RETURN_IF_ERROR(tpj_bag_mask(g, b->valid, rows, 0.0, &rows));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &bt, 0.0, &acc));
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, acc, &zero, &o2b, 1, rows,
                                            TPJ_SHAPE_COMBINE_ADD, out));
  if (b->mode != TPJ_BAG_MEAN) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b->bags, 1, &one));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MAX, size, one, &cnt));
  TPJ_RETURN_IF_ERROR(tpj_build_convert(g, cnt, bt.dtype, &cnt));
  TPJ_RETURN_IF_ERROR(tpj_bag_rows(g, cnt, b->bags, b->dim, &cnt));
  return tpj_build_binary(g, TPJ_BINARY_OP_DIV, *out, cnt, out);
}

/* Mode, bags and checks shared by forward (include_last_offset at li) and
 * backward (bag count from grad). */
static tpj_status_t tpj_bag_mode(const tpj_lower_call_t* call, size_t mi, size_t si,
                                 size_t wi, tpj_bag_t* b) {
  bool scale;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, mi, &b->mode));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, si, &scale));
  if (b->mode < TPJ_BAG_SUM || b->mode > TPJ_BAG_MAX)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: mode must be 0, 1 or 2 (got %lld)", call->target,
                      (long long)b->mode);
  if (scale) return TPJ_LOWER_UNSUPPORTED(call, "scale_grad_by_freq (got true)");
  if (!tpj_lower_arg_is_none(call, wi) && b->mode != TPJ_BAG_SUM)
    return TPJ_LOWER_UNSUPPORTED(call, "per_sample_weights with mode %lld", (long long)b->mode);
  return NULL;
}

/* (weight, indices, offsets, scale_grad_by_freq, mode, sparse, per_sample_weights?,
 * include_last_offset, padding_idx) -> (out, offset2bag, bag_size, max_indices). */
TPJ_LOWERING(tpj_lower_shape_embedding_bag) {
  tpj_bag_t b;
  tpj_value_t w, rows, o2b, size, res, arg = TPJ_VALUE_NONE;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &w));
  const tpj_type_t wt = *tpj_lower_type(g, w);
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (wt.rank != 2 || ot->rank != 2)
    return TPJ_LOWER_UNSUPPORTED(call, "weight must be 2-D (got rank %d)", (int)wt.rank);
  TPJ_RETURN_IF_ERROR(tpj_bag_mode(call, 4, 3, 6, &b));
  b.bags = ot->dims[0];
  b.dim = wt.dims[1];
  TPJ_RETURN_IF_ERROR(tpj_bag_indices(g, call, 1, 8, wt.dims[0], &b));
  int64_t zero = 0;
  bool last;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 7, &last));
  TPJ_RETURN_IF_ERROR(tpj_bag_offset2bag(g, call, 2, &b, last ? 1 : 0, &o2b));
  TPJ_RETURN_IF_ERROR(tpj_bag_sizes(g, &b, o2b, &size));
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, w, &zero, &b.idx, 1, &rows));
  if (!tpj_lower_arg_is_none(call, 6)) {
    tpj_value_t psw;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 6, &psw));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, psw, wt.dtype, &psw));
    TPJ_RETURN_IF_ERROR(tpj_bag_rows(g, psw, b.n, b.dim, &psw));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, rows, psw, &rows));
  }
  if (b.mode == TPJ_BAG_MAX)
    TPJ_RETURN_IF_ERROR(tpj_bag_max(g, &b, rows, o2b, size, &res, &arg));
  else
    TPJ_RETURN_IF_ERROR(tpj_bag_sum(g, &b, rows, o2b, size, &res));
  if (b.mode == TPJ_BAG_MEAN) arg = size;
  if (b.mode == TPJ_BAG_SUM) {
    TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b.bags, 0, &size));
    arg = size;
  }
  tpj_value_t vals[4] = {res, o2b, size, arg};
  for (size_t i = 0; i < 4; ++i) {
    const tpj_type_t* t = tpj_lower_out_type(call, i);
    /* the meta kernel returns max_indices with 0 elements outside max mode */
    if (tpj_type_numel(t) == 0)
      TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &out[i]));
    else
      TPJ_RETURN_IF_ERROR(tpj_lower_coerce(g, vals[i], t, &out[i]));
  }
  return NULL;
}

/* (grad, indices, offsets, offset2bag, bag_size, maximum_indices, num_weights,
 * scale_grad_by_freq, mode, sparse, per_sample_weights?, padding_idx) -> grad_weight. */
TPJ_LOWERING(tpj_lower_shape_embedding_bag_backward) {
  tpj_bag_t b;
  tpj_value_t gr, o2b, size, acc, upd;
  int64_t nw, zero = 0;
  bool sparse;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &gr));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 6, &nw));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 9, &sparse));
  if (sparse) return TPJ_LOWER_UNSUPPORTED(call, "sparse gradients (got sparse=true)");
  TPJ_RETURN_IF_ERROR(tpj_bag_mode(call, 8, 7, 10, &b));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t gt = *tpj_lower_type(g, gr);
  if (gt.rank != 2 || ot->rank != 2)
    return TPJ_LOWER_UNSUPPORTED(call, "grad must be 2-D (got rank %d)", (int)gt.rank);
  b.bags = gt.dims[0];
  b.dim = gt.dims[1];
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, gr, ot->dtype, &gr));
  TPJ_RETURN_IF_ERROR(tpj_bag_indices(g, call, 1, 11, nw, &b));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 3, &o2b));
  if (tpj_type_numel(tpj_lower_type(g, o2b)) != b.n) /* eager CPU sum fast path: empty */
    TPJ_RETURN_IF_ERROR(tpj_bag_offset2bag(g, call, 2, &b, 1, &o2b));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, o2b, TPJ_DTYPE_S64, &o2b));
  TPJ_RETURN_IF_ERROR(tpj_bag_in_range(g, &b, o2b));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, ot, 0.0, &acc));
  if (b.mode == TPJ_BAG_MAX) {
    tpj_value_t am, col, keep, zb, ids[2];
    int64_t adv[2] = {0, 1};
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 5, &am));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, am, TPJ_DTYPE_S64, &ids[0]));
    tpj_type_t ct = gt;
    ct.dtype = TPJ_DTYPE_S64;
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &ct, 1, &col));
    ids[1] = col;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 4, &size));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, size, TPJ_DTYPE_S64, &size));
    TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b.bags, 0, &zb));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GT, size, zb, &keep));
    TPJ_RETURN_IF_ERROR(tpj_bag_mask(g, keep, gr, 0.0, &gr));
    return tpj_shape_scatter_adv(g, acc, adv, ids, 2, gr, TPJ_SHAPE_COMBINE_ADD, &out[0]);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, gr, &zero, &o2b, 1, &upd));
  if (b.mode == TPJ_BAG_MEAN) {
    tpj_value_t cnt, one;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 4, &size));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, size, TPJ_DTYPE_S64, &size));
    TPJ_RETURN_IF_ERROR(tpj_bag_splat(g, b.bags, 1, &one));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MAX, size, one, &cnt));
    TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, cnt, &zero, &o2b, 1, &cnt));
    TPJ_RETURN_IF_ERROR(tpj_build_convert(g, cnt, ot->dtype, &cnt));
    TPJ_RETURN_IF_ERROR(tpj_bag_rows(g, cnt, b.n, b.dim, &cnt));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, upd, cnt, &upd));
  } else if (!tpj_lower_arg_is_none(call, 10)) {
    tpj_value_t psw;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 10, &psw));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, psw, ot->dtype, &psw));
    TPJ_RETURN_IF_ERROR(tpj_bag_rows(g, psw, b.n, b.dim, &psw));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, upd, psw, &upd));
  }
  TPJ_RETURN_IF_ERROR(tpj_bag_mask(g, b.valid, upd, 0.0, &upd));
  return tpj_shape_scatter_adv(g, acc, &zero, &b.idx, 1, upd, TPJ_SHAPE_COMBINE_ADD, &out[0]);
}
