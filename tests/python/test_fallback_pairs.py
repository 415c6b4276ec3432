"""Forward ops with auxiliary outputs (logsumexp, indices, saved statistics,
masks, norms), run with one side of the forward/backward pair forced onto the
CPU: the gradients must still equal eager CPU's. This proves that what the
device makes for a CPU backward (and what a CPU forward makes for the device's
backward) has the CPU kernels' contract, or that the fallback recomputes it
(python/torch_pjrt/fallback_pairs.py)."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt import compiled as _compiled
from torch_pjrt import fallback_policy
from torch_pjrt import config

A = "aten::"


def _sdpa(gqa):
    mask = torch.randn(8, 6, generator=torch.Generator().manual_seed(2))

    def fn(q, k, v):
        m = None if gqa else mask.to(q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=gqa,
                                              enable_gqa=gqa)
    hk, s = (2, 8) if gqa else (4, 6)
    return fn, lambda: [torch.randn(2, 4, 8, 16), torch.randn(2, hk, s, 16),
                        torch.randn(2, hk, s, 16)]


def _bn(x, w, b):
    rm, rv = torch.zeros(3, device=x.device), torch.ones(3, device=x.device)
    return F.batch_norm(x, rm, rv, w, b, training=True, eps=1e-3)


def _nll(x):
    t = torch.tensor([0, 4, 2, 1, 3, 2]).to(x.device)
    w = torch.tensor([0.5, 1.5, 1.0, 2.0, 0.75]).to(x.device)
    return F.cross_entropy(x, t, weight=w, ignore_index=1)


def _nll2d(x):
    t = torch.tensor([[[0, 3], [2, 1]], [[3, 3], [0, 2]]]).to(x.device)
    w = torch.tensor([0.5, 1.5, 1.0, 2.0]).to(x.device)
    return F.cross_entropy(x, t, weight=w)


def _bag(mode):
    def fn(w):
        idx = torch.tensor([1, 5, 2, 7, 7, 0, 3]).to(w.device)
        off = torch.tensor([0, 3, 3, 5]).to(w.device)
        return F.embedding_bag(idx, w, off, mode=mode)
    return fn, lambda: [torch.randn(9, 5)]


# name -> (fn, inputs factory, forward op, backward op)
CASES = {
    "sdpa": (*_sdpa(False), "_scaled_dot_product_flash_attention_for_cpu.default",
             "_scaled_dot_product_flash_attention_for_cpu_backward.default"),
    "sdpa_gqa": (*_sdpa(True), "_scaled_dot_product_flash_attention_for_cpu.default",
                 "_scaled_dot_product_flash_attention_for_cpu_backward.default"),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda: [torch.randn(2, 3, 9, 9)],
                   "max_pool2d_with_indices.default", "max_pool2d_with_indices_backward.default"),
    "max_pool3d": (lambda x: F.max_pool3d(x, 2, 2, 0, ceil_mode=True),
                   lambda: [torch.randn(2, 2, 5, 5, 5)],
                   "max_pool3d_with_indices.default", "max_pool3d_with_indices_backward.default"),
    "adaptive_max_pool2d": (lambda x: F.adaptive_max_pool2d(x, (4, 3)),
                            lambda: [torch.randn(2, 3, 9, 7)],
                            "adaptive_max_pool2d.default", "adaptive_max_pool2d_backward.default"),
    "adaptive_max_pool3d": (lambda x: F.adaptive_max_pool3d(x, (2, 3, 2)),
                            lambda: [torch.randn(1, 2, 5, 6, 5)],
                            "adaptive_max_pool3d.default", "adaptive_max_pool3d_backward.default"),
    "batch_norm": (_bn, lambda: [torch.randn(4, 3, 5, 5), torch.rand(3) + 0.5, torch.randn(3)],
                   "_native_batch_norm_legit_functional.default",
                   "native_batch_norm_backward.default"),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-3),
                   lambda: [torch.randn(3, 4, 6), torch.rand(6) + 0.5, torch.randn(6)],
                   "native_layer_norm.default", "native_layer_norm_backward.default"),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b, eps=1e-3),
                   lambda: [torch.randn(3, 4, 5), torch.rand(4) + 0.5, torch.randn(4)],
                   "native_group_norm.default", "native_group_norm_backward.default"),
    "nll_loss": (_nll, lambda: [torch.randn(6, 5)],
                 "nll_loss_forward.default", "nll_loss_backward.default"),
    "nll_loss2d": (_nll2d, lambda: [torch.randn(2, 4, 2, 2)],
                   "nll_loss2d_forward.default", "nll_loss2d_backward.default"),
    "weight_norm": (lambda v, g: torch._weight_norm(v, g, 0),
                    lambda: [torch.randn(4, 3, 2), torch.rand(4, 1, 1) + 0.5],
                    "_weight_norm_interface.default", "_weight_norm_interface_backward.default"),
    "embedding_bag_sum": (*_bag("sum"), "_embedding_bag.default", "_embedding_bag_backward.default"),
    "embedding_bag_mean": (*_bag("mean"), "_embedding_bag.default", "_embedding_bag_backward.default"),
    "embedding_bag_max": (*_bag("max"), "_embedding_bag.default", "_embedding_bag_backward.default"),
}

# The pairs whose op survives AOTAutograd's decompositions into the compiled
# graph (the others are decomposed into ops without auxiliary outputs there).
COMPILED_BACKWARD = ["sdpa", "sdpa_gqa", "max_pool2d", "max_pool3d", "adaptive_max_pool2d",
                     "adaptive_max_pool3d", "weight_norm", "embedding_bag_sum",
                     "embedding_bag_mean", "embedding_bag_max"]
COMPILED_FORWARD = ["max_pool2d", "max_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                    "embedding_bag_sum", "embedding_bag_mean", "embedding_bag_max"]


def _grads(fn, inputs, device, run=None):
    """Gradients of a fixed random projection of fn's output w.r.t. inputs."""
    xs = [x.detach().to(device).requires_grad_() for x in inputs]
    out = (run or fn)(*xs)
    g = torch.Generator().manual_seed(1)
    proj = torch.randn(out.shape, generator=g).to(device)
    (out * proj).sum().backward()
    return [x.grad.cpu() if x.grad is not None else None for x in xs]


