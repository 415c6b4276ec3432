"""Reduce-family lowerings (reductions, scans, softmax, norms, losses, matmul,
attention) run one op at a time through torch_pjrt.run_aten and compared with
PyTorch eager on CPU."""
import math

import pytest
import torch

import reference
import torch_pjrt

aten = torch.ops.aten


def _tol(dtype):
    if dtype in (torch.bfloat16, torch.float16):
        return dict(atol=2e-2, rtol=2e-2)
    return dict(atol=1e-5, rtol=1e-5)


def check(op, *args, skip_outputs=(), tol=None, check_dtype=True, **kwargs):
    want = reference.eager(op, *args, **kwargs)
    got = torch_pjrt.run_aten(op, *args, **kwargs)
    if isinstance(want, torch.Tensor):
        want, got = (want,), (got,)
    assert len(want) == len(got)
    for i, (w, g) in enumerate(zip(want, got)):
        if i in skip_outputs or w is None:
            continue
        assert g is not None, f"output {i} missing"
        t = tol or _tol(w.dtype)
        torch.testing.assert_close(g, w, equal_nan=True, check_dtype=check_dtype, **t)


def rand(*shape, dtype=torch.float32):
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if not dtype.is_floating_point:
        return torch.randint(-5, 6, shape, dtype=dtype)
    return torch.randn(shape).to(dtype)


# bf16 variants are slower to compile than they are informative: run with the
# full suite (pytest -m full or no marker filter).
BF16 = pytest.param(torch.bfloat16, marks=pytest.mark.full)
DTYPES = [torch.float32, BF16, torch.int64, torch.bool]
FLOATS = [torch.float32, BF16]


# ---------------------------------------------------------------- reductions --

@pytest.mark.parametrize("dtype", DTYPES)
def test_sum(dtype):
    x = rand(3, 4, 5, dtype=dtype)
    check(aten.sum.default, x)
    check(aten.sum.dim_IntList, x, [1])
    check(aten.sum.dim_IntList, x, [-1, 0], True)
    check(aten.sum.dim_IntList, x, None)
    check(aten.sum.dim_IntList, x, [])
    check(aten.sum.default, rand(dtype=dtype))


def test_sum_dtype_and_empty():
    x = rand(3, 4)
    check(aten.sum.dim_IntList, x, [0], dtype=torch.float64)
    check(aten.sum.default, rand(4, dtype=torch.int64), dtype=torch.float32)
    check(aten.sum.dim_IntList, torch.zeros(0, 3), [0])
    check(aten.sum.default, torch.zeros(0, 3))


