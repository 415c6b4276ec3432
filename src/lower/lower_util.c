/* Helpers shared by every lowering family: argument accessors whose errors
 * name the op and argument, and value helpers for the PyTorch conventions
 * StableHLO lacks (implicit broadcasting, dtype conversion, scalar constants,
 * negative dims, reduction bodies). */
#include <math.h>
#include <string.h>

#include "lower/lower_util.h"

/* Returned instead of NULL so callers never dereference a NULL type. */
static const tpj_type_t tpj_lower_invalid_type = {TPJ_DTYPE_INVALID, 0, {0}};

const char* tpj_lower_arg_kind_name(tpj_arg_kind_t kind) {
  switch (kind) {
    case TPJ_ARG_KIND_NONE: return "None";
    case TPJ_ARG_KIND_TENSOR: return "tensor";
    case TPJ_ARG_KIND_INT: return "int";
    case TPJ_ARG_KIND_FLOAT: return "float";
    case TPJ_ARG_KIND_BOOL: return "bool";
    case TPJ_ARG_KIND_INT_LIST: return "int list";
    case TPJ_ARG_KIND_FLOAT_LIST: return "float list";
    case TPJ_ARG_KIND_BOOL_LIST: return "bool list";
    case TPJ_ARG_KIND_TENSOR_LIST: return "tensor list";
    case TPJ_ARG_KIND_STRING: return "string";
    case TPJ_ARG_KIND_DTYPE: return "dtype";
    case TPJ_ARG_KIND_OTHER: return "other";
  }
  return "unknown";
}

/* ------------------------------------------------------------ arguments -- */

/* The argument, or NULL with *out_status set when the index is past the end. */
static const tpj_arg_t* tpj_lower_arg_get(const tpj_lower_call_t* call, size_t i,
                                          const char* expected, tpj_status_t* out_status) {
  if (i < call->num_args) return &call->args[i];
  *out_status = TPJ_STATUS(INVALID_ARGUMENT,
                           "%s: argument %zu: missing, expected %s (got %zu arguments)",
                           call->target, i, expected, call->num_args);
  return NULL;
}

static tpj_status_t tpj_lower_arg_kind_error(const tpj_lower_call_t* call, size_t i,
                                             const char* expected) {
  return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: wrong kind (got %s, expected %s)",
                    call->target, i, tpj_lower_arg_kind_name(call->args[i].kind),
                    expected);
}

bool tpj_lower_arg_is_none(const tpj_lower_call_t* call, size_t i) {
  return i >= call->num_args || call->args[i].kind == TPJ_ARG_KIND_NONE;
}

tpj_status_t tpj_lower_arg_tensor(const tpj_lower_call_t* call, size_t i,
                                  tpj_value_t* out_value) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "a tensor", &s);
  if (!a) return s;
  if (a->kind != TPJ_ARG_KIND_TENSOR || a->tensor < 0)
    return tpj_lower_arg_kind_error(call, i, "a tensor");
  *out_value = a->tensor;
  return NULL;
}

tpj_status_t tpj_lower_arg_int(const tpj_lower_call_t* call, size_t i, int64_t* out_value) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "an int", &s);
  if (!a) return s;
  if (a->kind != TPJ_ARG_KIND_INT && a->kind != TPJ_ARG_KIND_BOOL)
    return tpj_lower_arg_kind_error(call, i, "an int");
  *out_value = a->i;
  return NULL;
}

tpj_status_t tpj_lower_arg_float(const tpj_lower_call_t* call, size_t i, double* out_value) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "a number", &s);
  if (!a) return s;
  if (a->kind == TPJ_ARG_KIND_FLOAT) {
    *out_value = a->f;
  } else if (a->kind == TPJ_ARG_KIND_INT || a->kind == TPJ_ARG_KIND_BOOL) {
    *out_value = (double)a->i;
  } else {
    return tpj_lower_arg_kind_error(call, i, "a number");
  }
  return NULL;
}

tpj_status_t tpj_lower_arg_bool(const tpj_lower_call_t* call, size_t i, bool* out_value) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "a bool", &s);
  if (!a) return s;
  if (a->kind != TPJ_ARG_KIND_BOOL && !(a->kind == TPJ_ARG_KIND_INT && (a->i == 0 || a->i == 1)))
    return tpj_lower_arg_kind_error(call, i, "a bool");
  *out_value = a->i != 0;
  return NULL;
}

