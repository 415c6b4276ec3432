"""fused=True optimizers (_fused_adam_, _fused_adamw_, _fused_sgd_), their
foreach step counters and bincount on the eager pjrt device, against the same
calls on CPU; under fallback="error" (conftest), so a CPU fallback fails, and
with structural asserts that a step is a fixed number of device programs."""
import itertools

import pytest
import torch

import torch_pjrt
from torch_pjrt import fused_optim

DEV = "pjrt"
SHAPES = [(4, 3), (5,), (2, 3, 2), ()]


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}


def _train(dev, make_opt, dtype, steps=4, lr_tensor=False, shapes=SHAPES):
    """Params after `steps` optimizer steps with fixed grads (seeded per call)."""
    gen = torch.Generator().manual_seed(1)
    init = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen).to(dtype) for s in shapes] for _ in range(steps)]
    params = [torch.nn.Parameter(p.to(dev)) for p in init]
    lr = torch.tensor(0.01) if lr_tensor else 0.01
    opt = make_opt(params, lr.to(dev) if lr_tensor else lr)
    for k in range(steps):
        for p, g in zip(params, grads[k]):
            p.grad = g.to(dev)
        opt.step()
    state = [{n: v.cpu() for n, v in opt.state[p].items() if isinstance(v, torch.Tensor)}
             for p in params]
    return [p.detach().cpu() for p in params], state


