"""Backward ops that read auxiliary outputs of their forward (logsumexp, pooling
indices, saved norms), and how their CPU fallback stays correct.

When such a backward falls back to the CPU, its auxiliary inputs were made on
the device or by a PyTorch decomposition of the forward, whose contract the CPU
kernel need not share (the SDPA decomposition puts the attention probabilities
in the `logsumexp` slot). The fallback therefore recomputes them with the CPU
forward from the primal inputs and hands the CPU backward only CPU-made values:
the pair runs on one side. Pairs whose auxiliary values cannot be recomputed
from the backward's arguments (layer/group norm lack eps, dropout's mask is
random, embedding_bag's max indices need the weight) keep the device's values;
tests/python/test_fallback_pairs.py proves those contracts equal the CPU's.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

aten = torch.ops.aten


def _sdpa_backward(grad_out: Any, query: Any, key: Any, value: Any, out: Any,
                   logsumexp: Any, dropout_p: float, is_causal: bool,
                   attn_mask: Optional[Any] = None, scale: Optional[float] = None) -> Any:
    out, logsumexp = aten._scaled_dot_product_flash_attention_for_cpu.default(
        query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)
    return aten._scaled_dot_product_flash_attention_for_cpu_backward.default(
        grad_out, query, key, value, out, logsumexp, dropout_p, is_causal,
        attn_mask=attn_mask, scale=scale)


def _max_pool_backward(forward: Any, backward: Any) -> Callable[..., Any]:
    def run(grad_output: Any, self: Any, kernel_size: Any, stride: Any, padding: Any,
            dilation: Any, ceil_mode: bool, indices: Any) -> Any:
        _, indices = forward(self, kernel_size, stride, padding, dilation, ceil_mode)
        return backward(grad_output, self, kernel_size, stride, padding, dilation,
                        ceil_mode, indices)
    return run


def _adaptive_max_pool_backward(forward: Any, backward: Any, spatial: int) -> Callable[..., Any]:
    def run(grad_output: Any, self: Any, indices: Any) -> Any:
        _, indices = forward(self, list(grad_output.shape[-spatial:]))
        return backward(grad_output, self, indices)
    return run


def _weight_norm_backward(grad_w: Any, saved_v: Any, saved_g: Any, saved_norms: Any,
                          dim: int) -> Any:
    _, saved_norms = aten._weight_norm_interface.default(saved_v, saved_g, dim)
    return aten._weight_norm_interface_backward.default(grad_w, saved_v, saved_g,
                                                        saved_norms, dim)


# "aten::<backward>.<overload>" -> a CPU function with the backward's schema.
CPU_BACKWARDS: Dict[str, Callable[..., Any]] = {
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward.default": _sdpa_backward,
    "aten::max_pool2d_with_indices_backward.default": _max_pool_backward(
        aten.max_pool2d_with_indices.default, aten.max_pool2d_with_indices_backward.default),
    "aten::max_pool3d_with_indices_backward.default": _max_pool_backward(
        aten.max_pool3d_with_indices.default, aten.max_pool3d_with_indices_backward.default),
    "aten::adaptive_max_pool2d_backward.default": _adaptive_max_pool_backward(
        aten.adaptive_max_pool2d.default, aten.adaptive_max_pool2d_backward.default, 2),
    "aten::adaptive_max_pool3d_backward.default": _adaptive_max_pool_backward(
        aten.adaptive_max_pool3d.default, aten.adaptive_max_pool3d_backward.default, 3),
    "aten::_weight_norm_interface_backward.default": _weight_norm_backward,
}


def cpu_kernel(name: str) -> Optional[Callable[..., Any]]:
    """The CPU function that replaces op `name` in a fallback, or None when the
    ATen kernel itself is right."""
    return CPU_BACKWARDS.get(name)
