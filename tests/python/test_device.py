"""The eager "pjrt" device (PrivateUse1): factories, transfers, views and
in-place ops, autograd, optimizers, models, fallback and multi-device, each
compared with PyTorch eager on CPU."""
import io
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import torch_pjrt
from torch_pjrt import device as pjrt_device

pjrt_device.ensure_registered()
DEV = "pjrt"

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool]


def rand(*shape, dtype=torch.float32):
    if dtype == torch.bool:
        return torch.rand(*shape) > 0.5
    if dtype.is_floating_point:
        return torch.randn(*shape).to(dtype)
    return torch.randint(0, 100, shape).to(dtype)


# ------------------------------------------------------------- basics --

def test_device_module():
    assert torch.pjrt.is_available()
    assert torch.pjrt.device_count() >= 1
    assert torch.pjrt.current_device() == 0
    torch.pjrt.synchronize()


def test_factories():
    x = torch.ones(3, device=DEV)
    assert x.device.type == DEV and x.device.index == 0
    assert (x + 1).cpu().tolist() == [2.0, 2.0, 2.0]
    assert torch.zeros(2, 3, device=DEV).cpu().equal(torch.zeros(2, 3))
    assert torch.full((2,), 7, device=DEV).cpu().equal(torch.full((2,), 7))
    assert torch.arange(10, device=DEV).cpu().equal(torch.arange(10))
    assert torch.arange(1, 4, 0.5, device=DEV).cpu().equal(torch.arange(1, 4, 0.5))
    assert torch.eye(3, device=DEV).cpu().equal(torch.eye(3))
    r = torch.randn(8, 128, device=DEV)
    assert r.shape == (8, 128) and r.device.type == DEV
    assert abs(r.cpu().mean().item()) < 0.2 and 0.8 < r.cpu().std().item() < 1.2
    u = torch.rand(1000, device=DEV).cpu()
    assert 0 <= u.min().item() and u.max().item() < 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip(dtype):
    a = rand(3, 4, dtype=dtype)
    b = a.to(DEV)
    assert b.dtype == dtype and b.device.type == DEV
    assert b.cpu().equal(a)
    assert b.t().cpu().equal(a.t())          # strided read
    assert b[1:, ::2].cpu().equal(a[1:, ::2])


def test_item_print_and_empty():
    a = torch.tensor([[1.5, -2.0], [3.0, 4.25]])
    b = a.to(DEV)
    assert b.sum().item() == pytest.approx(a.sum().item())
    assert b[1, 1].item() == 4.25
    assert "pjrt:0" in str(b) and "4.2500" in str(b)
    e = torch.empty(0, 3, device=DEV)
    assert e.cpu().shape == (0, 3)


# ----------------------------------------------------------- compute --

