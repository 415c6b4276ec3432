/* Binary arithmetic lowerings (add, sub, mul, div with rounding modes,
 * remainder, fmod, pow, maximum/minimum, fmax/fmin, atan2, hypot, copysign,
 * lerp). Operands are converted to the output's compute dtype and broadcast
 * to the output shape; integer rounding follows PyTorch's CPU kernels. */
#include <math.h>
#include <string.h>

#include "lower/lower_elementwise.h"

static bool tpj_ew_is_int(tpj_dtype_t d) {
  return tpj_dtype_is_signed_int(d) || tpj_dtype_is_unsigned_int(d);
}

/* Integer division by zero raises on PyTorch CPU ("ZeroDivisionError"):
 * registers the runtime check that divisor b has no zero (integers only). */
static void tpj_ew_check_divisor(tpj_ew_t* e, tpj_value_t b) {
  if (!e->st && tpj_ew_is_int(e->ct.dtype)) tpj_ew_fail(e, tpj_lower_check_nonzero(e->g, e->call, b));
}

/* a + sign * alpha * b for add/sub; alpha from argument 2. */
static tpj_status_t tpj_ew_add_sub(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   tpj_value_t* out, size_t ia, size_t ib, bool subtract) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, ia), b = tpj_ew_arg(&e, ib);
  bool alpha_is_one = call->num_args < 3 ||
                      (call->args[2].kind != TPJ_ARG_KIND_FLOAT && call->args[2].i == 1) ||
                      (call->args[2].kind == TPJ_ARG_KIND_FLOAT && call->args[2].f == 1.0);
  if (!alpha_is_one) b = tpj_ew_mul(&e, b, tpj_ew_arg(&e, 2));
  if (e.ct.dtype == TPJ_DTYPE_PRED) {
    if (subtract)
      tpj_ew_fail(&e, TPJ_LOWER_UNSUPPORTED(call, "subtraction of bool tensors"));
    return tpj_ew_done(&e, tpj_ew_bin(&e, TPJ_BINARY_OP_OR, a, b), out);
  }
  return tpj_ew_done(&e, subtract ? tpj_ew_sub(&e, a, b) : tpj_ew_add(&e, a, b), out);
}

TPJ_LOWERING(tpj_lower_add) { return tpj_ew_add_sub(g, call, out, 0, 1, false); }
TPJ_LOWERING(tpj_lower_sub) { return tpj_ew_add_sub(g, call, out, 0, 1, true); }
TPJ_LOWERING(tpj_lower_rsub) { return tpj_ew_add_sub(g, call, out, 1, 0, true); }

TPJ_LOWERING(tpj_lower_mul) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_binary_op_t op = e.ct.dtype == TPJ_DTYPE_PRED ? TPJ_BINARY_OP_AND : TPJ_BINARY_OP_MUL;
  return tpj_ew_done(&e, tpj_ew_bin(&e, op, tpj_ew_arg(&e, 0), tpj_ew_arg(&e, 1)), out);
}

TPJ_LOWERING(tpj_lower_div) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  return tpj_ew_done(&e, tpj_ew_div(&e, tpj_ew_arg(&e, 0), tpj_ew_arg(&e, 1)), out);
}

/* Integer floor division: q = a / b (truncating), minus 1 when the remainder
 * is nonzero and the signs differ. */
static tpj_value_t tpj_ew_int_floor_div(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  tpj_value_t q = tpj_ew_div(e, a, b);
  if (tpj_dtype_is_unsigned_int(e->ct.dtype)) return q;
  tpj_value_t r = tpj_ew_bin(e, TPJ_BINARY_OP_REM, a, b);
  tpj_value_t nz = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_NE, r, 0.0);
  tpj_value_t diff = tpj_ew_bin(e, TPJ_BINARY_OP_XOR, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, r, 0.0),
                                tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, b, 0.0));
  tpj_value_t fix = tpj_ew_bin(e, TPJ_BINARY_OP_AND, nz, diff);
  return tpj_ew_sel(e, fix, tpj_ew_addk(e, q, -1.0), q);
}

/* PyTorch's div_floor for floats: from fmod, with the half-way correction. */
static tpj_value_t tpj_ew_float_floor_div(tpj_ew_t* e, tpj_value_t a, tpj_value_t b) {
  tpj_value_t mod = tpj_ew_bin(e, TPJ_BINARY_OP_REM, a, b);
  tpj_value_t div = tpj_ew_div(e, tpj_ew_sub(e, a, mod), b);
  tpj_value_t fix = tpj_ew_bin(e, TPJ_BINARY_OP_AND, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_NE, mod, 0.0),
                               tpj_ew_bin(e, TPJ_BINARY_OP_XOR,
                                          tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, b, 0.0),
                                          tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LT, mod, 0.0)));
  div = tpj_ew_sel(e, fix, tpj_ew_addk(e, div, -1.0), div);
  tpj_value_t fl = tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, div);
  tpj_value_t up = tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GT, tpj_ew_sub(e, div, fl), 0.5);
  fl = tpj_ew_sel(e, up, tpj_ew_addk(e, fl, 1.0), fl);
  tpj_value_t q = tpj_ew_div(e, a, b);
  /* zero quotient keeps the sign of a / b */
  tpj_value_t signed_zero = tpj_ew_mulk(e, q, 0.0);
  fl = tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_EQ, div, 0.0), signed_zero, fl);
  return tpj_ew_sel(e, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_EQ, b, 0.0), q, fl);
}

