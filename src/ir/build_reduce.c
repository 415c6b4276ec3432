/* Builders for region-carrying ops: reduce (and reduce_simple, which builds
 * its own body), reduce_window, select_and_scatter, sort, plus
 * rng_bit_generator. Region signatures are checked against the operands. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))

/* Scalar init value of the input's dtype. */
static tpj_status_t tpj_ir_init_check(const tpj_graph_t* g, const char* name, const char* what,
                                      tpj_value_t init, tpj_dtype_t dtype) {
  const tpj_type_t* t;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, what, init, &t));
  char a[96];
  TPJ_FMT(t, a);
  TPJ_CHECK_ARG(t->rank == 0 && t->dtype == dtype, "%s: %s must be tensor<%s> (got %s)", name, what,
                tpj_dtype_mlir(dtype), a);
  return NULL;
}

/* Checks n (1..TPJ_MAX_RANK) operands that must share input 0's shape (dtypes
 * may differ) and copies their types into out_types (n). */
static tpj_status_t tpj_ir_same_shape_operands(tpj_graph_t* g, const char* name,
                                               const tpj_value_t* inputs, size_t n,
                                               tpj_type_t* out_types) {
  TPJ_CHECK_ARG(n >= 1 && n <= TPJ_MAX_RANK, "%s: input count out of range (got %zu, expected 1..%d)",
                name, n, TPJ_MAX_RANK);
  for (size_t i = 0; i < n; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "input %zu", i);
    const tpj_type_t* t;
    TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, what, inputs[i], &t));
    tpj_type_t same = i ? out_types[0] : *t;
    same.dtype = t->dtype;
    if (!tpj_type_equal(t, &same)) {
      char a[96], b[96];
      TPJ_FMT(t, a);
      TPJ_FMT(&out_types[0], b);
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: %s shape differs from input 0 (got %s and %s)", name,
                        what, a, b);
    }
    out_types[i] = *t;
  }
  return NULL;
}

tpj_status_t tpj_build_reduce(tpj_graph_t* g, const tpj_value_t* inputs, const tpj_value_t* inits,
                              size_t n, const int64_t* dims, size_t num_dims, int32_t body,
                              tpj_value_t* out_values) {
  const char* name = "stablehlo.reduce";
  TPJ_CHECK_ARG(g && inputs && inits && out_values, "%s: graph, inputs, inits or out is NULL", name);
  tpj_dtype_t dts[2 * TPJ_MAX_RANK];
  tpj_value_t ops[2 * TPJ_MAX_RANK];
  tpj_type_t ins[TPJ_MAX_RANK], rts[TPJ_MAX_RANK];
  TPJ_RETURN_IF_ERROR(tpj_ir_same_shape_operands(g, name, inputs, n, ins));
  const tpj_type_t* t0 = &ins[0];
  for (size_t i = 0; i < n; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "init value %zu", i);
    TPJ_RETURN_IF_ERROR(tpj_ir_init_check(g, name, what, inits[i], ins[i].dtype));
    dts[i] = dts[n + i] = ins[i].dtype;
    ops[i] = inputs[i];
    ops[n + i] = inits[i];
  }
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "dimensions", dims, num_dims, t0->rank));
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "body", body, dts, 2 * n, dts, n));
  for (size_t i = 0; i < n; ++i) {
    rts[i] = tpj_type_scalar(dts[i]);
    for (int32_t d = 0; d < t0->rank; ++d) {
      bool reduced = false;
      for (size_t k = 0; k < num_dims; ++k) reduced = reduced || dims[k] == d;
      if (!reduced) rts[i].dims[rts[i].rank++] = t0->dims[d];
    }
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_fmt_array(&sb, "dimensions", dims, num_dims);
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 2 * n,
                        .result_types = rts, .num_results = n, .regions = &body, .num_regions = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out_values);
}

