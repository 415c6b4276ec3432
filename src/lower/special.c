/* special.c: special functions PyTorch keeps as single ATen ops (no Core-ATen
 * decomposition): erfc, erfcx, erfinv, ndtri, lgamma, digamma, polygamma.
 * StableHLO has none of them, so each is a formula of basic ops built with
 * the elementwise family's tpj_ew_t context (f16/bf16/int compute in f32).
 *
 * Max error measured against torch float64 (tests/python/test_ops_special.py):
 *   erfc/erfcx f32 rel 1e-5 (worst near underflow, x ~ 10), f64 rel 1e-13;
 *   erfinv/ndtri f32 rel 1e-6, lgamma f32 abs 3e-6 (near its zeros) / rel 1e-6,
 *   digamma f32 abs 3e-6, polygamma n<=4 f32 rel 1e-5 for x >= -10.
 */
#include <math.h>

#include "lower/lower_elementwise.h"
#include "lower/lower_special.h"

#define SP_PI 3.14159265358979323846
#define SP_SQRT_PI 1.77245385090551602730
#define SP_HALF_LOG_2PI 0.91893853320467274178

/* Horner evaluation, coefficients highest power first. */
static tpj_value_t sp_poly(tpj_ew_t* e, tpj_value_t t, const double* c, size_t n) {
  tpj_value_t r = tpj_ew_k(e, c[0]);
  for (size_t i = 1; i < n; ++i) r = tpj_ew_addk(e, tpj_ew_mul(e, r, t), c[i]);
  return r;
}

static bool sp_is_f64(const tpj_ew_t* e) { return e->ct.dtype == TPJ_DTYPE_F64; }

static tpj_value_t sp_recip(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_div(e, tpj_ew_k(e, 1.0), x);
}

/* x - round_half_even(x): the reduced argument of sin(pi x), tan(pi x). */
static tpj_value_t sp_frac_centered(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_sub(e, x, tpj_ew_un(e, TPJ_UNARY_OP_ROUND_EVEN, x));
}

/* ----------------------------------------------------------------- erfc -- */

/* Threshold below which erfc is 1 - erf (no cancellation worth fixing). */
static double sp_erfc_thr(const tpj_ew_t* e) { return sp_is_f64(e) ? 2.5 : 0.5; }

/* erfcx(a) = exp(a^2) erfc(a) for a >= sp_erfc_thr. f32: t exp(P(t)) with
 * t = 1 / (1 + a/2), P a least-squares fit on [0, 11] (our own fit against
 * torch float64), asymptotic series beyond 11. f64: continued fraction. */
static tpj_value_t sp_erfcx_tail(tpj_ew_t* e, tpj_value_t a) {
  if (sp_is_f64(e)) {
    tpj_value_t aa = tpj_ew_bin(e, TPJ_BINARY_OP_MAX, a, tpj_ew_k(e, 2.5));
    tpj_value_t t = aa;
    for (int k = 80; k >= 1; --k) t = tpj_ew_add(e, aa, tpj_ew_div(e, tpj_ew_k(e, k * 0.5), t));
    return tpj_ew_div(e, tpj_ew_k(e, 1.0 / SP_SQRT_PI), t);
  }
  static const double p[11] = {
      -0.13642960805668478, 0.9392651752092448, -2.7025241537808724, 4.110932943215488,
      -3.4330852810118104,  1.594304568975915,  -0.68197362642479453, 0.21760599354789481,
      0.35592660798584569,  1.0015435382386524, -1.2655661541938108};
  tpj_value_t ac = tpj_ew_bin(e, TPJ_BINARY_OP_MIN, a, tpj_ew_k(e, 11.0));
  tpj_value_t t = sp_recip(e, tpj_ew_addk(e, tpj_ew_mulk(e, ac, 0.5), 1.0));
  tpj_value_t fit = tpj_ew_mul(e, t, tpj_ew_un(e, TPJ_UNARY_OP_EXP, sp_poly(e, t, p, 11)));
  /* 1/(a sqrt(pi)) (1 - 1/(2a^2) + 3/(4a^4) - 15/(8a^6)) */
  static const double q[4] = {-1.875, 0.75, -0.5, 1.0};
  tpj_value_t ia = sp_recip(e, tpj_ew_bin(e, TPJ_BINARY_OP_MAX, a, tpj_ew_k(e, 11.0)));
  tpj_value_t asym = tpj_ew_mul(e, tpj_ew_mulk(e, ia, 1.0 / SP_SQRT_PI),
                                sp_poly(e, tpj_ew_mul(e, ia, ia), q, 4));
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, a, 11.0), asym, fit);
}

