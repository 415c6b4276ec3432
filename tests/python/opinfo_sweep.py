"""OpInfo conformance sweep: every op of PyTorch's OpInfo database, its sample
inputs through torch.compile(backend="pjrt") against eager CPU, forward and
gradients, one JSON record per (op, dtype, pass, sample).

Library (used by tests/python/test_opinfo.py and tools/op_coverage.py) and
command line:
    python tests/python/opinfo_sweep.py --out build/opinfo_sweep.json [--ops add,mul]
        [--dtypes float32,bfloat16,int64] [--max-samples 6] [--no-grad]
        [--rerun-failed]   # re-run only ops that did not fully pass last time
        [--mode eager]     # tensors on the "pjrt" device, op by op (opinfo_eager.py)
Ops run in a worker subprocess (restarted after a crash or a hang), so one bad
op cannot stall or kill the sweep; results are merged into the JSON by op, so
re-running a subset after new lowerings land is cheap.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))

import torch  # noqa: E402
from torch.utils import _pytree as pytree  # noqa: E402

if HERE not in sys.path:
    sys.path.insert(0, HERE)
import opinfo_eager  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int64": torch.int64}
# (atol, rtol) per dtype; OpInfo's own toleranceOverride is used when larger.
TOLERANCES = {torch.float32: (1e-5, 1e-4), torch.bfloat16: (1e-2, 2e-2), torch.int64: (0, 0)}
SAMPLE_TIMEOUT_S = 60

# Unsupported by design, by OpInfo name (op.name) or prefix.
DATA_DEPENDENT = {
    "nonzero", "masked_select", "unique", "unique_consecutive", "argwhere", "bincount",
    "repeat_interleave", "nn.functional.ctc_loss", "masked_scatter", "histogram",
    "histogramdd", "combinations", "to_sparse", "corrcoef", "item", "allclose", "equal",
    "tolist", "nanquantile", "quantile",
}
RANDOM = {
    "bernoulli", "normal", "multinomial", "rand_like", "randn_like", "randint_like",
    "randint", "randn", "rand", "uniform", "cauchy", "exponential", "geometric", "log_normal",
    "nn.functional.rrelu", "nn.functional.fractional_max_pool2d",
    "nn.functional.fractional_max_pool3d", "empty", "empty_like", "new_empty",
    "empty_strided", "new_empty_strided", "empty_permuted", "torch.empty",
}
# Not Core ATen, but emitted by the Core-ATen decompositions / AOTAutograd
# themselves (e.g. empty_like -> empty_permuted): every backend must lower them.
PIPELINE_OPS = {"empty_permuted", "empty_strided", "empty", "new_empty", "new_empty_strided",
                "full", "scalar_tensor", "lift_fresh_copy", "copy", "alias", "_to_copy",
                "zeros", "ones", "arange", "as_strided", "copy_"}
NO_CORE_PREFIXES = ("linalg.", "fft.", "sparse.", "_refs.", "to_sparse", "view_as_complex",
                    "view_as_real", "cholesky", "lu", "svd", "qr", "geqrf", "ormqr",
                    "triangular_solve", "symeig", "eig", "pinverse", "inverse", "det",
                    "logdet", "slogdet", "matrix_exp", "lstsq", "householder_product",
                    "nn.functional.multi_head_attention_forward")


def op_key(op: Any) -> str:
    return op.name + ("." + op.variant_test_name if op.variant_test_name else "")


def load_op_db() -> List[Any]:
    try:
        import expecttest  # noqa: F401  (torch.testing._internal imports it)
    except ImportError:  # not in requirements.txt yet: only its TestCase base is used
        import types
        import unittest
        shim = types.ModuleType("expecttest")
        shim.TestCase = unittest.TestCase  # type: ignore[attr-defined]
        sys.modules["expecttest"] = shim
    from torch.testing._internal.common_methods_invocations import op_db
    return list(op_db)


def design_skip(op: Any, mode: str = "compile") -> Optional[str]:
    """Why an op is unsupported by design (None when it is swept). The eager
    device has no graph, so data-dependent output shapes are swept there."""
    if op.name in DATA_DEPENDENT and mode == "compile":
        return "data-dependent output shape"
    if op.name in RANDOM or "dropout" in op.name:
        return "random or uninitialized output (not comparable with eager)"
    if op.name.startswith(NO_CORE_PREFIXES):
        return "no Core-ATen decomposition (LAPACK/FFT/sparse/complex)"
    return None


def tolerance(op: Any, dtype: torch.dtype) -> Tuple[float, float]:
    atol, rtol = TOLERANCES[dtype]
    for info in getattr(op, "decorators", ()) or ():
        for dec in getattr(info, "decorators", ()) or ():
            tol = getattr(dec, "d", None)
            if not isinstance(tol, dict) or dtype not in tol:
                continue
            if isinstance(tol[dtype], (int, float)):  # precisionOverride: atol only
                atol = max(atol, float(tol[dtype]))
            else:  # toleranceOverride: tol(atol, rtol)
                atol, rtol = max(atol, tol[dtype].atol), max(rtol, tol[dtype].rtol)
    return atol, rtol


# ------------------------------------------------------------- one sample --

def _is_core(name: str) -> bool:
    """True when "aten::foo.overload" is tagged Core ATen (or cannot be resolved)."""
    if not name.startswith("aten::"):
        return False  # another namespace (torch_nn::, prims::...): not Core ATen
    overload = _overload(name)
    return overload is None or torch.Tag.core in overload.tags


def _overload(name: str) -> Any:
    m = re.match(r"aten::(\w+)\.(\w+)$", name)
    try:
        return getattr(getattr(torch.ops.aten, m.group(1)), m.group(2)) if m else None
    except AttributeError:
        return None


def _base(name: str) -> str:
    return name.replace("aten::", "").split(".")[0]


def _root_cause(exc: BaseException) -> BaseException:
    seen = 0
    while seen < 8:
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            return exc
        exc, seen = inner, seen + 1
    return exc


def classify_error(exc: BaseException, stage: str) -> Dict[str, Any]:
    """An exception from the compiled run -> status/cause/missing ops."""
    root = _root_cause(exc)
    text = f"{type(root).__name__}: {root}"
    first = text.strip().splitlines()[0][:300] if text.strip() else type(root).__name__
    if isinstance(root, TimeoutError):
        return {"status": "failed", "cause": "timeout", "detail": first}
    if type(root).__name__ == "UnsupportedOpError":
        m = re.search(r"unsupported ops in this graph: ([^(]+)", str(root))
        names = [n.strip() for n in m.group(1).split(",")] if m else re.findall(
            r"aten::[\w.]+", str(root))[:1]
        non_core = [n for n in names if not _is_core(n) and _base(n) not in PIPELINE_OPS]
        if non_core:
            return {"status": "unsupported", "cause": "no_core_decomposition",
                    "detail": ", ".join(non_core)}
        return {"status": "failed", "cause": "missing_lowering", "missing": names,
                "detail": first}
    if "DataDependent" in type(root).__name__ or "DynamicOutputShape" in type(root).__name__:
        return {"status": "unsupported", "cause": "data_dependent", "detail": first}
    dyn = sys.modules.get("torch._dynamo.exc")
    if dyn is not None and isinstance(root, (dyn.Unsupported, dyn.UserError)):
        low = text.lower()
        if "dynamic" in low or "data-dependent" in low or "data dependent" in low \
                or "item()" in low or "_local_scalar_dense" in low:
            return {"status": "unsupported", "cause": "data_dependent", "detail": first}
        return {"status": "unsupported", "cause": "dynamo_graph_break", "detail": first}
    if type(root).__name__ == "Error" and hasattr(root, "code"):  # torch_pjrt._C.Error
        cause = "compile_error" if "compile" in text.lower() else "runtime_error"
        return {"status": "failed", "cause": cause, "detail": first}
    cause = "compile_error" if "BackendCompilerFailed" in type(exc).__name__ else stage + "_error"
    return {"status": "failed", "cause": cause, "detail": first}


def _compare(actual: Any, expected: Any, atol: float, rtol: float) -> Tuple[bool, str, float]:
    """(ok, message, max abs diff) comparing two output structures."""
    a_flat, a_spec = pytree.tree_flatten(actual)
    e_flat, e_spec = pytree.tree_flatten(expected)
    if len(a_flat) != len(e_flat):
        return False, f"output structure differs: {a_spec} vs {e_spec}", float("nan")
    worst = 0.0
    for a, e in zip(a_flat, e_flat):
        if not isinstance(e, torch.Tensor):
            if a != e:
                return False, f"non-tensor output {a!r} != {e!r}", float("nan")
            continue
        if not isinstance(a, torch.Tensor):
            return False, f"expected a tensor, got {type(a).__name__}", float("nan")
        if a.shape == e.shape and a.dtype == e.dtype and e.numel():
            diff = (a.detach().double() - e.detach().double()).abs()
            diff = diff[~(torch.isnan(a.detach().double()) & torch.isnan(e.detach().double()))]
            if diff.numel():
                worst = max(worst, float(diff.nan_to_num(float("inf")).max()))
        # Tolerance follows the output dtype (sin(int64) is float32; indices are exact).
        if e.dtype.is_floating_point:
            t_atol, t_rtol = TOLERANCES.get(e.dtype, TOLERANCES[torch.float32])
            t_atol, t_rtol = max(atol, t_atol), max(rtol, t_rtol)
        else:
            t_atol, t_rtol = 0.0, 0.0
        try:
            torch.testing.assert_close(a.detach(), e.detach(), atol=t_atol, rtol=t_rtol,
                                       equal_nan=True, check_device=False)
        except AssertionError as err:
            msg = " ".join(str(err).split())[:300]
            return False, msg, worst
    return True, "", worst


# Ops whose tie order is unspecified in eager (std::sort / quickselect on CPU):
# their index outputs are right when they select equal keys, not equal indices.
TIE_ORDER_OPS = {"sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "mode"}


def _same_keys(inp: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> bool:
    """True if index tensors a and e pick equal values of inp along some dim."""
    x = inp.detach().reshape(1) if inp.ndim == 0 else inp.detach()
    for d in range(x.ndim):
        ia, ie = a, e
        if ia.ndim == x.ndim - 1:
            ia, ie = ia.unsqueeze(d), ie.unsqueeze(d)
        if ia.ndim != x.ndim:
            continue
        try:
            ga, ge = torch.gather(x, d, ia), torch.gather(x, d, ie)
        except (RuntimeError, IndexError):
            continue
        if torch.equal(ga.isnan(), ge.isnan()) and torch.equal(ga.nan_to_num(), ge.nan_to_num()):
            return True
    return False


def _compare_ties(inp: Any, actual: Any, expected: Any, atol: float,
                  rtol: float) -> Tuple[bool, str, float]:
    """_compare, except that int64 index outputs may differ where keys tie."""
    a_flat, _ = pytree.tree_flatten(actual)
    e_flat, _ = pytree.tree_flatten(expected)
    if not isinstance(inp, torch.Tensor) or len(a_flat) != len(e_flat):
        return _compare(actual, expected, atol, rtol)
    keep_a, keep_e = [], []
    for a, e in zip(a_flat, e_flat):
        if (isinstance(a, torch.Tensor) and isinstance(e, torch.Tensor) and e.dtype == torch.int64
                and a.shape == e.shape and not torch.equal(a, e)):
            if not _same_keys(inp, a, e):
                return False, "index output selects different keys than eager", float("nan")
            continue
        keep_a.append(a)
        keep_e.append(e)
    return _compare(keep_a, keep_e, atol, rtol)


class _Alarm:
    """signal.alarm-based timeout around one sample (main thread only)."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        if self.seconds and hasattr(signal, "SIGALRM"):
            def on_alarm(signum, frame):
                raise TimeoutError(f"sample took more than {self.seconds} s")
            self.old = signal.signal(signal.SIGALRM, on_alarm)
            signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds and hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.old)
        return False


