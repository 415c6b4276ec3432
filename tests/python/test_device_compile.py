"""torch.compile(backend="pjrt") on eager "pjrt" tensors: results stay on the
device, nothing moves between host and device (metrics bytes_h2d/bytes_d2h),
training (compiled forward + backward, eager or compiled optimizer) matches
eager CPU, input mutations (BatchNorm running stats, in-place updates) land in
the device tensors' storages, views and lazy storages are read correctly."""
import copy
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

import torch_pjrt
from torch_pjrt import models

DEV = "pjrt"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def pjrt(fn, **kw):
    return torch.compile(fn, backend="pjrt", **kw)


def transfers():
    m = torch_pjrt.metrics()
    return m["bytes_h2d"], m["bytes_d2h"]


def close(a, b, rtol=1e-4, atol=1e-5):
    torch.testing.assert_close(a.detach().cpu(), b.detach().cpu(), rtol=rtol, atol=atol)


def train(model, x, y, steps, loss_fn, opt_fn=None):
    """Runs `steps` SGD steps; returns the losses."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        loss.backward()
        if opt_fn is None:
            opt.step()
        else:
            opt_fn(opt)
        opt.zero_grad(set_to_none=False)
        losses.append(loss.detach())
    return losses


def check_model_matches(cpu_model, dev_model):
    for (name, a), (_, b) in zip(cpu_model.state_dict().items(),
                                 dev_model.state_dict().items()):
        assert b.device.type == DEV, name
        close(b, a)


def test_compiled_function_keeps_results_on_device():
    def f(x, w):
        return torch.relu(x @ w + 1.0).sum(dim=1), x * 2
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    xd, wd = x.to(DEV), w.to(DEV)
    cf = pjrt(f)
    torch_pjrt.metrics_reset()
    out = cf(xd, wd)
    assert transfers() == (0, 0)
    assert all(o.device == xd.device for o in out)
    for got, want in zip(out, f(x, w)):
        close(got, want)


def test_mlp_training_moves_no_data_and_matches_cpu():
    torch.manual_seed(1)
    cpu = models.MLP(16, 32, 5)
    dev = copy.deepcopy(cpu).to(DEV)
    x, y = torch.randn(8, 16), torch.randint(0, 5, (8,))
    xd, yd = x.to(DEV), y.to(DEV)
    loss_fn = nn.functional.cross_entropy
    want = train(cpu, x, y, 3, loss_fn)
    compiled = pjrt(dev)
    torch_pjrt.metrics_reset()
    got = train(compiled, xd, yd, 3, loss_fn)
    assert transfers() == (0, 0)
    for g, w in zip(got, want):
        assert g.device == xd.device
        close(g, w)
    check_model_matches(cpu, dev)


def test_cnn_batchnorm_running_stats_written_back_on_device():
    torch.manual_seed(2)
    cpu = models.CNN(3, 4, 5).train()
    dev = copy.deepcopy(cpu).to(DEV).train()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    xd, yd = x.to(DEV), y.to(DEV)
    mean_view = dev.bn1.running_mean[1:3]  # another view of the mutated storage
    want = train(cpu, x, y, 2, nn.functional.cross_entropy)
    torch_pjrt.metrics_reset()
    got = train(pjrt(dev), xd, yd, 2, nn.functional.cross_entropy)
    assert transfers() == (0, 0)
    for g, w in zip(got, want):
        close(g, w)
    check_model_matches(cpu, dev)  # running_mean / running_var / num_batches_tracked
    close(mean_view, cpu.bn1.running_mean[1:3])
    # The write-backs are installed into the storages by the compiled call:
    # AOTAutograd's copy_ into the inputs then runs no eager program.
    from torch_pjrt import device
    fwd = pjrt(dev)
    with torch.no_grad():
        fwd(xd)
        before = device.stats()["ops"]
        fwd(xd)
        assert device.stats()["ops"] == before
        cpu(x), cpu(x)  # the same two running-stat updates
    check_model_matches(cpu, dev)
    # eval mode reads the updated running stats on the device
    cpu.eval(), dev.eval()
    close(pjrt(dev)(xd), cpu(x))


def test_gpt_training_step_on_device():
    torch.manual_seed(3)
    cfg = models.GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16)
    cpu = models.GPT(cfg)
    dev = copy.deepcopy(cpu).to(DEV)
    idx, tgt = models.char_batch(2, cfg)
    idxd, tgtd = idx.to(DEV), tgt.to(DEV)

    def steps(model, fn, i, t):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for k in range(2):
            if k == 0:  # AdamW's state (eager zeros_like) is made on the device too
                torch_pjrt.metrics_reset()
            loss = fn(i, t)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.detach())
        return losses

    # logits get a zeros() gradient from autograd (made on the device) and
    # backward() starts from a ones() made on the device: no transfers either.
    compiled = pjrt(dev)
    want = steps(cpu, lambda i, t: cpu(i, t)[1], idx, tgt)
    got = steps(dev, lambda i, t: compiled(i, t)[1], idxd, tgtd)
    assert transfers() == (0, 0)
    for g, w in zip(got, want):
        close(g, w)
    # AdamW divides by sqrt(v): rounding differences in tiny gradients show up
    # as absolute differences of a few 1e-5 in the updated parameters.
    for (name, a), (_, b) in zip(cpu.state_dict().items(), dev.state_dict().items()):
        close(b, a, atol=1e-4)


def test_compiled_optimizer_step_updates_params_in_place():
    torch.manual_seed(4)
    ps = [torch.randn(5, 3), torch.randn(7)]
    gs = [torch.randn(5, 3), torch.randn(7)]
    pd = [p.to(DEV) for p in ps]
    gd = [g.to(DEV) for g in gs]
    alias = pd[0].view(15)  # a view of a storage the step overwrites

    def sgd(params, grads):
        for p, g in zip(params, grads):
            p.mul_(0.9).add_(g, alpha=-0.1)

    cstep = pjrt(sgd)
    torch_pjrt.metrics_reset()
    for _ in range(2):
        sgd(ps, gs)
        cstep(pd, gd)
    assert transfers() == (0, 0)
    for a, b in zip(pd, ps):
        close(a, b)
    close(alias, ps[0].view(15))


def test_non_contiguous_and_offset_views_as_inputs():
    def f(a, b):
        return a * 2 + b
    base = torch.randn(6, 8)
    bd = base.to(DEV)
    cf = pjrt(f)
    cases = [(bd.t()[:6], bd[:, 2:8], base.t()[:6], base[:, 2:8]),
             (bd[1:4], bd[3:6], base[1:4], base[3:6])]
    torch_pjrt.metrics_reset()
    outs = [cf(a, b) for a, b, _, _ in cases]
    assert transfers() == (0, 0)
    for out, (_, _, ca, cb) in zip(outs, cases):
        close(out, f(ca, cb))


def test_never_written_storage_reads_as_zeros():
    def f(a, b):
        return a + b
    b = torch.randn(3, 4)
    a = torch.empty(3, 4, device=DEV)  # lazy: no buffer yet, reads as zeros
    close(pjrt(f)(a, b.to(DEV)), b)


def test_cpu_scalar_tensor_mixes_with_device_tensors():
    def f(x, s):
        return x * s + 1
    x, s = torch.randn(4, 3), torch.tensor(2.5)
    out = pjrt(f)(x.to(DEV), s)
    assert out.device.type == DEV
    close(out, f(x, s))


def test_independent_cpu_and_device_values_keep_their_devices():
    # As in eager PyTorch: CPU values stay on the CPU, device values on the device.
    def f(x, y):
        return x * 2, y + 1
    x, y = torch.randn(3), torch.randn(4)
    a, b = pjrt(f)(x.to(DEV), y)
    assert a.device.type == DEV and b.device.type == "cpu"
    close(a, x * 2)
    close(b, y + 1)


def test_storage_kept_as_another_dtype_is_reinterpreted():
    def f(a):
        return a + 1
    x = torch.randn(4, 3)
    out = pjrt(f)(x.to(DEV).view(torch.int32))
    assert torch.equal(out.cpu(), x.view(torch.int32) + 1)


def test_mixed_device_inputs_raise_naming_the_devices():
    def f(x, y):
        return x + y
    with pytest.raises(Exception, match=r"(pjrt:0.*cpu|cpu.*pjrt:0)"):
        pjrt(f)(torch.randn(4, 3, device=DEV), torch.randn(4, 3))


def test_results_stay_on_the_second_device_subprocess(subprocess_env):
    code = textwrap.dedent("""
        import copy, torch, torch_pjrt
        torch_pjrt.set_client_options(cpu_device_count=2)
        from torch_pjrt import device
        device.ensure_registered()
        torch.manual_seed(0)
        cpu = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8),
                                  torch.nn.ReLU(), torch.nn.Linear(8, 2))
        dev = copy.deepcopy(cpu).to("pjrt:1")
        x = torch.randn(5, 6)
        xd = x.to("pjrt:1")
        torch_pjrt.metrics_reset()
        out = torch.compile(dev, backend="pjrt")(xd)
        out.sum().backward()
        m = torch_pjrt.metrics()
        assert (m["bytes_h2d"], m["bytes_d2h"]) == (0, 0), m
        assert out.device == torch.device("pjrt:1"), out.device
        assert dev[0].weight.grad.device == torch.device("pjrt:1")
        assert dev[1].running_mean.device == torch.device("pjrt:1")
        want = cpu(x)
        want.sum().backward()
        torch.testing.assert_close(out.detach().cpu(), want.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dev[0].weight.grad.cpu(), cpu[0].weight.grad,
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dev[1].running_mean.cpu(), cpu[1].running_mean)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