ADAM_CASES = list(itertools.product(
    (torch.optim.Adam, torch.optim.AdamW), (0.0, 0.1), (False, True), (False, True)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cls,wd,amsgrad,maximize", ADAM_CASES)
def test_adam_matches_cpu(cls, wd, amsgrad, maximize, dtype):
    def make(params, lr):
        return cls(params, lr=lr, weight_decay=wd, amsgrad=amsgrad, maximize=maximize,
                   fused=True)
    want, want_state = _train("cpu", make, dtype)
    got, got_state = _train(DEV, make, dtype)
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, **_tol(dtype))
    for ws, gs in zip(want_state, got_state):
        assert ws.keys() == gs.keys()
        for name in ws:
            torch.testing.assert_close(gs[name], ws[name], **_tol(dtype))


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_tensor_lr(cls):
    def make(params, lr):
        return cls(params, lr=lr, weight_decay=0.05, betas=(0.8, 0.95), fused=True)
    want, _ = _train("cpu", make, torch.float32, lr_tensor=True)
    got, _ = _train(DEV, make, torch.float32, lr_tensor=True)
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


SGD_CASES = [  # momentum, dampening, nesterov, weight_decay, maximize
    (0.0, 0.0, False, 0.0, False), (0.0, 0.0, False, 0.1, True),
    (0.9, 0.0, False, 0.0, False), (0.9, 0.1, False, 0.1, False),
    (0.9, 0.0, True, 0.1, False), (0.8, 0.0, True, 0.0, True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lr_tensor", [False, True])
@pytest.mark.parametrize("momentum,dampening,nesterov,wd,maximize", SGD_CASES)
def test_sgd_matches_cpu(momentum, dampening, nesterov, wd, maximize, lr_tensor, dtype):
    def make(params, lr):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                               nesterov=nesterov, weight_decay=wd, maximize=maximize,
                               fused=True)
    want, want_state = _train("cpu", make, dtype, lr_tensor=lr_tensor)
    got, got_state = _train(DEV, make, dtype, lr_tensor=lr_tensor)
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, **_tol(dtype))
    for ws, gs in zip(want_state, got_state):
        for name in ws:
            torch.testing.assert_close(gs[name], ws[name], **_tol(dtype))


def _direct_args(dev, amsgrad):
    gen = torch.Generator().manual_seed(2)
    mk = lambda s: torch.randn(s, generator=gen).to(dev)  # noqa: E731
    lists = [[mk(s) for s in SHAPES] for _ in range(4)]
    lists[3] = [t.abs() for t in lists[3]]  # exp_avg_sqs are non-negative
    maxs = [t.abs() + 0.5 for t in (mk(s) for s in SHAPES)] if amsgrad else []
    steps = [torch.tensor(3.0).to(dev) for _ in SHAPES]
    return lists[0], lists[1], lists[2], lists[3], maxs, steps


@pytest.mark.parametrize("op", [torch._fused_adam_, torch._fused_adamw_])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("inf", [None, 0.0, 1.0])
def test_adam_grad_scale_found_inf(op, amsgrad, inf):
    """grads are unscaled in place; found_inf == 1 leaves every tensor as it was."""
    out = {}
    for dev in ("cpu", DEV):
        lists = _direct_args(dev, amsgrad)
        scale = torch.tensor([4.0]).to(dev)
        found = None if inf is None else torch.tensor([inf]).to(dev)
        op(*lists, lr=0.01, beta1=0.9, beta2=0.999, weight_decay=0.1, eps=1e-8,
           amsgrad=amsgrad, maximize=False, grad_scale=scale, found_inf=found)
        out[dev] = [[t.cpu() for t in ts] for ts in lists]
    for want, got in zip(out["cpu"], out[DEV]):
        for w, g in zip(want, got):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inf", [0.0, 1.0])
def test_sgd_grad_scale_found_inf(inf):
    out = {}
    for dev in ("cpu", DEV):
        ps, gs, bufs = _direct_args(dev, False)[:3]
        torch._fused_sgd_(ps, gs, bufs, weight_decay=0.1, momentum=0.9, lr=0.1,
                          dampening=0.0, nesterov=True, maximize=False, is_first_step=False,
                          grad_scale=torch.tensor([2.0]).to(dev),
                          found_inf=torch.tensor([inf]).to(dev))
        out[dev] = [t.cpu() for t in ps + gs + bufs]
    for w, g in zip(out["cpu"], out[DEV]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_views_are_written_back():
    """Params that view a larger storage get their update by a device copy."""
    out = {}
    for dev in ("cpu", DEV):
        gen = torch.Generator().manual_seed(3)
        big = torch.randn(20, generator=gen).to(dev)
        ps = [big[2:8], big[10:20].view(2, 5)]
        gs = [torch.randn(p.shape, generator=gen).to(dev) for p in ps]
        ms = [torch.zeros(p.shape).to(dev) for p in ps]
        vs = [torch.zeros(p.shape).to(dev) for p in ps]
        steps = [torch.tensor(1.0).to(dev) for _ in ps]
        torch._fused_adamw_(ps, gs, ms, vs, [], steps, lr=0.1, beta1=0.9, beta2=0.99,
                            weight_decay=0.01, eps=1e-8, amsgrad=False, maximize=False)
        out[dev] = [big.cpu()] + [t.cpu() for t in ms + vs]
    for w, g in zip(out["cpu"], out[DEV]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_grad_scaler_training_matches_cpu():
    """AMP-style loop: GradScaler's unscale/found_inf feed the fused step; a step
    with an inf gradient is skipped on both devices."""
    res = {}
    for dev in ("cpu", DEV):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 3).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=True)
        scaler = torch.amp.GradScaler(dev, init_scale=1024.0)
        x = torch.randn(8, 6).to(dev)
        for k in range(4):
            opt.zero_grad()
            loss = model(x).square().mean() * (float("inf") if k == 1 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        res[dev] = [p.detach().cpu() for p in model.parameters()] + [
            torch.tensor(scaler.get_scale())] + [opt.state[p]["step"].cpu()
                                                for p in model.parameters()]
    for w, g in zip(res["cpu"], res[DEV]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def _executions_per_step(n_params, make_opt):
    params = [torch.nn.Parameter(torch.randn(8, device=DEV)) for _ in range(n_params)]
    opt = make_opt(params)
    for p in params:
        p.grad = torch.randn_like(p)
    for _ in range(2):  # warm-up: state created, programs compiled
        opt.step()
    torch.pjrt.synchronize()
    compiled = fused_optim.stats["compiled"]
    before = torch_pjrt.metrics()["executions"]
    for k in range(3):
        for g in opt.param_groups:
            g["lr"] = 0.01 * (k + 1)  # a schedule: new lr values must not recompile
        opt.step()
    torch.pjrt.synchronize()
    assert fused_optim.stats["compiled"] == compiled
    return (torch_pjrt.metrics()["executions"] - before) / 3


@pytest.mark.parametrize("make_opt,most", [
    (lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, fused=True), 2),
    (lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True, fused=True), 2),
    (lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, fused=True), 1)])
