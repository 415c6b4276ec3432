"""python -m torch_pjrt.bench [--quick|--full] [--device cpu|cuda] [--models NAME ...]
[--systems ...] [--deploy] [--ddp] [--spmd]

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

from torch_pjrt.bench import harness, peaks as peaks_mod, perop, report
from torch_pjrt.bench import systems as systems_mod, workloads


def _log(msg):
    print(msg, flush=True)


def resolve_device(flag, env):
    """The bench device: --device wins; else "cuda" when $TORCH_PJRT_PLUGIN is
    "cuda", else "cpu". Refuses --device cuda with another plugin named."""
    plugin = (env.get("TORCH_PJRT_PLUGIN") or "").strip().lower()
    device = flag or ("cuda" if plugin == "cuda" else "cpu")
    if device == "cuda" and plugin not in ("", "cuda") and not plugin.endswith(".so"):
        raise SystemExit(f"--device cuda: TORCH_PJRT_PLUGIN={plugin!r} names another plugin; "
                         f"unset it or set it to 'cuda'")
    return device


def cuda_preflight(torch_mod, env):
    """Checks that a CUDA run can start at all, before any system is built;
    points torch-pjrt at the CUDA plugin and allows TF32 on PyTorch's side
    (XLA's default precision uses TF32 for f32 dots and convolutions there)."""
    if not torch_mod.cuda.is_available():
        raise SystemExit(f"--device cuda: torch.cuda.is_available() is False (torch "
                         f"{torch_mod.__version__}, CUDA build: {torch_mod.version.cuda}); run on "
                         f"a machine with an NVIDIA GPU and a CUDA build of PyTorch, with the "
                         f"torch-pjrt CUDA plugin and jax[cuda12] installed")
    env.setdefault("TORCH_PJRT_PLUGIN", "cuda")
    torch_mod.backends.cuda.matmul.allow_tf32 = True
    torch_mod.backends.cudnn.allow_tf32 = True


def probe(system, workload, size, device):
    """Child process: one first call, printed as seconds (cold/warm compile)."""
    wl = {w.name: w for w in workloads.suite(size)}[workload]
    sys_ = systems_mod.all_systems([system], device)[0]
    if system == "torchax":
        import jax
        jax.config.update("jax_compilation_cache_dir", os.environ["TPJ_BENCH_CACHE"] + "/jax")
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    run, _ = sys_.prepare(wl)
    t0 = time.perf_counter()
    run()
    print(json.dumps({"first_call_s": time.perf_counter() - t0}))


def compile_times(names, workload, size, device):
    rows = {}
    cache = tempfile.mkdtemp(prefix="tpj-bench-cache-")
    env = dict(os.environ, TPJ_BENCH_CACHE=cache, TORCHINDUCTOR_CACHE_DIR=cache + "/inductor",
               TORCH_PJRT_CACHE_DIR=cache + "/pjrt")
    for name in names:
        res = {}
        for phase in ("cold", "warm"):
            penv = dict(env, TORCH_PJRT_DEVICE_NAME="off") if name == "torchax" else env
            p = subprocess.run([sys.executable, "-m", "torch_pjrt.bench", "--probe", name, workload,
                                "--size", size, "--device", device], env=penv,
                               capture_output=True, text=True)
            try:
                res[phase] = json.loads(p.stdout.strip().splitlines()[-1])["first_call_s"]
            except Exception:
                res[phase] = None
                res["error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:160]
        rows[name] = res
    return rows


def merge_child_rows(results, names, size, reps, device):
    """torchax renames PyTorch's PrivateUse1 backend to "jax" without device
    hooks, after which torch 2.13's Dynamo fails in torch.accelerator (and the
    eager pjrt device needs that slot too). So torchax is timed in a child
    process, interleaved there with its own eager run; its rows are merged
    here and `eager_same_process_s` keeps that eager time for comparison."""
    out = tempfile.mktemp(suffix=".json")
    env = dict(os.environ, TORCH_PJRT_DEVICE_NAME="off")
    cmd = [sys.executable, "-m", "torch_pjrt.bench", "--systems", "eager", "torchax",
           "--size", size, "--reps", str(reps), "--device", device, "--child-run", out,
           "--models", *names]
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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench")
    ap.add_argument("--quick", action="store_true", help="small sizes (default)")
    ap.add_argument("--full", action="store_true", help="larger sizes")
    ap.add_argument("--models", nargs="*",
                    help="workload names (prefix match); 'perop' selects the per-op benchmark")
    ap.add_argument("--systems", nargs="*", choices=systems_mod.SYSTEM_NAMES, metavar="SYSTEM",
                    help=" ".join(systems_mod.SYSTEM_NAMES))
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None,
                    help="cuda: torch-pjrt on the CUDA plugin vs PyTorch CUDA eager/Inductor "
                         "and torchax on JAX's GPU backend, 'gpu' sizes (default: cuda when "
                         "$TORCH_PJRT_PLUGIN=cuda, else cpu)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--no-perop", action="store_true", help="skip the per-op overhead benchmark")
    ap.add_argument("--out", default=None, help="results directory (default bench/results)")
    ap.add_argument("--probe", nargs=2, metavar=("SYSTEM", "WORKLOAD"))
    ap.add_argument("--size", default=None, choices=sorted(workloads.SIZES))
    ap.add_argument("--child-run", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--deploy", action="store_true",
                    help="the deployment-latency bench instead (torch_pjrt/bench/deploy.py)")
    ap.add_argument("--ddp", action="store_true",
                    help="the DDP step-cost bench instead (torch_pjrt/bench/ddp.py); --reps "
                         "sets its timed steps")
    ap.add_argument("--spmd", action="store_true",
                    help="the SPMD step-cost bench instead (torch_pjrt/bench/spmd.py): GPT "
                         "under dp, fsdp and 2d layouts on meshes of XLA CPU devices; --reps "
                         "sets its timed steps")
    ap.add_argument("--devices", type=int, nargs="+", default=None,
                    help="device counts, one worker process each (--spmd; default 1 2 4 8)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (--ddp, --spmd)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved launches per row (--ddp, --spmd)")
    args = ap.parse_args(argv)
    args.device = resolve_device(args.device, os.environ)
    args.size = args.size or ("gpu" if args.device == "cuda" else ("full" if args.full else "quick"))
    return args


def plan_systems(names, child_run):
    """(systems for this process, torchax in a child process?). torchax cannot
    share a process with torch.compile or the eager pjrt device (see
    merge_child_rows), so it moves to a child whenever any of those runs here.
    eager always runs: it is the correctness reference."""
    names = list(names or systems_mod.SYSTEM_NAMES)
    others = [n for n in names if n not in systems_mod.CHILD_ONLY and n != "eager"]
    in_child = "torchax" in names and not child_run and bool(others)
    if in_child:
        names = [n for n in names if n != "torchax"]
    if "eager" not in names:
        names = ["eager"] + names
    return names, in_child


def main(argv=None):
    args = parse_args(argv)
    if args.deploy:
        from torch_pjrt.bench import deploy
        return deploy.main(args)
    if args.ddp:
        from torch_pjrt.bench import ddp
        return ddp.main(args)
    if args.spmd:
        from torch_pjrt.bench import spmd
        return spmd.main(args)
    size, device = args.size, args.device
    if device == "cuda":
        cuda_preflight(torch, os.environ)
    if args.probe:
        return probe(args.probe[0], args.probe[1], size, device)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    wls = workloads.suite(size)
    if args.models:
        wls = [w for w in wls if any(w.name.startswith(m) for m in args.models)]
    if device == "cuda":  # TF32 on every side: f32 results agree to ~1e-3 relative, not 1e-6
        for wl in wls:
            wl.tol = max(wl.tol, 1e-2)
    names, torchax_child = plan_systems(args.systems, args.child_run)
    syss = systems_mod.all_systems(names, device)
    reps = args.reps or (10 if size == "quick" else 20)
    peaks, peak_text = peaks_mod.gpu_peak() if device == "cuda" else peaks_mod.cpu_peak()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": socket.gethostname(), "size": size, "reps": reps, "device": device,
               "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
               "torch": torch.__version__, "peak_flops": peaks, "peak_text": peak_text,
               "plugin": os.environ.get("TORCH_PJRT_PLUGIN", "cpu"), "workloads": {}}
    if device == "cuda":
        results["machine"] += ", " + torch.cuda.get_device_name(0)
    for wl in wls:
        _log(f"[{wl.name}]")
        t0 = time.perf_counter()
        results["workloads"][wl.name] = harness.measure(wl, syss, reps, _log)
        _log(f"  done in {time.perf_counter() - t0:.1f}s")
    if args.child_run:  # the parent merges these rows and times compiles itself
        with open(args.child_run, "w") as f:
            json.dump(results["workloads"], f, default=str)
        return 0
    if torchax_child:
        _log("[torchax: a child process (it claims PyTorch's PrivateUse1 slot)]")
        results["torchax_note"] = merge_child_rows(results, [w.name for w in wls], size, reps,
                                                   device)
    tx = [s for s in syss if s.name == "torchax"]
    if tx:
        results["torchax_note"] = tx[0].note
    gpt = [w.name for w in wls if w.name == "gpt_train"]
    if gpt:
        _log("[compile time: gpt_train, cold and warm processes]")
        results["compile"] = {"workload": gpt[0],
                              "rows": compile_times([s.name for s in syss if s.name != "eager"]
                                                    + (["torchax"] if torchax_child else []),
                                                    gpt[0], size, device)}
    if not args.no_perop and (not args.models or "perop" in args.models):
        _log("[per-op overhead: bench/eager_overhead.py in a child process]")
        results["perop"] = perop.run_child()
    out_dir = args.out or os.path.join(os.getcwd(), "bench", "results")
    paths = report.write(results, out_dir)
    _log("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
