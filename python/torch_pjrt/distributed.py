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


class _StoreKV:
    """The c10d Store as the PJRT client's key-value store (under a prefix of
    its own): what multi-process plugins exchange their topology through."""

    def __init__(self, store):
        import torch.distributed as dist
        self._dist = dist
        self.store = dist.PrefixStore("pjrt_kv/", store)

    def set(self, key: bytes, value: bytes) -> None:
        self.store.set(key.decode("latin-1"), value)

    def get(self, key: bytes, timeout_ms: int) -> bytes:
        k = key.decode("latin-1")
        try:
            self.store.wait([k], timedelta(milliseconds=max(timeout_ms, 1)))
        except (self._dist.DistStoreError, RuntimeError) as e:
            raise TimeoutError(f"key {k!r} not set within {timeout_ms} ms: {e}") from e
        return bytes(self.store.get(k))

    def try_get(self, key: bytes) -> bytes:
        k = key.decode("latin-1")
        if not self.store.check([k]):
            raise KeyError(k)
        return bytes(self.store.get(k))


def _multiprocess_client() -> bool:
    """Whether the default client should span the job's processes: mode
    $TORCH_PJRT_DIST_CLIENT = "auto" (default: for the CUDA plugin, whose
    node_id/num_nodes options build one), "on" or "off". The XLA CPU plugin's
    collectives are in-process only, so it never gets one under "auto"."""
    mode = os.environ.get("TORCH_PJRT_DIST_CLIENT", "auto").strip().lower()
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"TORCH_PJRT_DIST_CLIENT must be auto, on or off (got {mode!r})")
    if mode != "auto":
        return mode == "on"
    from . import _device
    spec = os.environ.get("TORCH_PJRT_PLUGIN", "cpu").strip().lower()
    return spec == "cuda" or "cuda" in os.path.basename(_device.plugin_path()).lower()


def _start_client(opts) -> None:
    """Starts the default client for this process group's job: multi-process
    (node_id = rank, num_nodes = world size, the group's store) when
    _multiprocess_client() says so and the client has not started yet."""
    from . import _device
    if _device.client_started() or opts.group_size <= 1 or not _multiprocess_client():
        return
    import torch.distributed as dist
    if dist.is_initialized():  # a later group: the world's client is already chosen
        return
    _device.set_client_store(_StoreKV(opts.store), node_id=opts.group_rank,
                             num_nodes=opts.group_size)
    _log.info("torch_pjrt: the PJRT client spans %d processes (node %d)",
              opts.group_size, opts.group_rank)


def _create(opts, backend_options):
    """The backend of one process group: a gloo backend over a prefix of the
    group's store, wrapped by the staging backend."""
    global _logged
    import torch.distributed as dist
    from . import device
    _start_client(opts)
    ext = device._load_extension()
    ext.device_count()  # starts the client before the first collective
    if "LOCAL_RANK" in os.environ and ext.current_device() == 0 and not _holds_tensors(0):
        # Under torchrun, a process that chose no device works on LOCAL_RANK's
        # (DeviceMesh does this for cuda, but torch.pjrt.is_initialized() is
        # always True, so it never does for pjrt): otherwise tensors made on
        # the current device (FSDP2's parameters, DTensor's redistribute
        # buffers) land on pjrt:0 next to the user's pjrt:LOCAL_RANK. A
        # process that already holds tensors on pjrt:0 (a model moved to
        # torch.device("pjrt") before init_process_group) chose pjrt:0: it
        # stays there, or its later .to("pjrt") would land on another device.
        ext.set_device(local_device_index())
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


def _holds_tensors(index: int) -> bool:
    """Whether this process has live storages on pjrt:index."""
    return torch.accelerator.memory.memory_stats(index)["allocated_bytes.all.current"] > 0


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
    _default_backends()
    _registered = True


def _default_backends() -> None:
    """init_process_group() with no backend (and new_group(), DeviceMesh): torch
    maps only the accelerator ({"pjrt": "pjrt"}) yet names gloo the group's
    default backend without creating it, so DDP fails with "Could not find
    backend type 1 for Process Group with name gloo". As "cpu:gloo,pjrt:pjrt"
    does, CPU tensors then get gloo and pjrt tensors this backend."""
    from torch.distributed import distributed_c10d as c10d
    cls = c10d.BackendConfig
    if getattr(cls.__init__, "_torch_pjrt", False):
        return
    plain = cls.__init__

    def __init__(self, backend):
        plain(self, backend)
        dev = _device_type()
        if (str(backend) == c10d.Backend.UNDEFINED and list(self.device_backend_map) == [dev]
                and c10d.is_gloo_available()):
            self.device_backend_map = {"cpu": c10d.Backend(c10d.Backend.GLOO),
                                       dev: self.device_backend_map[dev]}

    __init__._torch_pjrt = True
    cls.__init__ = __init__


def _device_type() -> str:
    return torch._C._get_privateuse1_backend_name()
