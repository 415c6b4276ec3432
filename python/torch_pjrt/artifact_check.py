"""The dynamic dimension of a `.tpj` artifact (docs/artifact.md, "Dynamic
dimensions"): which symbol it is (find_symbol), its shape buckets
(bucket_sizes), and the padding exactness that `export.save` proves on the
graph before it writes anything (check_exact).

A `.tpj` artifact holds one program per shape bucket; a run with symbol s
pads every dynamic input from c * s to c * b rows along dimension 0 and keeps
the first c * s rows of every output. That is exact only when no result row
depends on another row along dimension 0, so every node of the decomposed
graph is checked against a small rule table:

- shapes: the symbol appears only in dimension 0 of a tensor, as c * symbol;
- ALONG_DIM: ops that mix values along their `dim` argument (reductions,
  scans, sorts, softmax, concatenation, selection, slicing, ...) may not
  work along dimension 0 of a dynamic tensor (None or [] means every dim);
- INDEXED: advanced indexing may not index dimension 0 of a dynamic tensor,
  and a lookup may not read rows of a dynamic table;
- ALWAYS: ops that mix rows whatever their arguments (batch-norm
  statistics) may not take a dynamic tensor;
- a tensor result without the symbol may not come from one with it;
- the symbol's value may feed only the size arguments in SIZE_ARGS.

Anything not proved exact is refused, naming the op, the node and why.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sympy
import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.utils import _pytree as pytree

from . import fx_lower
from .export_guards import _bound

# op -> what it does along its dim argument (for the message): exact unless
# that dim is 0 (None or [] meaning every dim) on a dynamic tensor.
ALONG_DIM: Dict[str, str] = {}
for _verb, _ops in {
    "reduces": ("sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin",
                "var", "std", "var_mean", "std_mean", "logsumexp", "any", "all", "nansum",
                "nanmean", "count_nonzero", "median", "nanmedian", "mode", "kthvalue",
                "aminmax", "linalg_vector_norm", "norm", "renorm"),
    "scans": ("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "_cummax_helper",
              "_cummin_helper", "diff"),
    "sorts": ("sort", "argsort", "topk", "unique_dim", "unique_consecutive"),
    "normalizes": ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax",
                   "glu"),
    "concatenates": ("cat", "concat", "concatenate", "stack", "_cat"),
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
# Ops whose dim counts in the rank of the result (one more than the inputs').
RESULT_RANK_DIM = frozenset({"aten::stack"})

# op -> the tensor argument it indexes along dimension 0 by its index tensors:
# exact unless that tensor is dynamic and indices[0] is not None.
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
# (the batch-norm ops only with training=True).
ALWAYS: Dict[str, str] = {
    "aten::_native_batch_norm_legit": "computes batch-norm statistics over the batch",
    "aten::_native_batch_norm_legit_functional":
        "computes batch-norm statistics over the batch",
    "aten::native_batch_norm": "computes batch-norm statistics over the batch",
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
}
# Ops that read a size of a tensor: their (c * symbol) result is a size.
SIZE_READERS = frozenset({"aten::sym_size", "aten::sym_numel", "aten::sym_stride"})
# Ops (besides those tagged pointwise and those above) whose every result row
# along dimension 0 is computed from the same rows of their inputs, given
# the shape rule (the symbol stays in dimension 0).
ROWWISE = frozenset(f"aten::{op}" for op in (
    # layout, copies, factories over a tensor
    "_to_copy", "alias", "alias_copy", "detach", "lift_fresh_copy", "copy", "fill",
    "full_like", "zeros_like", "ones_like", "empty_like", "expand_as", "permute",
    "permute_copy", "transpose", "transpose_copy", "t", "t_copy", "squeeze", "squeeze_copy",
    "unsqueeze", "unsqueeze_copy", "diagonal", "diagonal_copy", "masked_fill", "where",
    "rsub", "floor_divide", "hardswish", "tril", "triu", "constant_pad_nd",
    # matrix products with the batch as a batch or row dimension
    "mm", "bmm", "addmm", "addmv", "mv", "baddbmm", "dot",
    "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention",
    # convolution, pooling, resampling, padding of the spatial dims
    "convolution", "_convolution", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "grid_sampler_2d",
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
    "replication_pad2d", "replication_pad3d", "pixel_shuffle", "pixel_unshuffle",
    # normalization within a row, per-row losses (reductions fail the rows rule)
    "native_layer_norm", "native_group_norm", "_native_batch_norm_legit_no_training",
    "_weight_norm_interface", "mse_loss", "nll_loss_forward", "nll_loss2d_forward",
    "binary_cross_entropy", "dist", "_cdist_forward", "repeat",
))
_INT64_MAX = 2 ** 63 - 1


class ArtifactError(ValueError):
    """The program cannot be saved as (or the file is not) a `.tpj` artifact
    (re-exported by artifact.py and export.py)."""


class ExactnessError(ArtifactError):
    """Padding the dynamic dimension is not exact for this program."""


class _Ctx:
    """The symbol being checked and how to name it in messages."""

    def __init__(self, symbol: sympy.Symbol, name: str, who: str, hint: str,
                 others_static: bool = False):
        self.symbol = symbol
        self.name = name
        # True: other symbols are sizes fixed per program (a compiled graph
        # compiles one program per value of them), so only expressions in
        # `symbol` are checked; False (export): there may be no other.
        self.others_static = others_static
        self.who = who    # "export.save", or the compiled graph's name
        self.hint = hint  # what to do instead

    def show(self, value: Any) -> str:
        """`value` (a size, a shape or an expression) with the Dim's name."""
        if isinstance(value, (list, tuple, torch.Size)):
            return "[" + ", ".join(self.show(v) for v in value) + "]"
        expr = _expr(value)
        if isinstance(expr, sympy.Basic):
            return str(expr.subs(self.symbol, sympy.Symbol(self.name)))
        return str(value)

    def refuse(self, where: str, node: fx.Node, detail: str, why: str) -> ExactnessError:
        return ExactnessError(
            f"{self.who}: padding the dynamic dimension '{self.name}' is not exact at "
            f"{where} (node {node.name}, {detail}): {why}; {self.hint}")


