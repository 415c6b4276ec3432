/* shape_view.c: lowerings of ops that only rearrange elements (views, permutes,
 * expand, flip, roll, repeat) plus tril/triu, and the small helpers the rest
 * of the shape family shares. Views are functional here: a view is a reshape
 * (or transpose) whose result shape comes from PyTorch's own meta output. */
#include <string.h>

#include "lower/lower_shape.h"

/* ------------------------------------------------------------- helpers -- */

tpj_status_t tpj_shape_reshape_to_out(tpj_graph_t* g, const tpj_lower_call_t* call,
                                      tpj_value_t x, size_t i, tpj_value_t* out) {
  const tpj_type_t* want = tpj_lower_out_type(call, i);
  const tpj_type_t* have = tpj_lower_type(g, x);
  if (!want || !have) {
    return TPJ_STATUS(INTERNAL, "%s: missing type for output %zu", call->target, i);
  }
  if (tpj_type_numel(want) != tpj_type_numel(have)) {
    char a[96], b[96];
    tpj_type_format(have, a, sizeof a);
    tpj_type_format(want, b, sizeof b);
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s: cannot reshape (got %s, expected an element count matching %s)",
                      call->target, a, b);
  }
  if (have->rank == want->rank &&
      memcmp(have->dims, want->dims, sizeof(int64_t) * (size_t)want->rank) == 0) {
    *out = x;
    return NULL;
  }
  return tpj_build_reshape(g, x, want->dims, (size_t)want->rank, out);
}

tpj_status_t tpj_shape_s64(tpj_graph_t* g, int64_t value, tpj_value_t* out) {
  return tpj_build_splat_int(g, TPJ_DTYPE_S64, NULL, 0, value, out);
}

tpj_status_t tpj_shape_empty_out(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 tpj_value_t* out, bool* out_done) {
  *out_done = false;
  const tpj_type_t* want = tpj_lower_out_type(call, 0);
  if (!want || tpj_type_numel(want) != 0) return NULL;
  *out_done = true;
  return tpj_lower_full(g, want, 0.0, out);
}

tpj_status_t tpj_shape_iota_s64(tpj_graph_t* g, const tpj_type_t* shape, int64_t dim,
                                tpj_value_t* out) {
  tpj_type_t t = *shape;
  t.dtype = TPJ_DTYPE_S64;
  return tpj_build_iota(g, &t, dim, out);
}

/* ---------------------------------------------------------------- views -- */

/* view, reshape, _unsafe_view, squeeze*, unsqueeze, alias and their _copy
 * forms: all are "same elements, shape of the expected output". */
TPJ_LOWERING(tpj_lower_shape_view) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  return tpj_shape_reshape_to_out(g, call, x, 0, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_permute) {
  tpj_value_t x;
  const int64_t* dims;
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &dims, &n));
  int64_t rank = tpj_lower_type(g, x)->rank;
  if ((int64_t)n != rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: dims has wrong length (got %zu, expected %lld)",
                      call->target, n, (long long)rank);
  }
  int64_t perm[TPJ_MAX_RANK];
  bool seen[TPJ_MAX_RANK] = {false};
  for (size_t i = 0; i < n; ++i) {
    TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dims[i], rank, &perm[i]));
    if (seen[perm[i]]) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: dims is not a permutation (dim %lld repeats)",
                        call->target, (long long)dims[i]);
    }
    seen[perm[i]] = true;
  }
  if (rank == 0) {
    out[0] = x;
    return NULL;
  }
  return tpj_build_transpose(g, x, perm, n, &out[0]);
}

/* Swaps dims a and b of x (already normalized). */
static tpj_status_t tpj_shape_swap(tpj_graph_t* g, tpj_value_t x, int64_t a, int64_t b,
                                   tpj_value_t* out) {
  int64_t rank = tpj_lower_type(g, x)->rank;
  if (a == b || rank < 2) {
    *out = x;
    return NULL;
  }
  int64_t perm[TPJ_MAX_RANK];
  for (int64_t i = 0; i < rank; ++i) perm[i] = i;
  perm[a] = b;
  perm[b] = a;
  return tpj_build_transpose(g, x, perm, (size_t)rank, out);
}

TPJ_LOWERING(tpj_lower_shape_transpose) {
  tpj_value_t x;
  int64_t d0, d1;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &d0));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &d1));
  int64_t rank = tpj_lower_type(g, x)->rank;
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, d0, rank, &d0));
  TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, d1, rank, &d1));
  return tpj_shape_swap(g, x, d0, d1, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_t) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  int64_t rank = tpj_lower_type(g, x)->rank;
  if (rank > 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expects a tensor with <= 2 dims (got %lld)",
                      call->target, (long long)rank);
  }
  return tpj_shape_swap(g, x, 0, 1, &out[0]);
}

TPJ_LOWERING(tpj_lower_shape_expand) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* want = tpj_lower_out_type(call, 0);
  return tpj_lower_broadcast_to(g, x, want->dims, (size_t)want->rank, &out[0]);
}

/* ------------------------------------------------------ flip, roll, repeat -- */

TPJ_LOWERING(tpj_lower_shape_flip) {
  tpj_value_t x;
  const int64_t* dims;
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &dims, &n));
  int64_t rank = tpj_lower_type(g, x)->rank;
  int64_t norm[TPJ_MAX_RANK];
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    int64_t d;
    TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dims[i], rank, &d));
    if (rank == 0) continue;
    for (size_t j = 0; j < count; ++j) {
      if (norm[j] == d) {
        return TPJ_STATUS(INVALID_ARGUMENT, "%s: dim %lld appears multiple times",
                          call->target, (long long)dims[i]);
      }
    }
    if (count >= TPJ_MAX_RANK) break;
    norm[count++] = d;
  }
  if (count == 0) {
    out[0] = x;
    return NULL;
  }
  return tpj_build_reverse(g, x, norm, count, &out[0]);
}

