/* Builders for the StableHLO collectives: all_reduce, all_gather,
 * reduce_scatter and all_to_all over one operand, with their replica groups
 * and optional channel. Each checks the group layout and the operand's dims
 * against it, so a program the plugin would reject never reaches it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))
/* More processes than any group layout a plugin can run. */
#define TPJ_IR_MAX_PROCESSES ((size_t)1 << 20)

/* Every id in [0, num_groups * group_size) exactly once. */
static tpj_status_t tpj_ir_group_ids_check(const char* name, const tpj_collective_groups_t* cg) {
  size_t n = cg->num_groups * cg->group_size;
  unsigned char* seen = (unsigned char*)calloc(n, 1);
  if (!seen) return TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory (replica_groups)", name);
  tpj_status_t s = NULL;
  for (size_t i = 0; i < n && !s; ++i) {
    int64_t id = cg->replica_groups[i];
    size_t group = i / cg->group_size;
    if (id < 0 || (uint64_t)id >= n) {
      s = TPJ_STATUS(INVALID_ARGUMENT, "%s: replica_groups id out of range (got %lld in group "
                     "%zu, expected 0..%zu)", name, (long long)id, group, n - 1);
    } else if (seen[id]) {
      s = TPJ_STATUS(INVALID_ARGUMENT, "%s: replica_groups repeats id %lld (in group %zu, "
                     "expected each of 0..%zu once)", name, (long long)id, group, n - 1);
    } else {
      seen[id] = 1;
    }
  }
  free(seen);
  return s;
}

/* The group layout and channel of a collective. */
static tpj_status_t tpj_ir_groups_check(const char* name, const tpj_collective_groups_t* cg,
                                        bool has_global_ids) {
  TPJ_CHECK_ARG(cg, "%s: groups is NULL", name);
  TPJ_CHECK_ARG(cg->num_groups >= 1 && cg->group_size >= 1,
                "%s: replica_groups is empty (got %zu groups of %zu, expected at least one "
                "group of at least one id)", name, cg->num_groups, cg->group_size);
  TPJ_CHECK_ARG(cg->group_size <= TPJ_IR_MAX_PROCESSES / cg->num_groups,
                "%s: replica_groups is too large (got %zu groups of %zu, expected at most %zu "
                "ids)", name, cg->num_groups, cg->group_size, TPJ_IR_MAX_PROCESSES);
  TPJ_CHECK_ARG(cg->replica_groups, "%s: replica_groups is NULL", name);
  TPJ_CHECK_ARG(cg->channel_id >= 0, "%s: channel_id is negative (got %lld, expected >= 0)", name,
                (long long)cg->channel_id);
  TPJ_CHECK_ARG(has_global_ids || !cg->use_global_device_ids,
                "%s: the op has no use_global_device_ids (got true, expected false)", name);
  TPJ_CHECK_ARG(!cg->use_global_device_ids || cg->channel_id > 0,
                "%s: use_global_device_ids needs a channel_id > 0 (got %lld)", name,
                (long long)cg->channel_id);
  return tpj_ir_group_ids_check(name, cg);
}

static void tpj_ir_groups_attrs(tpj_strbuf_t* sb, const tpj_collective_groups_t* cg) {
  tpj_ir_fmt_matrix(sb, "replica_groups", cg->replica_groups, cg->num_groups, cg->group_size);
  if (cg->channel_id > 0)
    tpj_strbuf_printf(sb, ", channel_handle = #stablehlo.channel_handle<handle = %lld, type = 1>",
                      (long long)cg->channel_id);
  if (cg->use_global_device_ids) tpj_strbuf_puts(sb, ", use_global_device_ids");
}

/* `dim` (named `what`) is a dim of the operand type t. */
static tpj_status_t tpj_ir_collective_dim(const char* name, const char* what, int64_t dim,
                                          const tpj_type_t* t) {
  char a[96];
  TPJ_FMT(t, a);
  TPJ_CHECK_ARG(t->rank >= 1, "%s: operand must have rank >= 1 (got %s)", name, a);
  TPJ_CHECK_ARG(dim >= 0 && dim < t->rank, "%s: %s out of range (got %lld, expected 0..%d)", name,
                what, (long long)dim, (int)t->rank - 1);
  return NULL;
}

/* Dim `dim` of t splits into `parts` equal parts. */
static tpj_status_t tpj_ir_collective_split(const char* name, const char* what, int64_t dim,
                                            const tpj_type_t* t, size_t parts) {
  int64_t size = t->dims[dim];
  TPJ_CHECK_ARG(size % (int64_t)parts == 0,
                "%s: %s %lld (size %lld) does not split into %zu equal parts (got remainder "
                "%lld, expected 0)", name, what, (long long)dim, (long long)size, parts,
                (long long)(size % (int64_t)parts));
  return NULL;
}

/* Checks the operand (its type goes to out_type) and the group layout. */
static tpj_status_t tpj_ir_collective_begin(const tpj_graph_t* g, const char* name,
                                            tpj_value_t x, const tpj_collective_groups_t* cg,
                                            bool has_global_ids, const tpj_type_t** out_type) {
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, out_type));
  return tpj_ir_groups_check(name, cg, has_global_ids);
}

