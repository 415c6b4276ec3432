"""ShardedTensor: a pjrt tensor laid out across a mesh, one eager storage per
device (its padded block), plus its sharding. Eager ops on it run as one-op
SPMD programs over the mesh (spmd_program.py), cached per signature; ops
that cannot (data-dependent shapes, no lowering) run on the mesh's first
device over whole tensors, through the one fallback policy.

Aliasing: detach/alias share the pieces (an in-place op through either is
seen by both). Other views are computed copies that recompute themselves
when their base changes (its version counter moved); an in-place op on such
a view raises instead of silently missing the base.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils import _pytree as pytree

from . import fallback_policy
from .spmd_mesh import Mesh, Sharding, full_from_shards, shards_from_full

log = logging.getLogger("torch_pjrt")
aten = torch.ops.aten


class _Box:
    """The pieces of a sharded tensor, shared by its aliases."""
    __slots__ = ("pieces", "sharding")

    def __init__(self, pieces: List[torch.Tensor], sharding: Sharding):
        self.pieces = pieces
        self.sharding = sharding


class _TracedOnly:
    """A method hidden on instances marked opaque: AOTAutograd treats a
    tensor without __tensor_flatten__ as plain, which is how a sharded
    gradient enters a backward compiled over whole-tensor fakes."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is not None and getattr(obj, "_opaque", False):
            raise AttributeError(self.fn.__name__)
        return self.fn.__get__(obj, owner)


class ShardedTensor(torch.Tensor):
    """A tensor on a mesh of pjrt devices (see torch_pjrt.spmd)."""

    _box: _Box
    _view: Optional[Tuple[Any, ...]]

    @staticmethod
    def __new__(cls, box: _Box, shape: Sequence[int], dtype: torch.dtype,
                requires_grad: bool = False) -> "ShardedTensor":
        from . import compiled_device
        dev = torch.device(compiled_device.device_type(), box.sharding.mesh.devices[0])
        r = torch.Tensor._make_wrapper_subclass(cls, tuple(shape), dtype=dtype, device=dev,
                                                requires_grad=requires_grad)
        r._box = box
        r._view = None
        r._opaque = False
        return r

    @classmethod
    def of(cls, pieces: List[torch.Tensor], sharding: Sharding, shape: Sequence[int],
           dtype: torch.dtype) -> "ShardedTensor":
        return cls(_Box(pieces, sharding), shape, dtype)

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        return dispatch(func, tuple(args), dict(kwargs or {}))

    # Dynamo and AOTAutograd see the pieces as the inner tensors.
    def _flatten(self) -> Tuple[List[str], Any]:
        return [f"_p{i}" for i in range(len(self._box.pieces))], (self._sharding(), self.dtype)

    __tensor_flatten__ = _TracedOnly(_flatten)

    @staticmethod
    def _unflatten(inner: Dict[str, torch.Tensor], ctx: Any, outer_size: Any,
                   outer_stride: Any) -> "ShardedTensor":
        sharding, dtype = ctx
        pieces = [inner[f"_p{i}"] for i in range(len(inner))]
        return ShardedTensor.of(pieces, sharding, outer_size, dtype)

    __tensor_unflatten__ = _TracedOnly(_unflatten)

    @property
    def data(self) -> torch.Tensor:  # type: ignore[override]
        return torch.Tensor.data.__get__(self, type(self))  # type: ignore[attr-defined]

    @data.setter
    def data(self, other: torch.Tensor) -> None:
        # t.data = other: t shares other's pieces (as it would share storage)
        if not isinstance(other, ShardedTensor) or other.shape != self.shape \
                or other.dtype != self.dtype:
            raise NotImplementedError(
                f"torch_pjrt.spmd: .data = a {type(other).__name__} {other.dtype} "
                f"{tuple(other.shape)} on a sharded {self.dtype} {tuple(self.shape)} tensor "
                f"(expected a sharded tensor of the same shape and dtype; a sharded tensor's "
                f"shape and dtype are fixed)")
        self._box = other._box
        self._view = other._view

    def __coerce_same_metadata_as_tangent__(self, expected_meta: Any,
                                            expected_type: Any = None) -> "ShardedTensor":
        # A compiled backward traced over whole-tensor fakes wants a plain
        # tangent: the same pieces, opaque to AOTAutograd.
        if expected_meta is not None:
            return None  # type: ignore[return-value]
        out = alias(self)
        out._opaque = True
        return out

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_p") and name[2:].isdigit():
            return self._box.pieces[int(name[2:])]
        raise AttributeError(f"'ShardedTensor' object has no attribute {name!r}")

    # ---------------------------------------------------------------- access --
    def _sharding(self) -> Sharding:
        return self._box.sharding

    def _pieces(self) -> List[torch.Tensor]:
        _refresh(self)
        return self._box.pieces

    def full_tensor(self) -> torch.Tensor:
        """The whole tensor, assembled on the CPU."""
        return full_from_shards(self._pieces(), self._sharding(), self.shape)

    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        body = repr(self.full_tensor())
        return f"ShardedTensor({body}, sharding={self._sharding()})"

    def __reduce_ex__(self, protocol: int) -> Any:
        # torch.save of a sharded tensor stores the whole tensor (CPU).
        return self.full_tensor().__reduce_ex__(protocol)


