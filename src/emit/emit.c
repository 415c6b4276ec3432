/* StableHLO text emitter: one straight walk over a verified tpj_graph_t in the
 * generic op form. Output is deterministic and byte-exact for constants (hex
 * payloads, round-trippable splats) so its hash can key the compile cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_internal.h"
#include "tpj/emit.h"

static void tpj_emit_indent(tpj_strbuf_t* sb, int depth) {
  for (int i = 0; i < depth; ++i) tpj_strbuf_puts(sb, "  ");
}

static void tpj_emit_type(tpj_strbuf_t* sb, const tpj_type_t* t) {
  tpj_strbuf_puts(sb, "tensor<");
  for (int32_t i = 0; i < t->rank; ++i) tpj_strbuf_printf(sb, "%lldx", (long long)t->dims[i]);
  tpj_strbuf_printf(sb, "%s>", tpj_dtype_mlir(t->dtype));
}

static void tpj_emit_value(tpj_strbuf_t* sb, const tpj_graph_t* g, tpj_value_t v) {
  if (TPJ_IR_VAL(g, v)->param_index >= 0)
    tpj_strbuf_printf(sb, "%%arg%d", (int)TPJ_IR_VAL(g, v)->param_index);
  else
    tpj_strbuf_printf(sb, "%%%d", (int)v);
}

/* "(t0, t1)" for a list of values. */
static void tpj_emit_value_types(tpj_strbuf_t* sb, const tpj_graph_t* g,
                                 const tpj_value_t* vs, size_t n) {
  tpj_strbuf_puts(sb, "(");
  for (size_t i = 0; i < n; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, vs[i])->type);
  }
  tpj_strbuf_puts(sb, ")");
}

static void tpj_emit_value_list(tpj_strbuf_t* sb, const tpj_graph_t* g,
                                const tpj_value_t* vs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_value(sb, g, vs[i]);
  }
}

/* ------------------------------------------------------------- constants -- */

/* Shortest-safe decimal that MLIR parses as a float literal (always has '.'). */
static void tpj_emit_decimal(tpj_strbuf_t* sb, double v, int digits) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*g", digits, v);
  char* e = strchr(buf, 'e');
  if (!strchr(buf, '.')) {
    if (e) {
      char tail[32];
      snprintf(tail, sizeof(tail), "%s", e);
      snprintf(e, sizeof(buf) - (size_t)(e - buf), ".0%s", tail);
    } else {
      strncat(buf, ".0", sizeof(buf) - strlen(buf) - 1);
    }
  }
  tpj_strbuf_puts(sb, buf);
}

/* One element as a splat / list literal. */
static void tpj_emit_element(tpj_strbuf_t* sb, tpj_dtype_t dt, const unsigned char* p) {
  size_t size = tpj_dtype_size(dt);
  uint64_t bits = 0;
  memcpy(&bits, p, size < 8 ? size : 8);
  if (dt == TPJ_DTYPE_PRED) {
    tpj_strbuf_puts(sb, p[0] ? "true" : "false");
  } else if (tpj_dtype_is_signed_int(dt)) {
    int shift = (int)(64 - 8 * size);
    int64_t v = (int64_t)(bits << shift) >> shift;
    tpj_strbuf_printf(sb, "%lld", (long long)v);
  } else if (tpj_dtype_is_unsigned_int(dt)) {
    tpj_strbuf_printf(sb, "%llu", (unsigned long long)bits);
  } else if (dt == TPJ_DTYPE_F32) {
    float f;
    memcpy(&f, p, 4);
    if (isfinite(f)) tpj_emit_decimal(sb, f, 9);
    else tpj_strbuf_printf(sb, "0x%08llX", (unsigned long long)bits);
  } else if (dt == TPJ_DTYPE_F64) {
    double d;
    memcpy(&d, p, 8);
    if (isfinite(d)) tpj_emit_decimal(sb, d, 17);
    else tpj_strbuf_printf(sb, "0x%016llX", (unsigned long long)bits);
  } else if (dt == TPJ_DTYPE_F16 || dt == TPJ_DTYPE_BF16) {
    tpj_strbuf_printf(sb, "0x%04llX", (unsigned long long)bits);
  } else { /* complex: a one-element hex payload is a splat */
    tpj_strbuf_puts(sb, "\"0x");
    for (size_t i = 0; i < size; ++i) tpj_strbuf_printf(sb, "%02X", p[i]);
    tpj_strbuf_puts(sb, "\"");
  }
}

/* Nested list literal ([[true, false], ...]) for pred data, whose hex form is
 * ambiguous (bit-packed vs byte per element across MLIR versions). */
static void tpj_emit_nested(tpj_strbuf_t* sb, const tpj_type_t* t, int32_t dim,
                            const unsigned char** p) {
  if (dim == t->rank) {
    tpj_emit_element(sb, t->dtype, *p);
    *p += tpj_dtype_size(t->dtype);
    return;
  }
  tpj_strbuf_puts(sb, "[");
  for (int64_t i = 0; i < t->dims[dim]; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_nested(sb, t, dim + 1, p);
  }
  tpj_strbuf_puts(sb, "]");
}

