/* Helpers of the elementwise family: PyTorch type promotion and an
 * error-accumulating formula builder (tpj_ew_t) so each lowering reads like
 * the PyTorch kernel it mirrors, plus erf (StableHLO has none). */
#include <math.h>

#include "lower/lower_elementwise.h"

/* ------------------------------------------------------------ promotion -- */

tpj_dtype_t tpj_ew_compute_dtype(tpj_dtype_t dtype) {
  return dtype == TPJ_DTYPE_F16 || dtype == TPJ_DTYPE_BF16 ? TPJ_DTYPE_F32 : dtype;
}

static int tpj_ew_category(tpj_dtype_t d) {
  if (d == TPJ_DTYPE_PRED) return 0;
  if (tpj_dtype_is_signed_int(d) || tpj_dtype_is_unsigned_int(d)) return 1;
  if (tpj_dtype_is_float(d)) return 2;
  return 3;
}

static tpj_dtype_t tpj_ew_signed_of_size(size_t bytes) {
  switch (bytes) {
    case 1: return TPJ_DTYPE_S8;
    case 2: return TPJ_DTYPE_S16;
    case 4: return TPJ_DTYPE_S32;
    default: return TPJ_DTYPE_S64;
  }
}

tpj_dtype_t tpj_ew_promote(tpj_dtype_t a, tpj_dtype_t b) {
  if (a == b || b == TPJ_DTYPE_INVALID) return a;
  if (a == TPJ_DTYPE_INVALID) return b;
  int ca = tpj_ew_category(a), cb = tpj_ew_category(b);
  if (ca != cb) return ca > cb ? a : b;
  size_t sa = tpj_dtype_size(a), sb = tpj_dtype_size(b);
  if (ca == 2) {
    if (sa == sb) return TPJ_DTYPE_F32; /* f16 with bf16 */
    return sa > sb ? a : b;
  }
  bool ua = tpj_dtype_is_unsigned_int(a), ub = tpj_dtype_is_unsigned_int(b);
  if (ua == ub) return sa > sb ? a : b;
  tpj_dtype_t u = ua ? a : b, s = ua ? b : a;
  if (tpj_dtype_size(s) > tpj_dtype_size(u)) return s;
  return tpj_ew_signed_of_size(2 * tpj_dtype_size(u));
}

/* combine_categories(higher, lower) of PyTorch's result_type. */
static tpj_dtype_t tpj_ew_combine(tpj_dtype_t higher, tpj_dtype_t lower) {
  if (higher != TPJ_DTYPE_INVALID && tpj_ew_category(higher) >= 2) return higher;
  if (higher == TPJ_DTYPE_PRED ||
      (lower != TPJ_DTYPE_INVALID && tpj_ew_category(lower) >= 2))
    return tpj_ew_promote(higher, lower);
  return higher != TPJ_DTYPE_INVALID ? higher : lower;
}

tpj_dtype_t tpj_ew_result_type(const tpj_graph_t* g, const tpj_lower_call_t* call,
                               const size_t* arg_indices, size_t count) {
  tpj_dtype_t dim = TPJ_DTYPE_INVALID, zero = TPJ_DTYPE_INVALID, wrapped = TPJ_DTYPE_INVALID;
  for (size_t k = 0; k < count; ++k) {
    size_t i = arg_indices[k];
    if (i >= call->num_args) continue;
    const tpj_arg_t* a = &call->args[i];
    if (a->kind == TPJ_ARG_KIND_TENSOR) {
      const tpj_type_t* t = tpj_lower_type(g, a->tensor);
      if (t->rank > 0) dim = tpj_ew_promote(dim, t->dtype);
      else zero = tpj_ew_promote(zero, t->dtype);
    } else if (a->kind == TPJ_ARG_KIND_INT) {
      wrapped = tpj_ew_promote(wrapped, TPJ_DTYPE_S64);
    } else if (a->kind == TPJ_ARG_KIND_FLOAT) {
      wrapped = tpj_ew_promote(wrapped, TPJ_DTYPE_F32);
    } else if (a->kind == TPJ_ARG_KIND_BOOL) {
      wrapped = tpj_ew_promote(wrapped, TPJ_DTYPE_PRED);
    }
  }
  return tpj_ew_combine(dim, tpj_ew_combine(zero, wrapped));
}

/* -------------------------------------------------------------- context -- */

