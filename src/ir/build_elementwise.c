/* Builders for constants, iota and elementwise ops (unary, binary, compare,
 * select, clamp, convert, bitcast_convert). Each checks operand types and
 * infers the result before anything is appended to the graph. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))

/* ------------------------------------------------------------- op tables -- */

typedef enum { K_FLOAT, K_NUMERIC, K_SIGNED_NUMERIC, K_INT_OR_PRED, K_INT, K_ANY } tpj_ir_kind_t;

typedef struct { const char* name; tpj_ir_kind_t kind; } tpj_ir_opinfo_t;

static const tpj_ir_opinfo_t kUnary[TPJ_UNARY_OP_COUNT_] = {
    [TPJ_UNARY_OP_ABS] = {"stablehlo.abs", K_SIGNED_NUMERIC},
    [TPJ_UNARY_OP_NEGATE] = {"stablehlo.negate", K_NUMERIC},
    [TPJ_UNARY_OP_EXP] = {"stablehlo.exponential", K_FLOAT},
    [TPJ_UNARY_OP_EXPM1] = {"stablehlo.exponential_minus_one", K_FLOAT},
    [TPJ_UNARY_OP_LOG] = {"stablehlo.log", K_FLOAT},
    [TPJ_UNARY_OP_LOG1P] = {"stablehlo.log_plus_one", K_FLOAT},
    [TPJ_UNARY_OP_SQRT] = {"stablehlo.sqrt", K_FLOAT},
    [TPJ_UNARY_OP_RSQRT] = {"stablehlo.rsqrt", K_FLOAT},
    [TPJ_UNARY_OP_CBRT] = {"stablehlo.cbrt", K_FLOAT},
    [TPJ_UNARY_OP_TANH] = {"stablehlo.tanh", K_FLOAT},
    [TPJ_UNARY_OP_LOGISTIC] = {"stablehlo.logistic", K_FLOAT},
    [TPJ_UNARY_OP_SINE] = {"stablehlo.sine", K_FLOAT},
    [TPJ_UNARY_OP_COSINE] = {"stablehlo.cosine", K_FLOAT},
    [TPJ_UNARY_OP_TAN] = {"stablehlo.tan", K_FLOAT},
    [TPJ_UNARY_OP_FLOOR] = {"stablehlo.floor", K_FLOAT},
    [TPJ_UNARY_OP_CEIL] = {"stablehlo.ceil", K_FLOAT},
    [TPJ_UNARY_OP_ROUND_EVEN] = {"stablehlo.round_nearest_even", K_FLOAT},
    [TPJ_UNARY_OP_ROUND_AFZ] = {"stablehlo.round_nearest_afz", K_FLOAT},
    [TPJ_UNARY_OP_SIGN] = {"stablehlo.sign", K_SIGNED_NUMERIC},
    [TPJ_UNARY_OP_NOT] = {"stablehlo.not", K_INT_OR_PRED},
    [TPJ_UNARY_OP_IS_FINITE] = {"stablehlo.is_finite", K_FLOAT},
    [TPJ_UNARY_OP_POPCNT] = {"stablehlo.popcnt", K_INT},
    [TPJ_UNARY_OP_CLZ] = {"stablehlo.count_leading_zeros", K_INT},
};

