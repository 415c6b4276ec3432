"""Deployment latency: what a model costs per call once it leaves PyTorch.

The main bench (harness.py) times torch.compile backends inside Python. This
one times the Python-free path of issue 13 against PyTorch's own deployment
peer, per workload and side by side in one process run so the ratios mean
something:

- `eager`: PyTorch eager on CPU under torch.no_grad(), the reference;
- `tpj_load`: torch_pjrt.export.load(artifact) called from Python on CPU
  tensors (the C loader `_C.Model` behind a thin Python call);
- `tpj_run`: the `tpj-run ARTIFACT in.npy ... --bench N` binary in a
  subprocess, no Python and no libtorch; its own summary line gives p50/p99;
- `aoti`: AOTInductor, aoti_compile_and_package(ep) then aoti_load_package,
  called from Python.

Each system runs `rounds` blocks of `calls` calls after a warm-up, the blocks
interleaved and rotated (as in harness.measure) so that drift on a shared
machine hits every system alike; a system's p50 and p99 are the medians over
its blocks of the block's nearest-rank percentiles, which is what tpj-run
reports per block, so all four are computed the same way. Every system's
output is checked against eager first; a mismatch is timed anyway but marked
in the row's status and in the report. Run with
`python -m torch_pjrt.bench --deploy [--models NAME ...] [--reps CALLS]`;
results go to bench/results/<date>-deploy.{json,md}.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import socket
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch

from torch_pjrt.bench import harness, workloads

WORKLOADS = ("minilm_b1", "minilm_b32", "resnet18_infer")
SYSTEMS = ("eager", "tpj_load", "tpj_run", "aoti")
LABELS = {"eager": "PyTorch eager", "tpj_load": "export.load (Python)",
          "tpj_run": "tpj-run (no Python)", "aoti": "AOTInductor (Python)"}
ROUNDS = 3
BLOCK_BUDGET_S = 1.5   # calls per block: about this long at eager's speed
MIN_CALLS, MAX_CALLS = 20, 200
_SUMMARY = re.compile(r"p50 ([0-9.]+) p99 ([0-9.]+) \((\d+) runs\)")


def _log(msg):
    print(msg, flush=True)


def tool_path():
    """The tpj-run binary: $TPJ_RUN, else build/release/tools/tpj-run of the tree."""
    env = os.environ.get("TPJ_RUN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    return os.path.join(root, "build", "release", "tools", "tpj-run")


def parse_summary(text):
    """(p50 ms, p99 ms, runs) from tpj-run's summary line."""
    m = _SUMMARY.search(text)
    if m is None:
        raise RuntimeError(f"tpj-run printed no 'p50 X p99 Y (N runs)': {text.strip()[-300:]!r}")
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


def compare(got, want, tol):
    """How far `got` is from eager's `want`: max abs diff, max rel error
    (harness.max_rel_error) and allclose(rtol=atol=tol) over every tensor."""
    g, w = harness._flatten(got), harness._flatten(want)
    out = {"max_abs_diff": float("inf"), "max_rel_error": harness.max_rel_error(got, want),
           "allclose": False, "tol": tol}
    if len(g) != len(w) or any(a.shape != b.shape for a, b in zip(g, w)):
        out["detail"] = (f"structure differs: {[tuple(a.shape) for a in g]} vs "
                         f"{[tuple(b.shape) for b in w]}")
        return out
    diffs = [(a.double() - b.double()).abs().max().item() if b.numel() else 0.0
             for a, b in zip(g, w)]
    out["max_abs_diff"] = max(diffs, default=0.0)
    out["allclose"] = all(torch.allclose(a.to(b.dtype), b, rtol=tol, atol=tol, equal_nan=False)
                          for a, b in zip(g, w))
    return out


# ------------------------------------------------------------------ cases --

