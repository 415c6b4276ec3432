/* Builders for shape ops: broadcast_in_dim, reshape, transpose, slice,
 * dynamic_slice, dynamic_update_slice, concatenate, pad and reverse. Each
 * validates dims/bounds against the operand type and infers the result. */
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))

static tpj_status_t tpj_ir_one(tpj_graph_t* g, const char* name, const tpj_value_t* ops,
                               size_t n, const tpj_type_t* rt, tpj_strbuf_t* sb,
                               tpj_value_t* out) {
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = n,
                        .result_types = rt, .num_results = 1};
  return tpj_ir_append_with_attrs(g, &d, sb, out);
}

tpj_status_t tpj_build_broadcast_in_dim(tpj_graph_t* g, tpj_value_t x, const int64_t* out_dims,
                                        size_t out_rank, const int64_t* bdims,
                                        tpj_value_t* out) {
  const char* name = "stablehlo.broadcast_in_dim";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(tpj_type_init(tx->dtype, out_dims, out_rank, &rt), "%s", name));
  TPJ_CHECK_ARG(out_rank >= (size_t)tx->rank,
                "%s: result rank is smaller than the operand rank (got %zu, expected >= %d)",
                name, out_rank, (int)tx->rank);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "broadcast_dimensions", bdims, (size_t)tx->rank,
                                        (int64_t)out_rank));
  for (int32_t i = 0; i < tx->rank; ++i) {
    int64_t od = out_dims[bdims[i]];
    TPJ_CHECK_ARG(tx->dims[i] == 1 || tx->dims[i] == od,
                  "%s: operand dim %d (size %lld) cannot broadcast to result dim %lld "
                  "(size %lld, expected 1 or equal sizes)",
                  name, (int)i, (long long)tx->dims[i], (long long)bdims[i], (long long)od);
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "broadcast_dimensions", bdims, (size_t)tx->rank);
  return tpj_ir_one(g, name, &x, 1, &rt, &sb, out);
}

tpj_status_t tpj_build_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                               size_t rank, tpj_value_t* out) {
  const char* name = "stablehlo.reshape";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(tpj_type_init(tx->dtype, dims, rank, &rt), "%s", name));
  if (tpj_type_numel(&rt) != tpj_type_numel(tx)) {
    char a[96], b[96];
    TPJ_FMT(tx, a);
    TPJ_FMT(&rt, b);
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s: element count differs (got %s to %s, expected equal element counts)",
                      name, a, b);
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  return tpj_ir_one(g, name, &x, 1, &rt, &sb, out);
}

tpj_status_t tpj_build_transpose(tpj_graph_t* g, tpj_value_t x, const int64_t* perm,
                                 size_t rank, tpj_value_t* out) {
  const char* name = "stablehlo.transpose";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_CHECK_ARG(rank == (size_t)tx->rank,
                "%s: permutation length differs from the operand rank (got %zu, expected %d)",
                name, rank, (int)tx->rank);
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "permutation", perm, rank, (int64_t)rank));
  tpj_type_t rt = *tx;
  for (size_t i = 0; i < rank; ++i) rt.dims[i] = tx->dims[perm[i]];
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "permutation", perm, rank);
  return tpj_ir_one(g, name, &x, 1, &rt, &sb, out);
}

tpj_status_t tpj_build_slice(tpj_graph_t* g, tpj_value_t x, const int64_t* start,
                             const int64_t* limit, const int64_t* stride, size_t rank,
                             tpj_value_t* out) {
  const char* name = "stablehlo.slice";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_CHECK_ARG(rank == (size_t)tx->rank, "%s: index count differs from the operand rank (got %zu, expected %d)",
                name, rank, (int)tx->rank);
  TPJ_CHECK_ARG(rank == 0 || (start && limit && stride), "%s: start, limit or stride is NULL", name);
  tpj_type_t rt = *tx;
  for (size_t i = 0; i < rank; ++i) {
    TPJ_CHECK_ARG(start[i] >= 0 && start[i] <= limit[i] && limit[i] <= tx->dims[i],
                  "%s: bad bounds in dim %zu (got start %lld, limit %lld, expected "
                  "0 <= start <= limit <= %lld)",
                  name, i, (long long)start[i], (long long)limit[i], (long long)tx->dims[i]);
    TPJ_CHECK_ARG(stride[i] >= 1, "%s: stride in dim %zu must be >= 1 (got %lld)", name, i,
                  (long long)stride[i]);
    rt.dims[i] = (limit[i] - start[i] + stride[i] - 1) / stride[i];
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "start_indices", start, rank);
  tpj_ir_fmt_array(&sb, "limit_indices", limit, rank);
  tpj_ir_fmt_array(&sb, "strides", stride, rank);
  return tpj_ir_one(g, name, &x, 1, &rt, &sb, out);
}

