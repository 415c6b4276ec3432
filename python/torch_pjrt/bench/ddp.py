"""DDP step cost on pjrt tensors (issue 14's bench item): the training step time
with DistributedDataParallel for 1 and 2 processes and the share of it spent in
the gradient all-reduce, against the same step without DDP in one process.

Each row is `rounds` launches of torch_pjrt/bench/ddp_worker.py, interleaved
with the other rows': `plain` (one process, no process group: the baseline),
`ddp` with N=1 and N=2 under `python -m torch.distributed.run --standalone
--nproc-per-node=N`; their timed steps are pooled. The global
batch is fixed, so N=2 gives each process half of it. Every launch does
`warmup` untimed steps, then `steps` timed ones; a step is zero_grad, forward,
backward (with DDP's all-reduce), AdamW step, then a device synchronize, and
all ranks start it together after a CPU barrier.

Collective time is measured with a DDP comm hook (ddp_worker.timed_allreduce):
it synchronizes the device, then times the `dist.all_reduce` call on the
gradient bucket, which on this backend stages the bucket to host memory, runs
gloo, and copies back before returning. So the share counts staging plus gloo
plus any wait for the other rank to arrive; it does not count backward
compute. Step time of a DDP row is the slowest rank's per step; the share is
sum(all-reduce time) / sum(step time) per rank, averaged over the ranks.

On the 2-core machines this project runs on, two processes share two cores:
N=2 is a cost figure (what DDP over host-staged gloo costs), not a scaling
claim. Run with `python -m torch_pjrt.bench --ddp [--models gpt mlp]
[--reps STEPS] [--warmup N] [--rounds R]` (or `make bench-ddp`); results go
to bench/results/<date>-ddp.{json,md}.
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

MODELS = ("gpt", "mlp")
CONFIGS = (("plain", 1), ("ddp", 1), ("ddp", 2))
LABELS = {("plain", 1): "1 process, no DDP (baseline)", ("ddp", 1): "DDP, 1 process",
          ("ddp", 2): "DDP, 2 processes"}
WARMUP, STEPS, ROUNDS = 8, 30, 5
# Seconds one launch may take before it is killed ($TPJ_BENCH_DDP_TIMEOUT).
LAUNCH_TIMEOUT_S = float(os.environ.get("TPJ_BENCH_DDP_TIMEOUT", "300"))


def _log(msg):
    print(msg, flush=True)


def worker_cmd(model, mode, nproc, out, warmup, steps, timeout):
    args = ["-m", "torch_pjrt.bench.ddp_worker", "--model", model, "--mode", mode,
            "--warmup", str(warmup), "--steps", str(steps), "--out", out,
            "--timeout", str(int(timeout))]
    if mode == "plain":
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", *args]


def launch(model, mode, nproc, warmup, steps, timeout=LAUNCH_TIMEOUT_S):
    """Runs one worker launch; returns its ranks' records, or {"error": ...}.
    A launch past `timeout` is killed with every process it started."""
    out = tempfile.mkdtemp(prefix="tpj-ddp-")
    stem = os.path.join(out, "r.json")
    cmd = worker_cmd(model, mode, nproc, stem, warmup, steps, min(timeout, 120))
    try:
        got = run_launch(cmd, child_env(), timeout)
        if "error" in got:
            return got
        text, wall = got["text"], got["wall_s"]
        files = [f"{stem}.rank{r}" for r in range(nproc)]
        if got["returncode"] != 0 or not all(os.path.exists(f) for f in files):
            return {"error": f"exit {got['returncode']}: " + error_line(text),
                    "tail": text[-4000:]}
        ranks = []
        for f in files:
            with open(f) as fh:
                ranks.append(json.load(fh))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    res = {k: ranks[0][k] for k in ("model", "mode", "world", "global_batch", "local_batch",
                                    "warmup", "params", "omp_num_threads", "torch_threads")}
    res["ranks"] = ranks
    res["launch_wall_s"] = wall
    return res


def summarize(launches):
    """The row's figures from its launches' per-rank, per-step records: the
    timed steps of every launch (round) pooled; a failed launch fails the row."""
    bad = [r for r in launches if "error" in r]
    if bad:
        return {"status": bad[0]["error"], "tail": bad[0].get("tail", "")}
    step_ms, comm_ms, shares, r0 = [], [], [], []
    for res in launches:
        ranks = res["ranks"]
        n = min(len(r["steps"]) for r in ranks)
        step_ms += [max(r["steps"][i]["step_ms"] for r in ranks) for i in range(n)]
        comm_ms += [max(r["steps"][i]["comm_ms"] for r in ranks) for i in range(n)]
        shares.append([sum(s["comm_ms"] for s in r["steps"]) / sum(s["step_ms"] for s in r["steps"])
                       for r in ranks])
        r0 += ranks[0]["steps"]
    res = launches[0]
    world = res["world"]
    per_rank = [statistics.fmean(sh[k] for sh in shares) for k in range(world)]
    every = [s for res in launches for r in res["ranks"] for s in r["steps"]]
    return {"status": "ok", "world": world, "global_batch": res["global_batch"],
            "local_batch": res["local_batch"], "params": res["params"],
            "rounds": len(launches), "steps": len(step_ms), "warmup": res["warmup"],
            "median_ms": statistics.median(step_ms), "p90_ms": percentile(step_ms, 90),
            "min_ms": min(step_ms),
            "round_median_ms": [statistics.median(max(r["steps"][i]["step_ms"] for r in x["ranks"])
                                                  for i in range(len(x["ranks"][0]["steps"])))
                                for x in launches],
            "comm_median_ms": statistics.median(comm_ms),
            "comm_share": statistics.fmean(per_rank), "comm_share_per_rank": per_rank,
            "allreduce_calls_per_step": statistics.median(s["comm_calls"] for s in r0),
            "staged_bytes_per_step": statistics.median(s["staged_bytes"] for s in r0),
            "compiles_timed": sum(s["compiles"] for s in every),
            "fallbacks_timed": sum(s["fallbacks"] for s in every),
            "final_loss": [r["final_loss"] for x in launches for r in x["ranks"]],
            # The last step's loss, averaged over the ranks (of the first round):
            # the global batch's loss, which every row should agree on.
            "final_loss_mean": statistics.fmean(r["final_loss"] for r in res["ranks"]),
            "omp_num_threads": res.get("omp_num_threads"),
            "launch_wall_s": [x.get("launch_wall_s") for x in launches]}


def measure_model(model, warmup, steps, rounds=1, log=_log, timeout=LAUNCH_TIMEOUT_S):
    """Every row of one model: `rounds` launches per row, interleaved (all rows
    once, then again) so drift on a shared machine hits every row alike."""
    launches = {c: [] for c in CONFIGS}
    for k in range(rounds):
        for mode, n in CONFIGS:
            if launches[(mode, n)] and "error" in launches[(mode, n)][-1]:
                continue  # a failed row is not retried
            t0 = time.perf_counter()
            got = launch(model, mode, n, warmup, steps, timeout)
            launches[(mode, n)].append(got)
            log(f"  round {k + 1}/{rounds}: {LABELS[(mode, n)]}: "
                f"{got.get('error', 'ok')} ({time.perf_counter() - t0:.1f} s)")
    rows = {}
    for mode, n in CONFIGS:
        row = rows[f"{mode}{n}"] = summarize(launches[(mode, n)])
        if row["status"] == "ok":
            log(f"  {LABELS[(mode, n)]:30s} median {row['median_ms']:.2f} ms, p90 "
                f"{row['p90_ms']:.2f} ms, all-reduce {row['comm_share'] * 100:.1f}% "
                f"({row['staged_bytes_per_step'] / 1e6:.2f} MB staged/step)")
        else:
            log(f"  {LABELS[(mode, n)]:30s} {row['status']}\n    " +
                "\n    ".join(row.get("tail", "").splitlines()[-30:]))
    base = rows.get("plain1", {}).get("median_ms")
    for key, row in rows.items():
        if row.get("status") == "ok" and base:
            row["vs_baseline"] = row["median_ms"] / base
            if key != "plain1":  # what DDP adds per step beyond its all-reduce
                row["outside_allreduce_ms"] = row["median_ms"] - base - row["comm_median_ms"]
    return rows


# ----------------------------------------------------------------- report --

def markdown(res):
    lines = [f"# DDP step cost {res['date']} on {res['host']} ({res['machine']}, torch "
             f"{res['torch']}, plugin {res['plugin']})", "",
             f"**This is a {res['cores']}-core machine: the 2-process rows run two training "
             "processes on these cores, so they are a cost figure (what DDP over this "
             "transport costs per step), not a scaling claim.** The XLA CPU plugin has no "
             "cross-process collectives, so every collective on pjrt tensors is staged "
             "through host memory (device to host, gloo all-reduce over loopback, host to "
             "device); the staged bytes count both copies.", "",
             f"Each row is {res['rounds']} launches (rounds), interleaved with the other "
             f"rows' so that drift hits every row alike; each launch does {res['warmup']} "
             f"warm-up steps, then {res['steps']} timed steps of zero_grad, forward, "
             "backward, AdamW step and a device synchronize, all ranks released together by "
             "a barrier. The global batch is fixed (2 processes get half each). Step time of "
             "a DDP row is the slowest rank's, per step; median and p90 (nearest rank) over "
             "the timed steps of all rounds (per-round medians in the JSON). "
             "Collective share: a DDP comm hook synchronizes the device, then times the "
             "`dist.all_reduce` of each gradient bucket (staging plus gloo plus waiting for "
             "the other rank); share = sum of that time / sum of step time, per rank, "
             "averaged over the ranks. `× baseline` is the row's median over the "
             "no-DDP row's. OMP_NUM_THREADS="
             f"{res['omp_num_threads']} in every row.", ""]
    lines += busy_note(res, "the 2-process rows most")
    lines += ["| model | params | global batch | row | median ms | p90 ms | × baseline | "
              "round medians ms | all-reduce share | all-reduce ms (median) | other DDP ms | "
              "staged MB / step | final loss | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, w in res["models"].items():
        for mode, n in CONFIGS:
            r = w["rows"].get(f"{mode}{n}", {})
            ok = r.get("status") == "ok"
            share = _f(r.get("comm_share") * 100, "{:.1f}%") if ok and mode == "ddp" else "—"
            cms = _f(r.get("comm_median_ms")) if ok and mode == "ddp" else "—"
            staged = _f(r.get("staged_bytes_per_step", 0) / 1e6) if ok else "—"
            rm = r.get("round_median_ms") or []
            spread = f"{min(rm):.1f}–{max(rm):.1f}" if ok and rm else "—"
            lines.append(f"| {model} | {w['params_text']} | {w['global_batch']} | "
                         f"{LABELS[(mode, n)]} | {_f(r.get('median_ms'))} | "
                         f"{_f(r.get('p90_ms'))} | {_f(r.get('vs_baseline'), '{:.2f}×')} | "
                         f"{spread} | {share} | {cms} | {_f(r.get('outside_allreduce_ms'))} | {staged} | "
                         f"{_f(r.get('final_loss_mean'), '{:.5f}')} | "
                         f"{r.get('status', 'not run')} |")
    lines += ["", "`round medians ms`: the lowest and highest of the row's per-launch "
              "medians; where the rows' ranges overlap, the difference between those rows is "
              "within this machine's noise.", "",
              "`other DDP ms` = row median − baseline median − all-reduce median: what "
              "DDP adds per step outside the timed all-reduce (the reducer's autograd hooks, "
              "copying gradients into and out of the flat bucket on the device, the hook's "
              "divide and device synchronize; for 2 processes also two processes sharing the "
              "cores), a difference of medians, so approximate. `final loss` is the last "
              "step's loss averaged over the ranks: the same global batch and initial "
              "weights in every row, so the rows must agree to float rounding.", "",
              "Per-rank shares, per-round medians, all-reduce calls per step (DDP's first "
              "bucket is capped at 1 MB), compiles and fallbacks inside the timed steps "
              "(expected 0) and per-rank losses are in the JSON."]
    odd = [f"{m}/{LABELS[(mode, n)]}: {r['compiles_timed']} compiles, "
           f"{r['fallbacks_timed']} fallbacks"
           for m, w in res["models"].items() for mode, n in CONFIGS
           for r in [w["rows"].get(f"{mode}{n}", {})]
           if r.get("status") == "ok" and (r["compiles_timed"] or r["fallbacks_timed"])]
    if odd:
        lines += ["", "**Inside the timed steps (more warm-up needed): " + "; ".join(odd) +
                  ".**"]
    lines += ["", command_line(res), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------- main --

def main(args):
    """Runs the DDP bench for the parsed `python -m torch_pjrt.bench` arguments:
    --models filters gpt/mlp (prefix match), --reps sets the timed steps,
    --warmup the warm-up steps, --out the results directory."""
    if getattr(args, "device", "cpu") != "cpu":
        raise SystemExit("--ddp: CPU plugin only for now (host-staged gloo collectives)")
    t_start = time.perf_counter()
    models = [m for m in MODELS if not args.models or any(m.startswith(x) for x in args.models)]
    if not models:
        raise SystemExit(f"--ddp: no model matches {args.models} (models: {', '.join(MODELS)})")
    steps = args.reps or STEPS
    warmup = WARMUP if getattr(args, "warmup", None) is None else args.warmup
    rounds = getattr(args, "rounds", None) or ROUNDS
    res = run_info(command_of("python -m torch_pjrt.bench --ddp", args,
                              [("models", "--models"), ("reps", "--reps"),
                               ("warmup", "--warmup"), ("rounds", "--rounds")]))
    res.update({"omp_num_threads": child_env()["OMP_NUM_THREADS"], "warmup": warmup,
                "steps": steps, "rounds": rounds,
                "collective_timing": "DDP comm hook timing dist.all_reduce after a device "
                                     "synchronize", "models": {}})
    for model in models:
        _log(f"[ddp {model}]")
        rows = measure_model(model, warmup, steps, rounds)
        ok = [r for r in rows.values() if r.get("status") == "ok"]
        params = ok[0]["params"] if ok else None
        res["models"][model] = {
            "rows": rows, "params": params, "global_batch": ok[0]["global_batch"] if ok else None,
            "params_text": f"{params / 1e6:.2f} M" if params else "—"}
    paths = finish(res, t_start, args.out or os.path.join(os.getcwd(), "bench", "results"),
                   "ddp", markdown)
    _log("wrote " + ", ".join(paths))
    bad = [f"{m}/{k}" for m, w in res["models"].items() for k, r in w["rows"].items()
           if r.get("status") != "ok"]
    if bad:
        _log("failed rows: " + ", ".join(bad))
        return 1
    return 0