void tpj_ew_begin_dtype(tpj_ew_t* e, tpj_graph_t* g, const tpj_lower_call_t* call,
                        tpj_dtype_t dtype) {
  e->g = g;
  e->call = call;
  e->st = NULL;
  e->ct = *tpj_lower_out_type(call, 0);
  e->ct.dtype = dtype;
  if (call->num_outs < 1)
    e->st = TPJ_STATUS(INVALID_ARGUMENT, "%s: expected one output (got %zu)", call->target,
                       call->num_outs);
  else if (dtype == TPJ_DTYPE_INVALID)
    e->st = TPJ_STATUS(INVALID_ARGUMENT, "%s: output 0 has no dtype", call->target);
}

void tpj_ew_begin(tpj_ew_t* e, tpj_graph_t* g, const tpj_lower_call_t* call) {
  tpj_ew_begin_dtype(e, g, call, tpj_ew_compute_dtype(tpj_lower_out_type(call, 0)->dtype));
}

void tpj_ew_fail(tpj_ew_t* e, tpj_status_t s) {
  if (!s) return;
  if (e->st) tpj_status_free(s);
  else e->st = s;
}

/* Runs one builder unless an error is already recorded. */
#define TPJ_EW_RUN(e, expr)          \
  do {                               \
    tpj_value_t v_ = TPJ_VALUE_NONE; \
    if ((e)->st) return TPJ_VALUE_NONE; \
    (e)->st = (expr);                \
    return (e)->st ? TPJ_VALUE_NONE : v_; \
  } while (0)

tpj_value_t tpj_ew_arg(tpj_ew_t* e, size_t i) {
  TPJ_EW_RUN(e, tpj_lower_arg_as(e->g, e->call, i, &e->ct, &v_));
}

tpj_value_t tpj_ew_arg_dtype(tpj_ew_t* e, size_t i, tpj_dtype_t dtype) {
  tpj_type_t t = e->ct;
  t.dtype = dtype;
  TPJ_EW_RUN(e, tpj_lower_arg_as(e->g, e->call, i, &t, &v_));
}

double tpj_ew_arg_f(tpj_ew_t* e, size_t i) {
  double v = 0.0;
  if (!e->st) e->st = tpj_lower_arg_float(e->call, i, &v);
  return v;
}

tpj_value_t tpj_ew_k(tpj_ew_t* e, double value) {
  TPJ_EW_RUN(e, tpj_lower_full(e->g, &e->ct, value, &v_));
}

tpj_value_t tpj_ew_un(tpj_ew_t* e, tpj_unary_op_t op, tpj_value_t x) {
  TPJ_EW_RUN(e, tpj_build_unary(e->g, op, x, &v_));
}

tpj_value_t tpj_ew_bin(tpj_ew_t* e, tpj_binary_op_t op, tpj_value_t a, tpj_value_t b) {
  TPJ_EW_RUN(e, tpj_build_binary(e->g, op, a, b, &v_));
}

tpj_value_t tpj_ew_add(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_ADD, a, b);
}
tpj_value_t tpj_ew_sub(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_SUB, a, b);
}
tpj_value_t tpj_ew_mul(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_MUL, a, b);
}
tpj_value_t tpj_ew_div(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  return tpj_ew_bin(e, TPJ_BINARY_OP_DIV, a, b);
}

/* A constant with the dtype and shape of x (x need not have the compute type). */
static tpj_value_t tpj_ew_k_like(tpj_ew_t* e, tpj_value_t x, double value) {
  if (e->st) return TPJ_VALUE_NONE;
  TPJ_EW_RUN(e, tpj_lower_full(e->g, tpj_lower_type(e->g, x), value, &v_));
}

tpj_value_t tpj_ew_mulk(tpj_ew_t* e, tpj_value_t a, double k) {
  return tpj_ew_mul(e, a, tpj_ew_k_like(e, a, k));
}
tpj_value_t tpj_ew_addk(tpj_ew_t* e, tpj_value_t a, double k) {
  return tpj_ew_add(e, a, tpj_ew_k_like(e, a, k));
}

tpj_value_t tpj_ew_cmp(tpj_ew_t* e, tpj_compare_dir_t dir, tpj_value_t a, tpj_value_t b) {
  TPJ_EW_RUN(e, tpj_build_compare(e->g, dir, a, b, &v_));
}

tpj_value_t tpj_ew_cmpk(tpj_ew_t* e, tpj_compare_dir_t dir, tpj_value_t a, double k) {
  return tpj_ew_cmp(e, dir, a, tpj_ew_k_like(e, a, k));
}

tpj_value_t tpj_ew_sel(tpj_ew_t* e, tpj_value_t pred, tpj_value_t a, tpj_value_t b) {
  TPJ_EW_RUN(e, tpj_build_select(e->g, pred, a, b, &v_));
}