/* exp(-a^2) for a >= 0; f32 splits a = h + l with h = floor(16 a) / 16 so
 * h^2 is exact and the rounding of a^2 does not blow up the relative error. */
static tpj_value_t sp_exp_neg_sq(tpj_ew_t* e, tpj_value_t a) {
  if (sp_is_f64(e)) {
    return tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_mulk(e, tpj_ew_mul(e, a, a), -1.0));
  }
  a = tpj_ew_bin(e, TPJ_BINARY_OP_MIN, a, tpj_ew_k(e, 20.0)); /* exp(-400) is 0 in f32 */
  tpj_value_t h = tpj_ew_mulk(e, tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, tpj_ew_mulk(e, a, 16.0)),
                              0.0625);
  tpj_value_t hh = tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_mulk(e, tpj_ew_mul(e, h, h), -1.0));
  tpj_value_t lo = tpj_ew_mul(e, tpj_ew_sub(e, a, h), tpj_ew_add(e, a, h));
  return tpj_ew_mul(e, hh, tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_mulk(e, lo, -1.0)));
}

/* erfc(x) in the compute dtype. */
static tpj_value_t sp_erfc(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t ax = tpj_ew_un(e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t near = tpj_ew_sub(e, tpj_ew_k(e, 1.0), tpj_ew_erf(e, x));
  tpj_value_t far = tpj_ew_mul(e, sp_exp_neg_sq(e, ax), sp_erfcx_tail(e, ax));
  far = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0),
                   tpj_ew_sub(e, tpj_ew_k(e, 2.0), far), far);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, ax, sp_erfc_thr(e)), near, far);
}

TPJ_LOWERING(tpj_lower_sp_erfc) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  return tpj_ew_done(&e, sp_erfc(&e, tpj_ew_arg(&e, 0)), out);
}

/* erfcx(x): the tail directly for x >= thr; 2 exp(x^2) - erfcx(-x) below -thr. */
TPJ_LOWERING(tpj_lower_sp_erfcx) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  tpj_value_t ax = tpj_ew_un(&e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t ex2 = tpj_ew_un(&e, TPJ_UNARY_OP_EXP, tpj_ew_mul(&e, x, x));
  tpj_value_t near = tpj_ew_mul(&e, ex2, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), tpj_ew_erf(&e, x)));
  tpj_value_t tail = sp_erfcx_tail(&e, ax);
  tpj_value_t neg = tpj_ew_sub(&e, tpj_ew_mulk(&e, ex2, 2.0), tail);
  tpj_value_t far = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, x, 0.0), neg, tail);
  double thr = sp_erfc_thr(&e);
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, ax, thr), near, far),
                     out);
}

/* --------------------------------------------------------------- erfinv -- */

/* x >= 0 with erf(x) = ay, given w = 1 - ay computed exactly by the caller.
 * Start from Winitzki's closed form (rel 2e-3), then Newton steps on erf for
 * ay <= 0.5 and on erfc (relative accuracy in the tail) above. */
