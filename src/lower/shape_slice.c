/* shape_slice.c: lowerings that cut tensors into pieces or glue them back
 * (cat, stack, split*, unbind, slice, select, narrow, constant_pad_nd,
 * slice_scatter, select_scatter). All bounds here are static ints, so PyTorch's
 * clamping and negative-index rules are applied at lowering time. */
#include <stdlib.h>

#include "lower/lower_shape.h"

/* Full-extent slice parameters of t. */
static void tpj_shape_full_slice(const tpj_type_t* t, int64_t* start, int64_t* limit,
                                 int64_t* stride) {
  for (int32_t i = 0; i < t->rank; ++i) {
    start[i] = 0;
    limit[i] = t->dims[i];
    stride[i] = 1;
  }
}

/* Reads a dim argument and normalizes it; rank-0 inputs are rejected. */
static tpj_status_t tpj_shape_arg_dim(const tpj_lower_call_t* call, size_t i,
                                      const tpj_type_t* t, int64_t* out_dim) {
  int64_t d;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, i, &d));
  if (t->rank == 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: cannot index a 0-dim tensor along dim %lld",
                      call->target, (long long)d);
  }
  return tpj_lower_norm_dim(call, d, t->rank, out_dim);
}

/* ----------------------------------------------------------- cat, stack -- */

TPJ_LOWERING(tpj_lower_shape_cat) {
  const tpj_value_t* xs;
  size_t n;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor_list(call, 0, &xs, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 1, 0, &dim));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, ot->rank, &dim));
  tpj_value_t* keep = (tpj_value_t*)malloc(sizeof(tpj_value_t) * (n ? n : 1));
  if (!keep) return TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory", call->target);
  size_t count = 0;
  tpj_status_t st = NULL;
  for (size_t i = 0; i < n && !st; ++i) {
    const tpj_type_t* t = tpj_lower_type(g, xs[i]);
    if (!t) {
      st = TPJ_STATUS(INVALID_ARGUMENT, "%s: tensor %zu is not a value", call->target, i);
      break;
    }
    /* PyTorch skips legacy empty 1-D tensors whatever the other ranks are. */
    if (t->rank == 1 && t->dims[0] == 0 && ot->rank != 1) continue;
    st = tpj_lower_convert(g, xs[i], ot->dtype, &keep[count++]);
  }
  if (!st) {
    if (count == 0 || tpj_type_numel(ot) == 0) {
      st = tpj_lower_full(g, ot, 0.0, &out[0]);
    } else if (count == 1) {
      st = tpj_shape_reshape_to_out(g, call, keep[0], 0, &out[0]);
    } else {
      st = tpj_build_concatenate(g, keep, count, dim, &out[0]);
    }
  }
  free(keep);
  return st;
}

TPJ_LOWERING(tpj_lower_shape_stack) {
  const tpj_value_t* xs;
  size_t n;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor_list(call, 0, &xs, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 1, 0, &dim));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dim, ot->rank, &dim));
  if (n == 0) return TPJ_STATUS(INVALID_ARGUMENT, "%s: expects a non-empty list", call->target);
  tpj_value_t* parts = (tpj_value_t*)malloc(sizeof(tpj_value_t) * n);
  if (!parts) return TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory", call->target);
  int64_t dims[TPJ_MAX_RANK];
  for (int32_t i = 0; i < ot->rank; ++i) dims[i] = ot->dims[i];
  dims[dim] = 1;
  tpj_status_t st = NULL;
  for (size_t i = 0; i < n && !st; ++i) {
    tpj_value_t c;
    st = tpj_lower_convert(g, xs[i], ot->dtype, &c);
    if (!st) st = tpj_build_reshape(g, c, dims, (size_t)ot->rank, &parts[i]);
  }
  if (!st) {
    st = n == 1 ? (out[0] = parts[0], NULL)
                : tpj_build_concatenate(g, parts, n, dim, &out[0]);
  }
  free(parts);
  return st;
}

/* -------------------------------------------------------- split, unbind -- */

/* split.Tensor, split_with_sizes, unbind.int, chunk: the dim is the last
 * argument; each piece's extent along it comes from the expected outputs (an
 * output one rank lower than the input is an unbind piece of extent 1). */
TPJ_LOWERING(tpj_lower_shape_split) {
  tpj_value_t x;
  int64_t dim;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, call->num_args - 1, t, &dim));
  int64_t start[TPJ_MAX_RANK], limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  tpj_shape_full_slice(t, start, limit, stride);
  int64_t offset = 0;
  for (size_t i = 0; i < call->num_outs; ++i) {
    const tpj_type_t* ot = tpj_lower_out_type(call, i);
    int64_t len = ot->rank == t->rank ? ot->dims[dim] : 1;
    if (offset + len > t->dims[dim]) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: pieces exceed dim %lld (got %lld, expected <= "
                        "%lld)", call->target, (long long)dim, (long long)(offset + len),
                        (long long)t->dims[dim]);
    }
    start[dim] = offset;
    limit[dim] = offset + len;
    tpj_value_t piece;
    TPJ_RETURN_IF_ERROR(tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &piece));
    TPJ_RETURN_IF_ERROR(tpj_shape_reshape_to_out(g, call, piece, i, &out[i]));
    offset += len;
  }
  return NULL;
}

