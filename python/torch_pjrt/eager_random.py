"""Random ops of the eager pjrt device that no single lowering covers, as
device ops drawing from the op's generator (or the device's default):

- multinomial: without replacement the exponential race (top-k of p / E with
  E ~ Exp(1), the law CPU's kernel samples), with replacement a search of
  uniforms in the rows' cumulative sums; CPU's input checks (no inf, nan or
  negative, a positive sum per row) cost one small synchronizing read;
- _standard_gamma (Marsaglia-Tsang), _sample_dirichlet, poisson (Knuth's
  product below rate 10, Hormann's PTRS above), binomial (geometric waiting
  times below n*p = 10, Hormann's BTRS above): exact rejection samplers run
  a few rounds for every element at once, then read one flag to see whether
  any element still waits (rarely: then more rounds);
- rrelu_with_noise: the random slopes of RReLU in training.
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


# ------------------------------------------------------ rejection samplers --

_ROUNDS = 4        # proposal rounds between two reads of the "all done" flag
_MAX_READS = 256   # a sampler that never accepts (a bug, not bad luck) raises


def _rejection(name: str, like: torch.Tensor, done: torch.Tensor, out: torch.Tensor, propose):
    """Runs `propose() -> (value, accepted)` until every element has taken its
    first accepted value; `done` marks elements fixed from the start."""
    for _ in range(_MAX_READS):
        for _ in range(_ROUNDS):
            val, ok = propose()
            out = torch.where(torch.logical_and(ok, torch.logical_not(done)), val, out)
            done = torch.logical_or(done, ok)
        if bool(done.all().cpu()):
            return out
    raise RuntimeError(f"{name}: the rejection sampler did not finish after "
                       f"{_MAX_READS * _ROUNDS} rounds")


def _work(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.dtype == torch.float64 else t.float()


def _gamma_work(alpha: torch.Tensor, gen) -> torch.Tensor:
    """Gamma(alpha, 1) in the working dtype (alpha already in it)."""
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)

    def propose():
        x = torch.empty_like(a).normal_(generator=gen)
        u = torch.empty_like(a).uniform_(generator=gen)
        v = (1 + c * x) ** 3
        ok = torch.logical_and(v > 0, torch.log(u) < 0.5 * x * x + d - d * v +
                               d * torch.log(torch.clamp(v, min=1e-30)))
        return d * v, ok

    # alpha <= 0 or nan: the smallest normal number, as CPU's kernel gives.
    fixed = torch.logical_not(alpha > 0)
    g = _rejection("_standard_gamma", alpha, fixed, torch.zeros_like(alpha), propose)
    u = 1 - torch.empty_like(a).uniform_(generator=gen)  # (0, 1]
    g = torch.where(boost, g * u ** (1 / torch.where(boost, alpha, torch.ones_like(alpha))), g)
    return torch.clamp(torch.where(fixed, torch.zeros_like(g), g), min=torch.finfo(alpha.dtype).tiny)


def standard_gamma(self: torch.Tensor, generator: Optional[torch.Generator] = None):
    return _gamma_work(_work(self), generator).to(self.dtype)


def sample_dirichlet(self: torch.Tensor, generator: Optional[torch.Generator] = None):
    g = _gamma_work(_work(self), generator)
    tiny = torch.finfo(g.dtype).tiny
    return (g / g.sum(-1, keepdim=True)).clamp(min=tiny).to(self.dtype)


def _poisson_small(lam: torch.Tensor, fixed: torch.Tensor, gen) -> torch.Tensor:
    """Knuth: the count of uniforms whose running product stays above e^-lam."""
    limit = torch.exp(-lam)
    state = {"prod": torch.ones_like(lam), "k": torch.zeros_like(lam)}

    def propose():
        state["prod"] = state["prod"] * torch.empty_like(lam).uniform_(generator=gen)
        stop = state["prod"] <= limit
        val = state["k"]
        state["k"] = state["k"] + 1
        return val, stop
    return _rejection("poisson", lam, fixed, torch.zeros_like(lam), propose)


def _poisson_large(lam: torch.Tensor, fixed: torch.Tensor, gen) -> torch.Tensor:
    """Hormann's PTRS transformed rejection, for rates >= 10."""
    slam, loglam = torch.sqrt(lam), torch.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)

    def propose():
        u = torch.empty_like(lam).uniform_(generator=gen) - 0.5
        v = torch.empty_like(lam).uniform_(generator=gen)
        us = 0.5 - u.abs()
        k = torch.floor((2 * a / us + b) * u + lam + 0.43)
        quick = torch.logical_and(us >= 0.07, v <= vr)
        bad = torch.logical_or(k < 0, torch.logical_and(us < 0.013, v > us))
        lhs = torch.log(v) + torch.log(inv_alpha) - torch.log(a / (us * us) + b)
        rhs = -lam + k * loglam - torch.lgamma(k + 1)
        ok = torch.logical_or(quick, torch.logical_and(torch.logical_not(bad), lhs <= rhs))
        return k, ok
    return _rejection("poisson", lam, fixed, torch.zeros_like(lam), propose)


