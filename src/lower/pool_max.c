/* pool_max.c: max_pool{1,2,3}d_with_indices, adaptive_max_pool{2,3}d and
 * their backward. PyTorch
 * returns flat in-plane indices of the maximum (first max wins, NaN wins), so
 * the forward walks the kernel offsets in order with a running (value, index)
 * pair; the backward scatter-adds the gradient into the indexed positions.
 */
#include <stdlib.h>
#include <string.h>

#include "lower/lower_nn.h"

typedef struct pool_cfg_s {
  size_t nsp;
  int64_t in[3], out[3], k[3], s[3], p[3], d[3];
} pool_cfg_t;

/* Reads kernel/stride/padding/dilation/ceil_mode from arguments first..first+4
 * and computes output sizes for the spatial dims of input type xt. */
static tpj_status_t read_pool(const tpj_lower_call_t* call, size_t first, const tpj_type_t* xt,
                              pool_cfg_t* c) {
  static const int64_t ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
  c->nsp = tpj_nn_target_nsp(call->target);
  if (c->nsp == 0) return TPJ_LOWER_UNSUPPORTED(call, "unknown spatial rank");
  if (xt->rank != (int32_t)c->nsp + 1 && xt->rank != (int32_t)c->nsp + 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input rank (got %d, expected %zu or %zu)",
                      call->target, xt->rank, c->nsp + 1, c->nsp + 2);
  }
  bool ceil_mode;
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first, c->nsp, NULL, c->k));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 1, c->nsp, c->k, c->s));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 2, c->nsp, zeros, c->p));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 3, c->nsp, ones, c->d));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, first + 4, &ceil_mode));
  for (size_t i = 0; i < c->nsp; ++i) {
    c->in[i] = xt->dims[xt->rank - (int32_t)c->nsp + (int32_t)i];
    TPJ_RETURN_IF_ERROR(tpj_nn_pool_out_size(call, c->in[i], c->k[i], c->p[i], c->s[i],
                                             c->d[i], ceil_mode, &c->out[i]));
  }
  return NULL;
}

/* Per-offset position data on the output grid (out...): flat in-plane index
 * (s64) and an in-bounds mask. off: kernel offset per spatial dim. */
static tpj_status_t offset_positions(tpj_graph_t* g, const pool_cfg_t* c, const int64_t* off,
                                     tpj_value_t* out_flat, tpj_value_t* out_valid) {
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, c->out, c->nsp, &t));
  tpj_value_t flat = TPJ_VALUE_NONE, valid = TPJ_VALUE_NONE;
  int64_t plane_stride = 1;
  for (size_t i = c->nsp; i-- > 0;) {
    tpj_value_t pos, sc, v, lo, hi, ok;
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &t, (int64_t)i, &pos));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, (double)c->s[i], &sc));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, pos, sc, &pos));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, (double)(off[i] * c->d[i] - c->p[i]), &sc));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, pos, sc, &pos));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, 0.0, &lo));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, (double)c->in[i], &hi));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GE, pos, lo, &ok));
    TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, pos, hi, &v));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, ok, v, &ok));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, (double)plane_stride, &sc));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, pos, sc, &pos));
    if (flat == TPJ_VALUE_NONE) {
      flat = pos;
      valid = ok;
    } else {
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, flat, pos, &flat));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, valid, ok, &valid));
    }
    plane_stride *= c->in[i];
  }
  *out_flat = flat;
  *out_valid = valid;
  return NULL;
}

/* Broadcasts a (out...) value to (batch, out...). */
static tpj_status_t to_batch(tpj_graph_t* g, tpj_value_t v, const int64_t* dims, size_t nsp,
                             tpj_value_t* out) {
  int64_t bd[3] = {1, 2, 3};
  return tpj_build_broadcast_in_dim(g, v, dims, nsp + 1, bd, out);
}

/* One step of the running max: candidate values cand at positions (flat,
 * valid); `seen` tracks grid positions that already had a valid candidate. */
static tpj_status_t max_step(tpj_graph_t* g, const int64_t* bdims, size_t nsp, tpj_value_t cand,
                             tpj_value_t flat, tpj_value_t valid, tpj_value_t* seen,
                             tpj_value_t* best, tpj_value_t* idx) {
  tpj_value_t first, notseen, gt, nan, upd, validb, firstb, flatb;
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NOT, *seen, &notseen));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, valid, notseen, &first));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, *seen, valid, seen));
  TPJ_RETURN_IF_ERROR(to_batch(g, valid, bdims, nsp, &validb));
  TPJ_RETURN_IF_ERROR(to_batch(g, first, bdims, nsp, &firstb));
  TPJ_RETURN_IF_ERROR(to_batch(g, flat, bdims, nsp, &flatb));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GT, cand, *best, &gt));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, cand, cand, &nan));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, gt, nan, &upd));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, upd, validb, &upd));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, upd, firstb, &upd));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, upd, cand, *best, best));
  return tpj_build_select(g, upd, flatb, *idx, idx);
}