static tpj_status_t tpj_ew_div_rounded(tpj_graph_t* g, const tpj_lower_call_t* call,
                                       tpj_value_t* out, const char* mode) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), b = tpj_ew_arg(&e, 1), r = TPJ_VALUE_NONE;
  bool is_int = tpj_ew_is_int(e.ct.dtype);
  tpj_ew_check_divisor(&e, b);
  if (!mode) {
    r = tpj_ew_div(&e, a, b);
  } else if (strcmp(mode, "trunc") == 0) {
    r = tpj_ew_div(&e, a, b);
    if (!is_int) {
      tpj_value_t neg = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, r, 0.0);
      r = tpj_ew_sel(&e, neg, tpj_ew_un(&e, TPJ_UNARY_OP_CEIL, r),
                     tpj_ew_un(&e, TPJ_UNARY_OP_FLOOR, r));
    }
  } else if (strcmp(mode, "floor") == 0) {
    r = is_int ? tpj_ew_int_floor_div(&e, a, b) : tpj_ew_float_floor_div(&e, a, b);
  } else {
    tpj_ew_fail(&e, TPJ_STATUS(INVALID_ARGUMENT,
                               "%s: rounding_mode must be None, 'trunc' or 'floor' (got '%s')",
                               call->target, mode));
  }
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_div_mode) {
  const char* mode = NULL;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_string(call, 2, &mode));
  return tpj_ew_div_rounded(g, call, out, mode);
}

TPJ_LOWERING(tpj_lower_floor_divide) { return tpj_ew_div_rounded(g, call, out, "floor"); }

/* Python-style remainder: the result takes the sign of the divisor. */
TPJ_LOWERING(tpj_lower_remainder) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), b = tpj_ew_arg(&e, 1);
  tpj_ew_check_divisor(&e, b);
  tpj_value_t r = tpj_ew_bin(&e, TPJ_BINARY_OP_REM, a, b);
  if (!tpj_dtype_is_unsigned_int(e.ct.dtype)) {
    tpj_value_t fix = tpj_ew_bin(&e, TPJ_BINARY_OP_AND,
                                 tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_NE, r, 0.0),
                                 tpj_ew_bin(&e, TPJ_BINARY_OP_XOR,
                                            tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, r, 0.0),
                                            tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, b, 0.0)));
    r = tpj_ew_sel(&e, fix, tpj_ew_add(&e, r, b), r);
  }
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_fmod) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), b = tpj_ew_arg(&e, 1);
  tpj_ew_check_divisor(&e, b);
  return tpj_ew_done(&e, tpj_ew_bin(&e, TPJ_BINARY_OP_REM, a, b), out);
}

TPJ_LOWERING(tpj_lower_pow) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), r;
  if (e.ct.dtype == TPJ_DTYPE_PRED) {
    tpj_ew_fail(&e, TPJ_LOWER_UNSUPPORTED(call, "pow of bool tensors"));
    r = TPJ_VALUE_NONE;
  } else if (tpj_lower_arg_is_scalar(call, 1) && call->args[1].kind != TPJ_ARG_KIND_BOOL &&
             tpj_ew_arg_f(&e, 1) == 2.0) {
    r = tpj_ew_mul(&e, a, a); /* PyTorch special-cases x ** 2 */
  } else {
    /* integer power in XLA matches PyTorch, negative exponents included */
    r = tpj_ew_bin(&e, TPJ_BINARY_OP_POW, a, tpj_ew_arg(&e, 1));
  }
  return tpj_ew_done(&e, r, out);
}

/* maximum/minimum propagate NaN; fmax/fmin ignore it. */
static tpj_status_t tpj_ew_max_min(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   tpj_value_t* out, bool is_max, bool ignore_nan) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), b = tpj_ew_arg(&e, 1), r;
  if (e.ct.dtype == TPJ_DTYPE_PRED)
    return tpj_ew_done(&e, tpj_ew_bin(&e, is_max ? TPJ_BINARY_OP_OR : TPJ_BINARY_OP_AND, a, b),
                       out);
  r = tpj_ew_bin(&e, is_max ? TPJ_BINARY_OP_MAX : TPJ_BINARY_OP_MIN, a, b);
  if (tpj_dtype_is_float(e.ct.dtype)) {
    if (ignore_nan) {
      r = tpj_ew_sel(&e, tpj_ew_isnan(&e, a), b, r);
      r = tpj_ew_sel(&e, tpj_ew_isnan(&e, b), a, r);
    } else {
      r = tpj_ew_sel(&e, tpj_ew_isnan(&e, a), a, r);
      r = tpj_ew_sel(&e, tpj_ew_isnan(&e, b), b, r);
    }
  }
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_maximum) { return tpj_ew_max_min(g, call, out, true, false); }
TPJ_LOWERING(tpj_lower_minimum) { return tpj_ew_max_min(g, call, out, false, false); }
TPJ_LOWERING(tpj_lower_fmax) { return tpj_ew_max_min(g, call, out, true, true); }
TPJ_LOWERING(tpj_lower_fmin) { return tpj_ew_max_min(g, call, out, false, true); }

