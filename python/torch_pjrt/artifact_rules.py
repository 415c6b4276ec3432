"""The rule table of artifact_check's padding proof (docs/artifact.md,
"Dynamic dimensions"): what each ATen op does to the rows of the dynamic
dimension, and the small schema helpers the checks share with
artifact_layout. An op in none of these tables (nor tagged pointwise) is
not proved exact on a dynamic tensor, and export.save refuses it.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import sympy
import torch
import torch.fx as fx

# op -> what it does along its dim argument (for the message): exact unless
# that dim is the dynamic one (None or [] meaning every dim).
ALONG_DIM: Dict[str, str] = {}
for _verb, _ops in {
    "reduces": ("sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin",
                "var", "std", "var_mean", "std_mean", "logsumexp", "any", "all", "nansum",
                "nanmean", "count_nonzero", "median", "nanmedian", "mode", "kthvalue",
                "aminmax", "linalg_vector_norm", "norm"),
    "scans": ("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "_cummax_helper",
              "_cummin_helper", "diff"),
    "sorts": ("sort", "argsort", "topk", "unique_dim", "unique_consecutive"),
    "normalizes": ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax",
                   "glu"),
    "concatenates": ("cat", "concat", "concatenate", "_cat"),
    "selects": ("select", "select_copy", "index_select", "gather", "take_along_dim",
                "select_scatter", "narrow", "narrow_copy", "unfold", "unfold_copy"),
    "slices": ("slice", "slice_copy", "slice_scatter"),
    "splits": ("split", "split_copy", "split_with_sizes", "split_with_sizes_copy",
               "unsafe_split", "unsafe_split_with_sizes", "chunk", "unsafe_chunk",
               "tensor_split", "unbind", "unbind_copy"),
    "scatters": ("scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy",
                 "index_fill", "index_reduce"),
    "reorders": ("flip", "roll", "cross", "linalg_cross", "repeat_interleave"),
    "transforms": ("_fft_r2c", "_fft_c2r", "_fft_c2c"),
}.items():
    for _op in _ops:
        ALONG_DIM[f"aten::{_op}"] = _verb
DIM_ARGS = ("dim", "dims", "dimension")

# op -> the tensor argument it indexes by its index tensors: exact unless that
# tensor is dynamic and has an index tensor at its dynamic dimension.
INDEXED: Dict[str, str] = {
    "aten::index": "self", "aten::_unsafe_index": "self", "aten::index_put": "self",
    "aten::index_put_": "self", "aten::_unsafe_index_put": "self",
    "aten::_index_put_impl": "self", "aten::_index_put_impl_": "self",
}
# op -> its table argument, read at positions the other inputs give: exact
# unless the table is dynamic.
TABLE_ROWS: Dict[str, str] = {
    "aten::embedding": "weight", "aten::take": "self", "aten::put": "self",
    "aten::searchsorted": "sorted_sequence", "aten::bucketize": "boundaries",
}
# Ops that mix rows whatever their arguments: refused on any dynamic input
# (batch norm in training mode: artifact_layout.check_position).
ALWAYS: Dict[str, str] = {
    "aten::renorm": "normalizes every slice along its dim over all other dims",
    "aten::msort": "sorts along dimension 0",
    "aten::as_strided": "reads memory at arbitrary strides",
    "aten::as_strided_copy": "reads memory at arbitrary strides",
    "aten::as_strided_scatter": "writes memory at arbitrary strides",
    "aten::nonzero": "has a data-dependent size",
    "aten::masked_select": "has a data-dependent size",
    "aten::_embedding_bag": "ends each bag at the next row's offset",
    "aten::_embedding_bag_forward_only": "ends each bag at the next row's offset",
    "aten::embedding_bag": "ends each bag at the next row's offset",
}
# op -> the arguments that may be (c * symbol)-valued sizes.
SIZE_ARGS: Dict[str, Tuple[str, ...]] = {
    "aten::view": ("size",), "aten::_unsafe_view": ("size",), "aten::reshape": ("shape",),
    "aten::view_copy": ("size",), "aten::_reshape_alias": ("size",),
    "aten::expand": ("size",), "aten::expand_copy": ("size",), "aten::empty": ("size",),
    "aten::empty_strided": ("size",), "aten::empty_permuted": ("size",),
    "aten::zeros": ("size",), "aten::ones": ("size",), "aten::full": ("size",),
    "aten::new_empty": ("size",), "aten::new_empty_strided": ("size",),
    "aten::new_zeros": ("size",), "aten::new_ones": ("size",), "aten::new_full": ("size",),
    "aten::arange": ("end",), "aten::slice": ("end",), "aten::native_group_norm": ("N",),
    "aten::repeat": ("repeats",),
}
# Ops that read a size of a tensor: their (c * symbol) result is a size.
SIZE_READERS = frozenset({"aten::sym_size", "aten::sym_numel", "aten::sym_stride"})
# Ops over the batch in dimension 0 only (N of NCHW, the rows of a loss).
N_DIM_OPS = frozenset(f"aten::{op}" for op in (
    "convolution", "_convolution", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "grid_sampler_2d",
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
    "replication_pad2d", "replication_pad3d", "pixel_shuffle", "pixel_unshuffle",
    "native_group_norm", "_weight_norm_interface",
    "mse_loss", "nll_loss_forward", "nll_loss2d_forward", "binary_cross_entropy", "dist",
    "_cdist_forward"))
# Ops that mix (or index) their last two dimensions: the batch must be before them.
LAST_TWO = frozenset(f"aten::{op}" for op in (
    "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention",
    "tril", "triu"))
# Ops (besides those tagged pointwise and those above) whose every result row
# is computed from the same rows of their inputs, given the shape rule and
# the position rules of artifact_layout: N_DIM_OPS see the batch in dimension
# 0, LAST_TWO not in their last two dims, and these anywhere.
ROWWISE = N_DIM_OPS | LAST_TWO | frozenset(f"aten::{op}" for op in (
    # layout, copies, factories over a tensor
    "_to_copy", "alias", "alias_copy", "detach", "lift_fresh_copy", "copy", "fill",
    "full_like", "zeros_like", "ones_like", "empty_like", "expand_as", "permute",
    "permute_copy", "transpose", "transpose_copy", "t", "t_copy", "squeeze", "squeeze_copy",
    "unsqueeze", "unsqueeze_copy", "diagonal", "diagonal_copy", "masked_fill", "where",
    "rsub", "floor_divide", "hardswish", "constant_pad_nd", "stack",
    # matrix products with the batch as a batch or row dimension
    "mm", "bmm", "addmm", "addmv", "mv", "baddbmm", "dot",
    # normalization within a row (reductions fail the rows rule)
    "native_layer_norm", "_native_batch_norm_legit_no_training", "repeat",
))
# Batch norm computing its statistics (training=True, or no running stats):
# exact only with the batch in its channel dimension (artifact_layout).
BATCH_NORM_TRAINING = frozenset(f"aten::{op}" for op in (
    "_native_batch_norm_legit", "_native_batch_norm_legit_functional", "native_batch_norm"))
KNOWN = (frozenset(ALONG_DIM) | frozenset(INDEXED) | frozenset(TABLE_ROWS) | frozenset(ALWAYS)
         | frozenset(SIZE_ARGS) | SIZE_READERS | ROWWISE | BATCH_NORM_TRAINING)


def expr(value: Any) -> Any:
    """The sympy expression of a SymInt/SymFloat/SymBool, the value otherwise."""
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return value.node.expr
    return value


def free_symbols(value: Any) -> set:
    e = expr(value)
    return set(e.free_symbols) if isinstance(e, sympy.Basic) else set()


def schema_name(node: fx.Node) -> Optional[str]:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name
    return None


def arg_value(node: fx.Node, name: str) -> Tuple[Any, bool]:
    """(value, present) of the schema argument `name` of `node`: from its
    args or kwargs, else the schema default; (None, False) when the op has
    no such argument."""
    for i, a in enumerate(node.target._schema.arguments):
        if a.name != name:
            continue
        if not a.kwarg_only and i < len(node.args):
            return node.args[i], True
        if name in node.kwargs:
            return node.kwargs[name], True
        return (a.default_value if a.has_default_value() else None), True
    return None, False
