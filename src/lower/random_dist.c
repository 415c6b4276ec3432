/* random_dist.c: the in-place distributions of torch.Tensor (random_,
 * exponential_, cauchy_, log_normal_, geometric_, bernoulli_ with a tensor p)
 * as their functional ATen ops, and randperm. Same trailing state argument
 * and uniforms as random.c; the argument checks give PyTorch's messages.
 */
#include <math.h>
#include <string.h>

#include "lower/lower_nn.h"

/* Largest value of an integer dtype (u64: 2^64 - 1), or 2^digits for a float
 * dtype: the inclusive upper end of random_() without bounds. */
static uint64_t random_max(tpj_dtype_t dt) {
  switch (dt) {
    case TPJ_DTYPE_PRED: return 1;
    case TPJ_DTYPE_F64: return 1ull << 53;
    case TPJ_DTYPE_F32: return 1ull << 24;
    case TPJ_DTYPE_F16: return 1ull << 11;
    case TPJ_DTYPE_BF16: return 1ull << 8;
    default: break;
  }
  size_t bits = 8 * tpj_dtype_size(dt);
  if (tpj_dtype_is_unsigned_int(dt)) return bits >= 64 ? UINT64_MAX : (1ull << bits) - 1;
  return (1ull << (bits - 1)) - 1;
}

/* Smallest value: -2^digits for a float dtype (its exact integers). */
static int64_t random_min(tpj_dtype_t dt) {
  if (tpj_dtype_is_float(dt)) return -(int64_t)random_max(dt);
  if (!tpj_dtype_is_signed_int(dt)) return 0;
  size_t bits = 8 * tpj_dtype_size(dt);
  return bits >= 64 ? INT64_MIN : -(int64_t)(1ull << (bits - 1));
}

/* [lo, hi] (inclusive) of random.from(self, from, to?) / random.to(self, to)
 * / random(self) for the result dtype. */
static tpj_status_t random_bounds(const tpj_lower_call_t* call, tpj_dtype_t dt, int64_t* out_lo,
                                  uint64_t* out_hi) {
  bool from = strstr(call->target, ".from") != NULL, to = strstr(call->target, ".to") != NULL;
  int64_t lo = 0;
  uint64_t hi = random_max(dt);
  if (from) TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 1, &lo));
  if ((from && !tpj_lower_arg_is_none(call, 2)) || to) {
    int64_t t;
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, to ? 1 : 2, &t));
    if (t <= lo) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: random_ expects 'from' to be less than 'to' "
                        "(got from=%lld >= to=%lld)", call->target, (long long)lo, (long long)t);
    }
    if (!tpj_dtype_is_float(dt) && t - 1 > 0 && (uint64_t)(t - 1) > random_max(dt)) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: 'to' - 1 is out of bounds for %s (got to=%lld)",
                        call->target, tpj_dtype_name(dt), (long long)t);
    }
    hi = (uint64_t)(t - 1);
  } else if ((int64_t)hi >= 0 && lo > (int64_t)hi) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: 'from' is above the largest %s (got from=%lld)",
                      call->target, tpj_dtype_name(dt), (long long)lo);
  }
  if (lo < random_min(dt)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: 'from' is out of bounds for %s (got from=%lld)",
                      call->target, tpj_dtype_name(dt), (long long)lo);
  }
  *out_lo = lo;
  *out_hi = hi;
  return NULL;
}

/* random.{from,to,default}: lo + bits % (hi - lo + 1), in u64 arithmetic. */
TPJ_LOWERING(tpj_lower_nn_random) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (tpj_dtype_is_complex(ot->dtype)) return TPJ_LOWER_UNSUPPORTED(call, "complex result");
  int64_t lo = 0;
  uint64_t hi = 0;
  TPJ_RETURN_IF_ERROR(random_bounds(call, ot->dtype, &lo, &hi));
  uint64_t range = hi - (uint64_t)lo + 1;  /* 0: all 2^64 values */
  tpj_value_t state, v, c;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_bits(g, state, TPJ_DTYPE_U64, ot->dims, (size_t)ot->rank, 1, &v));
  if (range != 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_U64, ot->dims, (size_t)ot->rank,
                                            (int64_t)range, &c));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_REM, v, c, &v));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_U64, ot->dims, (size_t)ot->rank, lo, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, v, c, &v));
  if (ot->dtype != TPJ_DTYPE_U64) TPJ_RETURN_IF_ERROR(tpj_build_convert(g, v, TPJ_DTYPE_S64, &v));
  return tpj_lower_convert(g, v, ot->dtype, &out[0]);
}

/* One uniform in [0, 1) as (1 - u) in (0, 1], in the working float type of ot. */
static tpj_status_t open_uniform(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 const tpj_type_t* ot, tpj_value_t* out) {
  tpj_type_t wt = *ot;
  wt.dtype = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  tpj_value_t state, u, one;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, &wt, 1, &u));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, &wt, 1.0, &one));
  return tpj_build_binary(g, TPJ_BINARY_OP_SUB, one, u, out);
}