static const tpj_ir_opinfo_t kBinary[TPJ_BINARY_OP_COUNT_] = {
    [TPJ_BINARY_OP_ADD] = {"stablehlo.add", K_ANY},
    [TPJ_BINARY_OP_SUB] = {"stablehlo.subtract", K_NUMERIC},
    [TPJ_BINARY_OP_MUL] = {"stablehlo.multiply", K_ANY},
    [TPJ_BINARY_OP_DIV] = {"stablehlo.divide", K_NUMERIC},
    [TPJ_BINARY_OP_REM] = {"stablehlo.remainder", K_NUMERIC},
    [TPJ_BINARY_OP_POW] = {"stablehlo.power", K_NUMERIC},
    [TPJ_BINARY_OP_MAX] = {"stablehlo.maximum", K_ANY},
    [TPJ_BINARY_OP_MIN] = {"stablehlo.minimum", K_ANY},
    [TPJ_BINARY_OP_AND] = {"stablehlo.and", K_INT_OR_PRED},
    [TPJ_BINARY_OP_OR] = {"stablehlo.or", K_INT_OR_PRED},
    [TPJ_BINARY_OP_XOR] = {"stablehlo.xor", K_INT_OR_PRED},
    [TPJ_BINARY_OP_ATAN2] = {"stablehlo.atan2", K_FLOAT},
    [TPJ_BINARY_OP_SHL] = {"stablehlo.shift_left", K_INT},
    [TPJ_BINARY_OP_SHR_ARITH] = {"stablehlo.shift_right_arithmetic", K_INT},
    [TPJ_BINARY_OP_SHR_LOGICAL] = {"stablehlo.shift_right_logical", K_INT},
};

static bool tpj_ir_is_int(tpj_dtype_t d) {
  return tpj_dtype_is_signed_int(d) || tpj_dtype_is_unsigned_int(d);
}

static bool tpj_ir_kind_ok(tpj_ir_kind_t k, tpj_dtype_t d) {
  bool fl = tpj_dtype_is_float(d) || tpj_dtype_is_complex(d);
  switch (k) {
    case K_FLOAT: return fl;
    case K_NUMERIC: return fl || tpj_ir_is_int(d);
    case K_SIGNED_NUMERIC: return fl || tpj_dtype_is_signed_int(d);
    case K_INT_OR_PRED: return tpj_ir_is_int(d) || d == TPJ_DTYPE_PRED;
    case K_INT: return tpj_ir_is_int(d);
    case K_ANY: return true;
  }
  return false;
}

static const char* tpj_ir_kind_desc(tpj_ir_kind_t k) {
  switch (k) {
    case K_FLOAT: return "a floating-point or complex element type";
    case K_NUMERIC: return "a numeric (non-pred) element type";
    case K_SIGNED_NUMERIC: return "a signed integer, floating-point or complex element type";
    case K_INT_OR_PRED: return "an integer or pred element type";
    case K_INT: return "an integer element type";
    case K_ANY: return "any element type";
  }
  return "?";
}

/* Appends a one-result op with no attributes. */
static tpj_status_t tpj_ir_simple(tpj_graph_t* g, const char* name, const tpj_value_t* ops,
                                  size_t n, const tpj_type_t* rt, const char* attrs,
                                  tpj_value_t* out) {
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = n,
                        .result_types = rt, .num_results = 1, .attrs = attrs};
  return tpj_ir_op_append(g, &d, out);
}

/* ------------------------------------------------------------- constants -- */

/* Rounds d to a binary float with the given mantissa/exponent widths (RNE). */
static uint64_t tpj_ir_round_float(double d, int mbits, int ebits) {
  uint64_t sign = signbit(d) ? 1ull << (mbits + ebits) : 0;
  int bias = (1 << (ebits - 1)) - 1;
  uint64_t eall = (1ull << ebits) - 1;
  if (isnan(d)) return sign | (eall << mbits) | (1ull << (mbits - 1));
  d = fabs(d);
  if (isinf(d)) return sign | (eall << mbits);
  if (d == 0) return sign;
  int k;
  frexp(d, &k); /* d = m * 2^k, m in [0.5, 1) */
  int e = k - 1 + bias;
  if (e <= 0) return sign | (uint64_t)nearbyint(ldexp(d, bias - 1 + mbits));
  double q = nearbyint(ldexp(d, mbits - (k - 1)));
  if (q >= ldexp(1.0, mbits + 1)) {
    q /= 2;
    e++;
  }
  if (e >= (int)eall) return sign | (eall << mbits);
  return sign | ((uint64_t)e << mbits) | ((uint64_t)q - (1ull << mbits));
}

