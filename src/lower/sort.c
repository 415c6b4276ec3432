/* sort.c: sort, argsort, topk, kthvalue and median. One stable stablehlo.sort of
 * (keys, iota) with a comparator that orders NaN above every number (PyTorch's
 * NaN-is-largest rule); bool keys are sorted as s32.
 *
 * Ties: results always follow eager's stable=True order (equal keys by
 * ascending index). Eager CPU with stable=False (std::sort for rows longer
 * than 16) and topk/kthvalue (quickselect) order tied indices in an
 * implementation-defined way, which no lowering can reproduce; the values
 * always match and every index points at an equal key.
 */
#include <math.h>
#include <string.h>

#include "lower/lower_nn.h"

/* isnan(v) as pred (false for non-float dtypes). */
static tpj_status_t is_nan(tpj_graph_t* g, tpj_value_t v, tpj_value_t* out) {
  return tpj_build_compare(g, TPJ_COMPARE_DIR_NE, v, v, out);
}

/* Comparator over (key, index) pairs: strict "comes before". */
static tpj_status_t comparator(tpj_graph_t* g, tpj_dtype_t key_dtype, bool descending,
                               int32_t* out_region) {
  tpj_type_t ts[4] = {tpj_type_scalar(key_dtype), tpj_type_scalar(key_dtype),
                      tpj_type_scalar(TPJ_DTYPE_S64), tpj_type_scalar(TPJ_DTYPE_S64)};
  tpj_value_t a[4];
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, ts, 4, a));
  tpj_value_t res;
  tpj_compare_dir_t dir = descending ? TPJ_COMPARE_DIR_GT : TPJ_COMPARE_DIR_LT;
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, dir, a[0], a[1], &res));
  if (tpj_dtype_is_float(key_dtype)) {
    /* ascending: b is NaN and a is not; descending: a is NaN and b is not. */
    tpj_value_t na, nb, nn;
    TPJ_RETURN_IF_ERROR(is_nan(g, a[0], &na));
    TPJ_RETURN_IF_ERROR(is_nan(g, a[1], &nb));
    if (descending) {
      TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NOT, nb, &nb));
    } else {
      TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NOT, na, &na));
    }
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, na, nb, &nn));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, res, nn, &res));
  }
  return tpj_graph_region_end(g, &res, 1, out_region);
}

/* Sorts x along dim (normalized) -> values (dtype of x) and s64 indices.
 * Rank 0 is treated as a 1-element vector. */
tpj_status_t tpj_nn_sort_with_indices(tpj_graph_t* g, tpj_value_t x, int64_t dim,
                                      bool descending, tpj_value_t* out_vals,
                                      tpj_value_t* out_idx) {
  const tpj_type_t* xt = tpj_lower_type(g, x);
  tpj_type_t orig = *xt;
  if (orig.rank == 0) {
    int64_t one[1] = {1};
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, one, 1, &x));
    dim = 0;
  }
  tpj_value_t key = x;
  if (orig.dtype == TPJ_DTYPE_PRED) TPJ_RETURN_IF_ERROR(tpj_build_convert(g, x, TPJ_DTYPE_S32, &key));
  tpj_type_t it = *tpj_lower_type(g, x);
  it.dtype = TPJ_DTYPE_S64;
  tpj_value_t ops[2], res[2];
  ops[0] = key;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, dim, &ops[1]));
  int32_t cmp;
  TPJ_RETURN_IF_ERROR(comparator(g, tpj_lower_type(g, key)->dtype, descending, &cmp));
  TPJ_RETURN_IF_ERROR(tpj_build_sort(g, ops, 2, dim, true, cmp, res));
  if (orig.dtype == TPJ_DTYPE_PRED) TPJ_RETURN_IF_ERROR(tpj_build_convert(g, res[0], TPJ_DTYPE_PRED, &res[0]));
  if (orig.rank == 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, res[0], NULL, 0, &res[0]));
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, res[1], NULL, 0, &res[1]));
  }
  *out_vals = res[0];
  *out_idx = res[1];
  return NULL;
}

