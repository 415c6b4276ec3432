"""Scalars on the eager "pjrt" device are runtime inputs, not program
constants: a new value reuses the compiled program (AdamW's per-step bias
correction must not compile every step), and results still match CPU."""
import pytest
import torch

import torch_pjrt
from torch_pjrt import device as pjrt_device

pjrt_device.ensure_registered()
DEV = "pjrt"


def _programs():
    # Eager signature misses (StableHLO built; compiled or loaded from the
    # disk cache), and real compiles.
    return pjrt_device.stats()["programs"], torch_pjrt.metrics()["compiles"]


def test_adamw_stops_compiling_after_two_steps():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    md = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    md.load_state_dict(m.state_dict())
    md.to(DEV)
    o = torch.optim.AdamW(m.parameters(), lr=1e-2, foreach=True)
    od = torch.optim.AdamW(md.parameters(), lr=1e-2, foreach=True)
    x, y = torch.randn(5, 8), torch.randn(5, 4)
    xd, yd = x.to(DEV), y.to(DEV)
    counts = []
    for _ in range(5):
        for mm, oo, xx, yy in ((m, o, x, y), (md, od, xd, yd)):
            oo.zero_grad()
            torch.nn.functional.mse_loss(mm(xx), yy).backward()
            oo.step()
        counts.append(_programs())
    # Steps 3-5 run with new bias-correction values and compile nothing.
    assert counts[2] == counts[1] and counts[4] == counts[1], counts
    for p, pd in zip(m.parameters(), md.parameters()):
        torch.testing.assert_close(pd.detach().cpu(), p.detach(), rtol=1e-4, atol=1e-5)


def test_new_scalar_value_reuses_program():
    x = torch.randn(4, 5, device=DEV)
    (x * 1.5 + 2.5).cpu()
    (x.add(x, alpha=0.5)).cpu()
    before = pjrt_device.stats()["programs"]
    for v in (0.25, -3.0, 7.125):
        got = (x * v + (v / 2)).cpu()
        torch.testing.assert_close(got, x.cpu() * v + v / 2)
        torch.testing.assert_close(x.add(x, alpha=v).cpu(), x.cpu().add(x.cpu(), alpha=v))
    assert pjrt_device.stats()["programs"] == before


def _check(fn, *args):
    cpu = fn(*args)
    dev = fn(*(a.to(DEV) if isinstance(a, torch.Tensor) else a for a in args))
    assert dev.dtype == cpu.dtype, (dev.dtype, cpu.dtype)
    torch.testing.assert_close(dev.cpu(), cpu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("v", [0.5, -2.0, 3.25])
def test_scalar_ops_match_cpu(v):
    f = torch.randn(6, 7)
    i = torch.randint(-20, 20, (6, 7), dtype=torch.int32)
    h = torch.randn(6, 7).half()
    _check(lambda a: a * v + 1, f)
    _check(lambda a: a * v, h)
    _check(lambda a: a < v, i)            # int tensor vs float scalar: float compare
    _check(lambda a: a + 3, i)            # int scalar keeps int32
    _check(lambda a: a * v, i)            # int tensor * float -> default float
    _check(lambda a: torch.clamp(a, min=-abs(v), max=abs(v)), f)
    _check(lambda a: torch.nn.functional.leaky_relu(a, abs(v) / 10), f)
    _check(lambda a: torch.nn.functional.hardtanh(a, -abs(v), abs(v)), f)
    _check(lambda a: a ** 2, f)           # x ** 2 stays x * x
    _check(lambda a: a.pow(v), f.abs())
    _check(lambda a: torch.full_like(a, v), f)
    _check(lambda a: a.masked_fill(a > 0, v), f)
    _check(lambda a, b: torch.lerp(a, b, abs(v) / 4), f, f.flip(0))
    _check(lambda a, b: torch.addcdiv(a, a, b.abs() + 1, value=v), f, f.flip(1))
    _check(lambda a: torch.where(a > 0, a, v), f)
    _check(lambda a: torch.arange(0.0, 3.0, abs(v), device=a.device) + a.sum(), f)
    _check(lambda a: a.scatter(1, torch.zeros(6, 1, dtype=torch.long, device=a.device), v), f)
    _check(lambda a: a.double() * v, f)
    _check(lambda a: torch.rsub(a, v), f)
    _check(lambda a: a.div(v, rounding_mode="floor"), f)


def test_inplace_scalar_ops_match_cpu():
    for v in (0.5, 1.75):
        a = torch.randn(4, 4)
        b = a.to(DEV)
        a.mul_(v).add_(v, alpha=2).clamp_(max=v)
        b.mul_(v).add_(v, alpha=2).clamp_(max=v)
        torch.testing.assert_close(b.cpu(), a)
