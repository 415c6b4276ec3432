/* tpj/ir.h: the graph IR and its StableHLO builder.
 *
 * A tpj_graph_t is one function `@main` (plus nested regions for reduce bodies,
 * comparators, ...). Values are integer ids into the graph. Every builder call
 * type-checks its operands and infers the result type, returning a status that
 * names the op, the offending value and what was expected; nothing ill-typed
 * ever reaches the emitter. Ops are stored as StableHLO ops, so emission is a
 * straight walk (see tpj/emit.h).
 */
#ifndef TPJ_IR_H_
#define TPJ_IR_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TPJ_MAX_RANK 8

/* ----------------------------------------------------------------- dtype -- */

/* Numbering equals the PJRT buffer-type enum so conversion is the identity. */
typedef enum tpj_dtype_e {
  TPJ_DTYPE_INVALID = 0,
  TPJ_DTYPE_PRED = 1,
  TPJ_DTYPE_S8 = 2,
  TPJ_DTYPE_S16 = 3,
  TPJ_DTYPE_S32 = 4,
  TPJ_DTYPE_S64 = 5,
  TPJ_DTYPE_U8 = 6,
  TPJ_DTYPE_U16 = 7,
  TPJ_DTYPE_U32 = 8,
  TPJ_DTYPE_U64 = 9,
  TPJ_DTYPE_F16 = 10,
  TPJ_DTYPE_F32 = 11,
  TPJ_DTYPE_F64 = 12,
  TPJ_DTYPE_BF16 = 13,
  TPJ_DTYPE_C64 = 14,
  TPJ_DTYPE_C128 = 15,
  TPJ_DTYPE_COUNT_ = 16,
} tpj_dtype_t;

size_t tpj_dtype_size(tpj_dtype_t dtype);        /* bytes per element; 0 if invalid */
const char* tpj_dtype_mlir(tpj_dtype_t dtype);   /* "f32", "i1", "ui8", "bf16" */
const char* tpj_dtype_name(tpj_dtype_t dtype);   /* "float32", "bool", "uint8" */
/* The spellings of outside formats, from the same table; NULL when the
 * format has no spelling for the dtype. The parsers return INVALID for a
 * spelling no dtype has. */
const char* tpj_dtype_safetensors_name(tpj_dtype_t dtype); /* "F32", "BOOL", "BF16" */
const char* tpj_dtype_npy_descr(tpj_dtype_t dtype);        /* "<f4", "|b1" (no bf16) */
tpj_dtype_t tpj_dtype_from_name(const char* name);         /* "float32" -> F32 */
tpj_dtype_t tpj_dtype_from_safetensors(const char* name);
tpj_dtype_t tpj_dtype_from_npy_descr(const char* descr);
bool tpj_dtype_is_float(tpj_dtype_t dtype);      /* f16 bf16 f32 f64 */
bool tpj_dtype_is_signed_int(tpj_dtype_t dtype); /* s8..s64 */
bool tpj_dtype_is_unsigned_int(tpj_dtype_t dtype); /* u8..u64 (not pred) */
bool tpj_dtype_is_complex(tpj_dtype_t dtype);

/* ------------------------------------------------------------------ type -- */

typedef struct tpj_type_s {
  tpj_dtype_t dtype;
  int32_t rank;
  int64_t dims[TPJ_MAX_RANK]; /* (rank) static sizes, each >= 0 */
} tpj_type_t;

/* Builds a type; INVALID_ARGUMENT for rank > TPJ_MAX_RANK or a negative dim. */
tpj_status_t tpj_type_init(tpj_dtype_t dtype, const int64_t* dims, size_t rank,
              tpj_type_t* out_type) TPJ_MUST_USE;
tpj_type_t tpj_type_scalar(tpj_dtype_t dtype);
int64_t tpj_type_numel(const tpj_type_t* type);
bool tpj_type_equal(const tpj_type_t* a, const tpj_type_t* b);
/* Writes "tensor<2x3xf32>" into buf (always NUL-terminated). */
void tpj_type_format(const tpj_type_t* type, char* buf, size_t buf_size);

