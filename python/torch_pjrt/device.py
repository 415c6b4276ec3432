"""The eager "pjrt" device: `torch.randn(8, 128, device="pjrt")`, `model.to("pjrt")`.

Importing this module registers PyTorch's PrivateUse1 backend under the name
"pjrt" (or the name given to rename_device() before first use) and exposes
torch.pjrt.device_count / is_available / synchronize / current_device /
set_device. Every ATen op on pjrt tensors runs through the C lowering table as
a one-op StableHLO program, compiled once per signature and cached in C; ops
without a lowering run on CPU (one warning per op, counted in
torch_pjrt.metrics()["fallbacks"]; torch_pjrt.config.fallback = "error" raises).
"""
from __future__ import annotations

import ctypes
import os
import types
from typing import Optional

import torch

from . import _C

_backend_name: Optional[str] = None
_device_mod = None


def rename_device(name: str = "pjrt") -> None:
    """Registers the backend as `name` (e.g. "tpu"); call before first use.
    The PJRT client itself starts on the first allocation on the device."""
    global _backend_name
    if _backend_name is not None:
        if name != _backend_name:
            raise RuntimeError(f"torch_pjrt.rename_device: the device is already registered "
                               f"as {_backend_name!r}; rename it before first use")
        return
    _load_extension()
    torch.utils.rename_privateuse1_backend(name)
    torch._register_device_module(name, _make_module(name))
    torch.utils.generate_methods_for_privateuse1_backend(
        for_tensor=True, for_module=True, for_storage=True, for_packed_sequence=True)
    _backend_name = name


def _load_extension():
    global _device_mod
    if _device_mod is None:
        # Share _C's C core (client, compile cache, metrics) with _eager.
        ctypes.CDLL(_C.__file__, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
        from . import _eager as mod
        _device_mod = mod
    return _device_mod


def _lazy_init() -> None:
    """Called from C++ on the first use of the device: starts the default client."""
    from ._device import default_client
    _load_extension().init(default_client())


def _make_module(name: str) -> types.ModuleType:
    m = types.ModuleType(f"torch.{name}")
    ext = _device_mod

    def device_count() -> int:
        return ext.device_count()

    def is_available() -> bool:
        return ext.device_count() > 0

    def synchronize(device=None) -> None:
        if ext.device_count():
            ext.synchronize()

    def current_device() -> int:
        return ext.current_device()

    def set_device(device) -> None:
        idx = device.index if isinstance(device, torch.device) else int(device)
        ext.set_device(idx or 0)

    def manual_seed_all(seed: int) -> None:  # random ops draw from torch's CPU generator
        pass

    for fn in (device_count, is_available, synchronize, current_device, set_device,
               manual_seed_all):
        setattr(m, fn.__name__, fn)
    m.manual_seed = manual_seed_all
    m.is_initialized = lambda: True
    m._is_in_bad_fork = lambda: False
    m.get_rng_state = lambda device=None: torch.get_rng_state()
    m.set_rng_state = lambda state, device=None: torch.set_rng_state(state)
    m.stats = ext.stats
    return m


def stats() -> dict:
    """Eager op counters: ops, signature_hits, programs, live_storages."""
    return _load_extension().stats()


def ensure_registered() -> str:
    """Registers the device unless already done, as $TORCH_PJRT_DEVICE_NAME or
    "pjrt". Cheap: the client starts on first use."""
    if _backend_name is None:
        rename_device(os.environ.get("TORCH_PJRT_DEVICE_NAME", "pjrt"))
    return _backend_name
