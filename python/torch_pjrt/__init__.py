"""torch_pjrt: a native PyTorch backend for OpenXLA PJRT plugins, with a C core.

Quick use:
    torch_pjrt.devices()                 # the default client's devices
    torch_pjrt.plugin_info()             # plugin path, PJRT API / StableHLO versions
    torch_pjrt.run_stablehlo(text, [t])  # compile (cached) and run a module
    torch_pjrt.run_aten(torch.ops.aten.add.Tensor, a, b, alpha=2)  # one op, C lowering
    torch_pjrt.metrics()                 # compile / cache / transfer counters
The default plugin is $TORCH_PJRT_PLUGIN ("cpu" | "cuda" | "tpu" | a path).
"""
import os as _os

from . import _C, config
from ._C import Error
from ._aten import UnsupportedOpError, code_dtype, dtype_code, encode_args, run_aten, target_name
from ._device import (default_client, devices, plugin_info, plugin_path, run_stablehlo,
                      set_client_options, to_buffer, to_tensor)
from . import backend  # registers torch.compile(backend="pjrt")
from .export import compile_exported
from . import device  # the eager device: x.to("pjrt")
from .device import rename_device

# Register the eager device now so `torch.device("pjrt")` parses right after
# `import torch_pjrt`. PyTorch names its PrivateUse1 backend once per process:
# to call it something else (e.g. "tpu"), set TORCH_PJRT_DEVICE_NAME=tpu before
# the import. The PJRT client itself only starts on the first device tensor.
# TORCH_PJRT_DEVICE_NAME=off leaves PrivateUse1 free for another library (the
# benchmarks do this to run torchax, which claims it, in the same process).
if _os.environ.get("TORCH_PJRT_DEVICE_NAME", "pjrt").strip().lower() not in ("", "off", "0"):
    device.ensure_registered()
    from . import distributed as _distributed  # the c10d backend "pjrt"
    _distributed.register()
from .distributed import local_device_index

# torch_pjrt.profile(path): a Chrome trace of the block; TORCH_PJRT_TRACE=path
# traces the whole run (written at exit).
from .profile import profile, _start_from_env as _trace_from_env
_trace_from_env()

__all__ = [
    "Error", "UnsupportedOpError", "config", "default_client", "devices", "plugin_info",
    "plugin_path", "run_stablehlo", "run_aten", "set_client_options", "metrics",
    "metrics_reset", "to_buffer", "to_tensor", "encode_args", "target_name", "dtype_code",
    "code_dtype", "compile_exported", "backend", "device", "rename_device", "profile",
    "local_device_index",
]


def metrics() -> dict:
    """Runtime counters from the C core: compiles, cache_hits, compile_seconds,
    executions, bytes_h2d, bytes_d2h, fallbacks, cache_entries; and from
    Python "recompiles" (compiled graph name -> compiles after its first) and
    "frame_recompiles" ("fn (file:line)" -> Dynamo recompiles of that frame)."""
    from . import recompile
    m = _C.metrics()
    m.update(recompile.metrics())
    return m


def metrics_reset() -> None:
    """Zeroes the counters (cache_entries is a level, not a counter)."""
    from . import recompile
    _C.metrics_reset()
    recompile.reset()
