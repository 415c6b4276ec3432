"""Runtime configuration of torch_pjrt (plain module attributes; set them before
compiling).

fallback
    What happens when an ATen op has no C lowering:
      "cpu"   -- the op (or the graph containing it) runs on PyTorch eager CPU;
                 each fallback is counted in torch_pjrt.metrics()["fallbacks"].
      "error" -- raise torch_pjrt.UnsupportedOpError naming the op.
    Default "cpu". Also settable with the environment variable
    TORCH_PJRT_FALLBACK.

disabled_ops(*targets)
    A context manager: inside it the lowerings of `targets`
    ("aten::name.overload") are off, so those ops take the fallback path (the
    CPU, or an error under fallback = "error"), on the eager device and in
    graphs compiled inside the block. For finding a bad lowering, and for the
    tests that force one side of a forward/backward pair onto the CPU.
"""
import contextlib
import os
from typing import Iterator

fallback = os.environ.get("TORCH_PJRT_FALLBACK", "cpu")

_FALLBACK_CHOICES = ("cpu", "error")


def check() -> None:
    """Raises ValueError when a setting holds an unknown value."""
    if fallback not in _FALLBACK_CHOICES:
        raise ValueError(f"torch_pjrt.config.fallback: unknown value {fallback!r} "
                         f"(expected one of {_FALLBACK_CHOICES})")


@contextlib.contextmanager
def disabled_ops(*targets: str) -> Iterator[None]:
    """Turns the lowerings of `targets` off for the block (see the module doc)."""
    from . import _C
    done = []
    try:
        for t in targets:
            _C.lower_set_disabled(t, True)
            done.append(t)
        yield
    finally:
        for t in done:
            _C.lower_set_disabled(t, False)
