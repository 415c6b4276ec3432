/* reduce_util.c: helpers shared by the reduce family (dim-set parsing,
 * reduce + broadcast-back, accumulation dtypes, elementwise shorthands), so the
 * lowerings of reductions, norms and losses read like their formulas. */
#include <math.h>

#include "lower/lower_reduce.h"

void tpj_reduce_dims_all(int64_t rank, tpj_reduce_dims_t* out_dims) {
  out_dims->rank = rank;
  out_dims->count = (size_t)rank;
  for (int64_t d = 0; d < TPJ_MAX_RANK; ++d) {
    out_dims->mask[d] = d < rank;
    out_dims->dims[d] = d;
  }
}

tpj_status_t tpj_reduce_dims_parse(const tpj_lower_call_t* call, size_t i, int64_t rank,
                                   tpj_reduce_dims_t* out_dims) {
  const int64_t* ints = NULL;
  size_t n = 0;
  if (!tpj_lower_arg_is_none(call, i))
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, i, &ints, &n));
  if (n == 0) {
    tpj_reduce_dims_all(rank, out_dims);
    return NULL;
  }
  tpj_reduce_dims_t rd = {.rank = rank};
  for (size_t k = 0; k < n; ++k) {
    int64_t d;
    TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, ints[k], rank, &d));
    if (rank == 0) continue; /* dim 0 / -1 of a scalar reduces nothing */
    if (rd.mask[d])
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: dim %lld appears multiple times in the list",
                        call->target, (long long)ints[k]);
    rd.mask[d] = true;
  }
  for (int64_t d = 0; d < rank; ++d)
    if (rd.mask[d]) rd.dims[rd.count++] = d;
  *out_dims = rd;
  return NULL;
}

int64_t tpj_reduce_dims_numel(const tpj_reduce_dims_t* rd, const tpj_type_t* type) {
  int64_t n = 1;
  for (size_t k = 0; k < rd->count; ++k) n *= type->dims[rd->dims[k]];
  return n;
}

tpj_dtype_t tpj_reduce_acc_dtype(tpj_dtype_t dtype) {
  return (dtype == TPJ_DTYPE_BF16 || dtype == TPJ_DTYPE_F16) ? TPJ_DTYPE_F32 : dtype;
}

/* max/min body that propagates NaN (PyTorch semantics): if either side is NaN
 * the result is NaN (a + b), else the plain max/min. */
static tpj_status_t tpj_reduce_nan_body(tpj_graph_t* g, tpj_dtype_t dt, bool is_max,
                                        int32_t* out_region) {
  tpj_type_t ts[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t a[2], m, an, bn, nan, sum, r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, ts, 2, a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, is_max ? TPJ_BINARY_OP_MAX : TPJ_BINARY_OP_MIN,
                                       a[0], a[1], &m));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[0], a[0], &an));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, a[1], a[1], &bn));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, an, bn, &nan));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a[0], a[1], &sum));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, nan, sum, m, &r));
  return tpj_graph_region_end(g, &r, 1, out_region);
}

/* The same for a partitioned graph: a plain max/min reduction (which the SPMD
 * partitioner splits across devices), then NaN wherever an or-reduction of
 * isnan says the reduced elements held one. */
static tpj_status_t tpj_reduce_minmax_split(tpj_graph_t* g, tpj_value_t x,
                                            tpj_reduce_kind_t kind,
                                            const tpj_reduce_dims_t* rd, tpj_value_t* out) {
  tpj_dtype_t dt = tpj_lower_type(g, x)->dtype;
  tpj_value_t m, isnan_x, any_nan, nan, nan_b;
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, x, kind, rd->dims, rd->count, &m));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, x, x, &isnan_x));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, isnan_x, TPJ_REDUCE_KIND_OR, rd->dims,
                                              rd->count, &any_nan));
  const tpj_type_t mt = *tpj_lower_type(g, m);
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, dt, NAN, &nan));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, nan, mt.dims, (size_t)mt.rank, NULL, &nan_b));
  return tpj_build_select(g, any_nan, nan_b, m, out);
}

tpj_status_t tpj_reduce_apply(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                              const tpj_reduce_dims_t* rd, tpj_value_t* out) {
  if (rd->count == 0) {
    *out = x;
    return NULL;
  }
  tpj_dtype_t dt = tpj_lower_type(g, x)->dtype;
  bool minmax = kind == TPJ_REDUCE_KIND_MAX || kind == TPJ_REDUCE_KIND_MIN;
  if (!minmax || !tpj_dtype_is_float(dt))
    return tpj_build_reduce_simple(g, x, kind, rd->dims, rd->count, out);
  if (tpj_graph_is_partitioned(g)) return tpj_reduce_minmax_split(g, x, kind, rd, out);
  bool is_max = kind == TPJ_REDUCE_KIND_MAX;
  tpj_value_t init;
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, dt, is_max ? -INFINITY : INFINITY, &init));
  TPJ_RETURN_IF_ERROR(tpj_reduce_nan_body(g, dt, is_max, &body));
  return tpj_build_reduce(g, &x, &init, 1, rd->dims, rd->count, body, out);
}

