/* index_core.c: PyTorch advanced indexing on StableHLO gather/scatter. The two
 * primitives tpj_shape_gather_adv / tpj_shape_scatter_adv (indexed dims moved
 * to the front, one s64 index tensor per indexed dim) carry index.Tensor,
 * index_put, index_select, index_add, embedding and embedding_dense_backward,
 * and the gather/scatter family in index_scatter.c. */
#include <string.h>

#include "lower/lower_shape.h"

/* ------------------------------------------------------------- layout -- */

tpj_status_t tpj_shape_move_block(tpj_graph_t* g, tpj_value_t v, int64_t n, int64_t p,
                                  tpj_value_t* out) {
  int64_t rank = tpj_lower_type(g, v)->rank;
  if (p == 0 || n == 0 || n == rank) {
    *out = v;
    return NULL;
  }
  int64_t perm[TPJ_MAX_RANK];
  for (int64_t j = 0; j < rank; ++j) perm[j] = j < p ? n + j : (j < p + n ? j - p : j);
  return tpj_build_transpose(g, v, perm, (size_t)rank, out);
}

tpj_status_t tpj_shape_move_block_front(tpj_graph_t* g, tpj_value_t v, int64_t n,
                                        int64_t p, tpj_value_t* out) {
  int64_t rank = tpj_lower_type(g, v)->rank;
  if (p == 0 || n == 0 || n == rank) {
    *out = v;
    return NULL;
  }
  int64_t perm[TPJ_MAX_RANK];
  for (int64_t i = 0; i < rank; ++i) perm[i] = i < n ? p + i : (i < n + p ? i - n : i);
  return tpj_build_transpose(g, v, perm, (size_t)rank, out);
}

/* The range check of tpj_shape_wrap_index. */
static tpj_status_t tpj_shape_check_index(tpj_graph_t* g, const tpj_lower_call_t* call,
                                          tpj_value_t idx, int64_t size, int64_t dim,
                                          bool negative_ok) {
  if (strncmp(call->target, "aten::_unsafe_", 14) == 0) return NULL;
  int64_t lo = negative_ok ? -size : 0;
  if (dim < 0) {
    return tpj_lower_check_range(g, idx, lo, size, NULL, "%s: index {} is out of bounds for "
                                 "a tensor of %lld elements", call->target, (long long)size);
  }
  return tpj_lower_check_range(g, idx, lo, size, NULL, "%s: index {} is out of bounds for "
                               "dimension %lld with size %lld", call->target, (long long)dim,
                               (long long)size);
}

tpj_status_t tpj_shape_wrap_index(tpj_graph_t* g, const tpj_lower_call_t* call,
                                  tpj_value_t idx, int64_t size, int64_t dim,
                                  bool negative_ok, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, idx);
  if (t->dtype == TPJ_DTYPE_PRED || t->dtype == TPJ_DTYPE_U8) {
    return TPJ_LOWER_UNSUPPORTED(call, "boolean mask indices give a data-dependent shape, "
                                 "which static StableHLO cannot express (got %s index)",
                                 tpj_dtype_name(t->dtype));
  }
  if (!tpj_dtype_is_signed_int(t->dtype) && !tpj_dtype_is_unsigned_int(t->dtype)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: indices must be an integer tensor (got %s)",
                      call->target, tpj_dtype_name(t->dtype));
  }
  tpj_value_t i64, zero, sz, neg, wrapped;
  TPJ_RETURN_IF_ERROR(tpj_shape_check_index(g, call, idx, size, dim, negative_ok));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, idx, TPJ_DTYPE_S64, &i64));
  if (tpj_dtype_is_unsigned_int(t->dtype)) {
    *out = i64;
    return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, 0,
                                          &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, size,
                                          &sz));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, i64, zero, &neg));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, i64, sz, &wrapped));
  return tpj_build_select(g, neg, wrapped, i64, out);
}

/* Transposes x so adv_dims come first; fills perm (rank entries). */
static tpj_status_t tpj_shape_adv_front(tpj_graph_t* g, tpj_value_t x, const int64_t* adv,
                                        size_t k, int64_t* perm, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  bool is_adv[TPJ_MAX_RANK] = {false};
  size_t n = 0;
  for (size_t j = 0; j < k; ++j) {
    perm[n++] = adv[j];
    is_adv[adv[j]] = true;
  }
  bool identity = true;
  for (int32_t d = 0; d < t->rank; ++d)
    if (!is_adv[d]) perm[n++] = d;
  for (int32_t d = 0; d < t->rank; ++d) identity = identity && perm[d] == d;
  if (identity) {
    *out = x;
    return NULL;
  }
  return tpj_build_transpose(g, x, perm, (size_t)t->rank, out);
}