class Case:
    """One workload ready to deploy: its inference module, inputs, eager
    reference output, the ExportedProgram and a scratch directory."""

    def __init__(self, wl, workdir):
        self.wl, self.dir = wl, workdir
        model, inputs = wl.build()
        self.module = wl.infer_module(model).eval()
        self.inputs = tuple(inputs)
        with torch.no_grad():
            self.want = self.module(*self.inputs)
        t0 = time.perf_counter()
        self.ep = torch.export.export(self.module, self.inputs)
        self.export_s = time.perf_counter() - t0
        self.batch = int(self.inputs[0].shape[0]) if self.inputs[0].dim() else 1
        self.artifact = None  # (path, save seconds) once saved
        self.artifact_error = None
        self.executables = None  # True, or why the artifact has none

    def save_artifact(self):
        """Saves the .tpj artifact once and returns its path: with the
        executables compiled for this plugin (the deployment form) where this
        build can serialize them, else StableHLO only (runners compile it
        at load); `executables` says which."""
        if self.artifact_error is not None:
            raise RuntimeError(self.artifact_error)
        if self.artifact is None:
            from torch_pjrt import export
            path = os.path.join(self.dir, f"{self.wl.name}.tpj")
            t0 = time.perf_counter()
            try:
                try:
                    export.save(self.ep, path, executables=True)
                    self.executables = True
                except export.ArtifactError as e:
                    self.executables = f"no: {str(e)[:160]}"
                    t0 = time.perf_counter()
                    export.save(self.ep, path)
            except Exception as e:
                self.artifact_error = harness.error_text(e)
                raise
            self.artifact = (path, time.perf_counter() - t0)
        return self.artifact[0]


def _no_grad(fn, inputs):
    def call():
        with torch.no_grad():
            return fn(*inputs)
    return call


def prep_eager(case):
    return _no_grad(case.module, case.inputs), {}


def prep_tpj_load(case):
    from torch_pjrt import export
    path = case.save_artifact()
    t0 = time.perf_counter()
    loaded = export.load(path)
    info = {"save_s": case.artifact[1], "load_s": time.perf_counter() - t0,
            "artifact_bytes": os.path.getsize(path), "executables": case.executables}
    return _no_grad(loaded, case.inputs), info


def prep_aoti(case):
    path = os.path.join(case.dir, f"{case.wl.name}.pt2")
    t0 = time.perf_counter()
    torch._inductor.aoti_compile_and_package(case.ep, package_path=path)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner = torch._inductor.aoti_load_package(path)
    info = {"compile_s": compile_s, "load_s": time.perf_counter() - t0,
            "package_bytes": os.path.getsize(path)}
    return _no_grad(runner, case.inputs), info


PREPARE = {"eager": prep_eager, "tpj_load": prep_tpj_load, "aoti": prep_aoti}


class TpjRun:
    """tpj-run over the case's artifact, inputs written with numpy.save."""

    def __init__(self, case, tool=None):
        import torch_pjrt
        if not os.path.exists(tool or tool_path()):
            raise RuntimeError(f"{tool or tool_path()} not built (make tools)")
        self.case, self.tool = case, tool or tool_path()
        self.model = case.save_artifact()
        self.npys = []
        for i, t in enumerate(case.inputs):
            p = os.path.join(case.dir, f"{case.wl.name}.in{i}.npy")
            np.save(p, t.detach().contiguous().numpy())
            self.npys.append(p)
        self.outdir = os.path.join(case.dir, f"{case.wl.name}.out")
        self.plugin = torch_pjrt.plugin_path()  # the plugin this process uses

    def _run(self, bench=0, env=None):
        cmd = [self.tool, self.model, *self.npys, "-o", self.outdir, "--plugin", self.plugin]
        if bench:
            cmd += ["--bench", str(bench)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"tpj-run exited {p.returncode}: "
                               f"{(p.stderr.strip() or p.stdout.strip())[-300:]}")
        return p.stdout, wall

    def first(self):
        """One plain run, process start to outputs written, with an empty
        compile cache (as on a machine the artifact was just copied to):
        returns (outputs as torch tensors in order, info)."""
        cold = tempfile.mkdtemp(prefix="cold-cache-", dir=self.case.dir)
        stdout, wall = self._run(env=dict(os.environ, TORCH_PJRT_CACHE_DIR=cold))
        names = sorted((f for f in os.listdir(self.outdir) if re.fullmatch(r"output_\d+\.npy", f)),
                       key=lambda f: int(f[7:-4]))
        outs = [torch.from_numpy(np.load(os.path.join(self.outdir, f))) for f in names]
        got = outs[0] if len(outs) == 1 else tuple(outs)
        return got, {"cold_run_s": wall, "summary": stdout.strip()}

    def block(self, calls):
        """One --bench block: (p50 ms, p99 ms, process wall seconds)."""
        stdout, wall = self._run(calls)
        p50, p99, runs = parse_summary(stdout)
        if runs != calls:
            raise RuntimeError(f"tpj-run timed {runs} runs, asked for {calls}")
        return p50, p99, wall


