"""Runtime fast paths of torch.compile(backend="pjrt"): activations saved for
the backward stay on the device (placeholders), are materialized before any
host read, and every path gives eager's gradients; Program host results."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt import _C, compiled


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))


def _step(model, x, y):
    for p in model.parameters():
        p.grad = None
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _check_against_eager(run_ctx=None):
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    ref_model, model = _mlp(), _mlp()
    want_loss, want_grads = _step(ref_model, x, y)
    fn = torch.compile(lambda a, b: _step(model, a, b), backend="pjrt")
    for _ in range(3):
        if run_ctx is None:
            loss, grads = fn(x, y)
        else:
            with run_ctx():
                loss, grads = fn(x, y)
        torch.testing.assert_close(loss, want_loss, rtol=1e-4, atol=1e-5)
        for g, w in zip(grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_saved_activations_stay_on_device():
    before = dict(compiled.placeholder_stats)
    _C.metrics_reset()
    _check_against_eager()
    made = compiled.placeholder_stats["made"] - before["made"]
    assert made >= 3  # the saved activations of three steps
    # Nothing the backward needs was uploaded again (only inputs, seeds).
    assert compiled.placeholder_stats["materialized"] == before["materialized"]


def test_saved_tensor_hooks_get_real_values():
    seen = []

    def pack(t):
        seen.append(float(t.detach().abs().sum()))
        return t

    def ctx():
        return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)

    before = compiled.placeholder_stats["made"]
    _check_against_eager(ctx)
    # With hooks active no placeholder is handed out (hooks read the values).
    assert compiled.placeholder_stats["made"] == before
    assert seen


def test_materialize_downloads_the_device_value():
    x = torch.randn(5, 3)
    buf = compiled.upload(x, cache=False)
    ph = torch.zeros(5, 3)
    compiled._register_placeholder(ph, buf)
    assert compiled.is_placeholder(ph)
    # An upload of the placeholder (cache miss) must see the real value.
    got = compiled.download(compiled.upload(ph[1:], cache=False), torch.float32, (4, 3))
    torch.testing.assert_close(got, x[1:])
    assert not compiled.is_placeholder(ph)
    torch.testing.assert_close(ph, x)


def test_program_host_results_match_execute():
    text = """module {
  func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
    %0 = stablehlo.add %a, %b : tensor<2x3xf32>
    %1 = stablehlo.multiply %a, %b : tensor<2x3xf32>
    return %0, %1 : tensor<2x3xf32>, tensor<2x3xf32>
  }
}"""
    cl = compiled.client()
    exe = cl.compile(text)
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    bufs = [compiled.upload(a, cache=False), compiled.upload(b, cache=False)]
    prog = _C.Program(exe, ["buffer", "buffer"], [], "add_mul")
    assert (prog.num_inputs, prog.num_results, prog.name) == (2, 2, "add_mul")
    out0 = torch.empty(2, 3)
    outs = prog.run(bufs, [(out0.data_ptr(), 24), None])
    torch.testing.assert_close(out0, a + b)
    torch.testing.assert_close(compiled.download(outs[0], torch.float32, (2, 3)), a + b)
    torch.testing.assert_close(compiled.download(outs[1], torch.float32, (2, 3)), a * b)
    with pytest.raises(_C.Error, match="wrong host size"):
        prog.run(bufs, [(out0.data_ptr(), 20), None])
    with pytest.raises(_C.Error, match="wrong argument or result count"):
        prog.run(bufs, [None])
    with pytest.raises(_C.Error, match="not a Buffer"):
        prog.run([a, b])
    with pytest.raises(_C.Error, match="unknown kind"):
        _C.Program(exe, ["buffer", "tensor"])