def _expr(value: Any) -> Any:
    """The sympy expression of a SymInt/SymFloat/SymBool, the value otherwise."""
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return value.node.expr
    return value


def free_symbols(value: Any) -> set:
    expr = _expr(value)
    return set(expr.free_symbols) if isinstance(expr, sympy.Basic) else set()


def scale_of(value: Any, symbol: sympy.Symbol) -> Optional[int]:
    """c when `value` is c * symbol (integer c >= 1); None otherwise."""
    expr = _expr(value)
    if not isinstance(expr, sympy.Expr) or expr.free_symbols != {symbol}:
        return None
    coeff, rest = expr.as_coeff_Mul()
    if rest != symbol or not coeff.is_Integer or int(coeff) < 1:
        return None
    return int(coeff)


def _scaled(value: Any, ctx: "_Ctx") -> bool:
    """`value` is c * symbol: c an integer >= 1, or, where other symbols are
    sizes fixed per program (ctx.others_static), a positive product of them
    and an integer (batch * seq in a view's size)."""
    if scale_of(value, ctx.symbol) is not None:
        return True
    expr = _expr(value)
    if not ctx.others_static or not isinstance(expr, sympy.Expr):
        return False
    c = sympy.simplify(expr / ctx.symbol)
    return (ctx.symbol not in c.free_symbols and c.is_integer is True
            and c.is_positive is True)


def _schema_name(node: fx.Node) -> Optional[str]:
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


def _val(arg: Any) -> Any:
    return arg.meta.get("val") if isinstance(arg, fx.Node) else arg


def _is_dynamic(val: Any, ctx: _Ctx) -> bool:
    return (isinstance(val, torch.Tensor) and val.dim() > 0
            and ctx.symbol in free_symbols(val.shape[0]))


def _tensor_leaves(val: Any) -> List[torch.Tensor]:
    return [v for v in pytree.tree_leaves(val) if isinstance(v, torch.Tensor)]


def _input_tensors(node: fx.Node) -> List[torch.Tensor]:
    return [v for n in node.all_input_nodes for v in _tensor_leaves(n.meta.get("val"))]


def _sym_nodes(value: Any) -> List[fx.Node]:
    """The nodes in `value` (an argument) whose value is a symbolic number."""
    found: List[fx.Node] = []

    def visit(n: fx.Node) -> fx.Node:
        if free_symbols(n.meta.get("val")) and not isinstance(n.meta.get("val"), torch.Tensor):
            found.append(n)
        return n

    fx.node.map_arg(value, visit)
    return found


# ----------------------------------------------------------------- symbol --