/* Strided slice of the padded input for one kernel offset. */
static tpj_status_t offset_slice(tpj_graph_t* g, tpj_value_t xp, const pool_cfg_t* c,
                                 const int64_t* off, const int64_t* bdims, tpj_value_t* out) {
  int64_t start[4] = {0}, limit[4] = {bdims[0]}, step[4] = {1};
  for (size_t i = 0; i < c->nsp; ++i) {
    start[1 + i] = off[i] * c->d[i];
    limit[1 + i] = start[1 + i] + (c->out[i] - 1) * c->s[i] + 1;
    step[1 + i] = c->s[i];
  }
  return tpj_build_slice(g, xp, start, limit, step, c->nsp + 1, out);
}

/* Pads the flat-batch input so every offset slice is in range. */
static tpj_status_t pad_input(tpj_graph_t* g, tpj_value_t x2, const pool_cfg_t* c,
                              tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x2);
  int64_t lo[4] = {0}, hi[4] = {0};
  for (size_t i = 0; i < c->nsp; ++i) {
    lo[1 + i] = c->p[i];
    int64_t need = (c->k[i] - 1) * c->d[i] + (c->out[i] - 1) * c->s[i] + 1 - c->p[i] - c->in[i];
    hi[1 + i] = need > 0 ? need : 0;
  }
  tpj_value_t zero;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, t->dtype, 0.0, &zero));
  return tpj_build_pad(g, x2, zero, lo, hi, NULL, c->nsp + 1, out);
}

TPJ_LOWERING(tpj_lower_nn_max_pool_with_indices) {
  tpj_value_t x, x2, xp;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  pool_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_pool(call, 1, xt, &c));
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, x, c.nsp, &x2));
  TPJ_RETURN_IF_ERROR(pad_input(g, x2, &c, &xp));
  int64_t bdims[4] = {tpj_lower_type(g, x2)->dims[0]};
  memcpy(bdims + 1, c.out, c.nsp * sizeof(int64_t));
  tpj_value_t best, idx, seen;
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, xt->dtype, bdims, c.nsp + 1, 0.0, &best));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, TPJ_DTYPE_S64, bdims, c.nsp + 1, 0.0, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, TPJ_DTYPE_PRED, c.out, c.nsp, 0.0, &seen));
  int64_t total = 1;
  for (size_t i = 0; i < c.nsp; ++i) total *= c.k[i];
  for (int64_t o = 0; o < total; ++o) {
    int64_t off[3] = {0}, rem = o;
    for (size_t i = c.nsp; i-- > 0;) {
      off[i] = rem % c.k[i];
      rem /= c.k[i];
    }
    tpj_value_t cand, flat, valid;
    TPJ_RETURN_IF_ERROR(offset_slice(g, xp, &c, off, bdims, &cand));
    TPJ_RETURN_IF_ERROR(offset_positions(g, &c, off, &flat, &valid));
    TPJ_RETURN_IF_ERROR(max_step(g, bdims, c.nsp, cand, flat, valid, &seen, &best, &idx));
  }
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, best, ot->dims, (size_t)ot->rank, &out[0]));
  return tpj_build_reshape(g, idx, ot->dims, (size_t)ot->rank, &out[1]);
}

/* Scatter-adds src (rows, n_src) into zeros (rows, n_dst) at column idx.
 * Both flattened: global index = row * n_dst + idx. */
static tpj_status_t scatter_add_rows(tpj_graph_t* g, tpj_value_t src, tpj_value_t idx,
                                     int64_t rows, int64_t n_src, int64_t n_dst,
                                     tpj_value_t* out) {
  const tpj_type_t* st = tpj_lower_type(g, src);
  int64_t d2[2] = {rows, n_src};
  tpj_type_t it;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, d2, 2, &it));
  tpj_value_t row, sc, gidx, upd, zero;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &it, 0, &row));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &it, (double)n_dst, &sc));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, row, sc, &row));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, idx, d2, 2, &gidx));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, gidx, TPJ_DTYPE_S64, &gidx));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, gidx, row, &gidx));
  int64_t n1[2] = {rows * n_src, 1}, n0[1] = {rows * n_src}, nd[1] = {rows * n_dst};
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, gidx, n1, 2, &gidx));
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, src, n0, 1, &upd));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, st->dtype, nd, 1, 0.0, &zero));
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_lower_reduce_body(g, st->dtype, TPJ_REDUCE_KIND_ADD, &body));
  int64_t ins[1] = {0}, map[1] = {0};
  tpj_scatter_dims_t sd = {NULL, 0, ins, 1, NULL, 0, NULL, 0, map, 1, 1, false, false};
  return tpj_build_scatter(g, zero, gidx, upd, &sd, body, out);
}

