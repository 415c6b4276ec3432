/* Comparison, logical, bitwise and selection lowerings (eq..ge, logical_*,
 * bitwise_*, shifts, where, masked_fill, clamp*, isnan/isinf, nan_to_num).
 * Comparisons compare in the promoted dtype of their inputs, the way
 * PyTorch's TensorIterator does, and produce bool. */
#include <float.h>
#include <math.h>

#include "lower/lower_elementwise.h"

static tpj_status_t tpj_ew_compare(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   tpj_value_t* out, tpj_compare_dir_t dir) {
  static const size_t idx[2] = {0, 1};
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, tpj_ew_result_type(g, call, idx, 2));
  return tpj_ew_done(&e, tpj_ew_cmp(&e, dir, tpj_ew_arg(&e, 0), tpj_ew_arg(&e, 1)), out);
}

TPJ_LOWERING(tpj_lower_eq) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_EQ); }
TPJ_LOWERING(tpj_lower_ne) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_NE); }
TPJ_LOWERING(tpj_lower_lt) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_LT); }
TPJ_LOWERING(tpj_lower_le) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_LE); }
TPJ_LOWERING(tpj_lower_gt) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_GT); }
TPJ_LOWERING(tpj_lower_ge) { return tpj_ew_compare(g, call, out, TPJ_COMPARE_DIR_GE); }

/* Logical ops: each operand is (x != 0); result converted to the output. */
static tpj_status_t tpj_ew_logical(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   tpj_value_t* out, tpj_binary_op_t op) {
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, TPJ_DTYPE_PRED);
  tpj_value_t a = tpj_ew_arg(&e, 0);
  tpj_value_t r = op == TPJ_BINARY_OP_COUNT_ ? tpj_ew_un(&e, TPJ_UNARY_OP_NOT, a)
                                             : tpj_ew_bin(&e, op, a, tpj_ew_arg(&e, 1));
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_logical_and) { return tpj_ew_logical(g, call, out, TPJ_BINARY_OP_AND); }
TPJ_LOWERING(tpj_lower_logical_or) { return tpj_ew_logical(g, call, out, TPJ_BINARY_OP_OR); }
TPJ_LOWERING(tpj_lower_logical_xor) { return tpj_ew_logical(g, call, out, TPJ_BINARY_OP_XOR); }
TPJ_LOWERING(tpj_lower_logical_not) {
  return tpj_ew_logical(g, call, out, TPJ_BINARY_OP_COUNT_);
}

/* Bitwise ops run in the output dtype (integers or bool). */
static tpj_status_t tpj_ew_bitwise(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   tpj_value_t* out, tpj_binary_op_t op) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  if (tpj_dtype_is_float(e.ct.dtype))
    tpj_ew_fail(&e, TPJ_STATUS(INVALID_ARGUMENT, "%s: bitwise ops need integer or bool tensors "
                               "(got %s)", call->target, tpj_dtype_name(e.ct.dtype)));
  tpj_value_t a = tpj_ew_arg(&e, 0);
  tpj_value_t r = op == TPJ_BINARY_OP_COUNT_ ? tpj_ew_un(&e, TPJ_UNARY_OP_NOT, a)
                                             : tpj_ew_bin(&e, op, a, tpj_ew_arg(&e, 1));
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_bitwise_and) { return tpj_ew_bitwise(g, call, out, TPJ_BINARY_OP_AND); }
TPJ_LOWERING(tpj_lower_bitwise_or) { return tpj_ew_bitwise(g, call, out, TPJ_BINARY_OP_OR); }
TPJ_LOWERING(tpj_lower_bitwise_xor) { return tpj_ew_bitwise(g, call, out, TPJ_BINARY_OP_XOR); }
TPJ_LOWERING(tpj_lower_bitwise_not) {
  return tpj_ew_bitwise(g, call, out, TPJ_BINARY_OP_COUNT_);
}
/* StableHLO shifts give 0 (left) / the sign fill (right) for counts >= the
 * bit width or negative, as PyTorch does. */
TPJ_LOWERING(tpj_lower_shift_left) { return tpj_ew_bitwise(g, call, out, TPJ_BINARY_OP_SHL); }
TPJ_LOWERING(tpj_lower_shift_right) {
  tpj_dtype_t d = tpj_lower_out_type(call, 0)->dtype;
  return tpj_ew_bitwise(g, call, out, tpj_dtype_is_unsigned_int(d) ? TPJ_BINARY_OP_SHR_LOGICAL
                                                                   : TPJ_BINARY_OP_SHR_ARITH);
}

/* where(condition, self, other); all overloads (tensor or scalar branches). */
TPJ_LOWERING(tpj_lower_where) {
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, tpj_lower_out_type(call, 0)->dtype);
  tpj_value_t c = tpj_ew_arg_dtype(&e, 0, TPJ_DTYPE_PRED);
  return tpj_ew_done(&e, tpj_ew_sel(&e, c, tpj_ew_arg(&e, 1), tpj_ew_arg(&e, 2)), out);
}

