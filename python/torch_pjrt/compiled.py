"""Runtime side of compiled FX graphs: the callable that AOTAutograd (or
torch.export support) invokes, its per-signature compile cache, the device
buffer cache that keeps unchanged parameters on the device, and the fallback
partitioning that runs unsupported ops in eager PyTorch on the CPU.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import _aten
from . import _log
from . import compiled_device
from . import config
from . import fallback_pairs
from . import fallback_policy
from . import fx_lower
from . import recompile

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

from .buffer_cache import BufferCache  # noqa: E402

buffer_cache = BufferCache()


# -------------------------------------------------- saved-for-backward outputs --
#
# Forward outputs that AOTAutograd only saves for the backward never need their
# values on the host: the backward (another compiled graph) finds their device
# buffers in the buffer cache. Such outputs are returned as placeholders:
# torch.empty tensors of the right shape whose memory is never written, each
# registered here with its device buffer. Anything that could read one on the
# host first calls `materialize`, which downloads the real value into it; an
# upload of a placeholder that misses the cache materializes it first, so no
# garbage ever reaches the device.

_placeholders: Dict[int, Tuple[Any, Any]] = {}  # id(storage) -> (storage weakref, buffer)
_placeholder_lock = threading.Lock()
placeholder_stats = {"made": 0, "materialized": 0}


def _forget_placeholder(key: int, ref: Any) -> None:
    with _placeholder_lock:
        e = _placeholders.get(key)
        if e is not None and e[0] is ref:
            del _placeholders[key]


def _register_placeholder(t: torch.Tensor, buf: Any) -> None:
    """Records `buf` as the only copy of the (unwritten) storage of `t`."""
    storage = t.untyped_storage()
    key = id(storage)
    ref = weakref.ref(storage, lambda r, k=key: _forget_placeholder(k, r))
    with _placeholder_lock:
        _placeholders[key] = (ref, buf)
        placeholder_stats["made"] += 1


def is_placeholder(t: torch.Tensor) -> bool:
    """Whether `t` views a placeholder whose value is still only on the device."""
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return False
    e = _placeholders.get(id(storage))
    return e is not None and e[0]() is storage


def materialize(t: Any) -> None:
    """Downloads the device value of placeholder storage under `t` (no-op for
    any other object), so host code may read it."""
    if not isinstance(t, torch.Tensor) or not _placeholders:
        return
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return
    key = id(storage)
    e = _placeholders.get(key)
    if e is None or e[0]() is not storage:
        return
    buf = e[1]
    if storage.nbytes() != buf.nbytes:
        raise RuntimeError(f"torch_pjrt internal error: placeholder storage has "
                           f"{storage.nbytes()} bytes, its device buffer {buf.nbytes}")
    # Download first, then forget: another thread that looks meanwhile still
    # sees a placeholder (and at worst downloads the same bytes), never a
    # storage that is not written yet.
    if buf.nbytes:
        buf.to_host(storage.data_ptr(), buf.nbytes)
    with _placeholder_lock:
        if _placeholders.get(key) is e:
            del _placeholders[key]
            placeholder_stats["materialized"] += 1


def _placeholders_safe() -> bool:
    """Placeholders are only handed out when nothing but our own backward
    will read saved tensors: no saved-tensor hooks (they may copy or read the
    value on the host) and no compiled autograd (it may run the backward
    with another backend)."""
    try:
        if torch._C._autograd._top_saved_tensors_default_hooks(True) is not None:
            return False
        import torch._dynamo.compiled_autograd as ca
        if ca.compiled_autograd_enabled or torch._dynamo.config.compiled_autograd:
            return False
    except Exception as e:  # noqa: BLE001 - private API; be conservative
        _log.warn_once("placeholders_safe", f"saved-activation placeholders are off: "
                       f"probing autograd hooks failed ({type(e).__name__}: {e})")
        return False
    return True


def upload(t: torch.Tensor, dtype_code: Optional[int] = None, cache: bool = True,
           cl: Any = None) -> Any:
    """Device buffer holding the value of CPU tensor `t` (cached)."""
    if cache:
        buf = buffer_cache.lookup(t)
        if buf is not None:
            return buf
    if _placeholders:
        materialize(t)
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
    buf = (cl or client()).buffer_from_host(src.data_ptr(), nbytes, code, tuple(src.shape))
    if cache:
        buffer_cache.insert(t, buf)
    return buf


def download(buf: Any, dtype: torch.dtype, shape: Tuple[int, ...]) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype)
    if out.numel():
        buf.to_host(out.data_ptr(), out.numel() * out.element_size())
    return out


def rng_words(index: int = 0) -> Tuple[int, int]:
    """The next random op's state words (u64) from the default generator of
    pjrt device `index` (torch.pjrt.manual_seed; torch.manual_seed seeds it
    too): a compiled program's random ops draw the stream eager ops on that
    device draw, in graph order, whatever the CPU generator does."""
    from . import rng_api
    return rng_api.rng_words(index)


def rng_seed(index: int = 0) -> torch.Tensor:
    """rng_words as a 2-element int64 tensor holding the u64 bits."""
    w = [v - (1 << 64) if v >= (1 << 63) else v for v in rng_words(index)]
    return torch.tensor(w, dtype=torch.int64)


# --------------------------------------------------------- compiled graphs --

def _signature(args: Sequence[Any]) -> Tuple[Any, ...]:
    sig = []
    for a in args:
        if isinstance(a, torch.Tensor):
            sig.append(("T", a.dtype, tuple(a.shape), str(a.device)))
        elif isinstance(a, (bool, int, float)) or a is None:
            sig.append(("S", type(a).__name__, a))
        elif isinstance(a, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            sig.append(("S", type(a).__name__, fx_lower.concrete_scalar(a)))
        else:
            sig.append(("O", type(a).__name__))
    return tuple(sig)


_Tensor = torch.Tensor
_DeviceProgram = compiled_device.DeviceProgram
_run_device = compiled_device.run


_PLAIN_SCALARS = (bool, int, float, type(None))


def _fast_key(args: Sequence[Any]) -> Optional[Tuple[Any, ...]]:
    """A cheap exact key for the per-call program lookup: (dtype, shape,
    device) for tensors, (type, value) for plain scalars; None when an argument
    needs the full `_signature` (symbolic values, other objects)."""
    key = []
    for a in args:
        if isinstance(a, _Tensor):
            key.append((a.dtype, a.shape, a.device))
        elif type(a) in _PLAIN_SCALARS:
            key.append((type(a), a))
        else:
            return None
    return tuple(key)


# feed kinds of _Program.feeds
_FEED_ARG, _FEED_DONATE, _FEED_CONST, _FEED_RNG = 0, 1, 2, 3


def _upload_missing(t: torch.Tensor, cache: bool) -> Any:
    """A host call's argument that missed the buffer cache (device_host_call.cpp)."""
    return upload(t, cache=cache)


