"""torch.distributed on pjrt tensors: registers the c10d backend "pjrt" for the
"pjrt" device, so `dist.init_process_group()` under torchrun gives gloo for CPU
tensors and this backend for pjrt tensors (as CUDA gets nccl), and DDP, FSDP2,
DTensor and the functional collectives run unchanged.

Transport: the XLA CPU plugin's collectives work only between the devices of
one process, so each collective stages its pjrt tensors through host memory and
runs on torch's gloo over the same store (python/csrc/device_dist.cpp). Every
collective completes before it returns: its Work is already done and its
future already holds the results. metrics()["dist_staged_bytes"] counts the
bytes staged; the first staged collective logs this once.
"""
import logging
import os
from datetime import timedelta

import torch

__all__ = ["local_device_index", "BACKEND"]

BACKEND = "pjrt"
_log = logging.getLogger("torch_pjrt")
_logged = False
_registered = False


def local_device_index() -> int:
    """This process's pjrt device: torchrun's LOCAL_RANK modulo the number of
    pjrt devices (0 outside torchrun)."""
    from . import device
    n = device._load_extension().device_count()
    if n < 1:
        raise RuntimeError("local_device_index: no pjrt devices (the plugin reports 0)")
    local = os.environ.get("LOCAL_RANK", "0")
    try:
        rank = int(local)
    except ValueError:
        raise ValueError(f"local_device_index: LOCAL_RANK must be an integer (got {local!r})")
    if rank < 0:
        raise ValueError(f"local_device_index: LOCAL_RANK must be >= 0 (got {rank})")
    return rank % n


def _create(opts, backend_options):
    """The backend of one process group: a gloo backend over a prefix of the
    group's store, wrapped by the staging backend."""
    global _logged
    import torch.distributed as dist
    from . import device
    ext = device._load_extension()
    ext.device_count()  # starts the client before the first collective
    timeout = opts.timeout if opts.timeout is not None else timedelta(minutes=30)
    store = dist.PrefixStore("pjrt_host/", opts.store)
    host = dist.ProcessGroupGloo(store, opts.group_rank, opts.group_size, timeout)
    if opts.global_ranks_in_group:
        host.options.global_ranks_in_group = list(opts.global_ranks_in_group)
    if opts.group_id:
        host.options.group_name = opts.group_id
    if not _logged:
        _logged = True
        _log.info("torch_pjrt: torch.distributed collectives on pjrt tensors are staged "
                  "through host memory and run by gloo (the plugin has no cross-process "
                  "collectives); metrics()['dist_staged_bytes'] counts the bytes")
    return ext.dist_backend(host, opts.group_rank, opts.group_size)


def register() -> None:
    """Registers the "pjrt" c10d backend once (import torch_pjrt does this)."""
    global _registered
    if _registered:
        return
    import torch.distributed as dist
    if not dist.is_available():
        return
    if BACKEND.upper() not in dist.Backend._plugins:
        # CPU too: init_process_group("pjrt") then serves CPU tensors (on gloo,
        # unstaged); the default init_process_group() maps only the accelerator.
        dist.Backend.register_backend(BACKEND, _create, extended_api=True,
                                      devices=[_device_type(), "cpu"])
    _registered = True


def _device_type() -> str:
    return torch._C._get_privateuse1_backend_name()
