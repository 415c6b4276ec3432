/* pool_avg.c: avg_pool{1,2,3}d, their backward, and adaptive average pooling.
 * Sums are reduce_window in the accumulation dtype; PyTorch's per-window
 * divisors (count_include_pad, ceil_mode, divisor_override) are separable, so
 * they are a host-computed constant over the output grid.
 */
#include <stdlib.h>
#include <string.h>

#include "lower/lower_nn.h"

typedef struct avg_cfg_s {
  size_t nsp;
  int64_t in[3], out[3], k[3], s[3], p[3];
  bool count_include_pad;
  bool has_divisor;
  int64_t divisor;
} avg_cfg_t;

/* Arguments after self: kernel, stride, padding, ceil_mode, count_include_pad,
 * divisor_override (absent for 1d). */
static tpj_status_t read_avg(const tpj_lower_call_t* call, size_t first, const tpj_type_t* xt,
                             avg_cfg_t* c) {
  static const int64_t zeros[3] = {0, 0, 0};
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
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, first + 3, &ceil_mode));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, first + 4, true, &c->count_include_pad));
  c->has_divisor = !tpj_lower_arg_is_none(call, first + 5);
  if (c->has_divisor) {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, first + 5, &c->divisor));
    if (c->divisor == 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: divisor_override must be non-zero (got 0)",
                        call->target);
    }
  }
  for (size_t i = 0; i < c->nsp; ++i) {
    c->in[i] = xt->dims[xt->rank - (int32_t)c->nsp + (int32_t)i];
    TPJ_RETURN_IF_ERROR(tpj_nn_pool_out_size(call, c->in[i], c->k[i], c->p[i], c->s[i], 1,
                                             ceil_mode, &c->out[i]));
  }
  return NULL;
}

/* Divisor of output position o of dim i. */
static double dim_divisor(const avg_cfg_t* c, size_t i, int64_t o) {
  int64_t start = o * c->s[i] - c->p[i];
  int64_t end = start + c->k[i];
  if (end > c->in[i] + c->p[i]) end = c->in[i] + c->p[i];
  int64_t full = end - start;
  if (start < 0) start = 0;
  if (end > c->in[i]) end = c->in[i];
  if (c->count_include_pad) return (double)full;
  return end > start ? (double)(end - start) : 1.0;
}

/* Divides v (batch, out...) by the per-window divisors. */
static tpj_status_t divide(tpj_graph_t* g, tpj_value_t v, const avg_cfg_t* c,
                           tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, v);
  tpj_value_t div;
  if (c->has_divisor) {
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, (double)c->divisor, &div));
    return tpj_build_binary(g, TPJ_BINARY_OP_DIV, v, div, out);
  }
  int64_t n = 1;
  for (size_t i = 0; i < c->nsp; ++i) n *= c->out[i];
  double* host = malloc((size_t)n * sizeof(double));
  if (host == NULL) return TPJ_STATUS(RESOURCE_EXHAUSTED, "avg_pool: out of memory");
  for (int64_t e = 0; e < n; ++e) {
    double prod = 1.0;
    int64_t rem = e;
    for (size_t i = c->nsp; i-- > 0;) {
      prod *= dim_divisor(c, i, rem % c->out[i]);
      rem /= c->out[i];
    }
    host[e] = prod;
  }
  tpj_type_t ct;
  tpj_status_t st = tpj_type_init(t->dtype, c->out, c->nsp, &ct);
  if (st == NULL) st = tpj_nn_constant(g, &ct, host, &div);
  free(host);
  TPJ_RETURN_IF_ERROR(st);
  int64_t bd[3] = {1, 2, 3};
  TPJ_RETURN_IF_ERROR(tpj_build_broadcast_in_dim(g, div, t->dims, (size_t)t->rank, bd, &div));
  return tpj_build_binary(g, TPJ_BINARY_OP_DIV, v, div, out);
}