/* masked_fill(self, mask, value): value where mask, else self. */
TPJ_LOWERING(tpj_lower_masked_fill) {
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, tpj_lower_out_type(call, 0)->dtype);
  tpj_value_t m = tpj_ew_arg_dtype(&e, 1, TPJ_DTYPE_PRED);
  return tpj_ew_done(&e, tpj_ew_sel(&e, m, tpj_ew_arg(&e, 2), tpj_ew_arg(&e, 0)), out);
}

/* std::min(std::max(x, lo), hi): NaN x stays NaN; lo > hi gives hi. */
static tpj_status_t tpj_ew_clamp(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 tpj_value_t* out, int lo_arg, int hi_arg) {
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, tpj_lower_out_type(call, 0)->dtype);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  bool has_lo = lo_arg >= 0 && !tpj_lower_arg_is_none(call, (size_t)lo_arg);
  bool has_hi = hi_arg >= 0 && !tpj_lower_arg_is_none(call, (size_t)hi_arg);
  if (!has_lo && !has_hi)
    tpj_ew_fail(&e, TPJ_STATUS(INVALID_ARGUMENT, "%s: at least one of min or max must not be "
                               "None", call->target));
  if (has_lo) {
    tpj_value_t lo = tpj_ew_arg(&e, (size_t)lo_arg);
    x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_COMPARE_DIR_LT, x, lo), lo, x);
    if (tpj_dtype_is_float(e.ct.dtype)) x = tpj_ew_sel(&e, tpj_ew_isnan(&e, lo), lo, x);
  }
  if (has_hi) {
    tpj_value_t hi = tpj_ew_arg(&e, (size_t)hi_arg);
    x = tpj_ew_sel(&e, tpj_ew_cmp(&e, TPJ_COMPARE_DIR_LT, hi, x), hi, x);
    if (tpj_dtype_is_float(e.ct.dtype)) x = tpj_ew_sel(&e, tpj_ew_isnan(&e, hi), hi, x);
  }
  return tpj_ew_done(&e, x, out);
}

TPJ_LOWERING(tpj_lower_clamp) { return tpj_ew_clamp(g, call, out, 1, 2); }
TPJ_LOWERING(tpj_lower_clamp_min) { return tpj_ew_clamp(g, call, out, 1, -1); }
TPJ_LOWERING(tpj_lower_clamp_max) { return tpj_ew_clamp(g, call, out, -1, 1); }

/* Float classification; integer and bool inputs are never NaN or infinite. */
static tpj_status_t tpj_ew_classify(tpj_graph_t* g, const tpj_lower_call_t* call,
                                    tpj_value_t* out, int kind) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  tpj_dtype_t in = tpj_lower_type(g, x)->dtype;
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, in);
  if (!tpj_dtype_is_float(in))
    return e.st ? e.st : tpj_lower_full(g, tpj_lower_out_type(call, 0), 0.0, out);
  x = tpj_ew_arg(&e, 0);
  tpj_value_t r;
  switch (kind) {
    case 0: r = tpj_ew_isnan(&e, x); break;
    case 1: r = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, tpj_ew_un(&e, TPJ_UNARY_OP_ABS, x), INFINITY);
      break;
    case 2: r = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, x, INFINITY); break;
    default: r = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, x, -INFINITY); break;
  }
  return tpj_ew_done(&e, r, out);
}

TPJ_LOWERING(tpj_lower_isnan) { return tpj_ew_classify(g, call, out, 0); }
TPJ_LOWERING(tpj_lower_isinf) { return tpj_ew_classify(g, call, out, 1); }
TPJ_LOWERING(tpj_lower_isposinf) { return tpj_ew_classify(g, call, out, 2); }
TPJ_LOWERING(tpj_lower_isneginf) { return tpj_ew_classify(g, call, out, 3); }

static double tpj_ew_max_finite(tpj_dtype_t d) {
  switch (d) {
    case TPJ_DTYPE_F16: return 65504.0;
    case TPJ_DTYPE_BF16: return 3.3895313892515355e38;
    case TPJ_DTYPE_F32: return FLT_MAX;
    default: return DBL_MAX;
  }
}

/* nan_to_num(self, nan=0, posinf=max finite, neginf=lowest finite). */
TPJ_LOWERING(tpj_lower_nan_to_num) {
  tpj_dtype_t d = tpj_lower_out_type(call, 0)->dtype;
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, d);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  if (!tpj_dtype_is_float(d)) return tpj_ew_done(&e, x, out);
  double nan_v = 0.0, pos = tpj_ew_max_finite(d), neg = -tpj_ew_max_finite(d);
  if (!e.st) e.st = tpj_lower_arg_float_or(call, 1, nan_v, &nan_v);
  if (!e.st) e.st = tpj_lower_arg_float_or(call, 2, pos, &pos);
  if (!e.st) e.st = tpj_lower_arg_float_or(call, 3, neg, &neg);
  x = tpj_ew_sel(&e, tpj_ew_isnan(&e, x), tpj_ew_k(&e, nan_v), x);
  x = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, x, INFINITY), tpj_ew_k(&e, pos), x);
  x = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_EQ, x, -INFINITY), tpj_ew_k(&e, neg), x);
  return tpj_ew_done(&e, x, out);
}
