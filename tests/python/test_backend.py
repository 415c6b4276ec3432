"""torch.compile(backend="pjrt"): results against eager, per-signature
compile caching, parameter buffer reuse, CPU fallback, errors, logging,
random ops, autocast and integer/bool graphs."""
import logging
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt import _C, backend, compiled, fallback_policy, fx_lower


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def programs(m):
    """Programs obtained from the C runtime: compiled, or found in the memory
    or disk compile cache."""
    return m["compiles"] + m["cache_hits"] + m.get("disk_hits", 0)


def pjrt(fn, **kw):
    return torch.compile(fn, backend="pjrt", **kw)


def test_backend_registered_by_name():
    assert "pjrt" in torch._dynamo.list_backends()
    assert torch._dynamo.lookup_backend("pjrt") is backend.pjrt_backend


def test_simple_function():
    def f(x, y):
        return torch.relu(x * y + 1.5).sum(dim=1) - y.mean()

    x, y = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(pjrt(f)(x, y), f(x, y))


def test_multiple_outputs_and_structure():
    def f(x):
        return {"a": x.exp(), "b": (x.sin(), x.cos() * 2)}, x.shape[0] + 1

    x = torch.randn(3, 2)
    got, eager = pjrt(f)(x), f(x)
    torch.testing.assert_close(got, eager)


def test_recompile_per_shape_and_cache_reuse():
    def f(x):
        return torch.tanh(x) * 3 + x.sum()

    cf = pjrt(f)
    torch_pjrt.metrics_reset()
    x = torch.randn(8, 4)
    torch.testing.assert_close(cf(x), f(x))
    m1 = torch_pjrt.metrics()
    assert programs(m1) >= 1
    x2 = torch.randn(8, 4)
    torch.testing.assert_close(cf(x2), f(x2))
    m2 = torch_pjrt.metrics()
    # Same signature: no new compile, no compile-cache lookup at all.
    assert programs(m2) == programs(m1)
    assert m2["executions"] == m1["executions"] + 1
    for n in (5, 9, 5):
        y = torch.randn(n, 4)
        torch.testing.assert_close(cf(y), f(y))
    m3 = torch_pjrt.metrics()
    # Two new shapes -> two new programs (dynamic or re-traced); 5 reused.
    assert programs(m3) == programs(m1) + 2


def test_param_buffers_not_resent():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    cm = pjrt(model)
    with torch.no_grad():
        x1 = torch.randn(4, 64)
        torch.testing.assert_close(cm(x1), model(x1))
        torch_pjrt.metrics_reset()
        x2 = torch.randn(4, 64)
        torch.testing.assert_close(cm(x2), model(x2))
        m = torch_pjrt.metrics()
    assert m["bytes_h2d"] == x2.numel() * x2.element_size()
    assert m["bytes_d2h"] == 4 * 8 * 4
    # A changed parameter is sent again.
    with torch.no_grad():
        model[2].bias.add_(1.0)
        torch_pjrt.metrics_reset()
        torch.testing.assert_close(cm(x2), model(x2))
        m = torch_pjrt.metrics()
    # Only the changed bias: x2 itself is unchanged, so its buffer is reused.
    assert m["bytes_h2d"] == model[2].bias.nbytes


@torch.library.custom_op("tpj_test::unlowered", mutates_args=())
def _unlowered(x: torch.Tensor) -> torch.Tensor:
    """A test-only op that can never have a lowering: x * 3 - 1 on CPU."""
    return x * 3 - 1


@_unlowered.register_fake
def _(x):
    return torch.empty_like(x)


@torch.library.custom_op("tpj_test::unlowered_backward", mutates_args=())
def _unlowered_backward(g: torch.Tensor) -> torch.Tensor:
    """Its gradient, also without a lowering, so backward graphs fall back too."""
    return g * 3


@_unlowered_backward.register_fake
def _(g):
    return torch.empty_like(g)


_unlowered.register_autograd(lambda ctx, g: _unlowered_backward(g))


def _unsupported_op():
    """An op with no lowering, for the fallback tests."""
    op = torch.ops.tpj_test.unlowered.default
    name = torch_pjrt.target_name(op)
    assert not _C.lower_supported(name)
    return name, op