class _Program:
    """One compiled signature over host tensors: its _C.Program (the launch:
    parameters from the buffer cache, constants owned by the program, the RNG
    seed, runtime checks) and what a call needs to build its results. Without
    saved-activation results, `native` is the call spec of
    _eager.host_run (one native call per step)."""
    __slots__ = ("lowered", "program", "feeds", "results", "leaves", "identity_out",
                 "writebacks", "has_saved", "flat_type", "native")

    def __init__(self, lowered: fx_lower.LoweredGraph, executable: Any, cl: Any,
                 donate_args: frozenset, writebacks: Sequence[Tuple[int, int]],
                 saved_from: Optional[int], name: str, args: Sequence[Any]):
        self.lowered = lowered
        feeds, plan = [], []
        for src in lowered.inputs:
            if src[0] == "arg":
                d = src[1] in donate_args
                feeds.append((_FEED_DONATE if d else _FEED_ARG, src[1]))
                plan.append("donate" if d else "buffer")
            elif src[0] == "const":
                feeds.append((_FEED_CONST, None))
                plan.append(("constant", upload(src[1], cache=False, cl=cl)))
            else:  # ("rng",)
                feeds.append((_FEED_RNG, None))
                plan.append("seed")
        self.feeds = feeds
        self.program = (_C().Program(executable, plan, lowered.checks or [], name)
                        if executable is not None else None)
        # Result k is a placeholder when every output leaf using it is saved
        # for the backward only (leaf index >= saved_from).
        saved = [saved_from is not None] * len(lowered.result_types)
        for leaf, (kind, k) in enumerate(lowered.outputs):
            if kind == "result" and (saved_from is None or leaf < saved_from):
                saved[k] = False
        self.results = []
        for (dtype, shape), s in zip(lowered.result_types, saved):
            nbytes = _numel(shape) * torch.empty((), dtype=dtype).element_size()
            self.results.append((dtype, shape, nbytes, s))
        self.leaves = lowered.outputs
        self.identity_out = [v for kind, v in lowered.outputs] == list(
            range(len(lowered.result_types))) and all(
                kind == "result" for kind, _ in lowered.outputs)
        self.writebacks = []
        for leaf, pos in writebacks:
            if leaf < len(lowered.outputs) and lowered.outputs[leaf][0] == "result":
                k = lowered.outputs[leaf][1]
                self.writebacks.append((k, pos) + tuple(lowered.result_types[k]))
        self.has_saved = any(r[3] for r in self.results)
        self.flat_type = compiled_device.flat_type(lowered)
        self.native = None
        if self.program is not None and not self.has_saved:
            self.native = self._host_spec(args)

    def _host_spec(self, args: Sequence[Any]) -> Any:
        from . import _eager as ek
        kinds = {_FEED_ARG: ek.HOST_FEED_ARG, _FEED_DONATE: ek.HOST_FEED_DONATE,
                 _FEED_CONST: ek.HOST_FEED_CONST, _FEED_RNG: ek.HOST_FEED_RNG}
        feeds = []
        for kind, v in self.feeds:
            t = args[v] if kind in (_FEED_ARG, _FEED_DONATE) else None
            if t is not None and not isinstance(t, torch.Tensor):
                return None  # not a tensor argument: the Python path
            feeds.append((kinds[kind], v if t is not None else 0,
                          t.dtype if t is not None else None,
                          tuple(t.shape) if t is not None else None))
        results = [(dtype, tuple(shape)) for dtype, shape, _, _ in self.results]
        leaf_kinds = {"result": ek.LEAF_RESULT, "input": ek.LEAF_INPUT,
                      "alias": ek.LEAF_ALIAS, "value": ek.LEAF_VALUE}
        leaves = [(leaf_kinds[kind], v) for kind, v in self.leaves]
        flat = 0 if self.flat_type is tuple else 1 if self.flat_type is list else 2
        return ek.host_create(self.program, len(args), feeds, results,
                              [(k, pos) for k, pos, _, _ in self.writebacks], leaves, flat,
                              _upload_missing)


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def lower_signature(gm: fx.GraphModule, values: Dict[fx.Node, Any], args: Sequence[Any],
                    checks: bool, tolerate_failures: bool = False
                    ) -> Tuple[fx_lower.LoweredGraph, Optional[List[int]], Any]:
    """Lowers `gm` for one signature: (lowered, device argument positions,
    per-parameter dtype codes) for inputs on a pjrt device (flat storage
    parameters), (lowered, None, None) for host tensors. `args` are the call's
    arguments or the placeholders' example values (the backend's dry run)."""
    graph_cls = functools.partial(_C().Graph, checks=checks)
    if compiled_device.program_device(args, "graph") is not None:
        return compiled_device.lower(gm, values, args, graph_cls, fx_lower.lower_graph,
                                     tolerate_failures)
    return fx_lower.lower_graph(gm, values, graph_cls, tolerate_failures), None, None


