"""torch.pjrt's memory functions, named and shaped like torch.cuda's.

The numbers come from the C runtime through the device's c10::DeviceAllocator
(python/csrc/device_memory.cpp), so torch.accelerator.memory.* gives the same
answers. What is counted: every live storage of the device, from its creation
to its release, including storages never written yet (torch.empty: their
device buffer is made on first use, but they count at once, as a CUDA
allocation would). Nothing is cached, so reserved == allocated and
empty_cache() has nothing to free. mem_get_info() is the plugin's
bytes_limit - bytes_in_use where PJRT_Device_MemoryStats reports them, and for
the CPU plugin the host's available memory (capped by RLIMIT_AS).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch


def _index(device) -> int:
    """None (the current device), an int, "pjrt:1" or a torch.device -> index."""
    from .device import _load_extension
    ext = _load_extension()
    if ext.device_count() == 0:
        raise RuntimeError("torch_pjrt: no pjrt device is available")
    if device is None:
        return ext.current_device()
    if isinstance(device, str):
        device = torch.device(device)
    if isinstance(device, torch.device):
        if device.type != torch._C._get_privateuse1_backend_name():
            raise ValueError(f"torch_pjrt: expected a pjrt device (got {device})")
        return ext.current_device() if device.index is None else device.index
    if isinstance(device, int):
        return device
    raise TypeError(f"torch_pjrt: expected a device, an index or None (got {device!r})")


def memory_stats(device=None) -> OrderedDict[str, Any]:
    return torch.accelerator.memory.memory_stats(_index(device))


def memory_allocated(device=None) -> int:
    return memory_stats(device)["allocated_bytes.all.current"]


def max_memory_allocated(device=None) -> int:
    return memory_stats(device)["allocated_bytes.all.peak"]


def memory_reserved(device=None) -> int:
    return memory_stats(device)["reserved_bytes.all.current"]


def max_memory_reserved(device=None) -> int:
    return memory_stats(device)["reserved_bytes.all.peak"]


def reset_peak_memory_stats(device=None) -> None:
    torch.accelerator.memory.reset_peak_memory_stats(_index(device))


def reset_accumulated_memory_stats(device=None) -> None:
    torch.accelerator.memory.reset_accumulated_memory_stats(_index(device))


def mem_get_info(device=None) -> tuple[int, int]:
    """(free, total) bytes, as torch.cuda.mem_get_info."""
    return torch.accelerator.memory.get_memory_info(_index(device))


def empty_cache() -> None:
    """Storages are freed as soon as PyTorch releases them: nothing to do."""


MEMORY_FUNCTIONS = (memory_stats, memory_allocated, max_memory_allocated, memory_reserved,
                    max_memory_reserved, reset_peak_memory_stats, reset_accumulated_memory_stats,
                    mem_get_info, empty_cache)
