/* upsample.c: upsample_nearest{1,2,3}d and upsample_{linear1d, bilinear2d,
 * trilinear3d} with their backward. Source indices and weights are computed
 * on the host in float exactly as PyTorch's CPU kernels do. Forwards gather
 * per dim (linear: two gathers and a weighted sum); backwards are separable
 * products with the transposed interpolation matrices.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower_nn.h"

typedef struct up_cfg_s {
  size_t nsp;
  int64_t in[3], out[3];
  bool has_scale[3];
  double scale[3];
  bool align_corners;
} up_cfg_t;

/* Scale factors: a float list at `first` (.vec) or nsp optional floats. */
static tpj_status_t read_scales(const tpj_lower_call_t* call, size_t first, bool vec,
                                up_cfg_t* c) {
  for (size_t i = 0; i < c->nsp; ++i) c->has_scale[i] = false;
  if (vec) {
    if (first >= call->num_args || call->args[first].kind == TPJ_ARG_KIND_NONE) return NULL;
    const tpj_arg_t* a = &call->args[first];
    if (a->kind != TPJ_ARG_KIND_FLOAT_LIST || (a->count != c->nsp && a->count != 0)) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: scale_factors must be %zu floats",
                        call->target, first, c->nsp);
    }
    for (size_t i = 0; i < a->count; ++i) {
      c->has_scale[i] = true;
      c->scale[i] = a->floats[i];
    }
    return NULL;
  }
  for (size_t i = 0; i < c->nsp; ++i) {
    if (tpj_lower_arg_is_none(call, first + i)) continue;
    c->has_scale[i] = true;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, first + i, &c->scale[i]));
  }
  return NULL;
}

/* Spatial sizes: in from `small` (input / grad_input), out from `big`. */
static tpj_status_t read_sizes(const tpj_lower_call_t* call, const tpj_type_t* small,
                               const tpj_type_t* big, up_cfg_t* c) {
  c->nsp = tpj_nn_target_nsp(call->target);
  if (c->nsp == 0 || small->rank != (int32_t)c->nsp + 2 || big->rank != small->rank) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input rank (got %d, expected %zu)", call->target,
                      small->rank, c->nsp + 2);
  }
  for (size_t i = 0; i < c->nsp; ++i) {
    c->in[i] = small->dims[2 + i];
    c->out[i] = big->dims[2 + i];
    if (c->in[i] < 1 || c->out[i] < 1) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: empty spatial size", call->target);
    }
  }
  return NULL;
}

/* PyTorch compute_scales_value<float>. */
static float scales_value(const up_cfg_t* c, size_t i) {
  if (c->has_scale[i] && c->scale[i] > 0.0) return (float)(1.0 / c->scale[i]);
  return (float)c->in[i] / (float)c->out[i];
}

/* Nearest source index of output o along dim i (PyTorch nearest_idx). */
static int64_t nearest_src(const up_cfg_t* c, size_t i, int64_t o) {
  if (c->out[i] == c->in[i]) return o;
  if (c->out[i] == 2 * c->in[i]) return o >> 1;
  float scale = scales_value(c, i);
  int64_t s = (int64_t)floorf((float)o * scale);
  return s < c->in[i] - 1 ? s : c->in[i] - 1;
}

/* Linear weights of output o along dim i: (i0, i1, l0, l1). */
static void linear_src(const up_cfg_t* c, size_t i, int64_t o, int64_t* i0, int64_t* i1,
                       float* l0, float* l1) {
  float scale, src;
  if (c->align_corners) {
    scale = c->out[i] > 1 ? (float)(c->in[i] - 1) / (float)(c->out[i] - 1) : 0.0f;
    src = scale * (float)o;
  } else {
    scale = scales_value(c, i);
    src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
  }
  *i0 = (int64_t)src;
  if (*i0 > c->in[i] - 1) *i0 = c->in[i] - 1;
  *i1 = *i0 + (*i0 < c->in[i] - 1 ? 1 : 0);
  *l1 = src - (float)*i0;
  *l0 = 1.0f - *l1;
}

