"""Eager-device mode of the OpInfo sweep: each sample's tensors move to the
"pjrt" device and the op runs there op by op (the PrivateUse1 dispatch of
python/csrc/device.cpp), against the same op on CPU tensors.

torch_pjrt.config.fallback = "error" turns every op that would run on the CPU
instead into an exception, recorded as cause "fallback" with the ATen op named.
Used by opinfo_sweep.run_op(mode="eager"); shares its comparison, tolerance and
tie-order policy, so the two columns of docs/op_coverage.md mean the same thing.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

import torch
from torch.utils import _pytree as pytree

DEVICE = "pjrt"
# Tensor leaves (by position in (input, args, kwargs)) PyTorch requires on the
# CPU whatever the device of the input (tensor_split's split points).
CPU_ARGS = {"tensor_split": (1,)}
_FALLBACK_RE = re.compile(r"torch_pjrt: (aten::[\w.]+) cannot run on the pjrt device \((.*?)\) "
                          r"and torch_pjrt.config.fallback is 'error'")


def classify_eager_error(exc: BaseException, stage: str) -> Dict[str, Any]:
    """An exception of the device run -> status/cause (+ the op that fell back)."""
    text = f"{type(exc).__name__}: {exc}"
    first = " ".join(text.split())[:300]
    if isinstance(exc, TimeoutError):
        return {"status": "failed", "cause": "timeout", "detail": first}
    m = _FALLBACK_RE.search(str(exc))
    if m:
        return {"status": "failed", "cause": "fallback", "missing": [m.group(1)],
                "why": m.group(2)[:200], "detail": first}
    if "is not supported on the pjrt device" in str(exc):
        return {"status": "failed", "cause": "unsupported_view", "detail": first}
    return {"status": "failed", "cause": stage + "_error", "detail": first}


def _to_device(ts: List[torch.Tensor], grad: bool, cpu_args=()) -> List[torch.Tensor]:
    out = []
    for i, t in enumerate(ts):
        d = t.detach().to("cpu" if i in cpu_args else DEVICE)
        if grad and t.requires_grad:
            d.requires_grad_(True)
        out.append(d)
    return out


def _off_device(tree: Any) -> Optional[str]:
    """Why a tensor output is not a pjrt tensor (None when all are)."""
    for i, x in enumerate(pytree.tree_leaves(tree)):
        if isinstance(x, torch.Tensor) and x.device.type != DEVICE:
            return f"output {i} is on {x.device}, not on {DEVICE}"
    return None


def _names_device(sample: Any) -> bool:
    """True when the sample passes a device (x.to("cpu")): outputs may be anywhere."""
    leaves = pytree.tree_leaves((sample.args, sample.kwargs))
    return any(isinstance(x, torch.device) or (isinstance(x, str) and x in ("cpu", "meta"))
               for x in leaves)


def _to_cpu(tree: Any) -> Any:
    return pytree.tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, tree)


def _compare_any(sw: Any, op: Any, inp: Any, actual: Any, expected: Any, atol: float,
                 rtol: float):
    if op.name in sw.TIE_ORDER_OPS:
        return sw._compare_ties(inp, actual, expected, atol, rtol)
    return sw._compare(actual, expected, atol, rtol)


def _verdict(ok: bool, msg: str, diff: float) -> Dict[str, Any]:
    if ok:
        return {"status": "passed", "max_abs_diff": diff}
    return {"status": "failed", "cause": "mismatch", "max_abs_diff": diff, "detail": msg}


def run_sample_eager(sw: Any, op: Any, sample: Any, dtype: torch.dtype, grad: bool,
                     timeout_s: int) -> Dict[str, Any]:
    """Runs one sample on CPU and on the pjrt device; {"fwd": {...}, "grad": ...}.
    `sw` is the opinfo_sweep module (comparison and tolerance helpers)."""
    import torch_pjrt  # registers the device

    tensors, rebuild = sw._split(sample)
    if any(t.layout != torch.strided or t.is_complex() or t.is_quantized for t in tensors):
        why = {"status": "unsupported", "cause": "sparse_complex_quantized", "detail": ""}
        return {"fwd": why, "grad": None}

    def fn(*ts, device=None):
        inp, args, kwargs = rebuild(list(ts))
        if device is not None and "device" in kwargs:  # factories: arange, ones, windows
            kwargs = dict(kwargs, device=device)
        return op(inp, *args, **kwargs)

    atol, rtol = sw.tolerance(op, dtype)
    cpu_in = sw._clone(tensors, grad)
    try:
        expected = fn(*cpu_in)
        expected_grads = sw._grads(expected, cpu_in) if grad else None
    except Exception as e:  # eager CPU itself rejects the sample
        return {"fwd": {"status": "unsupported", "cause": "eager_raises",
                        "detail": f"{type(e).__name__}: {str(e)[:200]}"}, "grad": None}
    if any(isinstance(o, torch.Tensor) and (o.is_complex() or o.layout != torch.strided)
           for o in pytree.tree_leaves(expected)):
        return {"fwd": {"status": "unsupported", "cause": "sparse_complex_quantized",
                        "detail": "complex or sparse output"}, "grad": None}
    result: Dict[str, Any] = {"fwd": None, "grad": None}
    executions = torch_pjrt.metrics().get("executions", 0)
    try:
        with sw._Alarm(timeout_s):
            dev_in = _to_device(tensors, grad, cpu_args=CPU_ARGS.get(op.name, ()))
            actual = fn(*dev_in, device=DEVICE)
            wrong = None if _names_device(sample) else _off_device(actual)
            actual_cpu = _to_cpu(actual)
    except Exception as e:
        result["fwd"] = classify_eager_error(e, "forward")
        return result
    if wrong is not None and not any(isinstance(x, torch.Tensor) and x.device.type == DEVICE
                                     for x in dev_in):
        result["fwd"] = {"status": "unsupported", "cause": "no_device_input", "detail": wrong}
        return result
    if wrong is not None:
        result["fwd"] = {"status": "failed", "cause": "wrong_device", "detail": wrong}
        return result
    inp = rebuild(list(cpu_in))[0]
    result["fwd"] = _verdict(*_compare_any(sw, op, inp, actual_cpu, expected, atol, rtol))
    result["fwd"]["executions"] = torch_pjrt.metrics().get("executions", 0) - executions
    if not grad or expected_grads is None:
        return result
    try:
        with sw._Alarm(timeout_s):
            actual_grads = sw._grads(actual, dev_in)
            wrong = _off_device(actual_grads)
            grads_cpu = _to_cpu(actual_grads)
    except Exception as e:
        result["grad"] = classify_eager_error(e, "backward")
        return result
    if wrong is not None:
        result["grad"] = {"status": "failed", "cause": "wrong_device", "detail": wrong}
        return result
    result["grad"] = _verdict(*sw._compare(grads_cpu, expected_grads, atol, rtol))
    return result