class CompiledGraph:
    """Callable running one FX graph as one device program per input signature
    (shapes, dtypes, devices, scalar values). Returns tensors shaped like the
    graph's output structure: CPU tensors for CPU inputs; for inputs on a pjrt
    device, pjrt tensors on that device and no host transfers (see
    compiled_device).

    `saved_from`: output leaves from this index on are only saved for the
    backward (AOTAutograd forward graphs); their values stay on the device
    and the host gets placeholders (see `materialize`)."""

    def __init__(self, gm: fx.GraphModule, name: str = "graph",
                 donate_args: Sequence[int] = (),
                 writebacks: Sequence[Tuple[int, int]] = (),
                 saved_from: Optional[int] = None,
                 prelowered: Optional[Tuple[Any, ...]] = None):
        self.gm = gm
        # (checks, lowered, dev_args, codes) of the static signature, from the
        # backend's dry run (lower_signature), used by the first compile.
        self._prelowered = prelowered
        # (checks, compiled_run or host_run, spec, out_spec or None) of the
        # native program that ran last: its calls skip the program lookup.
        self._native: Optional[Tuple[Any, ...]] = None
        # (output leaf, argument position): AOTAutograd copies that output into
        # that (mutated) input right after the call, bumping its _version by
        # one; the output's device buffer then is the input's device copy.
        self.writebacks = tuple(writebacks)
        self.saved_from = saved_from
        self.name = name
        # The signatures compiled so far: names the inputs of each recompile.
        self.history = recompile.History(
            name, "graph", [n.name for n in gm.graph.nodes if n.op == "placeholder"])
        self._programs: Dict[Tuple[Any, ...], _Program] = {}
        self._fast: Dict[Tuple[Any, ...], _Program] = {}
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

    def _compile(self, args: Sequence[Any], sig: Tuple[Any, ...], checks: bool) -> Any:
        device = compiled_device.program_device(args, self.name)
        recompile.note_graph(self.history, sig, checks)  # logs why, after the first
        c = _C()
        n_ops = sum(1 for n in self.gm.graph.nodes if n.op == "call_function")
        log.info("torch_pjrt: compiling %s (%d ops) for %s", self.name, n_ops,
                 device or "cpu tensors")
        t0 = time.perf_counter()
        pre, self._prelowered = self._prelowered, None
        if pre is not None and pre[0] == checks and sig == self._static_sig:
            lowered, dev_args, codes = pre[1:]  # the backend's dry run: not lowered again
        else:
            lowered, dev_args, codes = lower_signature(self.gm, self._values_for(args, sig),
                                                       args, checks)
        cl = client()
        if not lowered.text:
            executable = None
        elif device is not None:  # portable: runs on the device of its inputs
            executable = c.eager_compile(cl, lowered.text)
        else:
            executable = cl.compile(lowered.text)
        log.info("torch_pjrt: compiled %s (%d StableHLO ops) in %.3f s", self.name,
                 lowered.op_count, time.perf_counter() - t0)
        if device is not None:
            return compiled_device.DeviceProgram(self.gm, lowered, executable, cl, device,
                                                 dev_args, codes, args, self.writebacks,
                                                 self.name)
        return _Program(lowered, executable, cl, self.donate_args, self.writebacks,
                        self.saved_from, self.name, args)

    def program(self, args: Sequence[Any]) -> Any:
        checks = bool(config.check_indices)  # part of the key: toggling is never stale
        key = _fast_key(args)
        if key is not None:
            key = (checks, key)
            prog = self._fast.get(key)
            if prog is not None:
                return prog
        sig = _signature(args)
        prog = self._programs.get((checks, sig))
        if prog is None:
            with self._lock:
                prog = self._programs.get((checks, sig))
                if prog is None:
                    prog = self._compile(args, sig, checks)
                    self._programs[(checks, sig)] = prog
        if key is not None:
            self._fast[key] = prog
        return prog

    def _inputs(self, prog: _Program, args: Sequence[Any]) -> List[Any]:
        """Program.run's arguments: cached or uploaded buffers, None for the
        program's constants, the RNG words for its seed."""
        vals: List[Any] = []
        lookup = buffer_cache.lookup
        for kind, v in prog.feeds:
            if kind == _FEED_ARG:
                t = args[v]
                buf = lookup(t)
                vals.append(buf if buf is not None else upload(t))
            elif kind == _FEED_DONATE:
                # A mutated input is overwritten right after this call, so
                # its device buffer is dead afterwards: hand it to the
                # program (taken out of the cache) instead of keeping it.
                t = args[v]
                buf = buffer_cache.pop(t)
                vals.append(buf if buf is not None else upload(t, cache=False))
            elif kind == _FEED_RNG:  # the pjrt device's generator, as eager ops draw it
                vals.append(rng_words(0))
            else:
                vals.append(None)
        return vals

    def __call__(self, *args: Any) -> Any:
        fast = self._native
        if fast is not None and fast[0] == bool(config.check_indices):
            # The last native program, in one call; NotImplemented when args
            # are another signature (then it is looked up below).
            out = fast[1](fast[2], args)
            if out is not NotImplemented:
                return out if fast[3] is None else pytree.tree_unflatten(out, fast[3])
        prog = self.program(args)
        if prog.program is None:
            leaves = [args[v] if kind == "input" else args[v].detach() if kind == "alias"
                      else v for kind, v in prog.lowered.outputs]
            return pytree.tree_unflatten(leaves, prog.lowered.out_spec)
        if type(prog) is _DeviceProgram:
            from . import _eager
            self._native = (bool(config.check_indices), _eager.compiled_run, prog.native,
                            None if prog.flat_type is not None else prog.lowered.out_spec)
            return _run_device(prog, args)
        if prog.native is not None:
            from . import _eager
            spec = None if prog.flat_type is not None else prog.lowered.out_spec
            self._native = (bool(config.check_indices), _eager.host_run, prog.native, spec)
            out = _eager.host_run(prog.native, args)
            if out is NotImplemented:
                raise RuntimeError(f"torch_pjrt internal error: program {self.name} got "
                                   f"arguments that do not match its signature")
            return out if spec is None else pytree.tree_unflatten(out, spec)
        vals = self._inputs(prog, args)
        use_ph = prog.has_saved and _placeholders_safe()
        results: List[torch.Tensor] = []
        dests: List[Any] = []
        for dtype, shape, nbytes, saved in prog.results:
            t = torch.empty(shape, dtype=dtype)
            results.append(t)
            dests.append(None if (saved and use_ph) or not nbytes else (t.data_ptr(), nbytes))
        # A failed runtime check raises here, before anything is cached.
        outs = prog.program.run(vals, dests)
        insert = buffer_cache.insert
        for t, buf, d, r in zip(results, outs, dests, prog.results):
            if d is None and r[2] and use_ph and r[3]:
                _register_placeholder(t, buf)
            insert(t, buf, alias_ok=True)
        for k, pos, dtype, shape in prog.writebacks:
            if pos < len(args):
                t = args[pos]
                if (isinstance(t, _Tensor) and t.dtype == dtype and t.shape == shape
                        and t.is_contiguous()):
                    insert(t, outs[k], version=t._version + 1)
        return compiled_device.outputs(prog, results, args)

    @property
    def num_programs(self) -> int:
        return len(self._programs)


