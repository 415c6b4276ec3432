/* Builders for gather and scatter: StableHLO dimension-number validation and
 * shape inference, including the optional batching dims (emitted only when
 * non-empty, which keeps the text parseable by older plugins). */
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))

static bool tpj_ir_has(const int64_t* v, size_t n, int64_t x) {
  for (size_t i = 0; i < n; ++i)
    if (v[i] == x) return true;
  return false;
}

static void tpj_ir_dn_field(tpj_strbuf_t* sb, bool* first, const char* name, const int64_t* v,
                            size_t n, bool always) {
  if (!n && !always) return;
  tpj_strbuf_printf(sb, "%s%s = ", *first ? "" : ", ", name);
  tpj_ir_fmt_list(sb, v, n);
  *first = false;
}

/* Indices: integer tensor; returns the index-vector size and batch dims. */
static tpj_status_t tpj_ir_indices(const char* name, const tpj_type_t* ti, int64_t ivd,
                                   int64_t* out_vec, int64_t* batch, size_t* num_batch) {
  char a[96];
  TPJ_FMT(ti, a);
  TPJ_CHECK_ARG(tpj_dtype_is_signed_int(ti->dtype) || tpj_dtype_is_unsigned_int(ti->dtype),
                "%s: indices must be integers (got %s)", name, a);
  TPJ_CHECK_ARG(ivd >= 0 && ivd <= ti->rank, "%s: index_vector_dim out of range (got %lld, expected 0..%d)",
                name, (long long)ivd, (int)ti->rank);
  *out_vec = ivd == ti->rank ? 1 : ti->dims[ivd];
  *num_batch = 0;
  for (int32_t d = 0; d < ti->rank; ++d)
    if (d != ivd) batch[(*num_batch)++] = ti->dims[d];
  return NULL;
}

/* Validates gather dimension numbers and infers the result type. */
static tpj_status_t tpj_ir_gather_type(const char* name, const tpj_type_t* to,
                                       const tpj_type_t* ti, const tpj_gather_dims_t* dn,
                                       tpj_type_t* out_type) {
  int64_t vec, batch[TPJ_MAX_RANK];
  size_t nb;
  TPJ_RETURN_IF_ERROR(tpj_ir_indices(name, ti, dn->index_vector_dim, &vec, batch, &nb));
  TPJ_CHECK_ARG(dn->num_slice_sizes == (size_t)to->rank && (to->rank == 0 || dn->slice_sizes),
                "%s: slice_sizes length differs from the operand rank (got %zu, expected %d)", name,
                dn->num_slice_sizes, (int)to->rank);
  TPJ_CHECK_ARG(dn->num_start_index_map == (size_t)vec,
                "%s: start_index_map length differs from the index vector size (got %zu, expected %lld)",
                name, dn->num_start_index_map, (long long)vec);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "start_index_map", dn->start_index_map, dn->num_start_index_map, to->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "collapsed_slice_dims", dn->collapsed_slice_dims, dn->num_collapsed_slice_dims, to->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "operand_batching_dims", dn->operand_batching_dims, dn->num_operand_batching_dims, to->rank));
  TPJ_CHECK_ARG(dn->num_operand_batching_dims == dn->num_start_indices_batching_dims,
                "%s: operand_batching_dims and start_indices_batching_dims lengths differ (got %zu and %zu)",
                name, dn->num_operand_batching_dims, dn->num_start_indices_batching_dims);
  for (size_t i = 0; i < (size_t)to->rank; ++i)
    TPJ_CHECK_ARG(dn->slice_sizes[i] >= 0 && dn->slice_sizes[i] <= to->dims[i],
                  "%s: slice_sizes[%zu] out of range (got %lld, expected 0..%lld)", name, i,
                  (long long)dn->slice_sizes[i], (long long)to->dims[i]);
  for (size_t i = 0; i < dn->num_collapsed_slice_dims; ++i)
    TPJ_CHECK_ARG(dn->slice_sizes[dn->collapsed_slice_dims[i]] <= 1,
                  "%s: collapsed dim %lld must have slice size <= 1 (got %lld)", name,
                  (long long)dn->collapsed_slice_dims[i],
                  (long long)dn->slice_sizes[dn->collapsed_slice_dims[i]]);
  size_t n_off = (size_t)to->rank - dn->num_collapsed_slice_dims - dn->num_operand_batching_dims;
  TPJ_CHECK_ARG(dn->num_offset_dims == n_off,
                "%s: offset_dims length mismatch (got %zu, expected operand rank - collapsed - batching = %zu)",
                name, dn->num_offset_dims, n_off);
  size_t out_rank = nb + n_off;
  TPJ_CHECK_ARG(out_rank <= TPJ_MAX_RANK, "%s: result rank exceeds %d", name, TPJ_MAX_RANK);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "offset_dims", dn->offset_dims, n_off, (int64_t)out_rank));
  for (size_t i = 1; i < n_off; ++i)
    TPJ_CHECK_ARG(dn->offset_dims[i] > dn->offset_dims[i - 1], "%s: offset_dims must be sorted", name);
  *out_type = tpj_type_scalar(to->dtype);
  out_type->rank = (int32_t)out_rank;
  size_t bi = 0, oi = 0;
  for (size_t d = 0; d < out_rank; ++d) {
    if (!tpj_ir_has(dn->offset_dims, n_off, (int64_t)d)) {
      out_type->dims[d] = batch[bi++];
      continue;
    }
    while (tpj_ir_has(dn->collapsed_slice_dims, dn->num_collapsed_slice_dims, (int64_t)oi) ||
           tpj_ir_has(dn->operand_batching_dims, dn->num_operand_batching_dims, (int64_t)oi))
      oi++;
    out_type->dims[d] = dn->slice_sizes[oi++];
  }
  return NULL;
}