def test_elementwise_matmul_reduction():
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    A, B = a.to(DEV), b.to(DEV)
    close = torch.testing.assert_close
    close((A + B * 2 - 1).cpu(), a + b * 2 - 1)
    close(torch.tanh(A).cpu(), torch.tanh(a))
    close((A @ B.t()).cpu(), a @ b.t())
    close(A.sum(1).cpu(), a.sum(1))
    close(A.mean().cpu(), a.mean())
    close(A.max(dim=0).values.cpu(), a.max(dim=0).values)
    close(A.argmax(1).cpu(), a.argmax(1))
    close(torch.softmax(A, -1).cpu(), torch.softmax(a, -1))
    close((A > 0).cpu(), a > 0)
    close((A.int() // 3).cpu(), a.int() // 3)
    close((A * torch.tensor(3.0)).cpu(), a * 3)     # 0-dim CPU tensors are allowed


def test_views_and_inplace():
    base = torch.zeros(3, 4, device=DEV)
    base[1].fill_(7)                        # write through a row view
    base[:, 2].add_(1)                      # write through a strided column view
    v = base.view(12)
    v[0] = 5                                # index_put / copy through a flat view
    ref = torch.zeros(3, 4)
    ref[1].fill_(7)
    ref[:, 2].add_(1)
    ref.view(12)[0] = 5
    assert base.cpu().equal(ref)
    t = base.t()
    t.mul_(2)
    assert base.cpu().equal(ref * 2)
    x = torch.arange(6.0, device=DEV)
    x[1:].copy_(x[:-1].clone())
    assert x.cpu().tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]


def test_out_variants():
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    out = torch.empty(4, 5, device=DEV)
    r = torch.add(a.to(DEV), b.to(DEV), alpha=2, out=out)
    assert r is out
    torch.testing.assert_close(out.cpu(), a + 2 * b)
    s = torch.empty(0, device=DEV)
    torch.sum(a.to(DEV), 1, out=s)          # resized by the op
    torch.testing.assert_close(s.cpu(), a.sum(1))
    big = torch.zeros(2, 4, 5, device=DEV)
    torch.mul(a.to(DEV), 3, out=big[1])     # out= into a view
    torch.testing.assert_close(big.cpu()[1], a * 3)
    assert big.cpu()[0].abs().sum().item() == 0


def test_mixed_devices_error():
    a = torch.randn(3, device=DEV)
    with pytest.raises(RuntimeError, match=r"Expected all tensors to be on the same device, but "
                       r"found at least two devices, pjrt:0 and cpu!"):
        a + torch.randn(3)


# ---------------------------------------------------------- autograd --

def test_autograd():
    x, w = torch.randn(4, 5), torch.randn(5, 3, requires_grad=True)
    W = w.detach().to(DEV).requires_grad_()
    loss = (x @ w).relu().pow(2).mean()
    loss.backward()
    L = (x.to(DEV) @ W).relu().pow(2).mean()
    L.backward()
    torch.testing.assert_close(L.cpu(), loss)
    assert W.grad.device.type == DEV
    torch.testing.assert_close(W.grad.cpu(), w.grad)


@pytest.mark.parametrize("opt", ["SGD", "Adam", "AdamW"])
def test_optimizers_foreach(opt):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    m2 = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    m2.load_state_dict(m.state_dict())
    m2.to(DEV)
    cls = getattr(torch.optim, opt)
    kw = {"momentum": 0.9} if opt == "SGD" else {}
    o, o2 = cls(m.parameters(), lr=0.05, foreach=True, **kw), cls(m2.parameters(), lr=0.05, foreach=True, **kw)
    x, y = torch.randn(5, 6), torch.randn(5, 2)
    for _ in range(3):
        for mm, oo, xx, yy in ((m, o, x, y), (m2, o2, x.to(DEV), y.to(DEV))):
            oo.zero_grad()
            torch.nn.functional.mse_loss(mm(xx), yy).backward()
            oo.step()
    for p, p2 in zip(m.parameters(), m2.parameters()):
        torch.testing.assert_close(p2.detach().cpu(), p.detach(), rtol=1e-4, atol=1e-5)


def test_state_dict_save_load():
    m = torch.nn.Linear(4, 3).to(DEV)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, map_location="cpu")
    m2 = torch.nn.Linear(4, 3)
    m2.load_state_dict(sd)
    torch.testing.assert_close(m2.weight, m.weight.detach().cpu())
    m3 = torch.nn.Linear(4, 3).to(DEV)
    m3.load_state_dict(m.state_dict())
    torch.testing.assert_close(m3.bias.detach().cpu(), m.bias.detach().cpu())


# ------------------------------------------------------------ models --

