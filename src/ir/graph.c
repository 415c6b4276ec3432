/* Graph storage: values, ops, regions, params and results of @main.
 * Builders (build_*.c) type-check and then call tpj_ir_op_append; this file
 * owns scoping (which values are visible in which block) and region nesting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_internal.h"

/* Grows *p (elements of `elem` bytes) so that `need` fit. 0 on OOM. */
static int tpj_ir_grow(void** p, size_t* cap, size_t need, size_t elem) {
  if (need <= *cap) return 1;
  size_t c = *cap ? *cap * 2 : 16;
  while (c < need) c *= 2;
  void* q = realloc(*p, c * elem);
  if (!q) return 0;
  *p = q;
  *cap = c;
  return 1;
}

#define TPJ_IR_OOM(what) TPJ_STATUS(RESOURCE_EXHAUSTED, "graph: out of memory (%s)", what)

tpj_status_t tpj_graph_create(tpj_graph_t** out_graph) {
  TPJ_CHECK_ARG(out_graph, "graph: out_graph is NULL");
  tpj_graph_t* g = (tpj_graph_t*)calloc(1, sizeof(*g));
  if (!g) return TPJ_IR_OOM("graph");
  tpj_arena_init(&g->arena, 0);
  g->cur_block = TPJ_IR_MAIN_BLOCK;
  g->check_result = TPJ_VALUE_NONE;
  *out_graph = g;
  return NULL;
}

void tpj_graph_destroy(tpj_graph_t* g) {
  if (!g) return;
  tpj_arena_deinit(&g->arena);
  free(g->value_chunks);
  free(g->ops);
  free(g->regions);
  free(g->params);
  free(g->param_attrs);
  free(g->module_attrs);
  free(g->checks);
  free(g->check_values);
  free(g);
}

/* Appends `count` values of the given types to `block`. */
static tpj_status_t tpj_ir_new_values(tpj_graph_t* g, const tpj_type_t* types, size_t count,
                                      int32_t block, int32_t op, tpj_value_t* out_first) {
  if (g->num_values + count > (size_t)INT32_MAX) return TPJ_IR_OOM("too many values");
  while (g->cap_values < g->num_values + count) {
    if (!tpj_ir_grow((void**)&g->value_chunks, &g->cap_chunks, g->cap_values / TPJ_IR_CHUNK + 1,
                     sizeof(tpj_ir_value_t*)))
      return TPJ_IR_OOM("values");
    tpj_ir_value_t* chunk =
        (tpj_ir_value_t*)tpj_arena_alloc(&g->arena, TPJ_IR_CHUNK * sizeof(tpj_ir_value_t));
    if (!chunk) return TPJ_IR_OOM("values");
    g->value_chunks[g->cap_values / TPJ_IR_CHUNK] = chunk;
    g->cap_values += TPJ_IR_CHUNK;
  }
  *out_first = (tpj_value_t)g->num_values;
  for (size_t i = 0; i < count; ++i) {
    tpj_ir_value_t* v = TPJ_IR_VAL(g, g->num_values);
    g->num_values++;
    v->type = types[i];
    v->block = block;
    v->op = op;
    v->param_index = -1;
  }
  return NULL;
}

static tpj_status_t tpj_ir_check_type(const char* what, const tpj_type_t* t) {
  TPJ_CHECK_ARG(t, "%s: type is NULL", what);
  TPJ_CHECK_ARG(t->dtype > TPJ_DTYPE_INVALID && t->dtype < TPJ_DTYPE_COUNT_,
                "%s: invalid dtype (got %d)", what, (int)t->dtype);
  TPJ_CHECK_ARG(t->rank >= 0 && t->rank <= TPJ_MAX_RANK,
                "%s: invalid rank (got %d, expected 0..%d)", what, (int)t->rank, TPJ_MAX_RANK);
  for (int32_t i = 0; i < t->rank; ++i)
    TPJ_CHECK_ARG(t->dims[i] >= 0, "%s: negative dim %d (got %lld)", what, (int)i,
                  (long long)t->dims[i]);
  return NULL;
}

