"""A trace of where time goes, as a Chrome trace-event file (open it in
Perfetto, ui.perfetto.dev, or chrome://tracing).

    with torch_pjrt.profile("trace.json"):
        model(x)

or, for a whole run, TORCH_PJRT_TRACE=trace.json (started when torch_pjrt is
imported, written at exit). The C runtime writes the file
(src/runtime/trace.c): a span for every compile (program key, cache "memory" /
"disk" / "none", op count, seconds), every launch (its enqueue on the calling
thread and its completion on a "pjrt device N" track), every host<->device
copy (bytes, direction), every eager device op and every CPU fallback (op
name); torch.profiler.record_function ranges are spans around them.
"""
import atexit
import contextlib
import os
import sys
from typing import Iterator, Optional, Union

from . import _C

__all__ = ["profile", "trace_enabled"]

_env_path: Optional[str] = None


def trace_enabled() -> bool:
    """True while a trace runs (profile() or TORCH_PJRT_TRACE)."""
    return bool(_C.trace_enabled())


def _observe_record_functions() -> None:
    # torch.profiler.record_function ranges and the op names of CPU fallbacks
    # come from the eager extension (python/csrc/device_trace.cpp), which joins
    # a running trace when it loads; load it now if torch_pjrt registered it.
    try:
        from . import device
        if getattr(device, "_backend_name", None):
            device._load_extension()
    except Exception:  # pragma: no cover - no torch build of _eager
        pass


@contextlib.contextmanager
def profile(path: Union[str, "os.PathLike[str]"]) -> Iterator[str]:
    """Traces the block into `path` (written when the block ends, also on an
    exception). One trace runs at a time: inside another profile() or under
    TORCH_PJRT_TRACE this raises torch_pjrt.Error (FAILED_PRECONDITION)."""
    path = os.fspath(path)
    _C.trace_start(path)
    try:
        _observe_record_functions()
        yield path
    finally:
        _C.trace_stop()


def _stop_env_trace() -> None:
    if _env_path and _C.trace_enabled():
        try:
            _C.trace_stop()
        except Exception as e:  # at exit: report, never raise
            print(f"torch_pjrt: TORCH_PJRT_TRACE: {e}", file=sys.stderr)


def _start_from_env() -> None:
    """TORCH_PJRT_TRACE=path: trace the whole run, written at exit."""
    global _env_path
    path = os.environ.get("TORCH_PJRT_TRACE", "").strip()
    if not path or path.lower() in ("0", "off") or _env_path is not None:
        return
    _C.trace_start(path)
    _env_path = path
    atexit.register(_stop_env_trace)