def _train(model_fn, batch_fn, loss_fn, steps=3, opt=torch.optim.AdamW):
    torch.manual_seed(0)
    ref = model_fn()
    dev = model_fn()
    dev.load_state_dict(ref.state_dict())
    dev.to(DEV)
    o1 = opt(ref.parameters(), lr=1e-2)
    o2 = opt(dev.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        inputs = batch_fn()
        pair = []
        for m, o, xs in ((ref, o1, inputs), (dev, o2, [t.to(DEV) for t in inputs])):
            o.zero_grad()
            loss = loss_fn(m, *xs)
            loss.backward()
            o.step()
            pair.append(loss.item())
        losses.append(pair)
    for a, b in losses:
        assert b == pytest.approx(a, rel=1e-3, abs=1e-4)
    for p, p2 in zip(ref.parameters(), dev.parameters()):
        torch.testing.assert_close(p2.detach().cpu(), p.detach(), rtol=1e-3, atol=1e-4)
    for b, b2 in zip(ref.buffers(), dev.buffers()):   # e.g. batch-norm running stats
        torch.testing.assert_close(b2.cpu(), b, rtol=1e-3, atol=1e-4)


def test_mlp_trains():
    from torch_pjrt.models import MLP
    _train(MLP, lambda: [torch.randn(8, 32), torch.randint(0, 10, (8,))],
           lambda m, x, y: torch.nn.functional.cross_entropy(m(x), y))


def test_cnn_trains():
    # SGD: conv biases in front of batch norm have rounding-noise gradients,
    # which Adam's normalization would amplify into visible differences.
    from torch_pjrt.models import CNN
    _train(CNN, lambda: [torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))],
           lambda m, x, y: torch.nn.functional.cross_entropy(m(x), y), opt=torch.optim.SGD)


def test_gpt_trains():
    from torch_pjrt.models import GPT, char_batch
    _train(GPT, lambda: list(char_batch(2)), lambda m, x, y: m(x, y)[1], steps=2)


# ---------------------------------------------------------- fallback --

UNLOWERED = [("aten::special_i1e", torch.special.i1e), ("aten::special_i0e", torch.special.i0e),
             ("aten::special_ndtri", torch.special.ndtri), ("aten::lgamma", torch.lgamma),
             ("aten::digamma", torch.digamma),
             # special_entr runs on the device now (torch._decomp, eager_decomp.py).
             ("aten::special_airy_ai", torch.special.airy_ai)]


@pytest.mark.fallback
def test_fallback_warns_counts_and_errors():
    cands = [(n, f) for n, f in UNLOWERED if not torch_pjrt._C.lower_supported(n + ".default")]
    if not cands:
        pytest.skip("every candidate op has a lowering now")
    name, fn = cands[0]
    a = torch.rand(6) + 0.1
    A = a.to(DEV)
    torch_pjrt.metrics_reset()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = fn(A)                            # no lowering -> runs on CPU
    torch.testing.assert_close(r.cpu(), fn(a))
    assert r.device.type == DEV
    assert torch_pjrt.metrics()["fallbacks"] >= 1
    assert any(name in str(x.message) for x in w)
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    try:
        with pytest.raises(RuntimeError, match=name):
            fn(A)
    finally:
        torch_pjrt.config.fallback = old


def test_signature_cache_reuses_programs():
    x = torch.randn(5, 7, device=DEV)
    (x * 3 + 1).cpu()
    before = pjrt_device.stats()
    for _ in range(3):
        (x * 3 + 1).cpu()
    after = pjrt_device.stats()
    assert after["programs"] == before["programs"]
    assert after["signature_hits"] >= before["signature_hits"] + 6


# ------------------------------------------------------- multi-device --

