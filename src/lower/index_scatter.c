/* index_scatter.c: torch.gather / scatter / scatter_add / scatter_reduce,
 * embedding and its dense backward, diagonal(_scatter), as_strided and unfold.
 * Each is expressed as one point-wise gather or scatter of full coordinates
 * (iota for every dim but the indexed one), built on index_core.c. */
#include <math.h>
#include <string.h>

#include "lower/lower_shape.h"

/* Coordinates for gather/scatter along dim: coords[d] has idx's shape and is
 * idx (wrapped by x's size) for d == dim, else an iota along d. */
static tpj_status_t tpj_shape_coords(tpj_graph_t* g, const tpj_lower_call_t* call,
                                     const tpj_type_t* xt, int64_t dim, tpj_value_t idx,
                                     tpj_value_t* coords) {
  const tpj_type_t* it = tpj_lower_type(g, idx);
  if (it->rank != xt->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: index must have the rank of self (got %d, "
                      "expected %d)", call->target, it->rank, xt->rank);
  }
  tpj_type_t shape = *it;
  for (int32_t d = 0; d < xt->rank; ++d) {
    if (d == dim) {
      TPJ_RETURN_IF_ERROR(tpj_shape_wrap_index(g, call, idx, xt->dims[d], d, false, &coords[d]));
    } else {
      TPJ_RETURN_IF_ERROR(tpj_shape_iota_s64(g, &shape, d, &coords[d]));
    }
  }
  return NULL;
}

/* (self, dim, index) with 0-D self/index made 1-D. */
static tpj_status_t tpj_shape_read_sdi(tpj_graph_t* g, const tpj_lower_call_t* call,
                                       tpj_value_t* x, int64_t* dim, tpj_value_t* idx) {
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, idx));
  int64_t one = 1;
  if (tpj_lower_type(g, *x)->rank == 0) TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *x, &one, 1, x));
  if (tpj_lower_type(g, *idx)->rank == 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *idx, &one, 1, idx));
  }
  return tpj_lower_norm_dim(call, *dim, tpj_lower_type(g, *x)->rank, dim);
}

TPJ_LOWERING(tpj_lower_shape_gather) {
  tpj_value_t x, idx, res, coords[TPJ_MAX_RANK];
  int64_t dim, all[TPJ_MAX_RANK];
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_shape_read_sdi(g, call, &x, &dim, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_coords(g, call, xt, dim, idx, coords));
  for (int32_t d = 0; d < xt->rank; ++d) all[d] = d;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, all, coords, (size_t)xt->rank, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* Turns argument i (src tensor, larger than idx allowed, or a scalar value)
 * into updates of idx's shape and x's dtype. */
static tpj_status_t tpj_shape_updates(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                      tpj_value_t x, tpj_value_t idx, tpj_value_t* out) {
  tpj_type_t ut = *tpj_lower_type(g, idx);
  ut.dtype = tpj_lower_type(g, x)->dtype;
  if (call->args[i].kind != TPJ_ARG_KIND_TENSOR) return tpj_lower_arg_as(g, call, i, &ut, out);
  tpj_value_t src;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, i, &src));
  const tpj_type_t* st = tpj_lower_type(g, src);
  int64_t one = 1;
  if (st->rank == 0) TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, &one, 1, &src));
  st = tpj_lower_type(g, src);
  int64_t start[TPJ_MAX_RANK] = {0}, stride[TPJ_MAX_RANK];
  bool whole = st->rank == ut.rank;
  for (int32_t d = 0; whole && d < ut.rank; ++d) {
    stride[d] = 1;
    if (st->dims[d] < ut.dims[d]) whole = false;
  }
  if (!whole) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: src must be at least as large as index in every "
                      "dim (rank %d vs %d)", call->target, st->rank, ut.rank);
  }
  if (memcmp(st->dims, ut.dims, sizeof(int64_t) * (size_t)ut.rank) != 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_slice(g, src, start, ut.dims, stride, (size_t)ut.rank, &src));
  }
  return tpj_lower_convert(g, src, ut.dtype, out);
}

/* Scatters argument `src_arg` into self along dim with `combine`. */
static tpj_status_t tpj_shape_scatter_common(tpj_graph_t* g, const tpj_lower_call_t* call,
                                             size_t src_arg, tpj_shape_combine_t combine,
                                             tpj_value_t* out) {
  tpj_value_t x, idx, upd, res, coords[TPJ_MAX_RANK];
  int64_t dim, all[TPJ_MAX_RANK];
  TPJ_RETURN_IF_ERROR(tpj_shape_read_sdi(g, call, &x, &dim, &idx));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_updates(g, call, src_arg, x, idx, &upd));
  if (tpj_type_numel(tpj_lower_type(g, idx)) == 0 || tpj_type_numel(xt) == 0) {
    return tpj_shape_reshape_to_out(g, call, x, 0, out);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_coords(g, call, xt, dim, idx, coords));
  for (int32_t d = 0; d < xt->rank; ++d) all[d] = d;
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, x, all, coords, (size_t)xt->rank, upd, combine,
                                            &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, out);
}

