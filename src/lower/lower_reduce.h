/* lower_reduce.h: the reduce lowering family (internal): reductions, scans,
 * softmax, normalization layers, losses, matrix products and attention. The
 * rows of the op table are in ops_reduce.inc; the family's shared helpers
 * (reduce_util.c) are declared at the end.
 *
 * Precision: bf16/f16 inputs are reduced in f32 and converted back, the way
 * PyTorch's CPU kernels accumulate in float.
 */
#ifndef TPJ_LOWER_REDUCE_H_
#define TPJ_LOWER_REDUCE_H_

#include "lower/lower_util.h"

/* reduce.c: plain reductions. */
TPJ_LOWERING(tpj_lower_reduce_sum);        /* sum.default, sum.dim_IntList */
TPJ_LOWERING(tpj_lower_reduce_mean);       /* mean.default, mean.dim */
TPJ_LOWERING(tpj_lower_reduce_amax);       /* amax.default, max.default */
TPJ_LOWERING(tpj_lower_reduce_amin);       /* amin.default, min.default */
TPJ_LOWERING(tpj_lower_reduce_prod);       /* prod.default, prod.dim_int */
TPJ_LOWERING(tpj_lower_reduce_any);        /* any.default/.dim/.dims */
TPJ_LOWERING(tpj_lower_reduce_all);        /* all.default/.dim/.dims */
TPJ_LOWERING(tpj_lower_reduce_logsumexp);  /* logsumexp.default */
TPJ_LOWERING(tpj_lower_reduce_var);        /* var.correction */
TPJ_LOWERING(tpj_lower_reduce_std);        /* std.correction */
TPJ_LOWERING(tpj_lower_reduce_var_mean);   /* var_mean.correction */
TPJ_LOWERING(tpj_lower_reduce_std_mean);   /* std_mean.correction */
TPJ_LOWERING(tpj_lower_reduce_vector_norm); /* linalg_vector_norm.default */

/* reduce_index.c: arg-reductions and scans. */
TPJ_LOWERING(tpj_lower_reduce_max_dim);    /* max.dim */
TPJ_LOWERING(tpj_lower_reduce_min_dim);    /* min.dim */
TPJ_LOWERING(tpj_lower_reduce_argmax);     /* argmax.default */
TPJ_LOWERING(tpj_lower_reduce_argmin);     /* argmin.default */
TPJ_LOWERING(tpj_lower_reduce_cumsum);     /* cumsum.default */
TPJ_LOWERING(tpj_lower_reduce_cumprod);    /* cumprod.default */

/* norm_softmax.c */
TPJ_LOWERING(tpj_lower_reduce_softmax);
TPJ_LOWERING(tpj_lower_reduce_log_softmax);
TPJ_LOWERING(tpj_lower_reduce_softmax_backward);
TPJ_LOWERING(tpj_lower_reduce_log_softmax_backward);

/* norm_layer.c: layer norm and group norm. */
TPJ_LOWERING(tpj_lower_reduce_layer_norm);
TPJ_LOWERING(tpj_lower_reduce_layer_norm_backward);
TPJ_LOWERING(tpj_lower_reduce_group_norm);
TPJ_LOWERING(tpj_lower_reduce_group_norm_backward);

/* norm_batch.c */
TPJ_LOWERING(tpj_lower_reduce_batch_norm);            /* native_batch_norm */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_legit);      /* _native_batch_norm_legit */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_no_stats);   /* ..._legit.no_stats */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_no_training);
TPJ_LOWERING(tpj_lower_reduce_batch_norm_functional);
TPJ_LOWERING(tpj_lower_reduce_batch_norm_backward);

/* loss.c */
TPJ_LOWERING(tpj_lower_reduce_nll_loss);
TPJ_LOWERING(tpj_lower_reduce_nll_loss_backward);
TPJ_LOWERING(tpj_lower_reduce_mse_loss);
TPJ_LOWERING(tpj_lower_reduce_mse_loss_backward);
TPJ_LOWERING(tpj_lower_reduce_bce);
TPJ_LOWERING(tpj_lower_reduce_bce_backward);