/* Identity of `kind` for dtype, as a rank-0 constant in the current block. */
static tpj_status_t tpj_ir_reduce_identity(tpj_graph_t* g, tpj_dtype_t dt, tpj_reduce_kind_t kind,
                                           tpj_value_t* out) {
  bool fl = tpj_dtype_is_float(dt);
  bool sgn = tpj_dtype_is_signed_int(dt);
  int bits = (int)tpj_dtype_size(dt) * 8;
  switch (kind) {
    case TPJ_REDUCE_KIND_ADD: case TPJ_REDUCE_KIND_OR:
      return tpj_build_splat_int(g, dt, NULL, 0, 0, out);
    case TPJ_REDUCE_KIND_MUL:
      return tpj_build_splat_int(g, dt, NULL, 0, 1, out);
    case TPJ_REDUCE_KIND_AND: /* all ones */
      if (dt == TPJ_DTYPE_PRED) return tpj_build_splat_int(g, dt, NULL, 0, 1, out);
      if (sgn || bits == 64) return tpj_build_splat_int(g, dt, NULL, 0, -1, out);
      return tpj_build_splat_int(g, dt, NULL, 0, (int64_t)((1ull << bits) - 1), out);
    case TPJ_REDUCE_KIND_MAX:
      if (fl) return tpj_build_splat(g, dt, NULL, 0, -INFINITY, out);
      if (dt == TPJ_DTYPE_PRED) return tpj_build_splat_int(g, dt, NULL, 0, 0, out);
      return tpj_build_splat_int(g, dt, NULL, 0, sgn ? (int64_t)(~0ull << (bits - 1)) : 0, out);
    case TPJ_REDUCE_KIND_MIN:
      if (fl) return tpj_build_splat(g, dt, NULL, 0, INFINITY, out);
      if (dt == TPJ_DTYPE_PRED) return tpj_build_splat_int(g, dt, NULL, 0, 1, out);
      if (sgn) return tpj_build_splat_int(g, dt, NULL, 0, (int64_t)((1ull << (bits - 1)) - 1), out);
      return tpj_build_splat_int(g, dt, NULL, 0, bits == 64 ? -1 : (int64_t)((1ull << bits) - 1), out);
  }
  return TPJ_STATUS(INVALID_ARGUMENT, "stablehlo.reduce: unknown reduce kind %d", (int)kind);
}

/* Whether a reduce_simple-style body of `kind` exists for dtype. */
static tpj_status_t tpj_ir_reduce_kind_check(const char* name, tpj_dtype_t dt,
                                             tpj_reduce_kind_t kind) {
  TPJ_CHECK_ARG((int)kind >= TPJ_REDUCE_KIND_ADD && kind <= TPJ_REDUCE_KIND_OR,
                "%s: unknown reduce kind %d", name, (int)kind);
  bool is_int = tpj_dtype_is_signed_int(dt) || tpj_dtype_is_unsigned_int(dt);
  TPJ_CHECK_ARG(!tpj_dtype_is_complex(dt), "%s: complex inputs are not supported by reduce_simple (got %s)",
                name, tpj_dtype_name(dt));
  TPJ_CHECK_ARG(kind != TPJ_REDUCE_KIND_AND && kind != TPJ_REDUCE_KIND_OR ? true : (is_int || dt == TPJ_DTYPE_PRED),
                "%s: and/or reductions need an integer or pred input (got %s)", name, tpj_dtype_name(dt));
  return NULL;
}

tpj_status_t tpj_ir_reduce_body(tpj_graph_t* g, const char* name, tpj_dtype_t dt,
                                tpj_reduce_kind_t kind, int32_t* out_body) {
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_kind_check(name, dt, kind));
  static const tpj_binary_op_t kOps[] = {TPJ_BINARY_OP_ADD, TPJ_BINARY_OP_MUL, TPJ_BINARY_OP_MAX,
                                         TPJ_BINARY_OP_MIN, TPJ_BINARY_OP_AND, TPJ_BINARY_OP_OR};
  tpj_binary_op_t bop = kOps[kind];
  if (dt == TPJ_DTYPE_PRED && (kind == TPJ_REDUCE_KIND_ADD || kind == TPJ_REDUCE_KIND_MAX)) bop = TPJ_BINARY_OP_OR;
  if (dt == TPJ_DTYPE_PRED && (kind == TPJ_REDUCE_KIND_MUL || kind == TPJ_REDUCE_KIND_MIN)) bop = TPJ_BINARY_OP_AND;
  tpj_type_t st[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t args[2], r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, st, 2, args));
  tpj_status_t s = tpj_build_binary(g, bop, args[0], args[1], &r);
  if (s) {
    /* Close the region so the graph stays usable; it stays unused. */
    tpj_status_free(tpj_graph_region_end(g, args, 1, out_body));
    return s;
  }
  return tpj_graph_region_end(g, &r, 1, out_body);
}