/* Shared body: self at arg 0, dim at dim_arg, descending at desc_arg. */
static tpj_status_t sort_common(tpj_graph_t* g, const tpj_lower_call_t* call, size_t dim_arg,
                                size_t desc_arg, bool want_values, tpj_value_t* out) {
  tpj_value_t x, v, i;
  int64_t dim;
  bool desc;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, dim_arg, -1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, desc_arg, false, &desc));
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, tpj_lower_type(g, x)->rank, &dim));
  TPJ_RETURN_IF_ERROR(tpj_nn_sort_with_indices(g, x, dim, desc, &v, &i));
  if (want_values) {
    out[0] = v;
    return tpj_lower_convert(g, i, tpj_lower_out_type(call, 1)->dtype, &out[1]);
  }
  return tpj_lower_convert(g, i, tpj_lower_out_type(call, 0)->dtype, &out[0]);
}

/* sort.default(self, dim, descending) */
TPJ_LOWERING(tpj_lower_nn_sort) { return sort_common(g, call, 1, 2, true, out); }
/* sort.stable(self, *, stable, dim, descending): always stable here. */
TPJ_LOWERING(tpj_lower_nn_sort_stable) { return sort_common(g, call, 2, 3, true, out); }
/* argsort.default(self, dim, descending) */
TPJ_LOWERING(tpj_lower_nn_argsort) { return sort_common(g, call, 1, 2, false, out); }
/* argsort.stable(self, *, stable, dim, descending) */
TPJ_LOWERING(tpj_lower_nn_argsort_stable) { return sort_common(g, call, 2, 3, false, out); }

/* Slice [start, start + len) of dim. */
static tpj_status_t slice_dim(tpj_graph_t* g, tpj_value_t x, int64_t dim, int64_t start,
                              int64_t len, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t lo[TPJ_MAX_RANK] = {0}, hi[TPJ_MAX_RANK], step[TPJ_MAX_RANK];
  for (int32_t d = 0; d < t->rank; ++d) {
    hi[d] = t->dims[d];
    step[d] = 1;
  }
  lo[dim] = start;
  hi[dim] = start + len;
  return tpj_build_slice(g, x, lo, hi, step, (size_t)t->rank, out);
}

/* topk(self, k, dim, largest, sorted): results are always sorted. */
TPJ_LOWERING(tpj_lower_nn_topk) {
  tpj_value_t x, v, i;
  int64_t k, dim;
  bool largest;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &k));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 2, -1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 3, true, &largest));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, xt->rank, &dim));
  int64_t n = xt->rank == 0 ? 1 : xt->dims[dim];
  if (k < 0 || k > n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: k out of range (got %lld, expected [0, %lld])",
                      call->target, (long long)k, (long long)n);
  }
  TPJ_RETURN_IF_ERROR(tpj_nn_sort_with_indices(g, x, dim, largest, &v, &i));
  if (xt->rank > 0) {
    TPJ_RETURN_IF_ERROR(slice_dim(g, v, dim, 0, k, &v));
    TPJ_RETURN_IF_ERROR(slice_dim(g, i, dim, 0, k, &i));
  }
  const tpj_type_t* vt = tpj_lower_out_type(call, 0);
  const tpj_type_t* itp = tpj_lower_out_type(call, 1);
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, vt->dims, (size_t)vt->rank, &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, i, itp->dims, (size_t)itp->rank, &i));
  return tpj_lower_convert(g, i, itp->dtype, &out[1]);
}

/* kthvalue(self, k, dim, keepdim): the k-th smallest (1-based). */
TPJ_LOWERING(tpj_lower_nn_kthvalue) {
  tpj_value_t x, v, i;
  int64_t k, dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &k));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 2, -1, &dim));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, xt->rank, &dim));
  int64_t n = xt->rank == 0 ? 1 : xt->dims[dim];
  if (k < 1 || k > n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: k out of range (got %lld, expected [1, %lld])",
                      call->target, (long long)k, (long long)n);
  }
  TPJ_RETURN_IF_ERROR(tpj_nn_sort_with_indices(g, x, dim, false, &v, &i));
  if (xt->rank > 0) {
    TPJ_RETURN_IF_ERROR(slice_dim(g, v, dim, k - 1, 1, &v));
    TPJ_RETURN_IF_ERROR(slice_dim(g, i, dim, k - 1, 1, &i));
  }
  const tpj_type_t* vt = tpj_lower_out_type(call, 0);
  const tpj_type_t* itp = tpj_lower_out_type(call, 1);
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, vt->dims, (size_t)vt->rank, &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, i, itp->dims, (size_t)itp->rank, &i));
  return tpj_lower_convert(g, i, itp->dtype, &out[1]);
}

