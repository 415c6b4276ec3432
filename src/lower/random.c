/* random.c: random ops (rand, randn, uniform, normal, bernoulli, randint,
 * native_dropout) from rng_bit_generator bits; more distributions in
 * random_dist.c. Each takes a trailing
 * tensor<2xui64> state argument after its schema arguments. Results cannot
 * match torch's CPU generator bit for bit; the distributions match.
 */
#include <math.h>
#include <string.h>

#include "lower/lower_nn.h"

/* The trailing state argument (last argument of the call). */
tpj_status_t tpj_nn_rng_state(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t* out) {
  *out = TPJ_VALUE_NONE;
  if (call->num_args == 0 || call->args[call->num_args - 1].kind != TPJ_ARG_KIND_TENSOR) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: missing trailing rng state argument "
                      "(expected a tensor<2xui64> after the schema arguments)", call->target);
  }
  tpj_value_t s = call->args[call->num_args - 1].tensor;
  const tpj_type_t* t = tpj_lower_type(g, s);
  if (t == NULL || t->dtype != TPJ_DTYPE_U64 || t->rank != 1 || t->dims[0] != 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: rng state must be tensor<2xui64> (got dtype %s)",
                      call->target, t ? tpj_dtype_name(t->dtype) : "none");
  }
  *out = s;
  return NULL;
}

/* `count` raw bit tensors of (dims) in u32 or u64 from one generator call. */
tpj_status_t tpj_nn_rng_bits(tpj_graph_t* g, tpj_value_t state, tpj_dtype_t bits_dtype,
                              const int64_t* dims, size_t rank, size_t count,
                              tpj_value_t* out_bits) {
  if (rank + 1 > TPJ_MAX_RANK) {
    return TPJ_STATUS(INVALID_ARGUMENT, "random: rank too large (got %zu)", rank);
  }
  int64_t d[TPJ_MAX_RANK] = {(int64_t)count};
  memcpy(d + 1, dims, rank * sizeof(int64_t));
  tpj_type_t bt;
  TPJ_RETURN_IF_ERROR(tpj_type_init(bits_dtype, d, rank + 1, &bt));
  tpj_value_t new_state, bits;
  TPJ_RETURN_IF_ERROR(tpj_build_rng_bit_generator(g, state, &bt, &new_state, &bits));
  for (size_t i = 0; i < count; ++i) {
    int64_t start[TPJ_MAX_RANK] = {(int64_t)i}, limit[TPJ_MAX_RANK], step[TPJ_MAX_RANK];
    for (size_t k = 0; k <= rank; ++k) {
      limit[k] = k == 0 ? (int64_t)i + 1 : d[k];
      step[k] = 1;
    }
    tpj_value_t v;
    TPJ_RETURN_IF_ERROR(tpj_build_slice(g, bits, start, limit, step, rank + 1, &v));
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, dims, rank, &out_bits[i]));
  }
  return NULL;
}

/* Mantissa digits a uniform of `dtype` is quantized to (exactly representable). */
static int digits_of(tpj_dtype_t dtype) {
  switch (dtype) {
    case TPJ_DTYPE_F64: return 53;
    case TPJ_DTYPE_F16: return 11;
    case TPJ_DTYPE_BF16: return 8;
    default: return 24;
  }
}

/* `count` tpj_nn_rng_uniforms in [0, 1) with the dims of `type`, in f64 when type is f64
 * and f32 otherwise; each is k * 2^-digits(type->dtype), exact in type. */
