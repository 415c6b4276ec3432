"""Out-of-range indices and integer division by zero raise, as on the CPU.

XLA clamps gathers and drops out-of-range scatters; every program that
indexes with a runtime tensor therefore also computes an "out of range" flag
(tpj/ir.h runtime checks), raised right after the launch under torch.compile
and at the next synchronization on the eager device. Each case runs three
ways: torch.compile on CPU tensors, the eager "pjrt" device, and torch.compile
over pjrt tensors. In-range (and negative in-range) indices must still match
PyTorch eager on the CPU; config.check_indices = False must still run.
"""
import re

import pytest
import torch
import torch.nn.functional as F

import torch_pjrt

DEV = "pjrt"


def _x():
    return torch.arange(15, dtype=torch.float32).reshape(5, 3)


def _w():
    return torch.arange(30, dtype=torch.float32).reshape(10, 3)


def _logp():
    return torch.log_softmax(torch.linspace(-1, 1, 6).reshape(2, 3), dim=1)


def _i(*v):
    return torch.tensor(v)


# name, fn, good args, bad args, the ATen op(s) the error may name (a regex:
# the op that ran, e.g. AOTAutograd decomposes take into index and nll_loss
# into gather, the eager device runs embedding's composite index_select)
CASES = [
    ("index_select", lambda x, i: x.index_select(0, i), (_x(), _i(4, 0)), (_x(), _i(7)),
     "index_select"),
    ("getitem", lambda x, i: x[i], (_x(), _i(-1, 2)), (_x(), _i(9)), "index"),
    ("getitem_negative", lambda x, i: x[i], (_x(), _i(-5)), (_x(), _i(-6)), "index"),
    ("getitem_2d", lambda x, i: x[i, i], (_x(), _i(-1, 2)), (_x(), _i(0, 3)), "index"),
    ("gather", lambda x, i: x.gather(0, i), (_x(), _i([4, 0, 2])), (_x(), _i([7, 0, 0])),
     "gather"),
    ("take", lambda x, i: x.take(i), (_x(), _i(-1, 14)), (_x(), _i(100)), "take"),
    ("embedding", lambda w, i: F.embedding(i, w), (_w(), _i(9, 0)), (_w(), _i(12)),
     "embedding|index_select"),  # the eager device runs embedding's composite
    ("embedding_bag", lambda w, i: F.embedding_bag(i, w, _i(0).to(w.device)), (_w(), _i(9, 0)),
     (_w(), _i(3, 12)), "embedding_bag"),
    ("scatter", lambda x, i: x.scatter(0, i, 1.0), (_x(), _i([4, 0, 1])),
     (_x(), _i([7, 0, 0])), "scatter"),
    ("scatter_add", lambda x, i: x.scatter_add(0, i, torch.ones(1, 3, device=x.device)),
     (_x(), _i([4, 0, 1])), (_x(), _i([5, 0, 0])), "scatter_add"),
    ("index_put", lambda x, i: x.index_put((i,), torch.tensor(-1.0)), (_x(), _i(-1)),
     (_x(), _i(9)), "index_put"),
    ("index_add", lambda x, i: x.index_add(0, i, torch.ones(1, 3, device=x.device)), (_x(), _i(4)),
     (_x(), _i(7)), "index_add|index_put"),
    ("index_copy", lambda x, i: x.index_copy(0, i, torch.ones(1, 3, device=x.device)),
     (_x(), _i(4)), (_x(), _i(7)), "index_copy"),
    # CPU rejects a negative index_copy index (in range or not)
    ("index_copy_negative", lambda x, i: x.index_copy(0, i, torch.ones(1, 3, device=x.device)),
     (_x(), _i(0)), (_x(), _i(-1)), "index_copy"),
    ("nll_loss", lambda p, t: F.nll_loss(p, t), (_logp(), _i(0, 2)), (_logp(), _i(0, 5)),
     "nll_loss|gather"),
    ("nll_loss_ignore", lambda p, t: F.nll_loss(p, t), (_logp(), _i(-100, 1)),
     (_logp(), _i(-1, 1)), "nll_loss|gather"),
    ("cross_entropy", lambda p, t: F.cross_entropy(p, t), (_logp(), _i(1, 2)),
     (_logp(), _i(0, 3)), "nll_loss|gather"),
]

