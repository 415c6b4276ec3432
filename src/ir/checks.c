/* Runtime checks of a graph: the (bad, value) pairs lowerings register for
 * what they cannot prove at build time (indices in range, nonzero integer
 * divisors), packed into one extra program result, and the error a failed
 * check turns into. One mechanism for every lowering, read by every runtime. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_internal.h"

void tpj_graph_set_checks_enabled(tpj_graph_t* g, bool enabled) {
  if (g) g->checks_disabled = !enabled;
}

bool tpj_graph_checks_enabled(const tpj_graph_t* g) { return g && !g->checks_disabled; }

void tpj_graph_set_partitioned(tpj_graph_t* g, bool partitioned) {
  if (g) g->partitioned = partitioned;
}

bool tpj_graph_is_partitioned(const tpj_graph_t* g) { return g && g->partitioned; }

size_t tpj_graph_check_count(const tpj_graph_t* g) { return g ? g->num_checks : 0; }

const tpj_check_t* tpj_graph_check(const tpj_graph_t* g, size_t index) {
  if (!g || index >= g->num_checks) return NULL;
  return &g->checks[index];
}

tpj_value_t tpj_graph_check_result(const tpj_graph_t* g) {
  return g ? g->check_result : TPJ_VALUE_NONE;
}

/* Checks that v is a rank-0 value of dtype `want` in the main block. */
static tpj_status_t tpj_ir_check_scalar(const tpj_graph_t* g, const char* what, tpj_value_t v,
                                        tpj_dtype_t want) {
  const tpj_type_t* t = NULL;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, "graph_add_check", what, v, &t));
  if (t->rank != 0 || t->dtype != want) {
    char got[96];
    tpj_type_format(t, got, sizeof(got));
    return TPJ_STATUS(INVALID_ARGUMENT, "graph_add_check: %s has the wrong type (got %s, "
                      "expected tensor<%s>)", what, got, tpj_dtype_mlir(want));
  }
  return NULL;
}

tpj_status_t tpj_graph_add_check(tpj_graph_t* g, tpj_check_kind_t kind, tpj_value_t bad,
                                 tpj_value_t value, const char* message) {
  TPJ_CHECK_ARG(g && message, "graph_add_check: graph or message is NULL");
  TPJ_CHECK_ARG(kind == TPJ_CHECK_KIND_INDEX || kind == TPJ_CHECK_KIND_DIV_ZERO,
                "graph_add_check: unknown kind (got %d)", (int)kind);
  TPJ_CHECK_ARG(!g->results_set, "graph_add_check: results are already set");
  TPJ_CHECK_ARG(g->cur_block == TPJ_IR_MAIN_BLOCK,
                "graph_add_check: region %d is open (checks live in @main)", (int)g->cur_block);
  if (g->checks_disabled) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_ir_check_scalar(g, "bad", bad, TPJ_DTYPE_PRED));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_scalar(g, "value", value, TPJ_DTYPE_S64));
  if (g->num_checks == g->cap_checks) {
    size_t cap = g->cap_checks ? 2 * g->cap_checks : 4;
    tpj_check_t* c = (tpj_check_t*)realloc(g->checks, cap * sizeof(*c));
    if (c) g->checks = c;
    tpj_value_t* v = c ? (tpj_value_t*)realloc(g->check_values, 2 * cap * sizeof(*v)) : NULL;
    if (!c || !v) return TPJ_STATUS(RESOURCE_EXHAUSTED, "graph_add_check: out of memory");
    g->check_values = v;
    g->cap_checks = cap;
  }
  const char* msg = tpj_arena_strdup(&g->arena, message, strlen(message));
  if (!msg) return TPJ_STATUS(RESOURCE_EXHAUSTED, "graph_add_check: out of memory");
  g->checks[g->num_checks].kind = kind;
  g->checks[g->num_checks].message = msg;
  g->check_values[2 * g->num_checks] = bad;
  g->check_values[2 * g->num_checks + 1] = value;
  g->num_checks++;
  return NULL;
}

tpj_status_t tpj_ir_checks_pack(tpj_graph_t* g) {
  if (g->num_checks == 0) return NULL;
  size_t n = 2 * g->num_checks;
  tpj_value_t* parts = (tpj_value_t*)tpj_arena_alloc(&g->arena, n * sizeof(tpj_value_t));
  if (!parts) return TPJ_STATUS(RESOURCE_EXHAUSTED, "graph checks: out of memory");
  int64_t one = 1;
  for (size_t i = 0; i < n; ++i) {
    tpj_value_t v = g->check_values[i];
    if (i % 2 == 0) TPJ_RETURN_IF_ERROR(tpj_build_convert(g, v, TPJ_DTYPE_S64, &v));
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, v, &one, 1, &parts[i]));
  }
  return tpj_build_concatenate(g, parts, n, 0, &g->check_result);
}

tpj_status_t tpj_check_status(const tpj_check_t* check, int64_t value) {
  TPJ_CHECK_ARG(check && check->message, "check_status: check is NULL");
  const char* m = check->message;
  const char* at = strstr(m, "{}");
  char num[32];
  snprintf(num, sizeof(num), "%lld", (long long)value);
  int head = at ? (int)(at - m) : (int)strlen(m);
  const char* tail = at ? at + 2 : "";
  if (check->kind == TPJ_CHECK_KIND_INDEX) {
    return TPJ_STATUS(OUT_OF_RANGE, "%.*s%s%s", head, m, at ? num : "", tail);
  }
  return TPJ_STATUS(INVALID_ARGUMENT, "%.*s%s%s", head, m, at ? num : "", tail);
}

tpj_status_t tpj_check_results(const tpj_check_t* checks, size_t count, const int64_t* values) {
  TPJ_CHECK_ARG((checks && values) || count == 0, "check_results: checks or values is NULL");
  for (size_t i = 0; i < count; ++i) {
    if (values[2 * i] != 0) return tpj_check_status(&checks[i], values[2 * i + 1]);
  }
  return NULL;
}
