"""python -m torch_pjrt.bench [--quick|--full] [--models NAME ...] [--systems ...]

Writes bench/results/<date>-<host>.{md,json,png}. See torch_pjrt/bench/__init__.py."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

import torch

from torch_pjrt.bench import harness, report, systems as systems_mod, workloads


def _log(msg):
    print(msg, flush=True)


def cpu_peak():
    """Peak FLOP/s from core count, vector width, FMA units and clock."""
    flags, mhz, model = set(), [], "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "flags":
                flags = set(v.split())
            elif k == "cpu MHz":
                mhz.append(float(v))
            elif k == "model name":
                model = v.strip()
    cores = len(os.sched_getaffinity(0))
    lanes = 16 if "avx512f" in flags else (8 if "avx2" in flags else 4)
    fma_units = 2 if "fma" in flags else 1
    ghz = (sum(mhz) / len(mhz) / 1000.0) if mhz else 0.0
    per_cycle = lanes * fma_units * 2  # an FMA is 2 FLOPs
    peak = cores * per_cycle * ghz * 1e9
    text = (f"{model}: {cores} cores x {lanes} f32 lanes ({'AVX-512' if lanes == 16 else 'AVX2'}) x "
            f"{fma_units} FMA units x 2 FLOP/FMA x {ghz:.2f} GHz (kernel-measured clock, /proc/cpuinfo) "
            f"= {peak / 1e9:.1f} GFLOP/s f32. No native bf16 FMA "
            f"({'avx512_bf16' if 'avx512_bf16' in flags else 'none'}): bf16 peak taken equal to f32.")
    return peak, text


def probe(system, workload, size):
    """Child process: one first call, printed as seconds (cold/warm compile)."""
    wl = {w.name: w for w in workloads.suite(size)}[workload]
    sys_ = {s.name: s for s in systems_mod.all_systems()}[system]
    if system == "torchax":
        import jax
        jax.config.update("jax_compilation_cache_dir", os.environ["TPJ_BENCH_CACHE"] + "/jax")
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    run, _ = sys_.prepare(wl)
    t0 = time.perf_counter()
    run()
    print(json.dumps({"first_call_s": time.perf_counter() - t0}))


def compile_times(names, workload, size):
    rows = {}
    cache = tempfile.mkdtemp(prefix="tpj-bench-cache-")
    env = dict(os.environ, TPJ_BENCH_CACHE=cache, TORCHINDUCTOR_CACHE_DIR=cache + "/inductor",
               TORCH_PJRT_CACHE_DIR=cache + "/pjrt")
    for name in names:
        res = {}
        for phase in ("cold", "warm"):
            penv = dict(env, TORCH_PJRT_DEVICE_NAME="off") if name == "torchax" else env
            p = subprocess.run([sys.executable, "-m", "torch_pjrt.bench", "--probe", name, workload,
                                "--size", size], env=penv, capture_output=True, text=True)
            try:
                res[phase] = json.loads(p.stdout.strip().splitlines()[-1])["first_call_s"]
            except Exception:
                res[phase] = None
                res["error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:160]
        rows[name] = res
    return rows


def merge_child_rows(results, names, size, reps):
    """torchax renames PyTorch's PrivateUse1 backend to "jax" without device
    hooks, after which torch 2.13's Dynamo fails in torch.accelerator (and the
    eager pjrt device needs that slot too). So torchax is timed in a child
    process, interleaved there with its own eager run; its rows are merged
    here and `eager_same_process_s` keeps that eager time for comparison."""
    out = tempfile.mktemp(suffix=".json")
    env = dict(os.environ, TORCH_PJRT_DEVICE_NAME="off")
    cmd = [sys.executable, "-m", "torch_pjrt.bench", "--systems", "eager", "torchax",
           "--size", size, "--reps", str(reps), "--child-run", out, "--models", *names]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(out):
        _log("  torchax run failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:200])
        return "torchax child process failed"
    with open(out) as f:
        rows = json.load(f)
    note = ""
    for name, r in rows.items():
        tx = dict(r.get("torchax", {"status": "not run"}))
        if "median_s" in r.get("eager", {}):
            tx["eager_same_process_s"] = r["eager"]["median_s"]
        note = tx.pop("note", note)
        results["workloads"].setdefault(name, {})["torchax"] = tx
    os.unlink(out)
    return note or "see the child process"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench")
    ap.add_argument("--quick", action="store_true", help="small sizes (default)")
    ap.add_argument("--full", action="store_true", help="larger sizes")
    ap.add_argument("--models", nargs="*", help="workload names (prefix match)")
    ap.add_argument("--systems", nargs="*", help="eager inductor pjrt torchax")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", default=None, help="results directory (default bench/results)")
    ap.add_argument("--probe", nargs=2, metavar=("SYSTEM", "WORKLOAD"))
    ap.add_argument("--size", default=None)
    ap.add_argument("--child-run", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    size = args.size or ("full" if args.full else "quick")
    if args.probe:
        return probe(args.probe[0], args.probe[1], size)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    wls = workloads.suite(size)
    if args.models:
        wls = [w for w in wls if any(w.name.startswith(m) for m in args.models)]
    names = args.systems or ["eager", "inductor", "pjrt", "pjrt_device", "torchax"]
    torchax_child = "torchax" in names and not args.child_run and len(names) > 2
    if torchax_child:  # see merge_child_rows
        names = [n for n in names if n != "torchax"]
    syss = systems_mod.all_systems(names)
    if not syss or syss[0].name != "eager":
        syss = [systems_mod.TorchSystem("eager")] + [s for s in syss if s.name != "eager"]
    reps = args.reps or (10 if size == "quick" else 20)
    peak, peak_text = cpu_peak()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": socket.gethostname(), "size": size, "reps": reps,
               "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
               "torch": torch.__version__, "cpu_peak_flops": peak, "cpu_peak_text": peak_text,
               "plugin": os.environ.get("TORCH_PJRT_PLUGIN", "cpu"), "workloads": {}}
    for wl in wls:
        _log(f"[{wl.name}]")
        t0 = time.perf_counter()
        results["workloads"][wl.name] = harness.measure(wl, syss, reps, _log)
        _log(f"  done in {time.perf_counter() - t0:.1f}s")
    gpt = [w.name for w in wls if w.name == "gpt_train"]
    if gpt:
        _log("[compile time: gpt_train, cold and warm processes]")
        results["compile"] = {"workload": gpt[0],
                              "rows": compile_times([s.name for s in syss if s.name != "eager"]
                                                     + (["torchax"] if torchax_child else []), gpt[0], size)}
    if args.child_run:
        with open(args.child_run, "w") as f:
            json.dump(results["workloads"], f, default=str)
        return 0
    if torchax_child:
        _log("[torchax: a child process (it claims PyTorch's PrivateUse1 slot)]")
        results["torchax_note"] = merge_child_rows(results, [w.name for w in wls], size, reps)
    tx = [s for s in syss if s.name == "torchax"]
    if tx:
        results["torchax_note"] = tx[0].note
    out_dir = args.out or os.path.join(os.getcwd(), "bench", "results")
    paths = report.write(results, out_dir)
    _log("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