# ---------------------------------------------------------------- fallback --

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
        if node.op == "call_function":  # a fallback op: see fallback_pairs
            node.target = fallback_pairs.cpu_kernel(fx_lower.op_name(node)) or node.target
        if node.op == "call_module":
            sub = getattr(fused, node.target)
            compiled = CompiledGraph(sub, name=f"{name}.{node.target}")
            delattr(fused, node.target)
            setattr(fused, node.target, _DeviceSubmodule(compiled))
    fused.recompile()
    return fused


class PartitionedGraph:
    """A graph whose unsupported ops run eagerly between device subgraphs."""

    def __init__(self, gm: fx.GraphModule, unsupported: Dict[fx.Node, str], name: str,
                 on_device: bool = False, collectives: Set[fx.Node] = frozenset()):
        """`collectives`: functional collectives, which also run eagerly (through
        the process group) but are not fallbacks: not counted, not refused."""
        self.names = [fx_lower.op_name(n) for n in unsupported]
        where = fallback_policy.ON_DEVICE if on_device else fallback_policy.ON_CPU
        for node, reason in unsupported.items():
            fallback_policy.allow(fx_lower.op_name(node), reason, where)
        self.gm = partition(gm, set(unsupported) | set(collectives), name)

    def __call__(self, *args: Any) -> Any:
        fallback_policy.count(self.names)
        if _placeholders:  # eager ops below read their inputs on the host
            for a in args:
                materialize(a)
        return self.gm(*args)
