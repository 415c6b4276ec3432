/* lower_util.h: helpers shared by every lowering family (internal).
 *
 * Argument accessors return INVALID_ARGUMENT statuses that name the op, the
 * argument index and what was expected, so lowerings never print their own
 * boilerplate. Value helpers cover the PyTorch conventions StableHLO lacks:
 * implicit broadcasting, dtype promotion (taken from the expected output
 * type), negative dims, and scalar constants.
 */
#ifndef TPJ_LOWER_UTIL_H_
#define TPJ_LOWER_UTIL_H_

#include <stdbool.h>

#include "tpj/lower.h"

/* Declares a lowering function (the signature of tpj_lower_fn). */
#define TPJ_LOWERING(fn) \
  TPJ_MUST_USE tpj_status_t fn(tpj_graph_t* g, const tpj_lower_call_t* call, tpj_value_t* out)

/* ------------------------------------------------------------ arguments -- */

/* true if the argument is absent (index past num_args) or None. */
bool tpj_lower_arg_is_none(const tpj_lower_call_t* call, size_t i);
tpj_status_t tpj_lower_arg_tensor(const tpj_lower_call_t* call, size_t i,
                                  tpj_value_t* out_value) TPJ_MUST_USE;
/* Accepts INT and BOOL. */
tpj_status_t tpj_lower_arg_int(const tpj_lower_call_t* call, size_t i, int64_t* out_value)
    TPJ_MUST_USE;
/* Accepts FLOAT, INT and BOOL. */
tpj_status_t tpj_lower_arg_float(const tpj_lower_call_t* call, size_t i, double* out_value)
    TPJ_MUST_USE;
tpj_status_t tpj_lower_arg_bool(const tpj_lower_call_t* call, size_t i, bool* out_value)
    TPJ_MUST_USE;
/* Accepts INT_LIST, BOOL_LIST and a single INT (as a 1-element list). out points
 * into the call (borrowed). A None argument yields count 0. */
tpj_status_t tpj_lower_arg_int_list(const tpj_lower_call_t* call, size_t i,
                                    const int64_t** out_ints, size_t* out_count) TPJ_MUST_USE;
tpj_status_t tpj_lower_arg_tensor_list(const tpj_lower_call_t* call, size_t i,
                                       const tpj_value_t** out_values, size_t* out_count)
    TPJ_MUST_USE;
/* NULL out when None. */
tpj_status_t tpj_lower_arg_string(const tpj_lower_call_t* call, size_t i,
                                  const char** out_str) TPJ_MUST_USE;
/* Optional variants: `dflt` when None/absent. */
tpj_status_t tpj_lower_arg_int_or(const tpj_lower_call_t* call, size_t i, int64_t dflt,
                                  int64_t* out_value) TPJ_MUST_USE;
tpj_status_t tpj_lower_arg_float_or(const tpj_lower_call_t* call, size_t i, double dflt,
                                    double* out_value) TPJ_MUST_USE;
tpj_status_t tpj_lower_arg_bool_or(const tpj_lower_call_t* call, size_t i, bool dflt,
                                   bool* out_value) TPJ_MUST_USE;

/* Type of a tensor argument / of a value (borrowed, never NULL for a valid id). */
const tpj_type_t* tpj_lower_type(const tpj_graph_t* g, tpj_value_t v);

/* Normalizes a possibly negative dim against rank (rank 0 accepts -1 and 0).
 * Errors name the op: "aten::sum.dim_IntList: dim out of range (got 3, expected
 * [-2, 1])". */
tpj_status_t tpj_lower_norm_dim(const tpj_lower_call_t* call, int64_t dim, int64_t rank,
                                int64_t* out_dim) TPJ_MUST_USE;

/* --------------------------------------------------------------- values -- */