def _split(sample: Any) -> Tuple[List[torch.Tensor], Any]:
    """Tensor leaves of (input, args, kwargs) and a rebuild function."""
    leaves, spec = pytree.tree_flatten((sample.input, sample.args, sample.kwargs))
    pos = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]
    tensors = [leaves[i] for i in pos]

    def rebuild(ts: List[torch.Tensor]) -> Tuple[Any, Any, Any]:
        new = list(leaves)
        for i, t in zip(pos, ts):
            new[i] = t
        return pytree.tree_unflatten(new, spec)
    return tensors, rebuild


def _clone(ts: List[torch.Tensor], grad: bool) -> List[torch.Tensor]:
    out = []
    for t in ts:
        c = t.detach().clone()
        if grad and t.requires_grad:
            c.requires_grad_(True)
        out.append(c)
    return out


def _grads(out: Any, inputs: List[torch.Tensor]) -> Optional[List[Optional[torch.Tensor]]]:
    """Gradients of the sum of the float outputs w.r.t. the float inputs."""
    outs = [o for o in pytree.tree_leaves(out)
            if isinstance(o, torch.Tensor) and o.requires_grad and o.dtype.is_floating_point]
    wrt = [t for t in inputs if t.requires_grad]
    if not outs or not wrt:
        return None
    total = sum(o.sum() for o in outs)
    return list(torch.autograd.grad(total, wrt, allow_unused=True))


