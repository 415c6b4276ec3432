"""Where the dynamic size lives in each tensor of a graph, for
artifact_check's padding proof.

Inputs carry the symbol in dimension 0 and are padded there, but inside a
program the batch moves: nn.MultiheadAttention and the RNNs work on
[seq, batch, ...] (a permute), attention heads fold into it
([batch * heads, seq, d]), InstanceNorm views [batch, C, ...] as
[1, batch * C, ...]. Each tensor's Layout says which dimension holds the
symbol and how that dimension factors: its index is
j * (symbol * inner) + i * inner + r for the batch row i, an outer block j
and an inner offset r < inner. Padding to bucket b keeps every (j, i < s, r)
element where it is in that model, so an op is exact when it never mixes
elements of different rows i and its result's layout follows from its
inputs'. `propagate` computes the layouts (refusing a result whose layout
cannot be told); `check_position` holds the ops whose meaning depends on
where the batch is (convolutions work over dimension 0 only, layer norm
normalizes trailing dims, attention mixes its last two, ...); a program's
outputs must end with the batch in dimension 0, outer block 1
(`check_output`), which is what the runner slices.

A tensor made by a factory (zeros(1, batch, h), an expand of a static
tensor) is `uniform`: the same along the symbol, so any layout fits it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import sympy
import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from .artifact_rules import BATCH_NORM_TRAINING, LAST_TWO, N_DIM_OPS, arg_value, schema_name
from .artifact_rules import expr as _expr


@dataclass(frozen=True)
class Layout:
    """The symbol is in dimension `dim`, as outer * symbol * inner."""
    dim: int
    inner: Any = 1          # an int, or a sympy expression of other (static) symbols
    uniform: bool = False   # the values do not vary along the symbol


class Refusal(Exception):
    """An op whose result rows cannot be proved apart, which artifact_check
    turns into its ExactnessError: `detail` (where), `why` with a "{}" for
    each of `shapes`, shown with the Dim's name by `message`."""

    def __init__(self, detail: str, why: str, *shapes: Any):
        super().__init__(f"{detail}: {why}")
        self.detail, self.why, self.shapes = detail, why, shapes

    def message(self, show: Callable[[Any], str]) -> str:
        return self.why.format(*(show(s) for s in self.shapes))


Layouts = Dict[fx.Node, List[Optional[Layout]]]

VIEWS = frozenset(f"aten::{op}" for op in (
    "view", "_unsafe_view", "reshape", "view_copy", "_reshape_alias"))
# Results that are the same along every dimension the symbol can be in.
FACTORIES = frozenset(f"aten::{op}" for op in (
    "empty", "empty_strided", "empty_permuted", "zeros", "ones", "full", "new_empty",
    "new_empty_strided", "new_zeros", "new_ones", "new_full", "full_like", "zeros_like",
    "ones_like", "empty_like", "scalar_tensor"))
CATS = frozenset(f"aten::{op}" for op in ("cat", "concat", "concatenate", "_cat"))


def _val(arg: Any) -> Any:
    return arg.meta.get("val") if isinstance(arg, fx.Node) else arg


def tensor_leaves(val: Any) -> List[torch.Tensor]:
    return [v for v in pytree.tree_leaves(val) if isinstance(v, torch.Tensor)]


def batch_dim(val: Any, symbol: sympy.Symbol) -> Optional[int]:
    """The first dimension of tensor `val` whose size has the symbol."""
    if not isinstance(val, torch.Tensor):
        return None
    for d, size in enumerate(val.shape):
        e = _expr(size)
        if isinstance(e, sympy.Basic) and symbol in e.free_symbols:
            return d
    return None


def _ratio(num: Any, den: Any) -> Optional[Any]:
    """num / den when it is a positive integer (an int, or an integer
    expression of other symbols); None otherwise."""
    num, den = sympy.sympify(num), sympy.sympify(den)
    if num.is_Integer and den.is_Integer:
        q_int, rem = divmod(int(num), int(den)) if int(den) else (0, 1)
        return q_int if rem == 0 and q_int >= 1 else None
    q = sympy.cancel(num / den)
    if q.is_Integer:
        return int(q) if int(q) >= 1 else None
    return q if q.is_integer is True and q.is_positive is True else None


