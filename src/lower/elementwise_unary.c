/* Unary math lowerings. Floating functions compute in the output's compute
 * dtype (integer inputs are converted first, f16/bf16 go through f32);
 * functions StableHLO lacks (asin, sinh, asinh, erf, ...) are built from
 * numerically careful identities. Rounding ops keep integer inputs as is. */
#include <math.h>

#include "lower/lower_elementwise.h"

typedef tpj_value_t (*tpj_ew_fn)(tpj_ew_t* e, tpj_value_t x);

/* Applies fn to argument 0 in the compute type and converts to the output. */
static tpj_status_t tpj_ew_unary(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t* out,
                                 tpj_ew_fn fn) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  return tpj_ew_done(&e, fn(&e, x), out);
}

/* Defines a lowering that applies one StableHLO unary op. */
#define TPJ_EW_SIMPLE(name, op)                                        \
  static tpj_value_t tpj_ew_fn_##name(tpj_ew_t* e, tpj_value_t x) {   \
    return tpj_ew_un(e, op, x);                                        \
  }                                                                    \
  TPJ_LOWERING(tpj_lower_##name) { return tpj_ew_unary(g, call, out, tpj_ew_fn_##name); }

/* Defines a lowering from a formula function tpj_ew_fn_<name>. */
#define TPJ_EW_FORMULA(name) \
  TPJ_LOWERING(tpj_lower_##name) { return tpj_ew_unary(g, call, out, tpj_ew_fn_##name); }

TPJ_EW_SIMPLE(neg, TPJ_UNARY_OP_NEGATE)
TPJ_EW_SIMPLE(abs, TPJ_UNARY_OP_ABS)
TPJ_EW_SIMPLE(exp, TPJ_UNARY_OP_EXP)
TPJ_EW_SIMPLE(expm1, TPJ_UNARY_OP_EXPM1)
TPJ_EW_SIMPLE(log, TPJ_UNARY_OP_LOG)
TPJ_EW_SIMPLE(log1p, TPJ_UNARY_OP_LOG1P)
TPJ_EW_SIMPLE(sqrt, TPJ_UNARY_OP_SQRT)
TPJ_EW_SIMPLE(rsqrt, TPJ_UNARY_OP_RSQRT)
TPJ_EW_SIMPLE(sin, TPJ_UNARY_OP_SINE)
TPJ_EW_SIMPLE(cos, TPJ_UNARY_OP_COSINE)
TPJ_EW_SIMPLE(tan, TPJ_UNARY_OP_TAN)
TPJ_EW_SIMPLE(tanh, TPJ_UNARY_OP_TANH)
TPJ_EW_SIMPLE(sigmoid, TPJ_UNARY_OP_LOGISTIC)

static tpj_value_t tpj_ew_fn_exp2(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_POW, tpj_ew_k(e, 2.0), x);
}
static tpj_value_t tpj_ew_fn_log2(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_div(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG, x), tpj_ew_k(e, M_LN2));
}
static tpj_value_t tpj_ew_fn_log10(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_div(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG, x), tpj_ew_k(e, M_LN10));
}
static tpj_value_t tpj_ew_fn_reciprocal(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_div(e, tpj_ew_k(e, 1.0), x);
}
TPJ_EW_FORMULA(exp2)
TPJ_EW_FORMULA(log2)
TPJ_EW_FORMULA(log10)
TPJ_EW_FORMULA(reciprocal)

/* sqrt(1 - x^2) computed as sqrt((1 - x)(1 + x)) to keep precision near 1. */
static tpj_value_t tpj_ew_sqrt_one_minus_sq(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t one = tpj_ew_k(e, 1.0);
  return tpj_ew_un(e, TPJ_UNARY_OP_SQRT,
                   tpj_ew_mul(e, tpj_ew_sub(e, one, x), tpj_ew_add(e, one, x)));
}
static tpj_value_t tpj_ew_fn_asin(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_ATAN2, x, tpj_ew_sqrt_one_minus_sq(e, x));
}
static tpj_value_t tpj_ew_fn_acos(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_ATAN2, tpj_ew_sqrt_one_minus_sq(e, x), x);
}
static tpj_value_t tpj_ew_fn_atan(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_ATAN2, x, tpj_ew_k(e, 1.0));
}
TPJ_EW_FORMULA(asin)
TPJ_EW_FORMULA(acos)
TPJ_EW_FORMULA(atan)

/* sinh = (expm1(x) - expm1(-x)) / 2 (exact near 0); for |x| > 20 use
 * sign(x) * exp(|x| - ln 2) so the result does not overflow early. */
static tpj_value_t tpj_ew_fn_sinh(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t nx = tpj_ew_un(e, TPJ_UNARY_OP_NEGATE, x);
  tpj_value_t small = tpj_ew_mulk(e, tpj_ew_sub(e, tpj_ew_un(e, TPJ_UNARY_OP_EXPM1, x),
                                                tpj_ew_un(e, TPJ_UNARY_OP_EXPM1, nx)), 0.5);
  tpj_value_t ax = tpj_ew_un(e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t big = tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_addk(e, ax, -M_LN2));
  big = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0),
                   tpj_ew_un(e, TPJ_UNARY_OP_NEGATE, big), big);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, ax, 20.0), big, small);
}
static tpj_value_t tpj_ew_fn_cosh(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t ax = tpj_ew_un(e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t half_exp = tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_addk(e, ax, -M_LN2));
  /* exp(x)/2 + exp(-x)/2 */
  tpj_value_t r = tpj_ew_add(e, half_exp,
                             tpj_ew_mulk(e, tpj_ew_un(e, TPJ_UNARY_OP_EXP,
                                                      tpj_ew_un(e, TPJ_UNARY_OP_NEGATE, ax)),
                                         0.5));
  return r;
}
/* asinh = sign(x) * log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x|; for huge a,
 * log(a) + ln 2. */