/* Encodes one element of dtype from a double (floats, complex real part). */
static void tpj_ir_encode_float(tpj_dtype_t dt, double v, unsigned char* out) {
  if (dt == TPJ_DTYPE_F16 || dt == TPJ_DTYPE_BF16) {
    uint16_t h = (uint16_t)(dt == TPJ_DTYPE_F16 ? tpj_ir_round_float(v, 10, 5)
                                                : tpj_ir_round_float(v, 7, 8));
    memcpy(out, &h, 2);
  } else if (dt == TPJ_DTYPE_F32 || dt == TPJ_DTYPE_C64) {
    float f = (float)v;
    memcpy(out, &f, 4);
  } else {
    memcpy(out, &v, 8);
  }
}

static tpj_status_t tpj_ir_int_range(tpj_dtype_t dt, long double* lo, long double* hi) {
  size_t bits = tpj_dtype_size(dt) * 8;
  if (tpj_dtype_is_signed_int(dt)) {
    *lo = -ldexpl(1.0L, (int)bits - 1);
    *hi = ldexpl(1.0L, (int)bits - 1) - 1;
  } else {
    *lo = 0;
    *hi = ldexpl(1.0L, (int)bits) - 1;
  }
  return NULL;
}

static tpj_status_t tpj_ir_splat_common(tpj_graph_t* g, tpj_dtype_t dtype,
                                        const int64_t* dims, size_t rank,
                                        const unsigned char* elem, tpj_value_t* out) {
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(tpj_type_init(dtype, dims, rank, &t), "stablehlo.constant"));
  tpj_ir_op_desc_t d = {.name = "stablehlo.constant", .result_types = &t, .num_results = 1,
                        .data = elem, .nbytes = tpj_dtype_size(dtype), .splat = true};
  return tpj_ir_op_append(g, &d, out);
}

tpj_status_t tpj_build_splat(tpj_graph_t* g, tpj_dtype_t dtype, const int64_t* dims,
                             size_t rank, double value, tpj_value_t* out) {
  TPJ_CHECK_ARG(g && out, "stablehlo.constant: graph or out is NULL");
  unsigned char elem[16] = {0};
  if (dtype == TPJ_DTYPE_PRED) {
    elem[0] = value != 0;
  } else if (tpj_ir_is_int(dtype)) {
    long double lo, hi, v = truncl((long double)value);
    tpj_ir_int_range(dtype, &lo, &hi);
    TPJ_CHECK_ARG(isfinite(value) && v >= lo && v <= hi,
                  "stablehlo.constant: splat value out of range for %s (got %g)",
                  tpj_dtype_name(dtype), value);
    if (tpj_dtype_is_signed_int(dtype)) {
      int64_t x = (int64_t)v;
      memcpy(elem, &x, tpj_dtype_size(dtype)); /* little-endian truncation */
    } else {
      uint64_t x = (uint64_t)v;
      memcpy(elem, &x, tpj_dtype_size(dtype));
    }
  } else {
    tpj_ir_encode_float(dtype, value, elem);
  }
  return tpj_ir_splat_common(g, dtype, dims, rank, elem, out);
}

tpj_status_t tpj_build_splat_int(tpj_graph_t* g, tpj_dtype_t dtype, const int64_t* dims,
                                 size_t rank, int64_t value, tpj_value_t* out) {
  TPJ_CHECK_ARG(g && out, "stablehlo.constant: graph or out is NULL");
  unsigned char elem[16] = {0};
  if (dtype == TPJ_DTYPE_PRED) {
    elem[0] = value != 0;
  } else if (tpj_ir_is_int(dtype) && dtype != TPJ_DTYPE_U64 && dtype != TPJ_DTYPE_S64) {
    long double lo, hi;
    tpj_ir_int_range(dtype, &lo, &hi);
    TPJ_CHECK_ARG((long double)value >= lo && (long double)value <= hi,
                  "stablehlo.constant: splat value out of range for %s (got %lld)",
                  tpj_dtype_name(dtype), (long long)value);
    memcpy(elem, &value, tpj_dtype_size(dtype));
  } else if (tpj_ir_is_int(dtype)) {
    memcpy(elem, &value, 8); /* u64: the bit pattern of value */
  } else {
    tpj_ir_encode_float(dtype, (double)value, elem);
  }
  return tpj_ir_splat_common(g, dtype, dims, rank, elem, out);
}