def _same(a: Any, b: Any) -> bool:
    a, b = sympy.sympify(a), sympy.sympify(b)
    return a == b or sympy.expand(a - b) == 0


def _prod(sizes: Sequence[Any]) -> Any:
    out: Any = sympy.Integer(1)
    for s in sizes:
        out = out * sympy.sympify(_expr(s))
    return out


def coefficient(val: torch.Tensor, layout: Layout, symbol: sympy.Symbol) -> Any:
    """outer * inner: the size of the layout's dimension over the symbol."""
    return _ratio(_expr(val.shape[layout.dim]), symbol)


def outer(val: torch.Tensor, layout: Layout, symbol: sympy.Symbol) -> Any:
    """The number of outer blocks of `layout` (1: the rows are the leading
    c * symbol of the dimension, as the runner pads and slices them)."""
    if layout.uniform:
        return 1
    c = coefficient(val, layout, symbol)
    return _ratio(c, layout.inner) if c is not None else None


# ------------------------------------------------------------ propagation --

def _view_layout(src: torch.Tensor, lay: Layout, out: torch.Tensor, d: int,
                 symbol: sympy.Symbol) -> Layout:
    """A reshape keeps the flat order: [outer blocks, symbol, inner elements]
    before and after, so the inner factor of the result's dimension d is the
    input's inner elements over the result's trailing size."""
    if lay.uniform:
        return Layout(d, 1, True)
    flat_inner = sympy.sympify(lay.inner) * _prod(src.shape[lay.dim + 1:])
    inner = _ratio(flat_inner, _prod(out.shape[d + 1:]))
    coeff = _ratio(_expr(out.shape[d]), symbol)
    if inner is None or coeff is None or _ratio(coeff, inner) is None:
        raise Refusal(f"dim {d}", "the reshape from {} to {} splits the dynamic size "
                      "across dimensions, so padded rows would mix with real ones",
                      src.shape, out.shape)
    return Layout(d, inner)


def _from_inputs(name: str, out: torch.Tensor, d: int, ins: Sequence[Tuple[Any, Layout]],
                 symbol: sympy.Symbol) -> Layout:
    """The layout of a result whose dimension d is a dimension of its
    dynamic inputs (the same size): theirs, which must agree."""
    size = _expr(out.shape[d])
    match = [(v, lay) for v, lay in ins if _same(_expr(v.shape[lay.dim]), size)]
    real = [lay for _, lay in match if not lay.uniform]
    if not match:
        raise Refusal(f"dim {d}", f"its result of shape {{}} has the dynamic size in "
                      f"dimension {d}, and torch_pjrt cannot tell which input rows it comes "
                      f"from", out.shape)
    if not real:
        return Layout(d, 1, True)
    if any(not _same(lay.inner, real[0].inner) for lay in real[1:]):
        raise Refusal(f"dim {d}", "it combines tensors whose dynamic dimensions interleave "
                      "the rows differently (one folds another size inside the batch, the "
                      "other outside it)")
    return Layout(d, real[0].inner)


def _cat_layout(node: fx.Node, out: torch.Tensor, d: int, layouts: Layouts,
                symbol: sympy.Symbol) -> Optional[Layout]:
    """cat along the dynamic dimension of tensors that all have it: one block
    of rows after another, each input's outer blocks in turn, when they share
    the inner factor (None: a cat along another dimension)."""
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if int(dim) % out.dim() != d:
        return None
    lays = [_arg_layout(node, t, layouts) for t in tensors]
    if any(lay is None for lay in lays):
        raise Refusal(f"dim {d}", "it concatenates static rows with dynamic ones along the "
                      "dynamic dimension, so padded rows would move the real ones")
    real = [lay for lay in lays if not lay.uniform]
    inner = real[0].inner if real else 1
    for t, lay in zip(tensors, lays):
        if (not lay.uniform and not _same(lay.inner, inner)) or outer(
                t.meta["val"], Layout(lay.dim, inner), symbol) is None:
            raise Refusal(f"dim {d}", "it concatenates, along the dynamic dimension, "
                          "tensors whose rows interleave differently with other sizes")
    return Layout(d, inner, not real)