@pytest.mark.fallback
def test_fallback_warns_once_and_is_correct(monkeypatch):
    name, op = _unsupported_op()
    monkeypatch.setattr(torch_pjrt.config, "fallback", "cpu")
    fallback_policy.forget_warning(name)

    def f(x):
        return op(x.abs() + 1) * 2 + x

    def g(x):
        return op(x) - 1

    x = torch.rand(6, 3)
    torch_pjrt.metrics_reset()
    before = fallback_policy.total()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        torch.testing.assert_close(pjrt(f)(x), f(x))
        torch.testing.assert_close(pjrt(f)(x), f(x))
        torch.testing.assert_close(pjrt(g)(x), g(x))
    msgs = [str(w.message) for w in rec if name in str(w.message)]
    assert len(msgs) == 1, msgs
    assert fallback_policy.total() - before >= 3
    assert torch_pjrt.metrics()["fallbacks"] >= 3


def test_fallback_error_names_op_shapes_dtypes(monkeypatch):
    name, op = _unsupported_op()
    monkeypatch.setattr(torch_pjrt.config, "fallback", "error")

    def f(x):
        return op(x * 2)

    with pytest.raises(Exception) as info:
        pjrt(f)(torch.rand(5, 7))
    err = info.value
    # Dynamo wraps backend errors in BackendCompilerFailed(inner_exception=...).
    err = getattr(err, "inner_exception", err)
    assert isinstance(err, torch_pjrt.UnsupportedOpError), repr(info.value)
    assert name in str(err) and "float32[5, 7]" in str(err)


def test_lowering_error_names_node_and_op():
    class FailingGraph:
        def __init__(self):
            self.g = _C.Graph()

        def __getattr__(self, item):
            return getattr(self.g, item)

        def lower(self, target, args, out_types):
            if target == "aten::sum.dim_IntList":
                raise _C.Error("sum: broken on purpose")
            return self.g.lower(target, args, out_types)

    gm = torch.fx.symbolic_trace(lambda x: torch.ops.aten.sum.dim_IntList(
        torch.ops.aten.permute.default(x, [1, 0]), [0]))
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp
    FakeTensorProp(gm).propagate(torch.randn(2, 3))
    values = fx_lower.meta_values(gm)
    with pytest.raises(_C.Error) as info:
        fx_lower.lower_graph(gm, values, FailingGraph)
    msg = str(info.value)
    assert "node sum_dim_int_list" in msg and "aten::sum.dim_IntList" in msg
    assert "float32[3, 2]" in msg
    assert "broken on purpose" in msg


def test_logging_compile_start_and_end(caplog):
    caplog.set_level(logging.INFO, logger="torch_pjrt")
    x = torch.randn(3, 4)
    torch.testing.assert_close(pjrt(lambda x: x.t().sum(0))(x), x.sum(1))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "torch_pjrt")
    assert "compiling" in text and "ops)" in text
    assert "compiled" in text and " s" in text


def test_random_reproducible_and_varies_between_steps():
    def f(x):
        return F.dropout(x, p=0.5, training=True), torch.rand_like(x)

    cf = pjrt(f)
    x = torch.ones(64, 64)
    torch.manual_seed(123)
    a1, r1 = cf(x)
    a2, r2 = cf(x)
    torch.manual_seed(123)
    b1, s1 = cf(x)
    torch.testing.assert_close(a1, b1)
    torch.testing.assert_close(r1, s1)
    assert not torch.equal(a1, a2) and not torch.equal(r1, r2)
    kept = a1 != 0
    assert 0.4 < kept.float().mean().item() < 0.6
    torch.testing.assert_close(a1[kept], torch.full_like(a1[kept], 2.0))
    assert 0.0 <= r1.min().item() and r1.max().item() < 1.0
    assert 0.45 < r1.mean().item() < 0.55