def poisson(self: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    lam = _work(self)
    if lam.numel() and bool((torch.logical_not(lam >= 0)).any().cpu()):
        raise RuntimeError("poisson: rates must be non-negative and not nan")
    large = lam >= 10
    small = _poisson_small(torch.where(large, torch.zeros_like(lam), lam), large, generator)
    big = _poisson_large(torch.where(large, lam, torch.full_like(lam, 10.0)),
                         torch.logical_not(large), generator)
    return torch.where(large, big, small).to(self.dtype)


def _binomial_small(n: torch.Tensor, p: torch.Tensor, fixed: torch.Tensor, gen):
    """Successes among n trials as geometric waiting times that fit in n
    (n * p < 10, p <= 1/2: about n * p + 1 rounds)."""
    log_q = torch.log1p(-p)
    state = {"used": torch.zeros_like(n), "k": torch.zeros_like(n)}

    def propose():
        u = 1 - torch.empty_like(n).uniform_(generator=gen)  # (0, 1]
        wait = torch.clamp(torch.ceil(torch.log(u) / log_q), min=1)
        state["used"] = state["used"] + wait
        stop = state["used"] > n
        val = state["k"]
        state["k"] = state["k"] + 1
        return val, stop
    return _rejection("binomial", n, fixed, torch.zeros_like(n), propose)


def _binomial_large(n: torch.Tensor, p: torch.Tensor, fixed: torch.Tensor, gen):
    """Hormann's BTRS transformed rejection (n * p >= 10, p <= 1/2)."""
    q = 1 - p
    spq = torch.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = torch.log(p / q)
    m = torch.floor((n + 1) * p)
    h = torch.lgamma(m + 1) + torch.lgamma(n - m + 1)

    def propose():
        u = torch.empty_like(n).uniform_(generator=gen) - 0.5
        v = torch.empty_like(n).uniform_(generator=gen)
        us = 0.5 - u.abs()
        k = torch.floor((2 * a / us + b) * u + c)
        inside = torch.logical_and(k >= 0, k <= n)
        quick = torch.logical_and(us >= 0.07, v <= vr)
        lv = torch.log(v * alpha / (a / (us * us) + b))
        kk = torch.clamp(k, min=0)
        rhs = h - torch.lgamma(kk + 1) - torch.lgamma(torch.clamp(n - kk, min=0) + 1) + (k - m) * lpq
        return k, torch.logical_and(inside, torch.logical_or(quick, lv <= rhs))
    return _rejection("binomial", n, fixed, torch.zeros_like(n), propose)


def binomial(count: torch.Tensor, prob: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    n, p = _work(count), _work(prob)
    n, p = torch.broadcast_tensors(n, p)
    if n.numel() and bool(torch.logical_not(torch.logical_and(
            torch.logical_and(p >= 0, p <= 1), n >= 0)).any().cpu()):
        raise RuntimeError("binomial: expected 0 <= prob <= 1 and count >= 0 (got a value "
                           "outside, or nan)")
    flip = p > 0.5
    pp = torch.where(flip, 1 - p, p)
    trivial = torch.logical_or(pp == 0, n == 0)
    large = torch.logical_and(n * pp >= 10, torch.logical_not(trivial))
    safe_p = torch.where(trivial, torch.full_like(pp, 0.25), pp)
    small = _binomial_small(n, safe_p, torch.logical_or(large, trivial), generator)
    big = _binomial_large(torch.where(large, n, torch.full_like(n, 100.0)),
                          torch.where(large, safe_p, torch.full_like(pp, 0.25)),
                          torch.logical_not(large), generator)
    k = torch.where(trivial, torch.zeros_like(n), torch.where(large, big, small))
    return torch.where(flip, n - k, k).to(count.dtype)


def rrelu_with_noise(self: torch.Tensor, noise: torch.Tensor, lower=1.0 / 8, upper=1.0 / 3,
                     training: bool = False, generator: Optional[torch.Generator] = None):
    if not training:
        return torch.nn.functional.leaky_relu(self, (float(lower) + float(upper)) / 2)
    r = torch.empty_like(self).uniform_(float(lower), float(upper), generator=generator)
    slope = torch.where(self <= 0, r, torch.ones_like(r))
    noise.copy_(slope.reshape(noise.shape) if noise.numel() == slope.numel() else slope)
    return self * slope


def register(lib: torch.library.Library) -> int:
    kernels = {"multinomial": multinomial, "multinomial.out": multinomial_out,
               "_standard_gamma": standard_gamma, "_sample_dirichlet": sample_dirichlet,
               "poisson": poisson, "binomial": binomial, "rrelu_with_noise": rrelu_with_noise}
    for name, fn in kernels.items():
        lib.impl(name, fn, "PrivateUse1")
    return len(kernels)