def _input_pairs(node: fx.Node, layouts: Layouts) -> List[Tuple[Any, Layout]]:
    pairs = []
    for n in node.all_input_nodes:
        for v, lay in zip(tensor_leaves(n.meta.get("val")), layouts.get(n, [])):
            if lay is not None:
                pairs.append((v, lay))
    return pairs


def _leaf_layout(node: fx.Node, name: str, out: torch.Tensor, layouts: Layouts,
                 symbol: sympy.Symbol) -> Optional[Layout]:
    d = batch_dim(out, symbol)
    if d is None:
        return None
    ins = _input_pairs(node, layouts)
    if name in FACTORIES:
        return Layout(d, 1, True)
    if name == "aten::arange":
        return Layout(d, _ratio(_expr(out.shape[d]), symbol))
    src = node.args[0] if node.args else None
    src_val = src.meta.get("val") if isinstance(src, fx.Node) else None
    src_lay = (layouts.get(src) or [None])[0] if isinstance(src, fx.Node) else None
    if name in VIEWS and src_lay is not None:
        return _view_layout(src_val, src_lay, out, d, symbol)
    if name in ("aten::expand", "aten::expand_copy") and src_lay is None:
        return Layout(d, 1, True)
    if name in EMBEDDING_BAGS and fixed_bags(node, name, symbol, layouts):
        return Layout(d, _ratio(_expr(out.shape[d]), symbol))  # row i: bag i
    if name in CATS:
        lay = _cat_layout(node, out, d, layouts, symbol)
        if lay is not None:
            return lay
    if name == "aten::repeat" and src_lay is None:
        # Tiles of a static tensor: element i * inner + r is src's r-th tile element.
        return Layout(d, _ratio(_expr(out.shape[d]), symbol))
    return _from_inputs(name, out, d, ins, symbol)


def propagate(node: fx.Node, name: Optional[str], layouts: Layouts,
              symbol: sympy.Symbol) -> None:
    """Sets layouts[node]: one entry per tensor leaf of its value (None where
    the leaf has no dynamic size). `name` is the ATen schema name, None for
    a placeholder, get_attr or Python call."""
    val = node.meta.get("val")
    leaves = tensor_leaves(val)
    if node.op == "placeholder" or node.op == "get_attr":
        layouts[node] = [None if batch_dim(v, symbol) is None
                         else Layout(0, _ratio(_expr(v.shape[0]), symbol) or 1)
                         for v in leaves]
        return
    if node.target is operator.getitem and isinstance(node.args[0], fx.Node):
        src, idx = node.args[0], node.args[1]
        items = src.meta.get("val")
        if isinstance(items, (list, tuple)) and isinstance(idx, int):
            off = sum(len(tensor_leaves(v)) for v in items[:idx])
            layouts[node] = list(layouts.get(src, []))[off:off + len(leaves)]
            return
    layouts[node] = [_leaf_layout(node, name or "", v, layouts, symbol) for v in leaves]


# -------------------------------------------------------------- positions --

def _arg_layout(node: fx.Node, arg: Any, layouts: Layouts) -> Optional[Layout]:
    if not isinstance(arg, fx.Node):
        return None
    lays = layouts.get(arg) or [None]
    return lays[0]


def _dynamic_args(node: fx.Node, layouts: Layouts) -> List[Tuple[str, Any, Layout]]:
    """(argument name, value, layout) of the node's dynamic tensor arguments."""
    out = []
    for i, a in enumerate(node.target._schema.arguments):
        if a.kwarg_only or i >= len(node.args):
            value = node.kwargs.get(a.name)
        else:
            value = node.args[i]
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            lay = _arg_layout(node, item, layouts)
            if lay is not None:
                out.append((a.name, item.meta.get("val"), lay))
    return out