tpj_status_t tpj_build_constant(tpj_graph_t* g, const tpj_type_t* type, const void* data,
                                size_t nbytes, tpj_value_t* out) {
  TPJ_CHECK_ARG(g && type && out, "stablehlo.constant: graph, type or out is NULL");
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(
      tpj_type_init(type->dtype, type->dims, (size_t)type->rank, &t), "stablehlo.constant"));
  size_t want = (size_t)tpj_type_numel(&t) * tpj_dtype_size(t.dtype);
  TPJ_CHECK_ARG(nbytes == want, "stablehlo.constant: data size mismatch (got %zu bytes, expected %zu)",
                nbytes, want);
  TPJ_CHECK_ARG(nbytes == 0 || data, "stablehlo.constant: data is NULL");
  if (t.dtype == TPJ_DTYPE_PRED) {
    const unsigned char* p = (const unsigned char*)data;
    for (size_t i = 0; i < nbytes; ++i)
      TPJ_CHECK_ARG(p[i] <= 1, "stablehlo.constant: pred element %zu is not 0 or 1 (got %u)", i,
                    (unsigned)p[i]);
  }
  static const unsigned char kEmpty[1] = {0};
  tpj_ir_op_desc_t d = {.name = "stablehlo.constant", .result_types = &t, .num_results = 1,
                        .data = nbytes ? data : kEmpty, .nbytes = nbytes};
  return tpj_ir_op_append(g, &d, out);
}

tpj_status_t tpj_build_iota(tpj_graph_t* g, const tpj_type_t* type, int64_t dim,
                            tpj_value_t* out) {
  TPJ_CHECK_ARG(g && type && out, "stablehlo.iota: graph, type or out is NULL");
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(
      tpj_type_init(type->dtype, type->dims, (size_t)type->rank, &t), "stablehlo.iota"));
  TPJ_CHECK_ARG(t.rank >= 1, "stablehlo.iota: result must have rank >= 1 (got rank 0)");
  TPJ_CHECK_ARG(dim >= 0 && dim < t.rank,
                "stablehlo.iota: iota_dimension out of range (got %lld, expected 0..%d)",
                (long long)dim, (int)t.rank - 1);
  TPJ_CHECK_ARG(t.dtype != TPJ_DTYPE_PRED, "stablehlo.iota: element type must not be pred");
  char attrs[64];
  snprintf(attrs, sizeof(attrs), "iota_dimension = %lld : i64", (long long)dim);
  return tpj_ir_simple(g, "stablehlo.iota", NULL, 0, &t, attrs, out);
}

/* ----------------------------------------------------------- elementwise -- */

tpj_status_t tpj_build_unary(tpj_graph_t* g, tpj_unary_op_t op, tpj_value_t x,
                             tpj_value_t* out) {
  TPJ_CHECK_ARG(g && out, "unary op: graph or out is NULL");
  TPJ_CHECK_ARG((int)op >= 0 && op < TPJ_UNARY_OP_COUNT_, "unary op: unknown op %d", (int)op);
  const tpj_ir_opinfo_t* info = &kUnary[op];
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, info->name, "operand", x, &tx));
  bool ok = tpj_ir_kind_ok(info->kind, tx->dtype);
  if (op == TPJ_UNARY_OP_IS_FINITE || op == TPJ_UNARY_OP_FLOOR || op == TPJ_UNARY_OP_CEIL ||
      op == TPJ_UNARY_OP_ROUND_EVEN || op == TPJ_UNARY_OP_ROUND_AFZ)
    ok = tpj_dtype_is_float(tx->dtype);
  if (!ok) {
    char a[96];
    TPJ_FMT(tx, a);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: unsupported operand type (got %s, expected %s)",
                      info->name, a,
                      info->kind == K_FLOAT && !ok && tpj_dtype_is_complex(tx->dtype)
                          ? "a floating-point element type"
                          : tpj_ir_kind_desc(info->kind));
  }
  tpj_type_t rt = *tx;
  if (op == TPJ_UNARY_OP_IS_FINITE) rt.dtype = TPJ_DTYPE_PRED;
  if (op == TPJ_UNARY_OP_ABS && tx->dtype == TPJ_DTYPE_C64) rt.dtype = TPJ_DTYPE_F32;
  if (op == TPJ_UNARY_OP_ABS && tx->dtype == TPJ_DTYPE_C128) rt.dtype = TPJ_DTYPE_F64;
  return tpj_ir_simple(g, info->name, &x, 1, &rt, NULL, out);
}