tpj_status_t tpj_build_reduce_simple(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                                     const int64_t* dims, size_t num_dims, tpj_value_t* out) {
  const char* name = "stablehlo.reduce";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  TPJ_CHECK_ARG((int)kind >= TPJ_REDUCE_KIND_ADD && kind <= TPJ_REDUCE_KIND_OR,
                "%s: unknown reduce kind %d", name, (int)kind);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "input 0", x, &tx));
  tpj_dtype_t dt = tx->dtype;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_kind_check(name, dt, kind));
  TPJ_RETURN_IF_ERROR(tpj_ir_check_dims(name, "dimensions", dims, num_dims, tx->rank));
  tpj_value_t init;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_identity(g, dt, kind, &init));
  int32_t body;
  TPJ_RETURN_IF_ERROR(tpj_ir_reduce_body(g, name, dt, kind, &body));
  return tpj_build_reduce(g, &x, &init, 1, dims, num_dims, body, out);
}

/* Validates a window against an operand type; fills the result dims. */
static tpj_status_t tpj_ir_window(const char* name, const tpj_type_t* tx, const tpj_window_t* w,
                                  tpj_type_t* out_type) {
  TPJ_CHECK_ARG(w, "%s: window is NULL", name);
  TPJ_CHECK_ARG(w->rank == (size_t)tx->rank, "%s: window rank differs from the operand rank (got %zu, expected %d)",
                name, w->rank, (int)tx->rank);
  TPJ_CHECK_ARG(w->rank == 0 || (w->dims && w->strides && w->padding),
                "%s: window dims, strides or padding is NULL", name);
  *out_type = *tx;
  for (size_t i = 0; i < w->rank; ++i) {
    int64_t bd = w->base_dilations ? w->base_dilations[i] : 1;
    int64_t wd = w->window_dilations ? w->window_dilations[i] : 1;
    TPJ_CHECK_ARG(w->dims[i] >= 1 && w->strides[i] >= 1 && bd >= 1 && wd >= 1,
                  "%s: window dim %zu needs size, stride and dilations >= 1 (got size %lld, stride %lld)",
                  name, i, (long long)w->dims[i], (long long)w->strides[i]);
    out_type->dims[i] = tpj_ir_window_out(tx->dims[i], bd, w->padding[2 * i], w->padding[2 * i + 1],
                                          w->dims[i], wd, w->strides[i]);
  }
  return NULL;
}

static void tpj_ir_window_attrs(tpj_strbuf_t* sb, const tpj_window_t* w, bool dilations) {
  int64_t ones[TPJ_MAX_RANK] = {1, 1, 1, 1, 1, 1, 1, 1};
  tpj_ir_fmt_array(sb, "window_dimensions", w->dims, w->rank);
  tpj_ir_fmt_array(sb, "window_strides", w->strides, w->rank);
  if (dilations) {
    tpj_ir_fmt_array(sb, "base_dilations", w->base_dilations ? w->base_dilations : ones, w->rank);
    tpj_ir_fmt_array(sb, "window_dilations", w->window_dilations ? w->window_dilations : ones, w->rank);
  }
  tpj_ir_fmt_padding(sb, "padding", w->padding, w->rank);
}

tpj_status_t tpj_build_reduce_window(tpj_graph_t* g, tpj_value_t x, tpj_value_t init,
                                     const tpj_window_t* window, int32_t body, tpj_value_t* out) {
  const char* name = "stablehlo.reduce_window";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_init_check(g, name, "init value", init, tx->dtype));
  tpj_type_t rt;
  TPJ_RETURN_IF_ERROR(tpj_ir_window(name, tx, window, &rt));
  TPJ_CHECK_ARG(window->rank >= 1, "%s: operand must have rank >= 1", name);
  tpj_dtype_t dts[2] = {tx->dtype, tx->dtype};
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "body", body, dts, 2, dts, 1));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_window_attrs(&sb, window, true);
  tpj_value_t ops[2] = {x, init};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 2, .result_types = &rt,
                        .num_results = 1, .regions = &body, .num_regions = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