def check_position(node: fx.Node, name: str, layouts: Layouts) -> None:
    """Refuses an op whose meaning depends on the position of the batch when
    the batch is where the op would mix it."""
    dyn = _dynamic_args(node, layouts)
    if not dyn:
        return
    if name in N_DIM_OPS:
        results = [lay for lay in layouts.get(node, []) if lay is not None]
        for arg, v, lay in dyn:
            if lay.dim != 0:
                raise Refusal(f"dim {lay.dim}", f"its argument {arg} (shape {{}}) has the "
                              f"dynamic size in dimension {lay.dim}; this op keeps rows apart "
                              f"along dimension 0 only", v.shape)
        if any(lay.dim != 0 for lay in results):
            raise Refusal("its result", "its result has the dynamic size off dimension 0")
    elif name in LAST_TWO:
        for arg, v, lay in dyn:
            if lay.dim >= v.dim() - 2:
                raise Refusal(f"dim {lay.dim}", f"it mixes the last two dimensions of its "
                              f"argument {arg} (shape {{}}), and the dynamic size is one of "
                              f"them", v.shape)
    elif name == "aten::native_layer_norm":
        shape, _ = arg_value(node, "normalized_shape")
        for arg, v, lay in dyn:
            if arg != "input" or lay.dim >= v.dim() - len(shape):
                raise Refusal(f"dim {lay.dim}", f"it normalizes over the dynamic dimension "
                              f"(argument {arg}, shape {{}})", v.shape)
    elif name in BATCH_NORM_TRAINING:
        training, present = arg_value(node, "training")
        if present and training is False:
            return
        for arg, v, lay in dyn:
            want = 1 if arg == "input" else 0
            if lay.dim != want:
                raise Refusal(f"dim {lay.dim}", "it computes batch-norm statistics over the "
                              "batch (a dynamic input)")
    elif name in ("aten::diagonal", "aten::diagonal_copy"):
        d1, _ = arg_value(node, "dim1")
        d2, _ = arg_value(node, "dim2")
        _, v, lay = dyn[0]
        if lay.dim in (int(d1) % v.dim(), int(d2) % v.dim()):
            raise Refusal(f"dim {lay.dim}", "it takes a diagonal across the dynamic dimension")


# -------------------------------------------------------------- row index --

# Ops that keep an integer tensor's values and its dimension 0.
_VALUE_KEEPING = frozenset({"aten::clone", "aten::_to_copy", "aten::alias", "aten::lift_fresh_copy"})


def _is_row_index(arg: Any, symbol: sympy.Symbol) -> bool:
    """True when `arg` holds, at every position, its own coordinate along
    dimension 0, which is the symbol's value long: arange(0, symbol), then
    unsqueezed past dimension 0, copied or plus 0 (how masks index a batch
    with `batch_idx = arange(batch)[:, None, None]`). Padded, it is still
    arange(0, bucket): row i reads row i."""
    if not isinstance(arg, fx.Node) or arg.op != "call_function":
        return False
    name, val = schema_name(arg), _val(arg)
    if not isinstance(val, torch.Tensor) or val.dtype.is_floating_point or val.dim() == 0:
        return False
    if name == "aten::arange":
        start, has_start = arg_value(arg, "start")
        step, has_step = arg_value(arg, "step")
        start, step = (start if has_start else 0), (step if has_step else 1)
        end = _val(arg_value(arg, "end")[0])
        return start == 0 and step == 1 and _expr(end) == symbol
    src = arg.args[0] if arg.args else None
    if name == "aten::unsqueeze":
        dim = int(arg_value(arg, "dim")[0])
        return dim % val.dim() != 0 and _is_row_index(src, symbol)
    if name == "aten::add":
        other = arg_value(arg, "other")[0]
        alpha = arg_value(arg, "alpha")[0]
        return other == 0 and alpha in (1, None) and _is_row_index(src, symbol)
    return name in _VALUE_KEEPING and _is_row_index(src, symbol)