tpj_status_t tpj_build_gather(tpj_graph_t* g, tpj_value_t operand, tpj_value_t indices,
                              const tpj_gather_dims_t* dn, tpj_value_t* out) {
  const char* name = "stablehlo.gather";
  TPJ_CHECK_ARG(g && dn && out, "%s: graph, dims or out is NULL", name);
  const tpj_type_t *to, *ti;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", operand, &to));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "start_indices", indices, &ti));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_ir_gather_type(name, to, ti, dn, &rt));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  bool first = true;
  tpj_strbuf_puts(&sb, "dimension_numbers = #stablehlo.gather<");
  tpj_ir_dn_field(&sb, &first, "offset_dims", dn->offset_dims, dn->num_offset_dims, false);
  tpj_ir_dn_field(&sb, &first, "collapsed_slice_dims", dn->collapsed_slice_dims, dn->num_collapsed_slice_dims, false);
  tpj_ir_dn_field(&sb, &first, "operand_batching_dims", dn->operand_batching_dims, dn->num_operand_batching_dims, false);
  tpj_ir_dn_field(&sb, &first, "start_indices_batching_dims", dn->start_indices_batching_dims, dn->num_start_indices_batching_dims, false);
  tpj_ir_dn_field(&sb, &first, "start_index_map", dn->start_index_map, dn->num_start_index_map, false);
  tpj_strbuf_printf(&sb, "%sindex_vector_dim = %lld>", first ? "" : ", ", (long long)dn->index_vector_dim);
  tpj_strbuf_printf(&sb, ", indices_are_sorted = %s", dn->indices_are_sorted ? "true" : "false");
  tpj_ir_fmt_array(&sb, "slice_sizes", dn->slice_sizes, dn->num_slice_sizes);
  tpj_value_t ops[2] = {operand, indices};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 2, .result_types = &rt, .num_results = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

static tpj_status_t tpj_ir_scatter_check(const char* name, const tpj_type_t* to, const tpj_type_t* ti,
                                         const tpj_type_t* tu, const tpj_scatter_dims_t* dn) {
  int64_t vec, batch[TPJ_MAX_RANK];
  size_t nb;
  TPJ_RETURN_IF_ERROR(tpj_ir_indices(name, ti, dn->index_vector_dim, &vec, batch, &nb));
  char a[96], b[96];
  TPJ_FMT(to, a);
  TPJ_FMT(tu, b);
  TPJ_CHECK_ARG(tu->dtype == to->dtype, "%s: updates dtype differs from the operand (got %s for operand %s)", name, b, a);
  TPJ_CHECK_ARG(dn->num_scatter_dims_to_operand_dims == (size_t)vec,
                "%s: scatter_dims_to_operand_dims length differs from the index vector size (got %zu, expected %lld)",
                name, dn->num_scatter_dims_to_operand_dims, (long long)vec);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "scatter_dims_to_operand_dims", dn->scatter_dims_to_operand_dims, dn->num_scatter_dims_to_operand_dims, to->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "inserted_window_dims", dn->inserted_window_dims, dn->num_inserted_window_dims, to->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "input_batching_dims", dn->input_batching_dims, dn->num_input_batching_dims, to->rank));
  TPJ_CHECK_ARG(dn->num_input_batching_dims == dn->num_scatter_indices_batching_dims,
                "%s: input_batching_dims and scatter_indices_batching_dims lengths differ (got %zu and %zu)",
                name, dn->num_input_batching_dims, dn->num_scatter_indices_batching_dims);
  size_t nw = dn->num_update_window_dims;
  TPJ_CHECK_ARG(nw + dn->num_inserted_window_dims + dn->num_input_batching_dims == (size_t)to->rank,
                "%s: update_window_dims + inserted_window_dims + input_batching_dims must cover the operand rank "
                "(got %zu + %zu + %zu, expected %d)", name, nw, dn->num_inserted_window_dims,
                dn->num_input_batching_dims, (int)to->rank);
  TPJ_CHECK_ARG((size_t)tu->rank == nb + nw, "%s: updates rank mismatch (got %s, expected rank %zu)", name, b, nb + nw);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "update_window_dims", dn->update_window_dims, nw, tu->rank));
  size_t bi = 0, oi = 0;
  for (int32_t d = 0; d < tu->rank; ++d) {
    if (tpj_ir_has(dn->update_window_dims, nw, d)) {
      while (tpj_ir_has(dn->inserted_window_dims, dn->num_inserted_window_dims, (int64_t)oi) ||
             tpj_ir_has(dn->input_batching_dims, dn->num_input_batching_dims, (int64_t)oi))
        oi++;
      TPJ_CHECK_ARG(tu->dims[d] <= to->dims[oi], "%s: updates window dim %d is larger than operand dim %zu (got %s for operand %s)",
                    name, (int)d, oi, b, a);
      oi++;
    } else {
      TPJ_CHECK_ARG(tu->dims[d] == batch[bi], "%s: updates dim %d must equal the indices batch size %lld (got %s)",
                    name, (int)d, (long long)batch[bi], b);
      bi++;
    }
  }
  return NULL;
}

