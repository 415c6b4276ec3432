/* lower_nn.h: the nn lowering family (internal): convolution, pooling,
 * resampling, random ops and sorting. The rows of the op table are in
 * ops_nn.inc; shared helpers of the family are declared at the end.
 *
 * Random ops take one extra trailing tensor<2xui64> state argument after the
 * schema arguments (fed fresh per call by the Python layer).
 */
#ifndef TPJ_LOWER_NN_H_
#define TPJ_LOWER_NN_H_

#include "lower/lower_util.h"

/* conv.c / conv_backward.c */
TPJ_LOWERING(tpj_lower_nn_convolution);
TPJ_LOWERING(tpj_lower_nn_convolution_backward);

/* pool_max.c */
TPJ_LOWERING(tpj_lower_nn_max_pool_with_indices);
TPJ_LOWERING(tpj_lower_nn_max_pool_with_indices_backward);

/* pool_avg.c */
TPJ_LOWERING(tpj_lower_nn_avg_pool);
TPJ_LOWERING(tpj_lower_nn_avg_pool_backward);

/* pool_adaptive.c */
TPJ_LOWERING(tpj_lower_nn_adaptive_avg_pool);
TPJ_LOWERING(tpj_lower_nn_adaptive_avg_pool_backward);
TPJ_LOWERING(tpj_lower_nn_adaptive_max_pool);

/* upsample.c */
TPJ_LOWERING(tpj_lower_nn_upsample_nearest);
TPJ_LOWERING(tpj_lower_nn_upsample_nearest_backward);
TPJ_LOWERING(tpj_lower_nn_upsample_linear);
TPJ_LOWERING(tpj_lower_nn_upsample_linear_backward);

/* random.c */
TPJ_LOWERING(tpj_lower_nn_rand);
TPJ_LOWERING(tpj_lower_nn_randn);
TPJ_LOWERING(tpj_lower_nn_uniform);
TPJ_LOWERING(tpj_lower_nn_normal);
TPJ_LOWERING(tpj_lower_nn_bernoulli_p);
TPJ_LOWERING(tpj_lower_nn_bernoulli_tensor);
TPJ_LOWERING(tpj_lower_nn_randint);
TPJ_LOWERING(tpj_lower_nn_native_dropout);
TPJ_LOWERING(tpj_lower_nn_native_dropout_backward);

/* random_dist.c */
TPJ_LOWERING(tpj_lower_nn_random);       /* random.{from,to,default} */
TPJ_LOWERING(tpj_lower_nn_exponential);
TPJ_LOWERING(tpj_lower_nn_cauchy);
TPJ_LOWERING(tpj_lower_nn_log_normal);
TPJ_LOWERING(tpj_lower_nn_geometric);
TPJ_LOWERING(tpj_lower_nn_bernoulli_ptensor); /* bernoulli.Tensor */
TPJ_LOWERING(tpj_lower_nn_randperm);

/* sort.c */
TPJ_LOWERING(tpj_lower_nn_sort);
TPJ_LOWERING(tpj_lower_nn_sort_stable);
TPJ_LOWERING(tpj_lower_nn_argsort);
TPJ_LOWERING(tpj_lower_nn_argsort_stable);
TPJ_LOWERING(tpj_lower_nn_topk);
TPJ_LOWERING(tpj_lower_nn_kthvalue);
TPJ_LOWERING(tpj_lower_nn_median);
TPJ_LOWERING(tpj_lower_nn_median_dim);

/* ------------------------------------------------- shared helpers (conv_util.c) */

/* Reads int-list argument i as exactly n entries: a 1-entry list is repeated,
 * an empty/None list gives `dflt` (dflt NULL: error). Errors name the op. */
tpj_status_t tpj_nn_ints(const tpj_lower_call_t* call, size_t i, size_t n,
                         const int64_t* dflt, int64_t* out_ints /* (n) */) TPJ_MUST_USE;

/* Computes the pooling output size of one spatial dim the PyTorch way
 * (pooling_output_shape), INVALID_ARGUMENT when it would be < 1. */
tpj_status_t tpj_nn_pool_out_size(const tpj_lower_call_t* call, int64_t in, int64_t k,
                                  int64_t pad, int64_t stride, int64_t dil, bool ceil_mode,
                                  int64_t* out_size) TPJ_MUST_USE;

/* Spatial rank from the op name: 1, 2 or 3 for "1d"/"2d"/"3d", else 0. */
size_t tpj_nn_target_nsp(const char* target);

/* Splits x of rank nsp+1 or nsp+2 into a flat batch: out_batch = product of
 * the leading dims; `x2` is x reshaped to (batch, spatial...). */
tpj_status_t tpj_nn_flatten_batch(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t x,
                                  size_t nsp, tpj_value_t* out_x2) TPJ_MUST_USE;

/* Float dtype used to accumulate: f32 for f16/bf16, else the dtype itself. */
tpj_dtype_t tpj_nn_acc_dtype(tpj_dtype_t dtype);

