"""FX graph -> torch_pjrt._C.Graph (one StableHLO module per graph).

The walker sees Core-ATen graphs from AOTAutograd or torch.export. Every node
needs a concrete example value (a FakeTensor or a Python number): those come
either from node.meta["val"] when the graph is static, or from
`propagate_values`, which re-runs the graph on fake copies of the real call
arguments (how symbolic graphs are specialised per input signature).

Tensor nodes become graph values; nodes that produce Python numbers
(sym_size, arithmetic on sizes, ...) are folded into constants at trace time.
Random ops (tagged nondeterministic_seeded) get one extra trailing tensor
argument: a uint64[2] seed fed fresh at every call.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import _aten

_SCALAR_TYPES = (bool, int, float)
# Side-effect-only checks (export graphs) that have nothing to compute.
NOOP_TARGETS = frozenset({
    "aten::_assert_scalar.default", "aten::_assert_async.msg",
    "aten::_assert_async.default", "aten::sym_constrain_range_for_size.default",
    "aten::sym_constrain_range.default", "aten::_assert_tensor_metadata.default",
})


class UnsupportedNodeError(RuntimeError):
    """A node the walker or the C lowering table cannot lower."""

    def __init__(self, node: fx.Node, op_name: str, message: str):
        super().__init__(message)
        self.node = node
        self.op_name = op_name


@dataclass
class LoweredGraph:
    """One lowered FX graph, ready to compile."""
    text: str
    # What feeds each StableHLO parameter, in order:
    #   ("arg", i)        the i-th runtime argument (a tensor)
    #   ("const", tensor) a constant tensor from the graph module (get_attr)
    #   ("rng",)          a fresh uint64[2] seed from the pjrt device's generator
    inputs: List[Tuple[Any, ...]]
    # One entry per flattened output leaf:
    #   ("result", k)  the k-th StableHLO result
    #   ("value", v)   a Python value folded at trace time (number or None)
    #   ("input", i)   the i-th runtime argument itself (a placeholder returned
    #                  as is, like Inductor does; e.g. forward graphs saving
    #                  their inputs for the backward)
    #   ("alias", i)   a view of the i-th runtime argument (`detach()`): the
    #                  output is aten.alias / aten.detach of it
    #                  Neither is a program result (no launch when every leaf
    #                  is one of these).
    outputs: List[Tuple[str, Any]]
    out_spec: Any                                # pytree spec of the output
    result_types: List[Tuple[torch.dtype, Tuple[int, ...]]]
    op_count: int
    node_count: int = 0
    failed: Dict[fx.Node, BaseException] = field(default_factory=dict)
    # Runtime checks (kind, message) of the program: when any, it has one more
    # result after result_types, int64[2 * len(checks)] of (bad, value) pairs.
    checks: List[Tuple[int, str]] = field(default_factory=list)


# ------------------------------------------------------------------ helpers --

# Ops whose result is a view of their whole input with the same shape and
# dtype: an output that is such a chain over an argument is that argument.
ALIAS_TARGETS = frozenset([torch.ops.aten.alias.default, torch.ops.aten.detach.default])

def op_name(node: fx.Node) -> str:
    """'aten::add.Tensor' for OpOverloads, a readable name otherwise."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return _aten.target_name(target)
    return getattr(target, "__name__", str(target))


def is_random(target: Any) -> bool:
    return (isinstance(target, torch._ops.OpOverload)
            and torch.Tag.nondeterministic_seeded in target.tags)


# Ops tagged random only for their dropout: (op, position of dropout_p).
_DROPOUT_ONLY = {"aten::scaled_dot_product_attention.default": 4}


def draws_random(node: fx.Node) -> bool:
    """A node that needs random bits: a random op, except attention with
    dropout_p 0 (tagged random for its dropout, deterministic without)."""
    if not is_random(node.target):
        return False
    pos = _DROPOUT_ONLY.get(_aten.target_name(node.target))
    if pos is None:
        return True
    p = node.args[pos] if len(node.args) > pos else node.kwargs.get("dropout_p", 0.0)
    return not (isinstance(p, (int, float)) and p == 0)


def concrete_scalar(value: Any) -> Any:
    """A plain number for Python numbers and concrete Sym*; None otherwise."""
    if isinstance(value, _SCALAR_TYPES):
        return value
    if isinstance(value, torch.SymInt):
        return value.node.maybe_as_int()
    if isinstance(value, torch.SymBool):
        fn = getattr(value.node, "maybe_as_bool", None)
        return fn() if fn else None
    if isinstance(value, torch.SymFloat):
        fn = getattr(value.node, "maybe_as_float", None)
        return fn() if fn else None
    return None


def _is_scalar_like(value: Any) -> bool:
    return isinstance(value, (_SCALAR_TYPES + (torch.SymInt, torch.SymFloat,
                                               torch.SymBool)))