tpj_status_t tpj_lower_arg_int_list(const tpj_lower_call_t* call, size_t i,
                                    const int64_t** out_ints, size_t* out_count) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "an int list", &s);
  if (!a) return s;
  switch (a->kind) {
    case TPJ_ARG_KIND_NONE:
      *out_ints = NULL;
      *out_count = 0;
      return NULL;
    case TPJ_ARG_KIND_INT_LIST:
    case TPJ_ARG_KIND_BOOL_LIST:
      if (a->count > 0 && !a->ints)
        return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: list data is NULL (got count %zu)",
                          call->target, i, a->count);
      *out_ints = a->ints;
      *out_count = a->count;
      return NULL;
    case TPJ_ARG_KIND_INT:
      *out_ints = &a->i;
      *out_count = 1;
      return NULL;
    default:
      return tpj_lower_arg_kind_error(call, i, "an int list");
  }
}

tpj_status_t tpj_lower_arg_tensor_list(const tpj_lower_call_t* call, size_t i,
                                       const tpj_value_t** out_values, size_t* out_count) {
  tpj_status_t s = NULL;
  const tpj_arg_t* a = tpj_lower_arg_get(call, i, "a tensor list", &s);
  if (!a) return s;
  if (a->kind == TPJ_ARG_KIND_NONE) {
    *out_values = NULL;
    *out_count = 0;
    return NULL;
  }
  if (a->kind != TPJ_ARG_KIND_TENSOR_LIST) return tpj_lower_arg_kind_error(call, i, "a tensor list");
  if (a->count > 0 && !a->tensors)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: list data is NULL (got count %zu)",
                      call->target, i, a->count);
  *out_values = a->tensors;
  *out_count = a->count;
  return NULL;
}

tpj_status_t tpj_lower_arg_string(const tpj_lower_call_t* call, size_t i,
                                  const char** out_str) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out_str = NULL;
    return NULL;
  }
  if (call->args[i].kind != TPJ_ARG_KIND_STRING || !call->args[i].str)
    return tpj_lower_arg_kind_error(call, i, "a string");
  *out_str = call->args[i].str;
  return NULL;
}

tpj_status_t tpj_lower_arg_int_or(const tpj_lower_call_t* call, size_t i, int64_t dflt,
                                  int64_t* out_value) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out_value = dflt;
    return NULL;
  }
  return tpj_lower_arg_int(call, i, out_value);
}

tpj_status_t tpj_lower_arg_float_or(const tpj_lower_call_t* call, size_t i, double dflt,
                                    double* out_value) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out_value = dflt;
    return NULL;
  }
  return tpj_lower_arg_float(call, i, out_value);
}

tpj_status_t tpj_lower_arg_bool_or(const tpj_lower_call_t* call, size_t i, bool dflt,
                                   bool* out_value) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out_value = dflt;
    return NULL;
  }
  return tpj_lower_arg_bool(call, i, out_value);
}

tpj_status_t tpj_lower_arg_dtype_or(const tpj_lower_call_t* call, size_t i, tpj_dtype_t dflt,
                                    tpj_dtype_t* out_dtype) {
  if (tpj_lower_arg_is_none(call, i)) {
    *out_dtype = dflt;
    return NULL;
  }
  const tpj_arg_t* a = &call->args[i];
  if (a->kind != TPJ_ARG_KIND_DTYPE && a->kind != TPJ_ARG_KIND_INT)
    return tpj_lower_arg_kind_error(call, i, "a dtype");
  if (a->i <= TPJ_DTYPE_INVALID || a->i >= TPJ_DTYPE_COUNT_)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: unknown dtype code (got %lld)",
                      call->target, i, (long long)a->i);
  *out_dtype = (tpj_dtype_t)a->i;
  return NULL;
}

bool tpj_lower_arg_is_scalar(const tpj_lower_call_t* call, size_t i) {
  if (i >= call->num_args) return false;
  tpj_arg_kind_t k = call->args[i].kind;
  return k == TPJ_ARG_KIND_INT || k == TPJ_ARG_KIND_FLOAT || k == TPJ_ARG_KIND_BOOL;
}