def _check(case, device, disabled, compile_it):
    fn, make, fwd, bwd = CASES[case]
    torch.manual_seed(0)
    inputs = make()
    want = _grads(fn, inputs, "cpu")
    torch._dynamo.reset()
    run = torch.compile(fn, backend="pjrt") if compile_it else None
    before = dict(fallback_policy.counts)
    fallbacks = torch_pjrt.metrics()["fallbacks"]
    old = config.fallback
    config.fallback = "cpu"
    try:
        with warnings.catch_warnings(), config.disabled_ops(A + disabled):
            warnings.simplefilter("ignore")  # warned once per op; counted below
            got = _grads(fn, inputs, device, run)
    finally:
        config.fallback = old
    if compile_it:
        assert fallback_policy.counts.get(A + disabled, 0) > before.get(A + disabled, 0), \
            f"{A + disabled} did not fall back: the case proves nothing"
    else:
        assert torch_pjrt.metrics()["fallbacks"] > fallbacks
    for i, (w, g) in enumerate(zip(want, got)):
        assert (w is None) == (g is None), f"input {i}"
        if w is not None:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, msg=f"{case} input {i}")


@pytest.mark.fallback
@pytest.mark.parametrize("case", COMPILED_BACKWARD)
def test_compiled_backward_on_cpu(case):
    _check(case, "cpu", CASES[case][3], compile_it=True)


@pytest.mark.fallback
@pytest.mark.parametrize("case", COMPILED_FORWARD)
def test_compiled_forward_on_cpu(case):
    _check(case, "cpu", CASES[case][2], compile_it=True)


@pytest.mark.fallback
@pytest.mark.parametrize("case", sorted(CASES))
def test_eager_device_backward_on_cpu(case):
    _check(case, "pjrt", CASES[case][3], compile_it=False)


# With its lowering off, native_group_norm runs as its decomposition on the
# device, not on the CPU: there is no CPU forward to pair with.
EAGER_FORWARD = sorted(set(CASES) - {"group_norm"})


@pytest.mark.fallback
@pytest.mark.parametrize("case", EAGER_FORWARD)
def test_eager_device_forward_on_cpu(case):
    _check(case, "pjrt", CASES[case][2], compile_it=False)


@pytest.mark.fallback
def test_dropout_mask_from_device_used_by_cpu_backward():
    """native_dropout's mask is random, so its reference is mathematical: the
    gradient is the upstream gradient where the output kept x, scaled by 1/(1-p)."""
    x = torch.randn(64, 32).to("pjrt").requires_grad_()
    fallbacks = torch_pjrt.metrics()["fallbacks"]
    with config.disabled_ops(A + "native_dropout_backward.default"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = F.dropout(x, 0.25, training=True)
        up = torch.randn(64, 32)
        (out * up.to("pjrt")).sum().backward()
    assert torch_pjrt.metrics()["fallbacks"] > fallbacks
    kept = (out.detach().cpu() != 0)
    assert 0.6 < kept.float().mean().item() < 0.9
    torch.testing.assert_close(x.grad.cpu(), up * kept / 0.75, rtol=1e-6, atol=1e-6)


def test_disabled_ops_unknown_name_raises():
    with pytest.raises(Exception, match="no lowering for aten::nope"):
        with config.disabled_ops("aten::nope.default"):
            pass


def test_disabled_ops_blocks_nest():
    from torch_pjrt import _C
    t = "aten::cummax.default"
    assert _C.lower_supported(t)
    with config.disabled_ops(t):
        with config.disabled_ops(t):
            assert not _C.lower_supported(t)
        assert not _C.lower_supported(t)  # the outer block still holds it off
    assert _C.lower_supported(t)