static tpj_value_t sp_erfinv_pos(tpj_ew_t* e, tpj_value_t ay, tpj_value_t w) {
  const double a = 0.147;
  tpj_value_t ln = tpj_ew_un(e, TPJ_UNARY_OP_LOG,
                             tpj_ew_mul(e, w, tpj_ew_sub(e, tpj_ew_k(e, 2.0), w)));
  tpj_value_t b = tpj_ew_addk(e, tpj_ew_mulk(e, ln, 0.5), 2.0 / (SP_PI * a));
  tpj_value_t in = tpj_ew_sub(e, tpj_ew_mul(e, b, b), tpj_ew_mulk(e, ln, 1.0 / a));
  tpj_value_t x = tpj_ew_un(e, TPJ_UNARY_OP_SQRT,
                            tpj_ew_sub(e, tpj_ew_un(e, TPJ_UNARY_OP_SQRT, in), b));
  tpj_value_t central = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LE, ay, 0.5);
  int steps = sp_is_f64(e) ? 4 : 3;
  for (int s = 0; s < steps; ++s) {
    tpj_value_t d = tpj_ew_mulk(e, sp_exp_neg_sq(e, x), 2.0 / SP_SQRT_PI);
    tpj_value_t f_c = tpj_ew_sub(e, tpj_ew_erf(e, x), ay);
    tpj_value_t f_t = tpj_ew_sub(e, w, sp_erfc(e, x));
    tpj_value_t f = tpj_ew_sel(e, central, f_c, f_t);
    x = tpj_ew_sub(e, x, tpj_ew_div(e, f, d));
  }
  return x;
}

/* Finishes erfinv-like results: sign, w == 0 -> inf, w < 0 or > 1 -> NaN. */
static tpj_value_t sp_inv_finish(tpj_ew_t* e, tpj_value_t x, tpj_value_t w, tpj_value_t neg) {
  x = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_EQ, w, 0.0), tpj_ew_k(e, INFINITY), x);
  tpj_value_t bad = tpj_ew_bin(e, TPJ_BINARY_OP_OR, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, w, 0.0),
                               tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, w, 1.0));
  x = tpj_ew_sel(e, bad, tpj_ew_k(e, NAN), x);
  return tpj_ew_sel(e, neg, tpj_ew_mulk(e, x, -1.0), x);
}

TPJ_LOWERING(tpj_lower_sp_erfinv) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t y = tpj_ew_arg(&e, 0);
  tpj_value_t ay = tpj_ew_un(&e, TPJ_UNARY_OP_ABS, y);
  tpj_value_t w = tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), ay);
  tpj_value_t x = sp_erfinv_pos(&e, ay, w);
  x = sp_inv_finish(&e, x, w, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, y, 0.0));
  return tpj_ew_done(&e, x, out);
}

/* ndtri(p) = sqrt(2) erfinv(2p - 1); w = 1 - |2p - 1| is 2p or 2 - 2p exactly. */
TPJ_LOWERING(tpj_lower_sp_ndtri) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t p = tpj_ew_arg(&e, 0);
  tpj_value_t lowh = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, p, 0.5);
  tpj_value_t p2 = tpj_ew_mulk(&e, p, 2.0);
  tpj_value_t w = tpj_ew_sel(&e, lowh, p2, tpj_ew_sub(&e, tpj_ew_k(&e, 2.0), p2));
  tpj_value_t ay = tpj_ew_un(&e, TPJ_UNARY_OP_ABS, tpj_ew_addk(&e, p2, -1.0));
  tpj_value_t x = sp_erfinv_pos(&e, ay, w);
  x = sp_inv_finish(&e, x, w, lowh);
  return tpj_ew_done(&e, tpj_ew_mulk(&e, x, 1.4142135623730951), out);
}

/* ----------------------------------------------------- gamma functions -- */

/* lgamma(z) for z >= 0.5: Stirling's series at y = z + 6 (when z < 6) minus
 * log(z (z+1) ... (z+5)). */
static tpj_value_t sp_lgamma_pos(tpj_ew_t* e, tpj_value_t z) {
  tpj_value_t small = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, z, 6.0);
  tpj_value_t prod = z;
  for (int k = 1; k < 6; ++k) prod = tpj_ew_mul(e, prod, tpj_ew_addk(e, z, k));
  tpj_value_t y = tpj_ew_sel(e, small, tpj_ew_addk(e, z, 6.0), z);
  static const double c[7] = {1.0 / 156, -691.0 / 360360, 1.0 / 1188, -1.0 / 1680,
                              1.0 / 1260, -1.0 / 360, 1.0 / 12};
  tpj_value_t iy = sp_recip(e, y);
  tpj_value_t s = tpj_ew_mul(e, iy, sp_poly(e, tpj_ew_mul(e, iy, iy), c, 7));
  tpj_value_t lg = tpj_ew_sub(e, tpj_ew_mul(e, tpj_ew_addk(e, y, -0.5),
                                            tpj_ew_un(e, TPJ_UNARY_OP_LOG, y)), y);
  lg = tpj_ew_add(e, tpj_ew_addk(e, lg, SP_HALF_LOG_2PI), s);
  tpj_value_t shifted = tpj_ew_sub(e, lg, tpj_ew_un(e, TPJ_UNARY_OP_LOG, prod));
  return tpj_ew_sel(e, small, shifted, lg);
}

