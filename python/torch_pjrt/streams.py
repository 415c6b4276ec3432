"""torch.pjrt's streams and events, named and shaped like torch.cuda's:
Stream, Event, current_stream, default_stream, stream(), set_stream.

PJRT gives a device one queue and the plugins offer no more, so every stream
of a device is that one queue: a new Stream has its own id (it is not equal
to the default stream, and `with torch.pjrt.stream(s)` makes it current), but
work issued on it is ordered like work on any other stream of the device.
Stream.query() is False while any work is in flight on the device.

An Event does not mark a point in a stream: record() captures the work in
flight on the device at that moment (the pending buffers of its live
storages, src/runtime/eager_event.c). query() is False until all of it has
finished; elapsed_time() is the time between the two events' completions
(when their last captured computation finished; an event recorded with
nothing in flight completes at once). A failed captured computation raises
its error from query() and synchronize(). wait() / Stream.wait_event() block
the host until the event completes: correct, but not asynchronous.
"""
from __future__ import annotations

import torch

from .device_api import _index


def _ext():
    from .device import _load_extension
    return _load_extension()


def _backend() -> str:
    return torch._C._get_privateuse1_backend_name()


class Stream(torch.Stream):
    """A stream of a pjrt device (torch.cuda.Stream's shape). All streams of
    a device share its one PJRT queue; `priority` is accepted and ignored."""

    def __new__(cls, device=None, priority: int = 0, **kwargs):
        if "stream_id" in kwargs:  # an existing stream: stream_id, device_index, device_type
            return super().__new__(cls, **kwargs)
        idx = _index(device)
        return super().__new__(cls, device=torch.device(_backend(), idx), priority=priority)

    def wait_event(self, event) -> None:
        """Work issued on this stream afterwards runs after the event's work
        (blocks the host until the event completes)."""
        event.wait(self)

    def wait_stream(self, stream) -> None:
        """Work issued on this stream afterwards runs after all work issued
        on `stream` so far."""
        self.wait_event(stream.record_event())

    def record_event(self, event=None):
        """Records `event` (a new Event when None) on this stream; returns it."""
        if event is None:
            event = Event()
        event.record(self)
        return event

    def __repr__(self) -> str:
        return (f"torch.{_backend()}.Stream(device={_backend()}:{self.device_index} "
                f"stream_id={self.stream_id})")


class Event(torch.Event):
    """A pjrt event (torch.cuda.Event's shape): captures the device's work in
    flight when recorded. enable_timing=True allows elapsed_time()."""

    def __new__(cls, enable_timing: bool = False, blocking: bool = False,
                interprocess: bool = False):
        if interprocess:
            raise NotImplementedError("torch_pjrt: interprocess events are not supported")
        event = super().__new__(cls, device=_backend(), enable_timing=enable_timing,
                                blocking=blocking)
        event.enable_timing = enable_timing
        return event

    def record(self, stream=None) -> None:
        """Captures the work in flight on `stream`'s device (default: the
        current stream of the current device)."""
        super().record(current_stream() if stream is None else stream)

    def wait(self, stream=None) -> None:
        """Makes later work on `stream` wait for this event (blocks the host
        until the captured work is done; a no-op if never recorded)."""
        super().wait(current_stream() if stream is None else stream)

    def elapsed_time(self, end_event) -> float:
        """Milliseconds from this event's completion to `end_event`'s. Both
        need enable_timing=True, a record() and completion (synchronize())."""
        if not isinstance(end_event, torch.Event) or end_event.device.type != _backend():
            raise TypeError(f"torch_pjrt: elapsed_time: expected a {_backend()} event "
                            f"(got {end_event!r})")
        if not (self.enable_timing and getattr(end_event, "enable_timing", True)):
            raise RuntimeError("torch_pjrt: both events must be created with argument "
                               "'enable_timing=True' to calculate elapsed time")
        return _ext().event_elapsed(self.event_id, end_event.event_id)

    def __repr__(self) -> str:
        return f"torch.{_backend()}.Event(recorded={self.event_id != 0})"


def _wrap(t) -> Stream:
    stream_id, device_index, device_type = t
    return Stream(stream_id=stream_id, device_index=device_index, device_type=device_type)


def current_stream(device=None) -> Stream:
    """This thread's current stream of `device` (default: the current device)."""
    return _wrap(_ext().current_stream(_index(device)))


def default_stream(device=None) -> Stream:
    """The default stream (id 0) of `device` (default: the current device)."""
    return _wrap(_ext().default_stream(_index(device)))


def set_stream(stream) -> None:
    """Makes `stream` current for its device and its device the current
    device, as torch.cuda.set_stream does. A no-op for None."""
    if stream is None:
        return
    if stream.device.type != _backend():
        raise ValueError(f"torch_pjrt: set_stream: expected a {_backend()} stream (got {stream})")
    ext = _ext()
    ext.set_stream(stream.stream_id, stream.device_index)
    ext.set_device(stream.device_index)


class StreamContext:
    """Context manager that selects a stream (torch.cuda.StreamContext):
    inside, `stream` is current and its device is the current device; both
    are restored on exit. A no-op for None."""

    def __init__(self, stream):
        self.stream = stream
        self.prev_device = None
        self.src_prev = None
        self.dst_prev = None

    def __enter__(self):
        if self.stream is None:
            return self.stream
        ext = _ext()
        self.prev_device = ext.current_device()
        self.src_prev = current_stream()
        self.dst_prev = current_stream(self.stream.device_index)
        set_stream(self.stream)
        return self.stream

    def __exit__(self, *exc):
        if self.stream is None:
            return False
        ext = _ext()
        ext.set_stream(self.dst_prev.stream_id, self.dst_prev.device_index)
        ext.set_stream(self.src_prev.stream_id, self.src_prev.device_index)
        ext.set_device(self.prev_device)
        return False


def stream(stream) -> StreamContext:
    """`with torch.pjrt.stream(s):` runs the block with `s` as current stream."""
    return StreamContext(stream)


STREAM_API = (Stream, Event, StreamContext, current_stream, default_stream, set_stream, stream)