def run_sample(op: Any, sample: Any, dtype: torch.dtype, grad: bool,
               timeout_s: int = SAMPLE_TIMEOUT_S) -> Dict[str, Any]:
    """Runs one sample eager and compiled; returns the forward (and, with
    grad=True, the gradient) outcome: {"fwd": {...}, "grad": {...}|None}."""
    import torch_pjrt  # registers the "pjrt" backend

    tensors, rebuild = _split(sample)
    if any(t.layout != torch.strided or t.is_complex() or t.is_quantized for t in tensors):
        why = {"status": "unsupported", "cause": "sparse_complex_quantized", "detail": ""}
        return {"fwd": why, "grad": None}

    def fn(*ts):
        inp, args, kwargs = rebuild(list(ts))
        return op(inp, *args, **kwargs)

    atol, rtol = tolerance(op, dtype)
    eager_in = _clone(tensors, grad)
    try:
        expected = fn(*eager_in)
        expected_grads = _grads(expected, eager_in) if grad else None
    except Exception as e:  # eager itself rejects the sample
        return {"fwd": {"status": "unsupported", "cause": "eager_raises",
                        "detail": f"{type(e).__name__}: {str(e)[:200]}"}, "grad": None}
    if any(isinstance(o, torch.Tensor) and (o.is_complex() or o.layout != torch.strided)
           for o in pytree.tree_leaves(expected)):
        return {"fwd": {"status": "unsupported", "cause": "sparse_complex_quantized",
                        "detail": "complex or sparse output"}, "grad": None}
    compiled = torch.compile(fn, backend="pjrt", dynamic=False, fullgraph=True)
    comp_in = _clone(tensors, grad)
    result: Dict[str, Any] = {"fwd": None, "grad": None}
    executions = torch_pjrt.metrics().get("executions", 0)
    try:
        with _Alarm(timeout_s):
            actual = compiled(*comp_in)
    except Exception as e:
        result["fwd"] = classify_error(e, "forward")
        return result
    if op.name in TIE_ORDER_OPS:
        ok, msg, diff = _compare_ties(rebuild(list(eager_in))[0], actual, expected, atol, rtol)
    else:
        ok, msg, diff = _compare(actual, expected, atol, rtol)
    result["fwd"] = ({"status": "passed", "max_abs_diff": diff} if ok else
                     {"status": "failed", "cause": "mismatch", "max_abs_diff": diff,
                      "detail": msg})
    # Device executions of the forward (0: nothing to compute, e.g. pure views).
    result["fwd"]["executions"] = torch_pjrt.metrics().get("executions", 0) - executions
    if not grad or expected_grads is None:
        return result
    try:
        with _Alarm(timeout_s):
            actual_grads = _grads(actual, comp_in)
    except Exception as e:
        result["grad"] = classify_error(e, "backward")
        return result
    ok, msg, diff = _compare(actual_grads, expected_grads, atol, rtol)
    result["grad"] = ({"status": "passed", "max_abs_diff": diff} if ok else
                      {"status": "failed", "cause": "mismatch", "max_abs_diff": diff,
                       "detail": msg})
    return result


