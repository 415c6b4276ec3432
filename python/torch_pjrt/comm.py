"""Collectives across the pjrt devices of this process (as torch.cuda.comm is
for one process's GPUs): `tensors[d]` lives on pjrt:d, and the plugin runs the
collective as one compiled StableHLO program over those devices with its own
in-process transport (the XLA CPU plugin with cpu_device_count=N has one), on
device memory: nothing is staged through the host. Results are new tensors,
one per device, on the same devices.

    xs = [torch.full((4,), float(d), device=f"pjrt:{d}") for d in range(4)]
    torch_pjrt.comm.all_reduce(xs)        # each: 0+1+2+3
"""
from typing import List, Sequence

import torch

__all__ = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]

# tpj_collective_kind_t and tpj_reduce_kind_t (include/tpj/collective.h, ir.h).
_ALL_REDUCE, _ALL_GATHER, _REDUCE_SCATTER, _ALL_TO_ALL = 0, 1, 2, 3
_REDUCE = {"sum": 0, "prod": 1, "max": 2, "min": 3}


def _ext():
    from . import device
    return device._load_extension()


def _reduce_code(op: str, tensors: Sequence[torch.Tensor], what: str) -> int:
    code = _REDUCE.get(str(op).lower())
    if code is None:
        raise ValueError(f"torch_pjrt.comm.{what}: op must be one of {sorted(_REDUCE)} "
                         f"(got {op!r})")
    if tensors and tensors[0].dtype == torch.bool:
        raise TypeError(f"torch_pjrt.comm.{what}: bool tensors cannot be reduced with {op!r}")
    return code


def _checked(tensors: Sequence[torch.Tensor], what: str) -> List[torch.Tensor]:
    ts = list(tensors)
    if not ts:
        raise ValueError(f"torch_pjrt.comm.{what}: no tensors given (expected one per device)")
    for d, t in enumerate(ts):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"torch_pjrt.comm.{what}: item {d} is not a tensor "
                            f"(got {type(t).__name__})")
    return ts


def _dim(dim: int, rank: int, what: str) -> int:
    if rank == 0:
        raise ValueError(f"torch_pjrt.comm.{what}: a 0-d tensor has no dimension to split "
                         f"or join (expected rank >= 1)")
    if not -rank <= dim < rank:
        raise IndexError(f"torch_pjrt.comm.{what}: dim {dim} out of range for rank {rank}")
    return dim % rank


def all_reduce(tensors: Sequence[torch.Tensor], op: str = "sum") -> List[torch.Tensor]:
    """Each device gets the elementwise reduction (sum, prod, max, min) of all."""
    ts = _checked(tensors, "all_reduce")
    code = _reduce_code(op, ts, "all_reduce")
    flat = _ext().local_collective(_ALL_REDUCE, code, ts)
    return [f.view(ts[0].shape) for f in flat]


def all_gather(tensors: Sequence[torch.Tensor], dim: int = 0) -> List[torch.Tensor]:
    """Each device gets every device's tensor concatenated along `dim`."""
    ts = _checked(tensors, "all_gather")
    d = _dim(dim, ts[0].dim(), "all_gather")
    moved = [t.movedim(d, 0) for t in ts]
    flat = _ext().local_collective(_ALL_GATHER, 0, moved)
    shape = list(moved[0].shape)
    shape[0] *= len(ts)
    return [f.view(shape).movedim(0, d) for f in flat]


def reduce_scatter(tensors: Sequence[torch.Tensor], dim: int = 0,
                   op: str = "sum") -> List[torch.Tensor]:
    """Device k gets chunk k (of len(tensors) equal chunks along `dim`) of the
    reduction of all."""
    ts = _checked(tensors, "reduce_scatter")
    d = _dim(dim, ts[0].dim(), "reduce_scatter")
    n = len(ts)
    if ts[0].shape[d] % n:
        raise ValueError(f"torch_pjrt.comm.reduce_scatter: dim {dim} of size "
                         f"{ts[0].shape[d]} does not split into {n} equal chunks")
    code = _reduce_code(op, ts, "reduce_scatter")
    moved = [t.movedim(d, 0) for t in ts]
    flat = _ext().local_collective(_REDUCE_SCATTER, code, moved)
    shape = list(moved[0].shape)
    shape[0] //= n
    return [f.view(shape).movedim(0, d) for f in flat]


def all_to_all(tensors: Sequence[torch.Tensor], split_dim: int = 0,
               concat_dim: int = 0) -> List[torch.Tensor]:
    """Device j sends chunk k of its tensor (len(tensors) equal chunks along
    split_dim) to device k; each device concatenates what it got, in device
    order, along concat_dim."""
    ts = _checked(tensors, "all_to_all")
    rank = ts[0].dim()
    s = _dim(split_dim, rank, "all_to_all")
    c = _dim(concat_dim, rank, "all_to_all")
    n = len(ts)
    if ts[0].shape[s] % n:
        raise ValueError(f"torch_pjrt.comm.all_to_all: split_dim {split_dim} of size "
                         f"{ts[0].shape[s]} does not split into {n} equal chunks")
    moved = [t.movedim(s, 0) for t in ts]
    flat = _ext().local_collective(_ALL_TO_ALL, 0, moved)
    chunk = list(moved[0].shape)
    chunk[0] //= n
    out = []
    for f in flat:
        parts = f.view([n] + chunk).movedim(1, s + 1)  # (n, chunk with split dim back)
        out.append(torch.cat(list(parts.unbind(0)), dim=c))
    return out
