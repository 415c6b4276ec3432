/* Builders for dot_general and convolution: dimension-number validation and
 * result-shape inference (StableHLO order for dot, PyTorch NCHW/OIHW layout
 * for convolution, emitted with the short conv dimension-number form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))

static bool tpj_ir_in(const int64_t* v, size_t n, int64_t x) {
  for (size_t i = 0; i < n; ++i)
    if (v[i] == x) return true;
  return false;
}

/* Checks batch+contract dims of one side: in range and disjoint. */
static tpj_status_t tpj_ir_dot_side(const char* name, const char* side, const int64_t* batch,
                                    size_t nb, const int64_t* contract, size_t nc, int64_t rank) {
  char what[48];
  snprintf(what, sizeof(what), "%s_batching_dimensions", side);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, what, batch, nb, rank));
  snprintf(what, sizeof(what), "%s_contracting_dimensions", side);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, what, contract, nc, rank));
  for (size_t i = 0; i < nc; ++i)
    TPJ_CHECK_ARG(!tpj_ir_in(batch, nb, contract[i]),
                  "%s: %s dim %lld is both a batching and a contracting dimension", name, side,
                  (long long)contract[i]);
  return NULL;
}

static void tpj_ir_dot_field(tpj_strbuf_t* sb, bool* first, const char* name, const int64_t* v,
                             size_t n) {
  if (!n) return;
  tpj_strbuf_printf(sb, "%s%s = ", *first ? "" : ", ", name);
  tpj_ir_fmt_list(sb, v, n);
  *first = false;
}

/* One side of a dot: its operand and dimension numbers (copied, foldable). */
typedef struct tpj_ir_dot_side_s {
  tpj_value_t v;
  int64_t batch[TPJ_MAX_RANK];
  int64_t contract[TPJ_MAX_RANK];
} tpj_ir_dot_side_t;

/* The source and permutation of the stablehlo.transpose defining v (the
 * permutation read back from its attribute); false for any other value. */
static bool tpj_ir_transpose_of(const tpj_graph_t* g, tpj_value_t v, tpj_value_t* out_src,
                                int64_t* perm, size_t rank) {
  if (v < 0 || (size_t)v >= g->num_values) return false;
  const tpj_ir_value_t* iv = TPJ_IR_VAL(g, v);
  if (iv->op < 0) return false;
  const tpj_ir_op_t* op = &g->ops[iv->op];
  static const char kPrefix[] = "permutation = array<i64: ";
  if (strcmp(op->name, "stablehlo.transpose") != 0 || op->num_operands != 1 || !op->attrs ||
      strncmp(op->attrs, kPrefix, sizeof(kPrefix) - 1) != 0) {
    return false;
  }
  const char* p = op->attrs + sizeof(kPrefix) - 1;
  for (size_t i = 0; i < rank; ++i) {
    char* end = NULL;
    perm[i] = strtoll(p, &end, 10);
    if (end == p) return false;
    p = end;
    if (i + 1 < rank && strncmp(p, ", ", 2) != 0) return false;
    if (i + 1 < rank) p += 2;
  }
  if (strcmp(p, ">") != 0) return false;
  *out_src = op->operands[0];
  return true;
}

/* Reads a transpose feeding one side of a dot through its dimension numbers
 * instead (dot(transpose(x)) -> dot(x)), as XLA would rather see it: legal
 * when the side's free dims keep their relative order, so the result is the
 * same. The transpose stays in the graph for its other users (or is dead). */
static void tpj_ir_dot_fold(const tpj_graph_t* g, tpj_ir_dot_side_t* s, size_t nb, size_t nc,
                            int32_t rank) {
  tpj_value_t src;
  int64_t perm[TPJ_MAX_RANK];
  if (rank <= 0 || !tpj_ir_transpose_of(g, s->v, &src, perm, (size_t)rank)) return;
  const tpj_type_t* ts = NULL;
  tpj_status_t st = tpj_ir_operand(g, "stablehlo.dot_general", "folded operand", src, &ts);
  if (st) {  /* not visible here: keep the transpose */
    tpj_status_free(st);
    return;
  }
  int64_t last = -1;
  for (int32_t d = 0; d < rank; ++d) {
    if (tpj_ir_in(s->batch, nb, d) || tpj_ir_in(s->contract, nc, d)) continue;
    if (perm[d] < last) return;
    last = perm[d];
  }
  for (size_t i = 0; i < nb; ++i) s->batch[i] = perm[s->batch[i]];
  for (size_t i = 0; i < nc; ++i) s->contract[i] = perm[s->contract[i]];
  s->v = src;
}