# ----------------------------------------------------------------- one op --

def samples_for(op: Any, dtype: torch.dtype, grad: bool, max_samples: int) -> List[Any]:
    torch.manual_seed(0)
    out = []
    for s in op.sample_inputs("cpu", dtype, requires_grad=grad):
        out.append(s)
        if len(out) >= max_samples:
            break
    return out


def run_op(op: Any, dtypes: Iterable[torch.dtype], max_samples: int, with_grad: bool,
           timeout_s: int = SAMPLE_TIMEOUT_S, mode: str = "compile") -> List[Dict[str, Any]]:
    """All records for one op: one per (dtype, pass, sample) plus design skips.
    mode "compile": torch.compile(backend="pjrt"); "eager": tensors on the
    pjrt device, op by op (opinfo_eager.py)."""
    import torch._dynamo

    key = op_key(op)
    skip = design_skip(op, mode)
    if skip is not None:
        return [{"op": key, "dtype": None, "pass": "fwd", "sample": None,
                 "status": "unsupported", "cause": "by_design", "detail": skip}]
    supported = op.supported_dtypes("cpu")
    records = []
    for dtype in dtypes:
        if dtype not in supported:
            records.append({"op": key, "dtype": str(dtype)[6:], "pass": "fwd", "sample": None,
                            "status": "unsupported", "cause": "dtype_not_supported",
                            "detail": f"OpInfo lists no {str(dtype)[6:]} support on cpu"})
            continue
        grad = with_grad and op.supports_autograd and dtype.is_floating_point
        torch._dynamo.reset()
        try:
            samples = samples_for(op, dtype, grad, max_samples)
        except Exception as e:
            records.append({"op": key, "dtype": str(dtype)[6:], "pass": "fwd", "sample": None,
                            "status": "unsupported", "cause": "sample_inputs_raise",
                            "detail": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        for i, sample in enumerate(samples):
            try:
                if mode == "eager":
                    res = opinfo_eager.run_sample_eager(sys.modules[__name__], op, sample,
                                                        dtype, grad, timeout_s)
                else:
                    res = run_sample(op, sample, dtype, grad, timeout_s)
            except Exception as e:  # a bug of this harness, not of the backend
                res = {"fwd": {"status": "failed", "cause": "harness_error",
                               "detail": f"{type(e).__name__}: {str(e)[:200]}"}, "grad": None}
            for which in ("fwd", "grad"):
                if res[which] is not None:
                    records.append(dict(res[which], op=key, dtype=str(dtype)[6:],
                                        **{"pass": which, "sample": i}))
    torch._dynamo.reset()
    return records


def configure(quiet: bool = True) -> None:
    """fallback = "error" (missing lowerings become failures) and room for one
    compile per sample; quiet silences warnings (worker processes only)."""
    import torch._dynamo
    import torch_pjrt

    if not hasattr(torch_pjrt, "config") or not hasattr(torch_pjrt.config, "fallback"):
        raise RuntimeError("torch_pjrt.config.fallback does not exist: the sweep "
                           "cannot tell device execution from CPU fallback")
    torch_pjrt.config.fallback = "error"
    torch._dynamo.config.cache_size_limit = 1024
    if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
        torch._dynamo.config.accumulated_cache_size_limit = 1 << 16
    torch._dynamo.config.suppress_errors = False
    if quiet:
        import warnings
        warnings.filterwarnings("ignore")


# --------------------------------------------------------------- drivers --

def _worker(ops: List[str], dtypes: List[str], max_samples: int, grad: bool,
            out_path: str, mode: str = "compile") -> None:
    """Subprocess body: runs `ops`, appending JSON lines to out_path."""
    configure()
    by_key = {op_key(op): op for op in load_op_db()}
    with open(out_path, "a") as f:
        for key in ops:
            f.write(json.dumps({"event": "start", "op": key}) + "\n")
            f.flush()
            t0 = time.time()
            recs = run_op(by_key[key], [DTYPES[d] for d in dtypes], max_samples, grad,
                          mode=mode)
            for r in recs:
                f.write(json.dumps(r) + "\n")
            f.write(json.dumps({"event": "done", "op": key,
                                "seconds": round(time.time() - t0, 2)}) + "\n")
            f.flush()


def _read_lines(path: str) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def sweep(ops: List[str], dtypes: List[str], max_samples: int, grad: bool,
          stall_s: int, log=print, mode: str = "compile"
          ) -> Tuple[List[Dict[str, Any]], Dict[str, float]]:
    """Runs `ops` in worker subprocesses, restarting after a crash or a stall
    (no finished op for stall_s seconds); returns (records, seconds per op)."""
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix="opinfo_sweep_", suffix=".jsonl")
    os.close(fd)
    todo = list(ops)
    records: List[Dict[str, Any]] = []
    seconds: Dict[str, float] = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(ROOT, "python"), os.environ.get("PYTHONPATH", "")]))
    while todo:
        open(tmp, "w").close()
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--ops", ",".join(todo),
               "--dtypes", ",".join(dtypes), "--max-samples", str(max_samples),
               "--out", tmp, "--mode", mode] + ([] if grad else ["--no-grad"])
        err_file = open(tmp + ".err", "w+")  # a file, not a pipe: it cannot fill up
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
        last_progress, last_count = time.time(), 0
        while proc.poll() is None:
            time.sleep(1)
            n = len(_read_lines(tmp))
            if n != last_count:
                last_progress, last_count = time.time(), n
            elif time.time() - last_progress > stall_s:
                proc.kill()
                proc.wait()
                break
        lines = _read_lines(tmp)
        done = {ln["op"]: ln["seconds"] for ln in lines if ln.get("event") == "done"}
        started = [ln["op"] for ln in lines if ln.get("event") == "start"]
        records += [ln for ln in lines if "event" not in ln and ln["op"] in done]
        seconds.update(done)
        log(f"worker exited rc={proc.returncode}: {len(done)} ops done")
        todo = [k for k in todo if k not in done]
        if todo and started and started[-1] not in done:
            bad = started[-1]
            why = "timeout" if proc.returncode == -signal.SIGKILL else "crash"
            err_file.seek(0)
            err = err_file.read()
            records.append({"op": bad, "dtype": None, "pass": "fwd", "sample": None,
                            "status": "failed", "cause": why,
                            "detail": f"worker rc={proc.returncode}: "
                                      + " ".join(err.strip().splitlines()[-1:])[:300]})
            todo.remove(bad)
        elif todo and proc.returncode != 0:
            err_file.seek(0)
            raise RuntimeError(f"sweep worker failed before any op: {err_file.read()[-2000:]}")
        err_file.close()
    os.unlink(tmp)
    os.unlink(tmp + ".err")
    return records, seconds


