"""python -m torch_pjrt.bench.compare WORKLOAD [WORKLOAD...] [--reps N] [--out DIR]

Shows where our programs differ from JAX's on the same model (issue 16). For
each workload of the bench suite it takes two sets of StableHLO text:

- JAX's: the model run through torchax and lowered with
  `jax.jit(...).lower(...).as_text()` (training: the whole value_and_grad
  step, as the bench's torchax system runs it), in a child process, since
  torchax takes PyTorch's PrivateUse1 slot (see bench/__main__.py);
- ours: every program torch.compile(backend="pjrt") compiles for one step
  (forward and backward separately), caught at CompiledGraph._compile.

Both are compiled by torch-pjrt's own client on the selected plugin and
executed on device buffers of random inputs shaped like each program's
parameters; the median of `execute` (which waits for the results) isolates
execute time from per-call overhead. Op histograms (compare_hlo.py) and a
one-line diagnosis per row (compare_report.py) say what differs. Writes
bench/results/<date>-compare.{md,json}."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from torch_pjrt.bench import compare_hlo as hlo
from torch_pjrt.bench import compare_report as report

DEFAULT_REPS = 20


def _log(msg: str) -> None:
    print(msg, flush=True)


def select(names: List[str], size: str) -> List[Any]:
    """Workloads by exact name, else by prefix; unknown names raise."""
    from torch_pjrt.bench import workloads
    suite = workloads.suite(size)
    by_name = {w.name: w for w in suite}
    out = []
    for n in names:
        hits = [by_name[n]] if n in by_name else [w for w in suite if w.name.startswith(n)]
        if not hits:
            raise SystemExit(f"unknown workload {n!r} (known: {', '.join(by_name)})")
        out += [w for w in hits if w not in out]
    return out


# ------------------------------------------------------------- JAX's side --

def _jax_lower(wl: Any, dev: Any, reps: int) -> Dict[str, Any]:
    """JAX's StableHLO for one workload via torchax, and JAX's own median
    time for the jitted call (for reference)."""
    import jax

    from torch_pjrt.bench import systems
    model, inputs = wl.build()
    mod = wl.loss_module(model) if wl.kind == "train" else wl.infer_module(model)
    fn, args = systems.jax_step(wl, mod, inputs, dev)
    text = fn.lower(*args).as_text()
    times = []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return {"text": text, "jax_call_ms": statistics.median(times) * 1e3 if times else None}


def jax_platform(env: Dict[str, str]) -> str:
    """JAX's platform for the plugin torch-pjrt selects: "cuda" when
    $TORCH_PJRT_PLUGIN is "cuda" (JAX's GPU backend), else "cpu" (the very
    xla-cpu-pjrt file torch-pjrt loads)."""
    return "cuda" if (env.get("TORCH_PJRT_PLUGIN") or "").strip().lower() == "cuda" else "cpu"


def jax_child(names: List[str], size: str, out: str, reps: int) -> int:
    """Child process: JAX's programs for `names`, written to `out` as JSON."""
    from torch_pjrt.bench import systems
    tx = systems.TorchaxSystem(platform=jax_platform(os.environ))
    dev = tx._device()  # the same plugin file as torch-pjrt, before torchax starts JAX
    systems._import_torchax()
    res: Dict[str, Any] = {"note": tx.note, "workloads": {}}
    for wl in select(names, size):
        try:
            res["workloads"][wl.name] = _jax_lower(wl, dev, reps)
        except Exception as e:  # noqa: BLE001 - reported per row
            res["workloads"][wl.name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    with open(out, "w") as f:
        json.dump(res, f)
    return 0


def jax_programs(names: List[str], size: str, reps: int) -> Dict[str, Any]:
    """Runs jax_child in a subprocess (torchax cannot share our process)."""
    fd, out = tempfile.mkstemp(suffix=".json", prefix="tpj-compare-")
    os.close(fd)
    import torch_pjrt  # the child imports this very package
    root = os.path.dirname(os.path.dirname(os.path.abspath(torch_pjrt.__file__)))
    path = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, TORCH_PJRT_DEVICE_NAME="off", PYTHONPATH=os.pathsep.join(path))
    cmd = [sys.executable, "-m", "torch_pjrt.bench.compare", "--jax-child", out,
           "--size", size, "--reps", str(reps), *names]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
            return {"error": f"torchax child failed: {tail}", "workloads": {}}
        with open(out) as f:
            return json.load(f)
    finally:
        os.unlink(out)


# -------------------------------------------------------------- our side --