@pytest.mark.parametrize("dtype", FLOATS)
def test_mean(dtype):
    x = rand(3, 4, 5, dtype=dtype)
    check(aten.mean.default, x)
    check(aten.mean.dim, x, [0, 2], True)
    check(aten.mean.dim, x, [-1])
    check(aten.mean.dim, torch.zeros(0, 3), [0])  # nan
    check(aten.mean.dim, rand(3, 4, dtype=torch.int64), [1], dtype=torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_amax_amin(dtype):
    x = rand(4, 6, dtype=dtype)
    for op in (aten.amax.default, aten.amin.default):
        check(op, x)
        check(op, x, [1], True)
        check(op, x, [0, -1])
    check(aten.max.default, x)
    check(aten.min.default, x)


def test_amax_nan():
    x = torch.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, -float("inf")]])
    for op in (aten.amax.default, aten.amin.default):
        check(op, x, [1])
    check(aten.max.default, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
@pytest.mark.parametrize("is_max", [True, False])
def test_max_min_dim(dtype, is_max):
    op = aten.max.dim if is_max else aten.min.dim
    x = rand(5, 7, dtype=dtype)
    check(op, x, 1)
    check(op, x, 0, True)
    check(op, x, -1)
    check(op, rand(dtype=dtype), 0)


def test_max_dim_ties_and_nan():
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0], [float("nan"), 1.0, float("nan"), 9.0],
                      [2.0, 2.0, 2.0, 2.0], [-float("inf")] * 4])
    for op in (aten.max.dim, aten.min.dim):
        check(op, x, 1)
    for op in (aten.argmax.default, aten.argmin.default):
        check(op, x, 1)
        check(op, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_argmax_argmin(dtype):
    x = rand(4, 5, 3, dtype=dtype)
    for op in (aten.argmax.default, aten.argmin.default):
        check(op, x)
        check(op, x, 1)
        check(op, x, -1, True)
        check(op, x, None, True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_var_std(dtype):
    x = rand(4, 6, 3, dtype=dtype)
    for corr in (None, 0, 1, 2):
        check(aten.var.correction, x, [1], correction=corr)
        check(aten.var.correction, x, None, correction=corr, keepdim=True)
        check(aten.std.correction, x, [0, 2], correction=corr)
        check(aten.var_mean.correction, x, [-1], correction=corr, keepdim=True)
    check(aten.var.correction, rand(1, 3), [0])  # N - correction = 0 -> nan/inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_all(dtype):
    x = rand(3, 5, dtype=dtype)
    if dtype.is_floating_point:
        x[0] = 0
    for op in ("any", "all"):
        o = getattr(aten, op)
        check(o.default, x)
        check(o.dim, x, 1)
        check(o.dim, x, 0, True)
        check(o.dims, x, [0, 1])
        check(o.dims, x, None)
    check(aten.all.default, torch.zeros(0, dtype=torch.bool))
    check(aten.any.default, torch.zeros(0, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
def test_prod(dtype):
    x = rand(3, 4, dtype=dtype)
    check(aten.prod.default, x)
    check(aten.prod.dim_int, x, 1)
    check(aten.prod.dim_int, x, 0, True)


def test_logsumexp():
    x = rand(3, 5)
    check(aten.logsumexp.default, x, [1])
    check(aten.logsumexp.default, x, [0, 1], True)
    y = torch.tensor([[-math.inf, -math.inf], [math.inf, 1.0], [1000.0, 1000.0]])
    check(aten.logsumexp.default, y, [1])
    check(aten.logsumexp.default, rand(3, 4, dtype=torch.int64), [1])
    check(aten.logsumexp.default, rand(3, 4, dtype=torch.bfloat16), [1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum_cumprod(dtype):
    x = rand(4, 6, dtype=dtype)
    check(aten.cumsum.default, x, 1)
    check(aten.cumsum.default, x, 0)
    check(aten.cumprod.default, x, -1)
    check(aten.cumsum.default, x, 1, dtype=torch.float32)


def test_cumsum_int_exact():
    x = torch.full((100,), 2**40, dtype=torch.int64) + torch.arange(100)
    check(aten.cumsum.default, x, 0)


@pytest.mark.parametrize("ord", [2, 1, 0, 3, 0.5, math.inf, -math.inf])
def test_vector_norm(ord):
    x = rand(4, 5)
    x[0, 0] = 0
    check(aten.linalg_vector_norm.default, x, ord)
    check(aten.linalg_vector_norm.default, x, ord, [1], True)
    check(aten.linalg_vector_norm.default, x.bfloat16(), ord, [0])


# ------------------------------------------------------------------- softmax --

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("log", [False, True])
def test_softmax(dtype, log):
    op = aten._log_softmax.default if log else aten._softmax.default
    x = rand(3, 4, 5, dtype=dtype) * 10
    check(op, x, -1, False)
    check(op, x, 0, False)
    y = torch.tensor([[-math.inf, -math.inf, -math.inf], [-math.inf, 0.0, 1.0]])
    check(op, y, 1, False)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward(dtype, log):
    fwd = aten._log_softmax.default if log else aten._softmax.default
    bwd = aten._log_softmax_backward_data.default if log else aten._softmax_backward_data.default
    x = rand(4, 7, dtype=dtype)
    y = fwd(x, 1, False)
    go = rand(4, 7, dtype=dtype)
    check(bwd, go, y, 1, dtype)
    check(bwd, go, y, 0, dtype)


# ------------------------------------------------------------------ norms --

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(dtype, affine):
    x = rand(2, 3, 8, dtype=dtype)
    w = rand(3, 8, dtype=dtype) if affine else None
    b = rand(3, 8, dtype=dtype) if affine else None
    check(aten.native_layer_norm.default, x, [3, 8], w, b, 1e-5)
    check(aten.native_layer_norm.default, x, [8], w[0] if affine else None,
          b[0] if affine else None, 1e-5)
    out, mean, rstd = aten.native_layer_norm.default(x, [3, 8], w, b, 1e-5)
    go = rand(2, 3, 8, dtype=dtype)
    for mask in ([True, True, True], [True, False, False], [False, True, True]):
        m = mask if affine else [mask[0], False, False]
        if not any(m):
            continue
        check(aten.native_layer_norm_backward.default, go, x, [3, 8], mean, rstd, w, b, m,
              tol=dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else None)


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(affine):
    x = rand(2, 6, 4, 5)
    w = rand(6) if affine else None
    b = rand(6) if affine else None
    check(aten.native_group_norm.default, x, w, b, 2, 6, 20, 3, 1e-5)
    out, mean, rstd = aten.native_group_norm.default(x, w, b, 2, 6, 20, 3, 1e-5)
    go = rand(2, 6, 4, 5)
    mask = [True, affine, affine]
    check(aten.native_group_norm_backward.default, go, x, mean, rstd, w, 2, 6, 20, 3, mask,
          tol=dict(atol=1e-4, rtol=1e-4))
    check(aten.native_group_norm.default, x.bfloat16(), None, None, 2, 6, 20, 2, 1e-5)


def _bn_inputs(dtype=torch.float32):
    x = rand(4, 3, 5, 2, dtype=dtype)
    w, b = rand(3), rand(3)
    rm, rv = rand(3), torch.rand(3) + 0.5
    return x, w, b, rm, rv


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(training):
    x, w, b, rm, rv = _bn_inputs()
    check(aten.native_batch_norm.default, x, w, b, rm.clone(), rv.clone(), training, 0.1, 1e-5)
    check(aten._native_batch_norm_legit.default, x, w, b, rm.clone(), rv.clone(), training,
          0.1, 1e-5)
    check(aten._native_batch_norm_legit_functional.default, x, w, b, rm, rv, training, 0.1,
          1e-5)
    check(aten._native_batch_norm_legit_no_training.default, x, w, b, rm, rv, 0.1, 1e-5)
    check(aten._native_batch_norm_legit.no_stats, x, None, None, True, 0.1, 1e-5)
    check(aten.native_batch_norm.default, x[:, :, :, 0], None, b, None, None, True, 0.1, 1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_backward(train):
    x, w, b, rm, rv = _bn_inputs()
    _, sm, si = aten.native_batch_norm.default(x, w, b, rm.clone(), rv.clone(), True, 0.1, 1e-5)
    go = rand(*x.shape)
    check(aten.native_batch_norm_backward.default, go, x, w, rm, rv, sm, si, train, 1e-5,
          [True, True, True], tol=dict(atol=1e-4, rtol=1e-4))
    check(aten.native_batch_norm_backward.default, go, x, None, rm, rv, sm, si, train, 1e-5,
          [True, False, False], tol=dict(atol=1e-4, rtol=1e-4))


def test_batch_norm_bf16():
    # the meta kernel types save_mean/save_invstd bf16, the CPU kernel f32; the
    # lowering must follow the fake-tensor (meta) types
    x, w, b, rm, rv = _bn_inputs(torch.bfloat16)
    check(aten.native_batch_norm.default, x, w, b, rm, rv, True, 0.1, 1e-5, check_dtype=False,
          tol=dict(atol=2e-2, rtol=2e-2))


# ----------------------------------------------------------------- losses --

@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(reduction, weighted):
    x = torch.log_softmax(rand(6, 5), 1)
    t = torch.tensor([0, 4, 2, -100, 1, 2])
    w = torch.rand(5) if weighted else None
    check(aten.nll_loss_forward.default, x, t, w, reduction, -100)
    check(aten.nll_loss_forward.default, x, t.clamp(min=0), w, reduction, 2)
    out, tw = aten.nll_loss_forward.default(x, t, w, reduction, -100)
    go = rand(6) if reduction == 0 else rand()
    check(aten.nll_loss_backward.default, go, x, t, w, reduction, -100, tw)
    x1, t1 = x[0], t[1]
    check(aten.nll_loss_forward.default, x1, t1, w, reduction, -100)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_nll_loss2d(reduction):
    x = torch.log_softmax(rand(2, 4, 3, 5), 1)
    t = torch.randint(0, 4, (2, 3, 5))
    t[0, 0, 0] = -100
    w = torch.rand(4)
    check(aten.nll_loss2d_forward.default, x, t, w, reduction, -100)
    out, tw = aten.nll_loss2d_forward.default(x, t, w, reduction, -100)
    go = rand(2, 3, 5) if reduction == 0 else rand()
    check(aten.nll_loss2d_backward.default, go, x, t, w, reduction, -100, tw)


def test_nll_loss_all_ignored_mean():
    x = torch.log_softmax(rand(3, 4), 1)
    t = torch.full((3,), -100)
    check(aten.nll_loss_forward.default, x, t, None, 1, -100)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_mse_bce(reduction):
    x, y = rand(4, 5), rand(4, 5)
    check(aten.mse_loss.default, x, y, reduction)
    go = rand(4, 5) if reduction == 0 else rand()
    check(aten.mse_loss_backward.default, go, x, y, reduction)
    p, q = torch.rand(4, 5), torch.rand(4, 5)
    p[0, 0], p[0, 1] = 0.0, 1.0
    w = torch.rand(4, 5)
    check(aten.binary_cross_entropy.default, p, q, None, reduction)
    check(aten.binary_cross_entropy.default, p, q, w, reduction)
    check(aten.binary_cross_entropy_backward.default, go, p.clamp(0.01, 0.99), q, w, reduction)


# ----------------------------------------------------------------- matmul --

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_matmul(dtype):
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else None
    a, b, c = rand(3, 4, dtype=dtype), rand(4, 5, dtype=dtype), rand(3, 5, dtype=dtype)
    check(aten.mm.default, a, b, tol=tol)
    check(aten.addmm.default, c, a, b, tol=tol)
    check(aten.addmm.default, c[0], a, b, beta=2, alpha=3, tol=tol)
    ba, bb = rand(2, 3, 4, dtype=dtype), rand(2, 4, 5, dtype=dtype)
    check(aten.bmm.default, ba, bb, tol=tol)
    check(aten.baddbmm.default, rand(2, 3, 5, dtype=dtype), ba, bb, beta=2, alpha=-1, tol=tol)
    v = rand(4, dtype=dtype)
    check(aten.mv.default, a, v, tol=tol)
    check(aten.addmv.default, rand(3, dtype=dtype), a, v, beta=1, alpha=2, tol=tol)
    check(aten.dot.default, v, rand(4, dtype=dtype), tol=tol)


def test_addmm_beta_zero_ignores_nan():
    c = torch.full((3, 5), float("nan"))
    check(aten.addmm.default, c, rand(3, 4), rand(4, 5), beta=0, tol=dict(atol=1e-4, rtol=1e-4))


def test_matmul_empty_contraction():
    check(aten.mm.default, torch.zeros(3, 0), torch.zeros(0, 2))


# -------------------------------------------------------------- attention --

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_sdpa_cpu(causal, dtype):
    q, k, v = rand(2, 3, 5, 8, dtype=dtype), rand(2, 3, 7, 8, dtype=dtype), \
        rand(2, 3, 7, 8, dtype=dtype)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else None
    op = aten._scaled_dot_product_flash_attention_for_cpu.default
    check(op, q, k, v, 0.0, causal, tol=tol)
    check(op, q, k, v, 0.0, causal, scale=0.3, tol=tol)
    out, lse = op(q, k, v, 0.0, causal)
    go = rand(2, 3, 5, 8, dtype=dtype)
    check(aten._scaled_dot_product_flash_attention_for_cpu_backward.default, go, q, k, v, out,
          lse, 0.0, causal, tol=tol)


def test_sdpa_cpu_float_mask():
    q, k, v = rand(1, 2, 4, 8), rand(1, 2, 6, 8), rand(1, 2, 6, 8)
    mask = rand(1, 1, 4, 6)
    op = aten._scaled_dot_product_flash_attention_for_cpu.default
    check(op, q, k, v, 0.0, False, attn_mask=mask, tol=dict(atol=1e-4, rtol=1e-4))
    out, lse = op(q, k, v, 0.0, False, attn_mask=mask)
    check(aten._scaled_dot_product_flash_attention_for_cpu_backward.default, rand(1, 2, 4, 8),
          q, k, v, out, lse, 0.0, False, attn_mask=mask, tol=dict(atol=1e-4, rtol=1e-4))


def test_sdpa_backward_matches_autograd():
    """The AOTAutograd graph on torch 2.13 feeds attention probabilities into
    the logsumexp slot; our backward ignores that slot and stays correct."""
    q, k, v = [rand(1, 2, 5, 4).requires_grad_() for _ in range(3)]
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    go = rand(1, 2, 5, 4)
    out.backward(go)
    probs = torch.zeros(1, 2, 5, 5)  # stands in for whatever the slot holds
    got = torch_pjrt.run_aten(
        aten._scaled_dot_product_flash_attention_for_cpu_backward.default, go, q.detach(),
        k.detach(), v.detach(), out.detach(), probs, 0.0, True)
    for g, t in zip(got, (q, k, v)):
        torch.testing.assert_close(g, t.grad, atol=1e-4, rtol=1e-4)


def test_sdpa_cpu_fully_masked_row_is_zero_not_nan():
    # a query row whose keys are all masked (left padding + causal): eager
    # returns 0 output, 0 logsumexp and 0 gradients for it, never NaN
    fwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
    bwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    keep = torch.ones(1, 1, 4, 4, dtype=torch.bool).tril()
    keep[..., 0, :] = False
    mask = torch.zeros(1, 1, 4, 4).masked_fill(~keep, float("-inf"))
    want = fwd(q, k, v, attn_mask=mask)
    got = torch_pjrt.run_aten(fwd, q, k, v, attn_mask=mask)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    go = torch.randn_like(want[0])
    args = (go, q, k, v, want[0], want[1], 0.0, False)
    for a, b in zip(torch_pjrt.run_aten(bwd, *args, attn_mask=mask), bwd(*args, attn_mask=mask)):
        torch.testing.assert_close(a, b)