def _is_static_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and all(
        isinstance(s, int) for s in value.shape)


def tensor_type(value: torch.Tensor) -> Tuple[int, Tuple[int, ...]]:
    return (_aten.dtype_code(value.dtype), tuple(int(s) for s in value.shape))


def describe_inputs(node: fx.Node, values: Dict[fx.Node, Any]) -> str:
    """'float32[2, 3], int64[4]' for the tensor inputs of `node`."""
    parts = []
    for arg in node.all_input_nodes:
        val = values.get(arg, arg.meta.get("val"))
        if isinstance(val, torch.Tensor):
            dt = str(val.dtype).replace("torch.", "")
            parts.append(f"{dt}{list(val.shape)}")
        elif val is not None:
            parts.append(repr(val))
    return ", ".join(parts) or "no tensor inputs"


def meta_values(gm: fx.GraphModule) -> Optional[Dict[fx.Node, Any]]:
    """node -> node.meta["val"] when every value is present and static (no
    symbolic sizes); None otherwise (then use propagate_values)."""
    values: Dict[fx.Node, Any] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        if node.op == "get_attr":
            values[node] = _get_attr(gm, node.target)
            continue
        if "val" not in node.meta:
            return None
        val = node.meta["val"]
        for leaf in pytree.tree_leaves(val):
            if isinstance(leaf, torch.Tensor):
                if not _is_static_tensor(leaf):
                    return None
            elif _is_scalar_like(leaf) and concrete_scalar(leaf) is None:
                return None
        values[node] = pytree.tree_map(
            lambda v: concrete_scalar(v) if _is_scalar_like(v) else v, val)
    return values