static bool tpj_emit_is_splat(const tpj_ir_op_t* op, size_t elem, int64_t numel) {
  if (op->splat) return true;
  if (numel < 1) return false;
  const unsigned char* p = (const unsigned char*)op->data;
  for (int64_t i = 1; i < numel; ++i)
    if (memcmp(p, p + (size_t)i * elem, elem) != 0) return false;
  return true;
}

static void tpj_emit_dense(tpj_strbuf_t* sb, const tpj_ir_op_t* op, const tpj_type_t* t) {
  size_t elem = tpj_dtype_size(t->dtype);
  int64_t numel = tpj_type_numel(t);
  const unsigned char* p = (const unsigned char*)op->data;
  tpj_strbuf_puts(sb, "value = dense<");
  if (numel == 0) {
    /* `dense<>`: a nested [] list would be read as shape [0] */
  } else if (tpj_emit_is_splat(op, elem, numel)) {
    tpj_emit_element(sb, t->dtype, p);
  } else if (t->dtype == TPJ_DTYPE_PRED) {
    tpj_emit_nested(sb, t, 0, &p);
  } else {
    static const char kHex[] = "0123456789ABCDEF";
    size_t n = op->nbytes;
    char* hex = (char*)malloc(2 * n + 1);
    if (!hex) {
      sb->oom = 1;
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      hex[2 * i] = kHex[p[i] >> 4];
      hex[2 * i + 1] = kHex[p[i] & 15];
    }
    tpj_strbuf_puts(sb, "\"0x");
    tpj_strbuf_append(sb, hex, 2 * n);
    tpj_strbuf_puts(sb, "\"");
    free(hex);
  }
  tpj_strbuf_puts(sb, "> : ");
  tpj_emit_type(sb, t);
}

/* ------------------------------------------------------------------ ops -- */


typedef struct tpj_emit_index_s tpj_emit_index_t;
static void tpj_emit_block(tpj_strbuf_t* sb, const tpj_graph_t* g, const tpj_emit_index_t* ix,
                           int32_t block, int depth);

static void tpj_emit_region(tpj_strbuf_t* sb, const tpj_graph_t* g, const tpj_emit_index_t* ix,
                            int32_t r, int depth) {
  const tpj_ir_region_t* reg = &g->regions[r];
  tpj_strbuf_puts(sb, "{\n");
  tpj_emit_indent(sb, depth + 1);
  tpj_strbuf_puts(sb, "^bb0(");
  for (int32_t i = 0; i < reg->num_args; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_value(sb, g, reg->first_arg + i);
    tpj_strbuf_puts(sb, ": ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, reg->first_arg + i)->type);
  }
  tpj_strbuf_puts(sb, "):\n");
  tpj_emit_block(sb, g, ix, r, depth + 2);
  tpj_emit_indent(sb, depth + 2);
  tpj_strbuf_puts(sb, "\"stablehlo.return\"(");
  tpj_emit_value_list(sb, g, reg->results, (size_t)reg->num_results);
  tpj_strbuf_puts(sb, ") : ");
  tpj_emit_value_types(sb, g, reg->results, (size_t)reg->num_results);
  tpj_strbuf_puts(sb, " -> ()\n");
  tpj_emit_indent(sb, depth);
  tpj_strbuf_puts(sb, "}");
}

static void tpj_emit_op(tpj_strbuf_t* sb, const tpj_graph_t* g, const tpj_emit_index_t* ix,
                        const tpj_ir_op_t* op, int depth) {
  tpj_emit_indent(sb, depth);
  for (int32_t i = 0; i < op->num_results; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_value(sb, g, op->first_result + i);
  }
  tpj_strbuf_printf(sb, " = \"%s\"(", op->name);
  tpj_emit_value_list(sb, g, op->operands, (size_t)op->num_operands);
  tpj_strbuf_puts(sb, ")");
  if (op->num_regions) {
    tpj_strbuf_puts(sb, " (");
    for (int32_t i = 0; i < op->num_regions; ++i) {
      if (i) tpj_strbuf_puts(sb, ", ");
      tpj_emit_region(sb, g, ix, op->regions[i], depth);
    }
    tpj_strbuf_puts(sb, ")");
  }
  if (op->data) {
    tpj_strbuf_puts(sb, " {");
    tpj_emit_dense(sb, op, &TPJ_IR_VAL(g, op->first_result)->type);
    tpj_strbuf_puts(sb, "}");
  } else if (op->attrs) {
    tpj_strbuf_printf(sb, " {%s}", op->attrs);
  }
  tpj_strbuf_puts(sb, " : ");
  tpj_emit_value_types(sb, g, op->operands, (size_t)op->num_operands);
  tpj_strbuf_puts(sb, " -> ");
  if (op->num_results != 1) tpj_strbuf_puts(sb, "(");
  for (int32_t i = 0; i < op->num_results; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, op->first_result + i)->type);
  }
  if (op->num_results != 1) tpj_strbuf_puts(sb, ")");
  tpj_strbuf_puts(sb, "\n");
}