tpj_status_t tpj_build_scatter(tpj_graph_t* g, tpj_value_t operand, tpj_value_t indices,
                               tpj_value_t updates, const tpj_scatter_dims_t* dn, int32_t body,
                               tpj_value_t* out) {
  const char* name = "stablehlo.scatter";
  TPJ_CHECK_ARG(g && dn && out, "%s: graph, dims or out is NULL", name);
  const tpj_type_t *to, *ti, *tu;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", operand, &to));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "scatter_indices", indices, &ti));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "updates", updates, &tu));
  TPJ_RETURN_IF_ERROR(tpj_ir_scatter_check(name, to, ti, tu, dn));
  tpj_dtype_t dts[2] = {to->dtype, to->dtype};
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "body", body, dts, 2, dts, 1));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  bool first = true;
  tpj_strbuf_puts(&sb, "scatter_dimension_numbers = #stablehlo.scatter<");
  tpj_ir_dn_field(&sb, &first, "update_window_dims", dn->update_window_dims, dn->num_update_window_dims, false);
  tpj_ir_dn_field(&sb, &first, "inserted_window_dims", dn->inserted_window_dims, dn->num_inserted_window_dims, false);
  tpj_ir_dn_field(&sb, &first, "input_batching_dims", dn->input_batching_dims, dn->num_input_batching_dims, false);
  tpj_ir_dn_field(&sb, &first, "scatter_indices_batching_dims", dn->scatter_indices_batching_dims, dn->num_scatter_indices_batching_dims, false);
  tpj_ir_dn_field(&sb, &first, "scatter_dims_to_operand_dims", dn->scatter_dims_to_operand_dims, dn->num_scatter_dims_to_operand_dims, false);
  tpj_strbuf_printf(&sb, "%sindex_vector_dim = %lld>", first ? "" : ", ", (long long)dn->index_vector_dim);
  tpj_strbuf_printf(&sb, ", indices_are_sorted = %s, unique_indices = %s",
                    dn->indices_are_sorted ? "true" : "false", dn->unique_indices ? "true" : "false");
  tpj_value_t ops[3] = {operand, indices, updates};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 3, .result_types = to,
                        .num_results = 1, .regions = &body, .num_regions = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}
