/* lower_shape.h: lowerings of the shape / view / indexing family (internal).
 *
 * Files: shape_view.c (views, permutes, flips, rolls, repeat, tril/triu),
 * shape_slice.c (cat/stack/split/slice/select/narrow/pad, slice_scatter, select_scatter),
 * index_core.c (advanced indexing: index, index_put, index_select, index_add),
 * index_scatter.c (gather/scatter families, embedding and its backward),
 * index_strided.c (diagonal(_scatter), as_strided, unfold, nonzero refusal),
 * shape_pad.c (reflection/replication padding and their backwards),
 * index_bag.c (_embedding_bag and its dense backward).
 *
 * Runtime (tensor) indices are wrapped when negative like PyTorch. Indices out
 * of range at run time (which StableHLO gather would clamp and scatter drop)
 * are caught by a runtime check (tpj_shape_wrap_index, lower_check.c) that the
 * runtime raises as OUT_OF_RANGE. Static (int argument) dims and indices are
 * checked at lowering time and reported as INVALID_ARGUMENT naming the op and
 * the value.
 */
#ifndef TPJ_LOWER_SHAPE_H_
#define TPJ_LOWER_SHAPE_H_

#include "lower/lower_util.h"

/* ------------------------------------------------ helpers shared by files -- */

/* How a scatter combines the current element with an update. For pred, ADD
 * and MAX are OR, MUL and MIN are AND. */
typedef enum tpj_shape_combine_e {
  TPJ_SHAPE_COMBINE_REPLACE,
  TPJ_SHAPE_COMBINE_ADD,
  TPJ_SHAPE_COMBINE_MUL,
  TPJ_SHAPE_COMBINE_MAX,
  TPJ_SHAPE_COMBINE_MIN,
} tpj_shape_combine_t;

/* Reshapes x to the expected output type i (INTERNAL if the element counts
 * differ); returns x itself when the shape already matches. */
tpj_status_t tpj_shape_reshape_to_out(tpj_graph_t* g, const tpj_lower_call_t* call,
                                      tpj_value_t x, size_t i, tpj_value_t* out) TPJ_MUST_USE;
/* Rank-0 s64 constant. */
tpj_status_t tpj_shape_s64(tpj_graph_t* g, int64_t value, tpj_value_t* out) TPJ_MUST_USE;
/* true (and *out set to zeros of output type 0) when output 0 has no elements. */
tpj_status_t tpj_shape_empty_out(tpj_graph_t* g, const tpj_lower_call_t* call,
                                 tpj_value_t* out, bool* out_done) TPJ_MUST_USE;
/* Converts an integer index tensor to s64 and wraps negatives by `size`,
 * after registering the runtime check that every index lies in [-size, size)
 * (negative_ok: what PyTorch accepts for that op) or else [0, size). `dim`
 * names the indexed dim in the message; -1 for a flat index over `size`
 * elements. The _unsafe_* ops (indices made by decompositions) get no check. */
tpj_status_t tpj_shape_wrap_index(tpj_graph_t* g, const tpj_lower_call_t* call,
                                  tpj_value_t idx, int64_t size, int64_t dim,
                                  bool negative_ok, tpj_value_t* out) TPJ_MUST_USE;
/* s64 iota of `type`'s shape along dim. */
tpj_status_t tpj_shape_iota_s64(tpj_graph_t* g, const tpj_type_t* shape, int64_t dim,
                                tpj_value_t* out) TPJ_MUST_USE;

/* Advanced-index gather. adv_dims (k, strictly increasing) are dims of x;
 * idx[j] are s64 values (already wrapped) all of one shape B. Result shape:
 * B followed by the non-advanced dims of x in order. k == 0 returns x. */
tpj_status_t tpj_shape_gather_adv(tpj_graph_t* g, tpj_value_t x, const int64_t* adv_dims,
                                  const tpj_value_t* idx, size_t k, tpj_value_t* out) TPJ_MUST_USE;
/* The matching scatter: `updates` has the gather result layout (B + rest) and
 * x's dtype; elements of x at the indexed positions are combined with them. */
tpj_status_t tpj_shape_scatter_adv(tpj_graph_t* g, tpj_value_t x, const int64_t* adv_dims,
                                   const tpj_value_t* idx, size_t k, tpj_value_t updates,
                                   tpj_shape_combine_t combine, tpj_value_t* out) TPJ_MUST_USE;

/* Moves the `n` leading dims of v so they start at position p (p == 0 is a
 * no-op). */
tpj_status_t tpj_shape_move_block(tpj_graph_t* g, tpj_value_t v, int64_t n, int64_t p,
                                  tpj_value_t* out) TPJ_MUST_USE;
/* Inverse: moves the `n` dims starting at position p to the front. */
tpj_status_t tpj_shape_move_block_front(tpj_graph_t* g, tpj_value_t v, int64_t n,
                                        int64_t p, tpj_value_t* out) TPJ_MUST_USE;