/* Stacks k index tensors of shape B into B + [k]. */
static tpj_status_t tpj_shape_stack_idx(tpj_graph_t* g, const tpj_value_t* idx, size_t k,
                                        tpj_value_t* out) {
  const tpj_type_t* bt = tpj_lower_type(g, idx[0]);
  int64_t dims[TPJ_MAX_RANK + 1];
  for (int32_t i = 0; i < bt->rank; ++i) dims[i] = bt->dims[i];
  dims[bt->rank] = 1;
  tpj_value_t cols[TPJ_MAX_RANK];
  for (size_t j = 0; j < k; ++j) {
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, idx[j], dims, (size_t)bt->rank + 1, &cols[j]));
  }
  if (k == 1) {
    *out = cols[0];
    return NULL;
  }
  return tpj_build_concatenate(g, cols, k, bt->rank, out);
}

tpj_status_t tpj_shape_gather_adv(tpj_graph_t* g, tpj_value_t x, const int64_t* adv_dims,
                                  const tpj_value_t* idx, size_t k, tpj_value_t* out) {
  if (k == 0) {
    *out = x;
    return NULL;
  }
  int64_t perm[TPJ_MAX_RANK];
  tpj_value_t xt, stacked;
  TPJ_RETURN_IF_ERROR(tpj_shape_adv_front(g, x, adv_dims, k, perm, &xt));
  TPJ_RETURN_IF_ERROR(tpj_shape_stack_idx(g, idx, k, &stacked));
  const tpj_type_t* t = tpj_lower_type(g, xt);
  int64_t nb = tpj_lower_type(g, idx[0])->rank;
  size_t nrest = (size_t)t->rank - k;
  int64_t offset[TPJ_MAX_RANK], collapsed[TPJ_MAX_RANK], sizes[TPJ_MAX_RANK];
  for (size_t j = 0; j < k; ++j) {
    collapsed[j] = (int64_t)j;
    sizes[j] = 1;
  }
  for (size_t r = 0; r < nrest; ++r) {
    sizes[k + r] = t->dims[k + r];
    offset[r] = nb + (int64_t)r;
  }
  tpj_gather_dims_t gd = {0};
  gd.offset_dims = offset;
  gd.num_offset_dims = nrest;
  gd.collapsed_slice_dims = collapsed;
  gd.num_collapsed_slice_dims = k;
  gd.start_index_map = collapsed;
  gd.num_start_index_map = k;
  gd.index_vector_dim = nb;
  gd.slice_sizes = sizes;
  gd.num_slice_sizes = (size_t)t->rank;
  return tpj_build_gather(g, xt, stacked, &gd, out);
}

/* Region (current, update) -> combined, for scatter. */
static tpj_status_t tpj_shape_combine_body(tpj_graph_t* g, tpj_dtype_t dtype,
                                           tpj_shape_combine_t combine, int32_t* out) {
  tpj_type_t st[2] = {tpj_type_scalar(dtype), tpj_type_scalar(dtype)};
  tpj_value_t a[2], r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, st, 2, a));
  bool pred = dtype == TPJ_DTYPE_PRED;
  tpj_binary_op_t op = TPJ_BINARY_OP_ADD;
  switch (combine) {
    case TPJ_SHAPE_COMBINE_ADD: op = pred ? TPJ_BINARY_OP_OR : TPJ_BINARY_OP_ADD; break;
    case TPJ_SHAPE_COMBINE_MUL: op = pred ? TPJ_BINARY_OP_AND : TPJ_BINARY_OP_MUL; break;
    case TPJ_SHAPE_COMBINE_MAX: op = pred ? TPJ_BINARY_OP_OR : TPJ_BINARY_OP_MAX; break;
    case TPJ_SHAPE_COMBINE_MIN: op = pred ? TPJ_BINARY_OP_AND : TPJ_BINARY_OP_MIN; break;
    case TPJ_SHAPE_COMBINE_REPLACE: break;
  }
  if (combine == TPJ_SHAPE_COMBINE_REPLACE) {
    r = a[1];
  } else {
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, op, a[0], a[1], &r));
  }
  return tpj_graph_region_end(g, &r, 1, out);
}