/* Converts to dtype; returns x itself when the dtype already matches. */
tpj_status_t tpj_lower_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                               tpj_value_t* out) TPJ_MUST_USE;
/* Numpy/PyTorch broadcast of x to dims (trailing alignment). No-op if equal. */
tpj_status_t tpj_lower_broadcast_to(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                                    size_t rank, tpj_value_t* out) TPJ_MUST_USE;
/* Convert then broadcast: x becomes exactly `type` (dtype and shape). */
tpj_status_t tpj_lower_coerce(tpj_graph_t* g, tpj_value_t x, const tpj_type_t* type,
                              tpj_value_t* out) TPJ_MUST_USE;
/* Rank-0 constant. */
tpj_status_t tpj_lower_scalar(tpj_graph_t* g, tpj_dtype_t dtype, double value,
                              tpj_value_t* out) TPJ_MUST_USE;
/* Constant with the dtype and shape of `type`. */
tpj_status_t tpj_lower_full(tpj_graph_t* g, const tpj_type_t* type, double value,
                            tpj_value_t* out) TPJ_MUST_USE;
/* Turns argument i (a TENSOR, or an INT/FLOAT/BOOL scalar) into a value of
 * exactly `type` (convert + broadcast). */
tpj_status_t tpj_lower_arg_as(tpj_graph_t* g, const tpj_lower_call_t* call, size_t i,
                              const tpj_type_t* type, tpj_value_t* out) TPJ_MUST_USE;
/* Computes the broadcast shape of two types (error names the op and both shapes). */
tpj_status_t tpj_lower_broadcast_shape(const tpj_lower_call_t* call, const tpj_type_t* a,
                                       const tpj_type_t* b, tpj_type_t* out_type) TPJ_MUST_USE;
/* Expected output i with checks (i < num_outs). */
const tpj_type_t* tpj_lower_out_type(const tpj_lower_call_t* call, size_t i);

/* Builds the 2-scalar region for a standard reduction kind. */
tpj_status_t tpj_lower_reduce_body(tpj_graph_t* g, tpj_dtype_t dtype,
                                   tpj_reduce_kind_t kind, int32_t* out_region) TPJ_MUST_USE;

/* UNIMPLEMENTED status naming the op and the unsupported case. */
#define TPJ_LOWER_UNSUPPORTED(call, ...) \
  tpj_status_annotate(TPJ_STATUS(UNIMPLEMENTED, __VA_ARGS__), "%s", (call)->target)

/* ------------------------------------------------- additions (elementwise) -- */

/* "tensor", "int", "float", "None", ... for error messages. */
const char* tpj_lower_arg_kind_name(tpj_arg_kind_t kind);
/* A DTYPE (or INT code) argument; `dflt` when None/absent. INVALID_ARGUMENT for
 * an unknown code. */
tpj_status_t tpj_lower_arg_dtype_or(const tpj_lower_call_t* call, size_t i, tpj_dtype_t dflt,
                                    tpj_dtype_t* out_dtype) TPJ_MUST_USE;
/* true if argument i is an INT, FLOAT or BOOL scalar (not a tensor). */
bool tpj_lower_arg_is_scalar(const tpj_lower_call_t* call, size_t i);

/* ------------------------------------------------ runtime checks (lower_check.c) -- */

/* Registers an INDEX check on g that every element of the integer value idx
 * lies in [lo, hi) (elements equal to *skip excepted when skip is non-NULL);
 * the offending value reported is the largest bad element. The message
 * (printf format) names the op and the bound, "{}" standing for the value.
 * No-op when g's checks are disabled or idx is empty. */
tpj_status_t tpj_lower_check_range(tpj_graph_t* g, tpj_value_t idx, int64_t lo, int64_t hi,
                                   const int64_t* skip, const char* fmt, ...)
    TPJ_PRINTF(6, 7) TPJ_MUST_USE;
/* Registers a DIV_ZERO check that no element of `divisor` is zero (only for
 * integer dtypes: float division by zero is not an error). */
tpj_status_t tpj_lower_check_nonzero(tpj_graph_t* g, const tpj_lower_call_t* call,
                                     tpj_value_t divisor) TPJ_MUST_USE;

#endif /* TPJ_LOWER_UTIL_H_ */
