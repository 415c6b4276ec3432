/* conv_util.c: helpers shared by the nn lowering family: int-list arguments
 * with PyTorch's repeat-one-entry rule, pooling output sizes, host constants
 * and separable constant-matrix products (adaptive pooling, interpolation).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower_nn.h"

tpj_status_t tpj_nn_ints(const tpj_lower_call_t* call, size_t i, size_t n,
                         const int64_t* dflt, int64_t* out_ints) {
  const int64_t* ints = NULL;
  size_t count = 0;
  if (!tpj_lower_arg_is_none(call, i)) {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_int_list(call, i, &ints, &count));
  }
  if (count == 0) {
    if (dflt == NULL) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: empty list (expected %zu ints)",
                        call->target, i, n);
    }
    memcpy(out_ints, dflt, n * sizeof(int64_t));
    return NULL;
  }
  if (count != 1 && count != n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: wrong length (got %zu, expected 1 or %zu)",
                      call->target, i, count, n);
  }
  for (size_t d = 0; d < n; ++d) out_ints[d] = ints[count == 1 ? 0 : d];
  return NULL;
}

tpj_status_t tpj_nn_pool_out_size(const tpj_lower_call_t* call, int64_t in, int64_t k,
                                  int64_t pad, int64_t stride, int64_t dil, bool ceil_mode,
                                  int64_t* out_size) {
  if (k < 1 || stride < 1 || dil < 1 || pad < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s: bad window (got kernel %lld, stride %lld, dilation %lld, padding %lld)",
                      call->target, (long long)k, (long long)stride, (long long)dil,
                      (long long)pad);
  }
  if (2 * pad > k) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: padding should be at most half of kernel size "
                      "(got padding %lld, kernel %lld)", call->target, (long long)pad,
                      (long long)k);
  }
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t q = num >= 0 ? num / stride : -((-num + stride - 1) / stride);
  int64_t o = q + 1;
  if (ceil_mode && (o - 1) * stride >= in + pad) --o;
  if (o < 1) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: output size is too small (got %lld for input %lld)",
                      call->target, (long long)o, (long long)in);
  }
  *out_size = o;
  return NULL;
}

tpj_dtype_t tpj_nn_acc_dtype(tpj_dtype_t dtype) {
  return (dtype == TPJ_DTYPE_F16 || dtype == TPJ_DTYPE_BF16) ? TPJ_DTYPE_F32 : dtype;
}

tpj_status_t tpj_nn_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims, size_t rank,
                            tpj_value_t* out) {
  return tpj_build_reshape(g, x, dims, rank, out);
}

/* Fills a host buffer of `dtype` (F32, F64, S32, S64) from doubles. */
static void fill_host(tpj_dtype_t dtype, const double* data, int64_t n, void* buf) {
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case TPJ_DTYPE_F32: ((float*)buf)[i] = (float)data[i]; break;
      case TPJ_DTYPE_F64: ((double*)buf)[i] = data[i]; break;
      case TPJ_DTYPE_S32: ((int32_t*)buf)[i] = (int32_t)data[i]; break;
      default: ((int64_t*)buf)[i] = (int64_t)data[i]; break;
    }
  }
}

tpj_status_t tpj_nn_constant(tpj_graph_t* g, const tpj_type_t* type, const double* data,
                             tpj_value_t* out) {
  tpj_dtype_t host = type->dtype;
  if (host != TPJ_DTYPE_F32 && host != TPJ_DTYPE_F64 && host != TPJ_DTYPE_S32 &&
      host != TPJ_DTYPE_S64) {
    host = tpj_dtype_is_float(type->dtype) ? TPJ_DTYPE_F32 : TPJ_DTYPE_S64;
  }
  int64_t n = tpj_type_numel(type);
  size_t nbytes = (size_t)n * tpj_dtype_size(host);
  void* buf = malloc(nbytes ? nbytes : 1);
  if (buf == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "nn constant: out of memory");
  fill_host(host, data, n, buf);
  tpj_type_t ht = *type;
  ht.dtype = host;
  tpj_value_t c;
  tpj_status_t st = tpj_build_constant(g, &ht, buf, nbytes, &c);
  free(buf);
  TPJ_RETURN_IF_ERROR(st);
  return tpj_lower_convert(g, c, type->dtype, out);
}

tpj_status_t tpj_nn_separable_matmul(tpj_graph_t* g, tpj_value_t x, size_t count,
                                     const double* const* mats, const int64_t* out_sizes,
                                     tpj_value_t* out) {
  tpj_value_t cur = x;
  for (size_t d = 0; d < count; ++d) {
    const tpj_type_t* t = tpj_lower_type(g, cur);
    int64_t lead = t->rank - (int64_t)count;
    int64_t mdims[2] = {out_sizes[d], t->dims[lead]};
    tpj_type_t mt;
    TPJ_RETURN_IF_ERROR(tpj_type_init(t->dtype, mdims, 2, &mt));
    tpj_value_t m;
    TPJ_RETURN_IF_ERROR(tpj_nn_constant(g, &mt, mats[d], &m));
    int64_t lc[1] = {lead}, rc[1] = {1};
    tpj_dot_dims_t dd = {NULL, 0, NULL, 0, lc, 1, rc, 1};
    TPJ_RETURN_IF_ERROR(tpj_build_dot_general(g, cur, m, &dd, TPJ_DTYPE_INVALID, &cur));
  }
  *out = cur;
  return NULL;
}

