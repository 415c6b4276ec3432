"""The eager "pjrt" device: `torch.randn(8, 128, device="pjrt")`, `model.to("pjrt")`.

Importing this module registers PyTorch's PrivateUse1 backend under the name
"pjrt" (or the name given to rename_device() before first use) and exposes
torch.pjrt.device_count / is_available / synchronize / current_device /
set_device. Every ATen op on pjrt tensors runs through the C lowering table as
a one-op StableHLO program, compiled once per signature and cached in C; ops
without a lowering run on CPU (one warning per op, counted in
torch_pjrt.metrics()["fallbacks"]; torch_pjrt.config.fallback = "error" raises).
The fused kernels PyTorch calls on accelerators (LSTM/GRU cells, the
TransformerEncoderLayer eval fast path) run as device ops (below);
torch.autocast("pjrt", dtype=...) applies PyTorch's CUDA op lists, and
torch.amp.GradScaler("pjrt") runs its unscale / scale update on the device.
"""
from __future__ import annotations

import ctypes
import math
import os
import types
from typing import Optional

import torch

from . import _C, device_api, device_props, rng_api, streams

_backend_name: Optional[str] = None
_device_mod = None


def rename_device(name: str = "pjrt") -> None:
    """Registers the backend as `name` (e.g. "tpu"); call before first use.
    The PJRT client itself starts on the first allocation on the device."""
    global _backend_name
    if _backend_name is not None:
        if name != _backend_name:
            raise RuntimeError(f"torch_pjrt.rename_device: the device is already registered "
                               f"as {_backend_name!r}; rename it before first use")
        return
    _load_extension()
    torch.utils.rename_privateuse1_backend(name)
    torch._register_device_module(name, _make_module(name))
    torch.utils.generate_methods_for_privateuse1_backend(
        for_tensor=True, for_module=True, for_storage=True, for_packed_sequence=True)
    _register_fused_kernels()
    _backend_name = name


def _load_extension():
    global _device_mod
    if _device_mod is None:
        # Share _C's C core (client, compile cache, metrics) with _eager.
        ctypes.CDLL(_C.__file__, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
        from . import _eager as mod
        _device_mod = mod
        from . import eager_decomp  # Python device kernels: decompositions, data-dependent shapes
        eager_decomp.register()
    return _device_mod


def _lazy_init() -> None:
    """Called from C++ on the first use of the device: starts the default client."""
    from ._device import default_client
    from . import config
    _load_extension().init(default_client())
    config.sync_checks()
    rng_api._on_start()  # seeds queued before the device started


# ------------------------------------------------------ fused kernels --
# PyTorch sends accelerator devices (PrivateUse1 included) down fused-kernel
# paths that have no CPU or decomposed form to fall back on: nn.LSTM / nn.GRU
# call _thnn_fused_{lstm,gru}_cell per time step, and nn.TransformerEncoderLayer
# in eval mode under no_grad calls _transformer_encoder_layer_fwd. Here each is
# its math in ATen ops, which run on the device. The cells are registered on
# AutogradPrivateUse1, so autograd differentiates the ops they are made of
# (their own backward, _thnn_fused_*_backward_impl, has no device kernel).
_fused_lib = None


def _lstm_cell(igates, hgates, cx, input_bias=None, hidden_bias=None):
    gates = igates + hgates
    if input_bias is not None:
        gates = gates + input_bias
    if hidden_bias is not None:
        gates = gates + hidden_bias
    i, f, g, o = gates.chunk(4, 1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    cy = f * cx + i * g
    hy = o * torch.tanh(cy)
    return hy, cy, torch.cat([i, f, g, o], 1)  # workspace [B, 4H]: the activated gates


def _gru_cell(igates, hgates, hx, input_bias=None, hidden_bias=None):
    if input_bias is not None:
        igates = igates + input_bias
    if hidden_bias is not None:
        hgates = hgates + hidden_bias
    ir, ii, in_ = igates.chunk(3, 1)
    hr, hi, hn = hgates.chunk(3, 1)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(ii + hi)
    n = torch.tanh(in_ + r * hn)
    hy = n + z * (hx - n)
    return hy, torch.cat([r, z, in_, hn, n], 1)  # workspace [B, 5H]


def _masked_attention(q, k, v, mask, mask_type):
    """softmax(q k^T) v over [B, H, L, D] with the fused kernel's mask rules:
    a non-bool mask counts as bool (nonzero = masked); mask_type 1 is a [B, S]
    key padding mask; rows with every key masked give zeros, not NaN."""
    scores = torch.matmul(q, k.transpose(-2, -1))
    if mask is not None:
        mask = mask.to(torch.bool)
        if mask_type == 1:
            mask = mask[:, None, None, :]
        scores = scores.masked_fill(mask, float("-inf"))
        probs = torch.softmax(scores, -1).masked_fill(mask, 0.0)
    else:
        probs = torch.softmax(scores, -1)
    return torch.matmul(probs, v)


def _encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias,
                   use_gelu, norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2,
                   norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask=None,
                   mask_type=None):
    F = torch.nn.functional
    b, length, e = src.shape
    head = embed_dim // num_heads
    x = F.layer_norm(src, (e,), norm_weight_1, norm_bias_1, eps) if norm_first else src
    qkv = F.linear(x, qkv_weight, qkv_bias).view(b, length, 3, num_heads, head)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, L, D]
    ctx = _masked_attention(q / math.sqrt(head), k, v, mask, mask_type)
    attn = F.linear(ctx.transpose(1, 2).reshape(b, length, e), proj_weight, proj_bias)
    x = attn + src
    if not norm_first:
        x = F.layer_norm(x, (e,), norm_weight_1, norm_bias_1, eps)
    h = F.layer_norm(x, (e,), norm_weight_2, norm_bias_2, eps) if norm_first else x
    h = F.linear(h, ffn_weight_1, ffn_bias_1)
    h = F.gelu(h) if use_gelu else F.relu(h)
    x = F.linear(h, ffn_weight_2, ffn_bias_2) + x
    if not norm_first:
        x = F.layer_norm(x, (e,), norm_weight_2, norm_bias_2, eps)
    return x


