/* Activation functions and their backward ops, written as the formulas of
 * PyTorch's CPU kernels (same branch conditions, e.g. `x <= threshold`, so
 * ties and NaNs land on the same side). All compute in the compute dtype. */
#include <math.h>
#include <string.h>

#include "lower/lower_elementwise.h"

#define TPJ_EW_LT TPJ_COMPARE_DIR_LT
#define TPJ_EW_LE TPJ_COMPARE_DIR_LE
#define TPJ_EW_GT TPJ_COMPARE_DIR_GT
#define TPJ_EW_GE TPJ_COMPARE_DIR_GE

/* Starts a context and loads argument i as x. */
static tpj_value_t tpj_ew_start(tpj_ew_t* e, tpj_graph_t* g, const tpj_lower_call_t* call,
                                size_t i) {
  tpj_ew_begin(e, g, call);
  return tpj_ew_arg(e, i);
}

TPJ_LOWERING(tpj_lower_relu) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_LT, x, 0.0), tpj_ew_k(&e, 0.0), x),
                     out);
}

/* The "approximate" argument of gelu: false for "none", true for "tanh". */
static bool tpj_ew_gelu_tanh(tpj_ew_t* e, size_t i) {
  const char* mode = NULL;
  if (!e->st) e->st = tpj_lower_arg_string(e->call, i, &mode);
  if (e->st || !mode || strcmp(mode, "none") == 0) return false;
  if (strcmp(mode, "tanh") == 0) return true;
  tpj_ew_fail(e, TPJ_STATUS(INVALID_ARGUMENT, "%s: approximate must be 'none' or 'tanh' "
                            "(got '%s')", e->call->target, mode));
  return false;
}

#define TPJ_EW_GELU_BETA 0.7978845608028654 /* sqrt(2 / pi) */
#define TPJ_EW_GELU_KAPPA 0.044715

TPJ_LOWERING(tpj_lower_gelu) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0), inner;
  if (tpj_ew_gelu_tanh(&e, 1)) {
    tpj_value_t x3 = tpj_ew_mul(&e, tpj_ew_mul(&e, x, x), x);
    inner = tpj_ew_un(&e, TPJ_UNARY_OP_TANH,
                      tpj_ew_mulk(&e, tpj_ew_add(&e, x, tpj_ew_mulk(&e, x3, TPJ_EW_GELU_KAPPA)),
                                  TPJ_EW_GELU_BETA));
  } else {
    inner = tpj_ew_erf(&e, tpj_ew_mulk(&e, x, M_SQRT1_2));
  }
  tpj_value_t r = tpj_ew_mul(&e, tpj_ew_mulk(&e, x, 0.5), tpj_ew_addk(&e, inner, 1.0));
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_gelu_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1), d;
  if (tpj_ew_gelu_tanh(&e, 2)) {
    tpj_value_t x2 = tpj_ew_mul(&e, x, x);
    tpj_value_t inner = tpj_ew_mulk(&e, tpj_ew_add(&e, x, tpj_ew_mulk(&e, tpj_ew_mul(&e, x2, x),
                                                                      TPJ_EW_GELU_KAPPA)),
                                    TPJ_EW_GELU_BETA);
    tpj_value_t t = tpj_ew_un(&e, TPJ_UNARY_OP_TANH, inner);
    tpj_value_t left_d = tpj_ew_mulk(&e, tpj_ew_addk(&e, t, 1.0), 0.5);
    tpj_value_t sech2 = tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), tpj_ew_mul(&e, t, t));
    tpj_value_t dinner = tpj_ew_mulk(&e, tpj_ew_addk(&e, tpj_ew_mulk(&e, x2, 3 * TPJ_EW_GELU_KAPPA),
                                                     1.0), TPJ_EW_GELU_BETA);
    tpj_value_t right_d = tpj_ew_mul(&e, tpj_ew_mul(&e, tpj_ew_mulk(&e, x, 0.5), sech2), dinner);
    d = tpj_ew_add(&e, left_d, right_d);
  } else {
    tpj_value_t cdf = tpj_ew_mulk(&e, tpj_ew_addk(&e, tpj_ew_erf(&e, tpj_ew_mulk(&e, x, M_SQRT1_2)),
                                                  1.0), 0.5);
    tpj_value_t pdf = tpj_ew_mulk(&e, tpj_ew_un(&e, TPJ_UNARY_OP_EXP,
                                                tpj_ew_mulk(&e, tpj_ew_mul(&e, x, x), -0.5)),
                                  0.3989422804014327 /* 1/sqrt(2 pi) */);
    d = tpj_ew_add(&e, cdf, tpj_ew_mul(&e, x, pdf));
  }
  return tpj_ew_done(&e, tpj_ew_mul(&e, dy, d), out);
}

TPJ_LOWERING(tpj_lower_silu) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  return tpj_ew_done(&e, tpj_ew_mul(&e, x, tpj_ew_un(&e, TPJ_UNARY_OP_LOGISTIC, x)), out);
}

