"""multinomial on the eager pjrt device, as device ops drawing from the op's
generator (or the device's default one): without replacement the exponential
race (top-k of p / E with E ~ Exp(1), the law CPU's kernel samples), with
replacement a search of uniforms in the rows' cumulative sums. The input
checks CPU makes (no inf, nan or negative, a positive sum per row) cost one
small synchronizing read, as they do on CUDA.
"""
from __future__ import annotations

from typing import Optional

import torch


def _check(p: torch.Tensor, num_samples: int, replacement: bool) -> None:
    if not p.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, "
                           f"got: {p.dtype}")
    if p.dim() not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim (got {p.dim()})")
    n = p.size(-1)
    if n > 2 ** 24:
        raise RuntimeError(f"number of categories cannot exceed 2^24 (got {n})")
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples (got {num_samples})")
    if not replacement and num_samples > n:
        raise RuntimeError(f"cannot sample n_sample > prob_dist.size(-1) samples without "
                           f"replacement (got n_sample {num_samples}, {n} categories)")
    if p.numel() == 0:
        return
    bad = torch.logical_not(torch.logical_and(torch.isfinite(p), p >= 0)).any()
    empty = (p.sum(-1) == 0).any()
    flags = torch.stack([bad, empty]).cpu()  # the one synchronizing read
    if bool(flags[0]):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if bool(flags[1]):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")


def _without_replacement(p: torch.Tensor, k: int, gen: Optional[torch.Generator]):
    e = torch.empty_like(p).exponential_(1.0, generator=gen)
    q = p / e
    if k == 1:
        return q.argmax(-1, keepdim=True)
    return q.topk(k, -1).indices


def _with_replacement(p: torch.Tensor, k: int, gen: Optional[torch.Generator]):
    cdf = p.cumsum(-1)
    total = cdf[..., -1:]
    shape = p.shape[:-1] + (k,)
    u = torch.empty(shape, dtype=p.dtype, device=p.device).uniform_(generator=gen)
    idx = torch.searchsorted(cdf.contiguous(), (u * total).contiguous(), right=True)
    # u * total can round up to total: never past the last category with p > 0.
    n = p.size(-1)
    pos = torch.arange(n, device=p.device).expand(p.shape)
    last = torch.where(p > 0, pos, torch.zeros_like(pos)).amax(-1, keepdim=True)
    return torch.minimum(idx, last)


def multinomial(self: torch.Tensor, num_samples: int, replacement: bool = False, *,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    num_samples = int(num_samples)
    _check(self, num_samples, replacement)
    p = self.float() if self.dtype in (torch.float16, torch.bfloat16) else self
    if p.numel() == 0:
        return torch.empty(p.shape[:-1] + (num_samples,), dtype=torch.long, device=p.device)
    draw = _with_replacement if replacement else _without_replacement
    return draw(p, num_samples, generator).to(torch.long)


def multinomial_out(self: torch.Tensor, num_samples: int, replacement: bool = False, *,
                    generator: Optional[torch.Generator] = None,
                    out: torch.Tensor) -> torch.Tensor:
    r = multinomial(self, num_samples, replacement, generator=generator)
    out.resize_(r.shape)
    return out.copy_(r)


def register(lib: torch.library.Library) -> int:
    lib.impl("multinomial", multinomial, "PrivateUse1")
    lib.impl("multinomial.out", multinomial_out, "PrivateUse1")
    return 2
