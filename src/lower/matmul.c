/* matmul.c: mm, bmm, mv, dot and the fused add variants (addmm, baddbmm,
 * addmv). One dot_general each; bf16/f16 accumulate in f32 and round once at
 * the end (as PyTorch's CPU GEMMs do), and the beta/alpha epilogue happens
 * before that rounding. beta == 0 ignores `self` entirely (NaN included). */
#include "lower/lower_reduce.h"

typedef enum tpj_mm_kind_e {
  TPJ_MM_KIND_MM,  /* [n,k] x [k,m] */
  TPJ_MM_KIND_BMM, /* [b,n,k] x [b,k,m] */
  TPJ_MM_KIND_MV,  /* [n,k] x [k] */
  TPJ_MM_KIND_DOT, /* [k] x [k] */
} tpj_mm_kind_t;

static const int32_t tpj_mm_ranks[4][2] = {{2, 2}, {3, 3}, {2, 1}, {1, 1}};

/* Product of arguments li and ri in acc dtype (of output 0). */
static tpj_status_t tpj_mm_product(tpj_graph_t* g, const tpj_lower_call_t* call, size_t li,
                                   size_t ri, tpj_mm_kind_t kind, tpj_value_t* out) {
  tpj_value_t a, b;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, li, &a));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, ri, &b));
  const tpj_type_t ta_c = *tpj_lower_type(g, a);
  const tpj_type_t* ta = &ta_c;
  const tpj_type_t tb_c = *tpj_lower_type(g, b);
  const tpj_type_t* tb = &tb_c;
  if (ta->rank != tpj_mm_ranks[kind][0] || tb->rank != tpj_mm_ranks[kind][1])
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: operand ranks (got %d and %d, expected %d and %d)",
                      call->target, (int)ta->rank, (int)tb->rank, (int)tpj_mm_ranks[kind][0],
                      (int)tpj_mm_ranks[kind][1]);
  if (ta->dtype != tb->dtype)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: operand dtypes differ (got %s and %s)",
                      call->target, tpj_dtype_name(ta->dtype), tpj_dtype_name(tb->dtype));
  tpj_dtype_t out_dt = tpj_lower_out_type(call, 0)->dtype;
  tpj_dtype_t acc = tpj_reduce_acc_dtype(out_dt);
  if (out_dt == TPJ_DTYPE_PRED) return TPJ_LOWER_UNSUPPORTED(call, "bool matmul");
  int64_t batch = 0, lc, rc = kind == TPJ_MM_KIND_BMM ? 1 : 0;
  lc = ta->rank - 1;
  tpj_dot_dims_t dd = {.lhs_contract = &lc, .num_lhs_contract = 1,
                       .rhs_contract = &rc, .num_rhs_contract = 1};
  if (kind == TPJ_MM_KIND_BMM) {
    dd.lhs_batch = dd.rhs_batch = &batch;
    dd.num_lhs_batch = dd.num_rhs_batch = 1;
  }
  return tpj_build_dot_general(g, a, b, &dd, acc, out);
}

static tpj_status_t tpj_mm_plain(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 tpj_mm_kind_t kind, tpj_value_t* out) {
  tpj_value_t p;
  TPJ_RETURN_IF_ERROR(tpj_mm_product(g, call, 0, 1, kind, &p));
  return tpj_reduce_finish(g, p, tpj_lower_out_type(call, 0), &out[0]);
}

TPJ_LOWERING(tpj_lower_reduce_mm) { return tpj_mm_plain(g, call, TPJ_MM_KIND_MM, out); }
TPJ_LOWERING(tpj_lower_reduce_bmm) { return tpj_mm_plain(g, call, TPJ_MM_KIND_BMM, out); }
TPJ_LOWERING(tpj_lower_reduce_mv) { return tpj_mm_plain(g, call, TPJ_MM_KIND_MV, out); }
TPJ_LOWERING(tpj_lower_reduce_dot) { return tpj_mm_plain(g, call, TPJ_MM_KIND_DOT, out); }

/* add*(self, a, b, *, beta, alpha) = beta * self + alpha * (a @ b). */
static tpj_status_t tpj_mm_add(tpj_graph_t* g, const tpj_lower_call_t* call,
                               tpj_mm_kind_t kind, tpj_value_t* out) {
  tpj_value_t p, s;
  double beta, alpha;
  TPJ_RETURN_IF_ERROR(tpj_mm_product(g, call, 1, 2, kind, &p));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 3, &beta));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_float(call, 4, &alpha));
  const tpj_type_t pt_c = *tpj_lower_type(g, p);
  const tpj_type_t* pt = &pt_c;
  if (alpha != 1.0) TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, p, alpha, &p));
  if (beta != 0.0) {
    TPJ_RETURN_IF_ERROR(tpj_lower_arg_as(g, call, 0, pt, &s));
    if (beta != 1.0) TPJ_RETURN_IF_ERROR(tpj_reduce_binc(g, TPJ_BINARY_OP_MUL, s, beta, &s));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, s, p, &p));
  }
  return tpj_reduce_finish(g, p, tpj_lower_out_type(call, 0), &out[0]);
}

TPJ_LOWERING(tpj_lower_reduce_addmm) { return tpj_mm_add(g, call, TPJ_MM_KIND_MM, out); }
TPJ_LOWERING(tpj_lower_reduce_baddbmm) { return tpj_mm_add(g, call, TPJ_MM_KIND_BMM, out); }
TPJ_LOWERING(tpj_lower_reduce_addmv) { return tpj_mm_add(g, call, TPJ_MM_KIND_MV, out); }
