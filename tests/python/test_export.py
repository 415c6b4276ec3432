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