/* --------------------------------------------------------- slice, select -- */

/* PyTorch slice bounds: None -> full, negatives wrap once, then clamp. */
static tpj_status_t tpj_shape_slice_bounds(const tpj_lower_call_t* call, size_t i_start,
                                           int64_t len, int64_t step, int64_t* out_start,
                                           int64_t* out_end) {
  int64_t s, e;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, i_start, 0, &s));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, i_start + 1, INT64_MAX, &e));
  if (step <= 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: slice step must be positive (got %lld)",
                      call->target, (long long)step);
  }
  if (s < 0) s += len;
  if (e < 0) e += len;
  s = s < 0 ? 0 : (s > len ? len : s);
  e = e < s ? s : (e > len ? len : e);
  *out_start = s;
  *out_end = e;
  return NULL;
}

TPJ_LOWERING(tpj_lower_shape_slice) {
  tpj_value_t x;
  int64_t dim, step, s, e;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, 1, t, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 4, 1, &step));
  TPJ_RETURN_IF_ERROR(tpj_shape_slice_bounds(call, 2, t->dims[dim], step, &s, &e));
  int64_t start[TPJ_MAX_RANK], limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  tpj_shape_full_slice(t, start, limit, stride);
  start[dim] = s;
  limit[dim] = e;
  stride[dim] = step;
  return tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &out[0]);
}

/* Checks a static index against len and wraps it. */
static tpj_status_t tpj_shape_static_index(const tpj_lower_call_t* call, int64_t index,
                                           int64_t len, int64_t dim, int64_t* out_index) {
  if (index < -len || index >= len) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: index %lld out of range for dim %lld of size "
                      "%lld (expected [%lld, %lld])", call->target, (long long)index,
                      (long long)dim, (long long)len, (long long)-len, (long long)(len - 1));
  }
  *out_index = index < 0 ? index + len : index;
  return NULL;
}

TPJ_LOWERING(tpj_lower_shape_select) {
  tpj_value_t x, piece;
  int64_t dim, index;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, 1, t, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &index));
  TPJ_RETURN_IF_ERROR(tpj_shape_static_index(call, index, t->dims[dim], dim, &index));
  int64_t start[TPJ_MAX_RANK], limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  tpj_shape_full_slice(t, start, limit, stride);
  start[dim] = index;
  limit[dim] = index + 1;
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &piece));
  return tpj_shape_reshape_to_out(g, call, piece, 0, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_narrow) {
  tpj_value_t x;
  int64_t dim, s, len;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, 1, t, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &s));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &len));
  int64_t size = t->dims[dim];
  if (s < -size || s > size) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: start out of range (got %lld, expected [%lld, "
                      "%lld])", call->target, (long long)s, (long long)-size, (long long)size);
  }
  if (s < 0) s += size;
  if (len < 0 || s + len > size) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: start (%lld) + length (%lld) exceeds dimension "
                      "size (%lld)", call->target, (long long)s, (long long)len,
                      (long long)size);
  }
  int64_t start[TPJ_MAX_RANK], limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  tpj_shape_full_slice(t, start, limit, stride);
  start[dim] = s;
  limit[dim] = s + len;
  return tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_constant_pad_nd) {
  tpj_value_t x, pv;
  const int64_t* pad;
  size_t n;
  double value;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &pad, &n));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 2, 0.0, &value));
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (n % 2 != 0 || n / 2 > (size_t)t->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: pad length must be even and at most 2 * rank "
                      "(got %zu for rank %d)", call->target, n, t->rank);
  }
  int64_t low[TPJ_MAX_RANK] = {0}, high[TPJ_MAX_RANK] = {0};
  for (size_t i = 0; i < n / 2; ++i) {
    size_t d = (size_t)t->rank - 1 - i;
    low[d] = pad[2 * i];
    high[d] = pad[2 * i + 1];
    if (t->dims[d] + low[d] + high[d] < 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: padding makes dim %zu negative (size %lld, "
                        "pad %lld, %lld)", call->target, d, (long long)t->dims[d],
                        (long long)low[d], (long long)high[d]);
    }
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, t->dtype, value, &pv));
  if (t->rank == 0) {
    out[0] = x;
    return NULL;
  }
  return tpj_build_pad(g, x, pv, low, high, NULL, (size_t)t->rank, &out[0]);
}

/* ------------------------------------------------------------- scatters -- */