def test_programs_per_step_do_not_grow_with_params(make_opt, most):
    """A step is one program for the update (+ one for the step counters),
    whatever the number of parameters."""
    few, many = _executions_per_step(2, make_opt), _executions_per_step(12, make_opt)
    assert few == many <= most


def test_foreach_counters_match_cpu():
    out = {}
    for dev in ("cpu", DEV):
        steps = [torch.tensor(float(i)).to(dev) for i in range(5)]
        ints = [torch.arange(3).to(dev) + i for i in range(3)]
        torch._foreach_add_(steps, 1)
        torch._foreach_add_(ints, 2)
        found = torch.tensor(1.0).to(dev)
        torch._foreach_sub_(steps, [found] * len(steps))
        torch._foreach_sub_(steps, [found] * len(steps), alpha=0.5)
        with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
            torch._foreach_sub_(steps, [found.reshape(1)] * len(steps))
        out[dev] = [t.cpu() for t in steps + ints]
    for w, g in zip(out["cpu"], out[DEV]):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_fused_bad_input_names_op():
    p = [torch.zeros(3, device=DEV)]
    with pytest.raises(RuntimeError, match="_fused_adamw_: grads has 0 tensors, expected 1"):
        torch._fused_adamw_(p, [], [torch.zeros(3, device=DEV)], [torch.zeros(3, device=DEV)],
                            [], [torch.zeros((), device=DEV)], lr=0.1, beta1=0.9, beta2=0.9,
                            weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)


# ---------------------------------------------------------------- bincount --

@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int32, torch.int64])
def test_bincount_counts(dtype):
    x = torch.tensor([0, 3, 3, 1, 7, 3], dtype=dtype)
    for minlength in (0, 4, 12):
        want = torch.bincount(x, minlength=minlength)
        got = torch.bincount(x.to(DEV), minlength=minlength).cpu()
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("wdtype", [torch.float32, torch.float64, torch.float16,
                                    torch.bfloat16, torch.int32, torch.int64, torch.bool])
def test_bincount_weights(wdtype):
    x = torch.randint(0, 9, (50,))
    w = torch.randn(50).to(wdtype) if wdtype != torch.bool else torch.rand(50) > 0.5
    want = torch.bincount(x, w, minlength=3)
    got = torch.bincount(x.to(DEV), w.to(DEV), minlength=3).cpu()
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bincount_empty():
    for minlength in (0, 5):
        e = torch.tensor([], dtype=torch.int64)
        for w in (None, torch.tensor([])):
            want = torch.bincount(e, w, minlength=minlength)
            got = torch.bincount(e.to(DEV), None if w is None else w.to(DEV),
                                 minlength=minlength).cpu()
            assert got.dtype == want.dtype and got.shape == want.shape


@pytest.mark.parametrize("args,exc,msg", [
    ((torch.tensor([-1, 2]),), RuntimeError, "1-d non-negative integral"),
    ((torch.tensor([[1, 2]]),), RuntimeError, "1-d non-negative integral"),
    ((torch.tensor(3),), RuntimeError, "1-d non-negative integral"),
    ((torch.tensor([1, 2]), torch.ones(3)), RuntimeError, "same length as input"),
    ((torch.tensor([1, 2]), torch.ones(2, 1)), RuntimeError, "same length as input"),
    ((torch.tensor([1.0]),), NotImplementedError, "not implemented for"),
    ((torch.tensor([True]),), NotImplementedError, "not implemented for")])
def test_bincount_errors(args, exc, msg):
    with pytest.raises(exc, match=msg):
        torch.bincount(*args)
    with pytest.raises(exc, match=msg):
        torch.bincount(*[a.to(DEV) for a in args])
    with pytest.raises(RuntimeError, match="minlength should be >= 0"):
        torch.bincount(torch.tensor([1]).to(DEV), minlength=-1)