def test_bf16_autocast_region():
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
    x = torch.randn(8, 16)

    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    with torch.no_grad():
        got, eager = pjrt(f)(x), f(x)
    assert got.dtype == eager.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), eager.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_dtypes(dtype):
    """Against a float64 truth, not CPU eager's bits: XLA may keep x*y+x in
    f32 (excess precision) and sums in another order, so 1-ulp differences
    from eager are expected. Bound: 1 ulp of the result plus one rounding of
    each summed term (what per-op rounding can move)."""
    def f(x, y):
        return (x * y + x).sum(-1), torch.maximum(x, y)

    g = torch.Generator().manual_seed(0)
    eps = torch.finfo(dtype).eps
    for _ in range(20):
        x, y = torch.randn(4, 8, dtype=dtype, generator=g), torch.randn(4, 8, dtype=dtype, generator=g)
        (got_sum, got_max), (cpu_sum, cpu_max) = pjrt(f)(x, y), f(x, y)
        assert got_sum.dtype == dtype and torch.equal(got_max, cpu_max)  # maximum is exact
        terms = ((x.double() * y.double()).to(dtype).double() + x.double()).to(dtype).double()
        want = terms.sum(-1)
        bound = eps * want.abs().clamp(min=torch.finfo(dtype).tiny) + eps / 2 * terms.abs().sum(-1)
        for got in (got_sum, cpu_sum):  # CPU eager meets the same bound
            assert ((got.double() - want).abs() <= bound).all(), (got, want, bound)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_int_and_bool_ops(dtype):
    def f(a, b, m):
        c = (a + b) * 3 - torch.div(a, 3, rounding_mode="floor")
        mask = (a > b) & m | (b == 2)
        return c, mask, torch.where(mask, a, b), mask.sum()

    a = torch.randint(-10, 10, (5, 6), dtype=dtype)
    b = torch.randint(-10, 10, (5, 6), dtype=dtype)
    m = torch.rand(5, 6) > 0.5
    torch.testing.assert_close(pjrt(f)(a, b, m), f(a, b, m))


def test_training_forward_backward():
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
    ref = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
    ref.load_state_dict(model.state_dict())
    x, y = torch.randn(7, 10), torch.randint(0, 3, (7,))
    loss = pjrt(lambda x, y: F.cross_entropy(model(x), y))(x, y)
    loss.backward()
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_input_mutation_applied():
    def f(x, buf):
        buf.add_(x.sum())
        return x * 2

    x, buf = torch.randn(3), torch.zeros(2)
    buf_ref = buf.clone()
    out = pjrt(f)(x, buf)
    torch.testing.assert_close(out, x * 2)
    torch.testing.assert_close(buf, buf_ref + x.sum())


def test_dynamic_shapes_specialised_per_signature():
    def f(x, n: int):
        return (x * n).sum(0) + x.shape[0], x.new_ones(x.shape[1]) * x.shape[0]

    cf = pjrt(f, dynamic=True)
    torch_pjrt.metrics_reset()
    for rows in (3, 5, 7, 5, 3):
        x = torch.randn(rows, 4)
        torch.testing.assert_close(cf(x, 2), f(x, 2))
    m = torch_pjrt.metrics()
    assert programs(m) == 3  # one program per distinct shape


def test_edge_outputs_scalars_aliases_and_empty():
    def f(x, e):
        s = x.sum()
        return s, x, s, e * 2, x.view(-1)[:0], x.dim()

    x, e = torch.randn(2, 3), torch.randn(0, 5)
    got, want = pjrt(f)(x, e), f(x, e)
    torch.testing.assert_close(got, want)
    assert got[0].shape == () and got[3].shape == (0, 5)