/* Both operands present and of identical type. */
static tpj_status_t tpj_ir_same_types(const tpj_graph_t* g, const char* name, tpj_value_t a,
                                      tpj_value_t b, const tpj_type_t** out_type) {
  const tpj_type_t *ta, *tb;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "lhs", a, &ta));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "rhs", b, &tb));
  if (!tpj_type_equal(ta, tb)) {
    char x[96], y[96];
    TPJ_FMT(ta, x);
    TPJ_FMT(tb, y);
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s: operand types differ (got %s and %s, expected identical types)", name,
                      x, y);
  }
  *out_type = ta;
  return NULL;
}

tpj_status_t tpj_build_binary(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t a,
                              tpj_value_t b, tpj_value_t* out) {
  TPJ_CHECK_ARG(g && out, "binary op: graph or out is NULL");
  TPJ_CHECK_ARG((int)op >= 0 && op < TPJ_BINARY_OP_COUNT_, "binary op: unknown op %d", (int)op);
  const tpj_ir_opinfo_t* info = &kBinary[op];
  const tpj_type_t* t;
  TPJ_RETURN_IF_ERROR(tpj_ir_same_types(g, info->name, a, b, &t));
  bool ok = tpj_ir_kind_ok(info->kind, t->dtype);
  if (op == TPJ_BINARY_OP_ATAN2 || op == TPJ_BINARY_OP_REM)
    ok = ok && !tpj_dtype_is_complex(t->dtype);
  if ((op == TPJ_BINARY_OP_MAX || op == TPJ_BINARY_OP_MIN) && tpj_dtype_is_complex(t->dtype))
    ok = false;
  if (!ok) {
    char x[96];
    TPJ_FMT(t, x);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: unsupported operand type (got %s, expected %s)",
                      info->name, x, tpj_ir_kind_desc(info->kind));
  }
  tpj_value_t ops[2] = {a, b};
  return tpj_ir_simple(g, info->name, ops, 2, t, NULL, out);
}

tpj_status_t tpj_build_compare(tpj_graph_t* g, tpj_compare_dir_t dir, tpj_value_t a,
                               tpj_value_t b, tpj_value_t* out) {
  static const char* kDirs[] = {"EQ", "NE", "LT", "LE", "GT", "GE"};
  const char* name = "stablehlo.compare";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  TPJ_CHECK_ARG((int)dir >= 0 && dir <= TPJ_COMPARE_DIR_GE,
                "%s: unknown comparison_direction %d", name, (int)dir);
  const tpj_type_t* t;
  TPJ_RETURN_IF_ERROR(tpj_ir_same_types(g, name, a, b, &t));
  TPJ_CHECK_ARG(!tpj_dtype_is_complex(t->dtype) || dir <= TPJ_COMPARE_DIR_NE,
                "%s: complex operands only support EQ and NE (got %s)", name, kDirs[dir]);
  const char* ct = tpj_dtype_is_float(t->dtype) || tpj_dtype_is_complex(t->dtype) ? "FLOAT"
                   : tpj_dtype_is_signed_int(t->dtype)                             ? "SIGNED"
                                                                                   : "UNSIGNED";
  char attrs[160];
  snprintf(attrs, sizeof(attrs),
           "comparison_direction = #stablehlo<comparison_direction %s>, "
           "compare_type = #stablehlo<comparison_type %s>", kDirs[dir], ct);
  tpj_type_t rt = *t;
  rt.dtype = TPJ_DTYPE_PRED;
  tpj_value_t ops[2] = {a, b};
  return tpj_ir_simple(g, name, ops, 2, &rt, attrs, out);
}