def _get_attr(gm: torch.nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _hint(size: Any) -> Optional[int]:
    if isinstance(size, int):
        return size
    try:
        hint = size.node.hint
        return int(hint if hint is not None else size.node.shape_env.size_hint(size.node.expr))
    except Exception:  # noqa: BLE001 - unbacked or unhinted sizes
        return None


def _traced_strides(value: Any, traced: Any) -> Any:
    """`value` (a fake result) in the memory order of `traced`, the node's
    value when the graph was traced, where they differ: a composite op kept
    whole (scaled_dot_product_attention) may run another kernel on fake
    tensors than at trace time (math, not flash: [b, h, t, d] contiguous
    instead of [b, t, h, d]), and the graph's later views were traced
    against the first one's strides."""
    if (not isinstance(value, torch.Tensor) or not isinstance(traced, torch.Tensor)
            or value.dim() != traced.dim() or value.dim() < 2):
        return value
    hints = [_hint(s) for s in traced.stride()]
    if None in hints:
        return value
    order = sorted(range(value.dim()), key=lambda d: -hints[d])  # outermost first
    if order == sorted(range(value.dim()), key=lambda d: -value.stride()[d]):
        return value
    strides, step = [0] * value.dim(), 1
    for d in reversed(order):
        strides[d] = step
        step *= max(int(value.shape[d]), 1)
    return torch.empty_strided(tuple(value.shape), strides, dtype=value.dtype,
                               device=value.device)


def propagate_values(gm: fx.GraphModule, args: Sequence[Any]) -> Dict[fx.Node, Any]:
    """Runs `gm` on fake copies of the concrete `args` and returns every
    node's example value (FakeTensors with static shapes, plain numbers).

    A plain loop, not fx.Interpreter: the Interpreter swaps the process-wide
    torch.fx.traceback.current_meta around every node, and this runs at call
    time, outside Dynamo's compile lock, so it would clobber the metadata of
    an AOTAutograd trace running in another thread (seen as "Expected
    current_level > 0, got 0" and "Node mm was invalid, but is output")."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(args) != len(placeholders):
        raise TypeError(f"propagate_values: graph takes {len(placeholders)} arguments "
                        f"(got {len(args)})")
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    values: Dict[fx.Node, Any] = {}
    for node, a in zip(placeholders, args):
        values[node] = mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
    with mode:
        for node in gm.graph.nodes:
            if node.op == "get_attr":
                values[node] = _get_attr(gm, node.target)
            elif node.op == "call_function":
                a, kw = fx.node.map_arg((node.args, node.kwargs), values.__getitem__)
                values[node] = _traced_strides(node.target(*a, **kw), node.meta.get("val"))
            elif node.op not in ("placeholder", "output"):
                raise UnsupportedNodeError(node, node.op, f"{node.op} nodes are not "
                                           f"supported (node {node.name})")
    return values


# ------------------------------------------------------------------- walker --

# The namespaces of torch.distributed's functional collectives (Dynamo traces
# compiled DDP, FSDP2 and DTensor into these).
COLLECTIVE_NAMESPACES = ("_c10d_functional", "_c10d_functional_autograd", "c10d_functional")


def is_collective(node: fx.Node) -> bool:
    """Whether `node` is a functional collective (or its wait): it runs through
    the process group at a graph split, not in the program (no plugin here has
    a transport inside programs across processes)."""
    return (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
            and node.target.namespace in COLLECTIVE_NAMESPACES)


def node_is_lowerable(node: fx.Node, supported: Callable[[str], bool]) -> Tuple[bool, str]:
    """Whether the walker can handle `node` by its kind and target alone."""
    if node.op in ("placeholder", "output", "get_attr"):
        return True, ""
    if node.op != "call_function":
        return False, f"{node.op} nodes are not supported"
    val = node.meta.get("val")
    if node.target is operator.getitem:
        return True, ""
    if isinstance(node.target, torch._ops.OpOverload):
        name = _aten.target_name(node.target)
        if supported(name) or name in NOOP_TARGETS:
            return True, ""
        if _is_scalar_like(val):
            return True, ""
        return False, f"no lowering for {name}"
    if _is_scalar_like(val) or val is None and not node.users:
        return True, ""
    return False, f"{op_name(node)} is not an ATen op"


class _Walker:
    def __init__(self, gm: fx.GraphModule, values: Dict[fx.Node, Any],
                 graph_cls: Any, tolerate_failures: bool):
        self.gm = gm
        self.values = values
        self.g = graph_cls()
        self.tolerate = tolerate_failures
        self.ids: Dict[fx.Node, Any] = {}       # node -> id or list of ids
        self.scalars: Dict[fx.Node, Any] = {}   # node -> folded Python value
        self.inputs: List[Tuple[Any, ...]] = []
        self.failed: Dict[fx.Node, BaseException] = {}
        self.const_ids: Dict[int, int] = {}
        self.n_placeholders = 0
        self.aliases: Dict[fx.Node, int] = {}  # node -> argument it merely aliases

    # value ids ----------------------------------------------------------------
    def _param(self, value: torch.Tensor, source: Tuple[Any, ...]) -> int:
        code, shape = tensor_type(value)
        pid = self.g.param(code, shape)
        self.inputs.append(source)
        return pid

    def tensor_id(self, arg: Any) -> int:
        if isinstance(arg, fx.Node):
            got = self.ids.get(arg)
            if isinstance(got, int):
                return got
            raise UnsupportedNodeError(arg, op_name(arg),
                                       f"node {arg.name} has no tensor value")
        if isinstance(arg, torch.Tensor):
            key = id(arg)
            if key not in self.const_ids:
                self.const_ids[key] = self._param(arg, ("const", arg))
            return self.const_ids[key]
        raise TypeError(f"expected a tensor argument, got {arg!r}")

    # nodes ----------------------------------------------------------------------
    def placeholder(self, node: fx.Node) -> None:
        index = self.n_placeholders
        self.n_placeholders += 1
        val = self.values.get(node)
        if isinstance(val, torch.Tensor):
            self.ids[node] = self._param(val, ("arg", index))
            self.aliases[node] = index
        else:
            self.scalars[node] = concrete_scalar(val) if _is_scalar_like(val) else val

    def get_attr(self, node: fx.Node) -> None:
        val = self.values[node]
        if isinstance(val, torch.Tensor):
            self.ids[node] = self.tensor_id(val)
        else:
            self.scalars[node] = val

    def _subst(self, a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: self.scalars[n] if n in self.scalars else n)

    def call_function(self, node: fx.Node) -> None:
        val = self.values.get(node)
        if node.target is operator.getitem:
            src, idx = node.args
            if src in self.scalars:
                self.scalars[node] = self.scalars[src][idx]
            else:
                self.ids[node] = self.ids[src][idx]
            return
        if _is_scalar_like(val) or (val is None and (
                not isinstance(node.target, torch._ops.OpOverload)
                or op_name(node) in NOOP_TARGETS)):
            scalar = concrete_scalar(val) if val is not None else None
            if val is not None and scalar is None:
                raise UnsupportedNodeError(node, op_name(node),
                                           f"symbolic value {val!r} of node {node.name}")
            self.scalars[node] = scalar
            return
        if not isinstance(node.target, torch._ops.OpOverload):
            raise UnsupportedNodeError(node, op_name(node),
                                       f"{op_name(node)} is not an ATen op")
        self._lower(node, val)
        if node.target in ALIAS_TARGETS and node.args and node.args[0] in self.aliases:
            self.aliases[node] = self.aliases[node.args[0]]

    def _out_types(self, node: fx.Node, val: Any) -> Tuple[List[Any], bool]:
        if isinstance(val, torch.Tensor):
            return [tensor_type(val)], False
        if isinstance(val, (tuple, list)):
            types = []
            for v in val:
                if v is None:
                    types.append(None)
                elif isinstance(v, torch.Tensor):
                    types.append(tensor_type(v))
                else:
                    raise UnsupportedNodeError(
                        node, op_name(node), f"non-tensor output {v!r} of {node.name}")
            return types, True
        if val is None:
            return [], True
        raise UnsupportedNodeError(node, op_name(node),
                                   f"unexpected output {val!r} of {node.name}")

    def _lower(self, node: fx.Node, val: Any) -> None:
        op = node.target
        name = _aten.target_name(op)
        out_types, multi = self._out_types(node, val)
        try:
            args = _aten.encode_args(op, self._subst(node.args), self._subst(node.kwargs),
                                     self.tensor_id)
            if draws_random(node):
                seed = torch.empty(2, dtype=torch.uint64)
                args.append(("tensor", self._param(seed, ("rng",))))
            res = self.g.lower(name, args, out_types)
        except (UnsupportedNodeError, TypeError, RuntimeError) as e:
            if not self.tolerate:
                raise annotate(e, node, name, self.values) from e
            self.failed[node] = e
            res = self._stand_in(val)
        self.ids[node] = list(res) if multi else res[0]

    def _stand_in(self, val: Any) -> List[Any]:
        """Fresh params standing in for a node that failed to lower, so the
        dry run can go on and find every failing node in one pass."""
        leaves = [val] if isinstance(val, torch.Tensor) else list(val or [])
        out = []
        for v in leaves:
            if isinstance(v, torch.Tensor):
                code, shape = tensor_type(v)
                out.append(self.g.param(code, shape))
            else:
                out.append(None)
        return out

    def output(self, node: fx.Node) -> Tuple[List[Tuple[str, Any]], Any, List[int]]:
        leaves, spec = pytree.tree_flatten(node.args[0])
        outputs, result_ids = [], []
        for leaf in leaves:
            if isinstance(leaf, fx.Node) and leaf in self.aliases:
                kind = "input" if leaf.op == "placeholder" else "alias"
                outputs.append((kind, self.aliases[leaf]))
            elif isinstance(leaf, fx.Node) and leaf in self.ids:
                outputs.append(("result", len(result_ids)))
                result_ids.append(self.tensor_id(leaf))
            elif isinstance(leaf, fx.Node):
                outputs.append(("value", self.scalars.get(leaf)))
            else:
                outputs.append(("value", leaf))
        return outputs, spec, result_ids


def annotate(e: Exception, node: fx.Node, name: str, values: Dict[fx.Node, Any]) -> Exception:
    msg = (f"lowering node {node.name} ({name}) with inputs "
           f"{describe_inputs(node, values)} failed: {e}")
    if isinstance(e, UnsupportedNodeError):
        return UnsupportedNodeError(node, name, msg)
    try:
        new = type(e)(msg)
        if hasattr(e, "code"):
            new.code = e.code  # type: ignore[attr-defined]
        return new
    except Exception:  # noqa: BLE001 - exotic exception constructors
        return RuntimeError(msg)


def lower_graph(gm: fx.GraphModule, values: Dict[fx.Node, Any], graph_cls: Any,
                tolerate_failures: bool = False) -> LoweredGraph:
    """Lowers every node of `gm` (with example `values`) into one graph.

    With tolerate_failures, nodes whose lowering fails are recorded in
    `failed` (node -> reason) instead of raising, and no text is produced
    when any failed (a dry run that finds what must fall back)."""
    w = _Walker(gm, values, graph_cls, tolerate_failures)
    outputs: List[Tuple[str, Any]] = []
    spec = None
    result_ids: List[int] = []
    n_nodes = 0
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            w.placeholder(node)
        elif node.op == "get_attr":
            w.get_attr(node)
        elif node.op == "call_function":
            n_nodes += 1
            try:
                w.call_function(node)
            except UnsupportedNodeError as e:
                if not tolerate_failures:
                    raise
                w.failed[node] = e
                val = values.get(node)
                stand_in = w._stand_in(val)
                w.ids[node] = stand_in[0] if isinstance(val, torch.Tensor) else stand_in
        elif node.op == "output":
            outputs, spec, result_ids = w.output(node)
        else:
            raise UnsupportedNodeError(node, node.op, f"{node.op} nodes are not supported "
                                       f"(node {node.name})")
    text = ""
    types: List[Tuple[torch.dtype, Tuple[int, ...]]] = []
    if not w.failed and result_ids:
        w.g.set_results(result_ids)
        for rid in result_ids:
            code, shape = w.g.value_type(rid)
            types.append((_aten.code_dtype(code), tuple(shape)))
        text = w.g.to_stablehlo()
    return LoweredGraph(text=text, inputs=w.inputs, outputs=outputs, out_spec=spec,
                        result_types=types, op_count=int(w.g.op_count),
                        node_count=n_nodes, failed=w.failed,
                        checks=list(w.g.checks) if text else [])
