/* lower_elementwise.h: the elementwise / activation / creation lowering family
 * (internal). Rows live in ops_elementwise.inc; the functions are spread over
 * elementwise_*.c, activation.c and creation.c by seam.
 *
 * Family helpers (tpj_ew_*) build formulas with an error-accumulating context:
 * each builder returns a value, or TPJ_VALUE_NONE once an error has been
 * recorded; tpj_ew_done() returns that first error. This keeps PyTorch
 * formulas readable. All values built through a context have the compute
 * type: the output shape with the compute dtype (f16/bf16 compute in f32, as
 * PyTorch CPU does).
 */
#ifndef TPJ_LOWER_ELEMENTWISE_H_
#define TPJ_LOWER_ELEMENTWISE_H_

#include "lower/lower_util.h"

/* ------------------------------------------------------- family helpers -- */

typedef struct tpj_ew_s {
  tpj_graph_t* g;
  const tpj_lower_call_t* call;
  tpj_type_t ct;   /* compute type: output shape, compute dtype */
  tpj_status_t st; /* first error, owned until tpj_ew_done */
} tpj_ew_t;

/* f16/bf16 -> f32; other dtypes unchanged. */
tpj_dtype_t tpj_ew_compute_dtype(tpj_dtype_t dtype);
/* PyTorch's result_type over the given arguments (tensors, rank-0 tensors
 * and Python scalars, with category rules; default float dtype is f32). */
tpj_dtype_t tpj_ew_result_type(const tpj_graph_t* g, const tpj_lower_call_t* call,
                               const size_t* arg_indices, size_t count);
tpj_dtype_t tpj_ew_promote(tpj_dtype_t a, tpj_dtype_t b);

/* Starts a context on output 0; compute dtype from the output dtype. */
void tpj_ew_begin(tpj_ew_t* e, tpj_graph_t* g, const tpj_lower_call_t* call);
/* Same with an explicit compute dtype (e.g. the inputs' dtype for compares). */
void tpj_ew_begin_dtype(tpj_ew_t* e, tpj_graph_t* g, const tpj_lower_call_t* call,
                        tpj_dtype_t dtype);
