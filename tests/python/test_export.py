"""torch_pjrt.compile_exported(ep) runs an ExportedProgram on the device with
the same results as ep.module()."""
import pytest
import torch
import torch.nn as nn

from torch_pjrt import models
from torch_pjrt.export import compile_exported


def _check(model, args, rtol=1e-4, atol=1e-5, calls=2):
    ep = torch.export.export(model, args)
    runner = compile_exported(ep)
    module = ep.module()
    for _ in range(calls):
        torch.testing.assert_close(runner(*args), module(*args), rtol=rtol, atol=atol)
    return runner, module


def test_export_mlp():
    torch.manual_seed(0)
    _check(models.MLP().eval(), (torch.randn(5, 32),))


def test_export_cnn_eval():
    torch.manual_seed(1)
    _check(models.CNN().eval(), (torch.randn(2, 3, 10, 10),))


def test_export_cnn_train_mode_updates_running_stats():
    torch.manual_seed(2)
    model = models.CNN().train()
    runner, module = _check(model, (torch.randn(3, 3, 8, 8),), calls=3)
    torch.testing.assert_close(runner.state["bn1.running_mean"], module.bn1.running_mean,
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(runner.state["bn2.running_var"], module.bn2.running_var,
                               rtol=1e-4, atol=1e-6)
    assert int(runner.state["bn1.num_batches_tracked"]) == 3


def test_export_gpt_forward():
    torch.manual_seed(3)
    cfg = models.GPTConfig(n_layer=1)
    idx, targets = models.char_batch(2, cfg)
    _check(models.GPT(cfg).eval(), (idx, targets))


def test_export_with_constants_and_kwargs():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.register_buffer("scale", torch.tensor([1.0, 2.0, 3.0, 4.0]))

        def forward(self, x, *, bias):
            return self.lin(x) * self.scale + bias + torch.tensor(0.5)

    x, bias = torch.randn(3, 4), torch.randn(4)
    ep = torch.export.export(M(), (x,), {"bias": bias})
    torch.testing.assert_close(compile_exported(ep)(x, bias=bias), ep.module()(x, bias=bias))


def test_export_does_not_mutate_program_state():
    model = models.CNN().train()
    ep = torch.export.export(model, (torch.randn(2, 3, 8, 8),))
    before = {k: v.clone() for k, v in ep.state_dict.items()}
    compile_exported(ep)(torch.randn(2, 3, 8, 8))
    for k, v in ep.state_dict.items():
        torch.testing.assert_close(v, before[k])


@pytest.mark.parametrize("n", [1, 4])
def test_export_dynamic_batch(n):
    batch = torch.export.Dim("batch", min=1, max=64)
    model = models.MLP().eval()
    ep = torch.export.export(model, (torch.randn(3, 32),), dynamic_shapes=({0: batch},))
    x = torch.randn(n, 32)
    torch.testing.assert_close(compile_exported(ep)(x), ep.module()(x), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- guards --
# compile_exported refuses what ep.module() refuses ("Guard failed: ..."), as
# the same kinds of error (AssertionError for guards, RuntimeError for dtype and
# rank), with a message naming the input, the dim, the expected and got value.

def _refused(fn, *args):
    with pytest.raises((AssertionError, RuntimeError)) as info:
        fn(*args)
    return info


def _both_refuse(ep, args, *needles, kind=AssertionError):
    want = _refused(ep.module(), *args)
    assert isinstance(want.value, kind), want.value
    got = _refused(compile_exported(ep), *args)
    assert isinstance(got.value, kind), got.value
    for needle in needles:
        assert needle in str(got.value), (needle, str(got.value))
    return str(got.value)


def test_export_static_batch_refuses_other_batch():
    ep = torch.export.export(nn.Linear(4, 3), (torch.randn(2, 4),))
    runner = compile_exported(ep)
    x = torch.randn(2, 4)
    torch.testing.assert_close(runner(x), ep.module()(x))
    msg = _both_refuse(ep, (torch.randn(5, 4),), "input", "input.size()[0] == 2",
                       "got 5", "expected 2")
    assert "guard failed" in msg
    _both_refuse(ep, (torch.randn(2, 5),), "input.size()[1] == 4", "got 5, expected 4")


def test_export_dim_range_enforced():
    batch = torch.export.Dim("batch", min=3, max=8)
    ep = torch.export.export(models.MLP().eval(), (torch.randn(4, 32),),
                             dynamic_shapes=({0: batch},))
    runner = compile_exported(ep)
    for n in (3, 8):
        x = torch.randn(n, 32)
        torch.testing.assert_close(runner(x), ep.module()(x), rtol=1e-4, atol=1e-5)
    _both_refuse(ep, (torch.randn(9, 32),), "x.size()[0]", "got 9", "in [3, 8]")
    _both_refuse(ep, (torch.randn(2, 32),), "x.size()[0]", "got 2", "in [3, 8]")


class _TwoInputs(nn.Module):
    def forward(self, x, y):
        return x[:, :4] * 2 + y


def _two_inputs_ep():
    b = torch.export.Dim("b", min=1, max=8)
    h = torch.export.Dim("h", min=2, max=10)
    return torch.export.export(_TwoInputs(), (torch.randn(3, 8), torch.randn(3, 4)),
                               dynamic_shapes=({0: b, 1: 2 * h}, {0: b}))


def test_export_shared_and_derived_dims():
    ep = _two_inputs_ep()
    runner = compile_exported(ep)
    for args in ((torch.randn(5, 6), torch.randn(5, 4)), (torch.randn(1, 20), torch.randn(1, 4))):
        torch.testing.assert_close(runner(*args), ep.module()(*args))
    # one Dim on two inputs: their sizes must agree
    _both_refuse(ep, (torch.randn(3, 8), torch.randn(4, 4)), "y.size()[0] == x.size()[0]",
                 "got 4, expected 3")
    # x.size()[1] is 2 * h: odd sizes and sizes past 2 * max are refused (ep.module()
    # checks neither here, so only ours is asserted)
    with pytest.raises(AssertionError, match=r"x.size\(\)\[1\] == 2\*\w+ has no integer "
                                             r"solution \(got 9"):
        runner(torch.randn(3, 9), torch.randn(3, 4))
    with pytest.raises(AssertionError, match=r"x.size\(\)\[1\].*got 22"):
        runner(torch.randn(3, 22), torch.randn(3, 4))


def test_export_dtype_and_rank_refused():
    ep = torch.export.export(nn.Linear(4, 3), (torch.randn(2, 4),))
    msg = _both_refuse(ep, (torch.randn(2, 4, dtype=torch.float64),), kind=RuntimeError)
    assert "input input has the wrong dtype (got torch.float64, expected torch.float32)" in msg
    msg = _both_refuse(ep, (torch.randn(2, 4, 1),), kind=RuntimeError)
    assert "wrong number of dims (got 3: [2, 4, 1], expected 2: [2, 4])" in msg


def test_export_constant_input_guarded():
    class Scale(nn.Module):
        def forward(self, x, k: int):
            return x * k

    ep = torch.export.export(Scale(), (torch.randn(2), 3))
    runner = compile_exported(ep)
    x = torch.randn(2)
    torch.testing.assert_close(runner(x, 3), ep.module()(x, 3))
    _both_refuse(ep, (x, 4), "k == 3", "got 4, expected 3", kind=(AssertionError, RuntimeError))


# ------------------------------------------------------------ pjrt inputs --

DEV = "pjrt"


@pytest.fixture
def strict(monkeypatch):
    import torch_pjrt
    monkeypatch.setattr(torch_pjrt.config, "fallback", "error")
    before = torch_pjrt.metrics()["fallbacks"]
    yield
    assert torch_pjrt.metrics()["fallbacks"] == before, "an op fell back to the CPU"


def _check_on_device(model, args, calls=2, rtol=1e-4, atol=1e-5, **export_kw):
    ep = torch.export.export(model, args, **export_kw)
    runner, module = compile_exported(ep), ep.module()
    dev_args = tuple(a.to(DEV) for a in args)
    for _ in range(calls):
        got, want = runner(*dev_args), module(*args)
        for g, w in zip(pytree_leaves(got), pytree_leaves(want)):
            assert g.device.type == DEV
            torch.testing.assert_close(g.cpu(), w, rtol=rtol, atol=atol)
    return runner, module


def pytree_leaves(x):
    from torch.utils import _pytree
    return _pytree.tree_leaves(x)


def test_export_pjrt_inputs_mlp(strict):
    torch.manual_seed(0)
    _check_on_device(models.MLP().eval(), (torch.randn(5, 32),))


def test_export_pjrt_inputs_running_stats_stay_on_device(strict):
    torch.manual_seed(2)
    runner, module = _check_on_device(models.CNN().train(), (torch.randn(3, 3, 8, 8),), calls=3)
    mean = runner.state["bn1.running_mean"]
    assert mean.device.type == DEV
    torch.testing.assert_close(mean.cpu(), module.bn1.running_mean, rtol=1e-4, atol=1e-6)
    assert int(runner.state["bn1.num_batches_tracked"].cpu()) == 3


def test_export_pjrt_inputs_gpt_factory_ops(strict):
    # GPT's torch.arange(t, device=idx.device) was recorded with device=cpu.
    torch.manual_seed(3)
    cfg = models.GPTConfig(n_layer=1)
    idx, targets = models.char_batch(2, cfg)
    _check_on_device(models.GPT(cfg).eval(), (idx, targets))


def test_export_pjrt_inputs_dynamic_batch_and_guards(strict):
    batch = torch.export.Dim("batch", min=1, max=16)
    ep = torch.export.export(models.MLP().eval(), (torch.randn(3, 32),),
                             dynamic_shapes=({0: batch},))
    runner, module = compile_exported(ep), ep.module()
    for n in (1, 7, 16):
        x = torch.randn(n, 32)
        got = runner(x.to(DEV))
        assert got.device.type == DEV
        torch.testing.assert_close(got.cpu(), module(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(AssertionError, match=r"x.size\(\)\[0\].*got 17"):
        runner(torch.randn(17, 32, device=DEV))
    # the CPU still works after device calls (the state moves back)
    x = torch.randn(4, 32)
    torch.testing.assert_close(runner(x), module(x), rtol=1e-4, atol=1e-5)


def test_export_mixed_devices_refused():
    ep = _two_inputs_ep()
    with pytest.raises(RuntimeError, match="input y is on the cpu, other inputs on pjrt:0"):
        compile_exported(ep)(torch.randn(3, 8, device=DEV), torch.randn(3, 4))