def alias(x: ShardedTensor) -> ShardedTensor:
    out = ShardedTensor(x._box, x.shape, x.dtype)
    out._view = x._view
    return out


def _refresh(x: ShardedTensor) -> None:
    """Recomputes a view whose base was written since it was made."""
    v = x._view
    if v is None:
        return
    base, version, func, args, kwargs, index = v
    if base._version == version:
        return
    _refresh(base)
    fresh = _run(func, args, kwargs)
    if index is not None:  # one output of unbind/split/chunk
        fresh = fresh[index]
    x._box.pieces = fresh._box.pieces
    x._box.sharding = fresh._box.sharding
    x._view = (base, base._version, func, args, kwargs, index)


def _assign(target: torch.Tensor, value: torch.Tensor, op: str) -> None:
    """Makes `value` (the op's new contents) the contents of `target`."""
    if value.dtype != target.dtype:
        raise RuntimeError(f"torch_pjrt internal error: {op} gives a {value.dtype} value for a "
                           f"{target.dtype} tensor")
    if tuple(value.shape) != tuple(target.shape):
        raise NotImplementedError(f"torch_pjrt.spmd: {op} gives a {tuple(value.shape)} value "
                                  f"for a tensor of shape {tuple(target.shape)} (expected the "
                                  f"same shape: sharded tensors keep theirs)")
    if isinstance(target, ShardedTensor):
        if target._view is not None:
            raise NotImplementedError(
                f"torch_pjrt.spmd: {op} writes into a view of a sharded tensor, which is a "
                f"copy here (expected in-place ops on whole sharded tensors; clone the view "
                f"first, or write into the base)")
        if isinstance(value, ShardedTensor) and value._sharding() == target._sharding():
            target._box.pieces = value._pieces()
        else:
            full = value.full_tensor() if isinstance(value, ShardedTensor) else value
            target._box.pieces = shards_from_full(full.to(target.dtype), target._sharding())
        return
    full = value.full_tensor() if isinstance(value, ShardedTensor) else value
    with torch.no_grad():
        target.copy_(full)


# -------------------------------------------------------------- dispatch --

def _mesh_of(func: Any, leaves: Sequence[Any]) -> Mesh:
    mesh = None
    for x in leaves:
        if isinstance(x, ShardedTensor):
            m = x._sharding().mesh
            if mesh is not None and m != mesh:
                raise RuntimeError(f"torch_pjrt.spmd: {func} got tensors on two meshes ({mesh} "
                                   f"and {m}); reshard them onto one with spmd.shard")
            mesh = m
    assert mesh is not None
    return mesh


def _to_copy(x: ShardedTensor, **kw: Any) -> torch.Tensor:
    device = kw.pop("device", None)
    kw.pop("pin_memory", None)
    kw.pop("layout", None)
    if device is not None and torch.device(device).type == "cpu":
        full = x.full_tensor()
        return full.to(dtype=kw.get("dtype") or full.dtype,
                       memory_format=kw.get("memory_format") or torch.preserve_format)
    if device is not None and torch.device(device) != x.device:
        raise RuntimeError(f"torch_pjrt.spmd: a sharded tensor on {x._sharding().mesh} cannot "
                           f"move to {device} (expected cpu, or its own device {x.device})")
    kw.pop("non_blocking", None)
    return _run(aten._to_copy.default, (x,), kw)


