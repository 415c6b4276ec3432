"""SPMD over the pjrt devices of one process: tensors laid out across a
device mesh, and programs partitioned by XLA (GSPMD) with the collectives
the compiler inserts.

    import torch_pjrt.spmd as spmd
    mesh = spmd.Mesh((2, 4), ("data", "model"))
    spmd.shard_module(model, mesh, {r"attn\\.qkv\\.weight": ("model", None)})
    x = spmd.shard(batch.to("pjrt"), mesh, ("data", None))
    loss = loss_fn(model(x), y)          # each op: one SPMD program over the mesh

A spec has one entry per tensor dim (shorter specs are padded with None):
a mesh axis name, a tuple of names, or None. Dims that do not divide by
their axes are padded by XLA's rule (blocks of ceil(size / parts)).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch._dynamo

from .spmd_mesh import Mesh, Sharding, shards_from_full
from .spmd_tensor import ShardedTensor

__all__ = ["Mesh", "Sharding", "ShardedTensor", "shard", "mark_sharding", "sharding_of",
           "shards", "shard_module", "device_bytes"]


def _name(t: Any, name: Optional[str]) -> str:
    if name:
        return name
    shape = tuple(t.shape) if isinstance(t, torch.Tensor) else "?"
    return f"tensor of shape {shape}"


def shard(t: torch.Tensor, mesh: Mesh, spec: Sequence[Any] = (),
          name: Optional[str] = None) -> ShardedTensor:
    """`t` laid out on `mesh` by `spec` (a copy; a sharded `t` is resharded
    on the devices by one SPMD program). Keeps requires_grad."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"spmd.shard: expected a tensor (got {type(t).__name__})")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"spmd.shard: expected a spmd.Mesh (got {type(mesh).__name__})")
    sh = Sharding(mesh, spec, t.dim(), _name(t, name))
    if isinstance(t, ShardedTensor) and t._sharding() == sh:
        return t
    if t.requires_grad and not t.is_leaf:  # inside a forward: the gradient flows back
        return _Shard.apply(t, sh)
    with torch.no_grad():
        out = _lay_out(t, sh)
    return out.requires_grad_(True) if t.requires_grad else out


def _lay_out(t: torch.Tensor, sh: Sharding) -> ShardedTensor:
    if isinstance(t, ShardedTensor):
        return _reshard(t, sh)
    return ShardedTensor.of(shards_from_full(t, sh), sh, t.shape, t.dtype)


class _Shard(torch.autograd.Function):
    """spmd.shard of a tensor inside an autograd graph: the gradient comes
    back in the input's layout (resharded, or whole on the input's device)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, sh: Sharding) -> torch.Tensor:  # type: ignore[override]
        ctx.source = t._sharding() if isinstance(t, ShardedTensor) else t.device
        return _lay_out(t.detach(), sh)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        if isinstance(ctx.source, Sharding):
            return _lay_out(grad, ctx.source), None
        whole = grad.full_tensor() if isinstance(grad, ShardedTensor) else grad
        return whole.to(ctx.source), None


def _reshard(t: ShardedTensor, sh: Sharding) -> ShardedTensor:
    from .spmd_program import SpmdProgram
    import torch.fx as fx
    g = fx.Graph()
    x = g.placeholder("x")
    x.meta["val"] = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")
    y = g.call_function(torch.ops.aten.clone.default, (x,))
    y.meta["val"] = x.meta["val"]
    g.output((y,))
    gm = fx.GraphModule(torch.nn.Module(), g)
    key = ("reshard", tuple(t.shape), t.dtype, t._sharding(), sh)
    prog = _reshards.get(key)
    if prog is None:
        prog = SpmdProgram(gm, sh.mesh, [t._sharding()], lambda node: sh, "spmd_reshard")
        _reshards[key] = prog
    with torch.no_grad():
        (out,) = prog.run([t])
    return out


_reshards: Dict[Any, Any] = {}


def mark_sharding(t: torch.Tensor, mesh: Mesh, spec: Sequence[Any] = (),
                  name: Optional[str] = None) -> torch.Tensor:
    """Eagerly: reshards the sharded tensor `t` in place (every alias of it
    sees the new layout) and returns `t`. Inside torch.compile: returns `t`
    constrained to the layout (use the result: h = spmd.mark_sharding(h, ...)),
    a sharding annotation on that intermediate of the SPMD program. A plain
    tensor cannot change type in place: use t = spmd.shard(t, mesh, spec)."""
    from . import spmd_compile
    if torch.compiler.is_compiling():
        return spmd_compile.CONSTRAINT_OP(t, _constraint_key(mesh, tuple(spec), t.dim()))
    if not isinstance(t, ShardedTensor):
        raise TypeError(f"spmd.mark_sharding: {_name(t, name)} is not a sharded tensor; use "
                        f"t = spmd.shard(t, mesh, spec) to lay a plain tensor out on a mesh")
    sh = Sharding(mesh, spec, t.dim(), _name(t, name))
    if sh.mesh != t._sharding().mesh:
        raise ValueError(f"spmd.mark_sharding: {_name(t, name)} is on {t._sharding().mesh} "
                         f"(expected {mesh}); use spmd.shard to move it")
    if sh != t._sharding():
        new = _reshard(t, sh)
        t._box.pieces = new._box.pieces
        t._box.sharding = sh
    return t


@torch._dynamo.assume_constant_result
def _constraint_key(mesh: Mesh, spec: Tuple[Any, ...], rank: int) -> str:
    from . import spmd_compile
    return spmd_compile.constraint_key(Sharding(mesh, spec, rank))


def sharding_of(t: torch.Tensor) -> Optional[Sharding]:
    """The tensor's sharding, or None for a plain tensor."""
    return t._sharding() if isinstance(t, ShardedTensor) else None