tpj_status_t tpj_shape_scatter_adv(tpj_graph_t* g, tpj_value_t x, const int64_t* adv_dims,
                                   const tpj_value_t* idx, size_t k, tpj_value_t updates,
                                   tpj_shape_combine_t combine, tpj_value_t* out) {
  if (k == 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "scatter: no indexed dims");
  }
  int64_t perm[TPJ_MAX_RANK], inv[TPJ_MAX_RANK];
  tpj_value_t xt, stacked, res;
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_shape_adv_front(g, x, adv_dims, k, perm, &xt));
  TPJ_RETURN_IF_ERROR(tpj_shape_stack_idx(g, idx, k, &stacked));
  const tpj_type_t* t = tpj_lower_type(g, xt);
  int64_t nb = tpj_lower_type(g, idx[0])->rank;
  size_t nrest = (size_t)t->rank - k;
  int64_t window[TPJ_MAX_RANK], inserted[TPJ_MAX_RANK];
  for (size_t j = 0; j < k; ++j) inserted[j] = (int64_t)j;
  for (size_t r = 0; r < nrest; ++r) window[r] = nb + (int64_t)r;
  tpj_scatter_dims_t sd = {0};
  sd.update_window_dims = window;
  sd.num_update_window_dims = nrest;
  sd.inserted_window_dims = inserted;
  sd.num_inserted_window_dims = k;
  sd.scatter_dims_to_operand_dims = inserted;
  sd.num_scatter_dims_to_operand_dims = k;
  sd.index_vector_dim = nb;
  TPJ_RETURN_IF_ERROR(tpj_shape_combine_body(g, t->dtype, combine, &body));
  TPJ_RETURN_IF_ERROR(tpj_build_scatter(g, xt, stacked, updates, &sd, body, &res));
  if (res == TPJ_VALUE_NONE || xt == x) {
    *out = res;
    return NULL;
  }
  for (int32_t d = 0; d < t->rank; ++d) inv[perm[d]] = d;
  return tpj_build_transpose(g, res, inv, (size_t)t->rank, out);
}

/* ------------------------------------------------- index.Tensor parsing -- */

typedef struct tpj_shape_adv_s {
  size_t k;
  int64_t dims[TPJ_MAX_RANK];     /* (k) indexed dims, increasing */
  tpj_value_t idx[TPJ_MAX_RANK];  /* (k) s64, wrapped, broadcast to b */
  tpj_type_t b;                   /* broadcast index shape */
  int64_t place;                  /* where B lands in the result: first indexed dim
                                     if the indexed dims are adjacent, else 0 */
} tpj_shape_adv_t;

static tpj_status_t tpj_shape_parse_adv(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t x, size_t arg, tpj_shape_adv_t* a) {
  const tpj_value_t* list;
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor_list(call, arg, &list, &n));
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (n > (size_t)t->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: too many indices for tensor of dimension %d "
                      "(got %zu)", call->target, t->rank, n);
  }
  a->k = 0;
  for (size_t d = 0; d < n; ++d) {
    if (list[d] == TPJ_VALUE_NONE) continue;
    const tpj_type_t* it = tpj_lower_type(g, list[d]);
    if (!it) return TPJ_STATUS(INVALID_ARGUMENT, "%s: index %zu is not a value", call->target, d);
    if (a->k == 0) a->b = *it;
    else TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_shape(call, &a->b, it, &a->b));
    a->dims[a->k] = (int64_t)d;
    TPJ_RETURN_IF_ERROR(tpj_shape_wrap_index(g, call, list[d], t->dims[d], (int64_t)d, true,
                                              &a->idx[a->k]));
    a->k++;
  }
  bool adjacent = a->k > 0 && a->dims[a->k - 1] - a->dims[0] == (int64_t)a->k - 1;
  a->place = adjacent ? a->dims[0] : 0;
  for (size_t j = 0; j < a->k; ++j) {
    TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, a->idx[j], a->b.dims, (size_t)a->b.rank,
                                               &a->idx[j]));
  }
  return NULL;
}

