"""Shape buckets for compiled graphs (issue 17): a graph that Dynamo traced
with a symbolic size in dimension 0 (`torch.compile(dynamic=True)`,
`torch._dynamo.mark_dynamic(x, 0)`, or Dynamo's automatic dynamic shapes
after a recompile) runs at a few bucket sizes instead of compiling a
program for every size. A call of size s runs the program of the smallest
bucket b >= s: its dynamic inputs are padded to b rows by repeating their
last row, and its dynamic outputs cut back to s rows.

That is only done where it is exact: the same proof export.save makes
(artifact_check.check_exact: no op mixes rows of the batch, wherever
artifact_layout finds it inside the graph) must hold for the whole graph,
else the graph keeps one program per size and the log says why. Buckets: `torch_pjrt.config.shape_buckets` (None: powers of two up
to the size's bound; a list of sizes; False: off).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import sympy
import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import artifact_check, config

log = logging.getLogger("torch_pjrt")

_HINT = "this graph compiles one program per size"


@dataclass
class Plan:
    """How the arguments and outputs of one graph carry the symbol."""
    symbol: sympy.Symbol
    name: str                       # the symbol as Dynamo names it ("s0")
    arg_scales: List[Optional[Tuple[str, int]]]  # per argument: ("tensor"|"int", c) or None
    out_scales: List[Optional[Tuple[str, int]]]  # per output leaf, the same
    upper: Optional[int]            # the size's bound, when Dynamo knows one

    def value(self, args: Sequence[Any]) -> Optional[int]:
        """The symbol's value in this call (None when the arguments disagree)."""
        value = None
        for a, sc in zip(args, self.arg_scales):
            if sc is None:
                continue
            n = (a.shape[0] if sc[0] == "tensor" else int(a))
            if n % sc[1] != 0 or (value is not None and n // sc[1] != value):
                return None
            value = n // sc[1]
        return value

    def bucket(self, value: int) -> Optional[int]:
        """The smallest bucket holding `value`, None when none does."""
        for b in buckets(self.upper):
            if b >= value:
                return b
        return None


def buckets(upper: Optional[int]) -> List[int]:
    """The bucket sizes in force: config.shape_buckets, or powers of two (up
    to `upper`, then `upper` itself, when there is a bound)."""
    chosen = config.shape_buckets
    if chosen:
        return sorted(int(b) for b in chosen)
    top = upper if upper is not None else 1 << 20
    out, b = [], 1
    while b < top:
        out.append(b)
        b *= 2
    out.append(top)
    return out


def _scale(val: Any, symbol: sympy.Symbol) -> Optional[Tuple[str, int]]:
    if isinstance(val, torch.Tensor) and val.dim() > 0:
        c = artifact_check.scale_of(val.shape[0], symbol)
        return ("tensor", c) if c is not None else None
    if isinstance(val, torch.SymInt):
        c = artifact_check.scale_of(val, symbol)
        return ("int", c) if c is not None else None
    return None


def _leading_symbols(vals: Sequence[Any]) -> set:
    """The symbols in dimension 0 of the tensor inputs (the batch candidates;
    other symbolic sizes, e.g. an image's height, stay one program per
    value)."""
    found = set()
    for v in vals:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            found |= artifact_check.free_symbols(v.shape[0])
    return found


def _upper(val: Any, symbol: sympy.Symbol) -> Optional[int]:
    """Dynamo's upper bound of the symbol (mark_dynamic(..., max=N)), if finite."""
    try:
        node = val.shape[0].node if isinstance(val, torch.Tensor) else val.node
        hi = node.shape_env.var_to_range[symbol].upper
        return int(hi) if hi.is_finite else None
    except Exception:  # noqa: BLE001 - shape-env internals vary across releases
        return None


def plan_for(gm: fx.GraphModule, name: str) -> Optional[Plan]:
    """The bucket plan of `gm`, or None (logged at INFO with the reason) when
    buckets are off, the inputs have no single symbolic size in dimension 0,
    or padding it is not exact. Other symbolic sizes are left alone: the
    graph compiles a program per value of them, as without buckets."""
    if config.shape_buckets is False:
        return None
    phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    vals = [n.meta.get("val") for n in phs]
    syms = _leading_symbols(vals)
    if len(syms) != 1:
        if len(syms) > 1:
            log.info("torch_pjrt: %s is not run in shape buckets: its inputs have %d "
                     "symbolic sizes in dimension 0 (%s; buckets take one)", name,
                     len(syms), ", ".join(sorted(map(str, syms))))
        return None
    symbol = next(iter(syms))
    try:
        artifact_check.check_exact(gm, symbol, str(symbol), who=f"torch_pjrt: {name}",
                                   hint=_HINT, others_static=True)
    except artifact_check.ArtifactError as e:
        log.info("%s", e)
        return None
    out = next(n for n in gm.graph.nodes if n.op == "output")
    out_vals = [a.meta.get("val") if isinstance(a, fx.Node) else a
                for a in pytree.tree_leaves(out.args[0])]
    arg_scales = [_scale(v, symbol) for v in vals]
    if not any(arg_scales):
        return None
    carrier = vals[next(i for i, s in enumerate(arg_scales) if s)]
    plan = Plan(symbol, str(symbol), arg_scales, [_scale(v, symbol) for v in out_vals],
                _upper(carrier, symbol))
    sizes = buckets(plan.upper)
    shown = ", ".join(map(str, sizes)) if len(sizes) <= 12 else (
        ", ".join(map(str, sizes[:6])) + ", ... (powers of two)")
    log.info("torch_pjrt: %s runs in shape buckets of %s (dim 0): %s", name, symbol, shown)
    return plan


def _pad(t: torch.Tensor, rows: int) -> torch.Tensor:
    """`t` grown to `rows` rows along dimension 0 by repeating its last row
    (zeros when it has none)."""
    extra = rows - t.shape[0]
    if t.shape[0] == 0:
        return t.new_zeros((rows,) + tuple(t.shape[1:]))
    tail = t[-1:].expand((extra,) + tuple(t.shape[1:]))
    return torch.cat([t, tail], 0)


class BucketedGraph:
    """A compiled graph called at bucket sizes (see the module docstring)."""

    def __init__(self, inner: Any, plan: Plan, name: str):
        self.inner = inner
        self.plan = plan
        self.name = name

    def __call__(self, *args: Any) -> Any:
        plan = self.plan
        value = plan.value(args)
        b = plan.bucket(value) if value is not None else None
        if b is None or b == value:
            return self.inner(*args)
        padded = [a if sc is None else
                  (_pad(a, sc[1] * b) if sc[0] == "tensor" else sc[1] * b)
                  for a, sc in zip(args, plan.arg_scales)]
        out = self.inner(*padded)
        leaves, spec = pytree.tree_flatten(out)
        cut = [v if sc is None else
               (v[: sc[1] * value] if sc[0] == "tensor" else sc[1] * value)
               for v, sc in zip(leaves, plan.out_scales + [None] * len(leaves))]
        return pytree.tree_unflatten(cut, spec)

    @property
    def num_programs(self) -> int:
        return self.inner.num_programs

    @property
    def history(self) -> Any:
        """The inner graph's compile history (recompile reasons name inputs)."""
        return self.inner.history