static tpj_value_t tpj_ew_fn_asinh(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t a = tpj_ew_un(e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t a2 = tpj_ew_mul(e, a, a);
  tpj_value_t den = tpj_ew_addk(e, tpj_ew_un(e, TPJ_UNARY_OP_SQRT, tpj_ew_addk(e, a2, 1.0)), 1.0);
  tpj_value_t small = tpj_ew_un(e, TPJ_UNARY_OP_LOG1P, tpj_ew_add(e, a, tpj_ew_div(e, a2, den)));
  tpj_value_t big = tpj_ew_addk(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG, a), M_LN2);
  tpj_value_t r = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, a, 1e8), big, small);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0),
                    tpj_ew_un(e, TPJ_UNARY_OP_NEGATE, r), r);
}
/* acosh = log1p(t + sqrt(2t + t^2)), t = x - 1; for huge x, log(x) + ln 2. */
static tpj_value_t tpj_ew_fn_acosh(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t t = tpj_ew_addk(e, x, -1.0);
  tpj_value_t s = tpj_ew_un(e, TPJ_UNARY_OP_SQRT,
                            tpj_ew_add(e, tpj_ew_mulk(e, t, 2.0), tpj_ew_mul(e, t, t)));
  tpj_value_t small = tpj_ew_un(e, TPJ_UNARY_OP_LOG1P, tpj_ew_add(e, t, s));
  tpj_value_t big = tpj_ew_addk(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG, x), M_LN2);
  tpj_value_t r = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, x, 1e8), big, small);
  /* x < 1 is NaN */
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 1.0), tpj_ew_k(e, NAN), r);
}
/* atanh = 0.5 * log1p(2x / (1 - x)) */
static tpj_value_t tpj_ew_fn_atanh(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t q = tpj_ew_div(e, tpj_ew_mulk(e, x, 2.0), tpj_ew_sub(e, tpj_ew_k(e, 1.0), x));
  return tpj_ew_mulk(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG1P, q), 0.5);
}
TPJ_EW_FORMULA(sinh)
TPJ_EW_FORMULA(cosh)
TPJ_EW_FORMULA(asinh)
TPJ_EW_FORMULA(acosh)
TPJ_EW_FORMULA(atanh)

static tpj_value_t tpj_ew_fn_erf(tpj_ew_t* e, tpj_value_t x) { return tpj_ew_erf(e, x); }
TPJ_EW_FORMULA(erf)

/* ------------------------------------------------------------- rounding -- */

static bool tpj_ew_is_float(tpj_ew_t* e) { return tpj_dtype_is_float(e->ct.dtype); }

static tpj_value_t tpj_ew_fn_floor(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_is_float(e) ? tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, x) : x;
}
static tpj_value_t tpj_ew_fn_ceil(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_is_float(e) ? tpj_ew_un(e, TPJ_UNARY_OP_CEIL, x) : x;
}
static tpj_value_t tpj_ew_fn_round(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_is_float(e) ? tpj_ew_un(e, TPJ_UNARY_OP_ROUND_EVEN, x) : x;
}
static tpj_value_t tpj_ew_fn_trunc(tpj_ew_t* e, tpj_value_t x) {
  if (!tpj_ew_is_float(e)) return x;
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0),
                    tpj_ew_un(e, TPJ_UNARY_OP_CEIL, x), tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, x));
}
static tpj_value_t tpj_ew_fn_frac(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_sub(e, x, tpj_ew_fn_trunc(e, x));
}
/* (0 < x) - (x < 0): NaN gives 0 like PyTorch. */
static tpj_value_t tpj_ew_fn_sign(tpj_ew_t* e, tpj_value_t x) {
  if (e->ct.dtype == TPJ_DTYPE_PRED) return x;
  tpj_value_t zero = tpj_ew_k(e, 0.0);
  tpj_value_t r = tpj_ew_sel(e, tpj_ew_cmp(e, TPJ_COMPARE_DIR_LT, x, zero), tpj_ew_k(e, -1.0),
                             zero);
  return tpj_ew_sel(e, tpj_ew_cmp(e, TPJ_COMPARE_DIR_GT, x, zero), tpj_ew_k(e, 1.0), r);
}
TPJ_EW_FORMULA(floor)
TPJ_EW_FORMULA(ceil)
TPJ_EW_FORMULA(round)
TPJ_EW_FORMULA(trunc)
TPJ_EW_FORMULA(frac)
TPJ_EW_FORMULA(sign)

/* round(x, decimals): nearbyint(x * 10^d) / 10^d, or for d < 0
 * nearbyint(x / 10^-d) * 10^-d, in the compute dtype like PyTorch. */
TPJ_LOWERING(tpj_lower_round_decimals) {
  int64_t decimals = 0;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &decimals));
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  if (!tpj_ew_is_float(&e)) return tpj_ew_done(&e, x, out);
  bool neg = decimals < 0;
  double p = pow(10.0, (double)(neg ? -decimals : decimals));
  if (e.ct.dtype == TPJ_DTYPE_F32) p = (double)(float)p;
  tpj_value_t k = tpj_ew_k(&e, p), r;
  if (neg) r = tpj_ew_mul(&e, tpj_ew_un(&e, TPJ_UNARY_OP_ROUND_EVEN, tpj_ew_div(&e, x, k)), k);
  else r = tpj_ew_div(&e, tpj_ew_un(&e, TPJ_UNARY_OP_ROUND_EVEN, tpj_ew_mul(&e, x, k)), k);
  return tpj_ew_done(&e, r, out);
}