/* Interpolation matrix of dim i, (out, in), or its transpose (in, out). */
static double* interp_matrix(const up_cfg_t* c, size_t i, bool linear, bool transposed) {
  int64_t in = c->in[i], out = c->out[i];
  double* m = calloc((size_t)(in * out), sizeof(double));
  if (m == NULL) return NULL;
  for (int64_t o = 0; o < out; ++o) {
    int64_t i0, i1;
    float l0 = 1.0f, l1 = 0.0f;
    if (linear) {
      linear_src(c, i, o, &i0, &i1, &l0, &l1);
    } else {
      i0 = i1 = nearest_src(c, i, o);
    }
    m[transposed ? i0 * out + o : o * in + i0] += (double)l0;
    m[transposed ? i1 * out + o : o * in + i1] += (double)l1;
  }
  return m;
}

/* Applies the per-dim matrices to x (N, C, sp...) in the accumulation dtype. */
static tpj_status_t apply(tpj_graph_t* g, tpj_value_t x, const up_cfg_t* c, bool linear,
                          bool transposed, const tpj_type_t* ot, tpj_value_t* out) {
  double* mats[3] = {NULL, NULL, NULL};
  int64_t sizes[3];
  tpj_status_t st = NULL;
  for (size_t i = 0; i < c->nsp && st == NULL; ++i) {
    mats[i] = interp_matrix(c, i, linear, transposed);
    sizes[i] = transposed ? c->in[i] : c->out[i];
    if (mats[i] == NULL) st = TPJ_STATUS(RESOURCE_EXHAUSTED, "upsample: out of memory");
  }
  tpj_value_t v = x;
  if (st == NULL) st = tpj_lower_convert(g, x, tpj_nn_acc_dtype(ot->dtype), &v);
  if (st == NULL) st = tpj_nn_separable_matmul(g, v, c->nsp, (const double* const*)mats, sizes, &v);
  for (size_t i = 0; i < c->nsp; ++i) free(mats[i]);
  TPJ_RETURN_IF_ERROR(st);
  return tpj_lower_convert(g, v, ot->dtype, out);
}

/* x[..., idx, ...] along dim `dim` with constant s64 indices. */
static tpj_status_t take_dim(tpj_graph_t* g, tpj_value_t x, int64_t dim, const double* idx,
                             int64_t n, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t id[2] = {n, 1};
  tpj_type_t it;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, id, 2, &it));
  tpj_value_t iv;
  TPJ_RETURN_IF_ERROR(tpj_nn_constant(g, &it, idx, &iv));
  int64_t offset[TPJ_MAX_RANK], sizes[TPJ_MAX_RANK], coll[1] = {dim}, map[1] = {dim};
  size_t no = 0;
  for (int32_t d = 0; d < t->rank; ++d) {
    sizes[d] = d == dim ? 1 : t->dims[d];
    if (d != dim) offset[no++] = d;
  }
  tpj_gather_dims_t gd = {offset, no, coll, 1, NULL, 0, NULL, 0, map, 1, 1,
                          sizes, (size_t)t->rank, false};
  return tpj_build_gather(g, x, iv, &gd, out);
}

/* upsample_nearestNd.vec(input, output_size, scale_factors) and .default
 * (input, output_size, scales...). */
TPJ_LOWERING(tpj_lower_nn_upsample_nearest) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  up_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_sizes(call, tpj_lower_type(g, x), ot, &c));
  TPJ_RETURN_IF_ERROR(read_scales(call, 2, strstr(call->target, ".vec") != NULL, &c));
  for (size_t i = 0; i < c.nsp; ++i) {
    double* idx = malloc((size_t)c.out[i] * sizeof(double));
    if (idx == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "upsample: out of memory");
    for (int64_t o = 0; o < c.out[i]; ++o) idx[o] = (double)nearest_src(&c, i, o);
    tpj_status_t st = take_dim(g, x, (int64_t)(2 + i), idx, c.out[i], &x);
    free(idx);
    TPJ_RETURN_IF_ERROR(st);
  }
  out[0] = x;
  return NULL;
}

