"""Streams and events of the pjrt device (torch.pjrt.Stream / Event, torch.Stream
and torch.Event with device "pjrt", torch.accelerator), checked against
torch.cuda's semantics. Eager executions are asynchronous on the CPU plugin,
so a big matmul chain is still in flight right after it is launched: an
event recorded then must not report done until the chain is, and its time
must cover the chain."""
import pytest
import torch

import torch_pjrt  # noqa: F401  (registers the device)

P = torch.pjrt
N = 1024


def matmul_chain(x, w, steps):
    """Launches `steps` matmuls without waiting; returns the last result."""
    for _ in range(steps):
        x = x @ w
    return x


@pytest.fixture
def operands():
    x = torch.randn(N, N, device="pjrt") / N
    w = torch.randn(N, N, device="pjrt") / N
    P.synchronize()
    return x, w


# ------------------------------------------------------------------ events --

def test_event_pair_times_a_real_matmul_loop(operands):
    x, w = operands
    start, end = P.Event(enable_timing=True), P.Event(enable_timing=True)
    start.record()
    y = matmul_chain(x, w, 30)
    end.record()
    end.synchronize()
    assert start.query() and end.query()
    ms = start.elapsed_time(end)
    assert ms > 0
    assert y.shape == (N, N)


def test_query_is_false_while_a_long_program_runs_then_true(operands):
    x, w = operands
    y = matmul_chain(x, w, 60)
    e = P.Event()
    e.record()
    assert e.query() is False
    assert P.current_stream().query() is False
    assert torch.Stream("pjrt").query() is False  # one queue: every stream sees the work
    P.synchronize()
    assert e.query() is True
    assert P.current_stream().query() is True
    assert torch.isfinite(y).all()


def test_event_synchronize_waits_for_the_captured_work(operands):
    x, w = operands
    y = matmul_chain(x, w, 40)
    e = P.current_stream().record_event()
    assert isinstance(e, P.Event)
    assert not e.query()
    e.synchronize()
    assert e.query()
    ref = torch.Event("pjrt")  # recorded now, with nothing in flight: done at once
    ref.record()
    assert ref.query()
    assert y.sum().item() == pytest.approx(y.cpu().sum().item(), rel=1e-4)


def test_torch_event_round_trip_with_accelerator(operands):
    x, w = operands
    assert torch.accelerator.current_accelerator().type == "pjrt"
    start = torch.Event("pjrt", enable_timing=True)
    end = torch.Event("pjrt", enable_timing=True)
    first = P.Event(enable_timing=True)
    first.record()
    start.record(torch.accelerator.current_stream())
    matmul_chain(x, w, 20)
    end.record()
    assert not end.query()
    torch.accelerator.synchronize()
    assert end.query()
    assert start.elapsed_time(end) > 0
    # A torch.pjrt.Event times against a torch.Event (the other way round,
    # torch.Event.elapsed_time takes only exact torch.Event objects).
    assert first.elapsed_time(end) > 0


def test_unrecorded_event_queries_true_and_synchronize_is_a_no_op():
    e = P.Event()
    assert e.query()
    e.synchronize()
    P.current_stream().wait_event(e)


def test_elapsed_time_errors_as_cuda():
    timed, untimed = P.Event(enable_timing=True), P.Event()
    other = P.Event(enable_timing=True)
    with pytest.raises(RuntimeError, match="must be recorded"):
        timed.elapsed_time(other)
    other.record()
    with pytest.raises(RuntimeError, match="must be recorded"):
        timed.elapsed_time(other)
    untimed.record()
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        untimed.elapsed_time(other)
    with pytest.raises(RuntimeError, match="enable_timing"):
        other.elapsed_time(untimed)
    # torch.Event's own checks on the same device, as for CUDA.
    a, b = torch.Event("pjrt"), torch.Event("pjrt")
    a.record()
    b.record()
    with pytest.raises((RuntimeError, ValueError), match="enable_timing=True"):
        a.elapsed_time(b)
    with pytest.raises(TypeError, match="expected a pjrt event"):
        other.elapsed_time(object())


def test_elapsed_time_of_incomplete_event_raises(operands):
    x, w = operands
    start, end = P.Event(enable_timing=True), P.Event(enable_timing=True)
    start.record()
    matmul_chain(x, w, 40)
    end.record()
    with pytest.raises(RuntimeError, match="not complete"):
        start.elapsed_time(end)
    end.synchronize()
    assert start.elapsed_time(end) > 0


def test_rerecording_an_event_replaces_what_it_captured(operands):
    x, w = operands
    e = P.Event(enable_timing=True)
    matmul_chain(x, w, 40)
    e.record()
    assert not e.query()
    P.synchronize()
    e.record()
    assert e.query()