TPJ_LOWERING(tpj_lower_nn_max_pool_with_indices_backward) {
  tpj_value_t go, x, idx;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  bool adaptive = strstr(call->target, "adaptive") != NULL;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, adaptive ? 2 : 7, &idx));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  const tpj_type_t* gt = tpj_lower_type(g, go);
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  size_t nsp = tpj_nn_target_nsp(call->target);
  if (nsp == 0 || xt->rank < (int32_t)nsp + 1 || gt->rank != xt->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: ranks of grad_output and self (got %d and %d)",
                      call->target, gt->rank, xt->rank);
  }
  int64_t rows = 1, n_src = 1, n_dst = 1;
  size_t lead = (size_t)xt->rank - nsp;
  for (size_t d = 0; d < lead; ++d) rows *= xt->dims[d];
  for (size_t d = lead; d < (size_t)xt->rank; ++d) {
    n_src *= gt->dims[d];
    n_dst *= xt->dims[d];
  }
  tpj_value_t src, y;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, go, tpj_nn_acc_dtype(ot->dtype), &src));
  TPJ_RETURN_IF_ERROR(scatter_add_rows(g, src, idx, rows, n_src, n_dst, &y));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, y, ot->dtype, &y));
  return tpj_build_reshape(g, y, ot->dims, (size_t)ot->rank, &out[0]);
}

/* Gathers x2 (batch, in...) along every spatial dim at the positions of all
 * bin offsets: result (batch, out_0, kmax_0, out_1, kmax_1, ...). Positions
 * past a bin's end are clamped (and masked later). */
tpj_status_t tpj_nn_gather_bins(tpj_graph_t* g, tpj_value_t x2, size_t nsp, const int64_t* in,
                                const int64_t* outs, const int64_t* kmax, tpj_value_t* out) {
  tpj_value_t cur = x2;
  for (size_t i = 0; i < nsp; ++i) {
    const tpj_type_t* t = tpj_lower_type(g, cur);
    int64_t dim = (int64_t)(1 + 2 * i), n = outs[i] * kmax[i];
    double* pos = malloc((size_t)n * sizeof(double));
    if (pos == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "adaptive_max_pool: out of memory");
    for (int64_t o = 0; o < outs[i]; ++o) {
      for (int64_t a = 0; a < kmax[i]; ++a) {
        int64_t p = (o * in[i]) / outs[i] + a;
        pos[o * kmax[i] + a] = (double)(p < in[i] ? p : in[i] - 1);
      }
    }
    int64_t id[2] = {n, 1};
    tpj_type_t it;
    tpj_value_t iv;
    tpj_status_t st = tpj_type_init(TPJ_DTYPE_S64, id, 2, &it);
    if (st == NULL) st = tpj_nn_constant(g, &it, pos, &iv);
    free(pos);
    TPJ_RETURN_IF_ERROR(st);
    int64_t offset[TPJ_MAX_RANK], sizes[TPJ_MAX_RANK], coll[1] = {dim}, map[1] = {dim};
    size_t no = 0;
    for (int32_t d = 0; d < t->rank; ++d) {
      sizes[d] = d == dim ? 1 : t->dims[d];
      if (d != dim) offset[no++] = d;
    }
    tpj_gather_dims_t gd = {offset, no, coll, 1, NULL, 0, NULL, 0, map, 1, 1,
                            sizes, (size_t)t->rank, false};
    TPJ_RETURN_IF_ERROR(tpj_build_gather(g, cur, iv, &gd, &cur));
    int64_t nd[TPJ_MAX_RANK];
    memcpy(nd, t->dims, (size_t)t->rank * sizeof(int64_t));
    nd[dim] = outs[i];
    nd[dim + 1] = kmax[i];
    for (int32_t d = dim + 1; d < t->rank; ++d) nd[d + 1] = t->dims[d];
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, cur, nd, (size_t)t->rank + 1, &cur));
  }
  *out = cur;
  return NULL;
}

/* Host constants for one offset tuple: flat index (s64) and validity (pred)
 * over the output grid. */
