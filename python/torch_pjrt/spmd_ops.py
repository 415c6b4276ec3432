"""Eager ops on sharded tensors as one-op SPMD programs: the op is traced
once per signature (op, argument shapes, dtypes, shardings and non-tensor
values) into a functional FX graph on meta tensors, with its writes into
arguments as extra outputs, and compiled over the mesh (spmd_program.py).
Each result gets the sharding of the first sharded input it follows
(spmd_mesh.follow); writes keep their argument's sharding.
"""
from __future__ import annotations

import operator
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import fx_lower
from .spmd_mesh import Mesh, Sharding, follow
from .spmd_program import SpmdProgram

aten = torch.ops.aten

_lock = threading.Lock()
_cache: Dict[Any, Any] = {}
_why: Dict[Any, str] = {}

_PLAIN = (bool, int, str, type(None), torch.dtype, torch.device, torch.memory_format,
          torch.layout)


class _Whole:
    """A signature that runs over whole tensors instead (see spmd_tensor)."""

    def __init__(self, reason: str):
        self.reason = reason


def _leaf_key(x: Any) -> Any:
    from .spmd_tensor import ShardedTensor
    if isinstance(x, ShardedTensor):
        return ("S", tuple(x.shape), x.dtype, x._sharding())
    if isinstance(x, torch.Tensor):
        return ("T", tuple(x.shape), x.dtype)
    if isinstance(x, float):
        return ("f", float.hex(x))
    if isinstance(x, _PLAIN):
        return (type(x).__name__, x)
    return ("?", type(x).__name__, repr(x))


# Float scalars that change every optimizer step (Adam's step size and bias
# corrections) become runtime 0-d inputs, so a training loop does not compile
# per step: a float in a Tensor slot (x / 0.97), and addcdiv/addcmul's value.
_LIFTED = {"aten::addcdiv": aten.div.Tensor, "aten::addcdiv_": aten.div.Tensor,
           "aten::addcmul": aten.mul.Tensor, "aten::addcmul_": aten.mul.Tensor}


def lifted(func: Any, flat: Sequence[Any], spec: Any) -> List[int]:
    """Positions in `flat` of float scalars passed as runtime inputs (only
    beside float32/float64 tensors, where a 0-d float64 tensor promotes as
    the Python float does)."""
    if not all(x.dtype in (torch.float32, torch.float64)
               for x in flat if isinstance(x, torch.Tensor)):
        return []
    pos_args, kw = pytree.tree_unflatten(list(range(len(flat))), spec)
    out = []
    for i, arg in enumerate(func._schema.arguments):
        mark = pos_args[i] if i < len(pos_args) else kw.get(arg.name)
        if not isinstance(mark, int) or not isinstance(flat[mark], float):
            continue
        if str(arg.type) == "Tensor" or (arg.name == "value" and func._schema.name in _LIFTED):
            out.append(mark)
    return out


