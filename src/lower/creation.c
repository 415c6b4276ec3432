/* Creation and copy lowerings: dtype conversion (_to_copy), identities
 * (clone, alias, detach), copy with broadcast, constant fills (zeros, ones,
 * full*, empty* as zeros), arange and linspace. Output shapes and dtypes come
 * from the expected output type, so size arguments need no re-parsing. */
#include "lower/lower_elementwise.h"

/* _to_copy(self, *, dtype, ...): float -> int truncates, x -> bool is x != 0. */
TPJ_LOWERING(tpj_lower_to_copy) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  return tpj_lower_coerce(g, x, tpj_lower_out_type(call, 0), &out[0]);
}

/* clone, alias, detach, lift_fresh_copy: values are immutable, so the input
 * is the result. */
TPJ_LOWERING(tpj_lower_identity) {
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &out[0]));
  return NULL;
}

/* copy(self, src): src converted and broadcast to self's type. */
TPJ_LOWERING(tpj_lower_copy) {
  return tpj_lower_arg_as(g, call, 1, tpj_lower_out_type(call, 0), &out[0]);
}

TPJ_LOWERING(tpj_lower_zeros_out) {
  return tpj_lower_full(g, tpj_lower_out_type(call, 0), 0.0, &out[0]);
}

TPJ_LOWERING(tpj_lower_ones_out) {
  return tpj_lower_full(g, tpj_lower_out_type(call, 0), 1.0, &out[0]);
}

TPJ_LOWERING(tpj_lower_fill_arg0) {
  return tpj_lower_arg_as(g, call, 0, tpj_lower_out_type(call, 0), &out[0]);
}
TPJ_LOWERING(tpj_lower_fill_arg1) {
  return tpj_lower_arg_as(g, call, 1, tpj_lower_out_type(call, 0), &out[0]);
}
TPJ_LOWERING(tpj_lower_fill_arg2) {
  return tpj_lower_arg_as(g, call, 2, tpj_lower_out_type(call, 0), &out[0]);
}

/* A 1-D output of the expected type, checked. */
static tpj_status_t tpj_lower_range_out(const tpj_lower_call_t* call, const tpj_type_t** out_t) {
  const tpj_type_t* t = tpj_lower_out_type(call, 0);
  if (t->rank != 1 || t->dtype == TPJ_DTYPE_INVALID)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected a 1-d output (got rank %d)", call->target,
                      (int)t->rank);
  *out_t = t;
  return NULL;
}

static bool tpj_lower_arg_is_int(const tpj_lower_call_t* call, size_t i) {
  return i < call->num_args &&
         (call->args[i].kind == TPJ_ARG_KIND_INT || call->args[i].kind == TPJ_ARG_KIND_BOOL);
}

/* start + i * step in the accumulate dtype (s64 for integer outputs, f64 for
 * f32/f64, f32 for f16/bf16), then converted. The length is the output's. */
static tpj_status_t tpj_lower_range(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i_start,
                                    size_t i_step, tpj_value_t* out) {
  const tpj_type_t* t = NULL;
  TPJ_RETURN_IF_ERROR(tpj_lower_range_out(call, &t));
  tpj_dtype_t od = t->dtype;
  tpj_dtype_t acc = tpj_dtype_is_float(od) ? (tpj_dtype_size(od) == 2 ? TPJ_DTYPE_F32
                                                                       : TPJ_DTYPE_F64)
                                           : TPJ_DTYPE_S64;
  tpj_type_t at = *t;
  at.dtype = acc;
  tpj_value_t idx, start, step, r;
  TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &at, 0, &idx));
  if (i_start == SIZE_MAX) {
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &at, 0.0, &start));
  } else if (acc == TPJ_DTYPE_S64 && !tpj_lower_arg_is_int(call, i_start)) {
    double v;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, i_start, &v));
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &at, v, &start));
  } else {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, i_start, &at, &start));
  }
  if (i_step == SIZE_MAX || !tpj_lower_arg_is_scalar(call, i_step)) {
    TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &at, 1.0, &step));
  } else {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, i_step, &at, &step));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, idx, step, &r));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, start, r, &r));
  return tpj_lower_convert(g, r, od, out);
}

/* arange.default(end, ...) */
TPJ_LOWERING(tpj_lower_arange) { return tpj_lower_range(g, call, SIZE_MAX, SIZE_MAX, &out[0]); }

/* arange.start(start, end, ...) and arange.start_step(start, end, step, ...) */
TPJ_LOWERING(tpj_lower_arange_start) { return tpj_lower_range(g, call, 0, 2, &out[0]); }

/* linspace(start, end, steps): step = (end - start) / (steps - 1); the first
 * half counts up from start, the second half down from end (PyTorch CPU). */
TPJ_LOWERING(tpj_lower_linspace) {
  const tpj_type_t* t = NULL;
  TPJ_RETURN_IF_ERROR(tpj_lower_range_out(call, &t));
  double start, end;
  int64_t steps;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 0, &start));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 1, &end));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &steps));
  if (steps != t->dims[0])
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: steps does not match the output (got %lld, "
                      "expected %lld)", call->target, (long long)steps, (long long)t->dims[0]);
  tpj_dtype_t cd = tpj_dtype_is_float(t->dtype) ? tpj_ew_compute_dtype(t->dtype) : TPJ_DTYPE_F64;
  if (steps <= 1) return tpj_lower_full(g, t, start, &out[0]);
  double step = (end - start) / (double)(steps - 1);
  if (cd == TPJ_DTYPE_F32) step = (double)((float)end - (float)start) / (float)(steps - 1);
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, cd);
  tpj_value_t idx = TPJ_VALUE_NONE;
  if (!e.st) e.st = tpj_build_iota(g, &e.ct, 0, &idx);
  tpj_value_t up = tpj_ew_addk(&e, tpj_ew_mulk(&e, idx, step), start);
  tpj_value_t rev = tpj_ew_sub(&e, tpj_ew_k(&e, (double)(steps - 1)), idx);
  tpj_value_t down = tpj_ew_sub(&e, tpj_ew_k(&e, end), tpj_ew_mulk(&e, rev, step));
  tpj_value_t first = tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, idx, (double)(steps / 2));
  return tpj_ew_done(&e, tpj_ew_sel(&e, first, up, down), out);
}
