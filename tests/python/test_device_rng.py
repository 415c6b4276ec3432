"""Randomness on the pjrt device, against torch.cuda's semantics: seeding
(torch.pjrt.manual_seed & co, torch.manual_seed), torch.Generator(device=
"pjrt") and generator= arguments, one stream for eager and compiled code, and
every random op on the device (the autouse fixture makes a CPU fallback fail)
with its distribution checked against the mathematical law, plus the
capability queries probed from the plugin."""
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_pjrt

DEV = "pjrt"
N = 200_000


def rand(seed):
    torch.pjrt.manual_seed(seed)
    return torch.rand(8, device=DEV).cpu()


def test_manual_seed_reproduces_and_ignores_cpu_rng():
    a = rand(3)
    torch.rand(1000)  # CPU generator use in between
    torch.randn(7).normal_()
    b = rand(3)
    assert torch.equal(a, b)
    assert not torch.equal(a, rand(4))


def test_torch_manual_seed_seeds_the_device():
    torch.manual_seed(11)
    a = torch.randn(6, device=DEV).cpu()
    torch.pjrt.manual_seed_all(11)
    assert torch.equal(a, torch.randn(6, device=DEV).cpu())
    assert torch.pjrt.initial_seed() == 11


def test_consecutive_draws_differ_and_state_round_trips():
    torch.pjrt.manual_seed(0)
    state = torch.pjrt.get_rng_state()
    assert state.dtype == torch.uint8 and state.device.type == "cpu" and state.numel() == 16
    a, b = torch.rand(5, device=DEV).cpu(), torch.rand(5, device=DEV).cpu()
    assert not torch.equal(a, b)
    torch.pjrt.set_rng_state(state)
    assert torch.equal(torch.rand(5, device=DEV).cpu(), a)
    states = torch.pjrt.get_rng_state_all()
    assert len(states) == torch.pjrt.device_count()
    torch.pjrt.set_rng_state_all(states)


def test_seed_is_nondeterministic():
    torch.pjrt.seed()
    s1 = torch.pjrt.initial_seed()
    torch.pjrt.seed()
    assert torch.pjrt.initial_seed() != s1


def test_bad_state_raises():
    with pytest.raises(RuntimeError, match="16"):
        torch.pjrt.set_rng_state(torch.zeros(5, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="ByteTensor"):
        torch.pjrt.set_rng_state(torch.zeros(16, dtype=torch.float32))


def test_generator_object():
    g = torch.Generator(device=DEV)
    assert g.device.type == DEV
    assert g.initial_seed() == 67280421310721  # PyTorch's default seed, as CUDA's
    g.manual_seed(5)
    a = torch.randn(10, device=DEV, generator=g).cpu()
    g.manual_seed(5)
    b = torch.randn(10, device=DEV, generator=g).cpu()
    assert torch.equal(a, b)
    s = g.get_state()
    c = torch.rand(4, device=DEV, generator=g).cpu()
    g2 = torch.Generator(device=DEV)
    g2.set_state(s)
    assert torch.equal(torch.rand(4, device=DEV, generator=g2).cpu(), c)


def test_generator_does_not_touch_the_default_stream():
    torch.pjrt.manual_seed(1)
    a = torch.rand(4, device=DEV).cpu()
    torch.pjrt.manual_seed(1)
    g = torch.Generator(device=DEV).manual_seed(99)
    torch.rand(4, device=DEV, generator=g)
    assert torch.equal(torch.rand(4, device=DEV).cpu(), a)


def test_cpu_generator_is_rejected():
    with pytest.raises(RuntimeError, match="generator on the pjrt device"):
        torch.rand(3, device=DEV, generator=torch.Generator())


def test_fork_rng():
    torch.pjrt.manual_seed(2)
    a = torch.rand(3, device=DEV).cpu()
    torch.pjrt.manual_seed(2)
    with torch.random.fork_rng(devices=[0], device_type=DEV):
        torch.rand(100, device=DEV)
    # fork_rng restores the state: the stream continues where it was.
    assert torch.equal(torch.rand(3, device=DEV).cpu(), a)


def test_eager_and_compiled_share_the_stream():
    def f(x):
        return x + torch.rand(x.shape, device=x.device), torch.randn_like(x) * 2

    x = torch.zeros(16, device=DEV)
    torch.pjrt.manual_seed(7)
    eager = [t.cpu() for t in f(x)]
    cf = torch.compile(f, backend="pjrt")
    torch.pjrt.manual_seed(7)
    compiled = [t.cpu() for t in cf(x)]
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)
    torch.pjrt.manual_seed(7)
    torch.rand(50)  # the CPU generator does not move the device stream
    host = cf(torch.zeros(16))  # CPU inputs: the same program on the device
    for a, b in zip(eager, host):
        assert torch.equal(a, b)