/* Per-block op lists, built once per emission: first[block + 1] is the first op
 * of a block (-1 if none), next[op] the following op of the same block. */
struct tpj_emit_index_s {
  int32_t* first; /* (num_regions + 1) */
  int32_t* next;  /* (num_ops) */
};

static int tpj_emit_index_build(const tpj_graph_t* g, tpj_emit_index_t* ix) {
  ix->first = (int32_t*)malloc((g->num_regions + 1) * sizeof(int32_t));
  ix->next = (int32_t*)malloc((g->num_ops ? g->num_ops : 1) * sizeof(int32_t));
  if (!ix->first || !ix->next) return 0;
  for (size_t b = 0; b <= g->num_regions; ++b) ix->first[b] = -1;
  for (size_t i = g->num_ops; i-- > 0;) { /* build back to front: lists in op order */
    int32_t b = g->ops[i].block + 1;
    ix->next[i] = ix->first[b];
    ix->first[b] = (int32_t)i;
  }
  return 1;
}

static void tpj_emit_block(tpj_strbuf_t* sb, const tpj_graph_t* g, const tpj_emit_index_t* ix,
                           int32_t block, int depth) {
  for (int32_t i = ix->first[block + 1]; i >= 0; i = ix->next[i])
    tpj_emit_op(sb, g, ix, &g->ops[i], depth);
}

static void tpj_emit_signature(tpj_strbuf_t* sb, const tpj_graph_t* g) {
  tpj_strbuf_puts(sb, "  func.func @main(");
  for (size_t i = 0; i < g->num_params; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_strbuf_printf(sb, "%%arg%zu: ", i);
    tpj_emit_type(sb, &TPJ_IR_VAL(g, g->params[i])->type);
    if (g->param_attrs[i]) tpj_strbuf_printf(sb, " {%s}", g->param_attrs[i]);
  }
  tpj_strbuf_puts(sb, ") -> (");
  for (size_t i = 0; i < g->num_results; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, g->results[i])->type);
    if (g->result_attrs[i]) tpj_strbuf_printf(sb, " {%s}", g->result_attrs[i]);
  }
  if (g->check_result != TPJ_VALUE_NONE) { /* the runtime checks' (bad, value) pairs */
    if (g->num_results) tpj_strbuf_puts(sb, ", ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, g->check_result)->type);
    /* partitioned: every device gets the whole (bad, value) vector */
    if (g->partitioned) tpj_strbuf_puts(sb, " {mhlo.sharding = \"{replicated}\"}");
  }
  tpj_strbuf_puts(sb, ") {\n");
}

/* func.return of the results, then the check result when there is one. */
static void tpj_emit_return(tpj_strbuf_t* sb, const tpj_graph_t* g) {
  bool check = g->check_result != TPJ_VALUE_NONE;
  const tpj_value_t* cr = &g->check_result;
  tpj_strbuf_puts(sb, "    \"func.return\"(");
  tpj_emit_value_list(sb, g, g->results, g->num_results);
  if (check) {
    if (g->num_results) tpj_strbuf_puts(sb, ", ");
    tpj_emit_value(sb, g, *cr);
  }
  tpj_strbuf_puts(sb, ") : (");
  for (size_t i = 0; i < g->num_results + check; ++i) {
    if (i) tpj_strbuf_puts(sb, ", ");
    tpj_emit_type(sb, &TPJ_IR_VAL(g, i < g->num_results ? g->results[i] : *cr)->type);
  }
  tpj_strbuf_puts(sb, ") -> ()\n  }\n}\n");
}

tpj_status_t tpj_emit_stablehlo(const tpj_graph_t* g, char** out_text, size_t* out_len) {
  TPJ_CHECK_ARG(g && out_text, "emit: graph or out_text is NULL");
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(tpj_graph_verify(g), "emit"));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_puts(&sb, "module");
  if (g->num_module_attrs) {
    tpj_strbuf_puts(&sb, " attributes {");
    for (size_t i = 0; i < g->num_module_attrs; ++i)
      tpj_strbuf_printf(&sb, "%s%s", i ? ", " : "", g->module_attrs[i]);
    tpj_strbuf_puts(&sb, "}");
  }
  tpj_strbuf_puts(&sb, " {\n");
  tpj_emit_signature(&sb, g);
  tpj_emit_index_t ix;
  if (tpj_emit_index_build(g, &ix)) tpj_emit_block(&sb, g, &ix, TPJ_IR_MAIN_BLOCK, 2);
  else sb.oom = 1;
  free(ix.first);
  free(ix.next);
  tpj_emit_return(&sb, g);
  tpj_status_t s = tpj_strbuf_status(&sb);
  if (s) {
    tpj_strbuf_deinit(&sb);
    return s;
  }
  *out_text = tpj_strbuf_take(&sb, out_len);
  return NULL;
}