def test_interprocess_events_are_refused():
    with pytest.raises(NotImplementedError, match="interprocess"):
        P.Event(interprocess=True)


# ----------------------------------------------------------------- streams --

def test_stream_identity_and_equality():
    d = P.default_stream()
    assert d == P.current_stream() and d.stream_id == 0
    assert isinstance(d, P.Stream) and isinstance(d, torch.Stream)
    assert d.device == torch.device("pjrt", 0)
    s1, s2 = P.Stream(), P.Stream()
    assert s1 != s2 and s1 != d
    same = torch.Stream(stream_id=s1.stream_id, device_index=s1.device_index,
                        device_type=s1.device_type)
    assert same == s1 and hash(same) == hash(s1)
    assert P.default_stream(1).device_index == 1 and P.default_stream(1) != d
    assert P.Stream("pjrt:1").device == torch.device("pjrt", 1)
    assert P.Stream(priority=-1).device_index == 0


def test_torch_stream_pjrt():
    s = torch.Stream("pjrt")
    assert s.device.type == "pjrt" and s.stream_id != 0
    assert s != torch.Stream("pjrt")
    assert torch.accelerator.current_stream() == P.default_stream()


def test_current_stream_inside_stream_context():
    s = P.Stream()
    before = P.current_stream()
    with P.stream(s):
        assert P.current_stream() == s
        assert torch.accelerator.current_stream() == s
        x = torch.ones(4, device="pjrt") * 2  # work issued on s runs as usual
    assert P.current_stream() == before
    assert x.cpu().tolist() == [2.0] * 4
    with P.stream(None):
        assert P.current_stream() == before
    with s:  # torch.Stream's own context manager
        assert P.current_stream() == s
    assert P.current_stream() == before


def test_stream_context_on_another_device_switches_and_restores():
    s = P.Stream(device=2)
    assert P.current_device() == 0
    with P.stream(s):
        assert P.current_device() == 2
        assert P.current_stream() == s
        assert P.current_stream(0) == P.default_stream(0)
    assert P.current_device() == 0
    assert P.current_stream(2) == P.default_stream(2)


def test_set_stream_and_accelerator_set_stream():
    s = P.Stream()
    try:
        P.set_stream(s)
        assert P.current_stream() == s
        torch.accelerator.set_stream(P.default_stream())
        assert P.current_stream() == P.default_stream()
    finally:
        P.set_stream(P.default_stream())
    P.set_stream(None)
    assert P.current_stream() == P.default_stream()


def test_current_stream_is_per_thread():
    import threading
    s = P.Stream()
    seen = []
    with P.stream(s):
        t = threading.Thread(target=lambda: seen.append(P.current_stream()))
        t.start()
        t.join()
    assert seen == [P.default_stream()]


def test_wait_event_wait_stream_record_event(operands):
    x, w = operands
    s = P.Stream()
    with P.stream(s):
        y = matmul_chain(x, w, 30)
    e = s.record_event()
    assert not e.query()
    P.current_stream().wait_event(e)  # the host waits: later work follows e
    assert e.query()
    z = y @ w
    P.current_stream().wait_stream(s)
    mine = P.Event()
    assert s.record_event(mine) is mine and mine.query()
    e2 = torch.Event("pjrt")
    e2.record(s)
    e2.wait(P.current_stream())
    e2.wait()
    assert torch.allclose(z.cpu(), (y.cpu() @ w.cpu()), rtol=1e-3, atol=1e-5)


def test_stream_synchronize_and_query(operands):
    x, w = operands
    s = P.Stream()
    with P.stream(s):
        matmul_chain(x, w, 40)
    assert s.query() is False
    s.synchronize()
    assert s.query() is True
    assert P.default_stream().query() is True


def test_events_on_another_device(operands):
    x, w = operands
    x1, w1 = x.to("pjrt:1"), w.to("pjrt:1")
    P.synchronize()
    e = P.Event(enable_timing=True)
    e.record(P.current_stream(1))
    assert e.device == torch.device("pjrt", 1)
    matmul_chain(x1, w1, 40)
    e1 = P.Event(enable_timing=True)
    e1.record(P.default_stream(1))
    assert not e1.query()
    assert P.default_stream(0).query()  # device 0 has nothing in flight
    e1.synchronize()
    assert e.elapsed_time(e1) > 0


def test_synchronize_accepts_a_device():
    P.synchronize()
    P.synchronize(0)
    P.synchronize("pjrt:1")
    torch.accelerator.synchronize()
    torch.accelerator.synchronize(1)