def test_seed_before_the_device_starts_is_applied():
    code = """
        import torch, torch_pjrt
        torch.manual_seed(123)        # before the client exists: queued
        a = torch.rand(4, device="pjrt").cpu()
        torch.pjrt.manual_seed(123)
        b = torch.rand(4, device="pjrt").cpu()
        print(torch.equal(a, b))
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


# ------------------------------------------------------------ distributions --

def moments(t):
    t = t.double()
    return t.mean().item(), t.var().item()


def close(got, want, tol):
    assert abs(got - want) <= tol, (got, want)


@pytest.fixture(autouse=True)
def _seeded():
    torch.pjrt.manual_seed(1234)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_rand_randn(dtype):
    u = torch.rand(N, device=DEV, dtype=dtype).cpu()
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    m, v = moments(u)
    close(m, 0.5, 0.01)
    close(v, 1 / 12, 0.005)
    z = torch.randn(N, device=DEV, dtype=dtype).cpu()
    m, v = moments(z)
    close(m, 0.0, 0.02)
    close(v, 1.0, 0.03)


def test_uniform_normal_bernoulli_in_place():
    g = torch.Generator(DEV).manual_seed(0)
    x = torch.empty(N, device=DEV)
    u = x.uniform_(-2, 6, generator=g).cpu()
    assert u.min() >= -2 and u.max() < 6
    close(moments(u)[0], 2.0, 0.05)
    n = x.normal_(3.0, 0.5, generator=g).cpu()
    m, v = moments(n)
    close(m, 3.0, 0.01)
    close(v, 0.25, 0.01)
    b = x.bernoulli_(0.25, generator=g).cpu()
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    close(b.mean().item(), 0.25, 0.01)
    p = torch.linspace(0, 1, 11, device=DEV).repeat(N // 11)
    bt = torch.empty_like(p).bernoulli_(p, generator=g).cpu().view(-1, 11).double().mean(0)
    assert torch.allclose(bt, torch.linspace(0, 1, 11).double(), atol=0.02)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float32])
def test_randint_and_random_(dtype):
    r = torch.randint(-3 if dtype != torch.uint8 else 0, 7, (N,), device=DEV, dtype=dtype).cpu()
    assert r.dtype == dtype
    lo = -3 if dtype != torch.uint8 else 0
    assert set(r.unique().tolist()) == set(range(lo, 7))
    x = torch.empty(N, device=DEV, dtype=dtype)
    assert set(x.random_(2, 5).cpu().unique().tolist()) == {2, 3, 4}
    assert set(x.random_(3).cpu().unique().tolist()) == {0, 1, 2}
    full = x.random_().cpu().double()
    top = {torch.int64: 2.0 ** 63 - 1, torch.int32: 2.0 ** 31 - 1, torch.uint8: 255,
           torch.float32: 2.0 ** 24}[dtype]
    assert full.min() >= 0 and full.max() <= top
    close(full.mean().item() / top, 0.5, 0.01)
    g = torch.Generator(DEV).manual_seed(3)
    a = torch.randint(0, 100, (50,), device=DEV, generator=g).cpu()
    g.manual_seed(3)
    assert torch.equal(a, torch.randint(0, 100, (50,), device=DEV, generator=g).cpu())


def test_random_bool():
    b = torch.empty(1000, device=DEV, dtype=torch.bool).random_().cpu()
    assert b.any() and not b.all()


def test_exponential_cauchy_log_normal_geometric():
    x = torch.empty(N, device=DEV, dtype=torch.float64)
    e = x.exponential_(2.0).cpu()
    assert e.min() >= 0
    m, v = moments(e)
    close(m, 0.5, 0.01)
    close(v, 0.25, 0.01)
    c = x.cauchy_(1.0, 2.0).cpu()
    close(c.median().item(), 1.0, 0.05)  # the median and quartiles of Cauchy(1, 2)
    close(c.quantile(0.75).item() - c.quantile(0.25).item(), 4.0, 0.1)
    ln = x.log_normal_(0.5, 0.25).cpu()
    m, _ = moments(ln.log())
    close(m, 0.5, 0.01)
    close(ln.mean().item(), math.exp(0.5 + 0.25 ** 2 / 2), 0.01)
    gm = torch.empty(N, device=DEV, dtype=torch.int64).geometric_(0.25).cpu()
    assert gm.min() >= 1
    m, v = moments(gm)
    close(m, 4.0, 0.05)         # 1 / p
    close(v, 12.0, 0.5)         # (1 - p) / p^2


def test_randperm():
    for n in (0, 1, 10, 1000):
        p = torch.randperm(n, device=DEV).cpu()
        assert p.dtype == torch.int64
        assert torch.equal(p.sort().values, torch.arange(n))
    g = torch.Generator(DEV).manual_seed(8)
    a = torch.randperm(100, device=DEV, generator=g).cpu()
    g.manual_seed(8)
    assert torch.equal(a, torch.randperm(100, device=DEV, generator=g).cpu())
    assert not torch.equal(a, torch.arange(100))
    # each value lands at each position uniformly: first position over many draws
    firsts = torch.stack([torch.randperm(4, device=DEV)[0] for _ in range(400)]).cpu()
    counts = torch.bincount(firsts, minlength=4).double() / 400
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=torch.float64), atol=0.08)


def test_dropout_follows_the_seed():
    x = torch.ones(1000, device=DEV)
    torch.pjrt.manual_seed(5)
    a = torch.nn.functional.dropout(x, 0.3).cpu()
    torch.pjrt.manual_seed(5)
    b = torch.nn.functional.dropout(x, 0.3).cpu()
    assert torch.equal(a, b)
    close((a == 0).double().mean().item(), 0.3, 0.05)


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial(replacement):
    p = torch.tensor([0.1, 0.0, 0.6, 0.3])
    if replacement:
        s = torch.multinomial(p.to(DEV), N, True).cpu()
        freq = torch.bincount(s, minlength=4).double() / N
        assert torch.allclose(freq, p.double(), atol=0.01)
    else:
        s = torch.stack([torch.multinomial(p.to(DEV), 3) for _ in range(300)]).cpu()
        assert s.dtype == torch.int64
        assert (s != 1).all()  # never a zero-probability category while others remain
        assert all(len(set(row.tolist())) == 3 for row in s)
        first = torch.bincount(s[:, 0], minlength=4).double() / 300
        assert torch.allclose(first, p.double(), atol=0.08)
    rows = torch.rand(3, 6)
    out = torch.multinomial(rows.to(DEV), 4, replacement).cpu()
    assert out.shape == (3, 4) and out.max() < 6 and out.min() >= 0


@pytest.mark.parametrize("bad,msg", [
    (torch.tensor([1.0, -1.0]), "element < 0"),
    (torch.tensor([1.0, float("nan")]), "nan"),
    (torch.tensor([0.0, 0.0]), "sum of probabilities"),
])
def test_multinomial_bad_input_matches_cpu(bad, msg):
    with pytest.raises(RuntimeError, match=msg):
        torch.multinomial(bad, 1)
    with pytest.raises(RuntimeError, match=msg):
        torch.multinomial(bad.to(DEV), 1)


def test_multinomial_argument_errors():
    p = torch.ones(3, device=DEV)
    with pytest.raises(RuntimeError, match="without replacement"):
        torch.multinomial(p, 4)
    with pytest.raises(RuntimeError, match="n_sample <= 0"):
        torch.multinomial(p, 0)
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        torch.multinomial(torch.ones(2, 2, 2, device=DEV), 1)


@pytest.mark.parametrize("call,msg", [
    (lambda x: x.random_(5, 2), "from.*less than.*to"),
    (lambda x: x.exponential_(-1.0), "lambda > 0"),
    (lambda x: x.geometric_(1.5), r"\(0, 1\)"),
    (lambda x: x.log_normal_(1.0, -2.0), "std > 0"),
])
def test_distribution_argument_errors(call, msg):
    with pytest.raises(RuntimeError, match=msg):
        call(torch.empty(4))
    with pytest.raises(RuntimeError, match=msg):
        call(torch.empty(4, device=DEV))


# ------------------------------------------------------------ capabilities --

def test_capabilities_come_from_the_plugin():
    from torch_pjrt._device import devices, plugin_info
    props = torch.pjrt.get_device_properties()
    info = plugin_info()
    assert props.name == devices()[0]["kind"] == torch.pjrt.get_device_name()
    assert props.platform_name == info["platform_name"]
    assert props.pjrt_api_version == tuple(info["api_version"])
    assert props.total_memory == torch.pjrt.mem_get_info()[1] > 0
    # The CPU plugin runs bf16 and f16 programs: the probe says so, and autocast uses them.
    assert torch.pjrt.is_bf16_supported() is True
    assert set(torch.pjrt.get_amp_supported_dtype()) == {torch.float16, torch.bfloat16}
    with torch.autocast(DEV, dtype=torch.bfloat16):
        y = torch.ones(4, 4, device=DEV) @ torch.ones(4, 4, device=DEV)
    assert y.dtype == torch.bfloat16


def test_probe_counts_a_cpu_fallback_as_unsupported():
    from torch_pjrt import device_props
    device_props._probed.clear()
    try:
        with torch_pjrt.config.disabled_ops("aten::mm.default", "aten::addmm.default"):
            assert device_props.dtype_supported(torch.bfloat16) is False
    finally:
        device_props._probed.clear()
    assert torch.pjrt.is_bf16_supported() is True


# ------------------------------------------------ rejection-sampled laws --

@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 20.0])
def test_standard_gamma(alpha):
    g = torch._standard_gamma(torch.full((N,), alpha, device=DEV)).cpu()
    assert g.min() > 0
    m, v = moments(g)
    close(m / alpha, 1.0, 0.02)  # Gamma(a, 1): mean = var = a
    close(v / alpha, 1.0, 0.05)
    edge = torch._standard_gamma(torch.tensor([0.0, -1.0, float("nan")], device=DEV)).cpu()
    assert torch.equal(edge, torch._standard_gamma(torch.tensor([0.0, -1.0, float("nan")])))


def test_gamma_distribution_and_dirichlet():
    s = torch.distributions.Gamma(torch.full((N,), 3.0, device=DEV), 2.0).sample().cpu()
    close(moments(s)[0], 1.5, 0.02)
    d = torch._sample_dirichlet(torch.tensor([[1.0, 2.0, 3.0]], device=DEV).expand(N, 3)).cpu()
    assert (d.sum(1) - 1).abs().max() < 1e-5
    assert torch.allclose(d.double().mean(0), torch.tensor([1 / 6, 2 / 6, 3 / 6]).double(),
                          atol=0.005)


@pytest.mark.parametrize("rate", [0.0, 0.5, 4.0, 9.9, 10.0, 60.0])
def test_poisson(rate):
    p = torch.poisson(torch.full((N,), rate, device=DEV)).cpu()
    assert torch.equal(p, p.floor()) and p.min() >= 0
    m, v = moments(p)
    close(m, rate, 0.03 * max(rate, 1))
    close(v, rate, 0.06 * max(rate, 1))
    with pytest.raises(RuntimeError, match="poisson"):
        torch.poisson(torch.tensor([-1.0], device=DEV))


@pytest.mark.parametrize("n,p", [(10, 0.3), (5, 0.9), (1000, 0.5), (40, 0.2), (0, 0.5),
                                 (7, 0.0), (7, 1.0), (300, 0.02)])
def test_binomial(n, p):
    b = torch.binomial(torch.full((N,), float(n), device=DEV),
                       torch.full((N,), p, device=DEV)).cpu()
    assert b.min() >= 0 and b.max() <= n and torch.equal(b, b.floor())
    m, v = moments(b)
    close(m, n * p, 0.02 * max(n * p, 1))
    close(v, n * p * (1 - p), 0.06 * max(n * p * (1 - p), 1))


def test_rrelu_training_slopes_and_gradient():
    x = torch.randn(N, device=DEV, requires_grad=True)
    y = torch.nn.functional.rrelu(x, 0.1, 0.3, training=True)
    y.sum().backward()
    xc, yc, gc = x.detach().cpu(), y.detach().cpu(), x.grad.cpu()
    neg = xc < 0
    slope = yc[neg] / xc[neg]
    assert slope.min() >= 0.1 - 1e-6 and slope.max() <= 0.3 + 1e-6
    close(slope.double().mean().item(), 0.2, 0.005)
    assert torch.equal(yc[~neg], xc[~neg])
    torch.testing.assert_close(gc[neg], slope)  # the gradient is the drawn slope
    ev = torch.nn.functional.rrelu(x.detach(), 0.1, 0.3, training=False).cpu()
    torch.testing.assert_close(ev, torch.nn.functional.leaky_relu(xc, 0.2))


def test_samplers_follow_the_seed():
    lam = torch.full((64,), 30.0, device=DEV)
    out = []
    for _ in range(2):
        torch.pjrt.manual_seed(9)
        out.append((torch.poisson(lam).cpu(), torch._standard_gamma(lam).cpu(),
                    torch.binomial(lam, torch.full_like(lam, 0.4)).cpu()))
    for a, b in zip(*out):
        assert torch.equal(a, b)


@pytest.mark.fallback
def test_a_random_op_run_on_cpu_follows_the_device_seed():
    # complex normal has no lowering: it runs on the CPU with a CPU generator
    # seeded from the pjrt generator, so the pjrt seed still fixes it.
    torch_pjrt.config.fallback = "cpu"
    before = torch_pjrt.metrics()["fallbacks"]
    torch.randn(2, dtype=torch.complex64, device=DEV)
    assert torch_pjrt.metrics()["fallbacks"] > before
    torch.pjrt.manual_seed(4)
    a = torch.randn(6, dtype=torch.complex64, device=DEV).cpu()
    torch.rand(10)
    torch.pjrt.manual_seed(4)
    b = torch.randn(6, dtype=torch.complex64, device=DEV).cpu()
    assert torch.equal(a, b)
    g = torch.Generator(DEV).manual_seed(4)
    c = torch.randn(6, dtype=torch.complex64, device=DEV, generator=g).cpu()
    g.manual_seed(4)
    assert torch.equal(c, torch.randn(6, dtype=torch.complex64, device=DEV, generator=g).cpu())
