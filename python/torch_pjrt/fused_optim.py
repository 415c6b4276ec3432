"""Device kernels for the fused optimizer steps (_fused_adam_, _fused_adamw_,
_fused_sgd_, both lr overloads) and the foreach step counters around them, so
that `torch.optim.AdamW(fused=True)` on the eager "pjrt" device is one compiled
device program per step and per parameter-group signature, not a CPU fallback.

Each call traces the update of every tensor in its lists (make_fx on fake
tensors) into one FX graph, compiled once per signature (shapes, dtypes, flags,
constant hyperparameters) over pjrt tensors (compiled.CompiledGraph: no host
copies). The updated params/states are installed straight into the storages of
the input tensors (compiled_device writebacks); tensors that are views of a
larger storage get a device copy_. lr goes in as a float64 device scalar, so a
learning-rate schedule does not recompile. The math follows PyTorch's fused CPU
kernels (FusedAdamKernel.cpp, FusedSGDKernel.cpp): scalar coefficients in
float64, the elementwise update in the parameter's op-math type (float32 for
bfloat16/float16), grads divided by grad_scale and stored back, and nothing
written when found_inf == 1.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

_lock = threading.Lock()
_programs: "OrderedDict[Tuple[Any, ...], Any]" = OrderedDict()
_MAX_PROGRAMS = 64  # least recently used signatures are dropped past this
_lr_tensors: "OrderedDict[Tuple[Any, ...], torch.Tensor]" = OrderedDict()
stats = {"compiled": 0, "calls": 0}


def _tensor_key(ts: Sequence[torch.Tensor]) -> Tuple[Any, ...]:
    return tuple([(t.dtype, t.shape) for t in ts])


def _compile(name: str, fn: Callable, args: List[torch.Tensor],
             dests: Sequence[int]) -> Callable[[List[torch.Tensor]], Any]:
    """A callable running `fn`, traced over `args`, as one compiled program;
    output i is written to args[dests[i]]."""
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch._decomp import core_aten_decompositions
    from . import backend, compiled, compiled_device
    # Not backend.decompositions(): that table is built once, and must be
    # built after Dynamo has registered prims.fma.
    gm = make_fx(fn, tracing_mode="fake", decomposition_table=core_aten_decompositions())(*args)
    graph = backend.compile_graph(gm, f"{name}_{stats['compiled'] + 1}",
                                  writebacks=[(i, pos) for i, pos in enumerate(dests)],
                                  on_device=True)
    prog = graph.program(args) if isinstance(graph, compiled.CompiledGraph) else None
    if type(prog) is not compiled_device.DeviceProgram:
        return lambda a: graph(*a)  # partitioned (config.fallback = "cpu"), or no program
    run = compiled_device.run
    # The key of _run already fixes the signature: run the program directly.
    return lambda a: run(prog, a)


def _run(key: Tuple[Any, ...], name: str, fn: Callable, args: List[torch.Tensor],
         dests: Sequence[int]) -> None:
    """Runs the cached program for `key` (compiling it on a miss) and writes
    its outputs into args[dests[i]] (in place when the program installed them
    into the storage already; a device copy_ otherwise)."""
    with _lock:
        prog = _programs.get(key)
        if prog is not None:
            _programs.move_to_end(key)
    if prog is None:
        prog = _compile(name, fn, args, dests)
        with _lock:
            _programs[key] = prog
            stats["compiled"] += 1
            while len(_programs) > _MAX_PROGRAMS:
                _programs.popitem(last=False)
    stats["calls"] += 1
    outs = prog(args)
    for out, pos in zip(outs, dests):
        dst = args[pos]
        if out.data_ptr() != dst.data_ptr():  # not installed into dst's storage
            dst.copy_(out)


def _lr_arg(op: str, lr: Any, device: torch.device) -> torch.Tensor:
    """lr as a float64 scalar on `device` (a float is uploaded once per value)."""
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise RuntimeError(f"{op}: lr must be a tensor with one element "
                               f"(got shape {tuple(lr.shape)})")
        return lr.reshape(()).to(device=device, dtype=torch.float64)
    key = (float(lr), str(device))
    t = _lr_tensors.get(key)
    if t is None:
        t = torch.tensor(float(lr), dtype=torch.float64).to(device)
        _lr_tensors[key] = t
        while len(_lr_tensors) > 16:
            _lr_tensors.popitem(last=False)
    return t


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _check_lists(op: str, params: Sequence[torch.Tensor], **lists: Sequence[Any]) -> None:
    n = len(params)
    for name, ts in lists.items():
        if len(ts) != n:
            raise RuntimeError(f"{op}: {name} has {len(ts)} tensors, expected {n} "
                               f"(one per parameter)")
    dev = params[0].device
    for name, ts in (("params", params), *lists.items()):
        for t in ts:
            if t.device != dev:
                raise RuntimeError(f"{op}: {name} holds a tensor on {t.device}, expected "
                                   f"all tensors on {dev}")
    for p in params:
        if not p.dtype.is_floating_point:
            raise RuntimeError(f"{op}: params must be floating point (got {p.dtype})")


def _lerp(m: torch.Tensor, g: torch.Tensor, w: float, work: torch.dtype) -> torch.Tensor:
    """m.lerp(g, w) as the CPU kernel writes it (the form depends on |w|)."""
    if abs(w) < 0.5:
        return m + w * (g - m)
    one_minus = float(torch.tensor(1.0, dtype=work) - torch.tensor(w, dtype=work))
    return g - (g - m) * one_minus


class _AdamConsts:
    __slots__ = ("beta1", "beta2", "wd", "eps", "amsgrad", "maximize", "adamw")

    def __init__(self, *vals: Any):
        for name, v in zip(self.__slots__, vals):
            setattr(self, name, v)

    def key(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)


def _adam_one(c: _AdamConsts, p, g, m, v, vmax, step, lr, scale):
    """New (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq) of one tensor."""
    work = _opmath(p.dtype)
    s = step.reshape(()).to(torch.float64)
    bc1 = 1 - torch.pow(c.beta1, s)
    bc2_sqrt = torch.sqrt(1 - torch.pow(c.beta2, s))
    step_size = (lr / bc1).to(work)
    gw, pw = g.to(work), p.to(work)
    if scale is not None:
        gw = gw / scale.reshape(()).to(work)
        g = gw.to(g.dtype)
    if c.maximize:
        gw = -gw
    if c.wd != 0:
        if c.adamw:
            pw = pw * (1 - lr * c.wd).to(work)
        else:
            gw = gw + pw * c.wd
    m_new = _lerp(m.to(work), gw, 1 - c.beta1, work)
    v_new = v.to(work) * c.beta2 + (1 - c.beta2) * gw * gw
    if c.amsgrad:
        vmax = torch.maximum(vmax.to(work), v_new)
        denom = torch.sqrt(vmax) / bc2_sqrt.to(work) + c.eps
        vmax = vmax.to(p.dtype)
    else:
        denom = torch.sqrt(v_new) / bc2_sqrt.to(work) + c.eps
    p_new = pw + (-step_size) * m_new / denom
    return p_new.to(p.dtype), g, m_new.to(m.dtype), v_new.to(v.dtype), vmax


def _skip(found_inf: Optional[torch.Tensor], new: torch.Tensor, old: torch.Tensor):
    """`old` where found_inf == 1 (the CPU kernels then return at once)."""
    if found_inf is None:
        return new
    return torch.where(found_inf.reshape(()) == 1.0, old, new)


def _adam_fn(c: _AdamConsts, n: int, has_scale: bool, has_inf: bool) -> Callable:
    def fn(*flat):
        lists = [flat[i * n:(i + 1) * n] for i in range(6 if c.amsgrad else 5)]
        rest = list(flat[len(lists) * n:])
        lr = rest.pop(0)
        scale = rest.pop(0) if has_scale else None
        inf = rest.pop(0) if has_inf else None
        ps, gs, ms, vs = lists[:4]
        vmaxs = lists[4] if c.amsgrad else [None] * n
        steps = lists[-1]
        out: List[List[torch.Tensor]] = [[], [], [], [], []]
        for i in range(n):
            new = _adam_one(c, ps[i], gs[i], ms[i], vs[i], vmaxs[i], steps[i], lr, scale)
            old = (ps[i], gs[i], ms[i], vs[i], vmaxs[i])
            for k in range(5):
                if new[k] is not None and (k != 1 or has_scale):
                    out[k].append(_skip(inf, new[k], old[k]))
        return tuple(t for group in (out[0], out[2], out[3], out[4], out[1]) for t in group)
    return fn


def _fused_adam(adamw: bool) -> Callable:
    op = "_fused_adamw_" if adamw else "_fused_adam_"

    def kernel(self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, lr,
               beta1, beta2, weight_decay, eps, amsgrad, maximize, grad_scale=None,
               found_inf=None):
        params = list(self)
        if not params:
            return
        _check_lists(op, params, grads=grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
                     state_steps=state_steps,
                     **({"max_exp_avg_sqs": max_exp_avg_sqs} if amsgrad else {}))
        if not amsgrad and len(max_exp_avg_sqs):
            raise RuntimeError(f"{op}: max_exp_avg_sqs must be empty without amsgrad "
                               f"(got {len(max_exp_avg_sqs)} tensors)")
        dev = params[0].device
        c = _AdamConsts(float(beta1), float(beta2), float(weight_decay), float(eps),
                        bool(amsgrad), bool(maximize), adamw)
        n = len(params)
        lists = [params, list(grads), list(exp_avgs), list(exp_avg_sqs)]
        if amsgrad:
            lists.append(list(max_exp_avg_sqs))
        lists.append(list(state_steps))
        args = [t for ts in lists for t in ts] + [_lr_arg(op, lr, dev)]
        extra = [t.to(dev) for t in (grad_scale, found_inf) if t is not None]
        args += extra
        # outputs: params, exp_avgs, exp_avg_sqs, [max_exp_avg_sqs], [grads]
        order = [0, 2, 3] + ([4] if amsgrad else []) + ([1] if grad_scale is not None else [])
        dests = [li * n + i for li in order for i in range(n)]
        key = (op, c.key(), grad_scale is not None, found_inf is not None,
               _tensor_key(args), str(dev))
        _run(key, op, _adam_fn(c, n, grad_scale is not None, found_inf is not None), args,
             dests)
    return kernel


# ------------------------------------------------------------------- SGD --

def _sgd_one(c: Tuple[Any, ...], p, g, buf, lr, scale):
    """New (param, grad, momentum_buffer) of one tensor (FusedSGDKernel's math)."""
    wd, momentum, dampening, nesterov, maximize, first = c
    work = _opmath(p.dtype)
    gw, pw = g.to(work), p.to(work)
    if scale is not None:
        gw = gw / scale.reshape(()).to(work)
        g = gw.to(g.dtype)
    if maximize:
        gw = -gw
    if wd != 0:
        gw = gw + pw * wd
    if momentum != 0:
        b = gw if first else buf.to(work) * momentum + gw * (1 - dampening)
        buf = b.to(buf.dtype)
        gw = gw + b * momentum if nesterov else b
    return (pw - gw * lr.to(work)).to(p.dtype), g, buf


def _sgd_fn(c: Tuple[Any, ...], n: int, has_scale: bool, has_inf: bool) -> Callable:
    has_buf = c[1] != 0

    def fn(*flat):
        ps, gs = flat[:n], flat[n:2 * n]
        bufs = flat[2 * n:3 * n] if has_buf else [None] * n
        rest = list(flat[(3 if has_buf else 2) * n:])
        lr = rest.pop(0)
        scale = rest.pop(0) if has_scale else None
        inf = rest.pop(0) if has_inf else None
        out: List[List[torch.Tensor]] = [[], [], []]
        for i in range(n):
            new = _sgd_one(c, ps[i], gs[i], bufs[i], lr, scale)
            old = (ps[i], gs[i], bufs[i])
            for k in range(3):
                if (k != 1 or has_scale) and (k != 2 or has_buf):
                    out[k].append(_skip(inf, new[k], old[k]))
        return tuple(t for group in (out[0], out[2], out[1]) for t in group)
    return fn


def fused_sgd_(self, grads, momentum_buffer_list, *, weight_decay, momentum, lr, dampening,
               nesterov, maximize, is_first_step, grad_scale=None, found_inf=None) -> None:
    op = "_fused_sgd_"
    params = list(self)
    if not params:
        return
    has_buf = float(momentum) != 0
    _check_lists(op, params, grads=grads,
                 **({"momentum_buffer_list": momentum_buffer_list} if has_buf else {}))
    dev, n = params[0].device, len(params)
    c = (float(weight_decay), float(momentum), float(dampening), bool(nesterov),
         bool(maximize), bool(is_first_step))
    args = params + list(grads) + (list(momentum_buffer_list) if has_buf else [])
    args += [_lr_arg(op, lr, dev)] + [t.to(dev) for t in (grad_scale, found_inf)
                                      if t is not None]
    order = [0] + ([2] if has_buf else []) + ([1] if grad_scale is not None else [])
    dests = [li * n + i for li in order for i in range(n)]
    key = (op, c, grad_scale is not None, found_inf is not None, _tensor_key(args), str(dev))
    _run(key, op, _sgd_fn(c, n, grad_scale is not None, found_inf is not None), args, dests)


# ------------------------------------------- foreach step counters --
# The fused (and foreach) optimizers bump their step tensors with
# _foreach_add_(steps, 1) and undo skipped steps with
# _foreach_sub_(steps, [found_inf] * n): one program for the whole list
# instead of one launch per tensor.

# dtypes whose device add rounds like the CPU's (no op-math widening)
_EXACT_FLOAT = (torch.float32, torch.float64)
_EXACT_INT = (torch.int32, torch.int64)


def _broadcasts_to(src: Sequence[int], dst: Sequence[int]) -> bool:
    try:
        return torch.broadcast_shapes(src, dst) == tuple(dst)
    except RuntimeError:
        return False


def _same_device(ts: Sequence[torch.Tensor]) -> bool:
    return bool(ts) and all(t.device == ts[0].device and t.device.type != "cpu" for t in ts)


def foreach_add_scalar_(self, scalar) -> None:
    ts = list(self)
    num = isinstance(scalar, (int, float)) and not isinstance(scalar, bool)
    ok = num and _same_device(ts) and all(
        t.dtype in _EXACT_FLOAT or (isinstance(scalar, int) and t.dtype in _EXACT_INT)
        for t in ts)
    if not ok:  # PyTorch's per-tensor path (its errors included)
        for t in ts:
            t.add_(scalar)
        return
    n = len(ts)

    def fn(*flat):
        return tuple(t + scalar for t in flat)
    _run(("_foreach_add_.Scalar", type(scalar), scalar, _tensor_key(ts), str(ts[0].device)),
         "_foreach_add_", fn, ts, list(range(n)))


def foreach_sub_list_(self, other, *, alpha=1) -> None:
    ts, os_ = list(self), list(other)
    ok = len(ts) == len(os_) and _same_device(ts + os_) and \
        isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and all(
            t.dtype in _EXACT_FLOAT and torch.result_type(t, o) == t.dtype
            and _broadcasts_to(o.shape, t.shape) for t, o in zip(ts, os_))
    if not ok:
        if len(ts) != len(os_):
            raise RuntimeError(f"_foreach_sub_.List: tensor lists must have the same length "
                               f"(got {len(ts)} and {len(os_)})")
        for t, o in zip(ts, os_):
            t.sub_(o, alpha=alpha)
        return
    n = len(ts)

    def fn(*flat):
        return tuple(torch.sub(flat[i], flat[n + i], alpha=alpha) for i in range(n))
    _run(("_foreach_sub_.List", alpha, _tensor_key(ts + os_), str(ts[0].device)),
         "_foreach_sub_", fn, ts + os_, list(range(n)))


def register(lib: torch.library.Library) -> int:
    """Registers the kernels on PrivateUse1 in `lib`; returns how many."""
    kernels = {"_fused_adam_": _fused_adam(False), "_fused_adamw_": _fused_adam(True),
               "_fused_sgd_": fused_sgd_}
    n = 0
    for name, fn in kernels.items():
        for overload in (name, name + ".tensor_lr"):
            lib.impl(overload, fn, "PrivateUse1")
            n += 1
    lib.impl("_foreach_add_.Scalar", foreach_add_scalar_, "PrivateUse1")
    lib.impl("_foreach_sub_.List", foreach_sub_list_, "PrivateUse1")
    return n + 2
