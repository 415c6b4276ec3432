"""Runtime side of compiled FX graphs: the callable that AOTAutograd (or
torch.export support) invokes, its per-signature compile cache, the device
buffer cache that keeps unchanged parameters on the device, and the fallback
partitioning that runs unsupported ops in eager PyTorch on the CPU.
"""
from __future__ import annotations

import logging
import threading
import time
import warnings
import weakref
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import _aten
from . import fx_lower

log = logging.getLogger("torch_pjrt")


def _C():
    from . import _C as c  # the extension; imported lazily so docs build without it
    return c


# ------------------------------------------------------------------- client --

_client_lock = threading.Lock()
_own_client: Any = None


def client() -> Any:
    """The process-wide PJRT client (the one torch_pjrt._device manages)."""
    global _own_client
    try:
        from . import _device
    except ImportError:
        _device = None
    if _device is not None:
        for name in ("default_client", "client", "get_client"):
            fn = getattr(_device, name, None)
            if callable(fn):
                return fn()
    with _client_lock:
        if _own_client is None:
            import sysconfig
            c = _C()
            path = c.plugin_resolve(None, [sysconfig.get_paths()["purelib"]])
            _own_client = c.Client(path)
        return _own_client


# ------------------------------------------------------------ buffer cache --

class _Entry:
    __slots__ = ("ref", "obj", "alias_ok", "version", "data_ptr", "buffer")

    def __init__(self, ref: Any, obj: Any, alias_ok: bool, version: int, data_ptr: int,
                 buffer: Any):
        self.ref = ref            # weakref to the storage
        self.obj = obj            # weakref to the tensor object the entry was made for
        self.alias_ok = alias_ok  # may other tensor objects on the storage match?
        self.version = version
        self.data_ptr = data_ptr
        self.buffer = buffer


def _cache_key(t: torch.Tensor) -> Tuple[Any, ...]:
    return (id(t.untyped_storage()), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


class BufferCache:
    """Device buffers of host tensors that have not changed since they were
    uploaded (or downloaded). Keyed by the tensor's storage (its Python object
    is unique while the storage lives, and is weakly referenced; entries go
    away with it) and view (offset, shape, strides, dtype), confirmed by the
    tensor's _version counter and data_ptr.

    An entry made by an upload matches only the same tensor object, so
    parameters an optimizer did not touch are not sent again. An entry made by
    a download (a device result) also matches other tensors on the same
    storage and view with the same version: autograd hands results back as
    detach()ed aliases (gradients), which share the version counter; while the
    original result is alive, a change of its version invalidates the entry.

    Limit: writes through an alias with its own version counter (`.data`,
    `set_`) are not seen."""

    def __init__(self) -> None:
        self._entries: Dict[Tuple[Any, ...], _Entry] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, t: torch.Tensor) -> Any:
        try:
            key = _cache_key(t)
        except (RuntimeError, NotImplementedError):
            return None
        e = self._entries.get(key)
        if (e is None or e.ref() is None or e.ref() is not t.untyped_storage()
                or e.data_ptr != t.data_ptr()):
            return None
        obj = e.obj()
        if obj is not t:
            if not e.alias_ok:
                return None
            if obj is not None and obj._version != e.version:
                self._evict_key(key, e)
                return None
        if e.version != t._version:
            return None
        self.hits += 1
        return e.buffer

    def insert(self, t: torch.Tensor, buffer: Any, version: Optional[int] = None,
               alias_ok: bool = False) -> None:
        """Caches `buffer` as the device copy of `t`; with `version`, only for
        that future _version of `t` (a write-back the caller expects)."""
        try:
            storage = t.untyped_storage()
            key = _cache_key(t)
            ref = weakref.ref(storage, lambda r, k=key, s=self: s._evict_ref(k, r))
            obj = weakref.ref(t)
        except (RuntimeError, NotImplementedError, TypeError):
            return
        entry = _Entry(ref, obj, alias_ok, t._version if version is None else version,
                       t.data_ptr(), buffer)
        with self._lock:
            self._entries[key] = entry

    def _evict_key(self, key: Tuple[Any, ...], entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]

    def _evict_ref(self, key: Tuple[Any, ...], ref: Any) -> None:
        with self._lock:
            e = self._entries.get(key)
            if e is not None and e.ref is ref:
                del self._entries[key]

    def evict(self, t: torch.Tensor) -> None:
        with self._lock:
            self._entries.pop(_cache_key(t), None)

    def pop(self, t: torch.Tensor) -> Any:
        """The valid buffer of `t` (or None), removed from the cache."""
        buf = self.lookup(t)
        self.evict(t)
        return buf

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


buffer_cache = BufferCache()


