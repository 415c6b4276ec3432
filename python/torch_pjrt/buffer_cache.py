"""The device buffer cache of the compiled path: device copies of host tensors
that have not changed since they were uploaded (or downloaded), so unchanged
parameters are not sent to the device again on every call. The cache itself
is C++ (python/csrc/device_buffer_cache.cpp: its rules are stated there), so a
compiled call looks its arguments up without Python; this is its Python face.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

_ext: Any = None


def _eager() -> Any:
    global _ext
    if _ext is None:
        from . import _eager as mod  # loaded by torch_pjrt.device
        _ext = mod
    return _ext


class BufferCache:
    """Device buffers (`_C.Buffer`) of host tensors that have not changed
    since they were uploaded or downloaded."""

    def lookup(self, t: torch.Tensor) -> Any:
        return _eager().cache_lookup(t)

    def insert(self, t: torch.Tensor, buffer: Any, version: Optional[int] = None,
               alias_ok: bool = False) -> None:
        """Caches `buffer` as the device copy of `t`; with `version`, only for
        that future _version of `t` (a write-back the caller expects)."""
        _eager().cache_insert(t, buffer, -1 if version is None else int(version), alias_ok)

    def evict(self, t: torch.Tensor) -> None:
        _eager().cache_evict(t)

    def pop(self, t: torch.Tensor) -> Any:
        """The valid buffer of `t` (or None), removed from the cache."""
        buf = self.lookup(t)
        if buf is not None:
            self.evict(t)
        return buf

    def clear(self) -> None:
        _eager().cache_clear()

    def __len__(self) -> int:
        return _eager().cache_len()
