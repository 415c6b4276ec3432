/* index_strided.c: views whose elements are not a slice of the input
 * (diagonal, diagonal_scatter, as_strided, unfold) lowered as gathers of
 * computed coordinates, plus the explicit refusal of data-dependent-shape ops
 * (nonzero, masked_select) that static StableHLO cannot express. */
#include <stdlib.h>

#include "lower/lower_shape.h"

/* s64 vector [n] = base + step * iota. */
static tpj_status_t tpj_shape_arith(tpj_graph_t* g, int64_t n, int64_t base, int64_t step,
                                    tpj_value_t* out) {
  tpj_type_t t;
  tpj_value_t iota, s, b, m;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, &n, 1, &t));
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &t, 0, &iota));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, step, &s));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, base, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, iota, s, &m));
  return tpj_build_binary(g, TPJ_BINARY_OP_ADD, m, b, out);
}

/* Diagonal of dims (d1, d2) at offset: sorted dims, their index vectors, length. */
typedef struct tpj_shape_diag_s {
  int64_t dims[2];
  tpj_value_t idx[2];
  int64_t len;
} tpj_shape_diag_t;

static tpj_status_t tpj_shape_diag_parse(tpj_graph_t* g, const tpj_lower_call_t* call,
                                         const tpj_type_t* t, size_t arg,
                                         tpj_shape_diag_t* out) {
  int64_t off, d1, d2;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, arg, 0, &off));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, arg + 1, 0, &d1));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, arg + 2, 1, &d2));
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, d1, t->rank, &d1));
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, d2, t->rank, &d2));
  if (t->rank < 2 || d1 == d2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: diagonal dimensions cannot be identical (got %lld "
                      "and %lld for rank %d)", call->target, (long long)d1, (long long)d2,
                      t->rank);
  }
  int64_t a = t->dims[d1], b = t->dims[d2];
  int64_t len = off >= 0 ? (a < b - off ? a : b - off) : (a + off < b ? a + off : b);
  out->len = len < 0 ? 0 : len;
  tpj_value_t i1, i2;
  TPJ_RETURN_IF_ERROR(tpj_shape_arith(g, out->len, off < 0 ? -off : 0, 1, &i1));
  TPJ_RETURN_IF_ERROR(tpj_shape_arith(g, out->len, off > 0 ? off : 0, 1, &i2));
  bool swap = d1 > d2;
  out->dims[0] = swap ? d2 : d1;
  out->dims[1] = swap ? d1 : d2;
  out->idx[0] = swap ? i2 : i1;
  out->idx[1] = swap ? i1 : i2;
  return NULL;
}

TPJ_LOWERING(tpj_lower_shape_diagonal) {
  tpj_value_t x, res;
  tpj_shape_diag_t dg;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_diag_parse(g, call, t, 1, &dg));
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, dg.dims, dg.idx, 2, &res));
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block(g, res, 1, t->rank - 2, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* diagonal_scatter(self, src, offset, dim1, dim2). */
TPJ_LOWERING(tpj_lower_shape_diagonal_scatter) {
  tpj_value_t x, src;
  tpj_shape_diag_t dg;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &src));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_diag_parse(g, call, t, 2, &dg));
  const tpj_type_t* st = tpj_lower_type(g, src);
  if (st->rank != t->rank - 1 || st->dims[st->rank - 1] != dg.len) {
    char a[96];
    tpj_type_format(st, a, sizeof a);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: src has the wrong shape (got %s, expected a last "
                      "dim of %lld)", call->target, a, (long long)dg.len);
  }
  if (dg.len == 0 || tpj_type_numel(t) == 0) {
    out[0] = x;
    return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, src, t->dtype, &src));
  TPJ_RETURN_IF_ERROR(tpj_shape_move_block_front(g, src, 1, st->rank - 1, &src));
  return tpj_shape_scatter_adv(g, x, dg.dims, dg.idx, 2, src, TPJ_SHAPE_COMBINE_REPLACE,
                               &out[0]);
}

/* as_strided(self, size, stride, storage_offset): a gather of flat indices
 * offset + sum_k i_k * stride_k over self's elements in row-major order. This
 * assumes self is contiguous with storage offset 0, which holds for every
 * value of a functional graph. */
TPJ_LOWERING(tpj_lower_shape_as_strided) {
  tpj_value_t x, flat, acc, res;
  const int64_t *size, *stride;
  size_t ns, nst;
  int64_t off;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &size, &ns));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 2, &stride, &nst));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 3, 0, &off));
  if (ns != nst || ns > TPJ_MAX_RANK) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: size and stride differ in length (got %zu and "
                      "%zu)", call->target, ns, nst);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  int64_t numel = tpj_type_numel(tpj_lower_type(g, x)), hi = off;
  for (size_t i = 0; i < ns; ++i) {
    if (stride[i] < 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: negative strides are not supported (got %lld)",
                        call->target, (long long)stride[i]);
    }
    hi += (size[i] - 1) * stride[i];
  }
  if (off < 0 || hi >= numel) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: view reaches element %lld, beyond the %lld "
                      "elements of the input (storage_offset %lld)", call->target,
                      (long long)hi, (long long)numel, (long long)off);
  }
  tpj_type_t st;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, size, ns, &st));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, size, ns, off, &acc));
  for (size_t i = 0; i < ns; ++i) {
    tpj_value_t io, sv;
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &st, (int64_t)i, &io));
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, size, ns, stride[i], &sv));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, io, sv, &io));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, acc, io, &acc));
  }
  int64_t zero = 0;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, &numel, 1, &flat));
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, flat, &zero, &acc, 1, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

