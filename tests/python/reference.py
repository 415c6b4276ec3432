"""The eager reference the op tests compare against, made host-independent.

CPU eager's answer at special values (+-inf, NaN, subnormals) depends on the
host's vector ISA: with PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default)
or without AVX2, gelu(+inf) can be NaN. Wherever an input holds such a value,
the reference there is the op computed in float64 (the truth), cast back to
the result dtype; elsewhere it stays eager in the input dtype."""
from __future__ import annotations

from typing import Any

import torch

_LOW = (torch.float16, torch.bfloat16, torch.float32)


def _is_special(x: Any) -> bool:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
        return False
    tiny = torch.finfo(x.dtype).tiny
    return bool((~torch.isfinite(x)).any() or ((x != 0) & (x.abs() < tiny)).any())


def _has_special(args: Any) -> bool:
    if isinstance(args, (tuple, list)):
        return any(_has_special(a) for a in args)
    return _is_special(args)


def _upcast(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_upcast(a) for a in x)
    if isinstance(x, torch.Tensor) and x.dtype in _LOW:
        return x.double()
    return x


def _merge(want: Any, truth: Any) -> Any:
    if isinstance(want, (tuple, list)):
        return type(want)(_merge(w, t) for w, t in zip(want, truth))
    if not (isinstance(want, torch.Tensor) and want.is_floating_point()
            and isinstance(truth, torch.Tensor) and truth.shape == want.shape):
        return want
    odd = ~torch.isfinite(truth) | ~torch.isfinite(want.double())
    return torch.where(odd, truth.to(want.dtype), want)


def eager(op: Any, *args: Any, **kwargs: Any) -> Any:
    """op(*args, **kwargs) on the CPU, with float64 truth at special values."""
    want = op(*args, **kwargs)
    if not (_has_special(args) or _has_special(list(kwargs.values()))):
        return want
    try:
        truth = op(*_upcast(args), **_upcast(kwargs))
    except (RuntimeError, TypeError, NotImplementedError):
        return want  # no float64 kernel (or a dtype-pinned signature): eager it is
    return _merge(want, truth)
