/* ir_internal.h: graph storage shared by the builders (src/ir) and the emitter
 * (src/emit). Internal; not part of the public API.
 *
 * Values, ops and regions live in growable arrays; op attribute text, operand
 * lists and constant payloads live in the graph's arena. Block -1 is @main;
 * a non-negative block is a region index.
 */
#ifndef TPJ_IR_INTERNAL_H_
#define TPJ_IR_INTERNAL_H_

#include "tpj/ir.h"

#define TPJ_IR_MAIN_BLOCK (-1)
#define TPJ_IR_CHUNK_BITS 8
#define TPJ_IR_CHUNK ((size_t)1 << TPJ_IR_CHUNK_BITS)
/* Pointer to value v (must be < num_values). */
#define TPJ_IR_VAL(g, v) \
  (&(g)->value_chunks[(size_t)(v) >> TPJ_IR_CHUNK_BITS][(size_t)(v) & (TPJ_IR_CHUNK - 1)])

typedef struct tpj_ir_value_s {
  tpj_type_t type;
  int32_t block;       /* block the value is visible in */
  int32_t op;          /* defining op index; -1 for params and block args */
  int32_t param_index; /* >= 0 for @main params */
} tpj_ir_value_t;

typedef struct tpj_ir_op_s {
  const char* name;           /* "stablehlo.add" (static string) */
  int32_t block;
  const tpj_value_t* operands; /* (num_operands) arena */
  int32_t num_operands;
  tpj_value_t first_result;   /* results are consecutive value ids */
  int32_t num_results;
  const int32_t* regions;     /* (num_regions) arena */
  int32_t num_regions;
  const char* attrs;          /* attribute dict body without braces, or NULL */
  /* stablehlo.constant payload: dense row-major bytes of the result type, or a
   * single element when `splat` is set. */
  const void* data;
  size_t nbytes;
  bool splat;
} tpj_ir_op_t;

typedef struct tpj_ir_region_s {
  int32_t parent;          /* enclosing block */
  tpj_value_t first_arg;   /* block args are consecutive value ids */
  int32_t num_args;
  const tpj_value_t* results; /* (num_results) arena, set by region_end */
  int32_t num_results;
  bool closed;
  int32_t owner_op;        /* op using this region, -1 while unused */
} tpj_ir_region_t;

struct tpj_graph_s {
  tpj_arena_t arena;
  /* Values live in fixed-size chunks that never move, so type pointers handed
   * out by tpj_graph_value_type stay valid for the graph's lifetime. */
  tpj_ir_value_t** value_chunks; size_t num_values, cap_values, cap_chunks;
  tpj_ir_op_t* ops; size_t num_ops, cap_ops;
  tpj_ir_region_t* regions; size_t num_regions, cap_regions;
  tpj_value_t* params; const char** param_attrs; size_t num_params, cap_params;
  tpj_value_t* results; const char** result_attrs; size_t num_results;
  bool results_set;
  const char** module_attrs; size_t num_module_attrs, cap_module_attrs;
  int32_t cur_block;       /* innermost open region, or TPJ_IR_MAIN_BLOCK */
  /* Runtime checks (checks.c): (bad, value) value pairs and their messages. */
  tpj_check_t* checks; tpj_value_t* check_values; size_t num_checks, cap_checks;
  bool checks_disabled;
  bool partitioned;        /* tpj_graph_set_partitioned */
  tpj_value_t check_result; /* packed by set_results; TPJ_VALUE_NONE when none */
};

/* Builds the packed check result (called by tpj_graph_set_results). */
tpj_status_t tpj_ir_checks_pack(tpj_graph_t* g) TPJ_MUST_USE;

/* Checks that v is a value of g visible in the current block and returns its
 * type. `op` and `what` name the op and operand in the error message. */
tpj_status_t tpj_ir_operand(const tpj_graph_t* g, const char* op, const char* what,
                            tpj_value_t v, const tpj_type_t** out_type) TPJ_MUST_USE;

/* Checks a closed, unused region built in the current block whose arguments
 * and results are the given scalar dtypes. */
tpj_status_t tpj_ir_region_check(const tpj_graph_t* g, const char* op, const char* what,
                                 int32_t region, const tpj_dtype_t* arg_dtypes,
                                 size_t num_args, const tpj_dtype_t* result_dtypes,
                                 size_t num_results) TPJ_MUST_USE;

/* Description of an op to append. */
typedef struct tpj_ir_op_desc_s {
  const char* name;
  const tpj_value_t* operands; size_t num_operands;
  const tpj_type_t* result_types; size_t num_results;
  const int32_t* regions; size_t num_regions;
  const char* attrs;       /* copied; NULL for none */
  const void* data; size_t nbytes; bool splat; /* constants only (copied) */
} tpj_ir_op_desc_t;

/* Appends the op to the current block, claims its regions, and writes the
 * result ids to out_results (num_results). Operands must already be checked. */
tpj_status_t tpj_ir_op_append(tpj_graph_t* g, const tpj_ir_op_desc_t* desc,
                              tpj_value_t* out_results) TPJ_MUST_USE;

/* Attribute text helpers (append to sb). */
void tpj_ir_fmt_array(tpj_strbuf_t* sb, const char* name, const int64_t* v, size_t n);
void tpj_ir_fmt_list(tpj_strbuf_t* sb, const int64_t* v, size_t n); /* "[1, 2]" */
/* "name = dense<[[lo, hi], ...]> : tensor<Nx2xi64>" */
void tpj_ir_fmt_padding(tpj_strbuf_t* sb, const char* name, const int64_t* pairs, size_t n);
/* "name = dense<[[a, b], [c, d]]> : tensor<RxCxi64>" of a (rows, cols) row-major array. */
void tpj_ir_fmt_matrix(tpj_strbuf_t* sb, const char* name, const int64_t* v, size_t rows,
                       size_t cols);

/* Validates a dim list: each in [0, rank), no repeats. */
tpj_status_t tpj_ir_check_dims(const char* op, const char* what, const int64_t* dims,
                               size_t n, int64_t rank) TPJ_MUST_USE;

/* Finishes an op whose attrs were collected in sb (sb is always deinit'd). */
tpj_status_t tpj_ir_append_with_attrs(tpj_graph_t* g, tpj_ir_op_desc_t* desc,
                                      tpj_strbuf_t* sb, tpj_value_t* out_results) TPJ_MUST_USE;

/* Builds a closed, unused region (acc, x) -> acc `kind` x over scalars of
 * dtype (reduce_simple's body; `name` names the op in errors). */
tpj_status_t tpj_ir_reduce_body(tpj_graph_t* g, const char* name, tpj_dtype_t dtype,
                                tpj_reduce_kind_t kind, int32_t* out_body) TPJ_MUST_USE;

/* Output size of one window dim (0 when the window does not fit). */
int64_t tpj_ir_window_out(int64_t in, int64_t base_dil, int64_t lo, int64_t hi, int64_t win,
                          int64_t win_dil, int64_t stride);

#endif /* TPJ_IR_INTERNAL_H_ */