/* Slices [lo, lo + size) of each spatial dim (dims 2..) when it differs. */
static tpj_status_t crop_spatial(tpj_graph_t* g, tpj_value_t x, size_t nsp, const int64_t* lo,
                                 const int64_t* size, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t start[TPJ_MAX_RANK] = {0}, limit[TPJ_MAX_RANK], stride[TPJ_MAX_RANK];
  bool same = true;
  for (int32_t d = 0; d < t->rank; ++d) {
    limit[d] = t->dims[d];
    stride[d] = 1;
  }
  for (size_t d = 0; d < nsp; ++d) {
    start[2 + d] = lo[d];
    limit[2 + d] = lo[d] + size[d];
    if (lo[d] != 0 || size[d] != t->dims[2 + d]) same = false;
  }
  if (same) {
    *out = x;
    return NULL;
  }
  return tpj_build_slice(g, x, start, limit, stride, (size_t)t->rank, out);
}

tpj_status_t tpj_nn_conv_forward(tpj_graph_t* g, tpj_value_t input, tpj_value_t weight,
                                 size_t nsp, const int64_t* stride, const int64_t* padding,
                                 const int64_t* dilation, int64_t groups, tpj_value_t* out) {
  int64_t pads[2 * TPJ_MAX_RANK];
  for (size_t d = 0; d < nsp; ++d) pads[2 * d] = pads[2 * d + 1] = padding[d];
  tpj_conv_params_t p = {nsp, stride, pads, NULL, dilation, groups, 1};
  return tpj_build_convolution(g, input, weight, &p, out);
}

/* (Cin, Cout/g, k...) -> (Cout, Cin/g, k...) with spatial dims reversed. */
static tpj_status_t transpose_kernel(tpj_graph_t* g, tpj_value_t weight, int64_t groups,
                                     tpj_value_t* out) {
  const tpj_type_t* wt = tpj_lower_type(g, weight);
  size_t r = (size_t)wt->rank, nsp = r - 2;
  int64_t cin = wt->dims[0], coutg = wt->dims[1];
  int64_t d5[TPJ_MAX_RANK + 1] = {groups, cin / groups, coutg};
  int64_t perm[TPJ_MAX_RANK + 1] = {0, 2, 1};
  for (size_t d = 0; d < nsp; ++d) {
    d5[3 + d] = wt->dims[2 + d];
    perm[3 + d] = (int64_t)(3 + d);
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, weight, d5, r + 1, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, v, perm, r + 1, &v));
  int64_t d4[TPJ_MAX_RANK] = {groups * coutg, cin / groups};
  int64_t rev[TPJ_MAX_RANK];
  for (size_t d = 0; d < nsp; ++d) {
    d4[2 + d] = wt->dims[2 + d];
    rev[d] = (int64_t)(2 + d);
  }
  TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, d4, r, &v));
  return tpj_build_reverse(g, v, rev, nsp, out);
}

tpj_status_t tpj_nn_conv_transposed(tpj_graph_t* g, tpj_value_t input, tpj_value_t weight,
                                    size_t nsp, const int64_t* stride, const int64_t* padding,
                                    const int64_t* dilation, int64_t groups,
                                    const int64_t* out_spatial, tpj_value_t* out) {
  const tpj_type_t* it = tpj_lower_type(g, input);
  const tpj_type_t* wt = tpj_lower_type(g, weight);
  if (groups < 1 || wt->dims[0] % groups != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "transposed convolution: weight dim 0 not divisible "
                      "by groups (got %lld, groups %lld)", (long long)wt->dims[0],
                      (long long)groups);
  }
  tpj_value_t k;
  TPJ_RETURN_IF_ERROR(transpose_kernel(g, weight, groups, &k));
  int64_t pads[2 * TPJ_MAX_RANK], crop[TPJ_MAX_RANK];
  for (size_t d = 0; d < nsp; ++d) {
    int64_t span = dilation[d] * (wt->dims[2 + d] - 1);
    int64_t dil_len = (it->dims[2 + d] - 1) * stride[d] + 1;
    int64_t lo = span - padding[d];
    int64_t hi = out_spatial[d] - dil_len - lo + span;
    crop[d] = lo < 0 ? -lo : 0;
    pads[2 * d] = lo < 0 ? 0 : lo;
    pads[2 * d + 1] = hi < 0 ? 0 : hi;
  }
  tpj_conv_params_t p = {nsp, NULL, pads, stride, dilation, groups, 1};
  int64_t ones[TPJ_MAX_RANK];
  for (size_t d = 0; d < nsp; ++d) ones[d] = 1;
  p.window_strides = ones;
  tpj_value_t y;
  TPJ_RETURN_IF_ERROR(tpj_build_convolution(g, input, k, &p, &y));
  return crop_spatial(g, y, nsp, crop, out_spatial, out);
}

size_t tpj_nn_target_nsp(const char* target) {
  if (strstr(target, "1d") != NULL) return 1;
  if (strstr(target, "2d") != NULL) return 2;
  if (strstr(target, "3d") != NULL) return 3;
  return 0;
}

tpj_status_t tpj_nn_flatten_batch(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t x,
                                  size_t nsp, tpj_value_t* out_x2) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  if (t->rank != (int32_t)nsp + 1 && t->rank != (int32_t)nsp + 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input rank (got %d, expected %zu or %zu)",
                      call->target, t->rank, nsp + 1, nsp + 2);
  }
  int64_t dims[TPJ_MAX_RANK] = {1};
  size_t lead = (size_t)t->rank - nsp;
  for (size_t d = 0; d < lead; ++d) dims[0] *= t->dims[d];
  for (size_t d = 0; d < nsp; ++d) dims[1 + d] = t->dims[lead + d];
  return tpj_build_reshape(g, x, dims, nsp + 1, out_x2);
}
