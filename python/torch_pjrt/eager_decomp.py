"""Device kernels, written in Python, for ATen ops the eager "pjrt" device has
no single lowering for. Registered on PrivateUse1 when the device extension
loads (python/csrc/device.cpp imports this module), so these ops run as
several device ops instead of falling back to the CPU:

- ops with a decomposition in torch._decomp (logaddexp.out, isin, vdot, ...)
  whose target and functional form both lack a C lowering;
- data-dependent output shapes: nonzero, masked_select, masked_scatter(_), bincount,
  equal, unique (_unique2, _unique, unique_consecutive; sorted output). One synchronizing read (the count of true mask elements) fixes the
  output shape; the rest are static-shape device programs (a stable argsort
  puts the true positions first, in row-major order).
- SyncBatchNorm's kernels (batch_norm_stats, batch_norm_gather_stats(_with_counts),
  batch_norm_elemt, batch_norm_backward_reduce/_elemt), which CPU lacks.
- _native_multi_head_attention: nn.MultiheadAttention's and TransformerEncoderLayer's
  eval/no-grad fast path, as the CPU kernel computes it.
- _cdist_backward, _pdist_backward (torch.cdist's and F.pdist's gradients, every p).
- upsample_bicubic2d_backward: the vjp of the forward's torch._decomp decomposition
  (not grid_sampler_2d_backward: at grid points exactly on a clipped edge the
  decomposition's gradient differs from the CPU kernel's).

A decomposition that cannot apply (it returns NotImplemented, or calls itself)
goes through the same fallback policy as the C++ fallback: an error under
torch_pjrt.config.fallback = "error", else a warned, counted CPU run.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

import torch
from torch.utils import _pytree as pytree

from . import _C, fallback_policy
from ._aten import target_name

_lib: Optional[torch.library.Library] = None
_state = threading.local()
# Ops the C++ fallback decomposes itself (device_kernels.cpp decomposed(): zero_, normal_, addcmul, batch norm).
_CPP_DECOMPOSED = {"zero_", "normal_", "addcmul", "addcmul_", "addcdiv", "addcdiv_",
                   "native_batch_norm", "_native_batch_norm_legit"}


def _dispatch_name(op: Any) -> str:
    name = op._schema.name
    return name + ("." + op._schema.overload_name if op._schema.overload_name else "")


def _functional_lowered(op: Any) -> bool:
    """Whether the C++ fallback runs this mutating overload as a lowered
    functional one (its functional_of)."""
    from . import _eager
    return _eager.functional_lowered(op._schema.name, op._schema.overload_name)


def _needs_kernel(op: Any) -> bool:
    if not op._schema.name.startswith("aten::"):
        return False
    base = op._schema.name.split("::")[1]
    if base in _CPP_DECOMPOSED or _C.lower_supported(target_name(op)):
        return False
    name = _dispatch_name(op)
    # A CompositeExplicitAutograd kernel already runs on the device (through
    # lowered ops) without a trip through Python.
    for key in ("PrivateUse1", "CompositeImplicitAutograd", "CompositeExplicitAutograd"):
        if torch._C._dispatch_has_kernel_for_dispatch_key(name, key):
            return False
    return not (op._schema.is_mutable and _functional_lowered(op))


def _cpu_run(op: Any, why: str, args: tuple, kwargs: dict) -> Any:
    """The fallback policy for an op no device kernel can run."""
    fallback_policy.run_elsewhere(target_name(op), why)
    dev = next(x.device for x in pytree.tree_leaves((args, kwargs))
               if isinstance(x, torch.Tensor) and x.device.type != "cpu")
    move = lambda x: x.cpu() if isinstance(x, torch.Tensor) else x  # noqa: E731
    cargs, ckwargs = pytree.tree_map(move, (args, kwargs))
    out = op(*cargs, **ckwargs)
    written = {}  # in-place and out= arguments get the results back
    for i, a in enumerate(op._schema.arguments):
        if not (a.alias_info and a.alias_info.is_write):
            continue
        orig, host = (args[i], cargs[i]) if i < len(args) else (kwargs.get(a.name),
                                                                 ckwargs.get(a.name))
        if isinstance(orig, torch.Tensor):
            orig.resize_(host.shape).copy_(host)
            written[id(host)] = orig
    return pytree.tree_map(lambda x: written.get(id(x), x.to(dev))
                           if isinstance(x, torch.Tensor) else x, out)


def _decomp_kernel(op: Any, decomp: Callable) -> Callable:
    def kernel(*args, **kwargs):
        active = getattr(_state, "active", None)
        if active is None:
            active = _state.active = {}
        # A decomposition may call its op again once with other dtypes (int64 ->
        # float32 promotion); deeper means it does not make progress.
        depth = active.get(op, 0)
        if depth >= 2:
            return _cpu_run(op, "its decomposition calls itself", args, kwargs)
        active[op] = depth + 1
        try:
            out = decomp(*args, **kwargs)
        finally:
            active[op] = depth
        if out is NotImplemented:
            return _cpu_run(op, "its decomposition does not apply", args, kwargs)
        return out
    return kernel


# ------------------------------------------------- data-dependent shapes --

def _true_positions(mask: torch.Tensor) -> torch.Tensor:
    """int64 [count]: row-major linear positions of the nonzero elements."""
    is_zero = torch.eq(mask.reshape(-1), 0)
    count = is_zero.numel() - int(is_zero.sum().item())  # the one synchronizing read
    if count == 0:
        return torch.empty((0,), dtype=torch.int64, device=mask.device)
    return torch.argsort(is_zero.to(torch.int32), stable=True)[:count]


def nonzero(self: torch.Tensor) -> torch.Tensor:
    pos = _true_positions(self) if self.numel() else torch.empty(
        (0,), dtype=torch.int64, device=self.device)
    if self.dim() == 0 or pos.numel() == 0:
        return torch.empty((pos.numel(), self.dim()), dtype=torch.int64, device=self.device)
    cols: List[torch.Tensor] = []
    stride = 1
    for size in reversed(self.shape):
        cols.append(torch.remainder(torch.div(pos, stride, rounding_mode="floor"), size))
        stride *= size
    return torch.stack(cols[::-1], 1)


def masked_select(self: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask (got {mask.dtype})")
    s, m = torch.broadcast_tensors(self, mask)
    pos = _true_positions(m) if m.numel() else None
    if pos is None or pos.numel() == 0:
        return torch.empty((0,), dtype=self.dtype, device=self.device)
    return s.reshape(-1).index_select(0, pos)


def masked_scatter(self: torch.Tensor, mask: torch.Tensor,
                   source: torch.Tensor) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise RuntimeError(f"masked_scatter: expected BoolTensor for mask (got {mask.dtype})")
    s, m = torch.broadcast_tensors(self, mask)
    ones = m.reshape(-1).to(torch.int64)
    count = int(ones.sum().item()) if ones.numel() else 0
    if count > source.numel():
        raise RuntimeError(f"masked_scatter: expected source to have at least as many "
                           f"elements as ones in mask (got {source.numel()}, need {count})")
    if count == 0:
        return s.clone()
    pos = torch.clamp(torch.cumsum(ones, 0) - 1, min=0)
    vals = source.reshape(-1).index_select(0, pos).reshape(s.shape)
    return torch.where(m, vals.to(s.dtype), s)


def masked_scatter_(self: torch.Tensor, mask: torch.Tensor,
                    source: torch.Tensor) -> torch.Tensor:
    out = masked_scatter(self, mask, source)
    if out.shape != self.shape:
        raise RuntimeError(f"masked_scatter_: mask of shape {tuple(mask.shape)} does not "
                           f"broadcast to self's shape {tuple(self.shape)}")
    return self.copy_(out)


def equal(self: torch.Tensor, other: torch.Tensor) -> bool:
    if self.shape != other.shape:
        return False
    if self.numel() == 0:
        return True
    return bool(torch.eq(self, other).all().item())


def _runs(flat: torch.Tensor, perm: Optional[torch.Tensor], inverse: bool, counts: bool):
    """Unique values of runs of equal elements of 1-D `flat` (sorted by `perm`,
    or consecutive when perm is None), inverse indices and run lengths."""
    n = flat.numel()
    empty = torch.empty((0,), dtype=torch.int64, device=flat.device)
    if n == 0:
        return flat[:0], empty, empty
    first = torch.ones((1,), dtype=torch.bool, device=flat.device)
    is_first = torch.cat([first, torch.ne(flat[1:], flat[:-1])]) if n > 1 else first
    starts = _true_positions(is_first)  # syncs on the number of runs
    vals = flat.index_select(0, starts)
    inv = cnt = empty
    if inverse:
        gid = torch.cumsum(is_first.to(torch.int64), 0) - 1
        inv = gid if perm is None else torch.zeros_like(gid).scatter(0, perm, gid)
    if counts:
        end = torch.full((1,), n, dtype=torch.int64, device=flat.device)
        cnt = torch.cat([starts[1:], end]) - starts
    return vals, inv, cnt


def _unique2(self: torch.Tensor, sorted: bool = True, return_inverse: bool = False,
             return_counts: bool = False):
    flat = self.reshape(-1)
    keys, perm = torch.sort(flat, stable=True)
    vals, inv, cnt = _runs(keys, perm, return_inverse, return_counts)
    return vals, inv.reshape(self.shape) if return_inverse else inv, cnt


def _unique(self: torch.Tensor, sorted: bool = True, return_inverse: bool = False):
    vals, inv, _ = _unique2(self, sorted, return_inverse, False)
    return vals, inv


def unique_consecutive(self: torch.Tensor, return_inverse: bool = False,
                       return_counts: bool = False, dim: Optional[int] = None):
    if dim is not None:
        return _cpu_run(torch.ops.aten.unique_consecutive.default, "dim= is not supported",
                        (self, return_inverse, return_counts, dim), {})
    vals, inv, cnt = _runs(self.reshape(-1), None, return_inverse, return_counts)
    return vals, inv.reshape(self.shape) if return_inverse else inv, cnt


def nonzero_static(self: torch.Tensor, *, size: int, fill_value: int = -1) -> torch.Tensor:
    nz = nonzero(self)
    if nz.shape[0] >= size:
        return nz[:size].clone()
    pad = torch.full((size - nz.shape[0], self.dim()), fill_value, dtype=torch.int64,
                     device=self.device)
    return torch.cat([nz, pad])


# ---------------------------------- short exact forms without a decomposition --

def nanmedian_dim(self: torch.Tensor, dim: int, keepdim: bool = False):
    """The lower median of the non-NaN elements: a stable sort (NaN last) and a
    gather at (count - 1) // 2; all-NaN slices give NaN."""
    if self.dim() == 0:
        return self.clone(), torch.zeros((), dtype=torch.int64, device=self.device)
    vals, perm = torch.sort(self, dim=dim, stable=True)
    k = torch.logical_not(torch.isnan(self)).sum(dim, keepdim=True)
    pos = torch.clamp(torch.div(k - 1, 2, rounding_mode="floor"), min=0)
    v, i = vals.gather(dim, pos), perm.gather(dim, pos)
    return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))