@dataclass
class Symbol:
    """The one dynamic size of the program."""
    expr: sympy.Symbol
    name: str
    min: int
    max: int


def _dim_name(val: torch.Tensor, expr: sympy.Symbol) -> str:
    """The Dim's name ("batch") of symbol `expr`, from the shape env's debug
    names; the symbol's own name when torch does not say."""
    try:
        env = val.fake_mode.shape_env
        for src in env.var_to_sources.get(expr, []):
            name = env.source_name_to_debug_name.get(src.name)
            if name and name.isidentifier():
                return name
    except AttributeError:
        pass
    return str(expr)


def find_symbol(ep: ExportedProgram, inputs: Sequence[fx.Node]) -> Optional[Symbol]:
    """The program's one dynamic size, read from the user inputs' shapes and
    ep.range_constraints; None for static shapes. Refuses several sizes, an
    unbounded one and data-dependent sizes."""
    found: Dict[sympy.Symbol, str] = {}
    for node in inputs:
        val = node.meta.get("val")
        for size in getattr(val, "shape", ()):
            for s in free_symbols(size):
                found.setdefault(s, _dim_name(val, s))
    if not found:
        for node in ep.graph.nodes:
            shapes = [v.shape for v in _tensor_leaves(node.meta.get("val"))]
            if any(free_symbols(size) for shape in shapes for size in shape):
                raise ArtifactError(f"export.save: node {node.name} ({fx_lower.op_name(node)}) "
                                    f"has a data-dependent size; an artifact's sizes are "
                                    f"static or follow one dynamic input size")
        return None
    if len(found) > 1:
        names = ", ".join(sorted(found.values()))
        raise ArtifactError(f"export.save: the program has {len(found)} dynamic sizes "
                            f"({names}); format 1 supports one, in dimension 0 of the inputs: "
                            f"make the others static")
    expr, name = next(iter(found.items()))
    vr = ep.range_constraints.get(expr)
    lo, hi = (_bound(vr.lower), _bound(vr.upper)) if vr is not None else (None, None)
    if hi is None:
        raise ArtifactError(f"export.save: the dynamic dimension '{name}' has no upper bound: "
                            f"give Dim('{name}', max=N) to torch.export")
    return Symbol(expr, name, max(lo or 0, 0), hi)


def bucket_sizes(sym: Symbol, buckets: Optional[Sequence[int]]) -> List[int]:
    """The buckets: powers of two from max(min, 1) up to the first at or
    above max, the last replaced by max; or `buckets`, validated."""
    low = max(sym.min, 1)
    if buckets is None:
        p, out = 1, []
        while p < low:
            p *= 2
        while p < sym.max:
            out.append(p)
            p *= 2
        return out + [sym.max]
    try:
        out = [int(b) for b in buckets]
    except (TypeError, ValueError):
        out = []
    if not out or any(b != c for b, c in zip(out, buckets)):
        raise ArtifactError(f"export.save: buckets must be a non-empty list of integers "
                            f"(got {list(buckets)!r})")
    if any(b >= c for b, c in zip(out, out[1:])) or out[0] < low or out[-1] != sym.max:
        raise ArtifactError(f"export.save: buckets {out} for '{sym.name}' must be strictly "
                            f"ascending, each >= {low}, the last equal to the maximum "
                            f"{sym.max}")
    return out


# ------------------------------------------------------------------- rules --

def _check_shapes(node: fx.Node, ctx: _Ctx, where: str) -> None:
    """The symbol only in dimension 0, as c * symbol; no other symbol."""
    for v in _tensor_leaves(node.meta.get("val")):
        for d, size in enumerate(v.shape):
            syms = free_symbols(size)
            if not syms or (ctx.others_static and ctx.symbol not in syms):
                continue
            if syms != {ctx.symbol} and not (ctx.others_static and d == 0
                                             and _scaled(size, ctx)):
                other = ", ".join(sorted(str(s) for s in syms - {ctx.symbol}))
                raise ctx.refuse(where, node, f"dim {d}", f"it has shape "
                                 f"{ctx.show(v.shape)}, a size that depends on {other} "
                                 f"(data-dependent or a second dynamic size)")
            if d != 0 or not _scaled(size, ctx):
                raise ctx.refuse(where, node, f"dim {d}", f"it has shape "
                                 f"{ctx.show(v.shape)} (the dynamic size may appear only "
                                 f"in dimension 0, as c * {ctx.name} with an integer c >= 1)")


