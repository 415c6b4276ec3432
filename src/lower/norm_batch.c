/* norm_batch.c: the batch-norm family (native_batch_norm, the _legit
 * variants, the functional variant that returns updated running stats, and
 * native_batch_norm_backward). Statistics are over every dim but the channel
 * dim 1, in f32 for bf16/f16; running_var is updated with the unbiased
 * variance, as PyTorch does. */
#include "lower/lower_reduce.h"

/* Every dim except the channel dim 1. */
static void tpj_bn_dims(int64_t rank, tpj_reduce_dims_t* rd) {
  *rd = (tpj_reduce_dims_t){.rank = rank};
  for (int64_t d = 0; d < rank; ++d)
    if (d != 1) {
      rd->mask[d] = true;
      rd->dims[rd->count++] = d;
    }
}

/* A per-channel [C] value broadcast to the shape of t (or NONE stays NONE). */
static tpj_status_t tpj_bn_channel(tpj_graph_t* g, tpj_value_t v, const tpj_type_t* t,
                                   tpj_value_t* out) {
  if (v == TPJ_VALUE_NONE) {
    *out = v;
    return NULL;
  }
  static const int64_t bd[1] = {1};
  return tpj_build_broadcast_in_dim(g, v, t->dims, (size_t)t->rank, bd, out);
}

/* Arguments shared by the forward variants. Absent tensors are NONE. */
typedef struct tpj_bn_args_s {
  tpj_value_t x, w, b, rm, rv; /* x in acc dtype; w, b, rm, rv: [C] in acc dtype */
  bool training;
  double momentum, eps;
} tpj_bn_args_t;

/* mean and rstd ([C]) from the batch (training, or no running stats) or from
 * the running stats; with stats_out also the updated running stats in out[3..4]. */
static tpj_status_t tpj_bn_stats(tpj_graph_t* g, const tpj_bn_args_t* a, const tpj_type_t* t,
                                 const tpj_reduce_dims_t* rdp, bool stats_out,
                                 tpj_value_t* out_mean, tpj_value_t* out_rstd, tpj_value_t* out) {
  tpj_reduce_dims_t rd = *rdp;
  tpj_value_t mean, rstd, mb;
  bool use_batch = a->training || a->rm == TPJ_VALUE_NONE || a->rv == TPJ_VALUE_NONE;
  if (use_batch) {
    tpj_value_t d, sq, var;
    TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, a->x, &rd, &mean));
    TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, mean, t, &mb));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a->x, mb, &d));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, d, &sq));
    TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, sq, &rd, &var));
    TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_ADD, var, a->eps, &rstd));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_RSQRT, rstd, &rstd));
    if (stats_out) {
      double n = (double)tpj_reduce_dims_numel(&rd, t), m = a->momentum;
      tpj_value_t s0, s1, ub;
      TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, a->rm, 1.0 - m, &s0));
      TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, mean, m, &s1));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, s0, s1, &out[3]));
      TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, var, n / (n - 1.0), &ub));
      TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, a->rv, 1.0 - m, &s0));
      TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, ub, m, &s1));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, s0, s1, &out[4]));
    }
  } else {
    mean = a->rm;
    TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_ADD, a->rv, a->eps, &rstd));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_RSQRT, rstd, &rstd));
    if (stats_out) {
      out[3] = a->rm;
      out[4] = a->rv;
    }
  }
  *out_mean = mean;
  *out_rstd = rstd;
  return NULL;
}

/* Forward core: writes out (y), save_mean, save_rstd, and when `stats_out` the
 * two updated running stats as outputs 3 and 4. */
static tpj_status_t tpj_bn_forward(tpj_graph_t* g, const tpj_lower_call_t* call,
                                   const tpj_bn_args_t* a, bool stats_out, tpj_value_t* out) {
  const tpj_type_t t_c = *tpj_lower_type(g, a->x);
  const tpj_type_t* t = &t_c;
  if (t->rank < 2)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: input needs rank >= 2 (got %d)", call->target,
                      (int)t->rank);
  tpj_reduce_dims_t rd;
  tpj_bn_dims(t->rank, &rd);
  tpj_value_t mean, rstd, mb, rb, xhat, wb, bb;
  TPJ_RETURN_IF_ERROR(tpj_bn_stats(g, a, t, &rd, stats_out, &mean, &rstd, out));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, mean, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, rstd, t, &rb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a->x, mb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, rb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, a->w, t, &wb));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, a->b, t, &bb));
  if (wb != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, wb, &xhat));
  if (bb != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, xhat, bb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, xhat, tpj_lower_out_type(call, 0), &out[0]));
  for (size_t i = 1; i < 3; ++i) {
    const tpj_type_t* ot = tpj_lower_out_type(call, i);
    if (tpj_type_numel(ot) == 0 || ot->dtype == TPJ_DTYPE_INVALID)
      TPJ_RETURN_IF_ERROR(tpj_reduce_const_out(g, call, i, 0.0, &out[i]));
    else
      TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, i == 1 ? mean : rstd, ot, &out[i]));
  }
  if (stats_out)
    for (size_t i = 3; i < 5; ++i)
      TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, out[i], tpj_lower_out_type(call, i), &out[i]));
  return NULL;
}

/* Loads the tensors: x at 0, w at 1, b at 2, rm/rv at rm_i/rm_i+1 (rm_i < 0:
 * none), then training (if tr_i >= 0), momentum at mom_i, eps at mom_i+1. */
