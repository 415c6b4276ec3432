"""Runtime configuration of torch_pjrt (plain module attributes; set them before
compiling).

fallback
    What happens when an ATen op has no C lowering:
      "cpu"   -- the op (or the graph containing it) runs on PyTorch eager CPU;
                 each fallback is counted in torch_pjrt.metrics()["fallbacks"].
      "error" -- raise torch_pjrt.UnsupportedOpError naming the op.
    Default "cpu". Also settable with the environment variable
    TORCH_PJRT_FALLBACK.
"""
import os

fallback = os.environ.get("TORCH_PJRT_FALLBACK", "cpu")

_FALLBACK_CHOICES = ("cpu", "error")


def check() -> None:
    """Raises ValueError when a setting holds an unknown value."""
    if fallback not in _FALLBACK_CHOICES:
        raise ValueError(f"torch_pjrt.config.fallback: unknown value {fallback!r} "
                         f"(expected one of {_FALLBACK_CHOICES})")
