/* Runtime checks built by lowerings: "every index in range" and "no integer
 * divisor is zero" as one cheap reduction each, registered on the graph
 * (tpj_graph_add_check) so the runtime raises instead of XLA clamping a
 * gather, dropping a scatter or dividing by zero. */
#include <stdarg.h>
#include <stdio.h>

#include "lower/lower_util.h"

/* bad = any(mask), value = max(mask ? x : INT64_MIN) over all dims of the s64
 * value x; registered with `message`. */
static tpj_status_t tpj_lower_check_any(tpj_graph_t* g, tpj_check_kind_t kind, tpj_value_t x,
                                        tpj_value_t mask, const char* message) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  int64_t dims[TPJ_MAX_RANK];
  for (int32_t d = 0; d < t->rank; ++d) dims[d] = d;
  tpj_value_t low, picked, any, value;
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank,
                                          INT64_MIN, &low));
  TPJ_RETURN_IF_ERROR(tpj_build_select(g, mask, x, low, &picked));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, mask, TPJ_REDUCE_KIND_OR, dims,
                                              (size_t)t->rank, &any));
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, picked, TPJ_REDUCE_KIND_MAX, dims,
                                              (size_t)t->rank, &value));
  return tpj_graph_add_check(g, kind, any, value, message);
}

/* mask = x < lo || x >= hi, and x != *skip when skip is given. */
static tpj_status_t tpj_lower_range_mask(tpj_graph_t* g, tpj_value_t x, int64_t lo, int64_t hi,
                                         const int64_t* skip, tpj_value_t* out) {
  const tpj_type_t* t = tpj_lower_type(g, x);
  tpj_value_t vlo, vhi, below, above;
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, lo, &vlo));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, hi, &vhi));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, x, vlo, &below));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_GE, x, vhi, &above));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_OR, below, above, out));
  if (!skip) return NULL;
  tpj_value_t vs, keep;
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, *skip,
                                          &vs));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_NE, x, vs, &keep));
  return tpj_build_binary(g, TPJ_BINARY_OP_AND, *out, keep, out);
}

tpj_status_t tpj_lower_check_range(tpj_graph_t* g, tpj_value_t idx, int64_t lo, int64_t hi,
                                   const int64_t* skip, const char* fmt, ...) {
  const tpj_type_t* t = tpj_lower_type(g, idx);
  if (!tpj_graph_checks_enabled(g) || tpj_type_numel(t) == 0) return NULL;
  TPJ_CHECK_ARG(tpj_dtype_is_signed_int(t->dtype) || tpj_dtype_is_unsigned_int(t->dtype),
                "check_range: index must be an integer tensor (got %s)",
                tpj_dtype_name(t->dtype));
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof(message), fmt, ap);
  va_end(ap);
  tpj_value_t x, mask;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, idx, TPJ_DTYPE_S64, &x));
  TPJ_RETURN_IF_ERROR(tpj_lower_range_mask(g, x, lo, hi, skip, &mask));
  return tpj_lower_check_any(g, TPJ_CHECK_KIND_INDEX, x, mask, message);
}

tpj_status_t tpj_lower_check_nonzero(tpj_graph_t* g, const tpj_lower_call_t* call,
                                     tpj_value_t divisor) {
  const tpj_type_t* t = tpj_lower_type(g, divisor);
  if (!tpj_graph_checks_enabled(g) || tpj_type_numel(t) == 0) return NULL;
  if (!tpj_dtype_is_signed_int(t->dtype) && !tpj_dtype_is_unsigned_int(t->dtype)) return NULL;
  char message[256];
  snprintf(message, sizeof(message), "%s: ZeroDivisionError (integer division by zero)",
           call->target);
  tpj_value_t x, zero, mask;
  TPJ_RETURN_IF_ERROR(tpj_lower_convert(g, divisor, TPJ_DTYPE_S64, &x));
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, t->dims, (size_t)t->rank, 0, &zero));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_EQ, x, zero, &mask));
  return tpj_lower_check_any(g, TPJ_CHECK_KIND_DIV_ZERO, x, mask, message);
}