def row_identity_gather(name: str, src: Any, indices: Sequence[Any], symbol: sympy.Symbol,
                        layouts: Layouts) -> bool:
    """A gather (not a put) whose dimension-0 index is the row index and
    lines up with dimension 0 of the broadcast index shape, from a tensor
    whose rows lead its dimension 0: out[i] reads self[i], padded or not."""
    if (name not in ("aten::index", "aten::_unsafe_index")
            or not _is_row_index(indices[0], symbol)):
        return False
    lay = (layouts.get(src) or [None])[0] if isinstance(src, fx.Node) else None
    if lay is None or lay.dim != 0 or outer(_val(src), lay, symbol) != 1:
        return False
    ranks = [_val(i).dim() for i in indices if isinstance(i, fx.Node)]
    return _val(indices[0]).dim() == max(ranks)


EMBEDDING_BAGS = frozenset({"aten::_embedding_bag", "aten::_embedding_bag_forward_only",
                            "aten::embedding_bag"})


def fixed_bags(node: fx.Node, name: str, symbol: sympy.Symbol, layouts: Layouts) -> bool:
    """An embedding bag over bags of one size c, as nn.EmbeddingBag makes
    them from 2-D ids [batch, c]: indices [c * batch] with the rows leading,
    offsets arange(0, c * batch, c), no last offset. Bag i reads indices
    c * i .. c * i + c - 1, padded or not."""
    if name not in EMBEDDING_BAGS or arg_value(node, "include_last_offset")[0]:
        return False
    offsets, indices = arg_value(node, "offsets")[0], arg_value(node, "indices")[0]
    if not isinstance(offsets, fx.Node) or schema_name(offsets) != "aten::arange":
        return False
    start, step = arg_value(offsets, "start"), arg_value(offsets, "step")
    end = _expr(_val(arg_value(offsets, "end")[0]))
    c = step[0] if step[1] else 1
    if (start[1] and start[0] != 0) or not isinstance(c, int) or c < 1:
        return False
    if not isinstance(end, sympy.Expr) or sympy.expand(end - c * symbol) != 0:
        return False
    lay = (layouts.get(indices) or [None])[0] if isinstance(indices, fx.Node) else None
    weights = arg_value(node, "per_sample_weights")[0]
    w_lay = (layouts.get(weights) or [None])[0] if isinstance(weights, fx.Node) else None
    return (lay is not None and lay.dim == 0 and _val(indices).dim() == 1
            and not lay.uniform and _same(lay.inner, c)
            and outer(_val(indices), lay, symbol) == 1
            and (weights is None or w_lay == lay))


def identity_strided(node: fx.Node, name: str) -> bool:
    """as_strided(x, x's sizes, x's contiguous strides (any stride on a size-1
    dim), offset 0) is x itself, as PyTorch's adaptive-pooling decomposition
    restrides a mean."""
    if name not in ("aten::as_strided", "aten::as_strided_copy"):
        return False
    src = _val(arg_value(node, "self")[0])
    size, stride = arg_value(node, "size")[0], arg_value(node, "stride")[0]
    if arg_value(node, "storage_offset")[0] not in (None, 0) or not isinstance(src, torch.Tensor):
        return False
    sizes = [_expr(_val(v)) for v in size]
    strides = [_expr(_val(v)) for v in stride]
    if len(sizes) != src.dim() or len(strides) != src.dim():
        return False
    step: Any = 1
    for d in reversed(range(src.dim())):
        if sympy.simplify(sympy.sympify(sizes[d]) - sympy.sympify(_expr(src.shape[d]))) != 0:
            return False
        if sizes[d] != 1 and sympy.simplify(sympy.sympify(strides[d]) - step) != 0:
            return False
        step = step * sympy.sympify(sizes[d])
    return True


def check_output(i: int, val: Any, layout: Optional[Layout], symbol: sympy.Symbol) -> None:
    """Output leaf i must have the batch rows in dimension 0, outer block 1."""
    if layout is None or not isinstance(val, torch.Tensor):
        return
    if layout.dim != 0:
        raise Refusal(f"dim {layout.dim}", f"output {i} (shape {{}}) has the "
                      f"dynamic size in dimension {layout.dim}; outputs are sliced along "
                      f"dimension 0", val.shape)
    if outer(val, layout, symbol) != 1:
        raise Refusal("dim 0", f"output {i} (shape {{}}) interleaves the batch rows with "
                      f"another dimension in dimension 0, so its first rows are not the real "
                      f"rows", val.shape)