/* lgamma(x) = log(pi / |sin(pi x)|) - lgamma(1 - x) for x < 0.5; +inf at
 * the poles and at +-inf, as PyTorch. */
TPJ_LOWERING(tpj_lower_sp_lgamma) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  tpj_value_t refl = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, x, 0.5);
  tpj_value_t z = tpj_ew_sel(&e, refl, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), x), x);
  tpj_value_t lz = sp_lgamma_pos(&e, z);
  tpj_value_t sn = tpj_ew_un(&e, TPJ_UNARY_OP_ABS,
                             tpj_ew_un(&e, TPJ_UNARY_OP_SINE,
                                       tpj_ew_mulk(&e, sp_frac_centered(&e, x), SP_PI)));
  tpj_value_t lr = tpj_ew_sub(&e, tpj_ew_un(&e, TPJ_UNARY_OP_LOG,
                                            tpj_ew_div(&e, tpj_ew_k(&e, SP_PI), sn)), lz);
  tpj_value_t r = tpj_ew_sel(&e, refl, lr, lz);
  tpj_value_t inf = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, tpj_ew_un(&e, TPJ_UNARY_OP_ABS, x),
                                INFINITY);
  return tpj_ew_done(&e, tpj_ew_sel(&e, inf, tpj_ew_k(&e, INFINITY), r), out);
}

/* digamma(z) for z >= 0.5: asymptotic series at y = z + 6 (when z < 6) minus
 * sum 1/(z+k), k < 6. */
static tpj_value_t sp_digamma_pos(tpj_ew_t* e, tpj_value_t z) {
  tpj_value_t small = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, z, 6.0);
  tpj_value_t acc = tpj_ew_k(e, 0.0);
  for (int k = 0; k < 6; ++k) acc = tpj_ew_add(e, acc, sp_recip(e, tpj_ew_addk(e, z, k)));
  tpj_value_t y = tpj_ew_sel(e, small, tpj_ew_addk(e, z, 6.0), z);
  static const double c[7] = {-1.0 / 12, 691.0 / 32760, -1.0 / 132, 1.0 / 240,
                              -1.0 / 252, 1.0 / 120, -1.0 / 12};
  tpj_value_t iy = sp_recip(e, y);
  tpj_value_t iy2 = tpj_ew_mul(e, iy, iy);
  tpj_value_t s = tpj_ew_mul(e, iy2, sp_poly(e, iy2, c, 7));
  tpj_value_t r = tpj_ew_add(e, tpj_ew_sub(e, tpj_ew_un(e, TPJ_UNARY_OP_LOG, y),
                                           tpj_ew_mulk(e, iy, 0.5)), s);
  return tpj_ew_sel(e, small, tpj_ew_sub(e, r, acc), r);
}

/* digamma(x) = digamma(1 - x) - pi / tan(pi x) for x < 0.5; -inf at +0,
 * +inf at -0 and NaN at negative integers (PyTorch's calc_digamma). */
static tpj_value_t sp_digamma(tpj_ew_t* e, tpj_value_t x) {
  tpj_value_t refl = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.5);
  tpj_value_t z = tpj_ew_sel(e, refl, tpj_ew_sub(e, tpj_ew_k(e, 1.0), x), x);
  tpj_value_t dz = sp_digamma_pos(e, z);
  tpj_value_t ang = tpj_ew_mulk(e, sp_frac_centered(e, x), SP_PI);
  tpj_value_t cot = tpj_ew_div(e, tpj_ew_un(e, TPJ_UNARY_OP_COSINE, ang),
                               tpj_ew_un(e, TPJ_UNARY_OP_SINE, ang));
  tpj_value_t r = tpj_ew_sel(e, refl, tpj_ew_sub(e, dz, tpj_ew_mulk(e, cot, SP_PI)), dz);
  tpj_value_t is_int = tpj_ew_cmp(e, TPJ_COMPARE_DIR_EQ, x, tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, x));
  tpj_value_t neg_int = tpj_ew_bin(e, TPJ_BINARY_OP_AND, is_int,
                                   tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0));
  r = tpj_ew_sel(e, neg_int, tpj_ew_k(e, NAN), r);
  /* copysign(inf, -x) at zero: 1/x is +-inf with x's sign. */
  tpj_value_t zinf = tpj_ew_mulk(e, sp_recip(e, x), -1.0);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_EQ, x, 0.0), zinf, r);
}