/* unfold(self, dimension, size, step): windows along a dim, window last. */
TPJ_LOWERING(tpj_lower_shape_unfold) {
  tpj_value_t x, res, rows, cols, idx;
  int64_t dim, size, step;
  bool done;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &size));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &step));
  int64_t one = 1;
  if (tpj_lower_type(g, x)->rank == 0) TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, &one, 1, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, t->rank, &dim));
  if (step <= 0 || size < 0 || size > t->dims[dim]) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: size %lld and step %lld invalid for dim %lld of "
                      "size %lld", call->target, (long long)size, (long long)step,
                      (long long)dim, (long long)t->dims[dim]);
  }
  TPJ_RETURN_IF_ERROR(tpj_shape_empty_out(g, call, &out[0], &done));
  if (done) return NULL;
  int64_t nd[2] = {(t->dims[dim] - size) / step + 1, size}, bd0 = 0, bd1 = 1;
  TPJ_RETURN_IF_ERROR(tpj_shape_arith(g, nd[0], 0, step, &rows));
  TPJ_RETURN_IF_ERROR(tpj_shape_arith(g, nd[1], 0, 1, &cols));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, rows, nd, 2, &bd0, &rows));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, cols, nd, 2, &bd1, &cols));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, rows, cols, &idx));
  TPJ_RETURN_IF_ERROR(tpj_shape_gather_adv(g, x, &dim, &idx, 1, &res));
  /* res: [n, size, rest...] -> [before..., n, after..., size]. */
  int64_t r = t->rank + 1, perm[TPJ_MAX_RANK];
  for (int64_t j = 0; j < r; ++j) perm[j] = j < dim ? 2 + j : (j == dim ? 0 : (j == r - 1 ? 1 : 1 + j));
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, res, perm, (size_t)r, &res));
  return tpj_shape_reshape_to_out(g, call, res, 0, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_dynamic_unsupported) {
  return TPJ_LOWER_UNSUPPORTED(call, "the output shape depends on tensor values, which static "
                               "StableHLO cannot express (got a data-dependent-shape op)");
}

/* tril_indices / triu_indices(row, col, offset): a constant [2, N] computed at
 * lowering time in row-major order, converted to the requested dtype. */
static tpj_status_t tpj_shape_tri_indices(tpj_graph_t* g, const tpj_lower_call_t* call,
                                          bool lower, tpj_value_t* out) {
  int64_t row, col, off;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 0, &row));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &col));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 2, 0, &off));
  if (row < 0 || col < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: row and col must be non-negative (got %lld, %lld)",
                      call->target, (long long)row, (long long)col);
  }
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  int64_t n = ot->rank == 2 ? ot->dims[1] : -1;
  if (n == 0) return tpj_lower_full(g, ot, 0.0, out);
  int64_t* data = (int64_t*)malloc(sizeof(int64_t) * (size_t)(2 * (n > 0 ? n : 1)));
  if (!data) return TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory", call->target);
  int64_t k = 0;
  for (int64_t i = 0; i < row; ++i) {
    int64_t lo = lower ? 0 : (i + off > 0 ? i + off : 0);
    int64_t hi = lower ? (i + off + 1 < col ? i + off + 1 : col) : col;
    for (int64_t j = lo; j < hi; ++j, ++k) {
      if (k < n) {
        data[k] = i;
        data[n + k] = j;
      }
    }
  }
  tpj_status_t st = NULL;
  tpj_type_t ct;
  if (k != n) {
    st = TPJ_STATUS(INTERNAL, "%s: expected %lld indices, computed %lld", call->target,
                    (long long)n, (long long)k);
  } else {
    int64_t dims[2] = {2, n};
    st = tpj_type_init(TPJ_DTYPE_S64, dims, 2, &ct);
    if (!st) st = tpj_build_constant(g, &ct, data, sizeof(int64_t) * (size_t)(2 * n), out);
    if (!st) st = tpj_lower_convert(g, *out, ot->dtype, out);
  }
  free(data);
  return st;
}

TPJ_LOWERING(tpj_lower_shape_tril_indices) { return tpj_shape_tri_indices(g, call, true, &out[0]); }
TPJ_LOWERING(tpj_lower_shape_triu_indices) { return tpj_shape_tri_indices(g, call, false, &out[0]); }