/* upsample_nearestNd_backward.vec(grad, output_size, input_size, scale_factors)
 * and .default (grad, output_size, input_size, scales...). */
TPJ_LOWERING(tpj_lower_nn_upsample_nearest_backward) {
  tpj_value_t go;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  up_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_sizes(call, ot, tpj_lower_type(g, go), &c));
  TPJ_RETURN_IF_ERROR(read_scales(call, 3, strstr(call->target, ".vec") != NULL, &c));
  return apply(g, go, &c, false, true, ot, &out[0]);
}

/* Linear interpolation of x along spatial dim i: x[i0] * l0 + x[i1] * l1
 * (two gathers, so only the two stencil points ever meet a weight). */
static tpj_status_t lerp_dim(tpj_graph_t* g, tpj_value_t x, const up_cfg_t* c, size_t i,
                             tpj_value_t* out) {
  int64_t n = c->out[i];
  double* buf = malloc(4 * (size_t)n * sizeof(double));
  if (buf == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "upsample: out of memory");
  for (int64_t o = 0; o < n; ++o) {
    int64_t i0, i1;
    float l0, l1;
    linear_src(c, i, o, &i0, &i1, &l0, &l1);
    buf[o] = (double)i0;
    buf[n + o] = (double)i1;
    buf[2 * n + o] = (double)l0;
    buf[3 * n + o] = (double)l1;
  }
  int64_t dim = (int64_t)(2 + i);
  tpj_value_t x0, x1, w0, w1;
  tpj_type_t wt;
  tpj_status_t st = take_dim(g, x, dim, buf, n, &x0);
  if (st == NULL) st = take_dim(g, x, dim, buf + n, n, &x1);
  if (st == NULL) st = tpj_type_init(tpj_lower_type(g, x)->dtype, &n, 1, &wt);
  if (st == NULL) st = tpj_nn_constant(g, &wt, buf + 2 * n, &w0);
  if (st == NULL) st = tpj_nn_constant(g, &wt, buf + 3 * n, &w1);
  free(buf);
  TPJ_RETURN_IF_ERROR(st);
  const tpj_type_t* t0 = tpj_lower_type(g, x0);
  int64_t bd[1] = {dim};
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, w0, t0->dims, (size_t)t0->rank, bd, &w0));
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, w1, t0->dims, (size_t)t0->rank, bd, &w1));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, x0, w0, &x0));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, x1, w1, &x1));
  return tpj_build_binary(g, TPJ_BINARY_OP_ADD, x0, x1, out);
}

/* upsample_{linear1d,bilinear2d,trilinear3d}.vec(input, output_size,
 * align_corners, scale_factors) and .default (..., align_corners, scales...). */
TPJ_LOWERING(tpj_lower_nn_upsample_linear) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  up_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_sizes(call, tpj_lower_type(g, x), ot, &c));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 2, &c.align_corners));
  TPJ_RETURN_IF_ERROR(read_scales(call, 3, strstr(call->target, ".vec") != NULL, &c));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, tpj_nn_acc_dtype(ot->dtype), &x));
  for (size_t i = c.nsp; i-- > 0;) TPJ_RETURN_IF_ERROR(lerp_dim(g, x, &c, i, &x));
  return tpj_lower_convert(g, x, ot->dtype, &out[0]);
}

/* ..._backward.vec(grad, output_size, input_size, align_corners, scale_factors). */
TPJ_LOWERING(tpj_lower_nn_upsample_linear_backward) {
  tpj_value_t go;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  up_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_sizes(call, ot, tpj_lower_type(g, go), &c));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 3, &c.align_corners));
  TPJ_RETURN_IF_ERROR(read_scales(call, 4, strstr(call->target, ".vec") != NULL, &c));
  return apply(g, go, &c, true, true, ot, &out[0]);
}