def upload(t: torch.Tensor, dtype_code: Optional[int] = None, cache: bool = True) -> Any:
    """Device buffer holding the value of CPU tensor `t` (cached)."""
    if cache:
        buf = buffer_cache.lookup(t)
        if buf is not None:
            return buf
    buffer_cache.misses += cache
    src = t.detach()
    if src.device.type != "cpu":
        src = src.cpu()
    if src.is_conj():
        src = src.resolve_conj()
    if src.is_neg():
        src = src.resolve_neg()
    src = src.contiguous()
    code = dtype_code if dtype_code is not None else _aten.dtype_code(src.dtype)
    nbytes = src.numel() * src.element_size()
    buf = client().buffer_from_host(src.data_ptr(), nbytes, code, tuple(src.shape))
    if cache:
        buffer_cache.insert(t, buf)
    return buf


def download(buf: Any, dtype: torch.dtype, shape: Tuple[int, ...]) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype)
    if out.numel():
        buf.to_host(out.data_ptr(), out.numel() * out.element_size())
    return out


def rng_seed() -> torch.Tensor:
    """Two 63-bit values from torch's default CPU generator (uint64 bytes)."""
    return torch.randint(0, 2 ** 63 - 1, (2,), dtype=torch.int64)


# --------------------------------------------------------- compiled graphs --

