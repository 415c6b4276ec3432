"""Measurement: correctness guard, warm-up, interleaved rotated repetitions,
median/min/max, first-call (compile) time, bytes moved by torch-pjrt per call
and peak RSS; and the child-process launches of the DDP and SPMD benches
(child_env, run_launch)."""
from __future__ import annotations

import gc
import os
import resource
import signal
import statistics
import subprocess
import time

import torch


def _flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flatten(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    return []


def max_rel_error(got, want):
    """max |got - want| / max |want| over every tensor in the result trees."""
    g, w = _flatten(got), _flatten(want)
    if len(g) != len(w):
        return float("inf")
    worst = 0.0
    for a, b in zip(g, w):
        if a.shape != b.shape:
            return float("inf")
        a, b = a.double(), b.double()
        scale = max(b.abs().max().item() if b.numel() else 0.0, 1e-6)
        err = (a - b).abs().max().item() if b.numel() else 0.0
        if err != err:
            return float("inf")
        worst = max(worst, err / scale)
    return worst


# torch_pjrt.metrics() counters the profile takes deltas of.
PROFILE_KEYS = ("execute_seconds", "h2d_seconds", "d2h_seconds", "bytes_h2d", "bytes_d2h",
                "executions", "compile_seconds", "compiles", "disk_hits")


def _metrics():
    import torch_pjrt
    m = torch_pjrt.metrics()
    return {k: m.get(k, 0) for k in PROFILE_KEYS}


def _delta(before, after):
    return {k: after[k] - before[k] for k in PROFILE_KEYS}


def breakdown(step_s, per_step):
    """Splits one step's wall time (seconds) into plugin execute (launch and
    wait for completion), host->device and device->host copies, all from the
    runtime's counters, and Python/framework: the rest (Dynamo guards,
    AOTAutograd wrappers, argument packing, output wrapping, allocation).
    per_step: counter deltas per step. Returns {part: {"ms", "pct"}}."""
    parts = {"execute": per_step.get("execute_seconds", 0.0),
             "h2d": per_step.get("h2d_seconds", 0.0),
             "d2h": per_step.get("d2h_seconds", 0.0)}
    parts["python"] = max(step_s - sum(parts.values()), 0.0)
    return {k: {"ms": v * 1e3, "pct": 100.0 * v / step_s if step_s > 0 else 0.0}
            for k, v in parts.items()}


def error_text(e):
    """One line naming the root cause: Dynamo wraps backend errors as
    BackendCompilerFailed("backend='pjrt' raised:\n<the real error>")."""
    root, seen = e, {id(e)}
    while True:  # Dynamo keeps the backend's exception as inner_exception
        nxt = getattr(root, "inner_exception", None) or root.__cause__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        root = nxt
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if root is not e:
        return f"error: {type(e).__name__}: {type(root).__name__}: {msg[:200]}"
    return f"error: {type(e).__name__}: {msg[:200]}"


def profile(times, deltas):
    """The profile of one system from its per-rep times and counter deltas:
    the median step split by the median of each counter (medians, like the
    table, so one preempted rep on a shared machine does not skew the split)."""
    med = {k: statistics.median(d[k] for d in deltas) for k in PROFILE_KEYS}
    step = statistics.median(times)
    return {"step_ms": step * 1e3, "parts": breakdown(step, med),
            "launches_per_step": med["executions"], "bytes_h2d_per_step": med["bytes_h2d"],
            "bytes_d2h_per_step": med["bytes_d2h"],
            "compiles_during_timing": sum(d["compiles"] for d in deltas)}


def _prepare(wl, sys, row, want, log):
    """Builds, runs the first call (compile) and checks it against eager.
    Returns (run, got) or (None, None) after writing the reason into row."""
    try:
        run, readback = sys.prepare(wl)
        if getattr(sys, "note", ""):
            row["note"] = sys.note
        m0 = _metrics() if sys.counts_metrics else None
        t0 = time.perf_counter()
        out = run()
        row["first_call_s"] = time.perf_counter() - t0
        if m0 is not None:
            d = _delta(m0, _metrics())
            row["first_call_compile_s"] = d["compile_seconds"]
            row["first_call_compiles"] = d["compiles"]
            row["first_call_disk_hits"] = d["disk_hits"]
        got = readback(out)
        if sys.name != "eager":
            if want is None:
                raise RuntimeError("eager reference missing")
            err = max_rel_error(got, want)
            row["max_rel_error"] = err
            if not err <= wl.tol:
                row["status"] = f"wrong result (max rel error {err:.2e} > {wl.tol:g})"
                log(f"  {wl.name}/{sys.name}: {row['status']}")
                return None, None
        run()  # second warm-up call
        row["status"] = "ok"
        return run, got
    except Exception as e:  # a failing system is reported, never timed
        row["status"] = error_text(e)
        log(f"  {wl.name}/{sys.name}: {row['status']}")
        return None, None


def fresh_dynamo():
    """Dynamo caps the compiled variants of one code object (recompile_limit,
    8) and silently runs the frame eagerly beyond it. The workloads share
    code objects (_Loss.forward, the training step), so without a reset the
    later workloads' "compiled" systems would be timed as eager: clear
    Dynamo's caches before each workload, and make a hit of the limit an
    error instead of a silent eager run."""
    torch._dynamo.reset()
    torch._dynamo.config.fail_on_recompile_limit_hit = True


def measure(wl, systems, reps, log):
    """Returns {system: row} for one workload; rows hold times or an error.
    Systems with counts_metrics get a profile from the runtime's counters,
    read just outside each timed call (the reads are not timed)."""
    fresh_dynamo()
    rows, runs, want = {}, {}, None
    for sys in systems:
        row = rows.setdefault(sys.name, {"system": sys.name})
        run, got = _prepare(wl, sys, row, want, log)
        if sys.name == "eager":
            want = got
        if run is not None:
            runs[sys.name] = (run, sys.counts_metrics)
    times = {n: [] for n in runs}
    deltas = {n: [] for n, (_, c) in runs.items() if c}
    for rep in range(reps):
        # Interleaved and rotated (A B C, B C A, C A B, ...): each system runs
        # after each other equally often, so none always inherits the busy
        # cores of the one before it (OpenMP workers still spinning after an
        # eager or Inductor step).
        names = list(runs)
        k = rep % len(names) if names else 0
        for name in names[k:] + names[:k]:
            run, counted = runs[name]
            m0 = _metrics() if counted else None
            t0 = time.perf_counter()
            try:
                run()
            except Exception as e:  # e.g. a recompile in the timed loop: report, stop timing
                rows[name]["status"] = "timed call failed: " + error_text(e)[len("error: "):]
                log(f"  {wl.name}/{name}: {rows[name]['status']}")
                del runs[name], times[name]
                deltas.pop(name, None)
                continue
            times[name].append(time.perf_counter() - t0)
            if counted:
                deltas[name].append(_delta(m0, _metrics()))
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name].update(median_s=med, min_s=min(ts), max_s=max(ts), reps=len(ts),
                          throughput=wl.items / med, unit=f"{wl.unit}/s")
        if wl.flops:
            rows[name]["gflops"] = wl.flops / med / 1e9
        if name in deltas:
            rows[name]["profile"] = profile(ts, deltas[name])
            p = rows[name]["profile"]
            rows[name]["bytes_moved_per_call"] = p["bytes_h2d_per_step"] + p["bytes_d2h_per_step"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for row in rows.values():
        row["process_peak_rss_mib"] = rss
    runs.clear()
    gc.collect()
    return rows


# ------------------------------------------------- child-process launches --

def percentile(xs, p):
    """Nearest-rank percentile: the ceil(n p / 100)-th smallest of n samples."""
    xs = sorted(xs)
    if not xs:
        raise ValueError("percentile of no samples")
    return xs[max((len(xs) * p + 99) // 100 - 1, 0)]


def child_env(extra=None):
    """The environment of a bench's worker processes: the tree's python/ first
    on PYTHONPATH (the workers import torch_pjrt), one OpenMP thread per
    process unless $OMP_NUM_THREADS says otherwise (torchrun's default for
    N>1 processes, set for every launch so that rows differ only in what they
    measure), then `extra`."""
    pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def _children(pid):
    """PIDs whose parent is `pid` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def kill_tree(pid):
    """SIGKILL `pid`, its process group and its descendants: torchrun starts
    each worker in a session of its own, so killing torchrun's group alone
    leaves a hung worker running (and holding the output pipe open)."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    for p in reversed(seen):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def error_line(text):
    """The last line of a launch's output that mentions an error, cut to 300
    characters ("?" when none does)."""
    lines = [ln for ln in text.splitlines() if "Error" in ln or "error" in ln]
    return (lines[-1] if lines else "?")[:300]


def run_launch(cmd, env, timeout):
    """Runs one worker launch (stdout and stderr together) in a session of its
    own; one past `timeout` seconds is killed with every process it started.
    Returns {"returncode", "text", "wall_s"}, or {"error", "tail"} on a timeout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        text, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p.pid)
        text, _ = p.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "tail": text[-4000:]}
    return {"returncode": p.returncode, "text": text, "wall_s": time.perf_counter() - t0}