/* Window sum over the spatial dims of v (batch, sp...). */
static tpj_status_t window_sum(tpj_graph_t* g, tpj_value_t v, size_t nsp, const int64_t* k,
                               const int64_t* s, const int64_t* pads, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, v);
  int64_t wd[4] = {1}, ws[4] = {1};
  for (size_t i = 0; i < nsp; ++i) {
    wd[1 + i] = k[i];
    ws[1 + i] = s[i];
  }
  tpj_window_t w = {nsp + 1, wd, ws, NULL, NULL, pads};
  tpj_value_t zero;
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, t->dtype, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_lower_reduce_body(g, t->dtype, TPJ_REDUCE_KIND_ADD, &body));
  return tpj_build_reduce_window(g, v, zero, &w, body, out);
}

/* Keeps [lo, lo + size) of the spatial dims of v (batch, sp...). */
static tpj_status_t crop(tpj_graph_t* g, tpj_value_t v, size_t nsp, const int64_t* lo,
                         const int64_t* size, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, v);
  int64_t start[4] = {0}, limit[4] = {t->dims[0]}, step[4] = {1, 1, 1, 1};
  for (size_t i = 0; i < nsp; ++i) {
    start[1 + i] = lo[i];
    limit[1 + i] = lo[i] + size[i];
  }
  return tpj_build_slice(g, v, start, limit, step, nsp + 1, out);
}

TPJ_LOWERING(tpj_lower_nn_avg_pool) {
  tpj_value_t x, v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  avg_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_avg(call, 1, tpj_lower_type(g, x), &c));
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, x, c.nsp, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, tpj_nn_acc_dtype(ot->dtype), &v));
  int64_t pads[8] = {0}, zero[3] = {0, 0, 0};
  for (size_t i = 0; i < c.nsp; ++i) {
    int64_t hi = (c.out[i] - 1) * c.s[i] + c.k[i] - c.in[i] - c.p[i];
    pads[2 * (1 + i)] = c.p[i];
    pads[2 * (1 + i) + 1] = hi > 0 ? hi : 0;
  }
  TPJ_RETURN_IF_ERROR(window_sum(g, v, c.nsp, c.k, c.s, pads, &v));
  TPJ_RETURN_IF_ERROR(crop(g, v, c.nsp, zero, c.out, &v));
  TPJ_RETURN_IF_ERROR(divide(g, v, &c, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, ot->dtype, &v));
  return tpj_build_reshape(g, v, ot->dims, (size_t)ot->rank, &out[0]);
}

TPJ_LOWERING(tpj_lower_nn_avg_pool_backward) {
  tpj_value_t go, x, v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  avg_cfg_t c;
  TPJ_RETURN_IF_ERROR(read_avg(call, 2, tpj_lower_type(g, x), &c));
  TPJ_RETURN_IF_ERROR(tpj_nn_flatten_batch(g, call, go, c.nsp, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, tpj_nn_acc_dtype(ot->dtype), &v));
  TPJ_RETURN_IF_ERROR(divide(g, v, &c, &v));
  /* Dilate by the stride, then a stride-1 window sum spreads each gradient
   * over its window; padded-input coordinate j lands at index j. */
  int64_t lo[4] = {0}, hi[4] = {0}, in[4] = {0}, ones[3] = {1, 1, 1}, pads[8] = {0};
  for (size_t i = 0; i < c.nsp; ++i) {
    int64_t need = c.p[i] + c.in[i] - (c.out[i] - 1) * c.s[i] - 1;
    lo[1 + i] = c.k[i] - 1;
    hi[1 + i] = need > 0 ? need : 0;
    in[1 + i] = c.s[i] - 1;
  }
  tpj_value_t zero;
  TPJ_RETURN_IF_ERROR(tpj_lower_scalar(g, tpj_lower_type(g, v)->dtype, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_pad(g, v, zero, lo, hi, in, c.nsp + 1, &v));
  TPJ_RETURN_IF_ERROR(window_sum(g, v, c.nsp, c.k, ones, pads, &v));
  TPJ_RETURN_IF_ERROR(crop(g, v, c.nsp, c.p, c.in, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, ot->dtype, &v));
  return tpj_build_reshape(g, v, ot->dims, (size_t)ot->rank, &out[0]);
}
