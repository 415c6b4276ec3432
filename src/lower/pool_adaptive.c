/* pool_adaptive.c: _adaptive_avg_pool{2,3}d and their backward. Output bin i
 * of a dim covers [floor(i*In/Out), ceil((i+1)*In/Out)). Divisible sizes are a
 * plain reduce_window, other sizes a masked sum over gathered bin offsets; the
 * backward is a separable product with the transposed averaging matrices.
 */
#include <stdlib.h>
#include <string.h>

#include "lower/lower_nn.h"

static int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static int64_t bin_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

/* Averaging matrix of one dim: (out, in) or, transposed, (in, out). */
static double* averaging_matrix(int64_t in, int64_t out, bool transposed) {
  double* m = calloc((size_t)(in * out), sizeof(double));
  if (m == NULL) return NULL;
  for (int64_t o = 0; o < out; ++o) {
    int64_t s = bin_start(o, in, out), e = bin_end(o, in, out);
    for (int64_t i = s; i < e; ++i) {
      if (transposed) {
        m[i * out + o] = 1.0 / (double)(e - s);
      } else {
        m[o * in + i] = 1.0 / (double)(e - s);
      }
    }
  }
  return m;
}

/* Applies the averaging matrices of every spatial dim to v (batch, sp...). */
static tpj_status_t apply_matrices(tpj_graph_t* g, tpj_value_t v, size_t nsp, const int64_t* in,
                                   const int64_t* outs, bool transposed, tpj_value_t* out) {
  double* mats[3] = {NULL, NULL, NULL};
  int64_t sizes[3];
  tpj_status_t st = NULL;
  for (size_t i = 0; i < nsp && st == NULL; ++i) {
    mats[i] = averaging_matrix(in[i], outs[i], transposed);
    sizes[i] = transposed ? in[i] : outs[i];
    if (mats[i] == NULL) st = TPJ_STATUS(RESOURCE_EXHAUSTED, "adaptive_avg_pool: out of memory");
  }
  if (st == NULL) {
    st = tpj_nn_separable_matmul(g, v, nsp, (const double* const*)mats, sizes, out);
  }
  for (size_t i = 0; i < nsp; ++i) free(mats[i]);
  return st;
}

/* Reads the spatial sizes of self (in) and of the output type (out). */
static tpj_status_t adaptive_sizes(const tpj_lower_call_t* call, const tpj_type_t* xt,
                                   const tpj_type_t* ot, size_t* nsp, int64_t* in,
                                   int64_t* outs) {
  *nsp = tpj_nn_target_nsp(call->target);
  if (*nsp == 0 || xt->rank < (int32_t)*nsp + 1 || xt->rank != ot->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: bad input rank (got %d)", call->target, xt->rank);
  }
  for (size_t i = 0; i < *nsp; ++i) {
    in[i] = xt->dims[xt->rank - (int32_t)*nsp + (int32_t)i];
    outs[i] = ot->dims[ot->rank - (int32_t)*nsp + (int32_t)i];
    if (outs[i] < 1 || in[i] < 1) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: empty spatial size (got in %lld, out %lld)",
                        call->target, (long long)in[i], (long long)outs[i]);
    }
  }
  return NULL;
}

/* General case: sums the gathered bin offsets in window order (masked past
 * each bin's end) and divides by the bin sizes, as PyTorch does. */