/* Rolls x by `shift` along dim d (normalized): out[i] = x[(i - shift) mod L]. */
static tpj_status_t tpj_shape_roll_dim(tpj_graph_t* g, tpj_value_t x, int64_t d,
                                       int64_t shift, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t len = t->dims[d];
  if (len == 0 || (shift % len) == 0) {
    *out = x;
    return NULL;
  }
  int64_t s = ((shift % len) + len) % len;
  int64_t start[TPJ_MAX_RANK] = {0}, limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  for (int32_t i = 0; i < t->rank; ++i) {
    limit[i] = t->dims[i];
    stride[i] = 1;
  }
  tpj_value_t parts[2];
  start[d] = len - s;
  limit[d] = len;
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &parts[0]));
  start[d] = 0;
  limit[d] = len - s;
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, &parts[1]));
  return tpj_build_concatenate(g, parts, 2, d, out);
}

TPJ_LOWERING(tpj_lower_shape_roll) {
  tpj_value_t x;
  const int64_t *shifts, *dims;
  size_t ns, nd;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &shifts, &ns));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 2, &dims, &nd));
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (nd == 0) {
    if (ns != 1) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: without dims, shifts must have one entry "
                        "(got %zu)", call->target, ns);
    }
    int64_t numel = tpj_type_numel(t);
    tpj_value_t flat, rolled;
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, &numel, 1, &flat));
    TPJ_RETURN_IF_ERROR(tpj_shape_roll_dim(g, flat, 0, shifts[0], &rolled));
    return tpj_build_reshape(g, rolled, t->dims, (size_t)t->rank, &out[0]);
  }
  if (ns != nd) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: shifts and dims differ in length (got %zu and "
                      "%zu)", call->target, ns, nd);
  }
  tpj_value_t cur = x;
  for (size_t i = 0; i < nd; ++i) {
    int64_t d;
    TPJ_RETURN_IF_ERROR(tpj_lower_norm_dim(call, dims[i], t->rank, &d));
    if (t->rank == 0) continue;
    TPJ_RETURN_IF_ERROR(tpj_shape_roll_dim(g, cur, d, shifts[i], &cur));
  }
  out[0] = cur;
  return NULL;
}

TPJ_LOWERING(tpj_lower_shape_repeat) {
  tpj_value_t x;
  const int64_t* reps;
  size_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, 1, &reps, &n));
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t padded[TPJ_MAX_RANK];
  if (n < (size_t)t->rank && strstr(call->target, "tile")) { /* tile pads with 1s */
    for (size_t i = 0; i < (size_t)t->rank; ++i) {
      padded[i] = i < (size_t)t->rank - n ? 1 : reps[i - ((size_t)t->rank - n)];
    }
    reps = padded;
    n = (size_t)t->rank;
  }
  if (n < (size_t)t->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: number of repeats can not be smaller than the "
                      "number of dims (got %zu, expected >= %d)", call->target, n, t->rank);
  }
  if (2 * n > TPJ_MAX_RANK) {
    return TPJ_LOWER_UNSUPPORTED(call, "more than %d repeats (got %zu)", TPJ_MAX_RANK / 2, n);
  }
  int64_t wide[TPJ_MAX_RANK], bdims[TPJ_MAX_RANK / 2], xdims[TPJ_MAX_RANK / 2];
  size_t lead = n - (size_t)t->rank;
  for (size_t i = 0; i < n; ++i) {
    if (reps[i] < 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: repeats must be non-negative (got %lld)",
                        call->target, (long long)reps[i]);
    }
    xdims[i] = i < lead ? 1 : t->dims[i - lead];
    wide[2 * i] = reps[i];
    wide[2 * i + 1] = xdims[i];
    bdims[i] = (int64_t)(2 * i + 1);
  }
  tpj_value_t xr, b;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, x, xdims, n, &xr));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, xr, wide, 2 * n, bdims, &b));
  return tpj_shape_reshape_to_out(g, call, b, 0, &out[0]);
}

/* ------------------------------------------------------------ tril, triu -- */

/* Keeps x where (col - row) <= k (lower) or >= k (upper), zero elsewhere. */
static tpj_status_t tpj_shape_tri(tpj_graph_t* g, const tpj_lower_call_t* call, bool lower,
                                  tpj_value_t* out) {
  tpj_value_t x;
  int64_t k;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_or(call, 1, 0, &k));
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (t->rank < 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input must have at least 2 dims (got %d)",
                      call->target, t->rank);
  }
  tpj_type_t rc;
  int64_t rcd[2] = {t->dims[t->rank - 2], t->dims[t->rank - 1]};
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, rcd, 2, &rc));
  tpj_value_t row, col, diff, kv, mask, bmask, zero;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &rc, 0, &row));
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &rc, 1, &col));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, col, row, &diff));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, rcd, 2, k, &kv));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, lower ? TPJ_COMPARE_DIR_LE : TPJ_COMPARE_DIR_GE,
                                        diff, kv, &mask));
  int64_t bd[2] = {t->rank - 2, t->rank - 1};
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, mask, t->dims, (size_t)t->rank, bd,
                                                 &bmask));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, 0.0, &zero));
  return tpj_build_select(g, bmask, x, zero, out);
}

TPJ_LOWERING(tpj_lower_shape_tril) { return tpj_shape_tri(g, call, true, &out[0]); }
TPJ_LOWERING(tpj_lower_shape_triu) { return tpj_shape_tri(g, call, false, &out[0]); }