TPJ_LOWERING(tpj_lower_sp_digamma) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  return tpj_ew_done(&e, sp_digamma(&e, tpj_ew_arg(&e, 0)), out);
}

/* v^n for an integer n >= 1 by repeated squaring. */
static tpj_value_t sp_ipow(tpj_ew_t* e, tpj_value_t v, int64_t n) {
  tpj_value_t r = TPJ_VALUE_NONE;
  bool have = false;
  while (n > 0) {
    if (n & 1) {
      r = have ? tpj_ew_mul(e, r, v) : v;
      have = true;
    }
    n >>= 1;
    if (n) v = tpj_ew_mul(e, v, v);
  }
  return r;
}

/* Hurwitz zeta(s, q) for an integer s >= 2: direct sum of (q+k)^-s for
 * k < 30, then Euler-Maclaurin at y = q + 30 (accurate for q >= -10). */
static tpj_value_t sp_hurwitz_int(tpj_ew_t* e, int64_t s, tpj_value_t q) {
  enum { kShift = 30 };
  tpj_value_t acc = tpj_ew_k(e, 0.0);
  for (int k = 0; k < kShift; ++k) /* k = 0 keeps q's own sign of zero */
    acc = tpj_ew_add(e, acc, sp_ipow(e, sp_recip(e, k ? tpj_ew_addk(e, q, k) : q), s));
  tpj_value_t iy = sp_recip(e, tpj_ew_addk(e, q, kShift));
  tpj_value_t iys = sp_ipow(e, iy, s);
  tpj_value_t tail = tpj_ew_add(e, tpj_ew_mulk(e, tpj_ew_div(e, iys, iy), 1.0 / (double)(s - 1)),
                                tpj_ew_mulk(e, iys, 0.5));
  /* B_2j / (2j)! for j = 1..6 */
  static const double b[6] = {1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600,
                              1.0 / 47900160, -691.0 / 1307674368000.0};
  double rising = (double)s; /* s (s+1) ... (s+2j-2) */
  tpj_value_t pw = tpj_ew_mul(e, iys, iy);  /* y^(-s-2j+1) */
  tpj_value_t iy2 = tpj_ew_mul(e, iy, iy);
  for (int j = 1; j <= 6; ++j) {
    tail = tpj_ew_add(e, tail, tpj_ew_mulk(e, pw, b[j - 1] * rising));
    rising *= (double)(s + 2 * j - 1) * (double)(s + 2 * j);
    pw = tpj_ew_mul(e, pw, iy2);
  }
  tpj_value_t r = tpj_ew_add(e, acc, tail);
  /* zeta(s, +inf) = 0 (the tail above is 0/0 there) */
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_EQ, q, INFINITY), tpj_ew_k(e, 0.0), r);
}

/* polygamma(n, x) = (-1)^(n+1) n! zeta(n+1, x); n = 0 is digamma. */
TPJ_LOWERING(tpj_lower_sp_polygamma) {
  int64_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 0, &n));
  if (n < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: polygamma order must be >= 0 (got %lld)",
                      call->target, (long long)n);
  }
  if (n > 24) return TPJ_LOWER_UNSUPPORTED(call, "polygamma order above 24 (got %lld)", (long long)n);
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 1);
  if (n == 0) return tpj_ew_done(&e, sp_digamma(&e, x), out);
  double fact = 1.0;
  for (int64_t k = 2; k <= n; ++k) fact *= (double)k;
  double sign = n % 2 ? 1.0 : -1.0;
  return tpj_ew_done(&e, tpj_ew_mulk(&e, sp_hurwitz_int(&e, n + 1, x), sign * fact), out);
}