/* Start indices: `rank` scalar integers of one dtype. Fills ops[1..rank]. */
static tpj_status_t tpj_ir_start_indices(const tpj_graph_t* g, const char* name,
                                         const tpj_value_t* idx, size_t rank,
                                         tpj_value_t* ops) {
  TPJ_CHECK_ARG(rank == 0 || idx, "%s: start_indices is NULL", name);
  tpj_dtype_t first = TPJ_DTYPE_INVALID;
  for (size_t i = 0; i < rank; ++i) {
    char what[40];
    snprintf(what, sizeof(what), "start index %zu", i);
    const tpj_type_t* t;
    TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, what, idx[i], &t));
    char a[96];
    TPJ_FMT(t, a);
    TPJ_CHECK_ARG(t->rank == 0 && (tpj_dtype_is_signed_int(t->dtype) || tpj_dtype_is_unsigned_int(t->dtype)),
                  "%s: %s must be an integer scalar (got %s)", name, what, a);
    if (i == 0) first = t->dtype;
    TPJ_CHECK_ARG(t->dtype == first, "%s: %s has dtype %s, expected %s like start index 0", name,
                  what, tpj_dtype_name(t->dtype), tpj_dtype_name(first));
    ops[i + 1] = idx[i];
  }
  return NULL;
}

tpj_status_t tpj_build_dynamic_slice(tpj_graph_t* g, tpj_value_t x,
                                     const tpj_value_t* start_indices, const int64_t* sizes,
                                     size_t rank, tpj_value_t* out) {
  const char* name = "stablehlo.dynamic_slice";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_CHECK_ARG(rank == (size_t)tx->rank, "%s: index count differs from the operand rank (got %zu, expected %d)",
                name, rank, (int)tx->rank);
  tpj_value_t ops[TPJ_MAX_RANK + 1] = {x};
  TPJ_RETURN_IF_ERROR(tpj_ir_start_indices(g, name, start_indices, rank, ops));
  TPJ_CHECK_ARG(rank == 0 || sizes, "%s: slice_sizes is NULL", name);
  tpj_type_t rt = *tx;
  for (size_t i = 0; i < rank; ++i) {
    TPJ_CHECK_ARG(sizes[i] >= 0 && sizes[i] <= tx->dims[i],
                  "%s: slice_sizes[%zu] out of range (got %lld, expected 0..%lld)", name, i,
                  (long long)sizes[i], (long long)tx->dims[i]);
    rt.dims[i] = sizes[i];
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "slice_sizes", sizes, rank);
  return tpj_ir_one(g, name, ops, rank + 1, &rt, &sb, out);
}

tpj_status_t tpj_build_dynamic_update_slice(tpj_graph_t* g, tpj_value_t x, tpj_value_t update,
                                            const tpj_value_t* start_indices, size_t rank,
                                            tpj_value_t* out) {
  const char* name = "stablehlo.dynamic_update_slice";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t *tx, *tu;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "update", update, &tu));
  TPJ_CHECK_ARG(rank == (size_t)tx->rank, "%s: index count differs from the operand rank (got %zu, expected %d)",
                name, rank, (int)tx->rank);
  char a[96], b[96];
  TPJ_FMT(tx, a);
  TPJ_FMT(tu, b);
  TPJ_CHECK_ARG(tu->dtype == tx->dtype && tu->rank == tx->rank,
                "%s: update must have the operand's dtype and rank (got %s for operand %s)", name,
                b, a);
  for (int32_t i = 0; i < tx->rank; ++i)
    TPJ_CHECK_ARG(tu->dims[i] <= tx->dims[i],
                  "%s: update dim %d is larger than the operand's (got %s for operand %s)", name,
                  (int)i, b, a);
  tpj_value_t ops[TPJ_MAX_RANK + 2] = {x, update};
  TPJ_RETURN_IF_ERROR(tpj_ir_start_indices(g, name, start_indices, rank, ops + 1));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  return tpj_ir_one(g, name, ops, rank + 2, tx, &sb, out);
}