tpj_status_t tpj_graph_add_param(tpj_graph_t* g, const tpj_type_t* type,
                                 tpj_value_t* out_value) {
  TPJ_CHECK_ARG(g && out_value, "graph_add_param: graph or out_value is NULL");
  TPJ_RETURN_IF_ERROR(tpj_ir_check_type("graph_add_param", type));
  TPJ_CHECK_ARG(g->cur_block == TPJ_IR_MAIN_BLOCK,
                "graph_add_param: a region is open (got region %d, expected none)",
                (int)g->cur_block);
  TPJ_CHECK_ARG(!g->results_set, "graph_add_param: results are already set");
  size_t cap = g->cap_params;
  if (!tpj_ir_grow((void**)&g->params, &cap, g->num_params + 1, sizeof(tpj_value_t)))
    return TPJ_IR_OOM("params");
  cap = g->cap_params;
  if (!tpj_ir_grow((void**)&g->param_attrs, &cap, g->num_params + 1, sizeof(char*)))
    return TPJ_IR_OOM("params");
  g->cap_params = cap;
  tpj_value_t v;
  TPJ_RETURN_IF_ERROR(tpj_ir_new_values(g, type, 1, TPJ_IR_MAIN_BLOCK, -1, &v));
  TPJ_IR_VAL(g, v)->param_index = (int32_t)g->num_params;
  g->params[g->num_params] = v;
  g->param_attrs[g->num_params] = NULL;
  g->num_params++;
  *out_value = v;
  return NULL;
}

tpj_status_t tpj_ir_operand(const tpj_graph_t* g, const char* op, const char* what,
                            tpj_value_t v, const tpj_type_t** out_type) {
  TPJ_CHECK_ARG(v >= 0 && (size_t)v < g->num_values,
                "%s: %s is not a value of this graph (got %d, expected 0..%zu)", op, what,
                (int)v, g->num_values ? g->num_values - 1 : 0);
  const tpj_ir_value_t* val = TPJ_IR_VAL(g, v);
  TPJ_CHECK_ARG(val->block == g->cur_block,
                "%s: %s (%%%d) is defined outside the current region (defined in block %d, "
                "used in block %d; region bodies must be self-contained)",
                op, what, (int)v, (int)val->block, (int)g->cur_block);
  if (out_type) *out_type = &val->type;
  return NULL;
}

tpj_status_t tpj_graph_set_results(tpj_graph_t* g, const tpj_value_t* values, size_t count) {
  TPJ_CHECK_ARG(g, "graph_set_results: graph is NULL");
  TPJ_CHECK_ARG(!g->results_set, "graph_set_results: results are already set");
  TPJ_CHECK_ARG(g->cur_block == TPJ_IR_MAIN_BLOCK,
                "graph_set_results: region %d is still open", (int)g->cur_block);
  TPJ_CHECK_ARG(count == 0 || values, "graph_set_results: values is NULL");
  for (size_t i = 0; i < count; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "result %zu", i);
    TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, "func.return", what, values[i], NULL));
  }
  TPJ_RETURN_IF_ERROR(tpj_ir_checks_pack(g));
  size_t n = count ? count : 1;
  g->results = (tpj_value_t*)tpj_arena_alloc(&g->arena, n * sizeof(tpj_value_t));
  g->result_attrs = (const char**)tpj_arena_alloc(&g->arena, n * sizeof(char*));
  if (!g->results || !g->result_attrs) return TPJ_IR_OOM("results");
  if (count) memcpy(g->results, values, count * sizeof(tpj_value_t));
  g->num_results = count;
  g->results_set = true;
  return NULL;
}

tpj_status_t tpj_graph_set_param_attr(tpj_graph_t* g, size_t index, const char* attr) {
  TPJ_CHECK_ARG(g && attr, "graph_set_param_attr: graph or attr is NULL");
  TPJ_CHECK_ARG(index < g->num_params,
                "graph_set_param_attr: index out of range (got %zu, expected < %zu)", index,
                g->num_params);
  g->param_attrs[index] = tpj_arena_strdup(&g->arena, attr, strlen(attr));
  return g->param_attrs[index] ? NULL : TPJ_IR_OOM("param attr");
}

tpj_status_t tpj_graph_set_result_attr(tpj_graph_t* g, size_t index, const char* attr) {
  TPJ_CHECK_ARG(g && attr, "graph_set_result_attr: graph or attr is NULL");
  TPJ_CHECK_ARG(g->results_set, "graph_set_result_attr: results are not set yet");
  TPJ_CHECK_ARG(index < g->num_results,
                "graph_set_result_attr: index out of range (got %zu, expected < %zu)", index,
                g->num_results);
  g->result_attrs[index] = tpj_arena_strdup(&g->arena, attr, strlen(attr));
  return g->result_attrs[index] ? NULL : TPJ_IR_OOM("result attr");
}