tpj_status_t tpj_nn_bin_positions(tpj_graph_t* g, size_t nsp, const int64_t* in,
                                  const int64_t* outs, const int64_t* off,
                                  tpj_value_t* out_flat, tpj_value_t* out_valid) {
  int64_t n = 1;
  for (size_t i = 0; i < nsp; ++i) n *= outs[i];
  double* buf = malloc(2 * (size_t)n * sizeof(double));
  if (buf == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "adaptive_max_pool: out of memory");
  for (int64_t e = 0; e < n; ++e) {
    int64_t rem = e, flat = 0, stride = 1;
    bool ok = true;
    for (size_t i = nsp; i-- > 0;) {
      int64_t o = rem % outs[i];
      rem /= outs[i];
      int64_t s = (o * in[i]) / outs[i], end = ((o + 1) * in[i] + outs[i] - 1) / outs[i];
      int64_t p = s + off[i];
      if (p >= end) ok = false;
      flat += (p < in[i] ? p : in[i] - 1) * stride;
      stride *= in[i];
    }
    buf[e] = (double)flat;
    buf[n + e] = ok ? 1.0 : 0.0;
  }
  tpj_type_t t;
  tpj_value_t zero;
  tpj_status_t st = tpj_type_init(TPJ_DTYPE_S64, outs, nsp, &t);
  if (st == NULL) st = tpj_nn_constant(g, &t, buf, out_flat);
  if (st == NULL) st = tpj_nn_constant(g, &t, buf + n, out_valid);
  free(buf);
  TPJ_RETURN_IF_ERROR(st);
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &t, 0.0, &zero));
  return tpj_build_compare(g, TPJ_COMPARE_DIR_NE, *out_valid, zero, out_valid);
}

/* Slice of the gathered bins for one offset tuple -> (batch, out...). */
tpj_status_t tpj_nn_bin_slice(tpj_graph_t* g, tpj_value_t bins, size_t nsp, const int64_t* off,
                              const int64_t* bdims, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, bins);
  int64_t start[TPJ_MAX_RANK] = {0}, limit[TPJ_MAX_RANK], step[TPJ_MAX_RANK];
  for (int32_t d = 0; d < t->rank; ++d) {
    limit[d] = t->dims[d];
    step[d] = 1;
  }
  for (size_t i = 0; i < nsp; ++i) {
    start[2 + 2 * i] = off[i];
    limit[2 + 2 * i] = off[i] + 1;
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, bins, start, limit, step, (size_t)t->rank, &v));
  return tpj_build_reshape(g, v, bdims, nsp + 1, out);
}

TPJ_LOWERING(tpj_lower_nn_adaptive_max_pool) {
  tpj_value_t x, x2, bins = TPJ_VALUE_NONE;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  size_t nsp = tpj_nn_target_nsp(call->target);
  if (nsp == 0 || ot->rank != xt->rank) return TPJ_LOWER_UNSUPPORTED(call, "bad spatial rank");
  int64_t in[3], outs[3], kmax[3], total = 1;
  for (size_t i = 0; i < nsp; ++i) {
    in[i] = xt->dims[xt->rank - (int32_t)nsp + (int32_t)i];
    outs[i] = ot->dims[ot->rank - (int32_t)nsp + (int32_t)i];
    if (in[i] < 1 || outs[i] < 1) return TPJ_STATUS(INVALID_ARGUMENT, "%s: empty size", call->target);
    kmax[i] = 0;
    for (int64_t o = 0; o < outs[i]; ++o) {
      int64_t len = ((o + 1) * in[i] + outs[i] - 1) / outs[i] - (o * in[i]) / outs[i];
      if (len > kmax[i]) kmax[i] = len;
    }
    total *= kmax[i];
  }
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, x, nsp, &x2));
  TPJ_RETURN_IF_ERROR(tpj_nn_gather_bins(g, x2, nsp, in, outs, kmax, &bins));
  int64_t bdims[4] = {tpj_lower_type(g, x2)->dims[0]};
  memcpy(bdims + 1, outs, nsp * sizeof(int64_t));
  tpj_value_t best, idx, seen;
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, xt->dtype, bdims, nsp + 1, 0.0, &best));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, TPJ_DTYPE_S64, bdims, nsp + 1, 0.0, &idx));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, TPJ_DTYPE_PRED, outs, nsp, 0.0, &seen));
  for (int64_t e = 0; e < total; ++e) {
    int64_t off[3] = {0}, rem = e;
    for (size_t i = nsp; i-- > 0;) {
      off[i] = rem % kmax[i];
      rem /= kmax[i];
    }
    tpj_value_t cand, flat, valid;
    TPJ_RETURN_IF_ERROR(tpj_nn_bin_slice(g, bins, nsp, off, bdims, &cand));
    TPJ_RETURN_IF_ERROR(tpj_nn_bin_positions(g, nsp, in, outs, off, &flat, &valid));
    TPJ_RETURN_IF_ERROR(max_step(g, bdims, nsp, cand, flat, valid, &seen, &best, &idx));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, best, ot->dims, (size_t)ot->rank, &out[0]));
  return tpj_build_reshape(g, idx, ot->dims, (size_t)ot->rank, &out[1]);
}