/* matmul.c */
TPJ_LOWERING(tpj_lower_reduce_mm);
TPJ_LOWERING(tpj_lower_reduce_addmm);
TPJ_LOWERING(tpj_lower_reduce_bmm);
TPJ_LOWERING(tpj_lower_reduce_baddbmm);
TPJ_LOWERING(tpj_lower_reduce_mv);
TPJ_LOWERING(tpj_lower_reduce_addmv);
TPJ_LOWERING(tpj_lower_reduce_dot);

/* matmul_attention.c: _scaled_dot_product_flash_attention_for_cpu (+ backward). */
TPJ_LOWERING(tpj_lower_reduce_sdpa);
TPJ_LOWERING(tpj_lower_reduce_sdpa_cpu);
TPJ_LOWERING(tpj_lower_reduce_sdpa_cpu_backward);

/* ---------------------------------------------------- helpers (reduce_util.c) */

/* A set of reduced dims of a rank-`rank` tensor. */
typedef struct tpj_reduce_dims_s {
  int64_t rank;
  size_t count;
  int64_t dims[TPJ_MAX_RANK]; /* (count) ascending, unique, normalized */
  bool mask[TPJ_MAX_RANK];    /* (rank) true for a reduced dim */
} tpj_reduce_dims_t;

/* Parses argument i (int list, single int, or None) into a dim set. None, or an
 * empty list, means every dim. Errors name the op and the bad dim. */
tpj_status_t tpj_reduce_dims_parse(const tpj_lower_call_t* call, size_t i, int64_t rank,
                                   tpj_reduce_dims_t* out_dims) TPJ_MUST_USE;
/* Every dim of a rank-`rank` tensor. */
void tpj_reduce_dims_all(int64_t rank, tpj_reduce_dims_t* out_dims);
/* Product of the reduced dim sizes of `type`. */
int64_t tpj_reduce_dims_numel(const tpj_reduce_dims_t* rd, const tpj_type_t* type);

/* Accumulation dtype for a result dtype: f32 for f16/bf16, else itself. */
tpj_dtype_t tpj_reduce_acc_dtype(tpj_dtype_t dtype);

/* Reduces x over rd with `kind` (dims dropped). */
tpj_status_t tpj_reduce_apply(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                              const tpj_reduce_dims_t* rd, tpj_value_t* out) TPJ_MUST_USE;
/* Broadcasts a reduced value (dims of rd dropped) back to `full` dims. */
tpj_status_t tpj_reduce_expand(tpj_graph_t* g, tpj_value_t r, const tpj_reduce_dims_t* rd,
                               const tpj_type_t* full, tpj_value_t* out) TPJ_MUST_USE;
/* Converts v to type->dtype and reshapes it to type->dims (equal numel). */
tpj_status_t tpj_reduce_finish(tpj_graph_t* g, tpj_value_t v, const tpj_type_t* type,
                               tpj_value_t* out) TPJ_MUST_USE;
/* Mean of x over rd in x's dtype (x must be float), dims dropped. */
tpj_status_t tpj_reduce_mean_of(tpj_graph_t* g, tpj_value_t x, const tpj_reduce_dims_t* rd,
                                tpj_value_t* out) TPJ_MUST_USE;

/* Elementwise shorthands: x op (splat of c with x's type). */
tpj_status_t tpj_reduce_binc(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t x, double c,
                             tpj_value_t* out) TPJ_MUST_USE;
/* a op b after broadcasting both to `dims` (numpy rules). */
tpj_status_t tpj_reduce_binb(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t a,
                             tpj_value_t b, tpj_value_t* out) TPJ_MUST_USE;
/* Reshapes x to dims (a view-like reshape). */
tpj_status_t tpj_reduce_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                                size_t rank, tpj_value_t* out) TPJ_MUST_USE;
/* Writes a constant `value` of type out_types[i] (for masked or empty outputs),
 * or TPJ_VALUE_NONE when that output is None. */
tpj_status_t tpj_reduce_const_out(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                  double value, tpj_value_t* out) TPJ_MUST_USE;
/* An optional tensor argument converted to dtype, or TPJ_VALUE_NONE. */
tpj_status_t tpj_reduce_opt_tensor(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                   tpj_dtype_t dtype, tpj_value_t* out) TPJ_MUST_USE;

#endif /* TPJ_LOWER_REDUCE_H_ */