def program_for(func: Any, flat: Sequence[Any], spec: Any, mesh: Mesh) -> Optional["OpProgram"]:
    """The op's program for these arguments, or None when it runs over whole
    tensors (why_not(func) says why)."""
    lift = lifted(func, flat, spec)
    key = (func, spec, tuple(("lifted",) if i in lift else _leaf_key(x)
                             for i, x in enumerate(flat)))
    with _lock:
        entry = _cache.get(key)
    if entry is None:
        try:
            entry = OpProgram(func, flat, spec, mesh)
        except Exception as e:  # noqa: BLE001 - any tracing/lowering failure falls back
            entry = _Whole(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        with _lock:
            _cache[key] = entry
    if isinstance(entry, _Whole):
        with _lock:
            _why[func] = entry.reason
        return None
    return entry


def why_not(func: Any) -> str:
    with _lock:
        return _why.get(func, "")


def cache_size() -> int:
    with _lock:
        return sum(1 for e in _cache.values() if not isinstance(e, _Whole))


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _why.clear()


def _meta(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.empty(tuple(x.shape), dtype=x.dtype, device="meta")
    return x


def functional(func: Any) -> Tuple[Any, bool]:
    """(the op to compile, whether it writes its first argument): an
    in-place op (add_, _foreach_mul_) becomes its functional variant, whose
    result is the new value of that argument."""
    schema = func._schema
    written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    if not written:
        return func, False
    if (len(written) != 1 or written[0] is not schema.arguments[0]
            or any(getattr(a, "is_out", False) for a in schema.arguments)):
        raise NotImplementedError(f"{func} writes {[a.name for a in written]} (only in-place "
                                  f"ops that write their first argument are compiled)")
    base = schema.name.split("::")[-1]
    if not base.endswith("_"):
        raise NotImplementedError(f"{func} is not an in-place op")
    packet = getattr(aten, base[:-1], None)
    overload = getattr(packet, func._overloadname, None) if packet is not None else None
    if overload is None:
        raise NotImplementedError(f"{func} has no functional variant")
    return overload, True


def _call(g: fx.Graph, func: Any, op: Any, a: Any, k: Dict[str, Any], ma: Any,
          mk: Dict[str, Any]) -> Tuple[fx.Node, Any]:
    """The op's node (and its meta value); a lifted `value` makes
    addcdiv/addcmul self + (t1 * value) / t2 (or * t2), the CPU kernel's order."""
    inner = _LIFTED.get(func._schema.name)
    if inner is None or not isinstance(k.get("value"), fx.Node):
        node = g.call_function(op, tuple(a), k)
        node.meta["val"] = op(*ma, **mk)
        return node, node.meta["val"]
    def add(target: Any, args: Tuple[Any, ...], margs: Tuple[Any, ...]) -> Tuple[fx.Node, Any]:
        n = g.call_function(target, args)
        n.meta["val"] = target(*margs)
        return n, n.meta["val"]

    scaled, sv = add(aten.mul.Tensor, (a[1], k["value"]), (ma[1], mk["value"]))
    combined, cv = add(inner, (scaled, a[2]), (sv, ma[2]))
    return add(aten.add.Tensor, (a[0], combined), (ma[0], cv))


def _cast_to(g: fx.Graph, node: fx.Node, target: fx.Node, func: Any) -> fx.Node:
    """An in-place op's new value in its argument's dtype (torch's rule: the
    result type must cast to it)."""
    have, want = node.meta["val"].dtype, target.meta["val"].dtype
    if have == want:
        return node
    if not torch.can_cast(have, want):
        raise RuntimeError(f"{func}: result type {have} can't be cast to the desired output "
                           f"type {want}")
    cast = g.call_function(torch.ops.prims.convert_element_type.default, (node, want))
    cast.meta["val"] = torch.empty(tuple(node.meta["val"].shape), dtype=want, device="meta")
    return cast


def _graph(func: Any, flat: Sequence[Any], spec: Any, tensor_pos: List[int],
           lift: Sequence[int] = ()) -> Tuple[fx.GraphModule, List[Tuple[int, fx.Node]]]:
    """The op as a one-node FX graph over meta values, and its writes:
    (placeholder index, node of the new value). `lift`: positions of float
    scalars that are 0-d float64 placeholders (after the tensors)."""
    op, writes_first = functional(func)
    g = fx.Graph()
    leaves: List[Any] = [None if isinstance(x, torch.Tensor) else x for x in flat]
    metas: List[Any] = list(leaves)
    phs = []
    for j, i in enumerate(list(tensor_pos) + list(lift)):
        ph = g.placeholder(f"a{j}")
        ph.meta["val"] = metas[i] = _meta(flat[i]) if i not in lift else torch.empty(
            (), dtype=torch.float64, device="meta")
        leaves[i] = ph
        phs.append(ph)
    a, k = pytree.tree_unflatten(leaves, spec)
    ma, mk = pytree.tree_unflatten(metas, spec)
    node, val = _call(g, func, op, a, k, ma, mk)
    outs: Any = node
    if isinstance(val, (tuple, list)):
        outs = []
        for j, v in enumerate(val):
            if v is None:  # e.g. convolution_backward's masked-off gradients
                outs.append(None)
                continue
            item = g.call_function(operator.getitem, (node, j))
            item.meta["val"] = v
            outs.append(item)
        outs = tuple(outs)
    writes: List[Tuple[int, fx.Node]] = []
    if writes_first:
        first = pytree.tree_leaves(a[0] if a else k[next(iter(k))])
        news = list(outs) if isinstance(outs, tuple) else [outs]
        writes = [(phs.index(p), _cast_to(g, n, p, func)) for p, n in zip(first, news)
                  if n is not None]
        outs = None
    g.output((outs, tuple(n for _, n in writes)))
    return fx.GraphModule(torch.nn.Module(), g), writes


def _decomposed(gm: fx.GraphModule, writes: List[Tuple[int, fx.Node]]
                ) -> Tuple[fx.GraphModule, List[Tuple[int, fx.Node]]]:
    """The one-op graph retraced through the backend's decompositions (for
    ops the lowering table has no entry for)."""
    from torch.fx.experimental.proxy_tensor import make_fx
    from . import backend
    metas = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
    new = make_fx(gm, decomposition_table=backend.decompositions())(*metas)
    out = next(n for n in new.graph.nodes if n.op == "output")
    news = list(out.args[0][1])
    return new, [(i, n) for (i, _), n in zip(writes, news)]


def _lowerable_after_decomposition(func: Any, e: BaseException) -> bool:
    from . import backend
    op, _ = functional(func)
    return "no lowering" in str(e) and op in backend.decompositions()


class OpProgram:
    """One op signature compiled over a mesh."""

    def __init__(self, func: Any, flat: Sequence[Any], spec: Any, mesh: Mesh):
        from .spmd_tensor import ShardedTensor
        self.name = str(func)
        self.tensor_pos = [i for i, x in enumerate(flat) if isinstance(x, torch.Tensor)]
        self.lift = lifted(func, flat, spec)
        gm, self.writes = _graph(func, flat, spec, self.tensor_pos, self.lift)
        tensors = [flat[i] for i in self.tensor_pos] + [
            torch.tensor(flat[i], dtype=torch.float64) for i in self.lift]
        in_sh = [t._sharding() if isinstance(t, ShardedTensor) else Sharding(mesh, (), t.dim())
                 for t in tensors]
        sharded = [(tuple(t.shape), t._sharding()) for t in tensors
                   if isinstance(t, ShardedTensor)]
        written = {node: tensors[i] for i, node in self.writes}

        def out_sharding(node: fx.Node) -> Sharding:
            shape = tuple(node.meta["val"].shape)
            t = written.get(node)
            if isinstance(t, ShardedTensor) and tuple(t.shape) == shape:
                return t._sharding()
            if t is not None:
                return Sharding(mesh, (), len(shape))
            return follow(shape, sharded, mesh)

        try:
            self.program = SpmdProgram(gm, mesh, in_sh, out_sharding, "spmd_" + self.name)
        except (fx_lower.UnsupportedNodeError, RuntimeError, TypeError) as e:
            if not _lowerable_after_decomposition(func, e):
                raise
            gm, self.writes = _decomposed(gm, self.writes)
            written = {node: tensors[i] for i, node in self.writes}
            self.program = SpmdProgram(gm, mesh, in_sh, out_sharding, "spmd_" + self.name)

    def run(self, flat: Sequence[Any]) -> Any:
        """The op's outputs; its writes are installed in their arguments."""
        from .spmd_tensor import _assign
        tensors = [flat[i] for i in self.tensor_pos] + [
            torch.tensor(flat[i], dtype=torch.float64) for i in self.lift]
        leaves = self.program.run(tensors)
        out, writes = pytree.tree_unflatten(leaves, self.program.lowered.out_spec)
        for (i, _), new in zip(self.writes, writes):
            _assign(tensors[i], new, self.name)
        return out
