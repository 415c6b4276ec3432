"""The dynamic dimension of a `.tpj` artifact (docs/artifact.md, "Dynamic
dimensions"): which symbol it is (find_symbol), its shape buckets
(bucket_sizes), and the padding exactness that `export.save` proves on the
graph before it writes anything (check_exact).

A `.tpj` artifact holds one program per shape bucket; a run with symbol s
pads every dynamic input from c * s to c * b rows along dimension 0 and keeps
the first c * s rows of every output. That is exact only when no result row
depends on another row of the batch, so every node of the decomposed graph
is checked against a small rule table (artifact_rules):

- shapes: the symbol appears in one dimension of a tensor (dimension 0 of
  an input), as c * symbol; artifact_layout follows it through permutes and
  reshapes ([seq, batch, d] in nn.MultiheadAttention and the RNNs,
  [batch * heads, seq, d], InstanceNorm's [1, batch * C, h, w]), holds the
  ops that must see it in a given dimension (convolutions in 0, attention
  not in its last two), and requires outputs with it in dimension 0;
- ALONG_DIM: ops that mix values along their `dim` argument (reductions,
  scans, sorts, softmax, concatenation, selection, slicing, ...) may not
  work along the dynamic dimension of a tensor (None or [] means every dim);
- INDEXED: advanced indexing may not index the dynamic dimension of a
  tensor, and a lookup may not read rows of a dynamic table;
- ALWAYS: ops that mix rows whatever their arguments (a sort of dimension
  0, arbitrary strides, embedding bags of varying size) may not take a
  dynamic tensor;
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

from . import artifact_layout
from . import fx_lower
from .artifact_rules import (ALONG_DIM, ALWAYS, DIM_ARGS, INDEXED, KNOWN,  # noqa: F401
                             ROWWISE, SIZE_ARGS, SIZE_READERS, TABLE_ROWS, arg_value,
                             free_symbols)
from .artifact_rules import expr as _expr
from .artifact_rules import schema_name as _schema_name
from .export_guards import _bound

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
        # node -> where the symbol lies in each tensor leaf (artifact_layout)
        self.layouts: artifact_layout.Layouts = {}

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


def _val(arg: Any) -> Any:
    return arg.meta.get("val") if isinstance(arg, fx.Node) else arg


def _bdim(val: Any, ctx: _Ctx) -> Optional[int]:
    """The dimension of tensor `val` holding the symbol (None: static)."""
    return artifact_layout.batch_dim(val, ctx.symbol)


def _is_dynamic(val: Any, ctx: _Ctx) -> bool:
    return _bdim(val, ctx) is not None


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
    """The symbol in one dimension of a tensor (dimension 0 of an input), as
    c * symbol; no other symbol."""
    for v in _tensor_leaves(node.meta.get("val")):
        found = None
        for d, size in enumerate(v.shape):
            syms = free_symbols(size)
            if not syms or (ctx.others_static and ctx.symbol not in syms):
                continue
            if syms != {ctx.symbol} and not (ctx.others_static and _scaled(size, ctx)):
                other = ", ".join(sorted(str(s) for s in syms - {ctx.symbol}))
                raise ctx.refuse(where, node, f"dim {d}", f"it has shape "
                                 f"{ctx.show(v.shape)}, a size that depends on {other} "
                                 f"(data-dependent or a second dynamic size)")
            if (d != 0 and node.op == "placeholder") or not _scaled(size, ctx):
                raise ctx.refuse(where, node, f"dim {d}", f"it has shape "
                                 f"{ctx.show(v.shape)} (the dynamic size may appear only "
                                 f"as c * {ctx.name} with an integer c >= 1, in dimension "
                                 f"0 of an input)")
            if found is not None:
                raise ctx.refuse(where, node, f"dim {d}", f"it has shape "
                                 f"{ctx.show(v.shape)}, the dynamic size in dimensions "
                                 f"{found} and {d} (rows against rows)")
            found = d


def _dims_of(node: fx.Node) -> Tuple[Any, bool]:
    """The node's dim/dims/dimension argument: (value, present)."""
    for name in DIM_ARGS:
        value, present = arg_value(node, name)
        if present:
            return value, True
    return None, False