/* ----------------------------------------------------------------- graph -- */

typedef struct tpj_graph_s tpj_graph_t;
typedef int32_t tpj_value_t;
#define TPJ_VALUE_NONE ((tpj_value_t)-1)

tpj_status_t tpj_graph_create(tpj_graph_t** out_graph) TPJ_MUST_USE;
void tpj_graph_destroy(tpj_graph_t* graph);

/* Appends an argument of @main. Only valid while no region is open. */
tpj_status_t tpj_graph_add_param(tpj_graph_t* graph, const tpj_type_t* type,
                    tpj_value_t* out_value) TPJ_MUST_USE;
/* Sets the results of @main (call once, after all ops). */
tpj_status_t tpj_graph_set_results(tpj_graph_t* graph, const tpj_value_t* values,
                      size_t count) TPJ_MUST_USE;
/* Optional per-argument / per-result attribute text (e.g. mhlo.sharding) */
tpj_status_t tpj_graph_set_param_attr(tpj_graph_t* graph, size_t index, const char* attr)
    TPJ_MUST_USE;
tpj_status_t tpj_graph_set_result_attr(tpj_graph_t* graph, size_t index, const char* attr)
    TPJ_MUST_USE;
/* Module attribute text, e.g. "mhlo.num_partitions = 2 : i32". */
tpj_status_t tpj_graph_add_module_attr(tpj_graph_t* graph, const char* attr) TPJ_MUST_USE;

/* Borrowed; NULL if the id is not a value of this graph. Stays valid for the
 * graph's lifetime (builder calls never move stored types). */
const tpj_type_t* tpj_graph_value_type(const tpj_graph_t* graph, tpj_value_t value);
size_t tpj_graph_param_count(const tpj_graph_t* graph);
size_t tpj_graph_result_count(const tpj_graph_t* graph);
const tpj_type_t* tpj_graph_result_type(const tpj_graph_t* graph, size_t index);
size_t tpj_graph_op_count(const tpj_graph_t* graph); /* all ops, regions included */

/* Whole-graph check: results set, every operand defined before use and in scope,
 * every region closed. The builders already type-check each op. */
tpj_status_t tpj_graph_verify(const tpj_graph_t* graph) TPJ_MUST_USE;

/* --------------------------------------------------------------- regions -- */

/* Opens a region (the body of reduce, sort, scatter, reduce_window,
 * select_and_scatter). Ops built until the matching _end go into it.
 * out_args receives `count` block-argument values. Regions may nest. */
tpj_status_t tpj_graph_region_begin(tpj_graph_t* graph, const tpj_type_t* arg_types,
                       size_t count, tpj_value_t* out_args) TPJ_MUST_USE;
/* Closes the innermost region with a stablehlo.return of `results`. */
tpj_status_t tpj_graph_region_end(tpj_graph_t* graph, const tpj_value_t* results,
                     size_t count, int32_t* out_region) TPJ_MUST_USE;

/* ------------------------------------------------------------ op builders -- */

typedef enum tpj_unary_op_e {
  TPJ_UNARY_OP_ABS, TPJ_UNARY_OP_NEGATE, TPJ_UNARY_OP_EXP, TPJ_UNARY_OP_EXPM1,
  TPJ_UNARY_OP_LOG, TPJ_UNARY_OP_LOG1P, TPJ_UNARY_OP_SQRT, TPJ_UNARY_OP_RSQRT,
  TPJ_UNARY_OP_CBRT, TPJ_UNARY_OP_TANH, TPJ_UNARY_OP_LOGISTIC, TPJ_UNARY_OP_SINE,
  TPJ_UNARY_OP_COSINE, TPJ_UNARY_OP_TAN, TPJ_UNARY_OP_FLOOR, TPJ_UNARY_OP_CEIL,
  TPJ_UNARY_OP_ROUND_EVEN, TPJ_UNARY_OP_ROUND_AFZ, TPJ_UNARY_OP_SIGN,
  TPJ_UNARY_OP_NOT, TPJ_UNARY_OP_IS_FINITE, TPJ_UNARY_OP_POPCNT,
  TPJ_UNARY_OP_CLZ,
  TPJ_UNARY_OP_COUNT_
} tpj_unary_op_t;