const tpj_type_t* tpj_lower_type(const tpj_graph_t* g, tpj_value_t v) {
  const tpj_type_t* t = tpj_graph_value_type(g, v);
  return t ? t : &tpj_lower_invalid_type;
}

tpj_status_t tpj_lower_norm_dim(const tpj_lower_call_t* call, int64_t dim, int64_t rank,
                                int64_t* out_dim) {
  int64_t r = rank > 0 ? rank : 1;
  if (dim < -r || dim >= r)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: dim out of range (got %lld, expected [%lld, %lld])",
                      call->target, (long long)dim, (long long)-r, (long long)(r - 1));
  *out_dim = dim < 0 ? dim + r : dim;
  return NULL;
}

const tpj_type_t* tpj_lower_out_type(const tpj_lower_call_t* call, size_t i) {
  if (i >= call->num_outs || !call->out_types) return &tpj_lower_invalid_type;
  return &call->out_types[i];
}

/* --------------------------------------------------------------- values -- */

tpj_status_t tpj_lower_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                               tpj_value_t* out) {
  const tpj_type_t* t = tpj_graph_value_type(g, x);
  if (!t) return TPJ_STATUS(INVALID_ARGUMENT, "convert: not a value of the graph (got id %d)", (int)x);
  if (t->dtype == dtype) {
    *out = x;
    return NULL;
  }
  if (dtype == TPJ_DTYPE_PRED && t->dtype != TPJ_DTYPE_PRED) {
    /* PyTorch: to bool is x != 0 (NaN is true). */
    tpj_value_t zero;
    TPJ_RETURN_IF_ERROR(tpj_build_splat(g, t->dtype, t->dims, (size_t)t->rank, 0.0, &zero));
    return tpj_build_compare(g, TPJ_COMPARE_DIR_NE, x, zero, out);
  }
  return tpj_build_convert(g, x, dtype, out);
}

tpj_status_t tpj_lower_broadcast_to(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                                    size_t rank, tpj_value_t* out) {
  const tpj_type_t* t = tpj_graph_value_type(g, x);
  if (!t) return TPJ_STATUS(INVALID_ARGUMENT, "broadcast: not a value of the graph (got id %d)", (int)x);
  size_t xr = (size_t)t->rank;
  bool same = xr == rank;
  for (size_t i = 0; same && i < rank; ++i) same = t->dims[i] == dims[i];
  if (same) {
    *out = x;
    return NULL;
  }
  char buf[128];
  tpj_type_format(t, buf, sizeof(buf));
  if (xr > rank || rank > TPJ_MAX_RANK)
    return TPJ_STATUS(INVALID_ARGUMENT, "broadcast: cannot broadcast %s to rank %zu", buf, rank);
  int64_t bdims[TPJ_MAX_RANK];
  for (size_t i = 0; i < xr; ++i) {
    size_t d = i + (rank - xr);
    if (t->dims[i] != 1 && t->dims[i] != dims[d])
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "broadcast: cannot broadcast %s: dim %zu has size %lld (expected 1 or %lld)",
                        buf, i, (long long)t->dims[i], (long long)dims[d]);
    bdims[i] = (int64_t)d;
  }
  return tpj_build_broadcast_in_dim(g, x, dims, rank, bdims, out);
}

tpj_status_t tpj_lower_coerce(tpj_graph_t* g, tpj_value_t x, const tpj_type_t* type,
                              tpj_value_t* out) {
  tpj_value_t c;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, x, type->dtype, &c));
  return tpj_lower_broadcast_to(g, c, type->dims, (size_t)type->rank, out);
}

tpj_status_t tpj_lower_scalar(tpj_graph_t* g, tpj_dtype_t dtype, double value,
                              tpj_value_t* out) {
  return tpj_build_splat(g, dtype, NULL, 0, value, out);
}

tpj_status_t tpj_lower_full(tpj_graph_t* g, const tpj_type_t* type, double value,
                            tpj_value_t* out) {
  return tpj_build_splat(g, type->dtype, type->dims, (size_t)type->rank, value, out);
}