def _signature(args: Sequence[Any]) -> Tuple[Any, ...]:
    sig = []
    for a in args:
        if isinstance(a, torch.Tensor):
            sig.append(("T", a.dtype, tuple(a.shape)))
        elif isinstance(a, (bool, int, float)) or a is None:
            sig.append(("S", type(a).__name__, a))
        elif isinstance(a, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            sig.append(("S", type(a).__name__, fx_lower.concrete_scalar(a)))
        else:
            sig.append(("O", type(a).__name__))
    return tuple(sig)


class _Program:
    __slots__ = ("lowered", "executable")

    def __init__(self, lowered: fx_lower.LoweredGraph, executable: Any):
        self.lowered = lowered
        self.executable = executable


class CompiledGraph:
    """Callable running one FX graph as one device program per input signature
    (shapes, dtypes, scalar values). Returns CPU tensors shaped like the graph's
    output structure."""

    def __init__(self, gm: fx.GraphModule, name: str = "graph",
                 donate_args: Sequence[int] = (),
                 writebacks: Sequence[Tuple[int, int]] = ()):
        self.gm = gm
        # (output leaf, argument position): AOTAutograd copies that output into
        # that (mutated) input right after the call, bumping its _version by
        # one; the output's device buffer then is the input's device copy.
        self.writebacks = tuple(writebacks)
        self.name = name
        self._programs: Dict[Tuple[Any, ...], _Program] = {}
        self._lock = threading.Lock()
        # Argument positions whose host tensors are overwritten right after the
        # call (mutated inputs): their device buffers may be donated.
        self.donate_args = frozenset(donate_args)
        self._static = fx_lower.meta_values(gm)
        self._static_sig: Optional[Tuple[Any, ...]] = None
        if self._static is not None:
            ph = [self._static[n] for n in gm.graph.nodes if n.op == "placeholder"]
            self._static_sig = _signature(ph)

    def _values_for(self, args: Sequence[Any], sig: Tuple[Any, ...]) -> Dict[fx.Node, Any]:
        if self._static is not None and sig == self._static_sig:
            return self._static
        return fx_lower.propagate_values(self.gm, args)

    def _compile(self, args: Sequence[Any], sig: Tuple[Any, ...]) -> _Program:
        values = self._values_for(args, sig)
        c = _C()
        n_ops = sum(1 for n in self.gm.graph.nodes if n.op == "call_function")
        log.info("torch_pjrt: compiling %s (%d ops)", self.name, n_ops)
        t0 = time.perf_counter()
        lowered = fx_lower.lower_graph(self.gm, values, c.Graph)
        executable = client().compile(lowered.text) if lowered.text else None
        log.info("torch_pjrt: compiled %s (%d StableHLO ops) in %.3f s", self.name,
                 lowered.op_count, time.perf_counter() - t0)
        return _Program(lowered, executable)

    def program(self, args: Sequence[Any]) -> _Program:
        sig = _signature(args)
        prog = self._programs.get(sig)
        if prog is None:
            with self._lock:
                prog = self._programs.get(sig)
                if prog is None:
                    prog = self._compile(args, sig)
                    self._programs[sig] = prog
        return prog

    def __call__(self, *args: Any) -> Any:
        prog = self.program(args)
        lowered = prog.lowered
        results: List[torch.Tensor] = []
        if prog.executable is not None:
            bufs, donate = [], []
            for src in lowered.inputs:
                if src[0] == "arg":
                    t = args[src[1]]
                    # A mutated input is overwritten right after this call, so
                    # its device buffer is dead afterwards: hand it to the
                    # program (taken out of the cache) instead of keeping it.
                    donated = src[1] in self.donate_args
                    buf = buffer_cache.pop(t) if donated else None
                    bufs.append(buf if buf is not None else upload(t, cache=not donated))
                    donate.append(donated)
                elif src[0] == "const":
                    bufs.append(upload(src[1]))
                    donate.append(False)
                else:  # ("rng",)
                    bufs.append(upload(rng_seed(), dtype_code=9, cache=False))
                    donate.append(True)
            if any(donate):
                # Never donate a buffer that feeds two parameters (aliases).
                uses: Dict[int, int] = {}
                for b in bufs:
                    uses[id(b)] = uses.get(id(b), 0) + 1
                donate = [d and uses[id(b)] == 1 for d, b in zip(donate, bufs)]
            outs = prog.executable.execute(bufs, donate if any(donate) else None)
            for buf, (dtype, shape) in zip(outs, lowered.result_types):
                t = download(buf, dtype, shape)
                buffer_cache.insert(t, buf, alias_ok=True)
                results.append(t)
            self._expect_writebacks(args, lowered, outs)
        leaves = [results[v] if kind == "result" else v for kind, v in lowered.outputs]
        return pytree.tree_unflatten(leaves, lowered.out_spec)

    def _expect_writebacks(self, args: Sequence[Any], lowered: fx_lower.LoweredGraph,
                           outs: Sequence[Any]) -> None:
        for leaf, pos in self.writebacks:
            if leaf >= len(lowered.outputs) or pos >= len(args):
                continue
            kind, k = lowered.outputs[leaf]
            t = args[pos]
            if (kind == "result" and isinstance(t, torch.Tensor) and t.is_contiguous()
                    and (t.dtype, tuple(t.shape)) == lowered.result_types[k]):
                buffer_cache.insert(t, outs[k], version=t._version + 1)

    @property
    def num_programs(self) -> int:
        return len(self._programs)


# ---------------------------------------------------------------- fallback --

_warned_ops: Set[str] = set()
_warn_lock = threading.Lock()
fallback_counts: Dict[str, int] = {}


def warn_fallback(name: str, reason: str = "") -> None:
    """Warns once per op name (per process) that `name` runs on the CPU."""
    with _warn_lock:
        if name in _warned_ops:
            return
        _warned_ops.add(name)
    why = f" ({reason})" if reason else ""
    warnings.warn(f"torch_pjrt: op {name} is not supported on the device{why}; "
                  f"it runs in eager PyTorch on the CPU (fallback)", stacklevel=3)


def count_fallbacks(names: Sequence[str]) -> None:
    """Counts one fallback execution per op name in `names`."""
    with _warn_lock:
        for name in names:
            fallback_counts[name] = fallback_counts.get(name, 0) + 1
    add = getattr(_C(), "metrics_add_fallback", None)
    if add is not None:
        for _ in names:
            add()


def fallback_total() -> int:
    return sum(fallback_counts.values())


class _DeviceSubmodule(torch.nn.Module):
    """nn.Module wrapper so a CompiledGraph can replace a fused partition."""

    def __init__(self, compiled: CompiledGraph):
        super().__init__()
        self.compiled = compiled

    def forward(self, *args: Any) -> Any:
        return self.compiled(*args)


def partition(gm: fx.GraphModule, unsupported: Set[fx.Node], name: str) -> fx.GraphModule:
    """Fuses the supported nodes of `gm` into device subgraphs; the nodes in
    `unsupported` stay in the top-level module and run eagerly."""
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    from torch.fx.passes.operator_support import OperatorSupportBase

    class _Support(OperatorSupportBase):
        def is_node_supported(self, submodules: Any, node: fx.Node) -> bool:
            return node.op == "call_function" and node not in unsupported

    partitioner = CapabilityBasedPartitioner(gm, _Support(),
                                             allows_single_node_partition=True)
    partitions = partitioner.propose_partitions()
    fused = partitioner.fuse_partitions(partitions)
    for node in list(fused.graph.nodes):
        if node.op == "call_module":
            sub = getattr(fused, node.target)
            compiled = CompiledGraph(sub, name=f"{name}.{node.target}")
            delattr(fused, node.target)
            setattr(fused, node.target, _DeviceSubmodule(compiled))
    return fused


class PartitionedGraph:
    """A graph whose unsupported ops run eagerly between device subgraphs."""

    def __init__(self, gm: fx.GraphModule, unsupported: Dict[fx.Node, str], name: str):
        self.names = [fx_lower.op_name(n) for n in unsupported]
        for node, reason in unsupported.items():
            warn_fallback(fx_lower.op_name(node), reason)
        self.gm = partition(gm, set(unsupported), name)

    def __call__(self, *args: Any) -> Any:
        count_fallbacks(self.names)
        return self.gm(*args)