def test_cross_device_copy_subprocess(subprocess_env):
    code = textwrap.dedent("""
        import torch, torch_pjrt
        torch_pjrt.set_client_options(cpu_device_count=2)
        from torch_pjrt import device
        device.ensure_registered()
        assert torch.pjrt.device_count() == 2, torch.pjrt.device_count()
        a = torch.randn(4, 3)
        x = a.to("pjrt:0")
        y = x.to("pjrt:1")
        assert y.device == torch.device("pjrt:1")
        z = (y * 2).cpu()
        torch.testing.assert_close(z, a * 2)
        try:
            x + y
        except RuntimeError as e:
            assert "pjrt:0 and pjrt:1" in str(e), e
        else:
            raise AssertionError("mixing pjrt:0 and pjrt:1 did not raise")
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


def test_ops_run_on_their_device_subprocess(subprocess_env):
    # Ops on pjrt:1 tensors execute on device 1: results live there and no
    # buffer is moved between devices (only the explicit .to() copies one).
    code = textwrap.dedent("""
        import torch, torch_pjrt
        torch_pjrt.set_client_options(cpu_device_count=2)
        from torch_pjrt import device
        device.ensure_registered()
        a, b = torch.randn(4, 3), torch.randn(4, 3)
        x, y = a.to("pjrt:1"), b.to("pjrt:1")
        before = device.stats()
        z = (x * 2 + y).relu()
        z.add_(1.5)
        w = z.sum(0)
        after = device.stats()
        assert after["cross_device_copies"] == before["cross_device_copies"], (before, after)
        assert after["ops"] >= before["ops"] + 5, (before, after)
        for t in (z, w):
            # A result's storage device is its buffer's device (wrap_buffer).
            assert t.untyped_storage().device == torch.device("pjrt:1"), t.device
        torch.testing.assert_close(w.cpu(), ((a * 2 + b).relu() + 1.5).sum(0))
        moved = z.to("pjrt:0")
        assert device.stats()["cross_device_copies"] == after["cross_device_copies"] + 1
        torch.testing.assert_close(moved.cpu(), (a * 2 + b).relu() + 1.5)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


def test_rename_device_subprocess(subprocess_env):
    # `import torch_pjrt` registers the device; TORCH_PJRT_DEVICE_NAME names it.
    subprocess_env = dict(subprocess_env, TORCH_PJRT_DEVICE_NAME="tpu")
    code = textwrap.dedent("""
        import torch, torch_pjrt
        torch_pjrt.rename_device("tpu")  # the same name again is a no-op
        x = torch.ones(2, device="tpu") + 1
        assert x.device.type == "tpu" and x.is_tpu, x.device
        assert torch.tpu.device_count() >= 1
        print(x.cpu().tolist())
    """)
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[2.0, 2.0]" in r.stdout


# ------------------------------------------ data-dependent output shapes --

def test_data_dependent_shapes_run_on_device():
    """nonzero, masked_select, boolean-mask get/set, masked_scatter and their
    gradients: a synchronizing count, then device programs (no CPU fallback)."""
    a = torch.randn(5, 7)
    m = a > 0.2
    A, M = a.to(DEV), m.to(DEV)
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    try:
        torch.testing.assert_close(torch.nonzero(M).cpu(), torch.nonzero(m))
        torch.testing.assert_close(torch.nonzero(A[0] > 9).cpu(), torch.nonzero(a[0] > 9))
        torch.testing.assert_close(torch.masked_select(A, M).cpu(), torch.masked_select(a, m))
        torch.testing.assert_close(A[M].cpu(), a[m])
        torch.testing.assert_close(A[M[:, 0]].cpu(), a[m[:, 0]])  # a row mask
        b, B = a.clone(), A.clone()
        b[m] = -1.0
        B[M] = -1.0
        torch.testing.assert_close(B.cpu(), b)
        src = torch.arange(35.0)
        torch.testing.assert_close(a.masked_scatter(m, src),
                                   A.masked_scatter(M, src.to(DEV)).cpu())
        assert torch.equal(A, A.clone()) and not torch.equal(A, A + 1)
        g = A.clone().requires_grad_()
        (g[M] * 3).sum().backward()
        torch.testing.assert_close(g.grad.cpu(), m.float() * 3)
    finally:
        torch_pjrt.config.fallback = old


def test_print_does_not_fall_back():
    """print() formats through masked_select: no warning, no fallback."""
    b = torch.tensor([[1.5, -2.0, float("inf")], [3.0, 0.0, 4.25]]).to(DEV)
    torch_pjrt.metrics_reset()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        text = str(b)
    assert "4.2500" in text and "inf" in text
    assert torch_pjrt.metrics()["fallbacks"] == 0
    assert not [x for x in w if "torch_pjrt" in str(x.message)], [str(x.message) for x in w]


def test_decomposed_ops_run_on_device():
    """Ops without a lowering but with a torch._decomp decomposition run as
    device ops (logaddexp.out, isin, special_entr) instead of on the CPU."""
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    torch_pjrt.metrics_reset()
    try:
        torch.testing.assert_close(torch.logaddexp(a.to(DEV), b.to(DEV)).cpu(),
                                   torch.logaddexp(a, b))
        torch.testing.assert_close(torch.special.entr(a.abs().to(DEV)).cpu(),
                                   torch.special.entr(a.abs()))
        i, j = torch.tensor([1, 2, 3, 7]), torch.tensor([2, 7, 9])
        torch.testing.assert_close(torch.isin(i.to(DEV), j.to(DEV)).cpu(), torch.isin(i, j))
    finally:
        torch_pjrt.config.fallback = old
    assert torch_pjrt.metrics()["fallbacks"] == 0


def test_polynomials_unique_searchsorted_on_device():
    """Python device kernels (eager_decomp.py) against CPU, with fallback = "error"."""
    x = torch.cat([torch.linspace(-1.5, 1.5, 13), torch.tensor([1.0, -1.0, 0.0, 0.3])])
    n = torch.tensor([-1, 0, 1, 2, 3, 4, 5, 7, 9, 12, 3, 2, 1, 9, 4, 3, 10]).float()
    S = torch.special
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    try:
        for f in (S.chebyshev_polynomial_t, S.chebyshev_polynomial_u, S.chebyshev_polynomial_w,
                  S.shifted_chebyshev_polynomial_v, S.legendre_polynomial_p,
                  S.laguerre_polynomial_l, S.hermite_polynomial_h, S.hermite_polynomial_he):
            torch.testing.assert_close(f(x.to(DEV), n.to(DEV)).cpu(), f(x, n), equal_nan=True)
        t = torch.tensor([[3, 1, 3], [2, 1, 7]])
        for got, want in zip(torch.unique(t.to(DEV), return_inverse=True, return_counts=True),
                             torch.unique(t, return_inverse=True, return_counts=True)):
            torch.testing.assert_close(got.cpu(), want)
        seq, v = torch.tensor([1.0, 3.0, 5.0, 7.0]), torch.tensor([[0.0, 3.0], [6.0, 9.0]])
        for right in (False, True):
            torch.testing.assert_close(
                torch.searchsorted(seq.to(DEV), v.to(DEV), right=right).cpu(),
                torch.searchsorted(seq, v, right=right))
    finally:
        torch_pjrt.config.fallback = old


def _ops_of(fn):
    torch.pjrt.synchronize()
    before = pjrt_device.stats()["ops"]
    out = fn()
    torch.pjrt.synchronize()
    return out, pjrt_device.stats()["ops"] - before


def test_layer_norm_and_sdpa_run_as_one_op():
    """native_layer_norm and scaled_dot_product_attention (flash path where its
    contract holds, else the math composite) each run as one lowered device op;
    forward and backward match CPU eager."""
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 5, 8), torch.randn(8), torch.randn(8)
    xd, wd, bd = (t.to(DEV).requires_grad_() for t in (x, w, b))
    ln, n = _ops_of(lambda: torch.nn.functional.layer_norm(xd, (8,), wd, bd, 1e-5))
    assert n == 1
    for t in (x, w, b):
        t.requires_grad_()
    want = torch.nn.functional.layer_norm(x, (8,), w, b, 1e-5)
    torch.testing.assert_close(ln.cpu(), want)
    g = torch.randn(2, 5, 8)
    ln.backward(g.to(DEV))
    want.backward(g)
    for got, ref in ((xd, x), (wd, w), (bd, b)):
        torch.testing.assert_close(got.grad.cpu(), ref.grad, atol=1e-5, rtol=1e-4)
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    mask = torch.randn(6, 6)
    bmask = torch.rand(6, 6) > 0.3
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for kw, one_op in (({}, True), ({"is_causal": True}, True), ({"attn_mask": mask}, True),
                       ({"attn_mask": bmask}, False), ({"scale": 0.7}, True)):
        qd, kd, vd = (t.to(DEV).requires_grad_() for t in (q, k, v))
        kwd = {n_: (a.to(DEV) if isinstance(a, torch.Tensor) else a) for n_, a in kw.items()}
        out, n = _ops_of(lambda: sdpa(qd, kd, vd, **kwd))
        assert (n == 1) == one_op, (kw, n)
        qc, kc, vc = (t.clone().requires_grad_() for t in (q, k, v))
        want = sdpa(qc, kc, vc, **kw)
        torch.testing.assert_close(out.cpu(), want, atol=1e-5, rtol=1e-4)
        go = torch.randn_like(want)
        out.backward(go.to(DEV))
        want.backward(go)
        for got, ref in ((qd, qc), (kd, kc), (vd, vc)):
            torch.testing.assert_close(got.grad.cpu(), ref.grad, atol=1e-5, rtol=1e-4)


