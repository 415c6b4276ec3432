/* conv.c: aten::convolution and aten::convolution_backward (1d/2d/3d,
 * groups, stride, padding, dilation, transposed). Transposed convolution is a
 * forward convolution with lhs dilation and a flipped, regrouped kernel; weight
 * gradients are a convolution of the input with the output gradient.
 */
#include <string.h>

#include "lower/lower_nn.h"

typedef struct conv_cfg_s {
  size_t nsp;
  int64_t stride[TPJ_MAX_RANK];
  int64_t padding[TPJ_MAX_RANK];
  int64_t dilation[TPJ_MAX_RANK];
  int64_t out_padding[TPJ_MAX_RANK];
  bool transposed;
  int64_t groups;
} conv_cfg_t;

/* Reads stride/padding/dilation/transposed/output_padding/groups starting at
 * argument `first` (they are consecutive in both schemas). */
static tpj_status_t read_cfg(const tpj_lower_call_t* call, size_t first, size_t nsp,
                             conv_cfg_t* cfg) {
  static const int64_t ones[TPJ_MAX_RANK] = {1, 1, 1, 1, 1, 1, 1, 1};
  static const int64_t zeros[TPJ_MAX_RANK] = {0};
  if (nsp < 1 || nsp > 3) {
    return TPJ_LOWER_UNSUPPORTED(call, "only 1d, 2d and 3d convolution (got %zu spatial dims)",
                                 nsp);
  }
  cfg->nsp = nsp;
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first, nsp, ones, cfg->stride));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 1, nsp, zeros, cfg->padding));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 2, nsp, ones, cfg->dilation));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, first + 3, &cfg->transposed));
  TPJ_RETURN_IF_ERROR(tpj_nn_ints(call, first + 4, nsp, zeros, cfg->out_padding));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first + 5, &cfg->groups));
  for (size_t d = 0; d < nsp; ++d) {
    if (cfg->stride[d] < 1 || cfg->dilation[d] < 1 || cfg->padding[d] < 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: bad stride/dilation/padding (got %lld/%lld/%lld)",
                        call->target, (long long)cfg->stride[d], (long long)cfg->dilation[d],
                        (long long)cfg->padding[d]);
    }
  }
  if (cfg->groups < 1) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: groups must be positive (got %lld)", call->target,
                      (long long)cfg->groups);
  }
  return NULL;
}

/* Adds bias (C) along dim 1 of y. */
static tpj_status_t add_bias(tpj_graph_t* g, tpj_value_t y, tpj_value_t bias, tpj_value_t* out) {
  const tpj_type_t* yt = tpj_lower_type(g, y);
  tpj_value_t b;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, bias, yt->dtype, &b));
  int64_t bdim[1] = {1};
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, b, yt->dims, (size_t)yt->rank, bdim, &b));
  return tpj_build_binary(g, TPJ_BINARY_OP_ADD, y, b, out);
}

/* Inserts (unsqueeze) or removes (squeeze) a leading batch dim of size 1. */
static tpj_status_t batchify(tpj_graph_t* g, tpj_value_t x, bool add, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t dims[TPJ_MAX_RANK];
  size_t r = (size_t)t->rank;
  if (add) {
    dims[0] = 1;
    memcpy(dims + 1, t->dims, r * sizeof(int64_t));
    return tpj_build_reshape(g, x, dims, r + 1, out);
  }
  memcpy(dims, t->dims + 1, (r - 1) * sizeof(int64_t));
  return tpj_build_reshape(g, x, dims, r - 1, out);
}