def op_fully_passed(records: List[Dict[str, Any]], key: str) -> bool:
    return all(r["status"] != "failed" for r in records if r["op"] == key)


def merge_files(out: str, base: Dict[str, Any], paths: List[str]) -> int:
    """Merges records (by op and dtype: the later file wins) of sweep JSONs or of worker
    .jsonl streams (finished ops only) into `out`, e.g. after parallel runs."""
    records: Dict[Tuple[str, Any], List[Dict[str, Any]]] = {}
    for r in base.get("records", []):
        records.setdefault((r["op"], r["dtype"]), []).append(r)
    seconds, meta = dict(base.get("seconds", {})), dict(base.get("meta", {}))
    for path in paths:
        if path.endswith(".jsonl"):
            lines = _read_lines(path)
            done = {ln["op"]: ln["seconds"] for ln in lines if ln.get("event") == "done"}
            data = {"records": [ln for ln in lines if "event" not in ln and ln["op"] in done],
                    "seconds": done, "meta": {}}
        else:
            with open(path) as f:
                data = json.load(f)
        fresh: Dict[Tuple[str, Any], List[Dict[str, Any]]] = {}
        for r in data["records"]:
            fresh.setdefault((r["op"], r["dtype"]), []).append(r)
        records.update(fresh)
        seconds.update(data.get("seconds", {}))
        for k, v in data.get("meta", {}).items():
            meta.setdefault(k, v)
        if path != out and data.get("meta", {}).get("runs"):
            meta["runs"] = meta.get("runs", []) + data["meta"]["runs"]
        meta["dtypes"] = sorted(set(meta.get("dtypes", [])) |
                                set(data.get("meta", {}).get("dtypes", [])))
    meta["last_run_seconds"] = round(sum(seconds.values()), 1)
    meta["last_run_ops"] = len({op for op, _ in records})
    with open(out, "w") as f:
        json.dump({"meta": meta, "seconds": seconds,
                   "records": [r for rs in records.values() for r in rs]}, f)
    print(f"merged {len(paths)} files: {meta['last_run_ops']} ops -> {out}", file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="default build/opinfo_sweep[_eager].json")
    p.add_argument("--mode", choices=("compile", "eager"), default="compile",
                   help="torch.compile(backend=pjrt), or op by op on the pjrt device")
    p.add_argument("--ops", default="", help="comma-separated OpInfo names (default: all)")
    p.add_argument("--dtypes", default="float32,bfloat16,int64")
    p.add_argument("--max-samples", type=int, default=6)
    p.add_argument("--no-grad", action="store_true")
    p.add_argument("--rerun-failed", action="store_true")
    p.add_argument("--stall", type=int, default=180, help="seconds without progress")
    p.add_argument("--merge", nargs="+", default=[], metavar="FILE",
                   help="merge other sweep JSONs (or worker .jsonl streams) into --out")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.out is None:
        a.out = os.path.join(ROOT, "build", "opinfo_sweep_eager.json" if a.mode == "eager"
                             else "opinfo_sweep.json")
    if a.worker:
        _worker(a.ops.split(","), a.dtypes.split(","), a.max_samples, not a.no_grad, a.out,
                a.mode)
        return 0
    old: Dict[str, Any] = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = json.load(f)
    if a.merge:
        return merge_files(a.out, old, a.merge)
    # Loading op_db costs ~15 s: only when no op list is given.
    keys = [k for k in a.ops.split(",") if k] if a.ops else [op_key(op) for op in load_op_db()]
    if a.rerun_failed:
        keys = [k for k in keys if not op_fully_passed(old.get("records", []), k)]
    t0 = time.time()
    recs, secs = sweep(keys, a.dtypes.split(","), a.max_samples, not a.no_grad, a.stall,
                       log=lambda m: print(m, file=sys.stderr, flush=True), mode=a.mode)
    rerun, run_dtypes = set(keys), set(a.dtypes.split(","))
    merged = [r for r in old.get("records", []) if r["op"] not in rerun
              or (r["dtype"] is not None and r["dtype"] not in run_dtypes)] + recs
    seconds = {k: v for k, v in old.get("seconds", {}).items() if k not in rerun}
    seconds.update(secs)
    runs = old.get("meta", {}).get("runs", []) + [
        {"ops": len(keys), "dtypes": sorted(run_dtypes), "max_samples": a.max_samples,
         "grad": not a.no_grad, "seconds": round(time.time() - t0, 1)}]
    meta = {"torch": torch.__version__, "mode": a.mode, "runs": runs, "dtypes": sorted(run_dtypes | set(
                old.get("meta", {}).get("dtypes", []))),
            "max_samples": a.max_samples, "grad": not a.no_grad,
            "last_run_ops": len(keys), "last_run_seconds": round(time.time() - t0, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"meta": meta, "seconds": seconds, "records": merged}, f)
    print(f"{len(keys)} ops in {meta['last_run_seconds']} s -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