/* Writes `src` (same rank as x) into x at static offsets `at`. */
static tpj_status_t tpj_shape_update_at(tpj_graph_t* g, tpj_value_t x, tpj_value_t src,
                                        const int64_t* at, size_t rank, tpj_value_t* out) {
  tpj_value_t starts[TPJ_MAX_RANK];
  for (size_t i = 0; i < rank; ++i) TPJ_RETURN_IF_ERROR(tpj_shape_s64(g, at[i], &starts[i]));
  return tpj_build_dynamic_update_slice(g, x, src, starts, rank, out);
}

TPJ_LOWERING(tpj_lower_shape_slice_scatter) {
  tpj_value_t x, src;
  int64_t dim, step, s, e;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &src));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, 2, t, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 5, 1, &step));
  TPJ_RETURN_IF_ERROR(tpj_shape_slice_bounds(call, 3, t->dims[dim], step, &s, &e));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, src, t->dtype, &src));
  const tpj_type_t* st = tpj_lower_type(g, src);
  int64_t n = (e - s + step - 1) / step;
  if (st->rank != t->rank || st->dims[dim] != n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: src has the wrong extent along dim %lld (got "
                      "%lld, expected %lld)", call->target, (long long)dim,
                      (long long)(st->rank == t->rank ? st->dims[dim] : -1), (long long)n);
  }
  if (tpj_type_numel(st) == 0) {
    out[0] = x;
    return NULL;
  }
  if (step == 1) {
    int64_t at[TPJ_MAX_RANK] = {0};
    at[dim] = s;
    return tpj_shape_update_at(g, x, src, at, (size_t)t->rank, &out[0]);
  }
  /* Strided: scatter rows start + step * i along dim (src moved dim-first). */
  tpj_type_t it;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, &n, 1, &it));
  tpj_value_t iota, stepv, startv, idx, tsrc;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, 0, &iota));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, step, &stepv));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, &n, 1, s, &startv));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, iota, stepv, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, idx, startv, &idx));
  int64_t perm[TPJ_MAX_RANK], k = 0;
  perm[k++] = dim;
  for (int64_t i = 0; i < t->rank; ++i)
    if (i != dim) perm[k++] = i;
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, src, perm, (size_t)t->rank, &tsrc));
  return tpj_shape_scatter_adv(g, x, &dim, &idx, 1, tsrc, TPJ_SHAPE_COMBINE_REPLACE, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_select_scatter) {
  tpj_value_t x, src, src1;
  int64_t dim, index;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &src));
  const tpj_type_t* t = tpj_lower_type(g, x);
  TPJ_RETURN_IF_ERROR(tpj_shape_arg_dim(call, 2, t, &dim));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &index));
  TPJ_RETURN_IF_ERROR(tpj_shape_static_index(call, index, t->dims[dim], dim, &index));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, src, t->dtype, &src));
  int64_t dims[TPJ_MAX_RANK], at[TPJ_MAX_RANK] = {0};
  for (int32_t i = 0; i < t->rank; ++i) dims[i] = t->dims[i];
  dims[dim] = 1;
  at[dim] = index;
  const tpj_type_t* st = tpj_lower_type(g, src);
  if (tpj_type_numel(st) * t->dims[dim] != tpj_type_numel(t)) {
    char a[96];
    tpj_type_format(st, a, sizeof a);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: src has the wrong shape (got %s)", call->target,
                      a);
  }
  if (tpj_type_numel(t) == 0) {
    out[0] = x;
    return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, dims, (size_t)t->rank, &src1));
  return tpj_shape_update_at(g, x, src1, at, (size_t)t->rank, &out[0]);
}

/* ------------------------------------------------------------ backwards -- */

/* select_backward / slice_backward / diagonal_backward(grad, input_sizes,
 * rest...) are the matching *_scatter of grad into zeros of the input shape:
 * re-issue the call as (zeros, grad, rest...). */
static tpj_status_t tpj_shape_backward_as_scatter(tpj_graph_t* g, const tpj_lower_call_t* call,
                                                  tpj_lower_fn scatter, tpj_value_t* out) {
  if (call->num_args < 2 || call->num_args > 8) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: unexpected argument count (got %zu)",
                      call->target, call->num_args);
  }
  tpj_value_t zeros;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_out_type(call, 0), 0.0, &zeros));
  tpj_arg_t args[8];
  for (size_t i = 0; i < call->num_args; ++i) args[i] = call->args[i];
  args[1] = args[0];
  args[0].kind = TPJ_ARG_KIND_TENSOR;
  args[0].tensor = zeros;
  tpj_lower_call_t inner = *call;
  inner.args = args;
  return scatter(g, &inner, out);
}

TPJ_LOWERING(tpj_lower_shape_select_backward) {
  return tpj_shape_backward_as_scatter(g, call, tpj_lower_shape_select_scatter, out);
}
TPJ_LOWERING(tpj_lower_shape_slice_backward) {
  return tpj_shape_backward_as_scatter(g, call, tpj_lower_shape_slice_scatter, out);
}
TPJ_LOWERING(tpj_lower_shape_diagonal_backward) {
  return tpj_shape_backward_as_scatter(g, call, tpj_lower_shape_diagonal_scatter, out);
}