TPJ_LOWERING(tpj_lower_nn_convolution) {
  tpj_value_t x, w;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &w));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* wt = tpj_lower_type(g, w);
  const tpj_type_t* xt = tpj_lower_type(g, x);
  if (wt->rank < 3 || (xt->rank != wt->rank && xt->rank != wt->rank - 1)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input rank %d does not match weight rank %d",
                      call->target, xt->rank, wt->rank);
  }
  bool unbatched = xt->rank == wt->rank - 1;
  conv_cfg_t cfg;
  TPJ_RETURN_IF_ERROR(read_cfg(call, 3, (size_t)wt->rank - 2, &cfg));
  if (unbatched) TPJ_RETURN_IF_ERROR(batchify(g, x, true, &x));
  xt = tpj_lower_type(g, x);
  /* f16/bf16 accumulate in f32 and convert once at the end (PyTorch CPU). */
  tpj_dtype_t acc = tpj_nn_acc_dtype(ot->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, w, acc, &w));
  tpj_value_t y;
  if (!cfg.transposed) {
    TPJ_RETURN_IF_ERROR(tpj_nn_conv_forward(g, x, w, cfg.nsp, cfg.stride, cfg.padding,
                                            cfg.dilation, cfg.groups, &y));
  } else {
    int64_t osp[TPJ_MAX_RANK];
    for (size_t d = 0; d < cfg.nsp; ++d) {
      osp[d] = (xt->dims[2 + d] - 1) * cfg.stride[d] - 2 * cfg.padding[d] +
               cfg.dilation[d] * (wt->dims[2 + d] - 1) + cfg.out_padding[d] + 1;
    }
    TPJ_RETURN_IF_ERROR(tpj_nn_conv_transposed(g, x, w, cfg.nsp, cfg.stride, cfg.padding,
                                               cfg.dilation, cfg.groups, osp, &y));
  }
  if (!tpj_lower_arg_is_none(call, 2)) {
    tpj_value_t b;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &b));
    TPJ_RETURN_IF_ERROR(add_bias(g, y, b, &y));
  }
  if (unbatched) TPJ_RETURN_IF_ERROR(batchify(g, y, false, &y));
  return tpj_lower_convert(g, y, ot->dtype, &out[0]);
}

/* grad of the kernel of a forward convolution: x (N, C, sp), go (N, O, osp)
 * -> (O, C/groups, k). Channels play the batch role, the batch is contracted. */
static tpj_status_t weight_grad(tpj_graph_t* g, tpj_value_t x, tpj_value_t go,
                                const conv_cfg_t* cfg, const int64_t* ksize,
                                tpj_value_t* out) {
  const tpj_type_t* xt = tpj_lower_type(g, x);
  size_t r = (size_t)xt->rank;
  int64_t perm[TPJ_MAX_RANK] = {1, 0};
  for (size_t d = 2; d < r; ++d) perm[d] = (int64_t)d;
  tpj_value_t lhs, rhs, y;
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, x, perm, r, &lhs));
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, go, perm, r, &rhs));
  int64_t pads[2 * TPJ_MAX_RANK];
  for (size_t d = 0; d < cfg->nsp; ++d) pads[2 * d] = pads[2 * d + 1] = cfg->padding[d];
  tpj_conv_params_t p = {cfg->nsp, cfg->dilation, pads, NULL, cfg->stride, 1, cfg->groups};
  TPJ_RETURN_IF_ERROR(tpj_build_convolution(g, lhs, rhs, &p, &y));
  /* y: (C/groups, O, R...) with R >= k; keep the first k. */
  const tpj_type_t* yt = tpj_lower_type(g, y);
  int64_t start[TPJ_MAX_RANK] = {0}, limit[TPJ_MAX_RANK], step[TPJ_MAX_RANK];
  for (size_t d = 0; d < r; ++d) {
    limit[d] = d < 2 ? yt->dims[d] : ksize[d - 2];
    step[d] = 1;
  }
  TPJ_RETURN_IF_ERROR(tpj_build_slice(g, y, start, limit, step, r, &y));
  return tpj_build_transpose(g, y, perm, r, out);
}

