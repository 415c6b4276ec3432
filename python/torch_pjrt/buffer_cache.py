"""The device buffer cache of the compiled path: device copies of host tensors
that have not changed since they were uploaded (or downloaded), so unchanged
parameters are not sent to the device again on every call.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, Optional, Tuple

import torch


class _Entry:
    __slots__ = ("ref", "obj", "alias_ok", "version", "data_ptr", "buffer", "shape",
                 "stride")

    def __init__(self, ref: Any, obj: Any, alias_ok: bool, version: int, data_ptr: int,
                 buffer: Any, shape: Any, stride: Tuple[int, ...]):
        self.ref = ref            # weakref to the storage
        self.obj = obj            # weakref to the tensor object the entry was made for
        self.alias_ok = alias_ok  # may other tensor objects on the storage match?
        self.version = version
        self.data_ptr = data_ptr
        self.buffer = buffer
        self.shape = shape        # torch.Size and strides of the view
        self.stride = stride


def _cache_key(t: torch.Tensor) -> Tuple[Any, ...]:
    return (id(t.untyped_storage()), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


class BufferCache:
    """Device buffers of host tensors that have not changed since they were
    uploaded (or downloaded). Keyed by the tensor's storage (its Python object
    is unique while the storage lives, and is weakly referenced; entries go
    away with it) and view (offset, shape, strides, dtype), confirmed by the
    tensor's _version counter and data_ptr.

    An entry made by an upload matches only the same tensor object, so
    parameters an optimizer did not touch are not sent again. An entry made by
    a download (a device result) also matches other tensors on the same
    storage and view with the same version: autograd hands results back as
    detach()ed aliases (gradients), which share the version counter; while the
    original result is alive, a change of its version invalidates the entry.

    Limit: writes through an alias with its own version counter (`.data`,
    `set_`) are not seen."""

    def __init__(self) -> None:
        self._entries: Dict[Tuple[Any, ...], _Entry] = {}
        # id(tensor) -> its entry when the entry matches that object only: the
        # per-call fast path (no key tuple to build).
        self._objs: Dict[int, _Entry] = {}
        # Re-entrant: dropping an entry can free the last reference to a
        # tensor (a zero-copy buffer's keepalive), whose weakref callback
        # evicts under this lock in the same thread.
        self._lock = threading.RLock()

    def lookup(self, t: torch.Tensor) -> Any:
        e = self._objs.get(id(t))
        if (e is not None and e.obj() is t and e.version == t._version
                and e.data_ptr == t.data_ptr() and e.ref() is t.untyped_storage()
                and e.shape == t.shape and e.stride == t.stride()):
            return e.buffer
        return self._lookup_key(t)

    def _lookup_key(self, t: torch.Tensor) -> Any:
        try:
            key = _cache_key(t)
        except (RuntimeError, NotImplementedError):
            return None
        e = self._entries.get(key)
        if (e is None or e.ref() is None or e.ref() is not t.untyped_storage()
                or e.data_ptr != t.data_ptr()):
            return None
        obj = e.obj()
        if obj is not t:
            if not e.alias_ok:
                return None
            if obj is not None and obj._version != e.version:
                self._evict_key(key, e)
                return None
        if e.version != t._version:
            return None
        return e.buffer

    def insert(self, t: torch.Tensor, buffer: Any, version: Optional[int] = None,
               alias_ok: bool = False) -> None:
        """Caches `buffer` as the device copy of `t`; with `version`, only for
        that future _version of `t` (a write-back the caller expects)."""
        try:
            storage = t.untyped_storage()
            key = _cache_key(t)
            ref = weakref.ref(storage, lambda r, k=key, s=self: s._evict_ref(k, r))
            oid = id(t)
            obj = weakref.ref(t, lambda r, i=oid, s=self: s._evict_obj(i, r))
        except (RuntimeError, NotImplementedError, TypeError):
            return
        entry = _Entry(ref, obj, alias_ok, t._version if version is None else version,
                       t.data_ptr(), buffer, t.shape, key[3])
        with self._lock:
            old = self._entries.get(key)
            if old is not None and not old.alias_ok:
                self._drop_obj(old)
            self._entries[key] = entry
            if not alias_ok:
                self._objs[oid] = entry

    def _drop_obj(self, entry: _Entry) -> None:
        """Removes `entry` from the per-object index (lock held); an entry of a
        dead object is removed by its weakref callback."""
        obj = entry.obj()
        if obj is not None and self._objs.get(id(obj)) is entry:
            del self._objs[id(obj)]

    def _evict_obj(self, oid: int, ref: Any) -> None:
        with self._lock:
            e = self._objs.get(oid)
            if e is not None and e.obj is ref:
                del self._objs[oid]

    def _evict_key(self, key: Tuple[Any, ...], entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
                self._drop_obj(entry)

    def _evict_ref(self, key: Tuple[Any, ...], ref: Any) -> None:
        with self._lock:
            e = self._entries.get(key)
            if e is not None and e.ref is ref:
                del self._entries[key]
                self._drop_obj(e)

    def evict(self, t: torch.Tensor) -> None:
        with self._lock:
            e = self._entries.pop(_cache_key(t), None)
            if e is not None:
                self._drop_obj(e)
            o = self._objs.get(id(t))
            if o is not None and o.obj() is t:
                del self._objs[id(t)]

    def pop(self, t: torch.Tensor) -> Any:
        """The valid buffer of `t` (or None), removed from the cache."""
        buf = self.lookup(t)
        self.evict(t)
        return buf

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._objs.clear()

    def __len__(self) -> int:
        return len(self._entries)