def _amp_unscale(grads, found_inf, inv_scale):
    """GradScaler's unscale: grads *= inv_scale; found_inf = 1 if any is not
    finite. Device ops only: nothing is read back to the host."""
    inv = inv_scale.reshape(())
    for g in grads:
        bad = torch.logical_not(torch.isfinite(g)).any().to(found_inf.dtype)
        found_inf.copy_(torch.maximum(found_inf, bad))
        g.mul_(inv)


def _amp_update_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor,
                      growth_interval):
    """GradScaler's scale update: back off after an overflow, grow after
    growth_interval clean steps (when the grown scale is finite)."""
    found = found_inf > 0
    succ = growth_tracker + 1
    grown = scale * growth_factor
    grow = torch.logical_and(torch.logical_not(found), succ >= growth_interval)
    new_scale = torch.where(found, scale * backoff_factor,
                            torch.where(torch.logical_and(grow, torch.isfinite(grown)), grown,
                                        scale))
    growth_tracker.copy_(torch.where(torch.logical_or(found, grow),
                                     torch.zeros_like(succ), succ))
    return scale.copy_(new_scale)


def _register_fused_kernels() -> None:
    global _fused_lib
    if _fused_lib is not None:
        return
    _fused_lib = torch.library.Library("aten", "IMPL")
    _fused_lib.impl("_thnn_fused_lstm_cell", _lstm_cell, "AutogradPrivateUse1")
    _fused_lib.impl("_thnn_fused_gru_cell", _gru_cell, "AutogradPrivateUse1")
    _fused_lib.impl("_transformer_encoder_layer_fwd", _encoder_layer, "PrivateUse1")
    _fused_lib.impl("_amp_foreach_non_finite_check_and_unscale_", _amp_unscale, "PrivateUse1")
    _fused_lib.impl("_amp_update_scale_", _amp_update_scale, "PrivateUse1")


def _make_module(name: str) -> types.ModuleType:
    m = types.ModuleType(f"torch.{name}")
    ext = _device_mod

    def device_count() -> int:
        return ext.device_count()

    def is_available() -> bool:
        return ext.device_count() > 0

    def synchronize(device=None) -> None:
        if ext.device_count():
            ext.synchronize()

    def current_device() -> int:
        return ext.current_device()

    def set_device(device) -> None:
        idx = device.index if isinstance(device, torch.device) else int(device)
        ext.set_device(idx or 0)

    class device:  # noqa: N801  (torch.cuda.device's name and role; torch.load uses it)
        """Context manager that makes `device` the current device."""

        def __init__(self, device):
            if isinstance(device, (str, torch.device)):
                device = torch.device(device).index
            self.index = device
            self.prev = None

        def __enter__(self):
            self.prev = ext.current_device()
            if self.index is not None and self.index >= 0:
                ext.set_device(self.index)

        def __exit__(self, *exc):
            ext.set_device(self.prev)
            return False

    for fn in (device_count, is_available, synchronize, current_device, set_device,
               device, *device_api.MEMORY_FUNCTIONS, *rng_api.RNG_FUNCTIONS,
               *device_props.PROPERTY_FUNCTIONS, *streams.STREAM_API):
        setattr(m, fn.__name__, fn)
    m.is_initialized = lambda: True
    m._is_in_bad_fork = lambda: False
    m.stats = ext.stats
    return m


def stats() -> dict:
    """Eager op counters: ops, signature_hits, programs, live_storages,
    cross_device_copies."""
    return _load_extension().stats()


def ensure_registered() -> str:
    """Registers the device unless already done, as $TORCH_PJRT_DEVICE_NAME or
    "pjrt". Cheap: the client starts on first use."""
    if _backend_name is None:
        rename_device(os.environ.get("TORCH_PJRT_DEVICE_NAME", "pjrt"))
    return _backend_name