/* Appends the op with the groups' attributes after `extra` (may be NULL). */
static tpj_status_t tpj_ir_collective_append(tpj_graph_t* g, const char* name, tpj_value_t x,
                                             const tpj_type_t* rt,
                                             const tpj_collective_groups_t* cg,
                                             const char* extra, const int32_t* body,
                                             tpj_value_t* out) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  if (extra) tpj_strbuf_puts(&sb, extra);
  tpj_ir_groups_attrs(&sb, cg);
  tpj_ir_op_desc_t d = {.name = name, .operands = &x, .num_operands = 1, .result_types = rt,
                        .num_results = 1, .regions = body, .num_regions = body ? 1 : 0};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

/* ------------------------------------------------------------ all_reduce -- */

tpj_status_t tpj_build_all_reduce(tpj_graph_t* g, tpj_value_t x,
                                  const tpj_collective_groups_t* groups, int32_t body,
                                  tpj_value_t* out) {
  const char* name = "stablehlo.all_reduce";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, true, &tx));
  tpj_dtype_t dts[2] = {tx->dtype, tx->dtype};
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "body", body, dts, 2, dts, 1));
  return tpj_ir_collective_append(g, name, x, tx, groups, NULL, &body, out);
}

tpj_status_t tpj_build_all_reduce_simple(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                                         const tpj_collective_groups_t* groups, tpj_value_t* out) {
  const char* name = "stablehlo.all_reduce";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, true, &tx));
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_body(g, name, tx->dtype, kind, &body));
  return tpj_build_all_reduce(g, x, groups, body, out);
}

/* ------------------------------------------------------------ all_gather -- */

tpj_status_t tpj_build_all_gather(tpj_graph_t* g, tpj_value_t x, int64_t all_gather_dim,
                                  const tpj_collective_groups_t* groups, tpj_value_t* out) {
  const char* name = "stablehlo.all_gather";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, true, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_dim(name, "all_gather_dim", all_gather_dim, tx));
  tpj_type_t rt = *tx;
  rt.dims[all_gather_dim] *= (int64_t)groups->group_size;
  char extra[64];
  snprintf(extra, sizeof(extra), "all_gather_dim = %lld : i64", (long long)all_gather_dim);
  return tpj_ir_collective_append(g, name, x, &rt, groups, extra, NULL, out);
}

/* -------------------------------------------------------- reduce_scatter -- */

/* The result type of a reduce_scatter (operand and groups already checked). */
static tpj_status_t tpj_ir_reduce_scatter_type(const char* name, const tpj_type_t* tx,
                                               int64_t scatter_dimension,
                                               const tpj_collective_groups_t* cg,
                                               tpj_type_t* out_type) {
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_dim(name, "scatter_dimension", scatter_dimension, tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_split(name, "scatter_dimension", scatter_dimension, tx,
                                              cg->group_size));
  *out_type = *tx;
  out_type->dims[scatter_dimension] /= (int64_t)cg->group_size;
  return NULL;
}

tpj_status_t tpj_build_reduce_scatter(tpj_graph_t* g, tpj_value_t x, int64_t scatter_dimension,
                                      const tpj_collective_groups_t* groups, int32_t body,
                                      tpj_value_t* out) {
  const char* name = "stablehlo.reduce_scatter";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, true, &tx));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_scatter_type(name, tx, scatter_dimension, groups, &rt));
  tpj_dtype_t dts[2] = {tx->dtype, tx->dtype};
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "body", body, dts, 2, dts, 1));
  char extra[64];
  snprintf(extra, sizeof(extra), "scatter_dimension = %lld : i64", (long long)scatter_dimension);
  return tpj_ir_collective_append(g, name, x, &rt, groups, extra, &body, out);
}

tpj_status_t tpj_build_reduce_scatter_simple(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                                             int64_t scatter_dimension,
                                             const tpj_collective_groups_t* groups,
                                             tpj_value_t* out) {
  const char* name = "stablehlo.reduce_scatter";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, true, &tx));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_scatter_type(name, tx, scatter_dimension, groups, &rt));
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_body(g, name, tx->dtype, kind, &body));
  return tpj_build_reduce_scatter(g, x, scatter_dimension, groups, body, out);
}

/* ------------------------------------------------------------ all_to_all -- */

tpj_status_t tpj_build_all_to_all(tpj_graph_t* g, tpj_value_t x, int64_t split_dimension,
                                  int64_t concat_dimension, int64_t split_count,
                                  const tpj_collective_groups_t* groups, tpj_value_t* out) {
  const char* name = "stablehlo.all_to_all";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_begin(g, name, x, groups, false, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_dim(name, "split_dimension", split_dimension, tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_dim(name, "concat_dimension", concat_dimension, tx));
  TPJ_CHECK_ARG(split_count == (int64_t)groups->group_size,
                "%s: split_count differs from the group size (got %lld, expected %zu)", name,
                (long long)split_count, groups->group_size);
  TPJ_RETURN_IF_ERROR(tpj_ir_collective_split(name, "split_dimension", split_dimension, tx,
                                              groups->group_size));
  tpj_type_t rt = *tx;
  rt.dims[split_dimension] /= split_count;
  rt.dims[concat_dimension] *= split_count;
  char extra[128];
  snprintf(extra, sizeof(extra),
           "split_dimension = %lld : i64, concat_dimension = %lld : i64, split_count = %lld : i64",
           (long long)split_dimension, (long long)concat_dimension, (long long)split_count);
  return tpj_ir_collective_append(g, name, x, &rt, groups, extra, NULL, out);
}
