"""Runtime configuration of torch_pjrt (plain module attributes; set them before
compiling).

fallback
    What happens when an ATen op has no C lowering:
      "cpu"   -- the op (or the graph containing it) runs on PyTorch eager CPU;
                 each fallback is counted in torch_pjrt.metrics()["fallbacks"].
      "error" -- raise torch_pjrt.UnsupportedOpError naming the op.
    Default "cpu". Also settable with the environment variable
    TORCH_PJRT_FALLBACK.

check_indices
    True (default): every program that indexes with a runtime tensor
    (index_select, x[idx], gather, take, embedding(_bag), scatter*, index_put,
    index_add, nll_loss/cross_entropy targets) or divides integers also
    computes an "out of range" / "division by zero" flag, and the error
    surfaces as on the CPU (IndexError naming the op, the value and the bound;
    RuntimeError "ZeroDivisionError"): right after the launch under
    torch.compile on CPU tensors; at the next synchronization (a host read
    such as .item(), .cpu(), print, or torch.pjrt.synchronize()) on the eager
    device and for programs compiled over pjrt tensors. The flag
    is a small reduction over the index tensor (cost: docs/design.md).
    False drops the checks from new programs (out-of-range gathers then clamp
    and scatters drop, as XLA defines). Part of every program's cache key, so
    toggling never runs a stale program. Also settable with the environment
    variable TORCH_PJRT_CHECK_INDICES=0.

recompile_warn_after
    N (default 8): a compiled graph, or a Dynamo frame, that goes over N
    compiles (one per input signature) warns once (RecompileWarning, and the
    "torch_pjrt" log at WARNING) naming the input dims that keep changing and
    what would bound the compiles. 0 or None: off. Every recompile also logs
    its reason at INFO (see torch_pjrt.recompile). Note Dynamo stops compiling
    a frame at its own torch._dynamo.config.recompile_limit (8).

shape_buckets
    None (default): a compiled graph whose tensors share one symbolic size in
    dimension 0 (torch.compile(dynamic=True), torch._dynamo.mark_dynamic(x,
    0), or Dynamo's automatic dynamic shapes) runs at power-of-two bucket
    sizes (up to the size's bound, e.g. mark_dynamic(x, 0, max=N)): padded
    to the bucket by repeating the last row, outputs cut back, so a new size
    reuses a program instead of compiling one. Only where padding is proven
    exact (torch_pjrt.shape_buckets; the log says why not). A list of sizes
    picks the buckets (a size above the last compiles its own program);
    False turns buckets off.

disabled_ops(*targets)
    A context manager: inside it the lowerings of `targets`
    ("aten::name.overload") are off, so those ops take the fallback path (the
    CPU, or an error under fallback = "error"), on the eager device and in
    graphs compiled inside the block. For finding a bad lowering, and for the
    tests that force one side of a forward/backward pair onto the CPU.
"""
import contextlib
import os
import sys
import threading
import types
from typing import Iterator

fallback = os.environ.get("TORCH_PJRT_FALLBACK", "cpu")
check_indices = os.environ.get("TORCH_PJRT_CHECK_INDICES", "1").lower() not in (
    "0", "false", "off", "no")
recompile_warn_after = 8
shape_buckets = None


def sync_checks() -> None:
    """Tells the eager device's C runtime the current check_indices (called on
    every assignment, and when the device starts)."""
    c = sys.modules.get("torch_pjrt._C")  # never import it here: device.py loads it first
    if c is not None:
        c.set_eager_checks(bool(check_indices))


class _ConfigModule(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "check_indices":
            sync_checks()


sys.modules[__name__].__class__ = _ConfigModule

_FALLBACK_CHOICES = ("cpu", "error")


def check() -> None:
    """Raises ValueError when a setting holds an unknown value."""
    if fallback not in _FALLBACK_CHOICES:
        raise ValueError(f"torch_pjrt.config.fallback: unknown value {fallback!r} "
                         f"(expected one of {_FALLBACK_CHOICES})")


_disabled_depth: dict = {}  # target -> how many open disabled_ops blocks name it
_disabled_lock = threading.Lock()


@contextlib.contextmanager
def disabled_ops(*targets: str) -> Iterator[None]:
    """Turns the lowerings of `targets` off for the block (see the module doc).
    Blocks nest: a target is on again when the last block naming it exits."""
    from . import _C
    done = []
    try:
        for t in targets:
            with _disabled_lock:
                _C.lower_set_disabled(t, True)
                _disabled_depth[t] = _disabled_depth.get(t, 0) + 1
            done.append(t)
        yield
    finally:
        for t in done:
            with _disabled_lock:
                _disabled_depth[t] -= 1
                if _disabled_depth[t] == 0:
                    del _disabled_depth[t]
                    _C.lower_set_disabled(t, False)
