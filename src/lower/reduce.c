/* reduce.c: plain reductions (sum, mean, amax/amin, prod, any/all, logsumexp,
 * var/std, vector norms). Each one converts its input to the accumulation
 * dtype of the result, reduces, then converts and reshapes to the expected
 * output type, which also takes care of keepdim. */
#include <math.h>

#include "lower/lower_reduce.h"

/* x (argument 0) reduced with `kind` over the dims of argument dim_arg (or all
 * dims when dim_arg < 0), accumulated in acc_dtype, written as output 0. */
static tpj_status_t tpj_reduce_simple_op(tpj_graph_t* g, const tpj_lower_call_t* call,
                                         int dim_arg, tpj_reduce_kind_t kind,
                                         tpj_dtype_t acc_dtype, tpj_value_t* out) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  if (dim_arg < 0)
    tpj_reduce_dims_all(t->rank, &rd);
  else
    TPJ_RETURN_IF_ERROR(tpj_reduce_dims_parse(call, (size_t)dim_arg, t->rank, &rd));
  tpj_value_t xc, r;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc_dtype, &xc));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, xc, kind, &rd, &r));
  return tpj_reduce_finish(g, r, tpj_lower_out_type(call, 0), &out[0]);
}

/* Dim argument index of the overloads: the .default ones have no dim list. */
static int tpj_reduce_dim_arg(const tpj_lower_call_t* call) {
  if (call->num_args < 2) return -1;
  tpj_arg_kind_t k = call->args[1].kind;
  return (k == TPJ_ARG_KIND_INT || k == TPJ_ARG_KIND_INT_LIST || k == TPJ_ARG_KIND_NONE)
             ? 1 : -1;
}

TPJ_LOWERING(tpj_lower_reduce_sum) {
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  return tpj_reduce_simple_op(g, call, tpj_reduce_dim_arg(call), TPJ_REDUCE_KIND_ADD, acc, out);
}

TPJ_LOWERING(tpj_lower_reduce_prod) {
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  return tpj_reduce_simple_op(g, call, tpj_reduce_dim_arg(call), TPJ_REDUCE_KIND_MUL, acc, out);
}

TPJ_LOWERING(tpj_lower_reduce_mean) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (!tpj_dtype_is_float(ot->dtype))
    return TPJ_LOWER_UNSUPPORTED(call, "mean needs a floating result dtype (got %s)",
                                 tpj_dtype_name(ot->dtype));
  tpj_value_t x, xc, r;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  int dim_arg = tpj_reduce_dim_arg(call);
  if (dim_arg < 0)
    tpj_reduce_dims_all(t->rank, &rd);
  else
    TPJ_RETURN_IF_ERROR(tpj_reduce_dims_parse(call, (size_t)dim_arg, t->rank, &rd));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, tpj_reduce_acc_dtype(ot->dtype), &xc));
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, xc, &rd, &r));
  return tpj_reduce_finish(g, r, ot, &out[0]);
}

/* amax/amin (and max/min.default): exact in the input dtype; bool uses or/and. */
static tpj_status_t tpj_reduce_extremum(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        bool is_max, tpj_value_t* out) {
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  tpj_dtype_t dt = tpj_lower_type(g, x)->dtype;
  if (tpj_type_numel(tpj_lower_type(g, x)) == 0)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: cannot reduce an empty tensor (no identity)",
                      call->target);
  tpj_reduce_kind_t kind = is_max ? TPJ_REDUCE_KIND_MAX : TPJ_REDUCE_KIND_MIN;
  if (dt == TPJ_DTYPE_PRED) kind = is_max ? TPJ_REDUCE_KIND_OR : TPJ_REDUCE_KIND_AND;
  return tpj_reduce_simple_op(g, call, tpj_reduce_dim_arg(call), kind, dt, out);
}

TPJ_LOWERING(tpj_lower_reduce_amax) { return tpj_reduce_extremum(g, call, true, out); }
TPJ_LOWERING(tpj_lower_reduce_amin) { return tpj_reduce_extremum(g, call, false, out); }

TPJ_LOWERING(tpj_lower_reduce_any) {
  return tpj_reduce_simple_op(g, call, tpj_reduce_dim_arg(call), TPJ_REDUCE_KIND_OR,
                              TPJ_DTYPE_PRED, out);
}

TPJ_LOWERING(tpj_lower_reduce_all) {
  return tpj_reduce_simple_op(g, call, tpj_reduce_dim_arg(call), TPJ_REDUCE_KIND_AND,
                              TPJ_DTYPE_PRED, out);
}

/* log(sum(exp(x - m))) + m with m = amax(x) where finite, else 0 (PyTorch). */
TPJ_LOWERING(tpj_lower_reduce_logsumexp) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t x, xc, m, inf, zero, isinf, ms, mb, d, e, s, l, r;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, tpj_reduce_acc_dtype(ot->dtype), &xc));
  const tpj_type_t t_c = *tpj_lower_type(g, xc);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_reduce_dims_parse(call, 1, t->rank, &rd));
  if (tpj_type_numel(t) == 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, xc, &e));
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, e, TPJ_REDUCE_KIND_ADD, &rd, &s));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, s, &l));
    return tpj_reduce_finish(g, l, ot, &out[0]);
  }
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, xc, TPJ_REDUCE_KIND_MAX, &rd, &m));
  const tpj_type_t mt_c = *tpj_lower_type(g, m);
  const tpj_type_t* mt = &mt_c;
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, m, &ms));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, mt, INFINITY, &inf));
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, mt, 0.0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, ms, inf, &isinf));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, isinf, zero, m, &ms));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, ms, &rd, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, xc, mb, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, d, &e));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, e, TPJ_REDUCE_KIND_ADD, &rd, &s));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_LOG, s, &l));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, l, ms, &r));
  return tpj_reduce_finish(g, r, ot, &out[0]);
}