/* index.Tensor and _unsafe_index.Tensor. */
TPJ_LOWERING(tpj_lower_shape_index) {
  tpj_value_t x, res;
  tpj_shape_adv_t a;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_shape_parse_adv(g, call, x, 1, &a));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, a.dims, a.idx, a.k, &res));
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block(g, res, a.b.rank, a.place, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* x[mask] = v (or += v) with one boolean mask at position p is a select: the
 * result does not depend on how many elements are true as long as v does not
 * vary along the masked dim. *out_done stays false when the indices are not a
 * single mask, so the caller goes on with integer indexing. */
static tpj_status_t tpj_shape_index_put_mask(tpj_graph_t* g, const tpj_lower_call_t* call,
                                             tpj_value_t x, bool acc, tpj_value_t* out,
                                             bool* out_done) {
  const tpj_value_t* list;
  size_t n, p = 0, count = 0;
  *out_done = false;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor_list(call, 1, &list, &n));
  for (size_t d = 0; d < n; ++d)
    if (list[d] != TPJ_VALUE_NONE) { p = d; ++count; }
  if (count != 1) return NULL;
  tpj_value_t mask = list[p], v, zero;
  const tpj_type_t* mt = tpj_lower_type(g, mask);
  if (!mt || (mt->dtype != TPJ_DTYPE_PRED && mt->dtype != TPJ_DTYPE_U8)) return NULL;
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t m = mt->rank, rank = t->rank, rr = rank - m + 1; /* rr: rank of x[mask] */
  bool fits = (int64_t)p + m <= rank;
  for (int64_t i = 0; fits && i < m; ++i) fits = mt->dims[i] == t->dims[(int64_t)p + i];
  if (!fits) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: boolean mask of rank %lld does not match the "
                      "indexed dims starting at %zu", call->target, (long long)m, p);
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &v));
  const tpj_type_t* vt = tpj_lower_type(g, v);
  int64_t slot = (int64_t)p - (rr - vt->rank);
  if (vt->rank > rr || (slot >= 0 && vt->dims[slot] != 1)) {
    return TPJ_LOWER_UNSUPPORTED(call, "values that vary along the elements selected by a "
                                 "boolean mask need a data-dependent shape (got values of "
                                 "rank %d)", vt->rank);
  }
  int64_t d1[TPJ_MAX_RANK], dm[TPJ_MAX_RANK], bd[TPJ_MAX_RANK];
  for (int64_t i = 0, j = 0; i < rank; ++i) {
    bool in_mask = i >= (int64_t)p && i < (int64_t)p + m;
    dm[i] = in_mask ? 1 : t->dims[i];
    if (!in_mask || i == (int64_t)p) d1[j++] = in_mask ? 1 : t->dims[i];
    if (in_mask) bd[i - (int64_t)p] = i;
  }
  if (m == 0) { /* x[True]: insert the nnz dim at p */
    for (int64_t i = rank; i > (int64_t)p; --i) d1[i] = d1[i - 1];
    d1[p] = 1;
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, t->dtype, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, v, d1, (size_t)rr, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, dm, (size_t)rank, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, v, t->dims, (size_t)rank, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, mask, TPJ_DTYPE_PRED, &mask));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, mask, t->dims, (size_t)rank, bd, &mask));
  *out_done = true;
  if (!acc) return tpj_build_select(g, mask, v, x, out);
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, mask, v, zero, &v));
  return tpj_build_binary(g, t->dtype == TPJ_DTYPE_PRED ? TPJ_BINARY_OP_OR : TPJ_BINARY_OP_ADD,
                          x, v, out);
}

/* index_put / _unsafe_index_put (self, indices, values, accumulate). */
TPJ_LOWERING(tpj_lower_shape_index_put) {
  tpj_value_t x, v;
  tpj_shape_adv_t a;
  bool acc, done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 3, false, &acc));
  TPJ_RETURN_IF_ERROR(tpj_shape_index_put_mask(g, call, x, acc, &out[0], &done));
  if (done) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_shape_parse_adv(g, call, x, 1, &a));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &v));
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (a.k == 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expects at least one non-None index",
                      call->target);
  }
  /* The shape x[indices] has, in PyTorch's placement (B moved to a.place). */
  int64_t rest[TPJ_MAX_RANK], shape[TPJ_MAX_RANK * 2];
  size_t nrest = 0, r = 0;
  bool is_adv[TPJ_MAX_RANK] = {false};
  for (size_t j = 0; j < a.k; ++j) is_adv[a.dims[j]] = true;
  for (int32_t d = 0; d < t->rank; ++d)
    if (!is_adv[d]) rest[nrest++] = t->dims[d];
  for (size_t j = 0; j < nrest + (size_t)a.b.rank; ++j) {
    int64_t p = a.place, nb = a.b.rank;
    shape[r++] = (int64_t)j < p ? rest[j] : ((int64_t)j < p + nb ? a.b.dims[j - p] : rest[j - nb]);
  }
  int64_t numel = 1;
  for (size_t i = 0; i < r; ++i) numel *= shape[i];
  if (numel == 0) {
    out[0] = x;
    return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, t->dtype, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, v, shape, r, &v));
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block_front(g, v, a.b.rank, a.place, &v));
  return tpj_shape_scatter_adv(g, x, a.dims, a.idx, a.k, v,
                               acc ? TPJ_SHAPE_COMBINE_ADD : TPJ_SHAPE_COMBINE_REPLACE,
                               &out[0]);
}