tpj_status_t tpj_build_concatenate(tpj_graph_t* g, const tpj_value_t* xs, size_t count,
                                   int64_t dim, tpj_value_t* out) {
  const char* name = "stablehlo.concatenate";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  TPJ_CHECK_ARG(count >= 1 && xs, "%s: needs at least one operand (got %zu)", name, count);
  const tpj_type_t* t0;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand 0", xs[0], &t0));
  TPJ_CHECK_ARG(t0->rank >= 1, "%s: operands must have rank >= 1 (got rank 0)", name);
  TPJ_CHECK_ARG(dim >= 0 && dim < t0->rank, "%s: dimension out of range (got %lld, expected 0..%d)",
                name, (long long)dim, (int)t0->rank - 1);
  tpj_type_t rt = *t0;
  rt.dims[dim] = 0;
  for (size_t i = 0; i < count; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "operand %zu", i);
    const tpj_type_t* t;
    TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, what, xs[i], &t));
    bool ok = t->dtype == t0->dtype && t->rank == t0->rank;
    for (int32_t d = 0; ok && d < t->rank; ++d) ok = d == dim || t->dims[d] == t0->dims[d];
    if (!ok) {
      char a[96], b[96];
      TPJ_FMT(t, a);
      TPJ_FMT(t0, b);
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "%s: %s type mismatch (got %s, expected %s except in dim %lld)", name,
                        what, a, b, (long long)dim);
    }
    rt.dims[dim] += t->dims[dim];
  }
  char attrs[48];
  snprintf(attrs, sizeof(attrs), "dimension = %lld : i64", (long long)dim);
  tpj_ir_op_desc_t d = {.name = name, .operands = xs, .num_operands = count,
                        .result_types = &rt, .num_results = 1, .attrs = attrs};
  return tpj_ir_op_append(g, &d, out);
}

tpj_status_t tpj_build_pad(tpj_graph_t* g, tpj_value_t x, tpj_value_t pad_value,
                           const int64_t* low, const int64_t* high, const int64_t* interior,
                           size_t rank, tpj_value_t* out) {
  const char* name = "stablehlo.pad";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t *tx, *tp;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "padding_value", pad_value, &tp));
  TPJ_CHECK_ARG(tp->rank == 0 && tp->dtype == tx->dtype,
                "%s: padding_value must be a scalar %s (got rank %d %s)", name,
                tpj_dtype_name(tx->dtype), (int)tp->rank, tpj_dtype_name(tp->dtype));
  TPJ_CHECK_ARG(rank == (size_t)tx->rank, "%s: padding length differs from the operand rank (got %zu, expected %d)",
                name, rank, (int)tx->rank);
  TPJ_CHECK_ARG(rank == 0 || (low && high), "%s: low or high is NULL", name);
  int64_t zeros[TPJ_MAX_RANK] = {0};
  if (!interior) interior = zeros;
  tpj_type_t rt = *tx;
  for (size_t i = 0; i < rank; ++i) {
    TPJ_CHECK_ARG(interior[i] >= 0, "%s: interior padding in dim %zu is negative (got %lld)", name,
                  i, (long long)interior[i]);
    int64_t d = tx->dims[i];
    int64_t n = low[i] + high[i] + d + (d > 0 ? (d - 1) * interior[i] : 0);
    TPJ_CHECK_ARG(n >= 0, "%s: result dim %zu would be negative (got %lld)", name, i, (long long)n);
    rt.dims[i] = n;
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "edge_padding_low", low, rank);
  tpj_ir_fmt_array(&sb, "edge_padding_high", high, rank);
  tpj_ir_fmt_array(&sb, "interior_padding", interior, rank);
  tpj_value_t ops[2] = {x, pad_value};
  return tpj_ir_one(g, name, ops, 2, &rt, &sb, out);
}

tpj_status_t tpj_build_reverse(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                               size_t count, tpj_value_t* out) {
  const char* name = "stablehlo.reverse";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "dimensions", dims, count, tx->rank));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "dimensions", dims, count);
  return tpj_ir_one(g, name, &x, 1, tx, &sb, out);
}