# ------------------------------------------------------------ measurement --

def _status(check):
    if check["allclose"]:
        return "ok"
    return (f"MISMATCH vs eager (max abs diff {check['max_abs_diff']:.3g}, max rel error "
            f"{check['max_rel_error']:.3g}, tol {check['tol']:g})")


def _prepare(case, name, log):
    """(block runner, row): the runner times one block of `calls` calls and
    returns (p50, p99) in ms, or None after the reason went into the row."""
    row = {"system": name}
    try:
        t0 = time.perf_counter()
        if name == "tpj_run":
            tr = TpjRun(case)
            got, info = tr.first()
            row.update(info, save_s=case.artifact[1], executables=case.executables)
            block = lambda calls: tr.block(calls)[:2]  # noqa: E731
        else:
            call, info = PREPARE[name](case)
            row.update(info)
            t1 = time.perf_counter()
            got = call()
            row["first_call_s"] = time.perf_counter() - t1
            for _ in range(3):  # warm-up
                call()
            block = lambda calls: _time_block(call, calls)  # noqa: E731
        row["prepare_s"] = time.perf_counter() - t0
        row.update(compare(got, case.want, case.wl.tol))
        row["status"] = _status(row)
    except Exception as e:  # a failing system is a row with its error, never a crash
        row["status"] = harness.error_text(e)
        block = None
    if row["status"] != "ok":
        log(f"  {case.wl.name}/{name}: {row['status']}")
    return block, row


def _time_block(call, calls):
    ms = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t0) * 1e3)
    return harness.percentile(ms, 50), harness.percentile(ms, 99)


def calls_for(case, override=None):
    """Calls per block: `override`, else about BLOCK_BUDGET_S at eager's speed."""
    if override:
        return int(override)
    call = _no_grad(case.module, case.inputs)
    call()
    t0 = time.perf_counter()
    for _ in range(3):
        call()
    ms = (time.perf_counter() - t0) / 3 * 1e3
    return max(MIN_CALLS, min(MAX_CALLS, int(BLOCK_BUDGET_S * 1e3 / max(ms, 1e-3))))


def _ratio(rows, num, den, key):
    a, b = rows.get(num, {}).get(key), rows.get(den, {}).get(key)
    return a / b if a and b else None


def measure_workload(wl, workdir, systems=SYSTEMS, calls=None, rounds=ROUNDS, log=_log):
    """Every system's row for one workload: prepare and check each, then
    `rounds` interleaved rotated blocks of `calls` calls (harness.measure's
    order), p50/p99 = medians of the blocks' percentiles."""
    t0 = time.perf_counter()
    case = Case(wl, workdir)
    calls = calls_for(case, calls)
    rows, blocks = {}, {}
    for name in systems:
        blocks[name], rows[name] = _prepare(case, name, log)
    runs = {n: b for n, b in blocks.items() if b is not None}
    per = {n: [] for n in runs}
    for r in range(rounds):
        names = list(runs)
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            try:
                per[name].append(runs[name](calls))
            except Exception as e:
                rows[name]["status"] = "timed call failed: " + harness.error_text(e)
                log(f"  {wl.name}/{name}: {rows[name]['status']}")
                del runs[name], per[name]
    for name, ps in per.items():
        rows[name].update(p50_ms=statistics.median(p for p, _ in ps),
                          p99_ms=statistics.median(q for _, q in ps),
                          blocks=[{"p50_ms": p, "p99_ms": q} for p, q in ps])
    ratios = {f"{num}/tpj_run_{k[:3]}": _ratio(rows, num, "tpj_run", k)
              for num in ("aoti", "eager", "tpj_load") for k in ("p50_ms", "p99_ms")}
    return {"workload": wl.name, "batch": case.batch, "tol": wl.tol, "calls": calls,
            "rounds": rounds, "export_s": case.export_s, "systems": rows, "ratios": ratios,
            "wall_s": time.perf_counter() - t0}