/* ----------------------------------------------------------- shape_view.c -- */
TPJ_LOWERING(tpj_lower_shape_view);        /* view, reshape, _unsafe_view, squeeze*, unsqueeze, alias */
TPJ_LOWERING(tpj_lower_shape_permute);
TPJ_LOWERING(tpj_lower_shape_transpose);
TPJ_LOWERING(tpj_lower_shape_t);
TPJ_LOWERING(tpj_lower_shape_expand);
TPJ_LOWERING(tpj_lower_shape_flip);
TPJ_LOWERING(tpj_lower_shape_roll);
TPJ_LOWERING(tpj_lower_shape_repeat);
TPJ_LOWERING(tpj_lower_shape_tril);
TPJ_LOWERING(tpj_lower_shape_triu);

/* ---------------------------------------------------------- shape_slice.c -- */
TPJ_LOWERING(tpj_lower_shape_cat);
TPJ_LOWERING(tpj_lower_shape_stack);
TPJ_LOWERING(tpj_lower_shape_split);       /* split*, unbind, chunk: sizes from out types */
TPJ_LOWERING(tpj_lower_shape_slice);
TPJ_LOWERING(tpj_lower_shape_select);
TPJ_LOWERING(tpj_lower_shape_narrow);
TPJ_LOWERING(tpj_lower_shape_constant_pad_nd);
TPJ_LOWERING(tpj_lower_shape_slice_scatter);
TPJ_LOWERING(tpj_lower_shape_select_scatter);
TPJ_LOWERING(tpj_lower_shape_select_backward);
TPJ_LOWERING(tpj_lower_shape_slice_backward);
TPJ_LOWERING(tpj_lower_shape_diagonal_backward);

/* ----------------------------------------------------------- index_core.c -- */
TPJ_LOWERING(tpj_lower_shape_index);
TPJ_LOWERING(tpj_lower_shape_index_put);
TPJ_LOWERING(tpj_lower_shape_index_select);
TPJ_LOWERING(tpj_lower_shape_index_add);
TPJ_LOWERING(tpj_lower_shape_index_copy);

/* -------------------------------------------------------- index_scatter.c -- */
TPJ_LOWERING(tpj_lower_shape_gather);
TPJ_LOWERING(tpj_lower_shape_scatter_src);
TPJ_LOWERING(tpj_lower_shape_scatter_value);
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_src);   /* scatter.reduce */
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_value); /* scatter.value_reduce */
TPJ_LOWERING(tpj_lower_shape_scatter_add);
TPJ_LOWERING(tpj_lower_shape_scatter_reduce_two);
TPJ_LOWERING(tpj_lower_shape_embedding);
TPJ_LOWERING(tpj_lower_shape_embedding_dense_backward);
TPJ_LOWERING(tpj_lower_shape_index_reduce);
TPJ_LOWERING(tpj_lower_shape_take);
TPJ_LOWERING(tpj_lower_shape_put);

/* -------------------------------------------------------- index_strided.c -- */
TPJ_LOWERING(tpj_lower_shape_diagonal);
TPJ_LOWERING(tpj_lower_shape_diagonal_scatter);
TPJ_LOWERING(tpj_lower_shape_as_strided);
TPJ_LOWERING(tpj_lower_shape_unfold);
TPJ_LOWERING(tpj_lower_shape_tril_indices);
TPJ_LOWERING(tpj_lower_shape_triu_indices);
TPJ_LOWERING(tpj_lower_shape_dynamic_unsupported);  /* nonzero, masked_select */

/* ------------------------------------------------------------ shape_pad.c -- */

TPJ_LOWERING(tpj_lower_shape_reflection_pad1d);
TPJ_LOWERING(tpj_lower_shape_reflection_pad1d_backward);
TPJ_LOWERING(tpj_lower_shape_reflection_pad2d);
TPJ_LOWERING(tpj_lower_shape_reflection_pad2d_backward);
TPJ_LOWERING(tpj_lower_shape_reflection_pad3d);
TPJ_LOWERING(tpj_lower_shape_reflection_pad3d_backward);
TPJ_LOWERING(tpj_lower_shape_replication_pad1d);
TPJ_LOWERING(tpj_lower_shape_replication_pad1d_backward);
TPJ_LOWERING(tpj_lower_shape_replication_pad2d);
TPJ_LOWERING(tpj_lower_shape_replication_pad2d_backward);
TPJ_LOWERING(tpj_lower_shape_replication_pad3d);
TPJ_LOWERING(tpj_lower_shape_replication_pad3d_backward);

/* ------------------------------------------------------------ index_bag.c -- */

TPJ_LOWERING(tpj_lower_shape_embedding_bag);  /* _embedding_bag, _embedding_bag_forward_only */
TPJ_LOWERING(tpj_lower_shape_embedding_bag_backward);

#endif /* TPJ_LOWER_SHAPE_H_ */