/* Variance (dims dropped, acc dtype) and mean of argument 0 with the schema
 * (self, dim?, *, correction?, keepdim). */
static tpj_status_t tpj_reduce_var_core(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        tpj_value_t* out_var, tpj_value_t* out_mean) {
  tpj_value_t x, xc, mean, mb, d, sq, ss;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  tpj_dtype_t acc = tpj_reduce_acc_dtype(tpj_lower_out_type(call, 0)->dtype);
  if (!tpj_dtype_is_float(acc))
    return TPJ_LOWER_UNSUPPORTED(call, "variance needs a floating dtype (got %s)",
                                 tpj_dtype_name(acc));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, acc, &xc));
  const tpj_type_t t_c = *tpj_lower_type(g, xc);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_reduce_dims_parse(call, 1, t->rank, &rd));
  double corr;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float_or(call, 2, 1.0, &corr));
  double n = (double)tpj_reduce_dims_numel(&rd, t);
  double denom = n - corr > 0 ? n - corr : 0.0;
  TPJ_RETURN_IF_ERROR(tpj_reduce_mean_of(g, xc, &rd, &mean));
  TPJ_RETURN_IF_ERROR(tpj_reduce_expand(g, mean, &rd, t, &mb));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SUB, xc, mb, &d));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, d, d, &sq));
  TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, sq, TPJ_REDUCE_KIND_ADD, &rd, &ss));
  TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_DIV, ss, denom, out_var));
  *out_mean = mean;
  return NULL;
}

static tpj_status_t tpj_reduce_var_like(tpj_graph_t* g, const tpj_lower_call_t* call,
                                        bool take_sqrt, bool with_mean, tpj_value_t* out) {
  tpj_value_t v = TPJ_VALUE_NONE, m = TPJ_VALUE_NONE;
  TPJ_RETURN_IF_ERROR(tpj_reduce_var_core(g, call, &v, &m));
  if (take_sqrt) TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_SQRT, v, &v));
  TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, v, tpj_lower_out_type(call, 0), &out[0]));
  if (with_mean)
    TPJ_RETURN_IF_ERROR(tpj_reduce_finish(g, m, tpj_lower_out_type(call, 1), &out[1]));
  return NULL;
}

TPJ_LOWERING(tpj_lower_reduce_var) { return tpj_reduce_var_like(g, call, false, false, out); }
TPJ_LOWERING(tpj_lower_reduce_std) { return tpj_reduce_var_like(g, call, true, false, out); }
TPJ_LOWERING(tpj_lower_reduce_var_mean) {
  return tpj_reduce_var_like(g, call, false, true, out);
}
TPJ_LOWERING(tpj_lower_reduce_std_mean) {
  return tpj_reduce_var_like(g, call, true, true, out);
}

/* linalg_vector_norm(self, ord, dim?, keepdim, *, dtype?) on |x| in acc dtype. */
TPJ_LOWERING(tpj_lower_reduce_vector_norm) {
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  tpj_value_t x, a, r;
  double ord;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 1, &ord));
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, tpj_reduce_acc_dtype(ot->dtype), &x));
  const tpj_type_t t_c = *tpj_lower_type(g, x);
  const tpj_type_t* t = &t_c;
  tpj_reduce_dims_t rd;
  TPJ_RETURN_IF_ERROR(tpj_reduce_dims_parse(call, 2, t->rank, &rd));
  TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_ABS, x, &a));
  if (isinf(ord)) {
    if (tpj_reduce_dims_numel(&rd, t) == 0)
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: inf norm of an empty reduction", call->target);
    tpj_reduce_kind_t k = ord > 0 ? TPJ_REDUCE_KIND_MAX : TPJ_REDUCE_KIND_MIN;
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, a, k, &rd, &r));
  } else if (ord == 0.0) {
    tpj_value_t nz;
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, a, TPJ_DTYPE_PRED, &nz));
    TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, nz, t->dtype, &nz));
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, nz, TPJ_REDUCE_KIND_ADD, &rd, &r));
  } else if (ord == 1.0) {
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, a, TPJ_REDUCE_KIND_ADD, &rd, &r));
  } else if (ord == 2.0) {
    tpj_value_t sq;
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, a, &sq));
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, sq, TPJ_REDUCE_KIND_ADD, &rd, &r));
    TPJ_RETURN_IF_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_SQRT, r, &r));
  } else {
    tpj_value_t p;
    TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_POW, a, ord, &p));
    TPJ_RETURN_IF_ERROR(tpj_reduce_apply(g, p, TPJ_REDUCE_KIND_ADD, &rd, &r));
    TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_POW, r, 1.0 / ord, &r));
  }
  return tpj_reduce_finish(g, r, ot, &out[0]);
}