def test_native_call_falls_back_to_lookup_for_another_signature():
    """A graph over pjrt tensors runs its last program in one native call;
    arguments of another signature (shape, dtype, device, count) run nothing
    there and find (or compile) their own program, with eager's results."""
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch_pjrt import compiled

    def f(x, y):
        return torch.relu(x) * y + 1, x.sum()

    gm = make_fx(f, tracing_mode="fake")(torch.randn(3, 4).to("pjrt"),
                                        torch.randn(3, 4).to("pjrt"))
    cg = compiled.CompiledGraph(gm, name="native_test")
    shapes = [(3, 4), (5, 4), (3, 4), (5, 4)]
    for i, shape in enumerate(shapes):
        dtype = torch.float64 if i == 3 else torch.float32
        x, y = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
        got = cg(x.to("pjrt"), y.to("pjrt"))
        want = f(x, y)
        assert got[0].device.type == "pjrt" and got[0].dtype == dtype
        torch.testing.assert_close(got[0].cpu(), want[0])
        torch.testing.assert_close(got[1].cpu(), want[1])
    assert cg.num_programs == 3
    with pytest.raises(NotImplementedError, match="expected one pjrt device"):
        cg(torch.randn(3, 4).to("pjrt"), torch.randn(3, 4, device="meta"))
