"""The one fallback policy: what happens to an op the device cannot run.

With `torch_pjrt.config.fallback == "error"` it raises UnsupportedOpError.
Otherwise the op runs elsewhere (eagerly on the CPU, or op by op on the pjrt
device for a graph compiled over pjrt tensors): one warning per op name per
process, and every run is counted (`torch_pjrt.metrics()["fallbacks"]`, the
trace's fallback spans, `counts` by op name). The compiled path (graph
partitions), the eager device's C++ fallback (device_dispatch.cpp) and its
Python kernels (eager_decomp.py) all come here.
"""
from __future__ import annotations

import threading
import warnings
from typing import Dict, Iterable, Set

from . import config
from ._aten import UnsupportedOpError

ON_CPU = "in eager PyTorch on the CPU"
ON_CPU_EAGER = "on the CPU; its tensors are copied to the host and back"
ON_DEVICE = "eagerly on the pjrt device, op by op"

_warned: Set[str] = set()
_lock = threading.Lock()
counts: Dict[str, int] = {}


def is_error() -> bool:
    """Whether fallbacks are off (config.fallback == "error")."""
    return str(getattr(config, "fallback", "cpu")) == "error"


def allow(name: str, reason: str, where: str = ON_CPU) -> None:
    """Raises UnsupportedOpError when fallbacks are off; else warns, once per
    op name, that `name` runs `where` instead of on the device."""
    if is_error():
        raise UnsupportedOpError(f"torch_pjrt: {name} cannot run on the pjrt device ({reason}) "
                                 f"and torch_pjrt.config.fallback is 'error'")
    with _lock:
        if name in _warned:
            return
        _warned.add(name)
    why = f" ({reason})" if reason else ""
    warnings.warn(f"torch_pjrt: op {name} is not supported on the device{why}; it runs "
                  f"{where} (fallback)", stacklevel=3)


def count(names: Iterable[str]) -> None:
    """Counts one fallback run per op name in `names`."""
    from . import _C
    names = list(names)
    with _lock:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    tracing = _C.trace_enabled()
    for name in names:
        _C.metrics_add_fallback()
        if tracing:  # the op's name in the trace (the runtime's own instant has none)
            _C.trace_instant("fallback", "fallback " + name, {"op": name})


def run_elsewhere(name: str, reason: str, where: str = ON_CPU_EAGER) -> None:
    """allow() and count() for one eager op about to run elsewhere."""
    allow(name, reason, where)
    count((name,))


def total() -> int:
    with _lock:
        return sum(counts.values())


def forget_warning(name: str) -> None:
    """Lets `name` warn again (tests)."""
    with _lock:
        _warned.discard(name)