TPJ_LOWERING(tpj_lower_atan2) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  return tpj_ew_done(&e, tpj_ew_bin(&e, TPJ_BINARY_OP_ATAN2, tpj_ew_arg(&e, 0),
                                    tpj_ew_arg(&e, 1)), out);
}

/* hypot without overflow: m * sqrt(1 + (n / m)^2), m = max(|a|, |b|). */
TPJ_LOWERING(tpj_lower_hypot) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_un(&e, TPJ_UNARY_OP_ABS, tpj_ew_arg(&e, 0));
  tpj_value_t b = tpj_ew_un(&e, TPJ_UNARY_OP_ABS, tpj_ew_arg(&e, 1));
  tpj_value_t m = tpj_ew_bin(&e, TPJ_BINARY_OP_MAX, a, b);
  tpj_value_t n = tpj_ew_bin(&e, TPJ_BINARY_OP_MIN, a, b);
  tpj_value_t zero = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, m, 0.0);
  tpj_value_t q = tpj_ew_div(&e, n, tpj_ew_sel(&e, zero, tpj_ew_k(&e, 1.0), m));
  tpj_value_t r = tpj_ew_mul(&e, m, tpj_ew_un(&e, TPJ_UNARY_OP_SQRT,
                                              tpj_ew_addk(&e, tpj_ew_mul(&e, q, q), 1.0)));
  tpj_value_t inf = tpj_ew_bin(&e, TPJ_BINARY_OP_OR,
                               tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, a, INFINITY),
                               tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, b, INFINITY));
  tpj_value_t nan = tpj_ew_bin(&e, TPJ_BINARY_OP_OR, tpj_ew_isnan(&e, a), tpj_ew_isnan(&e, b));
  r = tpj_ew_sel(&e, nan, tpj_ew_k(&e, NAN), r); /* XLA max/min may drop NaN */
  r = tpj_ew_sel(&e, inf, tpj_ew_k(&e, INFINITY), r);
  return tpj_ew_done(&e, r, out);
}

/* Sign bit of b on the magnitude of a, through the integer bit pattern. */
TPJ_LOWERING(tpj_lower_copysign) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  bool wide = e.ct.dtype == TPJ_DTYPE_F64;
  tpj_dtype_t it = wide ? TPJ_DTYPE_U64 : TPJ_DTYPE_U32;
  tpj_value_t a = TPJ_VALUE_NONE, b = TPJ_VALUE_NONE, r = TPJ_VALUE_NONE;
  tpj_value_t ia = tpj_ew_arg(&e, 0), ib = tpj_ew_arg(&e, 1);
  if (!e.st) e.st = tpj_build_bitcast_convert(g, ia, it, &a);
  if (!e.st) e.st = tpj_build_bitcast_convert(g, ib, it, &b);
  tpj_value_t sign_mask = TPJ_VALUE_NONE;
  int64_t sm = wide ? INT64_MIN : (int64_t)0x80000000u;
  if (!e.st) e.st = tpj_build_splat_int(g, it, e.ct.dims, (size_t)e.ct.rank, sm, &sign_mask);
  tpj_value_t mag_mask = tpj_ew_un(&e, TPJ_UNARY_OP_NOT, sign_mask);
  tpj_value_t bits = tpj_ew_bin(&e, TPJ_BINARY_OP_OR, tpj_ew_bin(&e, TPJ_BINARY_OP_AND, a, mag_mask),
                                tpj_ew_bin(&e, TPJ_BINARY_OP_AND, b, sign_mask));
  if (!e.st) e.st = tpj_build_bitcast_convert(g, bits, e.ct.dtype, &r);
  return tpj_ew_done(&e, r, out);
}

/* PyTorch lerp: weight < 0.5 ? self + w * (end - self) : end - (end - self) * (1 - w). */
TPJ_LOWERING(tpj_lower_lerp) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t a = tpj_ew_arg(&e, 0), b = tpj_ew_arg(&e, 1), w = tpj_ew_arg(&e, 2);
  tpj_value_t d = tpj_ew_sub(&e, b, a);
  tpj_value_t lo = tpj_ew_add(&e, a, tpj_ew_mul(&e, w, d));
  tpj_value_t hi = tpj_ew_sub(&e, b, tpj_ew_mul(&e, d, tpj_ew_sub(&e, tpj_ew_k(&e, 1.0), w)));
  tpj_value_t small = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, tpj_ew_un(&e, TPJ_UNARY_OP_ABS, w), 0.5);
  return tpj_ew_done(&e, tpj_ew_sel(&e, small, lo, hi), out);
}