tpj_status_t tpj_build_select(tpj_graph_t* g, tpj_value_t pred, tpj_value_t on_true,
                              tpj_value_t on_false, tpj_value_t* out) {
  const char* name = "stablehlo.select";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t *tp, *t;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "pred", pred, &tp));
  TPJ_RETURN_IF_ERROR(tpj_ir_same_types(g, name, on_true, on_false, &t));
  tpj_type_t want = *t;
  want.dtype = TPJ_DTYPE_PRED;
  if (tp->dtype != TPJ_DTYPE_PRED || (tp->rank != 0 && !tpj_type_equal(tp, &want))) {
    char x[96], y[96];
    TPJ_FMT(tp, x);
    TPJ_FMT(&want, y);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: bad pred type (got %s, expected %s or tensor<i1>)",
                      name, x, y);
  }
  tpj_value_t ops[3] = {pred, on_true, on_false};
  return tpj_ir_simple(g, name, ops, 3, t, NULL, out);
}

tpj_status_t tpj_build_clamp(tpj_graph_t* g, tpj_value_t lo, tpj_value_t x, tpj_value_t hi,
                             tpj_value_t* out) {
  const char* name = "stablehlo.clamp";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t *tl, *tx, *th;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "min", lo, &tl));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "max", hi, &th));
  const tpj_type_t* bounds[2] = {tl, th};
  for (int i = 0; i < 2; ++i) {
    const tpj_type_t* tb = bounds[i];
    if (tb->dtype != tx->dtype || (tb->rank != 0 && !tpj_type_equal(tb, tx))) {
      char a[96], b[96];
      TPJ_FMT(tb, a);
      TPJ_FMT(tx, b);
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "%s: bad %s type (got %s, expected a scalar of the operand dtype or %s)",
                        name, i ? "max" : "min", a, b);
    }
  }
  tpj_value_t ops[3] = {lo, x, hi};
  return tpj_ir_simple(g, name, ops, 3, tx, NULL, out);
}

tpj_status_t tpj_build_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                               tpj_value_t* out) {
  const char* name = "stablehlo.convert";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_CHECK_ARG(tpj_dtype_size(dtype) > 0, "%s: invalid result dtype (got %d)", name, (int)dtype);
  tpj_type_t rt = *tx;
  rt.dtype = dtype;
  return tpj_ir_simple(g, name, &x, 1, &rt, NULL, out);
}

tpj_status_t tpj_build_bitcast_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                                       tpj_value_t* out) {
  const char* name = "stablehlo.bitcast_convert";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  size_t from = tpj_dtype_size(tx->dtype), to = tpj_dtype_size(dtype);
  TPJ_CHECK_ARG(to > 0, "%s: invalid result dtype (got %d)", name, (int)dtype);
  TPJ_CHECK_ARG(tx->dtype != TPJ_DTYPE_PRED && dtype != TPJ_DTYPE_PRED,
                "%s: pred is not bitcastable (got %s to %s)", name, tpj_dtype_name(tx->dtype),
                tpj_dtype_name(dtype));
  tpj_type_t rt = *tx;
  rt.dtype = dtype;
  if (from > to) {
    TPJ_CHECK_ARG(tx->rank < TPJ_MAX_RANK, "%s: result rank would exceed %d", name, TPJ_MAX_RANK);
    rt.dims[rt.rank++] = (int64_t)(from / to);
  } else if (from < to) {
    char a[96];
    TPJ_FMT(tx, a);
    TPJ_CHECK_ARG(tx->rank >= 1 && tx->dims[tx->rank - 1] == (int64_t)(to / from),
                  "%s: narrow-to-wide bitcast needs a last dim of %zu (got %s to %s)", name,
                  to / from, a, tpj_dtype_name(dtype));
    rt.rank--;
  }
  return tpj_ir_simple(g, name, &x, 1, &rt, NULL, out);
}
