"""torch.pjrt's capability queries, named and shaped like torch.cuda's, with
answers from the plugin: the device kind and platform from the PJRT client,
total memory from mem_get_info, and low-precision support probed once per
device by running a small bf16 / f16 program on it (an op that would fall
back to the CPU counts as unsupported, never as a yes).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import torch

from .device_api import _index

_probed: Dict[Tuple[int, torch.dtype], bool] = {}


@dataclasses.dataclass(frozen=True)
class DeviceProperties:
    """What torch.pjrt.get_device_properties reports (torch.cuda's field names
    where they mean the same: name, total_memory)."""
    name: str                # PJRT device kind, e.g. "cpu", "TPU v5 lite"
    total_memory: int        # bytes (mem_get_info's total)
    index: int
    id: int                  # PJRT global device id
    local_hardware_id: int
    platform_name: str       # PJRT client platform, e.g. "cpu", "cuda", "tpu"
    platform_version: str
    pjrt_api_version: Tuple[int, int]
    type: str = "pjrt"


def _runs(dtype: torch.dtype, index: int) -> bool:
    """Whether a matmul, an add and a reduction in `dtype` run on the device
    and give the exact answer (small integers are exact in bf16 and f16)."""
    from . import config
    saved = config.fallback
    config.fallback = "error"
    try:
        dev = torch.device(torch._C._get_privateuse1_backend_name(), index)
        x = torch.ones(4, 4, dtype=dtype, device=dev)
        y = (x @ x + x).sum()
        return y.dtype == dtype and float(y.cpu()) == 80.0
    except (RuntimeError, NotImplementedError):
        return False
    finally:
        config.fallback = saved


def dtype_supported(dtype: torch.dtype, device=None) -> bool:
    """Probed once per (device, dtype)."""
    i = _index(device)
    if (i, dtype) not in _probed:
        _probed[(i, dtype)] = _runs(dtype, i)
    return _probed[(i, dtype)]


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """Whether the current device runs bfloat16 programs (probed). XLA lowers
    bf16 natively or by widening, so including_emulation changes nothing."""
    return dtype_supported(torch.bfloat16)


def get_amp_supported_dtype() -> List[torch.dtype]:
    """The autocast dtypes the current device runs (probed)."""
    return [d for d in (torch.float16, torch.bfloat16) if dtype_supported(d)]


def get_device_properties(device=None) -> DeviceProperties:
    from ._device import devices, plugin_info
    from .device_api import mem_get_info
    i = _index(device)
    d = devices()[i]
    info = plugin_info()
    return DeviceProperties(name=d["kind"], total_memory=int(mem_get_info(i)[1]), index=i,
                            id=d["id"], local_hardware_id=d["local_hardware_id"],
                            platform_name=info["platform_name"],
                            platform_version=info["platform_version"],
                            pjrt_api_version=tuple(info["api_version"]))


def get_device_name(device=None) -> str:
    """The PJRT device kind, e.g. "cpu" or "NVIDIA H100 80GB HBM3"."""
    return get_device_properties(device).name


PROPERTY_FUNCTIONS = (is_bf16_supported, get_amp_supported_dtype, get_device_properties,
                      get_device_name)