def _copy_(dst: torch.Tensor, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
    if isinstance(dst, ShardedTensor) and not isinstance(src, ShardedTensor):
        value = src.to(dtype=dst.dtype).expand(dst.shape)
        _assign(dst, value, "aten.copy_")
        return dst
    if not isinstance(dst, ShardedTensor):
        with torch.no_grad():
            dst.copy_(src.full_tensor())
        return dst
    return _run(aten.copy_.default, (dst, src), {})


_SPECIAL = {
    aten.detach.default: lambda x: alias(x),
    aten.alias.default: lambda x: alias(x),
    aten._local_scalar_dense.default: lambda x: x.full_tensor().item(),
    aten._to_copy.default: _to_copy,
    aten.copy_.default: _copy_,
}


# Dynamo sees a sharded tensor as an opaque object: a compiled function over
# one runs op by op here (each op one SPMD program), never traced into.
@torch.compiler.disable
def dispatch(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    from . import spmd_compile
    flat = pytree.tree_leaves((args, kwargs))
    fake_mode = spmd_compile.fake_mode_of(flat)
    if fake_mode is not None:  # Dynamo is tracing: metadata only
        if func in (aten.detach.default, aten.alias.default):
            return alias(args[0])
        return spmd_compile.fake_run(func, args, kwargs, fake_mode, _mesh_of(func, flat))
    if func is spmd_compile.CONSTRAINT_OP:
        from .spmd import _reshard
        sh = spmd_compile.constraint_sharding(args[1])
        return args[0] if args[0]._sharding() == sh else _reshard(args[0], sh)
    special = _SPECIAL.get(func)
    if special is not None:
        return special(*args, **kwargs)
    if func._schema.name.startswith("aten::_foreach_"):
        return _foreach(func, args, kwargs)
    if func is aten.native_batch_norm.default:
        return _batch_norm(args, kwargs)
    return _run(func, args, kwargs)


def _batch_norm(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """native_batch_norm writes its running stats without its schema saying
    so: train mode runs the functional form and writes them back."""
    a = list(args) + [kwargs[k] for k in ("weight", "bias", "running_mean", "running_var",
                                          "training", "momentum", "eps")[len(args) - 1:]
                      if k in kwargs]
    running_mean, running_var, training = a[3], a[4], a[5]
    if not training or running_mean is None or running_var is None:
        return _run(aten.native_batch_norm.default, args, kwargs)
    out, mean, rstd, new_mean, new_var = _run(
        aten._native_batch_norm_legit_functional.default, tuple(a), {})
    with torch.no_grad():
        _assign(running_mean, new_mean, "aten.native_batch_norm")
        _assign(running_var, new_var, "aten.native_batch_norm")
    return out, mean, rstd


# The per-tensor op of a foreach op takes these keyword-only scalars.
_KEYWORD_SCALAR = {"addcdiv": "value", "addcdiv_": "value", "addcmul": "value",
                   "addcmul_": "value"}


def _foreach(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """A foreach op as its per-tensor op on each index (each one program):
    _foreach_mul_(xs, s) is x.mul_(s) for every x."""
    base = func._schema.name.split("::")[-1][len("_foreach_"):]
    op = getattr(aten, base)
    n = len(args[0])
    results = []
    for i in range(n):
        a = [x[i] if isinstance(x, (list, tuple)) else x for x in args]
        k = dict(kwargs)
        key = _KEYWORD_SCALAR.get(base)
        if key is not None and len(a) == 4:
            k[key] = a.pop()
        results.append(op(*a, **k))
    return None if base.endswith("_") else results


def _written_args(func: Any, args: Tuple[Any, ...],
                  kwargs: Dict[str, Any]) -> List[Tuple[Any, Any]]:
    """(schema argument, value) of each argument the op writes."""
    out = []
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            out.append((a, args[i] if i < len(args) else kwargs.get(a.name)))
    return out


def _write_returns(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[int, Any]:
    """Return index -> the argument object it aliases and writes (in-place
    and out= ops return their written argument)."""
    by_set: Dict[str, Any] = {}
    for a, value in _written_args(func, args, kwargs):
        for s in a.alias_info.before_set:
            by_set[s] = value
    out = {}
    for j, r in enumerate(func._schema.returns):
        info = r.alias_info
        if info is not None and info.is_write:
            for s in info.before_set:
                if s in by_set:
                    out[j] = by_set[s]
    return out


def _is_view(func: Any) -> bool:
    rs = func._schema.returns
    return bool(rs) and all(r.alias_info is not None and not r.alias_info.is_write for r in rs)


def _adopt(view: ShardedTensor) -> bool:
    """A view whose base nothing but the view itself references (a gradient
    that came out of expand, its base gone with the backward) can be written:
    no one could see the base miss the write. It stops being a view."""
    base = view._view[0]
    inside = sum(1 for x in pytree.tree_leaves(view._view) if x is base)
    # references: the view's record, this frame's `base`, getrefcount's argument
    if sys.getrefcount(base) - 2 > inside:
        return False
    view._view = None
    return True


def _mutated_views(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    for _, value in _written_args(func, args, kwargs):
        for v in pytree.tree_leaves(value):
            if isinstance(v, ShardedTensor) and v._view is not None and not _adopt(v):
                raise NotImplementedError(
                    f"torch_pjrt.spmd: {func} writes into a view of a sharded tensor, which "
                    f"is a copy here (expected in-place ops on whole sharded tensors; clone "
                    f"the view first, or write into the base)")


# In-place ops that change a tensor's shape or strides: a sharded tensor's
# metadata is fixed at creation (its wrapper), so these cannot be honoured.
_METADATA_INPLACE = frozenset(["transpose_", "t_", "swapdims_", "swapaxes_", "squeeze_",
                               "unsqueeze_", "as_strided_", "resize_", "resize_as_", "set_"])


def _run(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    from . import spmd_ops
    if func._schema.name.split("::")[-1] in _METADATA_INPLACE:
        raise NotImplementedError(
            f"torch_pjrt.spmd: {func} changes the shape of a sharded tensor in place, which "
            f"sharded tensors do not support (expected the out-of-place op, e.g. x = "
            f"x.transpose(0, 1); nn.GRU(batch_first=True) calls transpose_)")
    _mutated_views(func, args, kwargs)
    if func._schema.name in ("aten::as_strided", "aten::as_strided_copy") and \
            isinstance(args[0], ShardedTensor) and args[0]._view is not None:
        raise NotImplementedError(
            f"torch_pjrt.spmd: {func} on a view of a sharded tensor: the view is a contiguous "
            f"copy, so strides into its base's storage do not apply (expected as_strided on a "
            f"tensor that is not a view)")
    flat, spec = pytree.tree_flatten((args, kwargs))
    mesh = _mesh_of(func, flat)
    entry = spmd_ops.program_for(func, flat, spec, mesh)
    if entry is None:
        return _run_whole(func, args, kwargs, mesh)
    out = entry.run(flat)
    writes = _write_returns(func, args, kwargs)
    if isinstance(out, (tuple, list)) and writes:
        out = type(out)(writes.get(j, o) for j, o in enumerate(out))
    elif writes:
        out = writes[0]
    if _is_view(func):
        base = next((x for x in flat if isinstance(x, ShardedTensor)), None)
        many = isinstance(out, (tuple, list))
        for j, o in enumerate(out if many else [out]):
            if isinstance(o, ShardedTensor) and base is not None:
                o._view = (base, base._version, func, args, kwargs, j if many else None)
    return out


def _run_whole(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], mesh: Mesh) -> Any:
    """The op over whole tensors on the mesh's first device; tensor results
    come back replicated over the mesh, writes go back into their tensors."""
    from . import compiled_device
    from . import spmd_ops
    name = str(func)
    fallback_policy.run_elsewhere(name, spmd_ops.why_not(func),
                                  where=f"on pjrt:{mesh.devices[0]} over whole tensors")
    dev = torch.device(compiled_device.device_type(), mesh.devices[0])
    whole: Dict[int, torch.Tensor] = {}

    def conv(x: Any) -> Any:
        if isinstance(x, ShardedTensor):
            whole[id(x)] = x.full_tensor().to(dev)
            return whole[id(x)]
        return x

    a, k = pytree.tree_map(conv, (args, kwargs))
    out = func(*a, **k)
    flat_args = pytree.tree_leaves((args, kwargs))
    for x in flat_args:
        if isinstance(x, ShardedTensor) and id(x) in whole:
            new = whole[id(x)]
            if _written(func, x, args, kwargs):
                _assign(x, new, name)
    writes = _write_returns(func, args, kwargs)

    def back(o: Any) -> Any:
        if isinstance(o, torch.Tensor) and o.device.type != "cpu":
            sh = Sharding(mesh, (), o.dim())
            return ShardedTensor.of(shards_from_full(o, sh), sh, o.shape, o.dtype)
        return o

    if writes:
        if isinstance(out, (tuple, list)):
            return type(out)(writes.get(j, back(o)) for j, o in enumerate(out))
        return writes[0]
    return pytree.tree_map(back, out)


def _written(func: Any, x: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
    return any(v is x for _, value in _written_args(func, args, kwargs)
               for v in pytree.tree_leaves(value))