def _is_full_slice(node: fx.Node, src: torch.Tensor, dim: int) -> bool:
    """slice(x, dim, start, end, step) keeps every row of x."""
    start, _ = arg_value(node, "start")
    end, _ = arg_value(node, "end")
    step, _ = arg_value(node, "step")
    if start not in (None, 0) or step not in (None, 1):
        return False
    if end is None or (isinstance(end, int) and end >= _INT64_MAX):
        return True
    return sympy.simplify(_expr(_val(end)) - _expr(src.shape[dim])) == 0


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
    bdim = _bdim(dyn[0], ctx)
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        raise ctx.refuse(name, node, "every dim", f"it {verb} over every dimension of a "
                         f"tensor of shape {ctx.show(dyn[0].shape)}, dimension {bdim} (the "
                         f"dynamic one) included")
    rank = max(dyn[0].dim(), 1)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not any(int(d) % rank == bdim for d in dims):
        return
    if name == "aten::slice" and _is_full_slice(node, dyn[0], bdim):
        return
    if verb == "concatenates" and len(dyn) == len(vals):
        return  # blocks of rows, one per input: artifact_layout checks them
    raise ctx.refuse(name, node, f"dim {bdim}", f"it {verb} along dimension {bdim} of a "
                     f"tensor of shape {ctx.show(dyn[0].shape)}, the dynamic one, so padded "
                     f"rows would change or move the real rows")


def _check_indexing(node: fx.Node, ctx: _Ctx, name: str) -> None:
    if name in INDEXED:
        src, _ = arg_value(node, INDEXED[name])
        indices, _ = arg_value(node, "indices")
        bdim = _bdim(_val(src), ctx)
        if (bdim is not None and isinstance(indices, (list, tuple)) and len(indices) > bdim
                and indices[bdim] is not None
                and not artifact_layout.row_identity_gather(name, src, indices, ctx.symbol,
                                                            ctx.layouts)):
            raise ctx.refuse(name, node, f"dim {bdim}", f"it indexes dimension {bdim} (the "
                             f"dynamic one) of a tensor of shape {ctx.show(_val(src).shape)} "
                             f"by index tensors")
    if name in TABLE_ROWS:
        table, _ = arg_value(node, TABLE_ROWS[name])
        if _is_dynamic(_val(table), ctx):
            raise ctx.refuse(name, node, f"dim {_bdim(_val(table), ctx)}", f"it reads rows of the dynamic tensor "
                             f"{TABLE_ROWS[name]} (shape {ctx.show(_val(table).shape)}) by "
                             f"index")
    why = ALWAYS.get(name)
    dyn = [v for v in _input_tensors(node) if _is_dynamic(v, ctx)]
    if (why is not None and dyn and not artifact_layout.identity_strided(node, name)
            and not artifact_layout.fixed_bags(node, name, ctx.symbol, ctx.layouts)):
        raise ctx.refuse(name, node, f"dim {_bdim(dyn[0], ctx)}", f"it {why} (a dynamic "
                         f"input)")