def nanmedian(self: torch.Tensor) -> torch.Tensor:
    if self.numel() == 0:
        return torch.full((), float("nan"), dtype=self.dtype, device=self.device)
    return nanmedian_dim(self.reshape(-1), 0)[0]


def histc(self: torch.Tensor, bins: int = 100, min=0, max=0) -> torch.Tensor:
    """Equal-width bins over [min, max] (the data's range when min == max: one
    synchronizing read); elements outside, and NaN, are not counted."""
    lo, hi = float(min), float(max)
    if lo == hi and self.numel():
        lo, hi = float(self.min().item()), float(self.max().item())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    x = self.reshape(-1)
    inside = torch.logical_and(x >= lo, x <= hi)
    pos = ((x - lo) / (hi - lo) * bins).to(torch.int64)
    pos = torch.clamp(torch.where(inside, pos, torch.zeros_like(pos)), 0, bins - 1)
    out = torch.zeros((bins,), dtype=self.dtype, device=self.device)
    return out.scatter_add(0, pos, inside.to(self.dtype)) if x.numel() else out


_BINCOUNT_INPUTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def bincount(self: torch.Tensor, weights: Optional[torch.Tensor] = None,
             minlength: int = 0) -> torch.Tensor:
    """Counts (or sums weights) per value: one synchronizing read of the
    input's min and max fixes the length, then one scatter_add. Dtypes and
    errors as on the CPU: int64 counts; float32/float64 weights keep their
    dtype, others give float64; an empty input gives int64 zeros."""
    if self.dtype not in _BINCOUNT_INPUTS:
        raise NotImplementedError(f"bincount: not implemented for {self.dtype} inputs "
                                  f"(expected an integral dtype)")
    if minlength < 0:
        raise RuntimeError(f"minlength should be >= 0 (bincount got {minlength})")
    if self.dim() == 1 and self.numel() == 0:
        return torch.zeros((minlength,), dtype=torch.int64, device=self.device)
    if self.dim() != 1:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    lo, hi = torch.stack([self.min(), self.max()]).to(torch.int64).tolist()  # the one read
    if lo < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if weights is not None and (weights.dim() != 1 or weights.shape[0] != self.shape[0]):
        raise RuntimeError("weights should be 1-d and have the same length as input")
    n, idx = max(hi + 1, minlength), self.to(torch.int64)
    if weights is None:
        out = torch.zeros((n,), dtype=torch.int64, device=self.device)
        return out.scatter_add(0, idx, torch.ones_like(idx))
    dtype = weights.dtype if weights.dtype in (torch.float32, torch.float64) else torch.float64
    out = torch.zeros((n,), dtype=dtype, device=self.device)
    return out.scatter_add(0, idx, weights.to(dtype))