tpj_status_t tpj_nn_rng_uniforms(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* type,
                             size_t count, tpj_value_t* out) {
  bool wide = type->dtype == TPJ_DTYPE_F64;
  tpj_dtype_t bd = wide ? TPJ_DTYPE_U64 : TPJ_DTYPE_U32;
  tpj_dtype_t fd = wide ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  int digits = digits_of(type->dtype);
  tpj_value_t bits[2];
  if (count > 2) return TPJ_STATUS(INTERNAL, "random: at most 2 uniform draws (got %zu)", count);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_bits(g, state, bd, type->dims, (size_t)type->rank, count, bits));
  for (size_t i = 0; i < count; ++i) {
    tpj_value_t sh, v, sc;
    TPJ_RETURN_IF_ERROR(tpj_build_splat(g, bd, type->dims, (size_t)type->rank,
                                        (double)((wide ? 64 : 32) - digits), &sh));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SHR_LOGICAL, bits[i], sh, &v));
    TPJ_RETURN_IF_ERROR(tpj_build_convert(g, v, fd, &v));
    TPJ_RETURN_IF_ERROR(tpj_build_splat(g, fd, type->dims, (size_t)type->rank,
                                        ldexp(1.0, -digits), &sc));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, v, sc, &out[i]));
  }
  return NULL;
}

/* Standard tpj_nn_rng_normals (Box-Muller) with the dims of type, in f32 or f64. */
tpj_status_t tpj_nn_rng_normals(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* type,
                            tpj_value_t* out) {
  tpj_type_t wt = *type;
  wt.dtype = type->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  tpj_value_t u[2], one, r, th, c;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, &wt, 2, u));
  /* u0 in (0, 1]: r = sqrt(-2 log u0); theta = 2 pi u1. */
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, u[0]), 1.0, &one));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, one, u[0], &r));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, r, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, r), -2.0, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, r, c, &r));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_SQRT, r, &r));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, r), 2.0 * M_PI, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, u[1], c, &th));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_COSINE, th, &th));
  return tpj_build_binary(g, TPJ_BINARY_OP_MUL, r, th, out);
}

tpj_status_t tpj_nn_rng_float_out(const tpj_lower_call_t* call, const tpj_type_t* ot) {
  if (!tpj_dtype_is_float(ot->dtype)) {
    return TPJ_LOWER_UNSUPPORTED(call, "result dtype must be floating point (got %s)",
                                 tpj_dtype_name(ot->dtype));
  }
  return NULL;
}

/* rand.default / rand_like.default. */
TPJ_LOWERING(tpj_lower_nn_rand) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  tpj_value_t state, u;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, ot, 1, &u));
  return tpj_lower_convert(g, u, ot->dtype, &out[0]);
}

/* randn.default / randn_like.default. */
TPJ_LOWERING(tpj_lower_nn_randn) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  tpj_value_t state, z;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_normals(g, state, ot, &z));
  return tpj_lower_convert(g, z, ot->dtype, &out[0]);
}

/* uniform.default(self, from, to): from + u * (to - from). */
TPJ_LOWERING(tpj_lower_nn_uniform) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  double lo, hi;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 1, 0.0, &lo));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 2, 1.0, &hi));
  tpj_value_t state, u, c;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, ot, 1, &u));
  const tpj_type_t* ut = tpj_lower_type(g, u);
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, ut, hi - lo, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, u, c, &u));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, ut, lo, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, u, c, &u));
  return tpj_lower_convert(g, u, ot->dtype, &out[0]);
}

/* normal.{Tensor_float, float_Tensor, Tensor_Tensor, float_float}:
 * mean (arg 0) + std (arg 1) * z, both broadcast to the result. */
TPJ_LOWERING(tpj_lower_nn_normal) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  tpj_value_t state, z, mean, std;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_normals(g, state, ot, &z));
  tpj_type_t wt = *tpj_lower_type(g, z);
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 0, &wt, &mean));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 1, &wt, &std));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, z, std, &z));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, z, mean, &z));
  return tpj_lower_convert(g, z, ot->dtype, &out[0]);
}

/* Bernoulli draw: pred (u < p) with p a value of the uniform's type. */
static tpj_status_t bernoulli_mask(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* ot,
                                   tpj_value_t p, bool p_is_scalar, double p_scalar,
                                   tpj_value_t* out_mask) {
  tpj_type_t ft = *ot;
  ft.dtype = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  tpj_value_t u;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, &ft, 1, &u));
  if (p_is_scalar) TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &ft, p_scalar, &p));
  return tpj_build_compare(g, TPJ_COMPARE_DIR_LT, u, p, out_mask);
}

