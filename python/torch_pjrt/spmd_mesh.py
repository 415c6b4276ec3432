"""Device meshes and shardings for torch_pjrt.spmd: which device holds which
block of a tensor, and the same fact written as the GSPMD sharding strings
(`mhlo.sharding`) the plugin's partitioner reads. One place computes both,
so the shards Python lays out and the program's view of them always agree.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

# One spec entry per tensor dim: a mesh axis name, a tuple of names (the dim
# split over several axes, major first) or None (the dim is not split).
SpecEntry = Any


def _pjrt_device_count() -> int:
    from . import device
    return int(device._load_extension().device_count())


class Mesh:
    """A logical n-d grid over pjrt devices: Mesh((2, 4), ("data", "model"))
    puts devices 0..7 in row-major order on a 2 x 4 grid."""

    def __init__(self, shape: Sequence[int], axis_names: Sequence[str],
                 devices: Optional[Sequence[int]] = None):
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        names = tuple(axis_names if isinstance(axis_names, (tuple, list)) else (axis_names,))
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"spmd.Mesh: shape must be positive sizes (got {shape})")
        if len(names) != len(shape):
            raise ValueError(f"spmd.Mesh: {len(names)} axis names for a {len(shape)}-d shape "
                             f"(got names {names}, shape {shape})")
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"spmd.Mesh: axis names must be distinct non-empty strings "
                             f"(got {names})")
        size = math.prod(shape)
        available = _pjrt_device_count()
        if devices is None:
            if size > available:
                raise ValueError(
                    f"spmd.Mesh: shape {shape} needs {size} devices but only {available} pjrt "
                    f"devices exist (the XLA CPU plugin gives N with "
                    f"TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=N)")
            devices = range(size)
        devs = tuple(int(d) for d in devices)
        if len(devs) != size:
            raise ValueError(f"spmd.Mesh: shape {shape} has {size} positions but {len(devs)} "
                             f"devices were given ({list(devs)})")
        bad = [d for d in devs if not 0 <= d < available]
        if bad or len(set(devs)) != len(devs):
            raise ValueError(f"spmd.Mesh: devices must be distinct pjrt device indices in "
                             f"0..{available - 1} (got {list(devs)})")
        if devs != tuple(range(size)):
            raise NotImplementedError(
                f"spmd.Mesh: devices {list(devs)} are not pjrt:0..{size - 1} in order; "
                f"programs run on the first {size} devices (no device assignment yet)")
        self.shape: Tuple[int, ...] = shape
        self.axis_names: Tuple[str, ...] = names
        self.devices: Tuple[int, ...] = devs
        self.size = size

    def axis_size(self, name: str) -> int:
        return self.shape[self.axis_names.index(name)]

    def coords(self, position: int) -> Tuple[int, ...]:
        """Mesh coordinates of device position `position` (row-major)."""
        out = []
        for s in reversed(self.shape):
            out.append(position % s)
            position //= s
        return tuple(reversed(out))

    def _key(self) -> Tuple[Any, ...]:
        return (self.shape, self.axis_names, self.devices)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mesh) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        axes = ", ".join(f"{n}={s}" for n, s in zip(self.axis_names, self.shape))
        return f"Mesh({axes}; devices {list(self.devices)})"


def _fmt_spec(spec: Any) -> str:
    return repr(tuple(spec)) if isinstance(spec, (tuple, list)) else repr(spec)


class Sharding:
    """How a tensor of rank `rank` lies on a mesh: per dim, the mesh axes it
    is split over (padded to equal blocks by XLA's rule, ceil(size / parts),
    when uneven); every device not told apart by those axes holds a copy."""

    def __init__(self, mesh: Mesh, spec: Sequence[SpecEntry], rank: int, what: str = "tensor"):
        if spec is None:
            spec = ()
        if not isinstance(spec, (tuple, list)):
            raise TypeError(f"spmd: spec for {what} must be a tuple with one mesh axis (or "
                            f"None) per dim (got {spec!r})")
        if len(spec) > rank:
            raise ValueError(f"spmd: spec {_fmt_spec(spec)} for {what} has {len(spec)} entries "
                             f"but the tensor has rank {rank} (expected at most {rank})")
        dims: List[Tuple[str, ...]] = []
        used: Dict[str, int] = {}
        for i, entry in enumerate(list(spec) + [None] * (rank - len(spec))):
            axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
            for a in axes:
                if a not in mesh.axis_names:
                    raise ValueError(f"spmd: spec {_fmt_spec(spec)} for {what} names axis {a!r} "
                                     f"which {mesh} does not have (expected one of "
                                     f"{list(mesh.axis_names)} or None)")
                if a in used:
                    raise ValueError(f"spmd: spec {_fmt_spec(spec)} for {what} uses axis {a!r} "
                                     f"for dims {used[a]} and {i} (expected each axis once)")
                used[a] = i
            dims.append(axes)
        self.mesh = mesh
        self.dims: Tuple[Tuple[str, ...], ...] = tuple(dims)
        self.parts = tuple(math.prod(mesh.axis_size(a) for a in axes) for axes in self.dims)
        self.tiles = math.prod(self.parts)
        self.replicas = mesh.size // self.tiles
        self._placement = [self._place(p) for p in range(mesh.size)]

    # --------------------------------------------------------------- layout --
    def _place(self, position: int) -> Tuple[Tuple[int, ...], int]:
        """(tile coords per dim, replica index) of the device at `position`."""
        c = dict(zip(self.mesh.axis_names, self.mesh.coords(position)))
        tile = []
        for axes in self.dims:
            idx = 0
            for a in axes:
                idx = idx * self.mesh.axis_size(a) + c[a]
            tile.append(idx)
        rep = 0
        for a in self.mesh.axis_names:
            if not any(a in axes for axes in self.dims):
                rep = rep * self.mesh.axis_size(a) + c[a]
        return tuple(tile), rep

    def tile(self, position: int) -> Tuple[int, ...]:
        return self._placement[position][0]

    def block(self, shape: Sequence[int]) -> Tuple[int, ...]:
        """Each device's (padded) block of a tensor of `shape`."""
        return tuple(-(-int(s) // p) for s, p in zip(shape, self.parts))

    def slices(self, shape: Sequence[int], position: int) -> Tuple[slice, ...]:
        """The block of device `position` in the padded tensor."""
        b = self.block(shape)
        return tuple(slice(t * n, (t + 1) * n) for t, n in zip(self.tile(position), b))

    def tile_positions(self) -> List[int]:
        """One device position holding each tile (the first), tile order."""
        seen: Dict[Tuple[int, ...], int] = {}
        for p in range(self.mesh.size):
            seen.setdefault(self.tile(p), p)
        return list(seen.values())

    # ---------------------------------------------------------- GSPMD text --
    def _devices_text(self, tile_dims: Sequence[int], linear: Any) -> str:
        order = [0] * self.mesh.size
        for p in range(self.mesh.size):
            order[linear(p)] = p
        dims = list(tile_dims) + ([self.replicas] if self.replicas > 1 else [])
        tail = " last_tile_dim_replicate" if self.replicas > 1 else ""
        return "{devices=[%s]%s%s}" % (",".join(map(str, dims)), ",".join(map(str, order)), tail)

    def _linear(self, position: int) -> int:
        tile, rep = self._placement[position]
        idx = 0
        for t, n in zip(tile, self.parts):
            idx = idx * n + t
        return idx * self.replicas + rep

    def text(self) -> str:
        """The logical tensor's sharding (mhlo.sharding syntax)."""
        if self.tiles == 1:
            return "{replicated}"
        return self._devices_text(self.parts, self._linear)

    def flat_text(self) -> str:
        """The sharding of the flat (tiles * block numel) parameter whose
        device pieces are the blocks, one eager storage each."""
        if self.tiles == 1:
            return "{replicated}"
        return self._devices_text([self.tiles], self._linear)

    # ---------------------------------------------------------------- misc --
    def spec(self) -> Tuple[SpecEntry, ...]:
        return tuple(None if not a else a[0] if len(a) == 1 else a for a in self.dims)

    def _key(self) -> Tuple[Any, ...]:
        return (self.mesh, self.dims)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sharding) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Sharding({self.spec()} on {self.mesh})"


def replicated(mesh: Mesh, rank: int) -> Sharding:
    return Sharding(mesh, (), rank)


def follow(out_shape: Sequence[int], inputs: Sequence[Tuple[Sequence[int], Sharding]],
           mesh: Mesh) -> Sharding:
    """The sharding an op's result gets: the sharding of the first sharded
    input of the same shape; else each result dim takes the axes of a dim of
    the first sharded input with the same size (the same position first,
    so transposes and broadcasts keep their layout); else replicated. Only
    speed depends on it: XLA moves data as the choice needs."""
    out_shape = tuple(int(s) for s in out_shape)
    for shape, sh in inputs:
        if tuple(shape) == out_shape and sh.tiles > 1:
            return sh
    for shape, sh in inputs:
        if sh.tiles == 1:
            continue
        spec: List[Any] = [None] * len(out_shape)
        free = [i for i, axes in enumerate(sh.dims) if axes]
        for pos in range(len(out_shape)):
            size = out_shape[pos]
            cand = [i for i in free if int(shape[i]) == size and size > 1]
            if not cand:
                continue
            i = pos if pos in cand else cand[0]
            spec[pos] = sh.dims[i]
            free.remove(i)
        if any(spec):
            return Sharding(mesh, spec, len(out_shape))
    return Sharding(mesh, (), len(out_shape))


def shards_from_full(t: torch.Tensor, sh: Sharding) -> List[torch.Tensor]:
    """Device blocks of the whole tensor `t` (any device): block p on
    pjrt:mesh.devices[p], contiguous, padded with zeros where uneven."""
    from . import compiled_device
    full = t.detach().cpu().contiguous()
    shape = tuple(full.shape)
    block = sh.block(shape)
    padded_shape = tuple(b * p for b, p in zip(block, sh.parts))
    if padded_shape != shape:
        padded = full.new_zeros(padded_shape)
        padded[tuple(slice(0, s) for s in shape)] = full
        full = padded
    dev = compiled_device.device_type()
    out = []
    for p in range(sh.mesh.size):
        piece = full[sh.slices(shape, p)].contiguous()
        out.append(piece.to(torch.device(dev, sh.mesh.devices[p])))
    return out


def full_from_shards(shards: Sequence[torch.Tensor], sh: Sharding,
                     shape: Sequence[int]) -> torch.Tensor:
    """The whole tensor on the CPU, from one copy of each block."""
    shape = tuple(int(s) for s in shape)
    block = sh.block(shape)
    padded_shape = tuple(b * p for b, p in zip(block, sh.parts))
    full = torch.empty(padded_shape, dtype=shards[0].dtype)
    for p in sh.tile_positions():
        full[sh.slices(shape, p)] = shards[p].cpu()
    return full[tuple(slice(0, s) for s in shape)].clone() if padded_shape != shape else full