def our_programs(wl: Any, system: str = "pjrt_dev_compile", reps: int = 5) -> Dict[str, Any]:
    """Every program torch.compile(backend="pjrt") compiles for one step of
    `wl` (name, text; the last signature of each graph), the fallback ops, and, over `reps` more steps
    as the bench runs them, the launches per step (programs and eager ops,
    from torch_pjrt.metrics()) and the median whole-step time."""
    import torch
    import torch_pjrt
    from torch_pjrt import compiled, fx_lower
    from torch_pjrt.bench import systems
    torch._dynamo.reset()
    programs: List[Dict[str, str]] = []
    fallbacks: List[str] = []
    orig_compile, orig_part = compiled.CompiledGraph._compile, compiled.PartitionedGraph.__init__

    def compile_hook(self, args, sig, checks):
        prog = orig_compile(self, args, sig, checks)
        if prog.lowered.text:  # a graph compiled again (a new signature) replaces its last
            programs[:] = [p for p in programs if p["name"] != self.name]
            programs.append({"name": self.name, "text": prog.lowered.text})
        return prog

    def part_hook(self, gm, unsupported, *a, **k):
        fallbacks.extend(sorted({fx_lower.op_name(n) for n in unsupported}))
        orig_part(self, gm, unsupported, *a, **k)

    compiled.CompiledGraph._compile = compile_hook
    compiled.PartitionedGraph.__init__ = part_hook
    try:
        sys_ = (systems.PjrtDevCompileSystem() if system == "pjrt_dev_compile"
                else systems.TorchSystem("pjrt", "pjrt"))
        run, _ = sys_.prepare(wl)
        run()
        run()
    finally:
        compiled.CompiledGraph._compile = orig_compile
        compiled.PartitionedGraph.__init__ = orig_part
    before = torch_pjrt.metrics().get("executions", 0)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    launches = torch_pjrt.metrics().get("executions", 0) - before
    return {"programs": programs, "fallbacks": fallbacks,
            "launches_per_step": launches / max(reps, 1),
            "step_ms": statistics.median(times) * 1e3 if times else None}


# ---------------------------------------------------------------- timing --

