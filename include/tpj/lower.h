/* tpj/lower.h: the ATen -> StableHLO lowering table.
 *
 * Lowering one ATen op is: look its overload name up in the table, call one C
 * function that appends StableHLO ops to a tpj_graph_t. The table is generated
 * from src/lower/ops.inc (an X-macro list); see that file to add an op.
 *
 * The caller (the Python FX walker, the eager dispatcher or the export runner)
 * passes every schema argument in schema order with defaults filled in, plus
 * the expected output types (from the FX node's fake-tensor metadata). After a
 * lowering runs, tpj_lower_call checks each produced value against the
 * expected type, so a lowering bug surfaces as an error, never a wrong answer.
 */
#ifndef TPJ_LOWER_H_
#define TPJ_LOWER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tpj_arg_kind_e {
  TPJ_ARG_KIND_NONE = 0,     /* Python None / absent optional */
  TPJ_ARG_KIND_TENSOR,       /* .tensor */
  TPJ_ARG_KIND_INT,          /* .i (SymInt, int, Scalar holding an int) */
  TPJ_ARG_KIND_FLOAT,        /* .f */
  TPJ_ARG_KIND_BOOL,         /* .i (0 / 1) */
  TPJ_ARG_KIND_INT_LIST,     /* .ints (count) */
  TPJ_ARG_KIND_FLOAT_LIST,   /* .floats (count) */
  TPJ_ARG_KIND_BOOL_LIST,    /* .ints (count), 0 / 1 */
  TPJ_ARG_KIND_TENSOR_LIST,  /* .tensors (count); TPJ_VALUE_NONE for None */
  TPJ_ARG_KIND_STRING,       /* .str */
  TPJ_ARG_KIND_DTYPE,        /* .i holds a tpj_dtype_t */
  TPJ_ARG_KIND_OTHER,        /* device, layout, memory_format, generator: ignored */
} tpj_arg_kind_t;

typedef struct tpj_arg_s {
  tpj_arg_kind_t kind;
  tpj_value_t tensor;
  int64_t i;
  double f;
  const int64_t* ints;       /* (count) */
  const double* floats;      /* (count) */
  const tpj_value_t* tensors; /* (count) */
  size_t count;
  const char* str;
} tpj_arg_t;

typedef struct tpj_lower_call_s {
  const char* target;          /* "aten::add.Tensor" */
  const tpj_arg_t* args;       /* (num_args) schema order, defaults filled */
  size_t num_args;
  const tpj_type_t* out_types; /* (num_outs) expected results; dtype INVALID for a
                                  None result (e.g. a masked-off gradient) */
  size_t num_outs;
} tpj_lower_call_t;

/* Signature of every lowering: append ops to g, write num_outs values. */
typedef tpj_status_t (*tpj_lower_fn)(tpj_graph_t* g, const tpj_lower_call_t* call,
                                     tpj_value_t* out_values) TPJ_MUST_USE;

/* Runs the lowering for call->target. NOT_FOUND/UNIMPLEMENTED if no lowering;
 * INVALID_ARGUMENT for bad arguments (message names op, argument and value);
 * INTERNAL if a result type differs from call->out_types. */
tpj_status_t tpj_lower_call(tpj_graph_t* g, const tpj_lower_call_t* call,
                            tpj_value_t* out_values /* (num_outs) */) TPJ_MUST_USE;

/* True when `target` has a lowering that is not disabled. */
bool tpj_lower_is_supported(const char* target);

/* Disables (or re-enables) the lowering of `target`, process-wide: a disabled
 * op is reported unsupported and tpj_lower_call returns UNIMPLEMENTED, so it
 * takes the caller's fallback path (torch_pjrt.config.disabled_ops; the tests
 * use it to force one side of a forward/backward pair onto the CPU).
 * NOT_FOUND when `target` has no lowering. Thread-safe. */
TPJ_MUST_USE tpj_status_t tpj_lower_op_set_disabled(const char* target, bool disabled);
/* Counts the changes tpj_lower_op_set_disabled made: a cache of "is lowered"
 * answers is stale once it moves. */
uint64_t tpj_lower_disabled_generation(void);
size_t tpj_lower_op_count(void);
const char* tpj_lower_op_name(size_t index); /* NULL past the end */

#ifdef __cplusplus
}
#endif

#endif /* TPJ_LOWER_H_ */