tpj_status_t tpj_reduce_expand(tpj_graph_t* g, tpj_value_t r, const tpj_reduce_dims_t* rd,
                               const tpj_type_t* full_in, tpj_value_t* out) {
  /* copy first: full_in may point into the graph, which moves as it grows */
  const tpj_type_t full_c = *full_in;
  const tpj_type_t* full = &full_c;
  int64_t bdims[TPJ_MAX_RANK];
  size_t n = 0;
  for (int64_t d = 0; d < full->rank; ++d)
    if (!rd->mask[d]) bdims[n++] = d;
  const tpj_type_t rt_c = *tpj_lower_type(g, r);
  const tpj_type_t* rt = &rt_c;
  if ((size_t)rt->rank != n) {
    /* keepdim-shaped input: drop the reduced unit dims first */
    int64_t dims[TPJ_MAX_RANK];
    for (size_t k = 0; k < n; ++k) dims[k] = full->dims[bdims[k]];
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, r, dims, n, &r));
  }
  return tpj_build_broadcast_in_dim(g, r, full->dims, (size_t)full->rank, bdims, out);
}

tpj_status_t tpj_reduce_finish(tpj_graph_t* g, tpj_value_t v, const tpj_type_t* type,
                               tpj_value_t* out) {
  tpj_value_t c;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, type->dtype, &c));
  const tpj_type_t t_c = *tpj_lower_type(g, c);
  const tpj_type_t* t = &t_c;
  if (tpj_type_equal(t, type)) {
    *out = c;
    return NULL;
  }
  return tpj_build_reshape(g, c, type->dims, (size_t)type->rank, out);
}

tpj_status_t tpj_reduce_mean_of(tpj_graph_t* g, tpj_value_t x, const tpj_reduce_dims_t* rd,
                                tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  int64_t n = tpj_reduce_dims_numel(rd, t);
  tpj_value_t s;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, x, TPJ_REDUCE_KIND_ADD, rd, &s));
  return tpj_reduce_binc(g, TPJ_BINARY_OP_DIV, s, (double)n, out);
}

tpj_status_t tpj_reduce_binc(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t x, double c,
                             tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_value_t k;
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, t->dtype, t->dims, (size_t)t->rank, c, &k));
  return tpj_build_binary(g, op, x, k, out);
}

tpj_status_t tpj_reduce_binb(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t a,
                             tpj_value_t b, tpj_value_t* out) {
  const tpj_type_t ta_c = *tpj_lower_type(g, a);
  const tpj_type_t* ta = &ta_c;
  const tpj_type_t tb_c = *tpj_lower_type(g, b);
  const tpj_type_t* tb = &tb_c;
  tpj_type_t bt = *ta;
  if (!tpj_type_equal(ta, tb)) {
    size_t r = (size_t)(ta->rank > tb->rank ? ta->rank : tb->rank);
    bt.rank = (int32_t)r;
    for (size_t i = 0; i < r; ++i) {
      int64_t da = (int64_t)i - (int64_t)(r - (size_t)ta->rank);
      int64_t db = (int64_t)i - (int64_t)(r - (size_t)tb->rank);
      int64_t sa = da >= 0 ? ta->dims[da] : 1, sb = db >= 0 ? tb->dims[db] : 1;
      bt.dims[i] = sa == 1 ? sb : sa;
    }
    TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, a, bt.dims, r, &a));
    TPJ_RETURN_IF_ERROR(tpj_lower_broadcast_to(g, b, bt.dims, r, &b));
  }
  return tpj_build_binary(g, op, a, b, out);
}

tpj_status_t tpj_reduce_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                                size_t rank, tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  bool same = (size_t)t->rank == rank;
  for (size_t i = 0; same && i < rank; ++i) same = t->dims[i] == dims[i];
  if (same) {
    *out = x;
    return NULL;
  }
  return tpj_build_reshape(g, x, dims, rank, out);
}

tpj_status_t tpj_reduce_const_out(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                  double value, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_out_type(call, i);
  if (t->dtype == TPJ_DTYPE_INVALID) {
    *out = TPJ_VALUE_NONE;
    return NULL;
  }
  return tpj_lower_full(g, t, value, out);
}

tpj_status_t tpj_reduce_opt_tensor(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                   tpj_dtype_t dtype, tpj_value_t* out) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out = TPJ_VALUE_NONE;
    return NULL;
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, i, &v));
  return tpj_lower_convert(g, v, dtype, out);
}