/* v * a + b with host scalars, in v's type. */
static tpj_status_t affine(tpj_graph_t* g, tpj_value_t v, double a, double b, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, v);
  tpj_value_t c;
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, a, &c));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, v, c, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, t, b, &c));
  return tpj_build_binary(g, TPJ_BINARY_OP_ADD, v, c, out);
}

/* exponential(self, lambd): -log(1 - u) / lambd. */
TPJ_LOWERING(tpj_lower_nn_exponential) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  double lambd;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 1, 1.0, &lambd));
  if (!(lambd > 0.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: exponential_ expects lambda > 0.0 (got %g)",
                      call->target, lambd);
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(open_uniform(g, call, ot, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, v, &v));
  TPJ_RETURN_IF_ERROR(affine(g, v, -1.0 / lambd, 0.0, &v));
  return tpj_lower_convert(g, v, ot->dtype, &out[0]);
}

/* cauchy(self, median, sigma): median + sigma * tan(pi * (u - 1/2)). */
TPJ_LOWERING(tpj_lower_nn_cauchy) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  double median, sigma;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 1, 0.0, &median));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 2, 1.0, &sigma));
  if (!(sigma > 0.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: cauchy_ expects sigma > 0.0 (got %g)",
                      call->target, sigma);
  }
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(open_uniform(g, call, ot, &v));  /* 1 - u: same law as u */
  TPJ_RETURN_IF_ERROR(affine(g, v, M_PI, -0.5 * M_PI, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_TAN, v, &v));
  TPJ_RETURN_IF_ERROR(affine(g, v, sigma, median, &v));
  return tpj_lower_convert(g, v, ot->dtype, &out[0]);
}

/* log_normal(self, mean, std): exp(mean + std * z). */
TPJ_LOWERING(tpj_lower_nn_log_normal) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_float_out(call, ot));
  double mean, std;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 1, 1.0, &mean));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 2, 2.0, &std));
  if (!(std > 0.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: log_normal_ expects std > 0.0 (got %g)",
                      call->target, std);
  }
  tpj_value_t state, z;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_normals(g, state, ot, &z));
  TPJ_RETURN_IF_ERROR(affine(g, z, std, mean, &z));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, z, &z));
  return tpj_lower_convert(g, z, ot->dtype, &out[0]);
}

/* geometric(self, p): trials to the first success, max(1, ceil(log(1-u) / log(1-p))). */
TPJ_LOWERING(tpj_lower_nn_geometric) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (tpj_dtype_is_complex(ot->dtype) || ot->dtype == TPJ_DTYPE_PRED) {
    return TPJ_LOWER_UNSUPPORTED(call, "result dtype %s", tpj_dtype_name(ot->dtype));
  }
  double p;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 1, &p));
  if (!(p > 0.0 && p < 1.0)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: geometric_ expects p to be in (0, 1) (got %g)",
                      call->target, p);
  }
  tpj_value_t v, one;
  TPJ_RETURN_IF_ERROR(open_uniform(g, call, ot, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, v, &v));
  TPJ_RETURN_IF_ERROR(affine(g, v, 1.0 / log1p(-p), 0.0, &v));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_CEIL, v, &v));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, v), 1.0, &one));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MAX, v, one, &v));
  return tpj_lower_convert(g, v, ot->dtype, &out[0]);
}

/* bernoulli.Tensor(self, p): u < p with p broadcast to self; result of self's dtype. */
TPJ_LOWERING(tpj_lower_nn_bernoulli_ptensor) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_type_t ft = *ot;
  ft.dtype = ot->dtype == TPJ_DTYPE_F64 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
  tpj_value_t state, u, p, m;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 1, &ft, &p));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_uniforms(g, state, &ft, 1, &u));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, u, p, &m));
  return tpj_lower_convert(g, m, ot->dtype, &out[0]);
}

/* randperm(n): the order that sorts n random 64-bit keys (ties have
 * probability ~n^2 / 2^65 and keep index order). */
TPJ_LOWERING(tpj_lower_nn_randperm) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  int64_t n;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 0, &n));
  if (n < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: n must be non-negative (got %lld)", call->target,
                      (long long)n);
  }
  if (ot->rank != 1 || ot->dims[0] != n) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: result must be a vector of n = %lld", call->target,
                      (long long)n);
  }
  if (!tpj_dtype_is_float(ot->dtype) && n > 0 && (uint64_t)(n - 1) > random_max(ot->dtype)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: n is too large for result dtype %s (got %lld)",
                      call->target, tpj_dtype_name(ot->dtype), (long long)n);
  }
  tpj_value_t state, keys, sorted, perm;
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_state(g, call, &state));
  TPJ_RETURN_IF_ERROR(tpj_nn_rng_bits(g, state, TPJ_DTYPE_U64, &n, 1, 1, &keys));
  TPJ_RETURN_IF_ERROR(tpj_nn_sort_with_indices(g, keys, 0, false, &sorted, &perm));
  return tpj_lower_convert(g, perm, ot->dtype, &out[0]);
}