/* Applies, for each of the last `count` dims of x (in order), the matrix
 * mats[d] of shape (out_d, in_d) (row-major host doubles, converted to the
 * dtype of x): y[.., o_0, .., o_n] = sum_i prod_d mats[d][o_d][i_d] x[.., i..].
 * `x` must be a float tensor. */
tpj_status_t tpj_nn_separable_matmul(tpj_graph_t* g, tpj_value_t x, size_t count,
                                     const double* const* mats, const int64_t* out_sizes,
                                     tpj_value_t* out) TPJ_MUST_USE;

/* Constant of `type` (float or integer dtype) from host doubles (numel entries). */
tpj_status_t tpj_nn_constant(tpj_graph_t* g, const tpj_type_t* type, const double* data,
                             tpj_value_t* out) TPJ_MUST_USE;

/* Reshapes rank-(r) x to `type.dims` / sums all dims except `keep` etc. */
tpj_status_t tpj_nn_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims, size_t rank,
                            tpj_value_t* out) TPJ_MUST_USE;

/* Core of a transposed convolution (PyTorch conv_transpose semantics): input
 * (N, Cin, sp...), weight (Cin, Cout/groups, k...), output spatial sizes given
 * explicitly (out_padding is implied). */
tpj_status_t tpj_nn_conv_transposed(tpj_graph_t* g, tpj_value_t input, tpj_value_t weight,
                                    size_t nsp, const int64_t* stride, const int64_t* padding,
                                    const int64_t* dilation, int64_t groups,
                                    const int64_t* out_spatial, tpj_value_t* out) TPJ_MUST_USE;

/* Forward (non-transposed) convolution with symmetric padding `padding`. */
tpj_status_t tpj_nn_conv_forward(tpj_graph_t* g, tpj_value_t input, tpj_value_t weight,
                                 size_t nsp, const int64_t* stride, const int64_t* padding,
                                 const int64_t* dilation, int64_t groups, tpj_value_t* out)
    TPJ_MUST_USE;

/* Adaptive pooling bins (pool_max.c). Bin o of a dim covers
 * [floor(o*in/out), ceil((o+1)*in/out)); kmax is the widest bin.
 * gather_bins: x2 (batch, in...) -> (batch, out_0, kmax_0, out_1, kmax_1, ...)
 * holding every bin offset (positions past a bin's end clamped). */
tpj_status_t tpj_nn_gather_bins(tpj_graph_t* g, tpj_value_t x2, size_t nsp, const int64_t* in,
                                const int64_t* outs, const int64_t* kmax, tpj_value_t* out)
    TPJ_MUST_USE;
/* The (batch, out...) slice of gathered bins for one offset tuple. */
tpj_status_t tpj_nn_bin_slice(tpj_graph_t* g, tpj_value_t bins, size_t nsp, const int64_t* off,
                              const int64_t* bdims, tpj_value_t* out) TPJ_MUST_USE;
/* Flat in-plane index (s64) and in-bin mask (pred) over the output grid for
 * one offset tuple. */
tpj_status_t tpj_nn_bin_positions(tpj_graph_t* g, size_t nsp, const int64_t* in,
                                  const int64_t* outs, const int64_t* off,
                                  tpj_value_t* out_flat, tpj_value_t* out_valid) TPJ_MUST_USE;

/* Random helpers (random.c). The trailing tensor<2xui64> state argument of a
 * random op; `count` raw u32/u64 bit tensors of (dims); `count` (<= 2)
 * uniforms in [0, 1) in f64 for an f64 type, else f32, quantized to the
 * mantissa of type->dtype; standard normals (Box-Muller) likewise; an
 * UNIMPLEMENTED status unless the result dtype is floating point. */
tpj_status_t tpj_nn_rng_state(tpj_graph_t* g, const tpj_lower_call_t* call,
                              tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_nn_rng_bits(tpj_graph_t* g, tpj_value_t state, tpj_dtype_t bits_dtype,
                             const int64_t* dims, size_t rank, size_t count,
                             tpj_value_t* out_bits /* (count) */) TPJ_MUST_USE;
tpj_status_t tpj_nn_rng_uniforms(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* type,
                                 size_t count, tpj_value_t* out /* (count) */) TPJ_MUST_USE;
tpj_status_t tpj_nn_rng_normals(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* type,
                                tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_nn_rng_float_out(const tpj_lower_call_t* call, const tpj_type_t* ot) TPJ_MUST_USE;

/* Sorts x along dim (sort.c): values and s64 indices, NaNs last (ascending). */
tpj_status_t tpj_nn_sort_with_indices(tpj_graph_t* g, tpj_value_t x, int64_t dim,
                                      bool descending, tpj_value_t* out_vals,
                                      tpj_value_t* out_idx) TPJ_MUST_USE;

/* norm_weight.c */
TPJ_LOWERING(tpj_lower_nn_weight_norm);           /* _weight_norm_interface */
TPJ_LOWERING(tpj_lower_nn_weight_norm_backward);  /* _weight_norm_interface_backward */

#endif /* TPJ_LOWER_NN_H_ */