typedef enum tpj_binary_op_e {
  TPJ_BINARY_OP_ADD, TPJ_BINARY_OP_SUB, TPJ_BINARY_OP_MUL, TPJ_BINARY_OP_DIV,
  TPJ_BINARY_OP_REM, TPJ_BINARY_OP_POW, TPJ_BINARY_OP_MAX, TPJ_BINARY_OP_MIN,
  TPJ_BINARY_OP_AND, TPJ_BINARY_OP_OR, TPJ_BINARY_OP_XOR, TPJ_BINARY_OP_ATAN2,
  TPJ_BINARY_OP_SHL, TPJ_BINARY_OP_SHR_ARITH, TPJ_BINARY_OP_SHR_LOGICAL,
  TPJ_BINARY_OP_COUNT_
} tpj_binary_op_t;

typedef enum tpj_compare_dir_e {
  TPJ_COMPARE_DIR_EQ, TPJ_COMPARE_DIR_NE, TPJ_COMPARE_DIR_LT,
  TPJ_COMPARE_DIR_LE, TPJ_COMPARE_DIR_GT, TPJ_COMPARE_DIR_GE,
} tpj_compare_dir_t;

/* Reduction bodies built automatically by tpj_build_reduce_simple & co. */
typedef enum tpj_reduce_kind_e {
  TPJ_REDUCE_KIND_ADD, TPJ_REDUCE_KIND_MUL, TPJ_REDUCE_KIND_MAX,
  TPJ_REDUCE_KIND_MIN, TPJ_REDUCE_KIND_AND, TPJ_REDUCE_KIND_OR,
} tpj_reduce_kind_t;

/* Constants. `data` is dense row-major host data of type->dtype (pred: 1 byte
 * per element, 0 or 1). */
tpj_status_t tpj_build_constant(tpj_graph_t* g, const tpj_type_t* type,
                   const void* data, size_t nbytes, tpj_value_t* out) TPJ_MUST_USE;
/* A splat of `value` (converted to dtype; for pred nonzero is true). */
tpj_status_t tpj_build_splat(tpj_graph_t* g, tpj_dtype_t dtype, const int64_t* dims,
                size_t rank, double value, tpj_value_t* out) TPJ_MUST_USE;