/* Index (s64, dim removed) of the first NaN along dim, or n when none. */
static tpj_status_t first_nan_index(tpj_graph_t* g, tpj_value_t x, int64_t dim,
                                    tpj_value_t* out) {
  tpj_type_t it = *tpj_lower_type(g, x);
  int64_t n = it.dims[dim];
  it.dtype = TPJ_DTYPE_S64;
  tpj_value_t pos, nan, none, v;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, dim, &pos));
  TPJ_RETURN_IF_ERROR(is_nan(g, x, &nan));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &it, (double)n, &none));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, nan, pos, none, &v));
  int64_t dims[1] = {dim};
  return tpj_build_reduce_simple(g, v, TPJ_REDUCE_KIND_MIN, dims, 1, out);
}

/* median of x along dim (lower median; NaN if the line has a NaN) ->
 * values and s64 indices with dim removed. */
static tpj_status_t median_along(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t x,
                                 int64_t dim, tpj_value_t* out_vals, tpj_value_t* out_idx) {
  const tpj_type_t* xt = tpj_lower_type(g, x);
  int64_t n = xt->dims[dim];
  if (n == 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: median of an empty dimension (dim %lld)",
                      call->target, (long long)dim);
  }
  tpj_value_t v, i, mid, midi;
  TPJ_RETURN_IF_ERROR(tpj_nn_sort_with_indices(g, x, dim, false, &v, &i));
  TPJ_RETURN_IF_ERROR(slice_dim(g, v, dim, (n - 1) / 2, 1, &mid));
  TPJ_RETURN_IF_ERROR(slice_dim(g, i, dim, (n - 1) / 2, 1, &midi));
  tpj_type_t rt = *xt;
  for (int32_t d = (int32_t)dim; d + 1 < rt.rank; ++d) rt.dims[d] = rt.dims[d + 1];
  rt.rank -= 1;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, mid, rt.dims, (size_t)rt.rank, &mid));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, midi, rt.dims, (size_t)rt.rank, &midi));
  if (tpj_dtype_is_float(xt->dtype)) {
    tpj_value_t first, limit, has_nan, nanv;
    TPJ_RETURN_IF_ERROR(first_nan_index(g, x, dim, &first));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, first), (double)n, &limit));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, first, limit, &has_nan));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, mid), NAN, &nanv));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, has_nan, nanv, mid, &mid));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, has_nan, first, midi, &midi));
  }
  *out_vals = mid;
  *out_idx = midi;
  return NULL;
}

/* median.default(self): over all elements. */
TPJ_LOWERING(tpj_lower_nn_median) {
  tpj_value_t x, v, i;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  int64_t n[1] = {tpj_type_numel(tpj_lower_type(g, x))};
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, n, 1, &x));
  TPJ_RETURN_IF_ERROR(median_along(g, call, x, 0, &v, &i));
  out[0] = v;
  return NULL;
}

/* median.dim(self, dim, keepdim) -> (values, indices). */
TPJ_LOWERING(tpj_lower_nn_median_dim) {
  tpj_value_t x, v, i;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, xt->rank, &dim));
  if (xt->rank == 0) {
    int64_t one[1] = {1};
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, one, 1, &x));
  }
  TPJ_RETURN_IF_ERROR(median_along(g, call, x, dim, &v, &i));
  const tpj_type_t* vt = tpj_lower_out_type(call, 0);
  const tpj_type_t* itp = tpj_lower_out_type(call, 1);
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, vt->dims, (size_t)vt->rank, &out[0]));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, i, itp->dims, (size_t)itp->rank, &i));
  return tpj_lower_convert(g, i, itp->dtype, &out[1]);
}