/* dy * s * (1 + x * (1 - s)), s = sigmoid(x) */
TPJ_LOWERING(tpj_lower_silu_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t s = tpj_ew_un(&e, TPJ_UNARY_OP_LOGISTIC, x);
  tpj_value_t t = tpj_ew_addk(&e, tpj_ew_mul(&e, x, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), s)), 1.0);
  return tpj_ew_done(&e, tpj_ew_mul(&e, tpj_ew_mul(&e, dy, s), t), out);
}

TPJ_LOWERING(tpj_lower_hardtanh) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  tpj_value_t lo = tpj_ew_arg(&e, 1), hi = tpj_ew_arg(&e, 2);
  x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_LT, x, lo), lo, x);
  x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_LT, hi, x), hi, x);
  return tpj_ew_done(&e, x, out);
}

/* (x <= min || x >= max) ? 0 : dy */
TPJ_LOWERING(tpj_lower_hardtanh_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t off = tpj_ew_bin(&e, TPJ_BINARY_OP_OR, tpj_ew_cmp(&e, TPJ_EW_LE, x, tpj_ew_arg(&e, 2)),
                               tpj_ew_cmp(&e, TPJ_EW_GE, x, tpj_ew_arg(&e, 3)));
  return tpj_ew_done(&e, tpj_ew_sel(&e, off, tpj_ew_k(&e, 0.0), dy), out);
}

TPJ_LOWERING(tpj_lower_leaky_relu) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  tpj_value_t neg = tpj_ew_mul(&e, x, tpj_ew_arg(&e, 1));
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_GT, x, 0.0), x, neg), out);
}

TPJ_LOWERING(tpj_lower_leaky_relu_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t neg = tpj_ew_mul(&e, dy, tpj_ew_arg(&e, 2));
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_GT, x, 0.0), dy, neg), out);
}

/* elu(x, alpha, scale, input_scale) */
TPJ_LOWERING(tpj_lower_elu) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  double alpha = tpj_ew_arg_f(&e, 1), scale = tpj_ew_arg_f(&e, 2), in_scale = tpj_ew_arg_f(&e, 3);
  tpj_value_t neg = tpj_ew_mulk(&e, tpj_ew_un(&e, TPJ_UNARY_OP_EXPM1, tpj_ew_mulk(&e, x, in_scale)),
                                alpha * scale);
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_GT, x, 0.0), tpj_ew_mulk(&e, x, scale), neg);
  return tpj_ew_done(&e, r, out);
}

/* elu_backward(dy, alpha, scale, input_scale, is_result, self_or_result) */
TPJ_LOWERING(tpj_lower_elu_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), y = tpj_ew_arg(&e, 5);
  double alpha = tpj_ew_arg_f(&e, 1), scale = tpj_ew_arg_f(&e, 2), in_scale = tpj_ew_arg_f(&e, 3);
  bool is_result = false;
  if (!e.st) e.st = tpj_lower_arg_bool(call, 4, &is_result);
  tpj_value_t neg;
  if (is_result) {
    neg = tpj_ew_mul(&e, tpj_ew_mulk(&e, dy, in_scale), tpj_ew_addk(&e, y, alpha * scale));
  } else {
    tpj_value_t ex = tpj_ew_un(&e, TPJ_UNARY_OP_EXP, tpj_ew_mulk(&e, y, in_scale));
    neg = tpj_ew_mul(&e, tpj_ew_mulk(&e, dy, in_scale * alpha * scale), ex);
  }
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_LE, y, 0.0), neg,
                             tpj_ew_mulk(&e, dy, scale));
  return tpj_ew_done(&e, r, out);
}

/* softplus(x, beta, threshold) = x*beta > threshold ? x : log1p(exp(x*beta)) / beta */
TPJ_LOWERING(tpj_lower_softplus) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  double beta = tpj_ew_arg_f(&e, 1), threshold = tpj_ew_arg_f(&e, 2);
  tpj_value_t xb = tpj_ew_mulk(&e, x, beta);
  tpj_value_t soft = tpj_ew_mulk(&e, tpj_ew_un(&e, TPJ_UNARY_OP_LOG1P,
                                               tpj_ew_un(&e, TPJ_UNARY_OP_EXP, xb)), 1.0 / beta);
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_GT, xb, threshold), x, soft), out);
}

TPJ_LOWERING(tpj_lower_softplus_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  double beta = tpj_ew_arg_f(&e, 2), threshold = tpj_ew_arg_f(&e, 3);
  tpj_value_t xb = tpj_ew_mulk(&e, x, beta);
  tpj_value_t z = tpj_ew_un(&e, TPJ_UNARY_OP_EXP, xb);
  tpj_value_t soft = tpj_ew_div(&e, tpj_ew_mul(&e, dy, z), tpj_ew_addk(&e, z, 1.0));
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_GT, xb, threshold), dy, soft), out);
}