# ----------------------------------------------------------------- report --

def _cell(row):
    if "p50_ms" not in row:
        return row.get("status", "not run")
    s = f"{row['p50_ms']:.3g} / {row['p99_ms']:.3g}"
    return s if row.get("status") == "ok" else f"**{s} (MISMATCH)**"


def _x(r):
    return f"{r:.2f}×" if r else "–"


def _s(v):
    return f"{v:.2f}" if isinstance(v, (int, float)) else "–"


def _mb(v):
    return f"{v / 2 ** 20:.1f}" if isinstance(v, (int, float)) else "–"


def _latency_table(res):
    lines = ["| workload | batch | " + " | ".join(LABELS[s] for s in SYSTEMS) +
             " | AOTI / tpj-run p50 | AOTI / tpj-run p99 | eager / tpj-run p50 | check |",
             "|---" * (len(SYSTEMS) + 6) + "|"]
    for name, w in res["workloads"].items():
        rows = w["systems"]
        bad = [s for s in SYSTEMS if s in rows and rows[s].get("status") != "ok"]
        check = "ok" if not bad else "**" + ", ".join(
            f"{s}: {'MISMATCH' if 'MISMATCH' in rows[s]['status'] else 'failed'}"
            for s in bad) + "**"
        r = w["ratios"]
        lines.append(f"| {name} | {w['batch']} | " +
                     " | ".join(_cell(rows.get(s, {"status": "not run"})) for s in SYSTEMS) +
                     f" | {_x(r.get('aoti/tpj_run_p50'))} | {_x(r.get('aoti/tpj_run_p99'))} | "
                     f"{_x(r.get('eager/tpj_run_p50'))} | {check} |")
    return lines


def _build_table(res):
    lines = ["| workload | torch.export s | export.save s | .tpj MiB | export.load s | "
             "tpj-run cold run s | AOTI compile s | AOTI load s | .pt2 MiB |", "|---" * 9 + "|"]
    for name, w in res["workloads"].items():
        t, r, a = (w["systems"].get(s, {}) for s in ("tpj_load", "tpj_run", "aoti"))
        lines.append(f"| {name} | {_s(w['export_s'])} | {_s(t.get('save_s', r.get('save_s')))} | "
                     f"{_mb(t.get('artifact_bytes'))} | {_s(t.get('load_s'))} | "
                     f"{_s(r.get('cold_run_s'))} | {_s(a.get('compile_s'))} | "
                     f"{_s(a.get('load_s'))} | {_mb(a.get('package_bytes'))} |")
    return lines


def _goal(res):
    lines, seen = ["## Goal: tpj-run at most AOTInductor's latency at batch 1", ""], False
    for name, w in res["workloads"].items():
        if w["batch"] != 1:
            continue
        seen = True
        rows, r = w["systems"], w["ratios"].get("aoti/tpj_run_p50")
        if r is None:
            lines.append(f"- {name}: not measured (tpj-run: {rows.get('tpj_run', {}).get('status')}"
                         f"; AOTInductor: {rows.get('aoti', {}).get('status')})")
            continue
        verdict = "met" if r >= 1 else f"missed: tpj-run is {(1 / r - 1) * 100:.0f}% slower"
        lines.append(f"- {name}: AOTInductor p50 {rows['aoti']['p50_ms']:.3g} ms / tpj-run p50 "
                     f"{rows['tpj_run']['p50_ms']:.3g} ms = {r:.2f}× ({verdict}); p99 ratio "
                     f"{_x(w['ratios'].get('aoti/tpj_run_p99'))}")
    return lines if seen else lines + ["(no batch-1 workload in this run)"]


def _problems(res):
    out = []
    for name, w in res["workloads"].items():
        for s, row in w["systems"].items():
            if row.get("status") != "ok":
                out.append(f"- **{name} / {LABELS.get(s, s)}: {row.get('status')}**")
    return ["", "## Mismatches and errors", ""] + out if out else []