TPJ_LOWERING(tpj_lower_shape_scatter_src) {
  return tpj_shape_scatter_common(g, call, 3, TPJ_SHAPE_COMBINE_REPLACE, &out[0]);
}
TPJ_LOWERING(tpj_lower_shape_scatter_value) {
  return tpj_shape_scatter_common(g, call, 3, TPJ_SHAPE_COMBINE_REPLACE, &out[0]);
}
TPJ_LOWERING(tpj_lower_shape_scatter_add) {
  return tpj_shape_scatter_common(g, call, 3, TPJ_SHAPE_COMBINE_ADD, &out[0]);
}

/* scatter.reduce / scatter.value_reduce: reduce is "add" or "multiply". */
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_src) {
  const char* r;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_string(call, 4, &r));
  if (r && strcmp(r, "add") == 0) return tpj_shape_scatter_common(g, call, 3, TPJ_SHAPE_COMBINE_ADD, &out[0]);
  if (r && strcmp(r, "multiply") == 0) {
    return tpj_shape_scatter_common(g, call, 3, TPJ_SHAPE_COMBINE_MUL, &out[0]);
  }
  return TPJ_STATUS(INVALID_ARGUMENT, "%s: reduce must be 'add' or 'multiply' (got '%s')",
                    call->target, r ? r : "None");
}
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_value) {
  return tpj_lower_shape_scatter_reduce_src(g, call, out);
}

/* Identity of a scatter_reduce kind for dtype (used when include_self=False). */
static tpj_status_t tpj_shape_identity(tpj_graph_t* g, const tpj_type_t* t,
                                       tpj_shape_combine_t c, tpj_value_t* out) {
  double v = c == TPJ_SHAPE_COMBINE_MUL ? 1.0 : 0.0;
  if (c == TPJ_SHAPE_COMBINE_MAX || c == TPJ_SHAPE_COMBINE_MIN) {
    bool mx = c == TPJ_SHAPE_COMBINE_MAX;
    if (tpj_dtype_is_float(t->dtype)) {
      v = mx ? -INFINITY : INFINITY;
    } else if (t->dtype == TPJ_DTYPE_PRED) {
      v = mx ? 0.0 : 1.0;
    } else if (tpj_dtype_is_unsigned_int(t->dtype)) {
      if (mx) v = 0.0;
      else return tpj_build_splat_int(g, t->dtype, t->dims, (size_t)t->rank, -1, out);
    } else {
      int bits = (int)tpj_dtype_size(t->dtype) * 8;
      int64_t hi = (int64_t)((((uint64_t)1) << (bits - 1)) - 1);
      return tpj_build_splat_int(g, t->dtype, t->dims, (size_t)t->rank, mx ? -hi - 1 : hi, out);
    }
  }
  return tpj_build_splat(g, t->dtype, t->dims, (size_t)t->rank, v, out);
}

/* a / b for the mean: true division for floats, floor division for ints. */
static tpj_status_t tpj_shape_mean_div(tpj_graph_t* g, tpj_value_t a, tpj_value_t b,
                                       tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, a);
  if (tpj_dtype_is_float(t->dtype) || !tpj_dtype_is_signed_int(t->dtype)) {
    return tpj_build_binary(g, TPJ_BINARY_OP_DIV, a, b, out);
  }
  tpj_value_t q, r, zero, one, neg, qm1;
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, a, b, &q));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_REM, a, b, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 1.0, &one));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, r, zero, &neg));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, q, one, &qm1));
  return tpj_build_select(g, neg, qm1, q, out); /* b > 0 here */
}