def shards(t: ShardedTensor) -> List[torch.Tensor]:
    """Each device's block (pjrt tensor p on the mesh's device p; uneven
    dims hold padding past the tensor's end)."""
    if not isinstance(t, ShardedTensor):
        raise TypeError(f"spmd.shards: expected a sharded tensor (got {type(t).__name__})")
    return list(t._pieces())


def shard_module(module: torch.nn.Module, mesh: Mesh,
                 rules: Optional[Mapping[str, Sequence[Any]]] = None) -> torch.nn.Module:
    """Lays every parameter and buffer of `module` out on `mesh`: the first
    rule whose regex matches (re.search) its qualified name gives the spec;
    others, and 0-d tensors, are replicated. Tied parameters stay tied.
    Returns `module`."""
    compiled = [(re.compile(p), spec) for p, spec in (rules or {}).items()]
    done: Dict[int, Any] = {}
    matched = set()
    for mod_name, mod in module.named_modules():
        for kind in ("_parameters", "_buffers"):
            table = getattr(mod, kind)
            for key, value in list(table.items()):
                if value is None:
                    continue
                full = f"{mod_name}.{key}" if mod_name else key
                if id(value) not in done:
                    spec: Sequence[Any] = ()
                    for i, (pat, s) in enumerate(compiled):
                        if pat.search(full):
                            spec, _ = s, matched.add(i)
                            break
                    if value.dim() == 0:  # a scalar (a step count) has no dim to split
                        spec = ()
                    st = shard(value.detach(), mesh, spec, name=full)
                    if kind == "_parameters":
                        st = torch.nn.Parameter(st, requires_grad=value.requires_grad)
                        if st.requires_grad:
                            st.register_post_accumulate_grad_hook(_grad_like_param)
                    done[id(value)] = st
                table[key] = done[id(value)]
    unused = [p.pattern for i, (p, _) in enumerate(compiled) if i not in matched]
    if unused:
        raise ValueError(f"spmd.shard_module: rules {unused} match no parameter or buffer of "
                         f"{type(module).__name__}")
    return module


def _grad_like_param(p: torch.Tensor) -> None:
    """Keeps a parameter's gradient laid out like the parameter (FSDP-style
    sharding then holds 1/N of each gradient too)."""
    g = p.grad
    if not isinstance(g, ShardedTensor) or not isinstance(p, ShardedTensor):
        return
    # A gradient that came out of a view op (the weight grad of a linear is
    # a transpose) is a copy of a base only the backward held: it is the
    # gradient's own tensor now, so clipping and unscaling may write into it.
    g._view = None
    if g._sharding() != p._sharding():
        with torch.no_grad():
            mark_sharding(g, p._sharding().mesh, p._sharding().spec())


def device_bytes(module_or_tensors: Any) -> List[int]:
    """Bytes each mesh device holds for the sharded tensors of a module (its
    parameters and buffers) or of a list of tensors."""
    if isinstance(module_or_tensors, torch.nn.Module):
        ts = list(module_or_tensors.parameters()) + list(module_or_tensors.buffers())
    else:
        ts = list(module_or_tensors)
    out: List[int] = []
    seen = set()
    for t in ts:
        if not isinstance(t, ShardedTensor) or id(t._box) in seen:
            continue
        seen.add(id(t._box))
        pieces = t._pieces()
        if not out:
            out = [0] * len(pieces)
        for p, piece in enumerate(pieces):
            out[p] += piece.numel() * piece.element_size()
    return out