tpj_status_t tpj_build_select_and_scatter(tpj_graph_t* g, tpj_value_t operand, tpj_value_t source,
                                          tpj_value_t init, const tpj_window_t* window,
                                          int32_t select_body, int32_t scatter_body,
                                          tpj_value_t* out) {
  const char* name = "stablehlo.select_and_scatter";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t *tx, *ts;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", operand, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "source", source, &ts));
  TPJ_RETURN_IF_ERROR(tpj_ir_init_check(g, name, "init value", init, tx->dtype));
  tpj_type_t wt;
  TPJ_RETURN_IF_ERROR(tpj_ir_window(name, tx, window, &wt));
  TPJ_CHECK_ARG(window->rank >= 1, "%s: operand must have rank >= 1", name);
  for (size_t i = 0; i < window->rank; ++i)
    TPJ_CHECK_ARG((!window->base_dilations || window->base_dilations[i] == 1) &&
                      (!window->window_dilations || window->window_dilations[i] == 1),
                  "%s: dilations are not supported (dim %zu, expected 1)", name, i);
  if (!tpj_type_equal(ts, &wt)) {
    char a[96], b[96];
    TPJ_FMT(ts, a);
    TPJ_FMT(&wt, b);
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: source type mismatch (got %s, expected %s)", name, a, b);
  }
  tpj_dtype_t dts[2] = {tx->dtype, tx->dtype}, pred = TPJ_DTYPE_PRED;
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "select body", select_body, dts, 2, &pred, 1));
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "scatter body", scatter_body, dts, 2, dts, 1));
  TPJ_CHECK_ARG(select_body != scatter_body, "%s: select and scatter bodies must be distinct regions", name);
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_ir_window_attrs(&sb, window, false);
  tpj_value_t ops[3] = {operand, source, init};
  int32_t regs[2] = {select_body, scatter_body};
  tpj_ir_op_desc_t d = {.name = name, .operands = ops, .num_operands = 3, .result_types = tx,
                        .num_results = 1, .regions = regs, .num_regions = 2};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

tpj_status_t tpj_build_sort(tpj_graph_t* g, const tpj_value_t* inputs, size_t n, int64_t dim,
                            bool is_stable, int32_t comparator, tpj_value_t* out_values) {
  const char* name = "stablehlo.sort";
  TPJ_CHECK_ARG(g && inputs && out_values, "%s: graph, inputs or out is NULL", name);
  tpj_type_t rts[TPJ_MAX_RANK];
  tpj_dtype_t dts[2 * TPJ_MAX_RANK];
  TPJ_RETURN_IF_ERROR(tpj_ir_same_shape_operands(g, name, inputs, n, rts));
  const tpj_type_t* t0 = &rts[0];
  for (size_t i = 0; i < n; ++i) dts[2 * i] = dts[2 * i + 1] = rts[i].dtype;
  TPJ_CHECK_ARG(t0->rank >= 1 && dim >= 0 && dim < t0->rank,
                "%s: dimension out of range (got %lld, expected 0..%d)", name, (long long)dim,
                (int)t0->rank - 1);
  tpj_dtype_t pred = TPJ_DTYPE_PRED;
  TPJ_RETURN_IF_ERROR(tpj_ir_region_check(g, name, "comparator", comparator, dts, 2 * n, &pred, 1));
  char attrs[64];
  snprintf(attrs, sizeof(attrs), "dimension = %lld : i64, is_stable = %s", (long long)dim,
           is_stable ? "true" : "false");
  tpj_ir_op_desc_t d = {.name = name, .operands = inputs, .num_operands = n, .result_types = rts,
                        .num_results = n, .regions = &comparator, .num_regions = 1, .attrs = attrs};
  return tpj_ir_op_append(g, &d, out_values);
}

tpj_status_t tpj_build_rng_bit_generator(tpj_graph_t* g, tpj_value_t state, const tpj_type_t* type,
                                         tpj_value_t* out_state, tpj_value_t* out_bits) {
  const char* name = "stablehlo.rng_bit_generator";
  TPJ_CHECK_ARG(g && type && out_state && out_bits, "%s: graph, type or outputs are NULL", name);
  const tpj_type_t* ts;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "initial_state", state, &ts));
  char a[96];
  TPJ_FMT(ts, a);
  TPJ_CHECK_ARG(ts->dtype == TPJ_DTYPE_U64 && ts->rank == 1 && ts->dims[0] == 2,
                "%s: initial_state must be tensor<2xui64> for THREE_FRY (got %s)", name, a);
  tpj_type_t rts[2] = {*ts};
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(
      tpj_type_init(type->dtype, type->dims, (size_t)type->rank, &rts[1]), "%s", name));
  TPJ_CHECK_ARG(type->dtype == TPJ_DTYPE_U32 || type->dtype == TPJ_DTYPE_U64,
                "%s: output must be ui32 or ui64 (got %s)", name, tpj_dtype_name(type->dtype));
  tpj_value_t res[2];
  tpj_ir_op_desc_t d = {.name = name, .operands = &state, .num_operands = 1, .result_types = rts,
                        .num_results = 2, .attrs = "rng_algorithm = #stablehlo<rng_algorithm THREE_FRY>"};
  TPJ_RETURN_IF_ERROR(tpj_ir_op_append(g, &d, res));
  *out_state = res[0];
  *out_bits = res[1];
  return NULL;
}