def _dims_of(node: fx.Node) -> Tuple[Any, bool]:
    """The node's dim/dims/dimension argument: (value, present)."""
    for name in DIM_ARGS:
        value, present = arg_value(node, name)
        if present:
            return value, True
    return None, False


def _is_full_slice(node: fx.Node, src: torch.Tensor) -> bool:
    """slice(x, 0, start, end, step) keeps every row of x."""
    start, _ = arg_value(node, "start")
    end, _ = arg_value(node, "end")
    step, _ = arg_value(node, "step")
    if start not in (None, 0) or step not in (None, 1):
        return False
    if end is None or (isinstance(end, int) and end >= _INT64_MAX):
        return True
    return sympy.simplify(_expr(_val(end)) - _expr(src.shape[0])) == 0


def _check_along_dim(node: fx.Node, ctx: _Ctx, name: str) -> None:
    verb = ALONG_DIM.get(name)
    if verb is None:
        return
    src, _ = arg_value(node, node.target._schema.arguments[0].name)
    vals = [_val(a) for a in (src if isinstance(src, (list, tuple)) else [src])]
    dyn = [v for v in vals if _is_dynamic(v, ctx)]
    if not dyn:
        return
    dims, present = _dims_of(node)
    if not present:  # e.g. max.other (elementwise); full reductions fail _check_rows_kept
        return
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        raise ctx.refuse(name, node, "every dim", f"it {verb} over every dimension of a "
                         f"tensor of shape {ctx.show(dyn[0].shape)}, dimension 0 (the "
                         f"dynamic one) included")
    rank = max(dyn[0].dim() + (1 if name in RESULT_RANK_DIM else 0), 1)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not any(int(d) % rank == 0 for d in dims):
        return
    if name == "aten::slice" and _is_full_slice(node, dyn[0]):
        return
    raise ctx.refuse(name, node, "dim 0", f"it {verb} along dimension 0 of a tensor of "
                     f"shape {ctx.show(dyn[0].shape)}, the dynamic one, so padded rows "
                     f"would change or move the real rows")


# Ops that keep an integer tensor's values and its dimension 0.
_VALUE_KEEPING = frozenset({"aten::clone", "aten::_to_copy", "aten::alias", "aten::lift_fresh_copy"})


def _is_row_index(arg: Any, ctx: _Ctx) -> bool:
    """True when `arg` holds, at every position, its own coordinate along
    dimension 0, which is the symbol's value long: arange(0, symbol), then
    unsqueezed past dimension 0, copied or plus 0 (how masks index a batch
    with `batch_idx = arange(batch)[:, None, None]`). Padded, it is still
    arange(0, bucket): row i reads row i."""
    if not isinstance(arg, fx.Node) or arg.op != "call_function":
        return False
    name, val = _schema_name(arg), _val(arg)
    if not isinstance(val, torch.Tensor) or val.dtype.is_floating_point or val.dim() == 0:
        return False
    if name == "aten::arange":
        start, has_start = arg_value(arg, "start")
        step, has_step = arg_value(arg, "step")
        start, step = (start if has_start else 0), (step if has_step else 1)
        end = _val(arg_value(arg, "end")[0])
        return start == 0 and step == 1 and _expr(end) == ctx.symbol
    src = arg.args[0] if arg.args else None
    if name == "aten::unsqueeze":
        dim = int(arg_value(arg, "dim")[0])
        return dim % val.dim() != 0 and _is_row_index(src, ctx)
    if name == "aten::add":
        other = arg_value(arg, "other")[0]
        alpha = arg_value(arg, "alpha")[0]
        return other == 0 and alpha in (1, None) and _is_row_index(src, ctx)
    return name in _VALUE_KEEPING and _is_row_index(src, ctx)


def _row_identity_gather(name: str, indices: Sequence[Any], ctx: _Ctx) -> bool:
    """A gather (not a put) whose dimension-0 index is the row index and
    lines up with dimension 0 of the broadcast index shape: out[i] reads
    self[i], padded or not."""
    if name not in ("aten::index", "aten::_unsafe_index") or not _is_row_index(indices[0], ctx):
        return False
    ranks = [_val(i).dim() for i in indices if isinstance(i, fx.Node)]
    return _val(indices[0]).dim() == max(ranks)