static tpj_status_t tpj_bn_load(tpj_graph_t* g, const tpj_lower_call_t* call, int rm_i,
                                int tr_i, size_t mom_i, tpj_bn_args_t* a) {
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &a->x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, a->x)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, a->x, acc, &a->x));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 1, acc, &a->w));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 2, acc, &a->b));
  a->rm = a->rv = TPJ_VALUE_NONE;
  if (rm_i >= 0) {
    TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, (size_t)rm_i, acc, &a->rm));
    TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, (size_t)rm_i + 1, acc, &a->rv));
  }
  a->training = tr_i < 0 ? false : true;
  if (tr_i >= 0) TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, (size_t)tr_i, &a->training));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, mom_i, &a->momentum));
  return tpj_lower_arg_float(call, mom_i + 1, &a->eps);
}

/* native_batch_norm / _native_batch_norm_legit(input, weight?, bias?,
 * running_mean?, running_var?, training, momentum, eps). The in-place running
 * stat update of eager mode is not expressible here; the functional variant
 * below returns it instead. */
TPJ_LOWERING(tpj_lower_reduce_batch_norm) {
  tpj_bn_args_t a;
  TPJ_RETURN_IF_ERROR(tpj_bn_load(g, call, 3, 5, 6, &a));
  return tpj_bn_forward(g, call, &a, false, out);
}

TPJ_LOWERING(tpj_lower_reduce_batch_norm_legit) {
  return tpj_lower_reduce_batch_norm(g, call, out);
}

/* _native_batch_norm_legit.no_stats(input, weight?, bias?, training, momentum, eps). */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_no_stats) {
  tpj_bn_args_t a;
  TPJ_RETURN_IF_ERROR(tpj_bn_load(g, call, -1, 3, 4, &a));
  return tpj_bn_forward(g, call, &a, false, out);
}

/* _native_batch_norm_legit_no_training(input, weight?, bias?, running_mean,
 * running_var, momentum, eps). */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_no_training) {
  tpj_bn_args_t a;
  TPJ_RETURN_IF_ERROR(tpj_bn_load(g, call, 3, -1, 5, &a));
  a.training = false;
  return tpj_bn_forward(g, call, &a, false, out);
}

/* _native_batch_norm_legit_functional(input, weight?, bias?, running_mean,
 * running_var, training, momentum, eps) -> (out, mean, rstd, rm_out, rv_out). */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_functional) {
  tpj_bn_args_t a;
  TPJ_RETURN_IF_ERROR(tpj_bn_load(g, call, 3, 5, 6, &a));
  if (a.rm == TPJ_VALUE_NONE || a.rv == TPJ_VALUE_NONE)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: running_mean and running_var are required",
                      call->target);
  return tpj_bn_forward(g, call, &a, true, out);
}

/* Per-channel sum over rd written as output i ([C]) or None. */
static tpj_status_t tpj_bn_param_grad(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                                      tpj_value_t v, const tpj_reduce_dims_t* rd,
                                      tpj_value_t* out) {
  const tpj_type_t* ot = tpj_lower_out_type(call, i);
  if (ot->dtype == TPJ_DTYPE_INVALID) {
    *out = TPJ_VALUE_NONE;
    return NULL;
  }
  tpj_value_t s;
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, v, TPJ_REDUCE_KIND_ADD, rd, &s));
  return tpj_reduce_finish(g, s, ot, out);
}

/* native_batch_norm_backward(grad_out, input, weight?, running_mean?,
 * running_var?, save_mean?, save_invstd?, train, eps, output_mask). */
TPJ_LOWERING(tpj_lower_reduce_batch_norm_backward) {
  tpj_value_t dy, x, w, mean, rstd, mb, rb, wb, xhat, gx, gi, gxh;
  bool train;
  double eps;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_type(g, x)->dtype);
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 0, acc, &dy));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &x));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, 2, acc, &w));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 7, &train));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 8, &eps));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, train ? 5 : 3, acc, &mean));
  TPJ_RETURN_IF_ERROR(tpj_reduce_opt_tensor(g, call, train ? 6 : 4, acc, &rstd));
  if (mean == TPJ_VALUE_NONE || rstd == TPJ_VALUE_NONE)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: missing %s statistics", call->target,
                      train ? "saved" : "running");
  if (!train) {
    TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_ADD, rstd, eps, &rstd));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_RSQRT, rstd, &rstd));
  }
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  tpj_bn_dims(t->rank, &rd);
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, mean, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, rstd, t, &rb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, x, mb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, rb, &xhat));
  TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, w, t, &wb));
  gx = dy;
  if (wb != TPJ_VALUE_NONE) TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dy, wb, &gx));
  if (tpj_lower_out_type(call, 0)->dtype == TPJ_DTYPE_INVALID) {
    out[0] = TPJ_VALUE_NONE;
  } else {
    if (train) {
      tpj_value_t m1, m2, a, b;
      TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, gx, &rd, &m1));
      TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, m1, t, &m1));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, gx, xhat, &a));
      TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, a, &rd, &m2));
      TPJ_RETURN_IF_ERROR(tpj_bn_channel(g, m2, t, &m2));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, gx, m1, &a));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xhat, m2, &b));
      TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, a, b, &gx));
    }
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, gx, rb, &gi));
    TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, gi, tpj_lower_out_type(call, 0), &out[0]));
  }
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, dy, xhat, &gxh));
  TPJ_RETURN_IF_ERROR(tpj_bn_param_grad(g, call, 1, gxh, &rd, &out[1]));
  return tpj_bn_param_grad(g, call, 2, dy, &rd, &out[2]);
}