def mode(self: torch.Tensor, dim: int = -1, keepdim: bool = False):
    """The most frequent value along dim (the smallest among equally frequent
    ones) and an index of it: a sort, then pairwise equality counts."""
    if self.dim() == 0:
        return self.clone(), torch.zeros((), dtype=torch.int64, device=self.device)
    x = self.movedim(dim, -1)
    vals, perm = torch.sort(x, dim=-1, stable=True)
    counts = torch.eq(vals.unsqueeze(-1), vals.unsqueeze(-2)).sum(-1)
    best = torch.argmax(counts, dim=-1, keepdim=True)  # first maximum: the smallest value
    v, i = vals.gather(-1, best).movedim(-1, dim), perm.gather(-1, best).movedim(-1, dim)
    return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))


def as_strided_scatter(self: torch.Tensor, src: torch.Tensor, size, stride,
                       storage_offset=None) -> torch.Tensor:
    out = self.clone()
    out.as_strided(size, stride, storage_offset).copy_(src)
    return out


def frexp(self: torch.Tensor):
    """x = mantissa * 2**exponent, 0.5 <= |mantissa| < 1: log2 for the exponent,
    then one correction step for values next to a power of two."""
    a = self.abs()
    finite = torch.isfinite(self) & (a > 0)
    one = torch.ones_like(a)
    e = torch.floor(torch.log2(torch.where(finite, a, one))) + 1
    m = self / torch.pow(2.0, e)
    big, small = m.abs() >= 1, (m.abs() < 0.5) & finite
    m = torch.where(big, m / 2, torch.where(small, m * 2, m))
    e = torch.where(big, e + 1, torch.where(small, e - 1, e))
    e = torch.where(finite, e, torch.zeros_like(e))
    return torch.where(finite, m, self), e.to(torch.int32)