def _check_indexing(node: fx.Node, ctx: _Ctx, name: str) -> None:
    if name in INDEXED:
        src, _ = arg_value(node, INDEXED[name])
        indices, _ = arg_value(node, "indices")
        if (_is_dynamic(_val(src), ctx) and isinstance(indices, (list, tuple)) and indices
                and indices[0] is not None and not _row_identity_gather(name, indices, ctx)):
            raise ctx.refuse(name, node, "dim 0", f"it indexes dimension 0 (the dynamic "
                             f"one) of a tensor of shape {ctx.show(_val(src).shape)} by "
                             f"index tensors")
    if name in TABLE_ROWS:
        table, _ = arg_value(node, TABLE_ROWS[name])
        if _is_dynamic(_val(table), ctx):
            raise ctx.refuse(name, node, "dim 0", f"it reads rows of the dynamic tensor "
                             f"{TABLE_ROWS[name]} (shape {ctx.show(_val(table).shape)}) by "
                             f"index")
    why = ALWAYS.get(name)
    if why is not None and any(_is_dynamic(v, ctx) for v in _input_tensors(node)):
        training, present = arg_value(node, "training")
        if not present or training is not False:
            raise ctx.refuse(name, node, "dim 0", f"it {why} (a dynamic input)")


def _check_leading(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """repeat and constant_pad_nd leave dimension 0 of a dynamic tensor alone:
    a repeat count of 1 there, no padding there."""
    if name not in ("aten::repeat", "aten::constant_pad_nd"):
        return
    v = _val(arg_value(node, "self")[0])
    if not _is_dynamic(v, ctx):
        return
    if name == "aten::repeat":
        repeats, _ = arg_value(node, "repeats")
        lead = list(repeats)[len(repeats) - v.dim()]
        if lead != 1:
            raise ctx.refuse(name, node, "dim 0", f"it repeats dimension 0 (the dynamic "
                             f"one) {lead} times, so padded rows would land between real ones")
        return
    pad, _ = arg_value(node, "pad")
    pad = list(pad)
    if len(pad) >= 2 * v.dim() and any(p != 0 for p in pad[2 * v.dim() - 2:2 * v.dim()]):
        raise ctx.refuse(name, node, "dim 0", f"it pads or crops dimension 0 (the dynamic "
                         f"one) by {pad[2 * v.dim() - 2:2 * v.dim()]}")


KNOWN = (frozenset(ALONG_DIM) | frozenset(INDEXED) | frozenset(TABLE_ROWS) | frozenset(ALWAYS)
         | frozenset(SIZE_ARGS) | SIZE_READERS | ROWWISE)


def _check_known(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """An op on a dynamic tensor must be one the rules above cover (or be
    tagged pointwise): anything else is not proved exact."""
    if (name in KNOWN or torch.Tag.pointwise in node.target.tags
            or fx_lower.op_name(node) in fx_lower.NOOP_TARGETS):
        return
    dyn = [v for v in _input_tensors(node) if _is_dynamic(v, ctx)]
    if dyn:
        raise ctx.refuse(name, node, "dim 0", f"torch_pjrt does not know that it keeps the "
                         f"rows of a dynamic tensor (shape {ctx.show(dyn[0].shape)}) apart: "
                         f"it is not in the rule table of torch_pjrt/artifact_check.py")


def _used_leaves(node: fx.Node, val: Any) -> List[torch.Tensor]:
    """The tensor results of `node` that something reads: for a tuple result,
    the items picked by getitem users (every item if another node reads it)."""
    if isinstance(val, torch.Tensor):
        return [val]
    if not isinstance(val, (tuple, list)):
        return []
    picked = set()
    for user in node.users:
        if user.target is not operator.getitem:
            return _tensor_leaves(val)
        if user.users:
            picked.add(user.args[1])
    return [v for i, v in enumerate(val) if i in picked and isinstance(v, torch.Tensor)]


def _check_rows_kept(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """No static tensor (or number) computed from a dynamic tensor."""
    inputs = [v for v in _input_tensors(node) if _is_dynamic(v, ctx)]
    if not inputs or name in SIZE_READERS or fx_lower.op_name(node) in fx_lower.NOOP_TARGETS:
        return
    val = node.meta.get("val")
    if not _tensor_leaves(val) and not free_symbols(val) and val is not None:
        raise ctx.refuse(name, node, "its result", f"it computes the number {val!r} from a "
                         f"tensor of shape {ctx.show(inputs[0].shape)}")
    for out in _used_leaves(node, val):
        if out.dim() == 0 or ctx.symbol not in free_symbols(out.shape[0]):
            if all(isinstance(s, int) for s in out.shape) and out.numel() == 0:
                continue
            raise ctx.refuse(name, node, "its result", f"its result of shape "
                             f"{ctx.show(out.shape)} has no dynamic dimension but is "
                             f"computed from a tensor of shape {ctx.show(inputs[0].shape)} "
                             f"(a reduction over the dynamic dimension)")


def _check_sym_args(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """The symbol's value feeds only the size arguments of SIZE_ARGS."""
    for a in node.target._schema.arguments:
        value, present = arg_value(node, a.name)
        syms = _sym_nodes(value) if present else []
        if ctx.others_static:
            syms = [n for n in syms if ctx.symbol in free_symbols(_val(n))]
        if not syms:
            continue
        sym = syms[0]
        if a.name not in SIZE_ARGS.get(name, ()):
            raise ctx.refuse(name, node, f"argument {a.name}", f"it uses the dynamic size "
                             f"{ctx.show(_val(sym))} (node {sym.name}) as a value, which "
                             f"padding changes; the dynamic size may only feed sizes (view, "
                             f"expand, factory sizes, arange's end)")
        for s in syms:
            if not _scaled(_val(s), ctx):
                raise ctx.refuse(name, node, f"argument {a.name}", f"its size "
                                 f"{ctx.show(_val(s))} (node {s.name}) is not c * {ctx.name}")
        if name == "aten::slice":
            src, _ = arg_value(node, "self")
            dim, _ = arg_value(node, "dim")
            v = _val(src)
            if not (_is_dynamic(v, ctx) and int(dim) % v.dim() == 0 and _is_full_slice(node, v)):
                raise ctx.refuse(name, node, "argument end", f"it slices with the dynamic "
                                 f"size {ctx.show(_val(sym))} as a bound; only a slice "
                                 f"keeping every row of dimension 0 is exact")


def _check_number(node: fx.Node, ctx: _Ctx, where: str) -> None:
    """A number computed from the symbol must itself be c * symbol (a size)."""
    val = node.meta.get("val")
    if ctx.others_static and ctx.symbol not in free_symbols(val):
        return
    if free_symbols(val) and not _scaled(val, ctx):
        raise ctx.refuse(where, node, "its value", f"it computes {ctx.show(val)} from the "
                         f"dynamic size; only sizes c * {ctx.name} (integer c >= 1) may be "
                         f"computed from it")


def _check_python_call(node: fx.Node, ctx: _Ctx, where: str) -> None:
    """A call that is not an ATen op: getitem of a tuple result, or size
    arithmetic (operator.*, torch.sym_*) giving c * symbol."""
    if node.target is operator.getitem:
        return
    val = node.meta.get("val")
    if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        _check_number(node, ctx, where)
        return
    if any(_sym_nodes(a) for a in node.all_input_nodes) or any(
            _is_dynamic(v, ctx) for v in _input_tensors(node)):
        raise ctx.refuse(where, node, "its inputs", "torch_pjrt cannot prove that it keeps "
                         "the rows of the dynamic dimension apart")


def check_exact(gm: fx.GraphModule, symbol: sympy.Symbol, name: str,
                who: str = "export.save",
                hint: str = "export with a static shape or change the model",
                others_static: bool = False) -> None:
    """Raises ExactnessError naming the first node of `gm` (a Core-ATen graph:
    a decomposed exported graph, or a compiled one) at which padding `symbol`
    (the Dim `name`) along dimension 0 to a bucket and slicing the results
    back is not exact. `who` and `hint` begin and end its message."""
    ctx = _Ctx(symbol, name, who, hint, others_static)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            _check_shapes(node, ctx, f"input {node.name}")
        elif node.op == "call_function":
            schema = _schema_name(node)
            where = schema or fx_lower.op_name(node)
            if schema is None:
                _check_python_call(node, ctx, where)
                _check_shapes(node, ctx, where)
            else:
                _check_known(node, ctx, schema)
                _check_sym_args(node, ctx, schema)
                _check_along_dim(node, ctx, schema)
                _check_leading(node, ctx, schema)
                _check_indexing(node, ctx, schema)
                _check_shapes(node, ctx, where)
                _check_rows_kept(node, ctx, schema)
                _check_number(node, ctx, where)
        elif node.op not in ("output", "get_attr"):
            raise ctx.refuse(node.op, node, "its inputs", f"{node.op} nodes cannot be "
                             f"analysed")