def test_sdpa_mask_that_needs_grad_takes_the_math_path():
    """A float mask that requires grad (T5's learned position bias) cannot take
    the flash op, which is not differentiable in its mask: the mask gradient
    must match CPU eager."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    bias = torch.randn(1, 3, 6, 6)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    qd, kd, vd, bd = (t.to(DEV).requires_grad_() for t in (q, k, v, bias))
    qc, kc, vc, bc = (t.clone().requires_grad_() for t in (q, k, v, bias))
    out, want = sdpa(qd, kd, vd, attn_mask=bd), sdpa(qc, kc, vc, attn_mask=bc)
    torch.testing.assert_close(out.cpu(), want, atol=1e-5, rtol=1e-4)
    go = torch.randn_like(want)
    out.backward(go.to(DEV))
    want.backward(go)
    for got, ref in ((qd, qc), (kd, kc), (vd, vc), (bd, bc)):
        torch.testing.assert_close(got.grad.cpu(), ref.grad, atol=1e-5, rtol=1e-4)


def test_eager_init_refuses_what_is_not_a_client():
    """_eager.init reads the client through its handle: anything else is an
    error, not a crash."""
    from torch_pjrt import _eager
    with pytest.raises(AttributeError, match="handle"):
        _eager.init(object())
    assert torch_pjrt.default_client().handle != 0


def test_storage_resize_in_place():
    """untyped_storage().resize_(n) keeps the StorageImpl and its first
    min(old, new) bytes; resize_(0) frees and a later resize_ re-allocates, as
    FSDP2 does with its unsharded parameters."""
    x = torch.arange(16.0, device=DEV)
    s = x.untyped_storage()
    n = s.nbytes()
    s.resize_(n + 32)
    assert s.nbytes() == n + 32 and x.cpu().equal(torch.arange(16.0))
    before = torch.pjrt.memory_allocated()
    s.resize_(0)
    assert s.nbytes() == 0 and torch.pjrt.memory_allocated() < before
    s.resize_(n)
    x.copy_(torch.full((16,), 3.0))
    assert x.cpu().equal(torch.full((16,), 3.0))
    s.resize_(n // 2)
    assert torch.empty(0, device=DEV).set_(s, 0, (8,), (1,)).cpu().equal(torch.full((8,), 3.0))


def test_pin_memory_is_pinned():
    """pin_memory() gives host memory that is_pinned() knows (DDP's reducer
    asserts it for its staging copies); plain CPU tensors are not pinned."""
    p = torch.arange(6.0).pin_memory()
    assert p.is_pinned() and not torch.arange(6.0).is_pinned()
    d = p.to(DEV, non_blocking=True)
    assert d.cpu().equal(torch.arange(6.0))
    back = torch.empty(6, pin_memory=True)
    assert back.is_pinned()
    back.copy_(d, non_blocking=True)
    torch.pjrt.synchronize()
    assert back.equal(torch.arange(6.0))
