"""Graph outputs that merely alias an input (a placeholder returned as is, or
through aten.alias / aten.detach, e.g. AOTAutograd forward graphs saving
their inputs for the backward, or `loss.detach()` after a graph break) are
returned as views of that input, like eager PyTorch, instead of device copies
made by a program launch."""
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import torch_pjrt
from torch_pjrt import compiled

aten = torch.ops.aten


def launches():
    return torch_pjrt.metrics()["executions"]


def mixed(x, y):
    return aten.alias(x), x * y + 1.0, aten.detach(aten.alias(y)), x


def only_aliases(x):
    return aten.detach(x), aten.alias(x)


@pytest.mark.parametrize("device", ["cpu", "pjrt"])
def test_aliases_are_views_of_inputs_and_compute_still_runs(device):
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    xd, yd = x.to(device), y.to(device)
    gm = make_fx(mixed)(xd, yd)  # traced where it runs: results stay there
    cg = compiled.CompiledGraph(gm, name="mixed")
    cg(xd, yd)  # compile
    before = launches()
    out = cg(xd, yd)
    assert launches() - before == 1  # only the x * y + 1 program
    want = mixed(x, y)
    assert len(out) == len(want)
    for got, exp in zip(out, want):
        assert got.device.type == device
        torch.testing.assert_close(got.cpu(), exp)
    for got, src in ((out[0], xd), (out[2], yd), (out[3], xd)):
        assert got.untyped_storage().data_ptr() == src.untyped_storage().data_ptr()
    assert out[3] is xd and out[0] is not xd  # as Inductor: a returned input is itself
    assert out[1].untyped_storage().data_ptr() != xd.untyped_storage().data_ptr()


@pytest.mark.parametrize("device", ["cpu", "pjrt"])
def test_graph_of_only_aliases_launches_nothing(device):
    x = torch.randn(5)
    xd = x.clone().to(device)
    gm = make_fx(only_aliases)(xd)
    cg = compiled.CompiledGraph(gm, name="only_aliases")
    cg(xd)
    before = launches()
    out = cg(xd)
    assert launches() == before
    for got in out:
        torch.testing.assert_close(got.cpu(), x)
        assert got.untyped_storage().data_ptr() == xd.untyped_storage().data_ptr()
    # A later in-place write to the input shows through, as in eager.
    xd.add_(1.0)
    torch.testing.assert_close(out[0].cpu(), x + 1.0)


def test_training_step_after_graph_break_matches_eager():
    """loss.detach() after loss.backward() (a graph break) is an alias-only
    graph; the step still matches eager and the loss value is right."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    ref = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    ref.load_state_dict(model.state_dict())
    x, t = torch.randn(6, 8), torch.randint(0, 3, (6,))

    def step(m):
        loss = torch.nn.functional.cross_entropy(m(x), t)
        loss.backward()
        return loss.detach(), [p.grad for p in m.parameters()]

    torch._dynamo.reset()
    got_loss, got_grads = torch.compile(step, backend="pjrt")(model)
    want_loss, want_grads = step(ref)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
