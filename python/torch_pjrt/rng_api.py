"""torch.pjrt's seeding functions, named and shaped like torch.cuda's.

Each pjrt device has a default generator (python/csrc/device_rng.cpp): a
(seed, offset) pair. Every random op on the device, eager or inside a
compiled program, takes the next offset, so one seed gives one stream,
whatever the CPU generator does in between. The state is 16 bytes: the seed
and the offset, little-endian u64 each. As on CUDA, seeding before the device
has started (torch.manual_seed at the top of a script) is queued and applied
when the client starts, so it does not start the device by itself.
"""
from __future__ import annotations

from typing import Callable, List

import torch

from .device_api import _index

_queued: List[Callable[[], None]] = []
_started = False


def _ext():
    from .device import _load_extension
    return _load_extension()


def _on_start() -> None:
    """Called by torch_pjrt.device._lazy_init once the client runs."""
    global _started
    _started = True
    while _queued:
        _queued.pop(0)()


def _lazy(fn: Callable[[], None]) -> None:
    if _started:
        fn()
    else:
        _queued.append(fn)


def _generator(device=None) -> torch.Generator:
    return _ext().default_generator(_index(device))


def default_generator(device=None) -> torch.Generator:
    """The default torch.Generator of a device (None: the current one)."""
    return _generator(device)


def manual_seed(seed: int) -> None:
    """Seeds the current device's default generator."""
    seed = int(seed)
    _lazy(lambda: _generator().manual_seed(seed))


def manual_seed_all(seed: int) -> None:
    """Seeds every device's default generator (torch.manual_seed calls this)."""
    seed = int(seed)

    def apply():
        for i in range(_ext().device_count()):
            _ext().default_generator(i).manual_seed(seed)
    _lazy(apply)


def seed() -> None:
    """Seeds the current device's generator with a non-deterministic number."""
    _lazy(lambda: _generator().seed())


def seed_all() -> None:
    """Seeds every device's generator with one non-deterministic number."""
    def apply():
        s = _ext().default_generator(0).seed()
        for i in range(1, _ext().device_count()):
            _ext().default_generator(i).manual_seed(s)
    _lazy(apply)


def initial_seed() -> int:
    """The current device's seed (starts the device, as on CUDA)."""
    return _generator().initial_seed()


def get_rng_state(device=None) -> torch.Tensor:
    """The 16-byte state (seed, offset) of a device's generator, a CPU ByteTensor."""
    return _generator(device).get_state()


def set_rng_state(new_state: torch.Tensor, device=None) -> None:
    """Restores a state from get_rng_state (16 bytes; other sizes raise)."""
    state = new_state.clone(memory_format=torch.contiguous_format)
    _generator(device).set_state(state)


def get_rng_state_all() -> List[torch.Tensor]:
    return [get_rng_state(i) for i in range(_ext().device_count())]


def set_rng_state_all(new_states) -> None:
    for i, s in enumerate(new_states):
        set_rng_state(s, i)


RNG_FUNCTIONS = (manual_seed, manual_seed_all, seed, seed_all, initial_seed, get_rng_state,
                 set_rng_state, get_rng_state_all, set_rng_state_all, default_generator)


def rng_words(device_index: int):
    """The state words of the next random op on a device (compiled programs)."""
    return _ext().rng_words(device_index)