static tpj_status_t masked_bin_mean(tpj_graph_t* g, tpj_value_t v, size_t nsp,
                                    const int64_t* in, const int64_t* outs, tpj_value_t* out) {
  int64_t kmax[3], total = 1, n = 1;
  for (size_t i = 0; i < nsp; ++i) {
    kmax[i] = 0;
    for (int64_t o = 0; o < outs[i]; ++o) {
      int64_t len = bin_end(o, in[i], outs[i]) - bin_start(o, in[i], outs[i]);
      if (len > kmax[i]) kmax[i] = len;
    }
    total *= kmax[i];
    n *= outs[i];
  }
  const tpj_type_t* vt = tpj_lower_type(g, v);
  int64_t bdims[4] = {vt->dims[0]};
  memcpy(bdims + 1, outs, nsp * sizeof(int64_t));
  tpj_value_t bins, sum, zero;
  TPJ_RETURN_IF_ERROR(tpj_nn_gather_bins(g, v, nsp, in, outs, kmax, &bins));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, vt->dtype, bdims, nsp + 1, 0.0, &sum));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, vt->dtype, bdims, nsp + 1, 0.0, &zero));
  int64_t bd[3] = {1, 2, 3};
  for (int64_t e = 0; e < total; ++e) {
    int64_t off[3] = {0}, rem = e;
    for (size_t i = nsp; i-- > 0;) {
      off[i] = rem % kmax[i];
      rem /= kmax[i];
    }
    tpj_value_t cand, flat, valid;
    TPJ_RETURN_IF_ERROR(tpj_nn_bin_slice(g, bins, nsp, off, bdims, &cand));
    TPJ_RETURN_IF_ERROR(tpj_nn_bin_positions(g, nsp, in, outs, off, &flat, &valid));
    TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, valid, bdims, nsp + 1, bd, &valid));
    TPJ_RETURN_IF_ERROR(tpj_build_select(g, valid, cand, zero, &cand));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, sum, cand, &sum));
  }
  double* cnt = malloc((size_t)n * sizeof(double));
  if (cnt == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "adaptive_avg_pool: out of memory");
  for (int64_t e = 0; e < n; ++e) {
    int64_t rem = e;
    double c = 1.0;
    for (size_t i = nsp; i-- > 0;) {
      int64_t o = rem % outs[i];
      rem /= outs[i];
      c *= (double)(bin_end(o, in[i], outs[i]) - bin_start(o, in[i], outs[i]));
    }
    cnt[e] = c;
  }
  tpj_type_t ct;
  tpj_value_t div;
  tpj_status_t st = tpj_type_init(vt->dtype, outs, nsp, &ct);
  if (st == NULL) st = tpj_nn_constant(g, &ct, cnt, &div);
  free(cnt);
  TPJ_RETURN_IF_ERROR(st);
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, div, bdims, nsp + 1, bd, &div));
  return tpj_build_binary(g, TPJ_BINARY_OP_DIV, sum, div, out);
}

TPJ_LOWERING(tpj_lower_nn_adaptive_avg_pool) {
  tpj_value_t x, v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  size_t nsp;
  int64_t in[3], outs[3], k[3];
  TPJ_RETURN_IF_ERROR(adaptive_sizes(call, tpj_lower_type(g, x), ot, &nsp, in, outs));
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, x, nsp, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, tpj_nn_acc_dtype(ot->dtype), &v));
  bool divisible = true;
  double count = 1.0;
  for (size_t i = 0; i < nsp; ++i) {
    if (in[i] % outs[i] != 0) divisible = false;
    k[i] = in[i] / outs[i];
    count *= (double)k[i];
  }
  if (divisible) {
    int64_t wd[4] = {1}, pads[8] = {0};
    memcpy(wd + 1, k, nsp * sizeof(int64_t));
    tpj_window_t w = {nsp + 1, wd, wd, NULL, NULL, pads};
    tpj_value_t zero, div;
    int32_t body;
    tpj_dtype_t dt = tpj_lower_type(g, v)->dtype;
    TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, dt, 0.0, &zero));
    TPJ_RETURN_IF_ERROR(tpj_lower_reduce_body(g, dt, TPJ_REDUCE_KIND_ADD, &body));
    TPJ_RETURN_IF_ERROR(tpj_build_reduce_window(g, v, zero, &w, body, &v));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, v), count, &div));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_DIV, v, div, &v));
  } else {
    TPJ_RETURN_IF_ERROR(masked_bin_mean(g, v, nsp, in, outs, &v));
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, ot->dtype, &v));
  return tpj_build_reshape(g, v, ot->dims, (size_t)ot->rank, &out[0]);
}

TPJ_LOWERING(tpj_lower_nn_adaptive_avg_pool_backward) {
  tpj_value_t go, x, v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* gt = tpj_lower_type(g, go);
  size_t nsp;
  int64_t in[3], outs[3];
  TPJ_RETURN_IF_ERROR(adaptive_sizes(call, tpj_lower_type(g, x), gt, &nsp, in, outs));
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, go, nsp, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, tpj_nn_acc_dtype(ot->dtype), &v));
  TPJ_RETURN_IF_ERROR(apply_matrices(g, v, nsp, in, outs, true, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, ot->dtype, &v));
  return tpj_build_reshape(g, v, ot->dims, (size_t)ot->rank, &out[0]);
}