/* Exact integer splat (for s64/u64 values beyond 2^53). */
tpj_status_t tpj_build_splat_int(tpj_graph_t* g, tpj_dtype_t dtype, const int64_t* dims,
                    size_t rank, int64_t value, tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_iota(tpj_graph_t* g, const tpj_type_t* type, int64_t dim,
               tpj_value_t* out) TPJ_MUST_USE;

/* Elementwise: operands must have identical types (no implicit broadcast). */
tpj_status_t tpj_build_unary(tpj_graph_t* g, tpj_unary_op_t op, tpj_value_t x,
                tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_binary(tpj_graph_t* g, tpj_binary_op_t op, tpj_value_t a,
                 tpj_value_t b, tpj_value_t* out) TPJ_MUST_USE;
/* Result is pred; compare type (FLOAT / SIGNED / UNSIGNED) follows the dtype. */
tpj_status_t tpj_build_compare(tpj_graph_t* g, tpj_compare_dir_t dir, tpj_value_t a,
                  tpj_value_t b, tpj_value_t* out) TPJ_MUST_USE;
/* pred must be pred with the shape of a (or a scalar pred). */
tpj_status_t tpj_build_select(tpj_graph_t* g, tpj_value_t pred, tpj_value_t on_true,
                 tpj_value_t on_false, tpj_value_t* out) TPJ_MUST_USE;
/* lo / hi: scalars or the shape of x, same dtype as x. */
tpj_status_t tpj_build_clamp(tpj_graph_t* g, tpj_value_t lo, tpj_value_t x,
                tpj_value_t hi, tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                  tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_bitcast_convert(tpj_graph_t* g, tpj_value_t x, tpj_dtype_t dtype,
                          tpj_value_t* out) TPJ_MUST_USE;

/* Shape ops. */
tpj_status_t tpj_build_broadcast_in_dim(tpj_graph_t* g, tpj_value_t x,
                           const int64_t* out_dims, size_t out_rank,
                           const int64_t* broadcast_dims, /* (rank of x) */
                           tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_reshape(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                  size_t rank, tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_transpose(tpj_graph_t* g, tpj_value_t x, const int64_t* perm,
                    size_t rank, tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_slice(tpj_graph_t* g, tpj_value_t x, const int64_t* start,
                const int64_t* limit, const int64_t* stride, size_t rank,
                tpj_value_t* out) TPJ_MUST_USE;
/* start_indices: `rank` scalar integer values. */
tpj_status_t tpj_build_dynamic_slice(tpj_graph_t* g, tpj_value_t x,
                        const tpj_value_t* start_indices,
                        const int64_t* sizes, size_t rank, tpj_value_t* out)
    TPJ_MUST_USE;
tpj_status_t tpj_build_dynamic_update_slice(tpj_graph_t* g, tpj_value_t x,
                               tpj_value_t update,
                               const tpj_value_t* start_indices, size_t rank,
                               tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_concatenate(tpj_graph_t* g, const tpj_value_t* xs, size_t count,
                      int64_t dim, tpj_value_t* out) TPJ_MUST_USE;
/* Negative padding crops. interior may be NULL (all zero). */
tpj_status_t tpj_build_pad(tpj_graph_t* g, tpj_value_t x, tpj_value_t pad_value,
              const int64_t* low, const int64_t* high,
              const int64_t* interior, size_t rank, tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_reverse(tpj_graph_t* g, tpj_value_t x, const int64_t* dims,
                  size_t count, tpj_value_t* out) TPJ_MUST_USE;

/* Linear algebra. Result: batch dims, lhs free dims, rhs free dims (StableHLO
 * order). out_dtype: TPJ_DTYPE_INVALID means lhs dtype. */
typedef struct tpj_dot_dims_s {
  const int64_t* lhs_batch; size_t num_lhs_batch;
  const int64_t* rhs_batch; size_t num_rhs_batch;
  const int64_t* lhs_contract; size_t num_lhs_contract;
  const int64_t* rhs_contract; size_t num_rhs_contract;
} tpj_dot_dims_t;
tpj_status_t tpj_build_dot_general(tpj_graph_t* g, tpj_value_t lhs, tpj_value_t rhs,
                      const tpj_dot_dims_t* dims, tpj_dtype_t out_dtype,
                      tpj_value_t* out) TPJ_MUST_USE;

/* Convolution in PyTorch layout: input (N, C, spatial...), kernel
 * (O, I/groups, spatial...), output (N, O, spatial...). All arrays have
 * `num_spatial` entries; padding is (num_spatial, 2) low/high. */
typedef struct tpj_conv_params_s {
  size_t num_spatial;
  const int64_t* window_strides;
  const int64_t* padding;       /* (num_spatial, 2) */
  const int64_t* lhs_dilation;  /* NULL = all 1 */
  const int64_t* rhs_dilation;  /* NULL = all 1 */
  int64_t feature_group_count;
  int64_t batch_group_count;
} tpj_conv_params_t;
tpj_status_t tpj_build_convolution(tpj_graph_t* g, tpj_value_t input, tpj_value_t kernel,
                      const tpj_conv_params_t* params, tpj_value_t* out) TPJ_MUST_USE;

/* Reductions. `body` is a closed region taking 2*n scalars (acc..., x...) and
 * returning n scalars. Results drop the reduced dims. */
tpj_status_t tpj_build_reduce(tpj_graph_t* g, const tpj_value_t* inputs,
                 const tpj_value_t* inits, size_t n, const int64_t* dims,
                 size_t num_dims, int32_t body, tpj_value_t* out_values) TPJ_MUST_USE;
/* One input, identity init value for `kind`, body built for you. */
tpj_status_t tpj_build_reduce_simple(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                        const int64_t* dims, size_t num_dims, tpj_value_t* out)
    TPJ_MUST_USE;

/* reduce_window over one input. Arrays have rank entries; padding (rank, 2);
 * base/window dilations may be NULL (all 1). */
typedef struct tpj_window_s {
  size_t rank;
  const int64_t* dims;
  const int64_t* strides;
  const int64_t* base_dilations;
  const int64_t* window_dilations;
  const int64_t* padding; /* (rank, 2) */
} tpj_window_t;
tpj_status_t tpj_build_reduce_window(tpj_graph_t* g, tpj_value_t x, tpj_value_t init,
                        const tpj_window_t* window, int32_t body,
                        tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_select_and_scatter(tpj_graph_t* g, tpj_value_t operand,
                             tpj_value_t source, tpj_value_t init,
                             const tpj_window_t* window, int32_t select_body,
                             int32_t scatter_body, tpj_value_t* out) TPJ_MUST_USE;

/* Gather / scatter (StableHLO semantics, fields named as in the spec). */
typedef struct tpj_gather_dims_s {
  const int64_t* offset_dims; size_t num_offset_dims;
  const int64_t* collapsed_slice_dims; size_t num_collapsed_slice_dims;
  const int64_t* operand_batching_dims; size_t num_operand_batching_dims;
  const int64_t* start_indices_batching_dims; size_t num_start_indices_batching_dims;
  const int64_t* start_index_map; size_t num_start_index_map;
  int64_t index_vector_dim;
  const int64_t* slice_sizes; size_t num_slice_sizes;
  bool indices_are_sorted;
} tpj_gather_dims_t;
tpj_status_t tpj_build_gather(tpj_graph_t* g, tpj_value_t operand, tpj_value_t indices,
                 const tpj_gather_dims_t* dims, tpj_value_t* out) TPJ_MUST_USE;
typedef struct tpj_scatter_dims_s {
  const int64_t* update_window_dims; size_t num_update_window_dims;
  const int64_t* inserted_window_dims; size_t num_inserted_window_dims;
  const int64_t* input_batching_dims; size_t num_input_batching_dims;
  const int64_t* scatter_indices_batching_dims; size_t num_scatter_indices_batching_dims;
  const int64_t* scatter_dims_to_operand_dims; size_t num_scatter_dims_to_operand_dims;
  int64_t index_vector_dim;
  bool indices_are_sorted;
  bool unique_indices;
} tpj_scatter_dims_t;
/* `body` takes (current, update) scalars and returns the new scalar. */
tpj_status_t tpj_build_scatter(tpj_graph_t* g, tpj_value_t operand, tpj_value_t indices,
                  tpj_value_t updates, const tpj_scatter_dims_t* dims,
                  int32_t body, tpj_value_t* out) TPJ_MUST_USE;

/* Sort n operands of one shape along dim; comparator region takes 2*n scalars
 * (lhs0, rhs0, lhs1, rhs1, ...) and returns one pred. */
tpj_status_t tpj_build_sort(tpj_graph_t* g, const tpj_value_t* inputs, size_t n,
               int64_t dim, bool is_stable, int32_t comparator,
               tpj_value_t* out_values) TPJ_MUST_USE;

/* Random bits: state is a u64 tensor<2xui64>; returns new state and bits of
 * `type` (u32 or u64). Algorithm: THREE_FRY. */
tpj_status_t tpj_build_rng_bit_generator(tpj_graph_t* g, tpj_value_t state,
                            const tpj_type_t* type, tpj_value_t* out_state,
                            tpj_value_t* out_bits) TPJ_MUST_USE;

/* Collectives (src/ir/build_collective.c): all_reduce, all_gather,
 * reduce_scatter and all_to_all over one operand, among the processes of each
 * replica group. replica_groups is a (num_groups, group_size) row-major id
 * array that partitions the N = num_groups * group_size processes: every id in
 * [0, N) appears exactly once, and the program must be compiled for N
 * (num_replicas = N for replica ids). channel_id 0 means no channel_handle
 * (cross_replica: ids are replica ids). channel_id > 0 emits
 * channel_handle = #stablehlo.channel_handle<handle = channel_id, type = 1>
 * (device to device): ids are then replica ids across partitions
 * (cross_replica_and_partition), or, with use_global_device_ids, flattened
 * global device ids, as multi-process programs use. all_to_all has no
 * use_global_device_ids; its channel_id > 0 means the ids are partition ids. */
typedef struct tpj_collective_groups_s {
  const int64_t* replica_groups; /* (num_groups, group_size) */
  size_t num_groups;
  size_t group_size;
  int64_t channel_id;            /* 0: none; > 0: channel_handle */
  bool use_global_device_ids;    /* needs channel_id > 0 */
} tpj_collective_groups_t;

/* Result: the operand's type. `body` takes (acc, x) scalars of the operand's
 * dtype and returns one. */
tpj_status_t tpj_build_all_reduce(tpj_graph_t* g, tpj_value_t x,
                                  const tpj_collective_groups_t* groups, int32_t body,
                                  tpj_value_t* out) TPJ_MUST_USE;
/* The body built for you, as tpj_build_reduce_simple builds it. */
tpj_status_t tpj_build_all_reduce_simple(tpj_graph_t* g, tpj_value_t x, tpj_reduce_kind_t kind,
                                         const tpj_collective_groups_t* groups,
                                         tpj_value_t* out) TPJ_MUST_USE;
/* Result: dim all_gather_dim multiplied by group_size (group order). */
tpj_status_t tpj_build_all_gather(tpj_graph_t* g, tpj_value_t x, int64_t all_gather_dim,
                                  const tpj_collective_groups_t* groups,
                                  tpj_value_t* out) TPJ_MUST_USE;
/* all_reduce, then process i of a group keeps part i of group_size equal
 * parts along scatter_dimension (its size must divide by group_size). */
tpj_status_t tpj_build_reduce_scatter(tpj_graph_t* g, tpj_value_t x, int64_t scatter_dimension,
                                      const tpj_collective_groups_t* groups, int32_t body,
                                      tpj_value_t* out) TPJ_MUST_USE;
tpj_status_t tpj_build_reduce_scatter_simple(tpj_graph_t* g, tpj_value_t x,
                                             tpj_reduce_kind_t kind, int64_t scatter_dimension,
                                             const tpj_collective_groups_t* groups,
                                             tpj_value_t* out) TPJ_MUST_USE;
/* Splits along split_dimension into split_count (= group_size) parts, sends
 * part j to the group's process j and concatenates what arrives along
 * concat_dimension in group order. */
tpj_status_t tpj_build_all_to_all(tpj_graph_t* g, tpj_value_t x, int64_t split_dimension,
                                  int64_t concat_dimension, int64_t split_count,
                                  const tpj_collective_groups_t* groups,
                                  tpj_value_t* out) TPJ_MUST_USE;

/* Manual sharding (src/ir/build_sharding.c): the custom calls the SPMD
 * partitioner reads (compile with num_partitions = P and
 * use_spmd_partitioning; the module carries mhlo.num_partitions = P). Each
 * emits "stablehlo.custom_call" with call_target_name and mhlo.sharding.
 * `sharding` is XLA's sharding text, e.g. "{devices=[4]0,1,2,3}",
 * "{replicated}" or "{manual}": 2..4096 chars, in braces, without '"', '\\'
 * or control characters (it is pasted into a quoted attribute; its contents
 * are the plugin's to check). The usual pattern is
 *   full = sharding(x, "{devices=[P]...}"); shard = full_to_shard(full, t);
 *   ... per-partition ops on shard ...;
 *   y = sharding(y, "{manual}"); full = shard_to_full(y, "{devices=...}", t2). */

/* @Sharding: the result is x (same type) annotated with `sharding`. */
tpj_status_t tpj_build_sharding(tpj_graph_t* g, tpj_value_t x, const char* sharding,
                                tpj_value_t* out) TPJ_MUST_USE;
/* @SPMDFullToShardShape with mhlo.sharding = "{manual}": x (the full value,
 * annotated by a @Sharding just before) becomes this partition's shard, of
 * shard_type: x's dtype and rank, each dim <= x's and >= 1 where x's is. */
tpj_status_t tpj_build_full_to_shard(tpj_graph_t* g, tpj_value_t x, const tpj_type_t* shard_type,
                                     tpj_value_t* out) TPJ_MUST_USE;
/* @SPMDShardToFullShape: x (a manual shard, annotated "{manual}" just
 * before) becomes the full value of full_type, sharded as `sharding`:
 * x's dtype and rank, each dim >= x's. */
tpj_status_t tpj_build_shard_to_full(tpj_graph_t* g, tpj_value_t x, const char* sharding,
                                     const tpj_type_t* full_type, tpj_value_t* out) TPJ_MUST_USE;


/* ---------------------------------------------------------------- checks -- */

/* Runtime checks, the way CUDA reports a bad index: asynchronously, never
 * silently. A lowering that cannot prove its input valid at build time (an
 * index in range, an integer divisor nonzero) registers `bad`, a rank-0 pred
 * that is true when the input is invalid, and `value`, a rank-0 s64 naming the
 * offending value. tpj_graph_set_results then appends one extra result after
 * the graph's own (tpj_graph_result_count does not count it): a
 * tensor<2Kxi64> holding (bad, value) for each of the K checks in
 * registration order. The runtime reads it and raises tpj_check_results. */
typedef enum tpj_check_kind_e {
  TPJ_CHECK_KIND_INDEX,    /* OUT_OF_RANGE: an index outside its dim (Python IndexError) */
  TPJ_CHECK_KIND_DIV_ZERO, /* INVALID_ARGUMENT: integer division by zero */
} tpj_check_kind_t;

typedef struct tpj_check_s {
  tpj_check_kind_t kind;
  const char* message; /* names the op and the bound; "{}" stands for the value */
} tpj_check_t;

/* Checks are on by default. Disabled, tpj_graph_add_check stores nothing and
 * lowerings skip building the test (set it before lowering). */
void tpj_graph_set_checks_enabled(tpj_graph_t* graph, bool enabled);
bool tpj_graph_checks_enabled(const tpj_graph_t* graph);
/* A graph that XLA's SPMD partitioner splits (mhlo.sharding annotations):
 * lowerings then build only reductions the partitioner can split across
 * devices (plain max/min bodies, NaN propagated by a separate or-reduction).
 * Off by default; set it before lowering. */
void tpj_graph_set_partitioned(tpj_graph_t* graph, bool partitioned);
bool tpj_graph_is_partitioned(const tpj_graph_t* graph);
/* Registers a check (main block only, before tpj_graph_set_results). */
tpj_status_t tpj_graph_add_check(tpj_graph_t* graph, tpj_check_kind_t kind,
                                 tpj_value_t bad, tpj_value_t value,
                                 const char* message) TPJ_MUST_USE;
size_t tpj_graph_check_count(const tpj_graph_t* graph);
/* Borrowed, valid for the graph's lifetime; NULL past the end. */
const tpj_check_t* tpj_graph_check(const tpj_graph_t* graph, size_t index);
/* The value of the check result (NONE when the graph has no checks or its
 * results are not set yet). */
tpj_value_t tpj_graph_check_result(const tpj_graph_t* graph);

/* The error of a failed check: the kind's code and the message with "{}"
 * replaced by `value`. */
tpj_status_t tpj_check_status(const tpj_check_t* check, int64_t value) TPJ_MUST_USE;
/* Scans a check result read back to the host (2 * count values: bad, value)
 * and returns the status of the first failed check; NULL when all passed. */
tpj_status_t tpj_check_results(const tpj_check_t* checks, size_t count,
                                const int64_t* values) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_IR_H_ */