/* Records an error unless one is set (then frees it). */
void tpj_ew_fail(tpj_ew_t* e, tpj_status_t s);
/* Argument i (tensor or scalar) as a value of the compute type. */
tpj_value_t tpj_ew_arg(tpj_ew_t* e, size_t i);
/* Argument i as a value of the output shape with `dtype`. */
tpj_value_t tpj_ew_arg_dtype(tpj_ew_t* e, size_t i, tpj_dtype_t dtype);
double tpj_ew_arg_f(tpj_ew_t* e, size_t i);
/* Constant of the compute type. */
tpj_value_t tpj_ew_k(tpj_ew_t* e, double value);
tpj_value_t tpj_ew_un(tpj_ew_t* e, tpj_unary_op_t op, tpj_value_t x);
tpj_value_t tpj_ew_bin(tpj_ew_t* e, tpj_binary_op_t op, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_add(tpj_ew_t* e, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_sub(tpj_ew_t* e, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_mul(tpj_ew_t* e, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_div(tpj_ew_t* e, tpj_value_t a, tpj_value_t b);
/* a * k, a + k with a constant. */
tpj_value_t tpj_ew_mulk(tpj_ew_t* e, tpj_value_t a, double k);
tpj_value_t tpj_ew_addk(tpj_ew_t* e, tpj_value_t a, double k);
tpj_value_t tpj_ew_cmp(tpj_ew_t* e, tpj_compare_dir_t dir, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_cmpk(tpj_ew_t* e, tpj_compare_dir_t dir, tpj_value_t a, double k);
tpj_value_t tpj_ew_sel(tpj_ew_t* e, tpj_value_t pred, tpj_value_t a, tpj_value_t b);
tpj_value_t tpj_ew_isnan(tpj_ew_t* e, tpj_value_t x);
tpj_value_t tpj_ew_cvt(tpj_ew_t* e, tpj_value_t x, tpj_dtype_t dtype);
/* erf in the compute dtype (f32 rational approximation, f64 series). */
tpj_value_t tpj_ew_erf(tpj_ew_t* e, tpj_value_t x);
/* Converts v to output 0's type, writes out[0], returns the first error. */
tpj_status_t tpj_ew_done(tpj_ew_t* e, tpj_value_t v, tpj_value_t* out) TPJ_MUST_USE;

/* --------------------------------------------------------- binary arith -- */
TPJ_LOWERING(tpj_lower_add);
TPJ_LOWERING(tpj_lower_sub);
TPJ_LOWERING(tpj_lower_rsub);
TPJ_LOWERING(tpj_lower_mul);
TPJ_LOWERING(tpj_lower_div);
TPJ_LOWERING(tpj_lower_div_mode);
TPJ_LOWERING(tpj_lower_floor_divide);
TPJ_LOWERING(tpj_lower_remainder);
TPJ_LOWERING(tpj_lower_fmod);
TPJ_LOWERING(tpj_lower_pow);
TPJ_LOWERING(tpj_lower_maximum);
TPJ_LOWERING(tpj_lower_minimum);
TPJ_LOWERING(tpj_lower_fmax);
TPJ_LOWERING(tpj_lower_fmin);
TPJ_LOWERING(tpj_lower_atan2);
TPJ_LOWERING(tpj_lower_hypot);
TPJ_LOWERING(tpj_lower_copysign);
TPJ_LOWERING(tpj_lower_lerp);

/* ------------------------------------------------- compare / logic / select -- */
TPJ_LOWERING(tpj_lower_eq);
TPJ_LOWERING(tpj_lower_ne);
TPJ_LOWERING(tpj_lower_lt);
TPJ_LOWERING(tpj_lower_le);
TPJ_LOWERING(tpj_lower_gt);
TPJ_LOWERING(tpj_lower_ge);
TPJ_LOWERING(tpj_lower_logical_and);
TPJ_LOWERING(tpj_lower_logical_or);
TPJ_LOWERING(tpj_lower_logical_xor);
TPJ_LOWERING(tpj_lower_logical_not);
TPJ_LOWERING(tpj_lower_bitwise_and);
TPJ_LOWERING(tpj_lower_bitwise_or);
TPJ_LOWERING(tpj_lower_bitwise_xor);
TPJ_LOWERING(tpj_lower_bitwise_not);
TPJ_LOWERING(tpj_lower_shift_left);
TPJ_LOWERING(tpj_lower_shift_right);
TPJ_LOWERING(tpj_lower_where);
TPJ_LOWERING(tpj_lower_masked_fill);
TPJ_LOWERING(tpj_lower_clamp);
TPJ_LOWERING(tpj_lower_clamp_min);
TPJ_LOWERING(tpj_lower_clamp_max);
TPJ_LOWERING(tpj_lower_isnan);
TPJ_LOWERING(tpj_lower_isinf);
TPJ_LOWERING(tpj_lower_isposinf);
TPJ_LOWERING(tpj_lower_isneginf);
TPJ_LOWERING(tpj_lower_nan_to_num);

/* ---------------------------------------------------------------- unary -- */
TPJ_LOWERING(tpj_lower_neg);
TPJ_LOWERING(tpj_lower_abs);
TPJ_LOWERING(tpj_lower_exp);
TPJ_LOWERING(tpj_lower_exp2);
TPJ_LOWERING(tpj_lower_expm1);
TPJ_LOWERING(tpj_lower_log);
TPJ_LOWERING(tpj_lower_log2);
TPJ_LOWERING(tpj_lower_log10);
TPJ_LOWERING(tpj_lower_log1p);
TPJ_LOWERING(tpj_lower_sqrt);
TPJ_LOWERING(tpj_lower_rsqrt);
TPJ_LOWERING(tpj_lower_reciprocal);
TPJ_LOWERING(tpj_lower_sin);
TPJ_LOWERING(tpj_lower_cos);
TPJ_LOWERING(tpj_lower_tan);
TPJ_LOWERING(tpj_lower_asin);
TPJ_LOWERING(tpj_lower_acos);
TPJ_LOWERING(tpj_lower_atan);
TPJ_LOWERING(tpj_lower_sinh);
TPJ_LOWERING(tpj_lower_cosh);
TPJ_LOWERING(tpj_lower_tanh);
TPJ_LOWERING(tpj_lower_asinh);
TPJ_LOWERING(tpj_lower_acosh);
TPJ_LOWERING(tpj_lower_atanh);
TPJ_LOWERING(tpj_lower_sigmoid);
TPJ_LOWERING(tpj_lower_erf);
TPJ_LOWERING(tpj_lower_floor);
TPJ_LOWERING(tpj_lower_ceil);
TPJ_LOWERING(tpj_lower_round);
TPJ_LOWERING(tpj_lower_round_decimals);
TPJ_LOWERING(tpj_lower_trunc);
TPJ_LOWERING(tpj_lower_frac);
TPJ_LOWERING(tpj_lower_sign);

/* ----------------------------------------------------------- activation -- */
TPJ_LOWERING(tpj_lower_relu);
TPJ_LOWERING(tpj_lower_gelu);
TPJ_LOWERING(tpj_lower_gelu_backward);
TPJ_LOWERING(tpj_lower_silu);
TPJ_LOWERING(tpj_lower_silu_backward);
TPJ_LOWERING(tpj_lower_hardtanh);
TPJ_LOWERING(tpj_lower_hardtanh_backward);
TPJ_LOWERING(tpj_lower_leaky_relu);
TPJ_LOWERING(tpj_lower_leaky_relu_backward);
TPJ_LOWERING(tpj_lower_elu);
TPJ_LOWERING(tpj_lower_elu_backward);
TPJ_LOWERING(tpj_lower_softplus);
TPJ_LOWERING(tpj_lower_softplus_backward);
TPJ_LOWERING(tpj_lower_hardsigmoid);
TPJ_LOWERING(tpj_lower_hardsigmoid_backward);
TPJ_LOWERING(tpj_lower_hardswish);
TPJ_LOWERING(tpj_lower_hardswish_backward);
TPJ_LOWERING(tpj_lower_mish);
TPJ_LOWERING(tpj_lower_threshold);
TPJ_LOWERING(tpj_lower_threshold_backward);
TPJ_LOWERING(tpj_lower_sigmoid_backward);
TPJ_LOWERING(tpj_lower_tanh_backward);
TPJ_LOWERING(tpj_lower_logit);
TPJ_LOWERING(tpj_lower_logit_backward);

/* ------------------------------------------------------------- creation -- */
TPJ_LOWERING(tpj_lower_to_copy);
TPJ_LOWERING(tpj_lower_identity);
TPJ_LOWERING(tpj_lower_copy);
TPJ_LOWERING(tpj_lower_zeros_out);
TPJ_LOWERING(tpj_lower_ones_out);
/* Fills the output with argument k (tensor or scalar); k fixed per overload. */
TPJ_LOWERING(tpj_lower_fill_arg0);
TPJ_LOWERING(tpj_lower_fill_arg1);
TPJ_LOWERING(tpj_lower_fill_arg2);
TPJ_LOWERING(tpj_lower_arange);
TPJ_LOWERING(tpj_lower_arange_start);
TPJ_LOWERING(tpj_lower_linspace);

#endif /* TPJ_LOWER_ELEMENTWISE_H_ */