tpj_value_t tpj_ew_isnan(tpj_ew_t* e, tpj_value_t x) {
  return tpj_ew_cmp(e, TPJ_COMPARE_DIR_NE, x, x);
}

tpj_value_t tpj_ew_cvt(tpj_ew_t* e, tpj_value_t x, tpj_dtype_t dtype) {
  TPJ_EW_RUN(e, tpj_lower_convert(e->g, x, dtype, &v_));
}

tpj_status_t tpj_ew_done(tpj_ew_t* e, tpj_value_t v, tpj_value_t* out) {
  if (e->st) return e->st;
  return tpj_lower_coerce(e->g, v, tpj_lower_out_type(e->call, 0), out);
}

/* ------------------------------------------------------------------ erf -- */

/* Horner evaluation of coefficients (highest power first) at t. */
static tpj_value_t tpj_ew_poly(tpj_ew_t* e, tpj_value_t t, const double* c, size_t n) {
  tpj_value_t r = tpj_ew_k(e, c[0]);
  for (size_t i = 1; i < n; ++i) r = tpj_ew_addk(e, tpj_ew_mul(e, r, t), c[i]);
  return r;
}

/* f32: x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (|error| < 5e-7). */
static tpj_value_t tpj_ew_erf_f32(tpj_ew_t* e, tpj_value_t x) {
  static const double alpha[7] = {-2.72614225801306e-10, 2.77068142495902e-08,
                                  -2.10102402082508e-06, -5.69250639462346e-05,
                                  -7.34990630326855e-04, -2.95459980854025e-03,
                                  -1.60960333262415e-02};
  static const double beta[5] = {-1.45660718464996e-05, -2.13374055278905e-04,
                                 -1.68282697438203e-03, -7.37332916720468e-03,
                                 -1.42647390514189e-02};
  tpj_value_t xc = TPJ_VALUE_NONE;
  if (!e->st) e->st = tpj_build_clamp(e->g, tpj_ew_k(e, -4.0), x, tpj_ew_k(e, 4.0), &xc);
  tpj_value_t x2 = tpj_ew_mul(e, xc, xc);
  return tpj_ew_div(e, tpj_ew_mul(e, xc, tpj_ew_poly(e, x2, alpha, 7)),
                    tpj_ew_poly(e, x2, beta, 5));
}

/* f64: Maclaurin series for |x| < 2.5, continued fraction of erfc beyond. */
static tpj_value_t tpj_ew_erf_f64(tpj_ew_t* e, tpj_value_t x) {
  enum { kTerms = 44, kDepth = 70 };
  double c[kTerms];
  double fact = 1.0; /* n! */
  for (int n = 0; n < kTerms; ++n) {
    if (n > 0) fact *= n;
    c[kTerms - 1 - n] = (n % 2 ? -1.0 : 1.0) / (fact * (2 * n + 1)) * 1.1283791670955126;
  }
  tpj_value_t ax = tpj_ew_un(e, TPJ_UNARY_OP_ABS, x);
  tpj_value_t small_x = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, ax, 2.5), x,
                                   tpj_ew_k(e, 0.0));
  tpj_value_t series = tpj_ew_mul(e, small_x,
                                  tpj_ew_poly(e, tpj_ew_mul(e, small_x, small_x), c, kTerms));
  /* erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))) */
  tpj_value_t a = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, ax, 2.5), tpj_ew_k(e, 2.5),
                             tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, ax, 7.0),
                                        tpj_ew_k(e, 7.0), ax));
  tpj_value_t t = a;
  for (int k = kDepth; k >= 1; --k) t = tpj_ew_add(e, a, tpj_ew_div(e, tpj_ew_k(e, k * 0.5), t));
  tpj_value_t ex = tpj_ew_un(e, TPJ_UNARY_OP_EXP, tpj_ew_mul(e, tpj_ew_mulk(e, a, -1.0), a));
  tpj_value_t erfc = tpj_ew_div(e, tpj_ew_mulk(e, ex, 0.5641895835477563), t);
  tpj_value_t big = tpj_ew_sub(e, tpj_ew_k(e, 1.0), erfc);
  big = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, x, 0.0), tpj_ew_mulk(e, big, -1.0), big);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, ax, 2.5), series, big);
}

tpj_value_t tpj_ew_erf(tpj_ew_t* e, tpj_value_t x) {
  const tpj_type_t* t = tpj_lower_type(e->g, x);
  if (t->dtype == TPJ_DTYPE_F64) return tpj_ew_erf_f64(e, x);
  return tpj_ew_erf_f32(e, x);
}