/* bernoulli.p(self, p): result has the dtype and shape of self. */
TPJ_LOWERING(tpj_lower_nn_bernoulli_p) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  double p;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 1, 0.5, &p));
  if (!(p >= 0.0 && p <= 1.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: p must be in [0, 1] (got %g)", call->target, p);
  }
  tpj_value_t state, m;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(bernoulli_mask(g, state, ot, TPJ_VALUE_NONE, true, p, &m));
  return tpj_lower_convert(g, m, ot->dtype, &out[0]);
}

/* bernoulli.default(self): self holds the probabilities. */
TPJ_LOWERING(tpj_lower_nn_bernoulli_tensor) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t state, p, m;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  tpj_type_t ft = *ot;
  ft.dtype = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 0, &ft, &p));
  TPJ_RETURN_IF_ERROR(bernoulli_mask(g, state, ot, p, false, 0.0, &m));
  return tpj_lower_convert(g, m, ot->dtype, &out[0]);
}

/* randint.low(low, high, size) / randint.default(high, size):
 * low + bits % (high - low). */
TPJ_LOWERING(tpj_lower_nn_randint) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  bool has_low = strstr(call->target, ".low") != NULL;
  int64_t lo = 0, hi;
  if (has_low) TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 0, &lo));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, has_low ? 1 : 0, &hi));
  if (hi <= lo) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: empty range (got low %lld, high %lld)",
                      call->target, (long long)lo, (long long)hi);
  }
  tpj_value_t state, bits, range, v, base;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_bits(g, state, TPJ_DTYPE_U64, ot->dims, (size_t)ot->rank, 1, &bits));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_U64, ot->dims, (size_t)ot->rank,
                                          (int64_t)((uint64_t)hi - (uint64_t)lo), &range));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_REM, bits, range, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_convert(g, v, TPJ_DTYPE_S64, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, ot->dims, (size_t)ot->rank, lo,
                                          &base));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, v, base, &v));
  return tpj_lower_convert(g, v, ot->dtype, &out[0]);
}

/* v * scale computed in the accumulation dtype (PyTorch's opmath), rounded
 * back to the dtype of v. */
static tpj_status_t scale_by(tpj_graph_t* g, tpj_value_t v, double scale, tpj_value_t* out) {
  tpj_dtype_t dt = tpj_lower_type(g, v)->dtype;
  tpj_value_t w, sc;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, v, tpj_nn_acc_dtype(dt), &w));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, w), scale, &sc));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, w, sc, &w));
  return tpj_lower_convert(g, w, dt, out);
}

/* native_dropout(input, p, train?) -> (input * mask * 1/(1-p), mask). */
TPJ_LOWERING(tpj_lower_nn_native_dropout) {
  tpj_value_t x, m, v;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  double p;
  bool train;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 1, &p));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool_or(call, 2, true, &train));
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  const tpj_type_t* mt = tpj_lower_out_type(call, 1);
  if (!(p >= 0.0 && p <= 1.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: p must be in [0, 1] (got %g)", call->target, p);
  }
  if (!train) {
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, ot->dtype, &out[0]));
    return tpj_lower_full(g, mt, 1.0, &out[1]);
  }
  double keep = 1.0 - p;
  double scale = keep == 0.0 ? 0.0 : 1.0 / keep;
  tpj_value_t state;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(bernoulli_mask(g, state, ot, TPJ_VALUE_NONE, true, keep, &m));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, ot->dtype, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, m, ot->dtype, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, x, v, &v));
  TPJ_RETURN_IF_ERROR(scale_by(g, v, scale, &out[0]));
  return tpj_lower_convert(g, m, mt->dtype, &out[1]);
}

/* native_dropout_backward(grad, mask, scale) = grad * mask * scale. */
TPJ_LOWERING(tpj_lower_nn_native_dropout_backward) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t go, m, v;
  double scale;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 0, ot, &go));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 1, ot, &m));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 2, &scale));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, go, m, &v));
  return scale_by(g, v, scale, &out[0]);
}
