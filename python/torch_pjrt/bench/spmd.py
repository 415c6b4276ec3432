"""SPMD training-step cost on a mesh of pjrt devices (torch_pjrt.spmd): GPT
training laid out three ways over 1, 2, 4 and 8 devices of the XLA CPU
plugin, with the bytes each device holds for the parameters and the AdamW
state.

Each device count is one launch of torch_pjrt/bench/spmd_worker.py with
TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=N (a process's device count is
fixed when its client starts), which runs every mode in turn, each from cold
caches (the disk cache off, Dynamo's, the SPMD op programs' and the
runtime's in-memory caches cleared), so that no mode reuses another's
programs:

  dp    mesh (N,) "data": the batch split on "data", parameters replicated
  fsdp  mesh (N,) "data": every parameter split on dim 0 over "data" too
  2d    (N >= 4) mesh (2, N/2) ("data", "model"): batch on "data", Megatron
        layouts on "model" (qkv and fc by output features, proj and out by
        input features)

The same GPT (same seed) and the same batches of 8 sequences in every row.
A step is zero_grad, forward and backward as one torch.compile(backend=
"pjrt") call (one SPMD program each way), the AdamW step eagerly (each
optimizer op a one-op SPMD program), loss.item() and a device synchronize;
`warmup` untimed steps, then `steps` timed ones. With --rounds R > 1 every
device count is launched R times, interleaved, and the timed steps pooled.

The "devices" share this host's cores, so step times are a cost figure of the
partitioned programs, not a scaling claim; the per-device bytes are. Run with
`python -m torch_pjrt.bench --spmd [--devices 1 2 4 8] [--reps STEPS]
[--warmup N] [--rounds R]` (or `make bench-spmd`); results go to
bench/results/<date>-spmd.{json,md}.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from torch_pjrt.bench.harness import child_env, error_line, percentile, run_launch
from torch_pjrt.bench.report import busy_note, cell as _f, command_line, command_of, finish, \
    run_info
from torch_pjrt.bench.spmd_worker import BATCH, GPT_CFG, MODES, RULES, modes_for

DEVICES = (1, 2, 4, 8)
WARMUP, STEPS, ROUNDS = 3, 10, 3
# Seconds one launch (every mode of one device count) may take before it is
# killed ($TPJ_BENCH_SPMD_TIMEOUT).
LAUNCH_TIMEOUT_S = float(os.environ.get("TPJ_BENCH_SPMD_TIMEOUT", "600"))
MESH_TEXT = {"dp": "({n},) data", "fsdp": "({n},) data", "2d": "(2, {h}) data × model"}
LAYOUT = {"dp": "params replicated", "fsdp": "params dim 0 on data",
          "2d": "Megatron on model"}


def _log(msg):
    print(msg, flush=True)


def worker_env(n):
    """A worker's environment: n XLA CPU devices, the disk compile cache off
    (every launch compiles what it runs, as a first run would)."""
    return child_env({"TORCH_PJRT_CLIENT_OPTIONS": f"cpu_device_count={n}",
                      "TORCH_PJRT_CACHE_DIR": "off"})


def launch(n, warmup, steps, timeout=LAUNCH_TIMEOUT_S):
    """Runs the worker for n devices; returns its record, or {"error": ...}."""
    out = tempfile.mkdtemp(prefix="tpj-spmd-")
    path = os.path.join(out, "r.json")
    cmd = [sys.executable, "-m", "torch_pjrt.bench.spmd_worker", "--devices", str(n),
           "--warmup", str(warmup), "--steps", str(steps), "--out", path]
    try:
        got = run_launch(cmd, worker_env(n), timeout)
        if "error" in got:
            return got
        if got["returncode"] != 0 or not os.path.exists(path):
            return {"error": f"exit {got['returncode']}: " + error_line(got["text"]),
                    "tail": got["text"][-4000:]}
        with open(path) as f:
            res = json.load(f)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    res["launch_wall_s"] = got["wall_s"]
    return res


def summarize(mode, launches):
    """One row's figures from its launches (rounds): the timed steps pooled;
    a failed launch fails the row. Launches and compiles per step are those
    of the last timed step (a steady step), the most over the launches; the
    bytes are the first launch's."""
    bad = [r for r in launches if "error" in r]
    if bad:
        return {"status": bad[0]["error"], "tail": bad[0].get("tail", "")}
    recs = [x["modes"][mode] for x in launches]
    steps = [s for r in recs for s in r["steps"]]
    ms = [s["step_ms"] for s in steps]
    net = [s["step_ms"] - s["compile_ms"] for s in steps]
    r, last = recs[0], [x["steps"][-1] for x in recs]
    per_dev = r["bytes_per_device"]
    return {"status": "ok", "devices": r["devices"], "mesh": r["mesh"], "axes": r["axes"],
            "params": r["params"], "rounds": len(launches), "steps": len(steps),
            "warmup": launches[0]["warmup"],
            "median_ms": statistics.median(ms), "p90_ms": percentile(ms, 90), "min_ms": min(ms),
            "round_median_ms": [statistics.median(s["step_ms"] for s in x["steps"])
                                for x in recs],
            "median_ms_less_compile": statistics.median(net),
            "compile_ms_median": statistics.median(s["compile_ms"] for s in steps),
            "launches_per_step": max(s["launches"] for s in last),
            "launches_per_step_range": [min(s["launches"] for s in steps),
                                        max(s["launches"] for s in steps)],
            "compiles_per_step": max(s["compiles"] for s in last),
            "compiles_timed": sum(s["compiles"] for s in steps),
            "fallbacks_timed": sum(s["fallbacks"] for s in steps),
            "bytes_per_device": per_dev, "bytes_per_device_max": max(per_dev),
            "param_bytes_per_device": r["param_bytes_per_device"],
            "state_bytes_per_device": r["state_bytes_per_device"],
            "replicated_bytes": r["replicated_bytes"],
            "replicated_param_bytes": r["replicated_param_bytes"],
            "vs_replicated": max(per_dev) / r["replicated_bytes"],
            "final_loss": [x["final_loss"] for x in recs],
            "final_loss_first": recs[0]["final_loss"],
            "mode_wall_s": [x.get("wall_s") for x in recs],
            "launch_wall_s": [x.get("launch_wall_s") for x in launches]}