/* Sum of go over every dim but 1, in the accumulation dtype. */
static tpj_status_t bias_grad(tpj_graph_t* g, tpj_value_t go, tpj_dtype_t dtype,
                              tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, go);
  int64_t dims[TPJ_MAX_RANK];
  size_t n = 0;
  for (int32_t d = 0; d < t->rank; ++d) {
    if (d != 1) dims[n++] = d;
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, go, tpj_nn_acc_dtype(t->dtype), &v));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, v, TPJ_REDUCE_KIND_ADD, dims, n, &v));
  return tpj_lower_convert(g, v, dtype, out);
}

/* Grad of the input of a transposed convolution: a forward convolution of go,
 * cropped to the input's spatial size. */
static tpj_status_t transposed_input_grad(tpj_graph_t* g, tpj_value_t go, tpj_value_t w,
                                          const conv_cfg_t* cfg, const tpj_type_t* xt,
                                          tpj_value_t* out) {
  tpj_value_t y;
  TPJ_RETURN_IF_ERROR(tpj_nn_conv_forward(g, go, w, cfg->nsp, cfg->stride, cfg->padding,
                                          cfg->dilation, cfg->groups, &y));
  const tpj_type_t* yt = tpj_lower_type(g, y);
  if (tpj_type_equal(yt, xt)) {
    *out = y;
    return NULL;
  }
  int64_t start[TPJ_MAX_RANK] = {0}, step[TPJ_MAX_RANK];
  for (int32_t d = 0; d < xt->rank; ++d) step[d] = 1;
  return tpj_build_slice(g, y, start, xt->dims, step, (size_t)xt->rank, out);
}

TPJ_LOWERING(tpj_lower_nn_convolution_backward) {
  tpj_value_t go, x, w;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 2, &w));
  const tpj_type_t* xt = tpj_lower_type(g, x);
  const tpj_type_t* wt = tpj_lower_type(g, w);
  if (wt->rank < 3 || xt->rank != wt->rank) {
    return TPJ_LOWER_UNSUPPORTED(call, "input rank must equal weight rank (got %d and %d)",
                                 xt->rank, wt->rank);
  }
  conv_cfg_t cfg;
  TPJ_RETURN_IF_ERROR(read_cfg(call, 4, (size_t)wt->rank - 2, &cfg));
  tpj_type_t xtc = *xt;
  int64_t ksize[TPJ_MAX_RANK];
  memcpy(ksize, wt->dims + 2, cfg.nsp * sizeof(int64_t));
  for (size_t i = 0; i < 3; ++i) out[i] = TPJ_VALUE_NONE;
  for (size_t i = 0; i < 3 && i < call->num_outs; ++i) {
    const tpj_type_t* ot = &call->out_types[i];
    if (ot->dtype == TPJ_DTYPE_INVALID) continue;
    tpj_value_t a = go, b = x, k = w;
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, a, ot->dtype, &a));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, b, ot->dtype, &b));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, k, ot->dtype, &k));
    if (i == 0 && !cfg.transposed) {
      TPJ_RETURN_IF_ERROR(tpj_nn_conv_transposed(g, a, k, cfg.nsp, cfg.stride, cfg.padding,
                                                 cfg.dilation, cfg.groups, xtc.dims + 2,
                                                 &out[0]));
    } else if (i == 0) {
      xtc.dtype = ot->dtype;
      TPJ_RETURN_IF_ERROR(transposed_input_grad(g, a, k, &cfg, &xtc, &out[0]));
    } else if (i == 1 && !cfg.transposed) {
      TPJ_RETURN_IF_ERROR(weight_grad(g, b, a, &cfg, ksize, &out[1]));
    } else if (i == 1) {
      TPJ_RETURN_IF_ERROR(weight_grad(g, a, b, &cfg, ksize, &out[1]));
    } else {
      TPJ_RETURN_IF_ERROR(bias_grad(g, go, ot->dtype, &out[2]));
    }
  }
  return NULL;
}