/* scatter_reduce.two(self, dim, index, src, reduce, include_self). */
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_two) {
  const char* r;
  bool self_in;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_string(call, 4, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 5, true, &self_in));
  static const char* const names[] = {"sum", "prod", "amax", "amin", "mean"};
  static const tpj_shape_combine_t kinds[] = {TPJ_SHAPE_COMBINE_ADD, TPJ_SHAPE_COMBINE_MUL,
      TPJ_SHAPE_COMBINE_MAX, TPJ_SHAPE_COMBINE_MIN, TPJ_SHAPE_COMBINE_ADD};
  int kind = -1;
  for (int i = 0; i < 5; ++i)
    if (r && strcmp(r, names[i]) == 0) kind = i;
  if (kind < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: reduce must be sum, prod, mean, amax or amin "
                      "(got '%s')", call->target, r ? r : "None");
  }
  bool mean = kind == 4;
  if (self_in && !mean) return tpj_shape_scatter_common(g, call, 3, kinds[kind], &out[0]);
  tpj_value_t x, idx, upd, coords[TPJ_MAX_RANK], cnt0, ones, cnt, zero, has, ident, base, res;
  int64_t dim, all[TPJ_MAX_RANK];
  TPJ_RETURN_IF_ERROR(tpj_shape_read_sdi(g, call, &x, &dim, &idx));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_updates(g, call, 3, x, idx, &upd));
  if (tpj_type_numel(tpj_lower_type(g, idx)) == 0 || tpj_type_numel(xt) == 0) {
    return tpj_shape_reshape_to_out(g, call, x, 0, &out[0]);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_coords(g, call, xt, dim, idx, coords));
  for (int32_t d = 0; d < xt->rank; ++d) all[d] = d;
  size_t k = (size_t)xt->rank;
  /* How many sources land on each element of self. */
  const tpj_type_t* ut = tpj_lower_type(g, upd);
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, xt->dims, k, 0, &cnt0));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, ut->dims, k, 1, &ones));
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, cnt0, all, coords, k, ones,
                                            TPJ_SHAPE_COMBINE_ADD, &cnt));
  base = x;
  if (!self_in) {
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GT, cnt, cnt0, &has));
    TPJ_RETURN_IF_ERROR(tpj_shape_identity(g, xt, kinds[kind], &ident));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, has, ident, x, &base));
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, base, all, coords, k, upd, kinds[kind], &res));
  if (mean) {
    tpj_value_t denom, one;
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, xt->dims, k, self_in ? 1 : 0,
                                            &zero));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, cnt, zero, &denom));
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, xt->dims, k, 1, &one));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MAX, denom, one, &denom));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, denom, xt->dtype, &denom));
    TPJ_RETURN_IF_ERROR(tpj_shape_mean_div(g, res, denom, &res));
  }
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* ------------------------------------------------------------ embedding -- */

/* embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse). */
TPJ_LOWERING(tpj_lower_shape_embedding) {
  tpj_value_t w, idx, res;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &w));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &idx));
  const tpj_type_t* wt = tpj_lower_type(g, w);
  if (wt->rank != 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: weight must be 2-D (got rank %d)", call->target,
                      wt->rank);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_wrap_index(g, call, idx, wt->dims[0], 0, false, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  int64_t zero = 0;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, w, &zero, &idx, 1, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* embedding_dense_backward(grad, indices, num_weights, padding_idx, scale). */
TPJ_LOWERING(tpj_lower_shape_embedding_dense_backward) {
  tpj_value_t gr, idx, zeros, res;
  int64_t nw, pad;
  bool scale;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &gr));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &nw));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 3, -1, &pad));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 4, false, &scale));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* gt = tpj_lower_type(g, gr);
  int64_t n = tpj_type_numel(tpj_lower_type(g, idx));
  int64_t dcol = ot->rank == 2 ? ot->dims[1] : 0;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, ot, 0.0, &zeros));
  if (n == 0 || tpj_type_numel(ot) == 0) {
    out[0] = zeros;
    return NULL;
  }
  if (tpj_type_numel(gt) != n * dcol) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: grad must have indices.numel() * %lld elements "
                      "(got %lld)", call->target, (long long)dcol, (long long)tpj_type_numel(gt));
  }
  int64_t nd[2] = {n, dcol};
  tpj_value_t mask = TPJ_VALUE_NONE;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, idx, &n, 1, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_wrap_index(g, call, idx, nw, 0, true, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, gr, nd, 2, &gr));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, gr, ot->dtype, &gr));
  if (pad >= 0) {
    tpj_value_t pv, zg;
    int64_t bd = 0;
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, pad, &pv));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, idx, pv, &mask));
    TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, mask, nd, 2, &bd, &mask));
    TPJ_RETURN_IF_ERROR(tpj_build_splat(g, ot->dtype, nd, 2, 0.0, &zg));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, mask, gr, zg, &gr));
  }
  int64_t zero = 0;
  if (scale) {
    tpj_value_t c0, ones, cnt, per, bper;
    int64_t bd = 0;
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &nw, 1, 0, &c0));
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, 1, &ones));
    TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, c0, &zero, &idx, 1, ones,
                                              TPJ_SHAPE_COMBINE_ADD, &cnt));
    TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, cnt, &zero, &idx, 1, &per));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, per, ot->dtype, &per));
    TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, per, nd, 2, &bd, &bper));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, gr, bper, &gr));
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, zeros, &zero, &idx, 1, gr,
                                            TPJ_SHAPE_COMBINE_ADD, &res));
  out[0] = res;
  return NULL;
}