/* An integer scalar argument splatted exactly (no trip through double). */
static tpj_status_t tpj_lower_splat_int_arg(tpj_graph_t* g, const tpj_type_t* type, int64_t v,
                                            tpj_value_t* out) {
  if (tpj_dtype_is_float(type->dtype) || type->dtype == TPJ_DTYPE_PRED ||
      tpj_dtype_is_complex(type->dtype))
    return tpj_lower_full(g, type, (double)v, out);
  return tpj_build_splat_int(g, type->dtype, type->dims, (size_t)type->rank, v, out);
}

tpj_status_t tpj_lower_arg_as(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                              const tpj_type_t* type, tpj_value_t* out) {
  if (i >= call->num_args)
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: argument %zu: missing (got %zu arguments)",
                      call->target, i, call->num_args);
  const tpj_arg_t* a = &call->args[i];
  switch (a->kind) {
    case TPJ_ARG_KIND_TENSOR:
      return tpj_lower_coerce(g, a->tensor, type, out);
    case TPJ_ARG_KIND_INT:
    case TPJ_ARG_KIND_BOOL:
      return tpj_lower_splat_int_arg(g, type, a->i, out);
    case TPJ_ARG_KIND_FLOAT:
      return tpj_lower_full(g, type, a->f, out);
    default:
      return tpj_lower_arg_kind_error(call, i, "a tensor or a number");
  }
}

tpj_status_t tpj_lower_broadcast_shape(const tpj_lower_call_t* call, const tpj_type_t* a,
                                       const tpj_type_t* b, tpj_type_t* out_type) {
  int32_t rank = a->rank > b->rank ? a->rank : b->rank;
  tpj_type_t r = {a->dtype, rank, {0}};
  for (int32_t i = 0; i < rank; ++i) {
    int32_t ia = i - (rank - a->rank), ib = i - (rank - b->rank);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      char ba[128], bb[128];
      tpj_type_format(a, ba, sizeof(ba));
      tpj_type_format(b, bb, sizeof(bb));
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: shapes cannot be broadcast (got %s and %s)",
                        call->target, ba, bb);
    }
    r.dims[i] = da == 1 ? db : da;
  }
  *out_type = r;
  return NULL;
}

static tpj_binary_op_t tpj_lower_reduce_binary(tpj_reduce_kind_t kind) {
  switch (kind) {
    case TPJ_REDUCE_KIND_ADD: return TPJ_BINARY_OP_ADD;
    case TPJ_REDUCE_KIND_MUL: return TPJ_BINARY_OP_MUL;
    case TPJ_REDUCE_KIND_MAX: return TPJ_BINARY_OP_MAX;
    case TPJ_REDUCE_KIND_MIN: return TPJ_BINARY_OP_MIN;
    case TPJ_REDUCE_KIND_AND: return TPJ_BINARY_OP_AND;
    case TPJ_REDUCE_KIND_OR: return TPJ_BINARY_OP_OR;
  }
  return TPJ_BINARY_OP_COUNT_;
}

tpj_status_t tpj_lower_reduce_body(tpj_graph_t* g, tpj_dtype_t dtype,
                                   tpj_reduce_kind_t kind, int32_t* out_region) {
  tpj_binary_op_t op = tpj_lower_reduce_binary(kind);
  if (op == TPJ_BINARY_OP_COUNT_)
    return TPJ_STATUS(INVALID_ARGUMENT, "reduce body: unknown reduction kind (got %d)", (int)kind);
  /* Bool sums and products are OR and AND. */
  if (dtype == TPJ_DTYPE_PRED && op == TPJ_BINARY_OP_ADD) op = TPJ_BINARY_OP_OR;
  if (dtype == TPJ_DTYPE_PRED && op == TPJ_BINARY_OP_MUL) op = TPJ_BINARY_OP_AND;
  tpj_type_t st = tpj_type_scalar(dtype);
  tpj_type_t types[2] = {st, st};
  tpj_value_t args[2], r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, types, 2, args));
  tpj_status_t s = tpj_build_binary(g, op, args[0], args[1], &r);
  if (s) {
    /* Close the region so the graph stays consistent; report the first error. */
    int32_t ignored;
    tpj_status_free(tpj_graph_region_end(g, args, 1, &ignored));
    return s;
  }
  return tpj_graph_region_end(g, &r, 1, out_region);
}