/* min(max(x + 3, 0), 6) / 6 */
static tpj_value_t tpj_ew_relu6_x3(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t t = tpj_ew_addk(e, x, 3.0);
  t = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_EW_LT, t, 0.0), tpj_ew_k(e, 0.0), t);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_EW_GT, t, 6.0), tpj_ew_k(e, 6.0), t);
}

TPJ_LOWERING(tpj_lower_hardsigmoid) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  return tpj_ew_done(&e, tpj_ew_div(&e, tpj_ew_relu6_x3(&e, x), tpj_ew_k(&e, 6.0)), out);
}

TPJ_LOWERING(tpj_lower_hardsigmoid_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t in = tpj_ew_bin(&e, TPJ_BINARY_OP_AND, tpj_ew_cmpk(&e, TPJ_EW_GT, x, -3.0),
                              tpj_ew_cmpk(&e, TPJ_EW_LT, x, 3.0));
  tpj_value_t r = tpj_ew_sel(&e, in, tpj_ew_div(&e, dy, tpj_ew_k(&e, 6.0)), tpj_ew_k(&e, 0.0));
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_hardswish) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  tpj_value_t r = tpj_ew_div(&e, tpj_ew_mul(&e, x, tpj_ew_relu6_x3(&e, x)), tpj_ew_k(&e, 6.0));
  return tpj_ew_done(&e, r, out);
}

/* x <= -3 ? 0 : x < 3 ? dy * (x / 3 + 0.5) : dy */
TPJ_LOWERING(tpj_lower_hardswish_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t mid = tpj_ew_mul(&e, dy, tpj_ew_addk(&e, tpj_ew_div(&e, x, tpj_ew_k(&e, 3.0)), 0.5));
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_LT, x, 3.0), mid, dy);
  r = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_EW_LE, x, -3.0), tpj_ew_k(&e, 0.0), r);
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_mish) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  tpj_value_t sp = tpj_ew_un(&e, TPJ_UNARY_OP_LOG1P, tpj_ew_un(&e, TPJ_UNARY_OP_EXP, x));
  return tpj_ew_done(&e, tpj_ew_mul(&e, x, tpj_ew_un(&e, TPJ_UNARY_OP_TANH, sp)), out);
}

/* threshold(x, threshold, value) = x <= threshold ? value : x */
TPJ_LOWERING(tpj_lower_threshold) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_LE, x, tpj_ew_arg(&e, 1)), tpj_ew_arg(&e, 2),
                             x);
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_threshold_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_LE, x, tpj_ew_arg(&e, 2)),
                             tpj_ew_k(&e, 0.0), dy);
  return tpj_ew_done(&e, r, out);
}

/* dy * (1 - y) * y */
TPJ_LOWERING(tpj_lower_sigmoid_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), y = tpj_ew_arg(&e, 1);
  tpj_value_t r = tpj_ew_mul(&e, tpj_ew_mul(&e, dy, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), y)), y);
  return tpj_ew_done(&e, r, out);
}

/* dy * (1 - y^2) */
TPJ_LOWERING(tpj_lower_tanh_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), y = tpj_ew_arg(&e, 1);
  tpj_value_t r = tpj_ew_mul(&e, dy, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), tpj_ew_mul(&e, y, y)));
  return tpj_ew_done(&e, r, out);
}

/* logit(x, eps) = log(z / (1 - z)), z = clamp(x, eps, 1 - eps) when eps given. */
TPJ_LOWERING(tpj_lower_logit) {
  tpj_ew_t e;
  tpj_value_t x = tpj_ew_start(&e, g, call, 0);
  if (!tpj_lower_arg_is_none(call, 1)) {
    double eps = tpj_ew_arg_f(&e, 1);
    tpj_value_t lo = tpj_ew_k(&e, eps), hi = tpj_ew_k(&e, 1.0 - eps);
    x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_LT, x, lo), lo, x);
    x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_EW_GT, x, hi), hi, x);
  }
  tpj_value_t r = tpj_ew_un(&e, TPJ_UNARY_OP_LOG,
                            tpj_ew_div(&e, x, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), x)));
  return tpj_ew_done(&e, r, out);
}

/* eps None: dy / (x (1 - x)); else 0 outside [eps, 1 - eps]. */
TPJ_LOWERING(tpj_lower_logit_backward) {
  tpj_ew_t e;
  tpj_value_t dy = tpj_ew_start(&e, g, call, 0), x = tpj_ew_arg(&e, 1);
  tpj_value_t r = tpj_ew_div(&e, dy, tpj_ew_mul(&e, x, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), x)));
  if (!tpj_lower_arg_is_none(call, 2)) {
    double eps = tpj_ew_arg_f(&e, 2);
    tpj_value_t outside = tpj_ew_bin(&e, TPJ_BINARY_OP_OR, tpj_ew_cmpk(&e, TPJ_EW_LT, x, eps),
                                     tpj_ew_cmpk(&e, TPJ_EW_GT, x, 1.0 - eps));
    r = tpj_ew_sel(&e, outside, tpj_ew_k(&e, 0.0), r);
  }
  return tpj_ew_done(&e, r, out);
}
