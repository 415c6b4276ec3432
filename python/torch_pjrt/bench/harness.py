"""Measurement: correctness guard, warm-up, interleaved repetitions (A B A B),
median/min/max, first-call (compile) time, bytes moved by torch-pjrt per call
and peak RSS."""
from __future__ import annotations

import gc
import resource
import statistics
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


def _pjrt_bytes():
    import torch_pjrt
    m = torch_pjrt.metrics()
    return m.get("bytes_h2d", 0) + m.get("bytes_d2h", 0)


def measure(wl, systems, reps, log):
    """Returns {system: row} for one workload; rows hold times or an error."""
    rows, runs = {}, {}
    want = None
    for sys in systems:
        row = rows.setdefault(sys.name, {"system": sys.name})
        try:
            run, readback = sys.prepare(wl)
            if getattr(sys, "note", ""):
                row["note"] = sys.note
            t0 = time.perf_counter()
            out = run()
            row["first_call_s"] = time.perf_counter() - t0
            got = readback(out)
            if sys.name == "eager":
                want = got
            elif want is None:
                raise RuntimeError("eager reference missing")
            else:
                err = max_rel_error(got, want)
                row["max_rel_error"] = err
                if not err <= wl.tol:
                    row["status"] = f"wrong result (max rel error {err:.2e} > {wl.tol:g})"
                    log(f"  {wl.name}/{sys.name}: {row['status']}")
                    continue
            run()  # second warm-up call
            runs[sys.name] = run
            row["status"] = "ok"
        except Exception as e:  # a failing system is reported, never timed
            row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
            log(f"  {wl.name}/{sys.name}: {row['status']}")
    times = {n: [] for n in runs}
    bytes_per_call = None
    for _ in range(reps):  # interleaved: A B C A B C ...
        for name, run in runs.items():
            b0 = _pjrt_bytes() if name == "pjrt" else 0
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
            if name == "pjrt":
                bytes_per_call = _pjrt_bytes() - b0
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name].update(median_s=med, min_s=min(ts), max_s=max(ts), reps=len(ts),
                          throughput=wl.items / med, unit=f"{wl.unit}/s")
        if wl.flops:
            rows[name]["gflops"] = wl.flops / med / 1e9
    if bytes_per_call is not None:
        rows["pjrt"]["bytes_moved_per_call"] = bytes_per_call
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for row in rows.values():
        row["process_peak_rss_mib"] = rss
    runs.clear()
    gc.collect()
    return rows