DIV_CASES = [
    ("floor_divide", lambda a, b: a // b),
    ("remainder", lambda a, b: a % b),
    ("fmod", lambda a, b: torch.fmod(a, b)),
    ("div_trunc", lambda a, b: torch.div(a, b, rounding_mode="trunc")),
]


def _dev(args):
    return tuple(a.to(DEV) for a in args)


def _run(mode, fn, args):
    """fn on args the `mode` way; CPU result (reading it synchronizes)."""
    if mode == "compiled":
        torch._dynamo.reset()
        return torch.compile(fn, backend="pjrt")(*args)
    if mode == "device":
        return fn(*_dev(args)).cpu()
    torch._dynamo.reset()
    return torch.compile(fn, backend="pjrt")(*_dev(args)).cpu()


MODES = ["compiled", "device", "device_compiled"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,fn,good,bad,op", CASES, ids=[c[0] for c in CASES])
def test_out_of_range_raises(mode, name, fn, good, bad, op):
    with pytest.raises((IndexError, RuntimeError)) as cpu:
        fn(*bad)  # the CPU raises too: the case is a real error
    torch.testing.assert_close(_run(mode, fn, good), fn(*good), rtol=0, atol=1e-6)
    with pytest.raises(IndexError) as got:
        _run(mode, fn, bad)
    msg = str(got.value)
    assert re.search(rf"aten::_?({op})", msg) and "out of bounds" in msg, msg
    assert type(cpu.value) in (IndexError, RuntimeError)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,fn", DIV_CASES, ids=[c[0] for c in DIV_CASES])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_integer_division_by_zero_raises(mode, name, fn, dtype):
    a, b = torch.tensor([7, 9, 4], dtype=dtype), torch.tensor([2, 4, 3], dtype=dtype)
    torch.testing.assert_close(_run(mode, fn, (a, b)), fn(a, b))
    zero = torch.tensor([2, 0, 3], dtype=dtype)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fn(a, zero)
    with pytest.raises(RuntimeError, match="ZeroDivisionError") as got:
        _run(mode, fn, (a, zero))
    assert not isinstance(got.value, IndexError)


@pytest.mark.parametrize("mode", MODES)
def test_float_division_by_zero_does_not_raise(mode):
    a, b = torch.tensor([1.0, -1.0, 0.0]), torch.zeros(3)
    got = _run(mode, lambda a, b: torch.remainder(a, b) + a / b, (a, b))
    assert got.shape == (3,)  # inf / nan: compared with the mathematical value elsewhere


def test_eager_error_waits_for_synchronize_and_device_recovers():
    x = _x().to(DEV)
    y = x.index_select(0, _i(7).to(DEV))  # asynchronous: no error yet
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with size 5"):
        torch.pjrt.synchronize()
    assert y.shape == (1, 3)
    # the failed check was consumed; the device keeps working
    torch.testing.assert_close(x.index_select(0, _i(2).to(DEV)).cpu(), _x()[2:3])
    torch.pjrt.synchronize()


def test_eager_error_surfaces_at_item():
    w = _w().to(DEV)
    s = F.embedding(_i(3, 12).to(DEV), w).sum()
    with pytest.raises(IndexError, match=r"index 12 is out of bounds for dimension 0 with size 10"):
        s.item()


@pytest.mark.parametrize("cpu_type,fn", [
    (RuntimeError, lambda x, i: x.gather(0, i)),
    (RuntimeError, lambda x, i: x.scatter(0, i, 1.0)),
    (IndexError, lambda x, i: x.index_select(0, i)),
])
@pytest.mark.parametrize("where", ["read", "synchronize"])
def test_eager_index_error_is_caught_as_cpu_raises_it(cpu_type, fn, where):
    # CPU raises RuntimeError for gather/scatter and IndexError for
    # index_select; the device's error is both, so either except clause works.
    x, i = torch.zeros(3), torch.tensor([5])
    with pytest.raises(cpu_type):
        fn(x, i)
    y = fn(x.to(DEV), i.to(DEV))
    with pytest.raises(RuntimeError) as info:
        y.cpu() if where == "read" else torch.pjrt.synchronize()
    assert isinstance(info.value, IndexError) and "index 5 is out of bounds" in str(info.value)


def test_compiled_backward_with_bad_target_raises():
    def step(p, t):
        p = p.detach().requires_grad_()
        F.cross_entropy(p, t).backward()
        return p.grad

    torch._dynamo.reset()
    f = torch.compile(step, backend="pjrt")
    torch.testing.assert_close(f(_logp(), _i(0, 2)), step(_logp(), _i(0, 2)))
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        f(_logp(), _i(0, 7))


@pytest.mark.parametrize("mode", MODES)
def test_check_indices_false_still_runs(mode):
    fn = CASES[0][1]
    old = torch_pjrt.config.check_indices
    torch_pjrt.config.check_indices = False
    try:
        torch.testing.assert_close(_run(mode, fn, (_x(), _i(4, 0))), fn(_x(), _i(4, 0)))
        # no check: XLA clamps the gather (the documented cost of turning it off)
        assert _run(mode, fn, (_x(), _i(7))).shape == (1, 3)
    finally:
        torch_pjrt.config.check_indices = old
    # back on: the next call is not served by a program built without checks
    with pytest.raises(IndexError):
        _run(mode, fn, (_x(), _i(7)))


def test_eager_check_results_count_as_device_to_host_bytes():
    x = _x().to(DEV)
    torch.pjrt.synchronize()
    y = x.index_select(0, _i(1, 2).to(DEV))  # one pending check result: (bad, value) int64
    before = torch_pjrt.metrics()["bytes_d2h"]
    torch.pjrt.synchronize()
    assert torch_pjrt.metrics()["bytes_d2h"] - before == 16
    del y