def base_key(mode):
    """The row a mode's step times are compared with: its own 1-device row;
    2d has none (it needs 4 devices), and takes the 1-device dp row (one
    device holds everything whatever the layout)."""
    return f"{mode if mode != '2d' else 'dp'}1"


def measure(devices, warmup, steps, rounds=1, log=_log, timeout=LAUNCH_TIMEOUT_S):
    """Every row: `rounds` launches per device count, interleaved (all counts
    once, then again) so drift on a shared machine hits every row alike."""
    launches = {n: [] for n in devices}
    for k in range(rounds):
        for n in devices:
            if launches[n] and "error" in launches[n][-1]:
                continue  # a failed launch is not retried
            t0 = time.perf_counter()
            got = launch(n, warmup, steps, timeout)
            launches[n].append(got)
            log(f"  round {k + 1}/{rounds}: {n} device(s): {got.get('error', 'ok')} "
                f"({time.perf_counter() - t0:.1f} s)")
    rows = {}
    for n in devices:
        for mode in modes_for(n):
            row = rows[f"{mode}{n}"] = summarize(mode, launches[n])
            if row["status"] == "ok":
                log(f"  {mode:4s} on {n}: median {row['median_ms']:.1f} ms "
                    f"({row['median_ms_less_compile']:.1f} ms less compiles), "
                    f"{row['launches_per_step']} launches, {row['compiles_per_step']} compiles "
                    f"per step, {row['bytes_per_device_max'] / 1e6:.3f} MB per device")
            else:
                log(f"  {mode:4s} on {n}: {row['status']}\n    " +
                    "\n    ".join(row.get("tail", "").splitlines()[-30:]))
    for key, row in rows.items():
        base = rows.get(base_key(key.rstrip("0123456789")), {})
        if row.get("status") == "ok" and base.get("status") == "ok":
            row["vs_1_device"] = row["median_ms"] / base["median_ms"]
            row["vs_1_device_less_compile"] = (row["median_ms_less_compile"] /
                                               base["median_ms_less_compile"])
    return rows