def efficientzerotensor(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    """A plain zero tensor (autograd's placeholder for an all-zero gradient)."""
    return torch.zeros(size, dtype=dtype, device=device)


def addbmm(self: torch.Tensor, batch1: torch.Tensor, batch2: torch.Tensor, *, beta=1,
           alpha=1) -> torch.Tensor:
    prod = torch.bmm(batch1, batch2).sum(0)
    if beta == 0:  # self is ignored, NaN and inf included
        return prod * alpha if alpha != 1 else prod
    return torch.add(self * beta if beta != 1 else self, prod, alpha=alpha)


def _shrink_backward(grad_output: torch.Tensor, self: torch.Tensor, lambd) -> torch.Tensor:
    keep = torch.logical_or(self < -lambd, self > lambd)
    return torch.where(keep, grad_output, torch.zeros_like(grad_output))


def searchsorted(sorted_sequence: torch.Tensor, self: torch.Tensor, *, out_int32: bool = False,
                 right: bool = False, side: Optional[str] = None,
                 sorter: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Counts, per value, the sequence elements before its insertion point: one
    broadcast comparison and a sum (N x M work, no data-dependent control)."""
    seq = sorted_sequence if sorter is None else torch.gather(sorted_sequence, -1, sorter)
    right = right or side == "right"
    if seq.dim() == 1:
        s, v = seq, self.unsqueeze(-1)
    else:  # batched: sequence (..., N), values (..., M)
        s, v = seq.unsqueeze(-2), self.unsqueeze(-1)
    before = torch.le(s, v) if right else torch.lt(s, v)
    return before.sum(-1, dtype=torch.int32 if out_int32 else torch.int64)


# ------------------------------------- orthogonal polynomials of degree n --

def _float_args(x: Any, n: Any):
    """x in the result dtype (int64 -> the default float) and n, broadcast."""
    dev = x.device if isinstance(x, torch.Tensor) else n.device
    x, n = (v if isinstance(v, torch.Tensor) else torch.as_tensor(v, device=dev) for v in (x, n))
    dtype = torch.promote_types(x.dtype, n.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return torch.broadcast_tensors(x.to(dtype), n)


def _poly(x: torch.Tensor, n: torch.Tensor, first: Callable, step: Callable):
    """(x, vals, degree) with vals[k] = P_k(x) by a three-term recurrence up to
    the largest degree in n (one synchronizing read), selected per element."""
    x, n = _float_args(x, n)
    deg = n.to(torch.int64)  # truncation, as the CPU kernels cast n
    top = min(int(deg.max().item()) if deg.numel() else 0, 1024)
    p, q = torch.ones_like(x), first(x)
    res = torch.where(deg == 1, q, p)
    for k in range(1, top):
        p, q = q, step(k, x, p, q)
        res = torch.where(deg == k + 1, q, res)
    return x, torch.where(deg < 0, torch.zeros_like(res), res), deg


def _pm_one(x: torch.Tensor, deg: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """P(+-1) = 1 or (-1)^n for Chebyshev T and Legendre P (n >= 0)."""
    one = torch.ones_like(res)
    val = torch.where((x > 0) | (torch.remainder(deg, 2) == 0), one, -one)
    return torch.where((x.abs() == 1) & (deg >= 0), val, res)


def _cheb(first: Callable, at_one: Callable, far: Callable, far_n: int = 8,
          shifted: bool = False) -> Callable:
    """Chebyshev T, U, V, W (shifted: of 2x - 1): the recurrence, the values at
    +-1, and the CPU kernels' closed forms for n > far_n inside (-1, 1)."""
    def kernel(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        if shifted:
            x, n = _float_args(x, n)
            x = x + x - 1
        x, res, deg = _poly(x, n, first, lambda k, x, p, q: (x + x) * q - p)
        nf, even = deg.to(x.dtype), torch.remainder(deg, 2) == 0
        a = torch.acos(x)
        res = torch.where((deg > far_n) & (x.abs() < 1), far(x, nf, even, a), res)
        return torch.where((x.abs() == 1) & (deg >= 0), at_one(x, nf, even), res)
    return kernel


def _odd_sign(even: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.where(even, v, -v)


_CHEB = {  # kind: (P_1(x), P_n(+-1), closed form for large n, far_n, shifted far_n)
    "t": (lambda x: x,
          lambda x, nf, even: torch.where((x > 0) | even, torch.ones_like(nf), -torch.ones_like(nf)),
          lambda x, nf, even, a: torch.cos(nf * a), 6, 6),
    "u": (lambda x: x + x,
          lambda x, nf, even: torch.where((x > 0) | even, nf + 1, -(nf + 1)),
          lambda x, nf, even, a: torch.where(torch.sin(a) != 0,
                                             torch.sin((nf + 1) * a) / torch.sin(a),
                                             (nf + 1) * torch.cos((nf + 1) * a) / x), 8, 6),
    "v": (lambda x: x + x - 1,
          lambda x, nf, even: torch.where(x > 0, torch.ones_like(nf),
                                          _odd_sign(even, nf + nf + 1)),
          lambda x, nf, even, a: torch.where(torch.sin(a / 2) != 1,
                                             torch.cos((nf + 0.5) * a) / torch.cos(a / 2),
                                             _odd_sign(even, nf + nf + 1)), 8, 6),
    "w": (lambda x: x + x + 1,
          lambda x, nf, even: torch.where(x > 0, nf + nf + 1,
                                          _odd_sign(even, torch.ones_like(nf))),
          lambda x, nf, even, a: torch.where(
              torch.cos(a / 2) != 1, torch.sin((nf + 0.5) * a) / torch.sin(a / 2),
              torch.where(x > 0, nf + nf + 1, _odd_sign(even, torch.ones_like(nf)))), 8, 4),
}
_CHEB_KERNELS = {}
for _kind, (_first, _one, _far, _n, _sn) in _CHEB.items():
    _CHEB_KERNELS[f"special_chebyshev_polynomial_{_kind}"] = _cheb(_first, _one, _far, _n)
    _CHEB_KERNELS[f"special_shifted_chebyshev_polynomial_{_kind}"] = _cheb(
        _first, _one, _far, _sn, shifted=True)


def legendre_p(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    x, res, deg = _poly(x, n, lambda x: x,
                        lambda k, x, p, q: ((k + k + 1) * x * q - k * p) / (k + 1))
    return _pm_one(x, deg, res)


def laguerre_l(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    x, res, deg = _poly(x, n, lambda x: 1 - x,
                        lambda k, x, p, q: (((k + k) + (1 - x)) * q - k * p) / (k + 1))
    return torch.where((x == 0) & (deg >= 0), torch.ones_like(res), res)


def _hermite(first: Callable, step: Callable) -> Callable:
    def kernel(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, res, deg = _poly(x, n, first, step)
        limit = {torch.float32: 128, torch.float64: 512}.get(x.dtype, 1024)
        return torch.where(deg > limit, torch.full_like(res, float("nan")), res)
    return kernel


# SyncBatchNorm's kernels (torch.nn.modules._functions.SyncBatchNorm): CUDA
# has them and CPU does not, so without these a SyncBatchNorm model fails on
# any fallback. Per-channel statistics over every dim but 1, accumulated in
# float32 for reduced-precision inputs, as the CUDA kernels do.

def _bn_acc(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _bn_dims(x: torch.Tensor) -> List[int]:
    return [d for d in range(x.dim()) if d != 1]


def _bn_shape(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """A per-channel vector shaped to broadcast along dim 1 of x."""
    return c.reshape([1, -1] + [1] * (x.dim() - 2))


def batch_norm_stats(input: torch.Tensor, eps: float):
    x = input.to(_bn_acc(input))
    dims = _bn_dims(x)
    mean = x.mean(dims)
    var = (x - _bn_shape(x, mean)).square().mean(dims)  # biased, two-pass
    return mean, torch.rsqrt(var + eps)


def batch_norm_gather_stats_with_counts(input: torch.Tensor, mean: torch.Tensor,
                                        invstd: torch.Tensor,
                                        running_mean: Optional[torch.Tensor],
                                        running_var: Optional[torch.Tensor], momentum: float,
                                        eps: float, counts: torch.Tensor):
    """The global mean and invstd from per-process (W, C) mean and invstd and
    (W,) counts; running statistics updated in place (unbiased variance), as
    CUDA's batch_norm_reduce_statistics_kernel does."""
    acc = mean.dtype
    n = counts.to(acc).reshape(-1, 1)
    total = n.sum(0)
    gmean = (n * mean).sum(0) / total
    var = torch.where(invstd == 0, torch.zeros_like(invstd), invstd.reciprocal().square() - eps)
    m2 = (n * (var + (mean - gmean).square())).sum(0)  # sum of squared deviations
    ginvstd = torch.rsqrt(m2 / total + eps)
    if running_mean is not None:
        running_mean.copy_((momentum * gmean + (1 - momentum) * running_mean.to(acc))
                           .to(running_mean.dtype))
    if running_var is not None:
        unbiased = m2 / (total - 1)
        running_var.copy_((momentum * unbiased + (1 - momentum) * running_var.to(acc))
                          .to(running_var.dtype))
    return gmean, ginvstd


def batch_norm_gather_stats(input: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
                            running_mean: Optional[torch.Tensor],
                            running_var: Optional[torch.Tensor], momentum: float, eps: float,
                            count: int):
    counts = torch.full((mean.shape[0],), count, dtype=mean.dtype, device=mean.device)
    return batch_norm_gather_stats_with_counts(input, mean, invstd, running_mean, running_var,
                                               momentum, eps, counts)


def batch_norm_elemt(input: torch.Tensor, weight: Optional[torch.Tensor],
                     bias: Optional[torch.Tensor], mean: torch.Tensor, invstd: torch.Tensor,
                     eps: float) -> torch.Tensor:
    x = input.to(_bn_acc(input))
    y = (x - _bn_shape(x, mean)) * _bn_shape(x, invstd)
    if weight is not None:
        y = y * _bn_shape(x, weight.to(x.dtype))
    if bias is not None:
        y = y + _bn_shape(x, bias.to(x.dtype))
    return y.to(input.dtype)


def batch_norm_backward_reduce(grad_out: torch.Tensor, input: torch.Tensor, mean: torch.Tensor,
                               invstd: torch.Tensor, weight: Optional[torch.Tensor],
                               input_g: bool, weight_g: bool, bias_g: bool):
    """(sum_dy, sum_dy_xmu, grad_weight, grad_bias) per channel; all four are
    computed (the caller uses only those it asked for)."""
    acc = mean.dtype
    dy, x = grad_out.to(acc), input.to(acc)
    dims = _bn_dims(x)
    sum_dy = dy.sum(dims)
    sum_dy_xmu = (dy * (x - _bn_shape(x, mean))).sum(dims)
    wdtype = weight.dtype if weight is not None else input.dtype
    return sum_dy, sum_dy_xmu, (sum_dy_xmu * invstd).to(wdtype), sum_dy.to(wdtype)


def batch_norm_backward_elemt(grad_out: torch.Tensor, input: torch.Tensor, mean: torch.Tensor,
                              invstd: torch.Tensor, weight: Optional[torch.Tensor],
                              sum_dy: torch.Tensor, sum_dy_xmu: torch.Tensor,
                              count: torch.Tensor) -> torch.Tensor:
    acc = mean.dtype
    dy, x = grad_out.to(acc), input.to(acc)
    total = count.to(acc).sum()
    mean_dy, mean_dy_xmu = sum_dy / total, sum_dy_xmu / total
    scale = invstd if weight is None else invstd * weight.to(acc)
    g = (dy - _bn_shape(x, mean_dy)
         - (x - _bn_shape(x, mean)) * _bn_shape(x, invstd.square() * mean_dy_xmu))
    return (g * _bn_shape(x, scale)).to(input.dtype)


_SYNC_BN = {"batch_norm_stats": batch_norm_stats,
            "batch_norm_gather_stats_with_counts": batch_norm_gather_stats_with_counts,
            "batch_norm_gather_stats": batch_norm_gather_stats,
            "batch_norm_elemt": batch_norm_elemt,
            "batch_norm_backward_reduce": batch_norm_backward_reduce,
            "batch_norm_backward_elemt": batch_norm_backward_elemt}


def native_multi_head_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 embed_dim: int, num_head: int, qkv_weight: torch.Tensor,
                                 qkv_bias: torch.Tensor, proj_weight: torch.Tensor,
                                 proj_bias: torch.Tensor, mask: Optional[torch.Tensor] = None,
                                 need_weights: bool = True, average_attn_weights: bool = True,
                                 mask_type: Optional[int] = None):
    """nn.MultiheadAttention's and TransformerEncoderLayer's inference fast
    path (eval, no grad) on dense (B, T, D) inputs, as the CPU kernel computes
    it: q/k/v projections, q scaled by 1/sqrt(head dim), softmax over the
    keys with a mask whose true (for a float mask: nonzero) entries are
    masked out (a fully masked row is NaN, as on the CPU), the output
    projection; no weights (None) unless need_weights.
    mask_type 0: (T, S); 1: key padding (B, S); 2: (B, H, T, S)."""
    import math
    import torch.nn.functional as F
    b, t, _ = query.shape
    dh = embed_dim // num_head
    wq, wk, wv = qkv_weight.chunk(3, 0)
    bq, bk, bv = qkv_bias.chunk(3, 0)

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], num_head, dh).transpose(1, 2)

    q = heads(F.linear(query, wq, bq)) / math.sqrt(dh)
    k, v = heads(F.linear(key, wk, bk)), heads(F.linear(value, wv, bv))
    scores = torch.matmul(q, k.transpose(-2, -1))  # (B, H, T, S)
    if mask is not None:
        m = mask if mask.dtype == torch.bool else mask != 0
        sk = scores.shape[-1]
        if mask_type == 1:
            m = m.reshape(b, 1, 1, sk)
        elif m.dim() == 2:
            m = m.reshape(1, 1, t, sk)
        elif m.dim() == 3:
            m = m.reshape(b, -1, t, sk)
        m = m.expand(scores.shape)
        scores = scores.masked_fill(m, float("-inf"))
    probs = torch.softmax(scores, -1)
    ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, embed_dim)
    out = F.linear(ctx, proj_weight, proj_bias)
    if not need_weights:
        return out, None
    return out, (probs.sum(1) / num_head if average_attn_weights else probs)


def cdist_backward(grad: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, p: float,
                   cdist: torch.Tensor) -> torch.Tensor:
    """d cdist(x1, x2, p) / d x1 times grad, as the CPU kernel: per pair the
    difference's sign times |diff|^(p-1) / dist^(p-1) (p = 1: the sign; p = 2:
    diff / dist; inf: the sign where |diff| is the distance; p = 0: zero),
    zero where the distance is zero. (..., P, M), (..., R, M) -> (..., P, M)."""
    if p == 0 or grad.numel() == 0 or x1.numel() == 0:
        return torch.zeros_like(x1)
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (..., P, R, M)
    dist = cdist.unsqueeze(-1)
    g = grad.unsqueeze(-1)
    zero = torch.zeros_like(diff)
    if p == 1:
        term = torch.sign(diff)
    elif p == 2:
        term = diff / dist
    elif p == float("inf"):
        term = torch.sign(diff) * (diff.abs() == dist).to(diff.dtype)
    elif p < 1:
        term = torch.sign(diff) * diff.abs().pow(p - 1) / dist.pow(p - 1)
        term = torch.where(diff == 0, zero, term)
    else:  # |diff|^(p-2) is inf at diff 0 for p < 2: that term is 0
        term = torch.where(diff == 0, zero, diff * diff.abs().pow(p - 2) / dist.pow(p - 1))
    term = torch.where(dist == 0, zero, term)
    return (g * term).sum(-2)


# Backward ops whose forward has a torch._decomp decomposition: the
# vector-Jacobian product of that decomposition (torch.func.vjp), run on the
# device as the decomposition's own ops and their gradients.

def _decomposed(op: Any) -> Callable:
    from torch._decomp import decomposition_table
    return decomposition_table[op]


def upsample_bicubic2d_backward(grad_output: torch.Tensor, output_size, input_size,
                                align_corners: bool, scales_h: Optional[float] = None,
                                scales_w: Optional[float] = None) -> torch.Tensor:
    """Linear in the input, so the vjp at zeros of the input's shape."""
    fwd = _decomposed(torch.ops.aten.upsample_bicubic2d.default)
    x = grad_output.new_zeros(list(input_size))
    _, vjp = torch.func.vjp(lambda i: fwd(i, output_size, align_corners, scales_h, scales_w), x)
    return vjp(grad_output)[0]


def pdist_backward(grad: torch.Tensor, self: torch.Tensor, p: float,
                   pdist: torch.Tensor) -> torch.Tensor:
    """cdist_backward of the (N, N) symmetric gradient and distance matrices
    (zero on the diagonal): each row pair's term is odd in the difference, so
    both members of a pair get theirs from one row of the symmetric matrix."""
    n = self.shape[0]
    iu = torch.triu_indices(n, n, 1, device=self.device)
    g = grad.new_zeros(n, n).index_put((iu[0], iu[1]), grad)
    d = pdist.new_zeros(n, n).index_put((iu[0], iu[1]), pdist)
    return cdist_backward(g + g.t(), self, self, p, d + d.t())

_DATA_DEPENDENT = {"nonzero": nonzero, "masked_select": masked_select,
                   "masked_scatter": masked_scatter, "masked_scatter_": masked_scatter_,
                   "equal": equal, "_unique2": _unique2, "_unique": _unique,
                   "unique_consecutive": unique_consecutive, "nonzero_static": nonzero_static,
                   "addbmm": addbmm, "softshrink_backward": _shrink_backward,
                   "hardshrink_backward": _shrink_backward, "searchsorted.Tensor": searchsorted,
                   **_CHEB_KERNELS, "nanmedian": nanmedian, "nanmedian.dim": nanmedian_dim,
                   "_efficientzerotensor": efficientzerotensor, "histc": histc,
                   "bincount": bincount,
                   "mode": mode, "as_strided_scatter": as_strided_scatter,
                   "frexp.Tensor": frexp,
                   "special_legendre_polynomial_p": legendre_p,
                   "special_laguerre_polynomial_l": laguerre_l,
                   "special_hermite_polynomial_h": _hermite(
                       lambda x: x + x, lambda k, x, p, q: (x + x) * q - (k + k) * p),
                   "special_hermite_polynomial_he": _hermite(
                       lambda x: x, lambda k, x, p, q: x * q - k * p),
                   **_SYNC_BN,
                   "_native_multi_head_attention": native_multi_head_attention,
                   "_cdist_backward": cdist_backward,
                   "upsample_bicubic2d_backward": upsample_bicubic2d_backward,
                   "_pdist_backward": pdist_backward}


def register() -> int:
    """Registers the kernels on PrivateUse1 (once); returns how many."""
    global _lib
    if _lib is not None:
        return 0
    _lib = torch.library.Library("aten", "IMPL")
    from . import fused_optim  # fused optimizer steps: one compiled program each
    n = fused_optim.register(_lib)
    from . import eager_random  # multinomial: device ops with the op's generator
    n += eager_random.register(_lib)
    for name, fn in _DATA_DEPENDENT.items():
        _lib.impl(name, fn, "PrivateUse1")
        n += 1
    from torch._decomp import decomposition_table
    for op, decomp in decomposition_table.items():
        if not isinstance(op, torch._ops.OpOverload) or op._schema.name.split("::")[-1] in \
                {k.split(".")[0] for k in _DATA_DEPENDENT}:
            continue
        try:
            needed = _needs_kernel(op)
        except (RuntimeError, AttributeError):
            continue
        if needed:
            _lib.impl(_dispatch_name(op).split("::")[1], _decomp_kernel(op, decomp),
                      "PrivateUse1")
            n += 1
    return n