def random_args(text: str, cl: Any, seed: int = 0) -> List[Any]:
    """Device buffers of random values for each parameter of @main: normal
    floats, integers in [0, 8) (in range for the suite's ids and classes),
    random booleans."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    floats = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32,
              "f64": torch.float64, "complex<f32>": torch.complex64,
              "complex<f64>": torch.complex128}
    ints = {"i8": torch.int8, "i16": torch.int16, "i32": torch.int32, "i64": torch.int64,
            "ui8": torch.uint8, "ui16": torch.int16, "ui32": torch.int32, "ui64": torch.int64}
    bufs = []
    for dims, elem in hlo.signature(text)["params"]:
        shape = tuple(max(d, 0) for d in dims)
        if elem in floats:
            t = torch.randn(shape, generator=gen, dtype=floats[elem])
        elif elem in ints:  # unsigned: the same bits in the signed type of that width
            t = torch.randint(0, 8, shape, generator=gen, dtype=ints[elem])
        elif elem == "i1":
            t = torch.rand(shape, generator=gen) < 0.5
        else:
            raise ValueError(f"parameter type {elem} is not supported")
        code = hlo.ELEMENTS[elem][1]
        t = t.contiguous()
        bufs.append(cl.buffer_from_host(t.data_ptr(), t.numel() * t.element_size(), code,
                                        shape))
    return bufs


def time_programs(items: List[Dict[str, Any]], reps: int, warmup: int = 3) -> None:
    """Sets item['ms'] (median) and item['min_ms'] for every item (keys exe,
    args), interleaving the items rep by rep so drift hits all alike."""
    times: Dict[int, List[float]] = {i: [] for i in range(len(items))}
    for r in range(warmup + reps):
        order = list(range(len(items)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            it = items[i]
            t0 = time.perf_counter()
            outs = it["exe"].execute(it["args"])
            t1 = time.perf_counter()
            del outs
            if r >= warmup:
                times[i].append(t1 - t0)
    for i, it in enumerate(items):
        it["ms"] = statistics.median(times[i]) * 1e3
        it["min_ms"] = min(times[i]) * 1e3


def _result_bytes(text: str) -> int:
    return sum(hlo.type_bytes(t) for t in hlo.signature(text)["results"])


def compare_workload(wl: Any, jax_entry: Dict[str, Any], reps: int,
                     system: str) -> Dict[str, Any]:
    """One row: both sides' programs compiled and timed, their statistics,
    the differences and the diagnosis."""
    from torch_pjrt import compiled
    row: Dict[str, Any] = {"kind": wl.kind, "system": system}
    if "text" not in jax_entry:
        row["error"] = "JAX side: " + jax_entry.get("error", "no program")
        return row
    ours = our_programs(wl, system, reps)
    if not ours["programs"]:
        row["error"] = "ours: no program compiled"
        return row
    cl = compiled.client()
    items = [{"side": "ours", "name": p["name"], "text": p["text"]} for p in ours["programs"]]
    items.append({"side": "jax", "name": "jax", "text": jax_entry["text"]})
    for it in items:
        t0 = time.perf_counter()
        it["exe"] = cl.compile(it["text"])
        it["compile_s"] = time.perf_counter() - t0
        it["args"] = random_args(it["text"], cl)
    time_programs(items, reps)
    mine = [it for it in items if it["side"] == "ours"]
    st_o = hlo.merge([hlo.stats(it["text"]) for it in mine])
    st_j = hlo.stats(jax_entry["text"])
    ours_ms = sum(it["ms"] for it in mine)
    jax_ms = items[-1]["ms"]
    ratio = ours_ms / jax_ms if jax_ms > 0 else None
    ours_min = sum(it["min_ms"] for it in mine)
    fwd = [it for it in mine if it["name"].startswith("forward")]
    between = _result_bytes(fwd[0]["text"]) if fwd and len(mine) > 1 else 0
    row.update({
        "ours_ms": ours_ms, "jax_ms": jax_ms, "ratio": ratio,
        "ratio_min": ours_min / items[-1]["min_ms"] if items[-1]["min_ms"] > 0 else None,
        "jax_call_ms": jax_entry.get("jax_call_ms"),
        "ours_programs": [{"name": it["name"], "ms": it["ms"], "min_ms": it["min_ms"],
                           "compile_s": it["compile_s"],
                           "params": len(it["args"]), "ops": sum(hlo.stats(it["text"])["ops"]
                                                                  .values()),
                           "result_bytes": _result_bytes(it["text"])} for it in mine],
        "jax_program": {"ms": jax_ms, "min_ms": items[-1]["min_ms"],
                        "params": len(items[-1]["args"]), "ops": sum(st_j["ops"].values())},
        "launches_per_step": ours["launches_per_step"],
        "ours_step_ms": ours["step_ms"], "fallbacks": ours["fallbacks"],
        "stats": {"ours": {k: dict(v) for k, v in st_o.items()},
                  "jax": {k: dict(v) for k, v in st_j.items()}},
        "diagnosis": report.diagnose(st_o, st_j, ratio, len(mine), 1, between),
        "texts": {"jax": jax_entry["text"], **{it["name"]: it["text"] for it in mine}},
    })
    if ours["fallbacks"]:
        row["diagnosis"] += f"; fallback ops outside the programs: {', '.join(ours['fallbacks'])}"
    return row


# ------------------------------------------------------------------- main --

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench.compare",
                                 description="our programs vs JAX's, executed side by side")
    ap.add_argument("workloads", nargs="+", help="workload names (or prefixes) of the suite")
    ap.add_argument("--reps", type=int, default=DEFAULT_REPS, help="timed executes per program")
    ap.add_argument("--out", default=None, help="results directory (default bench/results)")
    ap.add_argument("--size", default="quick", help="suite size (workloads.SIZES)")
    ap.add_argument("--system", default="pjrt_dev_compile", choices=("pjrt_dev_compile", "pjrt"),
                    help="how our programs are made: inputs on the pjrt device (flat "
                         "parameters) or CPU tensors")
    ap.add_argument("--save-programs", action="store_true",
                    help="also write every program's text under <date>-compare-programs/")
    ap.add_argument("--jax-child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.jax_child:
        return jax_child(args.workloads, args.size, args.jax_child, args.reps)
    from torch_pjrt import compiled
    wls = select(args.workloads, args.size)
    _log(f"[JAX's programs through torchax: {', '.join(w.name for w in wls)}]")
    jax_res = jax_programs([w.name for w in wls], args.size, args.reps)
    info = compiled.client().plugin_info()
    res: Dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "size": args.size,
        "reps": args.reps, "system": args.system, "plugin": info.get("path", "?"),
        "platform": info.get("platform_name", "?"),
        "jax_note": jax_res.get("note", jax_res.get("error", "")), "workloads": {}}
    for wl in wls:
        _log(f"[{wl.name}]")
        entry = jax_res["workloads"].get(wl.name, {"error": jax_res.get("error", "not lowered")})
        try:
            res["workloads"][wl.name] = compare_workload(wl, entry, args.reps, args.system)
        except Exception as e:  # noqa: BLE001 - one failed row must not lose the others
            res["workloads"][wl.name] = {"kind": wl.kind, "error": f"{type(e).__name__}: {e}"[:300]}
    for line in report.stdout_lines(res):
        _log(line)
    out_dir = args.out or os.path.join(os.getcwd(), "bench", "results")
    _log("wrote " + ", ".join(report.write(res, out_dir, args.save_programs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