@pytest.mark.fallback
def test_fallback_between_device_subgraphs_with_backward(monkeypatch):
    name, op = _unsupported_op()
    monkeypatch.setattr(torch_pjrt.config, "fallback", "cpu")
    w = torch.randn(4, 4, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()

    def f(x, w):
        h = torch.tanh(x @ w)
        return (op(h) * h).sum()

    x = torch.rand(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = pjrt(f)(x, w)
    loss.backward()
    ref = f(x, w_ref)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(w.grad, w_ref.grad)


@pytest.mark.fallback
def test_mutated_input_aliased_by_another_argument():
    def f(buf, view):
        buf.mul_(2)
        return view + 1

    buf = torch.arange(6.0)
    ref = buf.clone()
    cf = pjrt(f)
    for _ in range(2):
        out = cf(buf, buf.detach())
        want = f(ref, ref.detach())
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(buf, ref)


def test_dropout_mask_shared_by_forward_and_backward():
    x = torch.ones(32, 32, requires_grad=True)
    torch.manual_seed(7)
    out = pjrt(lambda x: F.dropout(x * 1.0, p=0.5, training=True))(x)
    out.sum().backward()
    # d(out)/dx is the scaled mask: exactly the forward output for x == 1.
    torch.testing.assert_close(x.grad, out.detach())
    assert 0.3 < (out == 0).float().mean().item() < 0.7


def test_device_tensor_inputs_give_device_results():
    # pjrt-device inputs run on the device and give pjrt results (more in
    # test_device_compile.py); they are never silently moved to the CPU.
    m = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    md = torch.nn.Linear(8, 4).to("pjrt")
    md.load_state_dict(m.state_dict())
    out = pjrt(md)(x.to("pjrt"))
    assert out.device.type == "pjrt"
    torch.testing.assert_close(out.detach().cpu(), m(x).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("on_device", [False, True])
def test_each_graph_is_lowered_once_per_signature(monkeypatch, on_device):
    """The backend's dry run (finding unsupported ops) is the lowering the
    first call compiles; a new signature lowers once more. Forward and
    backward: two graphs, two lowerings, and the results match eager."""
    calls = []
    real = fx_lower.lower_graph

    def counting(gm, values, graph_cls, tolerate_failures=False):
        calls.append(gm)
        return real(gm, values, graph_cls, tolerate_failures)

    monkeypatch.setattr(fx_lower, "lower_graph", counting)
    torch._dynamo.reset()
    dev = "pjrt" if on_device else "cpu"
    w = torch.randn(4, 3, requires_grad=True)
    wd = w.detach().to(dev).requires_grad_()
    f = torch.compile(lambda x, w: torch.tanh(x @ w).sum(), backend="pjrt", dynamic=False)
    x = torch.randn(5, 4)
    for _ in range(3):
        loss = f(x.to(dev), wd)
        loss.backward()
    assert len(calls) == 2 and len(set(map(id, calls))) == 2  # forward, backward
    want = torch.tanh(x @ w).sum()
    want.backward()
    torch.testing.assert_close(loss.cpu(), want.detach())
    torch.testing.assert_close(wd.grad.cpu(), 3 * w.grad)
    f(torch.randn(7, 4).to(dev), wd).backward()  # a new shape: one more lowering each
    assert len(calls) == 4


@pytest.mark.fallback
def test_one_fallback_policy_for_compiled_and_eager(monkeypatch):
    """A compiled partition and an eager pjrt op without a lowering go
    through the same policy: one warning per op name for both paths, every
    run counted by name, and config.fallback = "error" raising
    UnsupportedOpError from each."""
    name = "aten::sin.default"
    names = (name, "aten::sin.out")  # the eager device runs sin as sin.out
    for n in names:
        fallback_policy.forget_warning(n)
    monkeypatch.setattr(torch_pjrt.config, "fallback", "cpu")
    x = torch.rand(4, 3)
    runs = lambda: sum(fallback_policy.counts.get(n, 0) for n in names)  # noqa: E731
    before = runs()
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as rec, torch_pjrt.config.disabled_ops(name):
        warnings.simplefilter("always")
        f = pjrt(lambda t: torch.sin(t) + 1)
        for _ in range(2):
            torch.testing.assert_close(f(x), torch.sin(x) + 1)
            torch.testing.assert_close(torch.sin(x.to("pjrt")).cpu(), torch.sin(x))
    msgs = [str(w.message) for w in rec if "aten::sin." in str(w.message)]
    assert len(msgs) == len({m.split(" is not")[0] for m in msgs}) >= 1, msgs
    assert all("(fallback)" in m for m in msgs), msgs
    assert runs() - before == 4
    monkeypatch.setattr(torch_pjrt.config, "fallback", "error")
    with torch_pjrt.config.disabled_ops(name):
        with pytest.raises(torch_pjrt.UnsupportedOpError, match="cannot run on the pjrt device"):
            torch.sin(x.to("pjrt"))
        torch._dynamo.reset()
        with pytest.raises(Exception, match="is not supported on the device"):
            pjrt(lambda t: torch.sin(t) - 1)(x)
    torch._dynamo.reset()