/* ------------------------------------------- index_select, index_add ----- */

/* Reads (self, dim, index) with self made at least 1-D and index 1-D. */
static tpj_status_t tpj_shape_dim_index(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t* x, int64_t* dim, tpj_value_t* idx) {
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, idx));
  const tpj_type_t* t = tpj_lower_type(g, *x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, *dim, t->rank, dim));
  if (t->rank == 0) {
    int64_t one = 1;
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *x, &one, 1, x));
  }
  const tpj_type_t* it = tpj_lower_type(g, *idx);
  if (it->rank > 1) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: index must be 0-D or 1-D (got rank %d)",
                      call->target, it->rank);
  }
  int64_t n = tpj_type_numel(it);
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, *idx, &n, 1, idx));
  return tpj_shape_wrap_index(g, call, *idx, tpj_lower_type(g, *x)->dims[*dim], *dim, false,
                              idx);
}

TPJ_LOWERING(tpj_lower_shape_index_select) {
  tpj_value_t x, idx, res;
  int64_t dim;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_shape_dim_index(g, call, &x, &dim, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, &dim, &idx, 1, &res));
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block(g, res, 1, dim, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* index_add(self, dim, index, source, alpha). */
/* index_add(self, dim, index, source, alpha) and index_copy(self, dim, index,
 * source): source's slices along dim go to the index positions, added or
 * replacing. Indices are checked against [0, size) (negative ones raise, as
 * on the CPU). */
static tpj_status_t index_update(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 tpj_shape_combine_t combine, tpj_value_t* out) {
  tpj_value_t x, idx, src, alpha, res;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_shape_dim_index(g, call, &x, &dim, &idx));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 3, &src));
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t n = tpj_lower_type(g, idx)->dims[0];
  int64_t dims[TPJ_MAX_RANK];
  for (int32_t i = 0; i < t->rank; ++i) dims[i] = t->dims[i];
  dims[dim] = n;
  const tpj_type_t* st = tpj_lower_type(g, src);
  if (tpj_type_numel(st) != tpj_type_numel(t) / (t->dims[dim] ? t->dims[dim] : 1) * n ||
      (st->rank > 0 && st->rank != t->rank)) {
    char a[96];
    tpj_type_format(st, a, sizeof a);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: source has the wrong shape (got %s)",
                      call->target, a);
  }
  if (n == 0 || tpj_type_numel(t) == 0) return tpj_shape_reshape_to_out(g, call, x, 0, &out[0]);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, src, t->dtype, &src));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, dims, (size_t)t->rank, &src));
  if (combine == TPJ_SHAPE_COMBINE_ADD && !tpj_lower_arg_is_none(call, 4)) {
    tpj_type_t ut = *tpj_lower_type(g, src);
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 4, &ut, &alpha));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, t->dtype == TPJ_DTYPE_PRED ? TPJ_BINARY_OP_AND
                                                                       : TPJ_BINARY_OP_MUL,
                                         src, alpha, &src));
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block_front(g, src, 1, dim, &src));
  TPJ_RETURN_IF_ERROR(tpj_shape_scatter_adv(g, x, &dim, &idx, 1, src, combine, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_index_add) {
  return index_update(g, call, TPJ_SHAPE_COMBINE_ADD, out);
}

TPJ_LOWERING(tpj_lower_shape_index_copy) {
  return index_update(g, call, TPJ_SHAPE_COMBINE_REPLACE, out);
}