# ----------------------------------------------------------------- report --

def _n(k, one, many=None):
    return f"{k} {one if k == 1 else (many or one + 's')}"


def _mb(b):
    return "—" if b is None else f"{b / 1e6:.3f}"


def markdown(res):
    c = res["config"]
    lines = [f"# SPMD training-step cost {res['date']} on {res['host']} ({res['machine']}, "
             f"torch {res['torch']}, plugin {res['plugin']}, tree {res.get('commit') or '?'})", "",
             f"**This host has {res['cores']} cores, and the \"devices\" are XLA CPU plugin "
             f"devices (TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=N) sharing those "
             f"{res['cores']} cores: the step times are a cost figure for the partitioned "
             "program (what the SPMD layout costs per step on one host), not a scaling claim. "
             "The memory column is the claim: fsdp holds 1/N of the parameters and of the "
             "AdamW state on each device.**", "",
             f"GPT (vocab {c['vocab_size']}, block {c['block_size']}, {c['n_layer']} layers, "
             f"{c['n_head']} heads, {c['n_embd']} wide; {res['params_text']} parameters), "
             f"batch {res['batch']} sequences split on \"data\", AdamW (lr 1e-3). A step is "
             "zero_grad, forward and backward as one torch.compile(backend=\"pjrt\") call "
             "(one SPMD program each way), the AdamW step eagerly (every optimizer op a "
             "one-op SPMD program), loss.item() and a device synchronize. Each device count "
             f"is {_n(res['rounds'], 'launch', 'launches')} (rounds, interleaved with the "
             "other counts') of one worker process running every mode, each "
             "mode from cold caches (disk compile cache off; Dynamo's, the SPMD op programs' "
             f"and the runtime's compile caches cleared), {_n(res['warmup'], 'warm-up step')}, "
             f"then {_n(res['steps'], 'timed step')}; median and p90 (nearest rank) over the "
             "timed steps of all rounds. Modes: `dp` mesh (N,) \"data\", parameters replicated; `fsdp` the same "
             "mesh, every parameter split on dim 0 over \"data\"; `2d` (N ≥ 4) mesh "
             "(2, N/2) (\"data\", \"model\") with Megatron layouts on \"model\" (qkv and fc "
             "weights by output features, proj and out by input features). "
             f"OMP_NUM_THREADS={res['omp_num_threads']}.", ""]
    lines += busy_note(res)
    lines += ["| devices | mode | mesh | median ms | p90 ms | × 1 device | ms less compiles | "
              "launches / step | compiles / step | params + AdamW state MB / device | "
              "replicated MB | / replicated | final loss | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in res["rows"].items():
        mode, n = key.rstrip("0123456789"), int(key[len(key.rstrip("0123456789")):])
        ok = r.get("status") == "ok"
        mesh = MESH_TEXT[mode].format(n=n, h=n // 2) + f", {LAYOUT[mode]}"
        ratio = _f(r.get("vs_1_device"), "{:.2f}×")
        if ok and mode == "2d" and r.get("vs_1_device"):
            ratio += " (vs dp)"
        lines.append(
            f"| {n} | {mode} | {mesh} | {_f(r.get('median_ms'), '{:.1f}')} | "
            f"{_f(r.get('p90_ms'), '{:.1f}')} | {ratio} | "
            f"{_f(r.get('median_ms_less_compile'), '{:.1f}')} | "
            f"{r.get('launches_per_step', '—')} | {r.get('compiles_per_step', '—')} | "
            f"{_mb(r.get('bytes_per_device_max'))} | {_mb(r.get('replicated_bytes'))} | "
            f"{_f(r.get('vs_replicated'), '{:.3f}')} | "
            f"{_f(r.get('final_loss_first'), '{:.5f}')} | {r.get('status', 'not run')} |")
    lines += ["", "`× 1 device`: the row's median over its mode's 1-device row (2d, which "
              "needs 4 devices, over the 1-device dp row: one device holds everything "
              "whatever the layout). `ms less compiles`: the median of each step's time less "
              "the runtime's compile seconds in that step. `launches / step`: program "
              "executions in one steady (the last timed) step, torch_pjrt.metrics() "
              "\"executions\": the forward and backward programs, the loss's ones_like and "
              "the AdamW ops. `compiles / step`: programs compiled in that step. "
              "`params + AdamW state MB / device`: spmd.device_bytes over the parameters and "
              "their exp_avg and exp_avg_sq (the largest device's; AdamW's step counters are "
              "host scalars); `replicated MB` is the same tensors whole, what each device "
              "holds with everything replicated; `/ replicated` their ratio (1/N for fsdp; "
              "blocks padded to a multiple of N would show above it). `final loss`: the last "
              "step's loss; the same model, batches and steps in every row, so the rows "
              "agree to float rounding.", ""]
    compiling = [k for k, r in res["rows"].items()
                 if r.get("status") == "ok" and r["compiles_per_step"]]
    if compiling:
        lines += [f"**Steady steps compile programs ({', '.join(compiling)}): their step "
                  "times include those compiles; `ms less compiles` shows them without the "
                  "compile seconds (it still counts building the programs' graphs).**", ""]
    lines += ["Per-device byte lists (parameters and state apart), per-round medians, the "
              "range of launches per timed step, compiles and fallbacks inside the timed "
              "steps and each mode's wall time are in the JSON."]
    lines += ["", command_line(res), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------- main --

def _commit():
    """The tree's commit (with "+dirty" when torch_pjrt's sources differ from
    it), or None outside a git checkout."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "python", "src"],
                               cwd=root, text=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty.strip() else "")) if head else None


def main(args):
    """Runs the SPMD bench for the parsed `python -m torch_pjrt.bench`
    arguments: --devices the device counts, --reps the timed steps, --warmup
    the warm-up steps, --rounds the launches per device count, --out the
    results directory."""
    if getattr(args, "device", "cpu") != "cpu":
        raise SystemExit("--spmd: CPU plugin only for now (its devices are the mesh)")
    if args.models:
        raise SystemExit("--spmd: GPT only (--models does not apply; --devices picks the rows)")
    t_start = time.perf_counter()
    devices = tuple(getattr(args, "devices", None) or DEVICES)
    if any(n < 1 for n in devices):
        raise SystemExit(f"--spmd: device counts must be positive (got {list(devices)})")
    steps = args.reps or STEPS
    warmup = WARMUP if getattr(args, "warmup", None) is None else args.warmup
    rounds = getattr(args, "rounds", None) or ROUNDS
    res = run_info(command_of("python -m torch_pjrt.bench --spmd", args,
                              [("devices", "--devices"), ("reps", "--reps"),
                               ("warmup", "--warmup"), ("rounds", "--rounds")]))
    res.update({"omp_num_threads": child_env()["OMP_NUM_THREADS"], "warmup": warmup,
                "steps": steps, "rounds": rounds, "devices": list(devices), "batch": BATCH,
                "config": {k: getattr(GPT_CFG, k) for k in
                           ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")},
                "commit": _commit(), "modes": list(MODES),
                "rules": {m: {k: list(v) for k, v in r.items()} for m, r in RULES.items()}})
    _log(f"[spmd gpt: {', '.join(str(n) for n in devices)} devices]")
    res["rows"] = measure(devices, warmup, steps, rounds)
    ok = [r for r in res["rows"].values() if r.get("status") == "ok"]
    params = ok[0]["params"] if ok else None
    res["params"] = params
    res["params_text"] = f"{params / 1e6:.2f} M" if params else "—"
    paths = finish(res, t_start, args.out or os.path.join(os.getcwd(), "bench", "results"),
                   "spmd", markdown)
    _log("wrote " + ", ".join(paths))
    bad = [k for k, r in res["rows"].items() if r.get("status") != "ok"]
    if bad:
        _log("failed rows: " + ", ".join(bad))
        return 1
    return 0