/* ------------------------------------------------------------- take, put -- */

/* Flattens x and wraps index by x's element count (take/put allow negatives). */
static tpj_status_t tpj_shape_flat_index(tpj_graph_t* g, const tpj_lower_call_t* call,
                                         tpj_value_t* x, tpj_value_t* idx) {
  int64_t numel = tpj_type_numel(tpj_lower_type(g, *x));
  int64_t n = tpj_type_numel(tpj_lower_type(g, *idx));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *x, &numel, 1, x));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *idx, &n, 1, idx));
  return tpj_shape_wrap_index(g, call, *idx, numel, -1, true, idx);
}

/* take(self, index): self.flatten()[index]. */
TPJ_LOWERING(tpj_lower_shape_take) {
  tpj_value_t x, idx, res;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_flat_index(g, call, &x, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  int64_t zero = 0;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, &zero, &idx, 1, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* put(self, index, source, accumulate): flat scatter of source into self. */
TPJ_LOWERING(tpj_lower_shape_put) {
  tpj_value_t x, idx, src, res;
  bool acc;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &src));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 3, false, &acc));
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t n = tpj_type_numel(tpj_lower_type(g, idx));
  if (tpj_type_numel(tpj_lower_type(g, src)) != n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: source and index must have the same number of "
                      "elements (got %lld and %lld)", call->target,
                      (long long)tpj_type_numel(tpj_lower_type(g, src)), (long long)n);
  }
  if (n == 0 || tpj_type_numel(t) == 0) return tpj_shape_reshape_to_out(g, call, x, 0, &out[0]);
  TPJ_RETURN_IF_ERROR(tpj_shape_flat_index(g, call, &x, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, &n, 1, &src));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, src, t->dtype, &src));
  int64_t zero = 0;
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, x, &zero, &idx, 1, src,
                                            acc ? TPJ_SHAPE_COMBINE_ADD
                                                : TPJ_SHAPE_COMBINE_REPLACE, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* index_reduce on rank-0 self and source (one index): the same reduce on
 * [1]-shaped views, reshaped back to rank 0. */
static tpj_status_t index_reduce_scalar(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t idx, tpj_value_t src, tpj_value_t* out) {
  tpj_value_t x, res;
  int64_t one = 1;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, &one, 1, &x));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, &one, 1, &src));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, idx, &one, 1, &idx));
  tpj_arg_t args[6];
  for (size_t i = 0; i < 6; ++i) args[i] = call->args[i];
  args[0].tensor = x;
  args[1].i = 0;
  args[2].kind = TPJ_ARG_KIND_TENSOR;
  args[2].tensor = idx;
  args[3].tensor = src;
  tpj_lower_call_t inner = *call;
  inner.args = args;
  TPJ_RETURN_IF_ERROR(tpj_lower_shape_scatter_reduce_two(g, &inner, &res));
  return tpj_build_reshape(g, res, NULL, 0, &out[0]);
}

/* index_reduce(self, dim, index, source, reduce, include_self): scatter_reduce
 * with index broadcast along `dim` over source's shape. */
TPJ_LOWERING(tpj_lower_shape_index_reduce) {
  tpj_value_t idx, src;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 3, &src));
  const tpj_type_t* st = tpj_lower_type(g, src);
  const tpj_type_t* it = tpj_lower_type(g, idx);
  if (st->rank == 0 && it->rank <= 1 && tpj_type_numel(it) == 1 && call->num_args == 6 &&
      tpj_lower_type(g, call->args[0].tensor)->rank == 0) {
    return index_reduce_scalar(g, call, idx, src, out);
  }
  if (st->rank == 0 || it->rank > 1 || call->num_args != 6) {
    return TPJ_LOWER_UNSUPPORTED(call, "only 1-D index with source of rank >= 1 is supported "
                                 "(got index rank %d, source rank %d)", it->rank, st->rank);
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, st->rank, &dim));
  if (tpj_type_numel(it) != st->dims[dim]) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: index has %lld elements, source dim %lld has %lld",
                      call->target, (long long)tpj_type_numel(it), (long long)dim,
                      (long long)st->dims[dim]);
  }
  int64_t n = st->dims[dim];
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, idx, &n, 1, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, idx, st->dims, (size_t)st->rank, &dim,
                                                 &idx));
  tpj_arg_t args[6];
  for (size_t i = 0; i < 6; ++i) args[i] = call->args[i];
  args[2].kind = TPJ_ARG_KIND_TENSOR;
  args[2].tensor = idx;
  tpj_lower_call_t inner = *call;
  inner.args = args;
  return tpj_lower_shape_scatter_reduce_two(g, &inner, out);
}