tpj_status_t tpj_graph_add_module_attr(tpj_graph_t* g, const char* attr) {
  TPJ_CHECK_ARG(g && attr, "graph_add_module_attr: graph or attr is NULL");
  if (!tpj_ir_grow((void**)&g->module_attrs, &g->cap_module_attrs, g->num_module_attrs + 1,
                   sizeof(char*)))
    return TPJ_IR_OOM("module attrs");
  const char* s = tpj_arena_strdup(&g->arena, attr, strlen(attr));
  if (!s) return TPJ_IR_OOM("module attr");
  g->module_attrs[g->num_module_attrs++] = s;
  return NULL;
}

const tpj_type_t* tpj_graph_value_type(const tpj_graph_t* g, tpj_value_t v) {
  if (!g || v < 0 || (size_t)v >= g->num_values) return NULL;
  return &TPJ_IR_VAL(g, v)->type;
}

size_t tpj_graph_param_count(const tpj_graph_t* g) { return g ? g->num_params : 0; }
size_t tpj_graph_result_count(const tpj_graph_t* g) { return g ? g->num_results : 0; }
size_t tpj_graph_op_count(const tpj_graph_t* g) { return g ? g->num_ops : 0; }

const tpj_type_t* tpj_graph_result_type(const tpj_graph_t* g, size_t index) {
  if (!g || index >= g->num_results) return NULL;
  return &TPJ_IR_VAL(g, g->results[index])->type;
}

/* ---------------------------------------------------------------- regions -- */

tpj_status_t tpj_graph_region_begin(tpj_graph_t* g, const tpj_type_t* arg_types,
                                    size_t count, tpj_value_t* out_args) {
  TPJ_CHECK_ARG(g, "region_begin: graph is NULL");
  TPJ_CHECK_ARG(count == 0 || (arg_types && out_args), "region_begin: arg_types or out_args is NULL");
  for (size_t i = 0; i < count; ++i) TPJ_RETURN_IF_ERROR(tpj_ir_check_type("region_begin", &arg_types[i]));
  if (!tpj_ir_grow((void**)&g->regions, &g->cap_regions, g->num_regions + 1,
                   sizeof(tpj_ir_region_t)))
    return TPJ_IR_OOM("regions");
  int32_t r = (int32_t)g->num_regions;
  tpj_value_t first = (tpj_value_t)g->num_values;
  if (count) TPJ_RETURN_IF_ERROR(tpj_ir_new_values(g, arg_types, count, r, -1, &first));
  tpj_ir_region_t* reg = &g->regions[g->num_regions++];
  memset(reg, 0, sizeof(*reg));
  reg->parent = g->cur_block;
  reg->first_arg = first;
  reg->num_args = (int32_t)count;
  reg->owner_op = -1;
  for (size_t i = 0; i < count; ++i) out_args[i] = first + (tpj_value_t)i;
  g->cur_block = r;
  return NULL;
}

tpj_status_t tpj_graph_region_end(tpj_graph_t* g, const tpj_value_t* results, size_t count,
                                  int32_t* out_region) {
  TPJ_CHECK_ARG(g && out_region, "region_end: graph or out_region is NULL");
  TPJ_CHECK_ARG(g->cur_block != TPJ_IR_MAIN_BLOCK, "region_end: no region is open");
  TPJ_CHECK_ARG(count >= 1 && results, "region_end: a region must return at least one value (got %zu)", count);
  for (size_t i = 0; i < count; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "result %zu", i);
    TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, "stablehlo.return", what, results[i], NULL));
  }
  tpj_value_t* res = (tpj_value_t*)tpj_arena_alloc(&g->arena, count * sizeof(tpj_value_t));
  if (!res) return TPJ_IR_OOM("region results");
  memcpy(res, results, count * sizeof(tpj_value_t));
  tpj_ir_region_t* reg = &g->regions[g->cur_block];
  reg->results = res;
  reg->num_results = (int32_t)count;
  reg->closed = true;
  *out_region = g->cur_block;
  g->cur_block = reg->parent;
  return NULL;
}

