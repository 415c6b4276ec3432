/* Whole-graph verification and the small attribute-text helpers builders share.
 * The builders already type-check every op; the verifier re-checks structure
 * (results set, scoping, def-before-use, regions closed and used once). */
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

void tpj_ir_fmt_list(tpj_strbuf_t* sb, const int64_t* v, size_t n) {
  tpj_strbuf_puts(sb, "[");
  for (size_t i = 0; i < n; ++i) tpj_strbuf_printf(sb, "%s%lld", i ? ", " : "", (long long)v[i]);
  tpj_strbuf_puts(sb, "]");
}

void tpj_ir_fmt_array(tpj_strbuf_t* sb, const char* name, const int64_t* v, size_t n) {
  if (sb->len) tpj_strbuf_puts(sb, ", ");
  tpj_strbuf_printf(sb, "%s = array<i64%s", name, n ? ": " : "");
  for (size_t i = 0; i < n; ++i) tpj_strbuf_printf(sb, "%s%lld", i ? ", " : "", (long long)v[i]);
  tpj_strbuf_puts(sb, ">");
}

void tpj_ir_fmt_matrix(tpj_strbuf_t* sb, const char* name, const int64_t* v, size_t rows,
                       size_t cols) {
  if (sb->len) tpj_strbuf_puts(sb, ", ");
  tpj_strbuf_printf(sb, "%s = dense<[", name);
  for (size_t r = 0; r < rows; ++r) {
    tpj_strbuf_puts(sb, r ? ", " : "");
    tpj_ir_fmt_list(sb, v + r * cols, cols);
  }
  tpj_strbuf_printf(sb, "]> : tensor<%zux%zuxi64>", rows, cols);
}

void tpj_ir_fmt_padding(tpj_strbuf_t* sb, const char* name, const int64_t* pairs, size_t n) {
  tpj_ir_fmt_matrix(sb, name, pairs, n, 2);
}

tpj_status_t tpj_ir_check_dims(const char* op, const char* what, const int64_t* dims,
                               size_t n, int64_t rank) {
  TPJ_CHECK_ARG(n == 0 || dims, "%s: %s is NULL", op, what);
  for (size_t i = 0; i < n; ++i) {
    TPJ_CHECK_ARG(dims[i] >= 0 && dims[i] < rank,
                  "%s: %s[%zu] out of range (got %lld, expected 0..%lld)", op, what, i,
                  (long long)dims[i], (long long)rank - 1);
    for (size_t j = 0; j < i; ++j)
      TPJ_CHECK_ARG(dims[j] != dims[i], "%s: %s repeats dim %lld (expected unique dims)", op,
                    what, (long long)dims[i]);
  }
  return NULL;
}

tpj_status_t tpj_ir_append_with_attrs(tpj_graph_t* g, tpj_ir_op_desc_t* desc,
                                      tpj_strbuf_t* sb, tpj_value_t* out_results) {
  tpj_status_t s = tpj_strbuf_status(sb);
  if (!s) {
    desc->attrs = sb->data;
    s = tpj_ir_op_append(g, desc, out_results);
  }
  tpj_strbuf_deinit(sb);
  return s;
}

/* A use of v by something in `block` at op position `pos` is valid if v is
 * visible in that block and defined earlier. */
static tpj_status_t tpj_ir_verify_use(const tpj_graph_t* g, const char* user, tpj_value_t v,
                                      int32_t block, int32_t pos) {
  TPJ_CHECK_ARG(v >= 0 && (size_t)v < g->num_values,
                "graph verify: %s uses an unknown value (got %d)", user, (int)v);
  const tpj_ir_value_t* val = TPJ_IR_VAL(g, v);
  TPJ_CHECK_ARG(val->block == block,
                "graph verify: %s uses %%%d from block %d in block %d (out of scope)", user,
                (int)v, (int)val->block, (int)block);
  TPJ_CHECK_ARG(val->op < pos, "graph verify: %s uses %%%d before its definition", user, (int)v);
  return NULL;
}

tpj_status_t tpj_graph_verify(const tpj_graph_t* g) {
  TPJ_CHECK_ARG(g, "graph verify: graph is NULL");
  TPJ_CHECK_ARG(g->cur_block == TPJ_IR_MAIN_BLOCK, "graph verify: region %d is still open",
                (int)g->cur_block);
  TPJ_CHECK_ARG(g->results_set, "graph verify: results of @main are not set");
  char user[96];
  for (size_t i = 0; i < g->num_ops; ++i) {
    const tpj_ir_op_t* op = &g->ops[i];
    snprintf(user, sizeof(user), "op %zu (%s)", i, op->name);
    for (int32_t k = 0; k < op->num_operands; ++k)
      TPJ_RETURN_IF_ERROR(tpj_ir_verify_use(g, user, op->operands[k], op->block, (int32_t)i));
    for (int32_t k = 0; k < op->num_regions; ++k) {
      int32_t r = op->regions[k];
      TPJ_CHECK_ARG(r >= 0 && (size_t)r < g->num_regions && g->regions[r].owner_op == (int32_t)i,
                    "graph verify: %s has a bad region %d", user, (int)r);
    }
  }
  for (size_t r = 0; r < g->num_regions; ++r) {
    const tpj_ir_region_t* reg = &g->regions[r];
    TPJ_CHECK_ARG(reg->closed, "graph verify: region %zu is not closed", r);
    TPJ_CHECK_ARG(reg->owner_op >= 0, "graph verify: region %zu is never used by an op", r);
    snprintf(user, sizeof(user), "the return of region %zu", r);
    for (int32_t k = 0; k < reg->num_results; ++k)
      TPJ_RETURN_IF_ERROR(tpj_ir_verify_use(g, user, reg->results[k], (int32_t)r, reg->owner_op));
  }
  for (size_t i = 0; i < g->num_results; ++i)
    TPJ_RETURN_IF_ERROR(tpj_ir_verify_use(g, "func.return", g->results[i], TPJ_IR_MAIN_BLOCK,
                                          (int32_t)g->num_ops));
  return NULL;
}