static void tpj_ir_dot_side_init(tpj_ir_dot_side_t* s, tpj_value_t v, const int64_t* batch,
                                 size_t nb, const int64_t* contract, size_t nc) {
  s->v = v;
  if (nb) memcpy(s->batch, batch, nb * sizeof(int64_t));  /* may be NULL when empty */
  if (nc) memcpy(s->contract, contract, nc * sizeof(int64_t));
}

tpj_status_t tpj_build_dot_general(tpj_graph_t* g, tpj_value_t lhs, tpj_value_t rhs,
                                   const tpj_dot_dims_t* dn, tpj_dtype_t out_dtype,
                                   tpj_value_t* out) {
  const char* name = "stablehlo.dot_general";
  TPJ_CHECK_ARG(g && dn && out, "%s: graph, dims or out is NULL", name);
  const tpj_type_t *tl, *tr;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "lhs", lhs, &tl));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "rhs", rhs, &tr));
  TPJ_CHECK_ARG(tl->dtype == tr->dtype, "%s: operand dtypes differ (got %s and %s, expected identical dtypes)",
                name, tpj_dtype_name(tl->dtype), tpj_dtype_name(tr->dtype));
  TPJ_CHECK_ARG(dn->num_lhs_batch == dn->num_rhs_batch,
                "%s: batching dimension counts differ (got %zu for lhs and %zu for rhs)", name,
                dn->num_lhs_batch, dn->num_rhs_batch);
  TPJ_CHECK_ARG(dn->num_lhs_contract == dn->num_rhs_contract,
                "%s: contracting dimension counts differ (got %zu for lhs and %zu for rhs)", name,
                dn->num_lhs_contract, dn->num_rhs_contract);
  TPJ_RETURN_IF_ERROR(tpj_ir_dot_side(name, "lhs", dn->lhs_batch, dn->num_lhs_batch,
                                      dn->lhs_contract, dn->num_lhs_contract, tl->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_dot_side(name, "rhs", dn->rhs_batch, dn->num_rhs_batch,
                                      dn->rhs_contract, dn->num_rhs_contract, tr->rank));
  char a[96], b[96];
  TPJ_FMT(tl, a);
  TPJ_FMT(tr, b);
  for (size_t i = 0; i < dn->num_lhs_batch; ++i)
    TPJ_CHECK_ARG(tl->dims[dn->lhs_batch[i]] == tr->dims[dn->rhs_batch[i]],
                  "%s: batching dimension %zu sizes differ (lhs %s dim %lld, rhs %s dim %lld)",
                  name, i, a, (long long)dn->lhs_batch[i], b, (long long)dn->rhs_batch[i]);
  for (size_t i = 0; i < dn->num_lhs_contract; ++i)
    TPJ_CHECK_ARG(tl->dims[dn->lhs_contract[i]] == tr->dims[dn->rhs_contract[i]],
                  "%s: contracting dimension %zu sizes differ (lhs %s dim %lld, rhs %s dim %lld)",
                  name, i, a, (long long)dn->lhs_contract[i], b, (long long)dn->rhs_contract[i]);
  /* Validated: now fold transposes into the dimension numbers (ranks and
   * counts are within TPJ_MAX_RANK here). */
  tpj_ir_dot_side_t L, R;
  tpj_ir_dot_side_init(&L, lhs, dn->lhs_batch, dn->num_lhs_batch, dn->lhs_contract,
                       dn->num_lhs_contract);
  tpj_ir_dot_side_init(&R, rhs, dn->rhs_batch, dn->num_rhs_batch, dn->rhs_contract,
                       dn->num_rhs_contract);
  tpj_ir_dot_fold(g, &L, dn->num_lhs_batch, dn->num_lhs_contract, tl->rank);
  tpj_ir_dot_fold(g, &R, dn->num_rhs_batch, dn->num_rhs_contract, tr->rank);
  tpj_dot_dims_t folded = {L.batch, dn->num_lhs_batch, R.batch, dn->num_rhs_batch,
                           L.contract, dn->num_lhs_contract, R.contract, dn->num_rhs_contract};
  lhs = L.v;
  rhs = R.v;
  dn = &folded;
  tl = &TPJ_IR_VAL(g, lhs)->type;
  tr = &TPJ_IR_VAL(g, rhs)->type;
  tpj_type_t rt = tpj_type_scalar(out_dtype == TPJ_DTYPE_INVALID ? tl->dtype : out_dtype);
  TPJ_CHECK_ARG(tpj_dtype_size(rt.dtype) > 0, "%s: invalid result dtype %d", name, (int)out_dtype);
  size_t free_l = (size_t)tl->rank - dn->num_lhs_batch - dn->num_lhs_contract;
  size_t free_r = (size_t)tr->rank - dn->num_rhs_batch - dn->num_rhs_contract;
  TPJ_CHECK_ARG(dn->num_lhs_batch + free_l + free_r <= TPJ_MAX_RANK,
                "%s: result rank exceeds %d", name, TPJ_MAX_RANK);
  for (size_t i = 0; i < dn->num_lhs_batch; ++i) rt.dims[rt.rank++] = tl->dims[dn->lhs_batch[i]];
  for (int32_t d = 0; d < tl->rank; ++d)
    if (!tpj_ir_in(dn->lhs_batch, dn->num_lhs_batch, d) &&
        !tpj_ir_in(dn->lhs_contract, dn->num_lhs_contract, d))
      rt.dims[rt.rank++] = tl->dims[d];
  for (int32_t d = 0; d < tr->rank; ++d)
    if (!tpj_ir_in(dn->rhs_batch, dn->num_rhs_batch, d) &&
        !tpj_ir_in(dn->rhs_contract, dn->num_rhs_contract, d))
      rt.dims[rt.rank++] = tr->dims[d];
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_puts(&sb, "dot_dimension_numbers = #stablehlo.dot<");
  bool first = true;
  tpj_ir_dot_field(&sb, &first, "lhs_batching_dimensions", dn->lhs_batch, dn->num_lhs_batch);
  tpj_ir_dot_field(&sb, &first, "rhs_batching_dimensions", dn->rhs_batch, dn->num_rhs_batch);
  tpj_ir_dot_field(&sb, &first, "lhs_contracting_dimensions", dn->lhs_contract, dn->num_lhs_contract);
  tpj_ir_dot_field(&sb, &first, "rhs_contracting_dimensions", dn->rhs_contract, dn->num_rhs_contract);
  tpj_strbuf_puts(&sb, ">");
  tpj_value_t ops[2] = {lhs, rhs};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 2,
                        .result_types = &rt, .num_results = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

int64_t tpj_ir_window_out(int64_t in, int64_t base_dil, int64_t lo, int64_t hi, int64_t win,
                          int64_t win_dil, int64_t stride) {
  int64_t padded = (in > 0 ? (in - 1) * base_dil + 1 : 0) + lo + hi;
  int64_t w = (win - 1) * win_dil + 1;
  return padded < w ? 0 : (padded - w) / stride + 1;
}

static tpj_status_t tpj_ir_conv_check(const char* name, const tpj_type_t* ti,
                                      const tpj_type_t* tk, const tpj_conv_params_t* p) {
  size_t ns = p->num_spatial;
  TPJ_CHECK_ARG(ns >= 1 && ns + 2 <= TPJ_MAX_RANK, "%s: num_spatial out of range (got %zu, expected 1..%d)",
                name, ns, TPJ_MAX_RANK - 2);
  char a[96], b[96];
  TPJ_FMT(ti, a);
  TPJ_FMT(tk, b);
  TPJ_CHECK_ARG(ti->rank == (int32_t)ns + 2 && tk->rank == (int32_t)ns + 2,
                "%s: input and kernel must have rank %zu (got %s and %s)", name, ns + 2, a, b);
  TPJ_CHECK_ARG(ti->dtype == tk->dtype, "%s: operand dtypes differ (got %s and %s)", name, a, b);
  TPJ_CHECK_ARG(p->window_strides && p->padding, "%s: window_strides or padding is NULL", name);
  int64_t fg = p->feature_group_count, bg = p->batch_group_count;
  TPJ_CHECK_ARG(fg >= 1 && bg >= 1 && (fg == 1 || bg == 1),
                "%s: bad group counts (got feature_group_count %lld, batch_group_count %lld, "
                "expected >= 1 and at most one of them > 1)", name, (long long)fg, (long long)bg);
  TPJ_CHECK_ARG(ti->dims[1] == tk->dims[1] * fg,
                "%s: input features must equal kernel input features * feature_group_count "
                "(got input %s, kernel %s, feature_group_count %lld)", name, a, b, (long long)fg);
  TPJ_CHECK_ARG(tk->dims[0] % fg == 0 && tk->dims[0] % bg == 0,
                "%s: kernel output features (%lld) must be divisible by the group counts", name,
                (long long)tk->dims[0]);
  TPJ_CHECK_ARG(ti->dims[0] % bg == 0, "%s: batch (%lld) must be divisible by batch_group_count %lld",
                name, (long long)ti->dims[0], (long long)bg);
  for (size_t i = 0; i < ns; ++i) {
    TPJ_CHECK_ARG(p->window_strides[i] >= 1, "%s: window_strides[%zu] must be >= 1 (got %lld)",
                  name, i, (long long)p->window_strides[i]);
    TPJ_CHECK_ARG(!p->lhs_dilation || p->lhs_dilation[i] >= 1, "%s: lhs_dilation[%zu] must be >= 1", name, i);
    TPJ_CHECK_ARG(!p->rhs_dilation || p->rhs_dilation[i] >= 1, "%s: rhs_dilation[%zu] must be >= 1", name, i);
  }
  return NULL;
}

static void tpj_ir_conv_layout(tpj_strbuf_t* sb, const char* a, const char* b, size_t ns) {
  tpj_strbuf_printf(sb, "[%s, %s", a, b);
  for (size_t i = 0; i < ns; ++i) tpj_strbuf_printf(sb, ", %zu", i);
  tpj_strbuf_puts(sb, "]");
}

tpj_status_t tpj_build_convolution(tpj_graph_t* g, tpj_value_t input, tpj_value_t kernel,
                                   const tpj_conv_params_t* p, tpj_value_t* out) {
  const char* name = "stablehlo.convolution";
  TPJ_CHECK_ARG(g && p && out, "%s: graph, params or out is NULL", name);
  const tpj_type_t *ti, *tk;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "lhs", input, &ti));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "rhs", kernel, &tk));
  TPJ_RETURN_IF_ERROR(tpj_ir_conv_check(name, ti, tk, p));
  size_t ns = p->num_spatial;
  int64_t ones[TPJ_MAX_RANK] = {1, 1, 1, 1, 1, 1, 1, 1};
  const int64_t* ld = p->lhs_dilation ? p->lhs_dilation : ones;
  const int64_t* rd = p->rhs_dilation ? p->rhs_dilation : ones;
  tpj_type_t rt = *ti;
  rt.dims[0] = ti->dims[0] / p->batch_group_count;
  rt.dims[1] = tk->dims[0];
  for (size_t i = 0; i < ns; ++i)
    rt.dims[2 + i] = tpj_ir_window_out(ti->dims[2 + i], ld[i], p->padding[2 * i],
                                       p->padding[2 * i + 1], tk->dims[2 + i], rd[i],
                                       p->window_strides[i]);
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_puts(&sb, "dimension_numbers = #stablehlo.conv<");
  tpj_ir_conv_layout(&sb, "b", "f", ns);
  tpj_strbuf_puts(&sb, "x");
  tpj_ir_conv_layout(&sb, "o", "i", ns);
  tpj_strbuf_puts(&sb, "->");
  tpj_ir_conv_layout(&sb, "b", "f", ns);
  tpj_strbuf_puts(&sb, ">");
  tpj_ir_fmt_array(&sb, "window_strides", p->window_strides, ns);
  tpj_ir_fmt_padding(&sb, "padding", p->padding, ns);
  tpj_ir_fmt_array(&sb, "lhs_dilation", ld, ns);
  tpj_ir_fmt_array(&sb, "rhs_dilation", rd, ns);
  tpj_strbuf_printf(&sb, ", feature_group_count = %lld : i64, batch_group_count = %lld : i64",
                    (long long)p->feature_group_count, (long long)p->batch_group_count);
  tpj_value_t ops[2] = {input, kernel};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 2,
                        .result_types = &rt, .num_results = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}