tpj_status_t tpj_ir_region_check(const tpj_graph_t* g, const char* op, const char* what,
                                 int32_t region, const tpj_dtype_t* arg_dtypes,
                                 size_t num_args, const tpj_dtype_t* result_dtypes,
                                 size_t num_results) {
  TPJ_CHECK_ARG(region >= 0 && (size_t)region < g->num_regions,
                "%s: %s is not a region of this graph (got %d)", op, what, (int)region);
  const tpj_ir_region_t* r = &g->regions[region];
  TPJ_CHECK_ARG(r->closed, "%s: %s (region %d) is still open", op, what, (int)region);
  TPJ_CHECK_ARG(r->owner_op < 0, "%s: %s (region %d) is already used by op %d", op, what,
                (int)region, (int)r->owner_op);
  TPJ_CHECK_ARG(r->parent == g->cur_block,
                "%s: %s (region %d) was built in block %d, expected the current block %d", op,
                what, (int)region, (int)r->parent, (int)g->cur_block);
  TPJ_CHECK_ARG((size_t)r->num_args == num_args,
                "%s: %s takes the wrong number of arguments (got %d, expected %zu)", op, what,
                (int)r->num_args, num_args);
  TPJ_CHECK_ARG((size_t)r->num_results == num_results,
                "%s: %s returns the wrong number of values (got %d, expected %zu)", op, what,
                (int)r->num_results, num_results);
  for (size_t i = 0; i < num_args + num_results; ++i) {
    bool is_arg = i < num_args;
    tpj_value_t v = is_arg ? r->first_arg + (tpj_value_t)i : r->results[i - num_args];
    tpj_type_t want = tpj_type_scalar(is_arg ? arg_dtypes[i] : result_dtypes[i - num_args]);
    const tpj_type_t* got = &TPJ_IR_VAL(g, v)->type;
    if (!tpj_type_equal(got, &want)) {
      char a[96], b[96];
      tpj_type_format(got, a, sizeof(a));
      tpj_type_format(&want, b, sizeof(b));
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: %s %s %zu has the wrong type (got %s, expected %s)",
                        op, what, is_arg ? "argument" : "result",
                        is_arg ? i : i - num_args, a, b);
    }
  }
  return NULL;
}

tpj_status_t tpj_ir_op_append(tpj_graph_t* g, const tpj_ir_op_desc_t* d,
                              tpj_value_t* out_results) {
  if (!tpj_ir_grow((void**)&g->ops, &g->cap_ops, g->num_ops + 1, sizeof(tpj_ir_op_t)))
    return TPJ_IR_OOM("ops");
  tpj_ir_op_t op;
  memset(&op, 0, sizeof(op));
  op.name = d->name;
  op.block = g->cur_block;
  if (d->num_operands) {
    tpj_value_t* ops = (tpj_value_t*)tpj_arena_alloc(&g->arena, d->num_operands * sizeof(tpj_value_t));
    if (!ops) return TPJ_IR_OOM("operands");
    memcpy(ops, d->operands, d->num_operands * sizeof(tpj_value_t));
    op.operands = ops;
  }
  op.num_operands = (int32_t)d->num_operands;
  if (d->num_regions) {
    int32_t* regs = (int32_t*)tpj_arena_alloc(&g->arena, d->num_regions * sizeof(int32_t));
    if (!regs) return TPJ_IR_OOM("regions");
    memcpy(regs, d->regions, d->num_regions * sizeof(int32_t));
    op.regions = regs;
  }
  op.num_regions = (int32_t)d->num_regions;
  if (d->attrs && d->attrs[0]) {
    op.attrs = tpj_arena_strdup(&g->arena, d->attrs, strlen(d->attrs));
    if (!op.attrs) return TPJ_IR_OOM("attributes");
  }
  if (d->data) {
    void* data = tpj_arena_alloc(&g->arena, d->nbytes);
    if (!data) return TPJ_IR_OOM("constant data");
    memcpy(data, d->data, d->nbytes);
    op.data = data;
    op.nbytes = d->nbytes;
    op.splat = d->splat;
  }
  int32_t index = (int32_t)g->num_ops;
  TPJ_RETURN_IF_ERROR(tpj_ir_new_values(g, d->result_types, d->num_results, g->cur_block,
                                        index, &op.first_result));
  op.num_results = (int32_t)d->num_results;
  for (size_t i = 0; i < d->num_regions; ++i) g->regions[d->regions[i]].owner_op = index;
  g->ops[g->num_ops++] = op;
  for (size_t i = 0; i < d->num_results; ++i) out_results[i] = op.first_result + (tpj_value_t)i;
  return NULL;
}