def _check_leading(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """repeat and constant_pad_nd leave the dynamic dimension of a tensor
    alone: a repeat count of 1 there, no padding there."""
    if name not in ("aten::repeat", "aten::constant_pad_nd"):
        return
    v = _val(arg_value(node, "self")[0])
    bdim = _bdim(v, ctx)
    if bdim is None:
        return
    if name == "aten::repeat":
        repeats, _ = arg_value(node, "repeats")
        lead = list(repeats)[len(repeats) - v.dim() + bdim]
        if lead != 1:
            raise ctx.refuse(name, node, f"dim {bdim}", f"it repeats dimension {bdim} (the "
                             f"dynamic one) {lead} times, so padded rows would land between "
                             f"real ones")
        return
    pad, _ = arg_value(node, "pad")
    pad = list(pad)
    j = 2 * (v.dim() - 1 - bdim)
    if any(p != 0 for p in pad[j:j + 2]):
        raise ctx.refuse(name, node, f"dim {bdim}", f"it pads or crops dimension {bdim} (the "
                         f"dynamic one) by {pad[j:j + 2]}")


def _check_known(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """An op on a dynamic tensor must be one the rules above cover (or be
    tagged pointwise): anything else is not proved exact."""
    if (name in KNOWN or torch.Tag.pointwise in node.target.tags
            or fx_lower.op_name(node) in fx_lower.NOOP_TARGETS):
        return
    dyn = [v for v in _input_tensors(node) if _is_dynamic(v, ctx)]
    if dyn:
        raise ctx.refuse(name, node, f"dim {_bdim(dyn[0], ctx)}", f"torch_pjrt does not know "
                         f"that it keeps the "
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
        if not _is_dynamic(out, ctx):
            if all(isinstance(s, int) for s in out.shape) and out.numel() == 0:
                continue
            raise ctx.refuse(name, node, "its result", f"its result of shape "
                             f"{ctx.show(out.shape)} has no dynamic dimension but is "
                             f"computed from a tensor of shape {ctx.show(inputs[0].shape)} "
                             f"(a reduction over the dynamic dimension)")


def _check_sym_args(node: fx.Node, ctx: _Ctx, name: str) -> None:
    """The symbol's value feeds only the size arguments of SIZE_ARGS."""
    if artifact_layout.identity_strided(node, name):
        return
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
            bdim = _bdim(v, ctx)
            if not (bdim is not None and int(dim) % v.dim() == bdim
                    and _is_full_slice(node, v, bdim)):
                raise ctx.refuse(name, node, "argument end", f"it slices with the dynamic "
                                 f"size {ctx.show(_val(sym))} as a bound; only a slice "
                                 f"keeping every row of the dynamic dimension is exact")


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


def _check_layout(node: fx.Node, ctx: _Ctx, where: str, schema: Optional[str]) -> None:
    """Where the batch lies in the node's results, and the ops whose meaning
    depends on that (artifact_layout)."""
    try:
        artifact_layout.propagate(node, schema, ctx.layouts, ctx.symbol)
        if schema is not None:
            artifact_layout.check_position(node, schema, ctx.layouts)
    except artifact_layout.Refusal as e:
        raise ctx.refuse(where, node, e.detail, e.message(ctx.show)) from None


def _check_outputs(node: fx.Node, ctx: _Ctx) -> None:
    """Every dynamic output has its rows leading dimension 0."""
    for i, leaf in enumerate(pytree.tree_leaves(node.args[0])):
        if not isinstance(leaf, fx.Node):
            continue
        for val, lay in zip(_tensor_leaves(leaf.meta.get("val")), ctx.layouts.get(leaf, [])):
            try:
                artifact_layout.check_output(i, val, lay, ctx.symbol)
            except artifact_layout.Refusal as e:
                raise ctx.refuse(f"output {i}", leaf, e.detail, e.message(ctx.show)) from None


def _check_op(node: fx.Node, ctx: _Ctx, schema: str) -> None:
    _check_known(node, ctx, schema)
    _check_sym_args(node, ctx, schema)
    _check_along_dim(node, ctx, schema)
    _check_leading(node, ctx, schema)
    _check_indexing(node, ctx, schema)
    _check_shapes(node, ctx, schema)
    _check_layout(node, ctx, schema, schema)
    _check_rows_kept(node, ctx, schema)
    _check_number(node, ctx, schema)


def _live(gm: fx.GraphModule) -> set:
    """The nodes the outputs (or an unused op, in case it acts in place)
    depend on. The lowering runs the assertions (fx_lower.NOOP_TARGETS:
    one_hot's checks on its class values) as no-ops, so what only they read
    cannot make padding inexact."""
    roots = [n for n in gm.graph.nodes if n.op == "output" or (
        n.op == "call_function" and not n.users
        and fx_lower.op_name(n) not in fx_lower.NOOP_TARGETS)]
    live, todo = set(roots), list(roots)
    while todo:
        for n in todo.pop().all_input_nodes:
            if n not in live:
                live.add(n)
                todo.append(n)
    return live


def check_exact(gm: fx.GraphModule, symbol: sympy.Symbol, name: str,
                who: str = "export.save",
                hint: str = "export with a static shape or change the model",
                others_static: bool = False) -> None:
    """Raises ExactnessError naming the first node of `gm` (a Core-ATen graph:
    a decomposed exported graph, or a compiled one) at which padding `symbol`
    (the Dim `name`) along dimension 0 to a bucket and slicing the results
    back is not exact. `who` and `hint` begin and end its message."""
    ctx = _Ctx(symbol, name, who, hint, others_static)
    live = _live(gm)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node not in live:
            continue
        if node.op in ("placeholder", "get_attr"):
            _check_shapes(node, ctx, f"input {node.name}")
            _check_layout(node, ctx, f"input {node.name}", None)
        elif node.op == "call_function":
            schema = _schema_name(node)
            if schema is not None:
                _check_op(node, ctx, schema)
                continue
            where = fx_lower.op_name(node)
            _check_python_call(node, ctx, where)
            _check_shapes(node, ctx, where)
            _check_layout(node, ctx, where, None)
        elif node.op == "output":
            _check_outputs(node, ctx)
        else:
            raise ctx.refuse(node.op, node, "its inputs", f"{node.op} nodes cannot be "
                             f"analysed")
