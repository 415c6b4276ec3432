"""torch.compile(backend="pjrt") over sharded tensors: one SPMD program per
compiled graph. Dynamo traces sharded tensors as tensor subclasses (their
ops on fake tensors only compute metadata here); the backend gives
AOTAutograd plain fake tensors of the logical shapes, so its forward and
backward graphs are whole-tensor ATen graphs; each runs as one program over
the mesh, compiled per input-sharding signature at its first call.
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from .spmd_mesh import Mesh, Sharding, follow

log = logging.getLogger("torch_pjrt")

_numbers = itertools.count(1)


def _fake_tensor(fake_mode: Any, shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    from torch._subclasses.fake_tensor import FakeTensor, unset_fake_temporarily
    with unset_fake_temporarily():
        elem = torch.empty(tuple(shape), dtype=dtype, device="meta")
    return FakeTensor(fake_mode, elem, device)


def fake_mode_of(flat: Sequence[Any]) -> Any:
    """The fake mode of the first sharded tensor with fake pieces, or None."""
    from torch._subclasses.fake_tensor import FakeTensor
    from .spmd_tensor import ShardedTensor
    for x in flat:
        if isinstance(x, ShardedTensor) and isinstance(x._box.pieces[0], FakeTensor):
            return x._box.pieces[0].fake_mode
    return None


def fake_run(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], fake_mode: Any,
             mesh: Mesh) -> Any:
    """The op's result metadata while Dynamo traces: sharded results with fake
    pieces, laid out as the eager op would lay them out."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    from . import spmd_ops
    from .spmd_tensor import ShardedTensor, _write_returns
    flat, spec = pytree.tree_flatten((args, kwargs))
    if func is CONSTRAINT_OP:
        sh = constraint_sharding(args[1])
        x = args[0]
        dev = x._box.pieces[0].device.type
        pieces = [_fake_tensor(fake_mode, sh.block(x.shape), x.dtype, torch.device(dev, d))
                  for d in mesh.devices]
        return ShardedTensor.of(pieces, sh, x.shape, x.dtype)
    op, writes_first = spmd_ops.functional(func)

    def meta(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return torch.empty(tuple(x.shape), dtype=x.dtype, device="meta")
        return x

    with unset_fake_temporarily():
        a, k = pytree.tree_unflatten([meta(x) for x in flat], spec)
        out = op(*a, **k)
    sharded = [(tuple(x.shape), x._sharding()) for x in flat if isinstance(x, ShardedTensor)]

    def wrap(m: Any) -> Any:
        if not isinstance(m, torch.Tensor):
            return m
        sh = follow(tuple(m.shape), sharded, mesh)
        from . import compiled_device
        dev = compiled_device.device_type()
        pieces = [_fake_tensor(fake_mode, sh.block(m.shape), m.dtype, torch.device(dev, d))
                  for d in mesh.devices]
        return ShardedTensor.of(pieces, sh, m.shape, m.dtype)

    result = pytree.tree_map(wrap, out)
    if writes_first:
        first = pytree.tree_leaves(args[0] if args else next(iter(kwargs.values())))
        news = pytree.tree_leaves(result)
        for t, new in zip(first, news):
            if isinstance(t, ShardedTensor):
                t._box.pieces = new._box.pieces if t._sharding() == new._sharding() else [
                    _fake_tensor(fake_mode, p.shape, p.dtype, p.device) for p in t._box.pieces]
        writes = _write_returns(func, args, kwargs)
        if isinstance(result, (tuple, list)) and writes:
            return type(result)(writes.get(j, o) for j, o in enumerate(result))
        return writes.get(0) if writes else None
    return result


# -------------------------------------------------------------- constraint --

_constraints: Dict[Sharding, str] = {}
_constraint_shardings: Dict[str, Sharding] = {}
_constraint_lock = threading.Lock()
CONSTRAINT = "torch_pjrt::sharding_constraint"


def constraint_key(sharding: Sharding) -> str:
    """The process-wide name a sharding constraint op refers to."""
    with _constraint_lock:
        key = _constraints.get(sharding)
        if key is None:
            key = _constraints[sharding] = f"sharding{len(_constraints)}"
            _constraint_shardings[key] = sharding
        return key


def constraint_sharding(key: str) -> Sharding:
    with _constraint_lock:
        sh = _constraint_shardings.get(key)
    if sh is None:
        raise KeyError(f"torch_pjrt.spmd: unknown sharding constraint {key!r}")
    return sh


@torch.library.custom_op(CONSTRAINT, mutates_args=())
def sharding_constraint(x: torch.Tensor, key: str) -> torch.Tensor:
    """x laid out as the registered sharding `key` says (a plain tensor: a copy;
    a sharded one is resharded; in a compiled SPMD graph: a constraint)."""
    return x.clone()


@sharding_constraint.register_fake
def _(x: torch.Tensor, key: str) -> torch.Tensor:
    return torch.empty_like(x)


sharding_constraint.register_autograd(lambda ctx, grad: (grad, None),
                                      setup_context=lambda ctx, inputs, output: None)
CONSTRAINT_OP = torch.ops.torch_pjrt.sharding_constraint.default


# ------------------------------------------------------------------ backend --

def has_sharded(example_inputs: Sequence[Any]) -> bool:
    from .spmd_tensor import ShardedTensor
    return any(isinstance(t, ShardedTensor) for t in example_inputs)


def backend(gm: fx.GraphModule, example_inputs: Sequence[Any], **kwargs: Any) -> Any:
    """The SPMD route of pjrt_backend: AOTAutograd over plain fake tensors of
    the logical shapes, its graphs compiled as SPMD programs."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._guards import detect_fake_mode
    from . import backend as _backend
    from .spmd_tensor import ShardedTensor
    fake_mode = detect_fake_mode(example_inputs) or fake_mode_of(example_inputs)
    plain = []
    for t in example_inputs:
        if isinstance(t, ShardedTensor):
            f = _fake_tensor(fake_mode, t.shape, t.dtype, t.device)
            plain.append(f.requires_grad_(t.requires_grad))
        else:
            plain.append(t)
    # The forward's arguments are the primals; the backward returns their
    # gradients in the same order, each laid out like its primal.
    primals: Dict[str, Any] = {}
    aot = aot_autograd(fw_compiler=_compiler("forward", primals),
                       bw_compiler=_compiler("backward", primals),
                       inference_compiler=_compiler("inference", primals),
                       decompositions=_backend.decompositions())
    return aot(gm, plain, **kwargs)


def _compiler(kind: str, primals: Dict[str, Any]) -> Any:
    def compile_fn(gm: fx.GraphModule, example_inputs: Sequence[Any]) -> Any:
        graph = SpmdGraphFn(gm, f"spmd_{kind}_{next(_numbers)}", kind, primals)

        def run(args: List[Any]) -> Any:
            flat = list(args)
            args.clear()
            return graph(*flat)

        run._boxed_call = True  # type: ignore[attr-defined]
        return run

    return compile_fn


class SpmdGraphFn:
    """An ATen graph run as one SPMD program per input-sharding signature."""

    def __init__(self, gm: fx.GraphModule, name: str, kind: str, primals: Dict[str, Any]):
        self.gm = gm
        self.name = name
        self.kind = kind
        self.primals = primals
        out = next(n for n in gm.graph.nodes if n.op == "output")
        self.position = {leaf: i for i, leaf in enumerate(pytree.tree_leaves(out.args[0]))
                         if isinstance(leaf, fx.Node)}
        self._programs: Dict[Any, Any] = {}
        self._lock = threading.Lock()

    def _signature(self, args: Sequence[Any]) -> Tuple[Any, ...]:
        from .spmd_tensor import ShardedTensor
        sig = []
        for a in args:
            if isinstance(a, ShardedTensor):
                sig.append(("S", tuple(a.shape), a.dtype, a._sharding()))
            elif isinstance(a, torch.Tensor):
                sig.append(("T", tuple(a.shape), a.dtype))
            else:
                sig.append(("v", type(a).__name__, a if isinstance(a, (int, float, bool))
                            else None))
        return tuple(sig)

    def _compile(self, args: Sequence[Any]) -> Any:
        from .spmd_program import SpmdProgram
        from .spmd_tensor import ShardedTensor
        mesh = next(a._sharding().mesh for a in args if isinstance(a, ShardedTensor))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        in_sh = [a._sharding() if isinstance(a, ShardedTensor) else Sharding(mesh, (), a.dim())
                 for a in tensors]
        sharded = [(tuple(a.shape), a._sharding()) for a in tensors
                   if isinstance(a, ShardedTensor)]
        ranked = sorted(sharded, key=lambda s: -s[1].tiles)

        grads_of = self.primals.get("shardings", []) if self.kind == "backward" else []

        def out_sharding(node: fx.Node) -> Sharding:
            shape = tuple(node.meta["val"].shape)
            pos = self.position.get(node, -1)
            if 0 <= pos < len(grads_of) and grads_of[pos] is not None \
                    and grads_of[pos][0] == shape:
                return grads_of[pos][1]
            same_rank = [s for s in ranked if len(s[0]) == len(shape)]
            return follow(shape, same_rank + [s for s in ranked if s not in same_rank], mesh)

        n_ops = sum(1 for n in self.gm.graph.nodes if n.op == "call_function")
        log.info("torch_pjrt: compiling %s (%d ops) over %s", self.name, n_ops, mesh)
        return SpmdProgram(self.gm, mesh, in_sh, out_sharding, self.name)

    def __call__(self, *args: Any) -> Any:
        from .spmd_tensor import ShardedTensor
        if self.kind == "forward" and "shardings" not in self.primals:
            self.primals["shardings"] = [(tuple(a.shape), a._sharding())
                                         if isinstance(a, ShardedTensor) else None for a in args]
        sig = self._signature(args)
        with self._lock:
            prog = self._programs.get(sig)
        if prog is None:
            prog = self._compile(args)
            with self._lock:
                self._programs[sig] = prog
        leaves = prog.run(list(args))
        return pytree.tree_unflatten(leaves, prog.lowered.out_spec)
