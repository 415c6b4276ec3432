"""Why a graph compiled again: recompile reasons, a warning for graphs that
keep recompiling, and the per-graph recompile counts of torch_pjrt.metrics().

Two kinds of recompile reach this backend:

* A CompiledGraph (compiled.py) compiles one program per input signature
  (dtypes, shapes, devices, scalar values, config.check_indices). Every
  compile after its first logs, at INFO on the "torch_pjrt" logger, the
  inputs that differ from the closest earlier signature:
      torch_pjrt: recompiling inference_3 (compile 2 of this graph): input x:
      shape (8, 17) -> (8, 33)
* Dynamo recompiles a whole frame when its guards fail; each compile is a new
  FX graph at the backend entry (backend.py), which logs the inputs that
  differ from the frame's closest earlier compile and the guard Dynamo
  reports as failed (torch._dynamo.guard_failures, the record behind
  TORCH_LOGS=recompiles):
      torch_pjrt: recompiling frame f (model.py:12) (compile 2 of f): input x:
      shape (8, 17) -> (8, 33); Dynamo guard failed: tensor 'x' size mismatch
      at index 1. expected 17, actual 33

When a graph or frame goes over config.recompile_warn_after compiles it warns
once (RecompileWarning, and the log at WARNING) naming the dims that keep
changing and what bounds the compiles. metrics() gets "recompiles" (graph
name -> recompiles) and "frame_recompiles" ("fn (file:line)" -> recompiles).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import torch

from . import config

log = logging.getLogger("torch_pjrt")

_lock = threading.Lock()
_recompiles: Dict[str, int] = {}        # CompiledGraph name -> recompiles
_frame_recompiles: Dict[str, int] = {}  # "fn (file:line)" -> recompiles


class RecompileWarning(UserWarning):
    """A graph went over torch_pjrt.config.recompile_warn_after compiles."""


def metrics() -> Dict[str, Dict[str, int]]:
    """The recompile counts since the last reset (copies)."""
    with _lock:
        return {"recompiles": dict(_recompiles), "frame_recompiles": dict(_frame_recompiles)}


def reset() -> None:
    """Clears the counts (the histories that number the compiles stay)."""
    with _lock:
        _recompiles.clear()
        _frame_recompiles.clear()


# ------------------------------------------------------------ descriptions --
#
# An input's descriptor: ("T", dtype, shape, device[, stride, requires_grad,
# dynamic dims]) for tensors (compiled.py's _signature has the first four),
# ("S", type name, value) for scalars, ("O", type name) for other objects.

_DERIVED = (".size()", ".stride()", ".storage_offset()")


def _dtype(d: Any) -> str:
    return str(d).replace("torch.", "")


def _shape(s: Sequence[Any]) -> str:
    return "(" + ", ".join(str(v) for v in s) + (",)" if len(s) == 1 else ")")


def _what(desc: Tuple[Any, ...]) -> str:
    """A descriptor in words: 'tensor float32 (8, 17)', 'int 3'."""
    if desc[0] == "T":
        return f"tensor {_dtype(desc[1])} {_shape(desc[2])} on {desc[3]}"
    if desc[0] == "S":
        return f"{desc[1]} {desc[2]!r}"
    return f"a {desc[1]} object"


def _tensor_change(old: Tuple[Any, ...], new: Tuple[Any, ...]) -> List[str]:
    parts = []
    if old[1] != new[1]:
        parts.append(f"dtype {_dtype(old[1])} -> {_dtype(new[1])}")
    if tuple(old[2]) != tuple(new[2]):
        parts.append(f"shape {_shape(old[2])} -> {_shape(new[2])}")
    if old[3] != new[3]:
        parts.append(f"device {old[3]} -> {new[3]}")
    if len(old) > 4 and len(new) > 4:
        if old[4] != new[4] and tuple(old[2]) == tuple(new[2]):
            parts.append(f"stride {_shape(old[4])} -> {_shape(new[4])}")
        if old[5] != new[5]:
            parts.append(f"requires_grad {old[5]} -> {new[5]}")
        if old[6] != new[6]:
            dims = [", ".join(str(d) for d in x[6]) or "none" for x in (old, new)]
            parts.append(f"dynamic dims {dims[0]} -> {dims[1]}")
    return parts


def change(name: str, old: Optional[Tuple[Any, ...]], new: Optional[Tuple[Any, ...]]
           ) -> Optional[str]:
    """How input `name` changed from `old` to `new` (None: it did not)."""
    if old == new:
        return None
    if old is None:
        return f"new input {name}: {_what(new)}"
    if new is None:
        return f"input {name} is gone (was {_what(old)})"
    if old[0] != new[0]:
        return f"input {name}: {_what(old)} -> {_what(new)}"
    if old[0] == "T":
        parts = _tensor_change(old, new)
    elif old[0] == "S" and old[1] == new[1]:
        parts = [f"value {old[2]!r} -> {new[2]!r}"]
    else:
        parts = [f"{_what(old)} -> {_what(new)}"]
    return f"input {name}: " + ", ".join(parts or ["changed"])


Entry = Tuple[Tuple[str, Tuple[Any, ...]], ...]  # ((input name, descriptor), ...)


def diff(old: Entry, new: Entry) -> List[str]:
    """The changes from `old` to `new`: tensors first; inputs that are only a
    size or stride of another input are left out when anything else changed."""
    a, b = dict(old), dict(new)
    names = [n for n, _ in new] + [n for n, _ in old if n not in b]
    out = [(n, change(n, a.get(n), b.get(n))) for n in names]
    out = [(n, c) for n, c in out if c is not None]
    plain = [(n, c) for n, c in out if not any(d in n for d in _DERIVED)]
    out = plain or out
    out.sort(key=lambda nc: 0 if (b.get(nc[0]) or a.get(nc[0]) or "O")[0] == "T" else 1)
    return [c for _, c in out]


def _distance(old: Entry, new: Entry) -> int:
    """How many fields differ: a dtype, a device, each dim of a shape, ..."""
    a, b = dict(old), dict(new)
    n = sum(1 for k in a if k not in b)
    for k, d in b.items():
        o = a.get(k)
        if o == d:
            continue
        if o is None or o[0] != d[0] or d[0] != "T":
            n += 1
            continue
        fields = [i for i in range(1, min(len(o), len(d))) if o[i] != d[i]]
        n += len(fields) - (2 in fields)
        if 2 in fields:
            n += (sum(1 for x, y in zip(o[2], d[2]) if x != y)
                  if len(o[2]) == len(d[2]) else 1)
    return n


def _closest(history: Sequence[Entry], new: Entry) -> int:
    """The index of the earlier entry that differs least (the latest of
    those that tie)."""
    best, best_d = len(history) - 1, None
    for i in range(len(history) - 1, -1, -1):
        d = _distance(history[i], new)
        if best_d is None or d < best_d:
            best, best_d = i, d
    return best


def _join(changes: Sequence[str], limit: int = 4) -> str:
    if not changes:
        return "no input changed"
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more


# ----------------------------------------------------------------- history --

class History:
    """The input signatures a graph (or a Dynamo frame) compiled for."""

    def __init__(self, label: str, kind: str, names: Sequence[str] = ()):
        self.label = label    # "inference_3", or "f (model.py:12)"
        self.kind = kind      # "graph" or "frame"
        self.names = list(names)
        self.entries: List[Entry] = []
        self.sizes: Dict[Tuple[str, Any], Set[Any]] = {}  # (input, dim|"dtype") -> seen
        self.warned = False
        self.lock = threading.Lock()

    def entry(self, sig: Sequence[Tuple[Any, ...]]) -> Entry:
        """Names a positional signature (compiled.py's _signature)."""
        names = self.names if len(self.names) == len(sig) else []
        return tuple((names[i] if names else f"#{i}", d) for i, d in enumerate(sig))

    def _track(self, entry: Entry) -> None:
        for name, d in entry:
            if d[0] != "T":
                continue
            self.sizes.setdefault((name, "dtype"), set()).add(_dtype(d[1]))
            self.sizes.setdefault((name, "rank"), set()).add(len(d[2]))
            for i, s in enumerate(d[2]):
                if not isinstance(s, str):  # a symbol: traced for every size
                    self.sizes.setdefault((name, i), set()).add(s)

    def record(self, entry: Entry) -> Tuple[int, List[str], int]:
        """Adds a compile: (its number, the changes against the closest
        earlier compile and that compile's index; [] and -1 for the first)."""
        with self.lock:
            near = _closest(self.entries, entry) if self.entries else -1
            changes = diff(self.entries[near], entry) if near >= 0 else []
            self.entries.append(entry)
            self._track(entry)
            return len(self.entries), changes, near

    def changing(self) -> List[Tuple[str, Any, List[Any]]]:
        """(input, dim or 'dtype'/'rank', values seen) for what varied."""
        out = []
        for (name, dim), seen in self.sizes.items():
            if len(seen) > 1:
                try:
                    vals = sorted(seen)  # sizes, or dtype names
                except TypeError:
                    vals = sorted(seen, key=str)
                out.append((name, dim, vals))
        return out


def _changing_text(history: History) -> str:
    parts = []
    for name, dim, seen in history.changing():
        vals = ", ".join(str(v) for v in seen[:8]) + (", ..." if len(seen) > 8 else "")
        what = f"dim {dim}" if isinstance(dim, int) else dim
        parts.append(f"input {name} {what} ({len(seen)} values: {vals})")
    return "; ".join(parts) or "no tensor dim or dtype (scalar values or guards changed)"


def _hint(history: History) -> str:
    dims = [(n, d) for n, d, _ in history.changing() if isinstance(d, int)]
    mark = (f"torch._dynamo.mark_dynamic({dims[0][0]}, {dims[0][1]})" if dims
            else "torch._dynamo.mark_dynamic(tensor, dim)")
    if history.kind == "frame":
        first = (f"{mark} before the call, or torch.compile(dynamic=True), so Dynamo "
                 f"traces one graph for every size")
    else:
        first = ("Dynamo already traced this graph for every size, but torch_pjrt "
                 "compiles one program per concrete size")
    if hasattr(config, "shape_buckets"):
        buckets = "set torch_pjrt.config.shape_buckets to pad sizes up to a few buckets"
    else:
        buckets = ("pad inputs to a few sizes yourself (torch_pjrt.config.shape_buckets "
                   "is not implemented yet)")
    return (f"{first}; {buckets}; for Hugging Face generate() use a static KV cache "
            f"(cache_implementation=\"static\")")


def _maybe_warn(history: History, count: int) -> None:
    n = getattr(config, "recompile_warn_after", None)
    if not n or count <= n:
        return
    with history.lock:
        if history.warned:
            return
        history.warned = True
    what = "frame " if history.kind == "frame" else ""
    msg = (f"torch_pjrt: {what}{history.label} has compiled {count} times "
           f"(torch_pjrt.config.recompile_warn_after = {n}); changing: "
           f"{_changing_text(history)}. To bound the compiles: {_hint(history)}")
    log.warning("%s", msg)
    warnings.warn(msg, RecompileWarning, stacklevel=2)


# ------------------------------------------------------- CompiledGraph side --

def note_graph(history: History, sig: Sequence[Tuple[Any, ...]], checks: bool) -> None:
    """Called by CompiledGraph._compile before each compile."""
    entry = history.entry(sig) + (("config.check_indices", ("S", "bool", checks)),)
    count, changes, _ = history.record(entry)
    if count == 1:
        return
    with _lock:
        _recompiles[history.label] = _recompiles.get(history.label, 0) + 1
    changes = [c.replace("input config.check_indices", "config.check_indices")
               for c in changes]
    log.info("torch_pjrt: recompiling %s (compile %d of this graph): %s", history.label,
             count, _join(changes))
    _maybe_warn(history, count)


# ------------------------------------------------------------ Dynamo side --

class _Frame:
    """What the backend saw of one code object: its compiles' inputs, the
    last Dynamo compile id, how much of guard_failures it has read."""

    def __init__(self, label: str):
        self.history = History(label, "frame")
        self.compile_id: Any = None
        self.compile_ids: List[str] = []  # Dynamo's id of each entry of history
        self.seen_failures = 0


_frames: Dict[Tuple[str, str, int], _Frame] = {}
_tls = threading.local()  # .names: the Dynamo graph's input names, during its backend call


def _pretty_source(name: str) -> str:
    """L['x'] -> x, G['m']._parameters['weight'] -> m.weight,
    L['self']._modules['fc']._parameters['bias'] -> self.fc.bias."""
    name = re.sub(r"^[LG]\['([^']+)'\]", r"\1", name)
    return re.sub(r"\._(?:modules|parameters|buffers)\['([^']+)'\]", r".\1", name)


def input_names(gm: torch.fx.GraphModule) -> List[str]:
    """A Dynamo graph's inputs as the user wrote them (from each placeholder's
    source; the placeholder's name when it has none)."""
    out = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        src = getattr(node.meta.get("grapharg"), "source", None)
        name = getattr(src, "name", None) if src is not None else None
        if callable(name):  # older torch: a method
            name = name()
        out.append(_pretty_source(name) if isinstance(name, str) else node.name)
    return out


def _int(v: Any) -> Any:
    if isinstance(v, torch.SymInt):
        hint = getattr(v.node, "hint", None)
        return hint if hint is not None else str(v)
    return int(v)


def _frame_desc(value: Any, fake: Any) -> Tuple[Any, ...]:
    if isinstance(value, torch.Tensor):
        try:
            stride = tuple(_int(s) for s in value.stride())
        except (RuntimeError, NotImplementedError):  # sparse, nested
            stride = ()
        # A dim the graph traced symbolically is its symbol ("s27"), not a size.
        fake_shape = getattr(fake, "shape", value.shape)
        shape = tuple(str(f) if isinstance(f, torch.SymInt) and f.node.maybe_as_int() is None
                      else _int(v) for v, f in zip(value.shape, fake_shape))
        dyn = tuple(i for i, v in enumerate(shape) if isinstance(v, str))
        return ("T", value.dtype, shape, str(value.device), stride,
                bool(value.requires_grad), dyn)
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        hint = getattr(value.node, "hint", None)
        return ("S", type(value).__name__.replace("Sym", "").lower(),
                hint if hint is not None else str(value))
    if isinstance(value, (bool, int, float)) or value is None:
        return ("S", type(value).__name__, value)
    return ("O", type(value).__name__)


def _guard_reason(code: Any, frame: _Frame, against: str) -> Optional[str]:
    """Dynamo's failed guard for this recompile, against its compile
    `against` (else its latest, the first it recorded since the last look)."""
    failures = getattr(torch._dynamo, "guard_failures", None)
    got = failures.get(code) if failures is not None else None
    if not got:
        frame.seen_failures = 0
        return None
    start = frame.seen_failures if frame.seen_failures <= len(got) else 0
    frame.seen_failures = len(got)
    if start >= len(got):
        return None
    new = [str(r) for r in got[start:]]
    first = next((r for r in new if r.startswith(f"{against}: ")), new[0])
    first = " ".join(first.splitlines()[0].split())
    m = re.match(r"^(\S+/\S+): (.*)$", first)
    return f"{m.group(2)} (Dynamo compile {m.group(1)})" if m else first


def _current_frame() -> Tuple[Any, Any]:
    """(code object, CompileId) of the frame Dynamo is compiling, or Nones."""
    from torch._guards import CompileContext, TracingContext
    tc = TracingContext.try_get()
    codes = getattr(tc, "traced_code", None) if tc is not None else None
    return (codes[0] if codes else None), CompileContext.current_compile_id()


def note_frame(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> List[str]:
    """Records one Dynamo graph of a frame; logs why the frame compiled again.
    Returns the graph's input names."""
    names = input_names(gm)
    code, cid = _current_frame()
    if code is None or cid is None or getattr(cid, "frame_compile_id", None) is None:
        return names
    key = (code.co_name, code.co_filename, code.co_firstlineno)
    label = f"{code.co_name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
    with _lock:
        frame = _frames.get(key)
        if frame is None or cid.frame_compile_id == 0:  # first compile (or after reset)
            frame = _frames[key] = _Frame(label)
            frame.seen_failures = len(getattr(torch._dynamo, "guard_failures", {}).get(code)
                                      or ())
        elif frame.compile_id == cid:
            return names  # another graph of the same compile (a graph break)
        frame.compile_id = cid
    fakes = [n.meta.get("example_value") for n in gm.graph.nodes if n.op == "placeholder"]
    if len(fakes) != len(example_inputs):
        fakes = [None] * len(example_inputs)
    entry = tuple((name, _frame_desc(v, f)) for name, v, f in
                  zip(names, example_inputs, fakes) if not any(d in name for d in _DERIVED))
    entry += (("grad mode", ("S", "bool", torch.is_grad_enabled())),)
    count, changes, near = frame.history.record(entry)
    frame.compile_ids.append(str(cid))
    if count == 1:
        return names
    guard = _guard_reason(code, frame, frame.compile_ids[near])
    if guard:
        changes = changes + [f"Dynamo guard failed: {guard}"]
    changes = [c.replace("input grad mode", "grad mode") for c in changes]
    with _lock:
        _frame_recompiles[label] = _frame_recompiles.get(label, 0) + 1
    log.info("torch_pjrt: recompiling frame %s (compile %d of %s): %s", label, count,
             code.co_name, _join(changes, limit=5) if changes
             else "no input changed and Dynamo recorded no failed guard")
    _maybe_warn(frame.history, count)
    return names


@contextlib.contextmanager
def frame(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Iterator[None]:
    """The backend entry's block around AOTAutograd: records the frame (see
    note_frame) and lends the forward compile the Dynamo input names."""
    try:
        names: Optional[List[str]] = note_frame(gm, example_inputs)
    except Exception as e:  # noqa: BLE001 - reads Dynamo internals; never fail a compile
        from . import _log
        _log.warn_once("recompile_frames", f"frame recompile reasons are off: reading "
                       f"Dynamo's state failed ({type(e).__name__}: {e})")
        names = None
    old = getattr(_tls, "names", None)
    _tls.names = names
    try:
        yield
    finally:
        _tls.names = old


def name_inputs(fn: Any, gm: torch.fx.GraphModule, kind: str) -> None:
    """Gives a forward/inference CompiledGraph the Dynamo graph's input names
    (AOTAutograd keeps their order; arg0_1, primals_1, ... otherwise)."""
    names = getattr(_tls, "names", None)
    history = getattr(fn, "history", None)
    if kind == "backward" or not names or not isinstance(history, History):
        return
    if sum(1 for n in gm.graph.nodes if n.op == "placeholder") == len(names):
        history.names = list(names)
