"""The package logger and its warned-once set: an optimisation that turns itself
off (donation, saved-tensor placeholders) says so, once, instead of silently."""
from __future__ import annotations

import logging
import threading
from typing import Set

log = logging.getLogger("torch_pjrt")
_warned: Set[str] = set()
_lock = threading.Lock()


def warn_once(key: str, message: str) -> None:
    """Logs `message` at WARNING the first time `key` is seen in this process."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("torch_pjrt: %s", message)
