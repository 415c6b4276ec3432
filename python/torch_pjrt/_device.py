"""The default PJRT client and torch <-> device buffer helpers.

The default client is created on first use from $TORCH_PJRT_PLUGIN
("cpu" | "cuda" | "tpu" | a path to a PJRT plugin .so; default "cpu"), searched
for in $TORCH_PJRT_PLUGIN_PATH, the site-packages directories and sys.path.
Client options come from torch_pjrt.set_client_options(...) (before first use)
or $TORCH_PJRT_CLIENT_OPTIONS, e.g. "cpu_device_count=4,foo=bar".
Transfers use raw data pointers, no numpy.
"""
from __future__ import annotations

import os
import site
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from . import _C
from ._dtypes import code_dtype, dtype_code

_lock = threading.Lock()
_client: Optional[_C.Client] = None
_client_options: Optional[Dict[str, Any]] = None
_client_kv_store: Any = None  # set_client_store: for multi-process clients


def _parse_option_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()


def parse_client_options(text: str) -> Dict[str, Any]:
    """'a=1,b=x,c=true' -> {'a': 1, 'b': 'x', 'c': True}; int lists as 'd=[1;2]'."""
    opts: Dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"TORCH_PJRT_CLIENT_OPTIONS: expected name=value, got {part!r}")
        name, value = (s.strip() for s in part.split("=", 1))
        if value.startswith("[") and value.endswith("]"):
            opts[name] = [int(v) for v in value[1:-1].split(";") if v.strip()]
        else:
            opts[name] = _parse_option_value(value)
    return opts


def set_client_options(options: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
    """Sets the options of the default client; must run before its first use."""
    global _client_options
    with _lock:
        if _client is not None:
            raise RuntimeError("torch_pjrt.set_client_options: the default client already "
                               "exists; call this before the first use of torch_pjrt")
        merged = dict(options or {})
        merged.update(kwargs)
        _client_options = merged


def search_dirs() -> List[str]:
    """Where plugin specs like "cpu" are looked up, in order."""
    dirs: List[str] = []
    env = os.environ.get("TORCH_PJRT_PLUGIN_PATH")
    if env:
        dirs.extend(p for p in env.split(os.pathsep) if p)
    try:
        dirs.extend(site.getsitepackages())
    except AttributeError:  # some virtualenv layouts lack it
        pass
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        dirs.append(user)
    dirs.extend(p for p in sys.path if p)
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def plugin_path(spec: Optional[str] = None) -> str:
    """Resolves a plugin spec (default: $TORCH_PJRT_PLUGIN or "cpu") to a file."""
    return _C.plugin_resolve(spec if spec is not None else os.environ.get("TORCH_PJRT_PLUGIN"),
                             search_dirs())


def default_client() -> _C.Client:
    """The process-wide client, created on first use."""
    global _client
    with _lock:
        if _client is None:
            opts = _client_options
            if opts is None:
                opts = parse_client_options(os.environ.get("TORCH_PJRT_CLIENT_OPTIONS", ""))
            _client = _C.Client(plugin_path(), opts, kv_store=_client_kv_store)
        return _client


def client_started() -> bool:
    """Whether the default client exists (its options can no longer change)."""
    return _client is not None


def set_client_store(kv_store: Any, **options: Any) -> None:
    """Makes the default client a multi-process one: `options` (e.g. node_id,
    num_nodes) are added to its options and `kv_store` (get(key, timeout_ms),
    set(key, value), try_get(key)) is offered to the plugin. Before first use
    only (torch_pjrt.distributed calls this when the process group starts)."""
    global _client_kv_store, _client_options
    with _lock:
        if _client is not None:
            raise RuntimeError("torch_pjrt.set_client_store: the default client already exists")
        merged = dict(_client_options if _client_options is not None else
                      parse_client_options(os.environ.get("TORCH_PJRT_CLIENT_OPTIONS", "")))
        merged.update(options)
        _client_options = merged
        _client_kv_store = kv_store


def to_buffer(tensor: torch.Tensor, device: int = 0, client: Optional[_C.Client] = None,
              zero_copy: bool = False) -> _C.Buffer:
    """A CPU tensor -> a device Buffer. With zero_copy the Buffer may alias the
    tensor's memory (the Buffer keeps the tensor alive; do not modify it while the
    Buffer lives)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"torch_pjrt.to_buffer: expected a torch.Tensor, got "
                        f"{type(tensor).__name__}")
    client = client or default_client()
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    code = dtype_code(t.dtype)
    nbytes = t.numel() * t.element_size()
    return client.buffer_from_host(t.data_ptr(), nbytes, code, tuple(t.shape), device,
                                   zero_copy, t if zero_copy else None)


def to_tensor(buffer: _C.Buffer) -> torch.Tensor:
    """A device Buffer -> a new CPU tensor (synchronous copy)."""
    out = torch.empty(buffer.shape, dtype=code_dtype(buffer.dtype))
    buffer.to_host(out.data_ptr(), out.numel() * out.element_size())
    return out


def devices() -> List[Dict[str, Any]]:
    """The default client's addressable devices: dicts of index, id, kind,
    local_hardware_id."""
    return default_client().devices()


def plugin_info() -> Dict[str, Any]:
    """The default client's plugin: path, api_version, xla_version, StableHLO
    versions, platform name and version."""
    return default_client().plugin_info()


def run_stablehlo(text: str, tensors: List[torch.Tensor], device: int = 0,
                  checks: Sequence[Tuple[int, str]] = ()) -> List[torch.Tensor]:
    """Compiles (cached) and runs a StableHLO module on CPU tensors; returns CPU
    tensors, one per result. `checks`: the module's runtime checks (its last
    result holds them); a failed one raises (IndexError for an index)."""
    client = default_client()
    exe = client.compile(text)
    args = [to_buffer(t, device, client, zero_copy=True) for t in tensors]
    prog = _C.Program(exe, ["buffer"] * len(args), list(checks), "run_stablehlo")
    outs = prog.run(args)
    return [to_tensor(b) for b in outs]