def markdown(res):
    lines = [f"# Deployment latency {res['date']} on {res['host']} ({res['machine']}, torch "
             f"{res['torch']}, plugin {res['plugin']})", "",
             "ms per call, p50 / p99: each system ran after a warm-up in "
             f"{res['rounds']} interleaved, rotated blocks of the row's calls (`calls` in the "
             "JSON); p50 and p99 are the medians over the blocks of each block's nearest-rank "
             "percentiles (tpj-run reports its own per block). Ratios above 1 mean tpj-run is "
             "faster. Every output was checked against eager (allclose, rtol = atol = the "
             "workload's tolerance); a mismatch is timed but marked.", ""]
    busy = max(res.get("loadavg_start", (0,))[0], res.get("loadavg_end", (0,))[0])
    ncores = os.cpu_count() or 1
    if busy > 0.5 * ncores:
        lines += [f"**Busy machine: load average up to {busy:.1f} on {ncores} cores. The "
                  "OpenMP systems (eager, AOTInductor) degrade far more than the others "
                  "when their threads are descheduled; rerun on a quiet machine.**", ""]
    lines += _latency_table(res) + [""] + _goal(res)
    lines += ["", "## Build and load (cold caches)", ""] + _build_table(res)
    exe = sorted({str(w["systems"].get("tpj_load", {}).get("executables"))
                  for w in res["workloads"].values()})
    lines += ["", "export.save writes the StableHLO programs and, where this build can "
              f"serialize them, their executables for this plugin (executables: "
              f"{'; '.join(exe)}); the tpj-run cold run is a whole process, from start to "
              "outputs written. "
              "Inductor and torch-pjrt caches are fresh directories for this run, so the AOTI "
              "compile seconds are a cold compile."]
    lines += _problems(res)
    from torch_pjrt.bench.report import command_line
    lines += ["", command_line(res, " (other work on the machine inflates every system's "
                                    "times)"), ""]
    return "\n".join(lines)


def write(res, out_dir):
    from torch_pjrt.bench.report import write_results
    return write_results(res, out_dir, "deploy", markdown)[1]


# ------------------------------------------------------------------- main --

def _fresh_caches(root):
    """Cold compile caches for this run (so compile seconds are honest)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(root, "inductor")
    os.environ["TORCH_PJRT_CACHE_DIR"] = os.path.join(root, "pjrt")


def main(args):
    """Runs the deploy bench for the parsed `python -m torch_pjrt.bench`
    arguments: --models filters the workloads (prefix match), --reps sets the
    calls per block, --out the results directory."""
    if getattr(args, "device", "cpu") != "cpu":
        raise SystemExit("--deploy: CPU only (tpj-run, export.load and AOTInductor on the host)")
    t_start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="tpj-deploy-")
    _fresh_caches(work)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    import torch_pjrt
    wls = [w for w in workloads.suite("quick") if w.name in WORKLOADS]
    if args.models:
        wls = [w for w in wls if any(w.name.startswith(m) for m in args.models)]
    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": socket.gethostname(), "torch": torch.__version__,
           "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
           "plugin": os.path.basename(torch_pjrt.plugin_path()), "rounds": ROUNDS,
           "torch_threads": torch.get_num_threads(),
           "command": "python -m torch_pjrt.bench --deploy" +
                      (f" --models {' '.join(args.models)}" if args.models else "") +
                      (f" --reps {args.reps}" if args.reps else ""),
           "loadavg_start": os.getloadavg(), "workloads": {}}
    for wl in wls:
        _log(f"[deploy {wl.name}]")
        w = measure_workload(wl, work, calls=args.reps)
        res["workloads"][wl.name] = w
        for s in SYSTEMS:
            row = w["systems"].get(s, {})
            _log(f"  {s:9s} " + (f"p50 {row['p50_ms']:.3f} p99 {row['p99_ms']:.3f} ms"
                                 if "p50_ms" in row else "") + f" [{row.get('status')}]")
        _log(f"  done in {w['wall_s']:.1f}s")
    res["wall_s"] = time.perf_counter() - t_start
    res["loadavg_end"] = os.getloadavg()
    paths = write(res, args.out or os.path.join(os.getcwd(), "bench", "results"))
    _log("wrote " + ", ".join(paths))
    return 0
