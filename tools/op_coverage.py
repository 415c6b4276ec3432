"""Writes docs/op_coverage.md from the OpInfo sweep records.

    .venv/bin/python tools/op_coverage.py                 # from build/opinfo_sweep.json
    .venv/bin/python tools/op_coverage.py --run [sweep args, e.g. --dtypes float32]
    .venv/bin/python tools/op_coverage.py --run --rerun-failed   # cheap refresh
    .venv/bin/python tools/op_coverage.py --run --mode eager [--dtypes float32 ...]
                                   # the eager-device sweep -> build/opinfo_sweep_eager.json

The sweep itself is tests/python/opinfo_sweep.py (torch.compile(backend="pjrt")
vs eager CPU, fallback = "error"; --mode eager: the op on "pjrt" tensors); this
file only summarizes the two JSONs (the eager one is optional).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, "tests", "python", "opinfo_sweep.py")
DEFAULT_JSON = os.path.join(ROOT, "build", "opinfo_sweep.json")
DEFAULT_EAGER_JSON = os.path.join(ROOT, "build", "opinfo_sweep_eager.json")
DEFAULT_MD = os.path.join(ROOT, "docs", "op_coverage.md")
COLUMNS = [("float32", "fwd"), ("float32", "grad"), ("bfloat16", "fwd"), ("bfloat16", "grad"),
           ("int64", "fwd")]


def _pct(p: int, n: int) -> str:
    return f"{100.0 * p / n:.1f}%" if n else "-"


def _cell(recs: List[Dict[str, Any]]) -> str:
    """"passed/ran" (+ "u" for unsupported samples), "" when nothing ran."""
    if not recs:
        return ""
    if all(r.get("cause") == "dtype_not_supported" for r in recs):
        return "n/a"
    ran = [r for r in recs if r["status"] != "unsupported"]
    p = sum(r["status"] == "passed" for r in ran)
    u = len(recs) - len(ran)
    text = f"{p}/{len(ran)}" if ran else ""
    if ran and p == len(ran):
        text = f"**{text}**"
    return text + (f" ({u}u)" if u else "")


def _why(r: Dict[str, Any]) -> str:
    if r.get("cause") == "missing_lowering":
        return "missing " + ", ".join(m.replace("aten::", "") for m in r.get("missing", []))
    if r.get("cause") == "mismatch":
        return f"mismatch (max abs diff {r.get('max_abs_diff', float('nan')):.3g})"
    detail = (r.get("detail") or "").replace("|", "/").replace("\n", " ")
    return f"{r.get('cause')}: {detail[:110]}"


def _counts(records: List[Dict[str, Any]], dtype: str, which: str):
    recs = [r for r in records if r["dtype"] == dtype and r["pass"] == which
            and r.get("cause") != "dtype_not_supported"]
    p = sum(r["status"] == "passed" for r in recs)
    f = sum(r["status"] == "failed" for r in recs)
    return recs, p, f, len(recs) - p - f


def totals(records: List[Dict[str, Any]], eager: List[Dict[str, Any]]) -> List[str]:
    """Per dtype and pass: torch.compile columns, then eager-device columns."""
    out = ["| dtype | pass | compile: run | passed | failed | pass % | unsupported | "
           "eager device: run | passed | failed | pass % | unsupported |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dtype, which in COLUMNS:
        recs, p, f, u = _counts(records, dtype, which)
        erecs, ep, ef, eu = _counts(eager, dtype, which)
        if not recs and not erecs:
            continue
        cells = [f"{p + f} | {p} | {f} | {_pct(p, p + f)} | {u}" if recs else "- | - | - | - | -",
                 f"{ep + ef} | {ep} | {ef} | {_pct(ep, ep + ef)} | {eu}" if erecs
                 else "- | - | - | - | -"]
        out.append(f"| {dtype} | {'forward' if which == 'fwd' else 'gradient'} | "
                   + " | ".join(cells) + " |")
    return out


def _op_cell(recs: List[Dict[str, Any]]) -> str:
    """passed/ran over every dtype and pass of one op ("" when nothing ran)."""
    ran = [r for r in recs if r["status"] != "unsupported"]
    p = sum(r["status"] == "passed" for r in ran)
    if not ran:
        return ""
    return f"**{p}/{len(ran)}**" if p == len(ran) else f"{p}/{len(ran)}"


def failure_tables(failed: List[Dict[str, Any]], missing_title: str, most: int) -> List[str]:
    """The failure-cause table of `failed` records, then under `missing_title`
    the `most` ATen ops they miss most often (samples, OpInfo ops affected)."""
    lines = ["| cause | samples | ops |", "|---|---:|---:|"]
    for cause, n in collections.Counter(r.get("cause") for r in failed).most_common():
        ops = len({r["op"] for r in failed if r.get("cause") == cause})
        lines.append(f"| {cause} | {n} | {ops} |")
    missing: Dict[str, set] = collections.defaultdict(set)
    miss_n: collections.Counter = collections.Counter()
    for r in failed:
        for m in r.get("missing", []):
            missing[m].add(r["op"])
            miss_n[m] += 1
    lines += ["", missing_title, "",
              "| ATen op | failing samples | OpInfo ops affected |", "|---|---:|---|"]
    for m, n in miss_n.most_common(most):
        ops = sorted(missing[m])
        lines.append(f"| `{m}` | {n} | {', '.join(ops[:8])}{' ...' if len(ops) > 8 else ''} |")
    return lines


def eager_section(eager: List[Dict[str, Any]], meta: Dict[str, Any]) -> List[str]:
    """The eager-device sweep: how it runs, failure causes, ops that fell back
    to the CPU, and every failing op with its first failure."""
    if not eager:
        return ["", "## Eager device", "", "No eager-device sweep recorded yet "
                "(`tests/python/opinfo_sweep.py --mode eager`)."]
    failed = [r for r in eager if r["status"] == "failed"]
    f32 = [r for r in eager if r["dtype"] == "float32" and r["status"] != "unsupported"]
    f32_pass = sum(r["status"] == "passed" for r in f32)
    lines = ["", "## Eager device: OpInfo op by op on `\"pjrt\"` tensors", "",
             f"Last written {meta.get('finished', '?')}: every sample's tensors moved to the "
             "pjrt device, the op called eagerly (PrivateUse1 dispatch, one cached program "
             "per op signature), the outputs compared with the same op on CPU tensors "
             "(same tolerances and tie-order policy as above); gradients = backward on the "
             "device vs CPU. `torch_pjrt.config.fallback = \"error\"`: an op that would run "
             "on the CPU is a failure (cause `fallback`, the ATen op named). Data-dependent "
             "output shapes (nonzero, masked_select, boolean masks, unique...) are swept "
             "here: the eager device has no graph to keep static.",
             "", "Recorded eager sweep runs (wall seconds): " + "; ".join(
                 f"{r['ops']} ops, {'/'.join(r['dtypes'])}, up to {r['max_samples']} samples "
                 f"per dtype, gradients {'on' if r['grad'] else 'off'}: {r['seconds']} s"
                 for r in meta.get("runs", [])) + ".",
             "", f"- **float32: {f32_pass}/{len(f32)} samples pass ({_pct(f32_pass, len(f32))})**",
             f"- Samples run (all dtypes): {sum(r['status'] != 'unsupported' for r in eager)}, "
             f"passed {sum(r['status'] == 'passed' for r in eager)}",
             "- Unsupported samples by reason: " + ", ".join(
                 f"{c} {n}" for c, n in collections.Counter(
                     r.get("cause") for r in eager if r["status"] == "unsupported"
                     and r.get("cause") not in ("by_design", "dtype_not_supported")
                 ).most_common()) + "; whole ops skipped by design as for the compile "
             "sweep: random or uninitialized outputs, LAPACK/FFT/sparse/complex.",
             "", "Ops without a single lowering run as several device ops where "
             "`python/torch_pjrt/eager_decomp.py` has a kernel for them (torch._decomp "
             "decompositions, nonzero / masked_select / unique / searchsorted with one "
             "synchronizing count, orthogonal polynomials); the rest are listed below.",
             ""]
    lines += failure_tables(failed, "ATen ops that would fall back to the CPU:", 60)
    by_op: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for r in failed:
        by_op[r["op"]].append(r)
    lines += ["", f"Failing ops ({len(by_op)}):", "", "| op | failing samples | first failure |",
              "|---|---:|---|"]
    for key in sorted(by_op):
        lines.append(f"| {key} | {len(by_op[key])} | {_why(by_op[key][0])} |")
    return lines


def render(data: Dict[str, Any], eager_data: Dict[str, Any]) -> str:
    meta, records = data.get("meta", {}), data["records"]
    eager = eager_data.get("records", [])
    eager_by_op: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for r in eager:
        eager_by_op[r["op"]].append(r)
    e32 = [r for r in eager if r["dtype"] == "float32" and r["status"] != "unsupported"]
    e32_pass = sum(r["status"] == "passed" for r in e32)
    by_op: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for r in records:
        by_op[r["op"]].append(r)
    design = {k: v[0]["detail"] for k, v in by_op.items()
              if any(r.get("cause") == "by_design" for r in v)}
    swept = {k: v for k, v in by_op.items() if k not in design}
    ran_ops = [k for k, v in swept.items() if any(r["status"] != "unsupported" for r in v)]
    f32 = [r for r in records if r["dtype"] == "float32" and r["status"] != "unsupported"]
    f32_pass = sum(r["status"] == "passed" for r in f32)
    failed = [r for r in records if r["status"] == "failed"]
    lines = [
        "# Op coverage: OpInfo through `torch.compile(backend=\"pjrt\")` and the eager device",
        "",
        "Generated by `tools/op_coverage.py` from a real run of "
        "`tests/python/opinfo_sweep.py` — do not edit by hand.",
        f"Last written {meta.get('finished', '?')}, torch {meta.get('torch', '?')}, "
        f"dtypes {', '.join(meta.get('dtypes', []))}, "
        f"`torch_pjrt.config.fallback = \"error\"` (a missing lowering is a failure, "
        f"never a silent CPU run).",
    ]
    if meta.get("runs"):
        lines.append("Recorded sweep runs (wall seconds each; parallel runs overlap): " + "; ".join(
            f"{r['ops']} ops, {'/'.join(r['dtypes'])}, up to {r['max_samples']} samples per "
            f"dtype, gradients {'on' if r['grad'] else 'off'}: {r['seconds']} s"
            for r in meta["runs"]) + ".")
    lines += [
        "",
        "Each sample: eager CPU vs `torch.compile(fn, backend=\"pjrt\", dynamic=False, "
        "fullgraph=True)`, `torch.testing.assert_close` (float32 atol 1e-5 / rtol 1e-4, "
        "bfloat16 1e-2 / 2e-2, int64 exact; OpInfo's own toleranceOverride when larger); "
        "gradient = `torch.autograd.grad` of the sum of the float outputs w.r.t. the "
        "inputs that require grad, compiled vs eager.",
        "",
        "## Totals",
        "",
        f"- OpInfo entries: {len(by_op)}; swept with at least one sample run: {len(ran_ops)}; "
        f"unsupported by design: {len(design)}",
        f"- Samples run (forward + gradient, all dtypes): "
        f"{sum(r['status'] != 'unsupported' for r in records)}, passed "
        f"{sum(r['status'] == 'passed' for r in records)}",
        f"- **float32: {f32_pass}/{len(f32)} samples pass ({_pct(f32_pass, len(f32))})**"
        f" through torch.compile; eager device (section below): **{e32_pass}/{len(e32)} "
        f"({_pct(e32_pass, len(e32))})**",
        "",
    ] + totals(records, eager)
    no_exec = sum(1 for r in records if r["status"] == "passed" and r["pass"] == "fwd"
                  and r.get("executions") == 0)
    if no_exec:
        lines += ["", f"{no_exec} passing forward samples ran no device computation at all "
                  "(pure views / metadata ops: nothing to compute)."]
    unsup = collections.Counter(r.get("cause") for r in records if r["status"] == "unsupported"
                                and r.get("cause") not in ("by_design", "dtype_not_supported"))
    lines += ["", "Unsupported samples by reason: " + ", ".join(
        f"{c} {n}" for c, n in unsup.most_common()) + "."]
    lines += ["", "## Failure causes", ""]
    lines += failure_tables(failed, "## Most frequent missing ATen lowerings", 40)
    kept: collections.Counter = collections.Counter()
    kept_ops: Dict[str, set] = collections.defaultdict(set)
    for r in records:
        if r.get("cause") == "no_core_decomposition":
            for name in (r.get("detail") or "").split(","):
                kept[name.strip()] += 1
                kept_ops[name.strip()].add(r["op"])
    lines += ["", "## Non-Core-ATen ops left in the graphs (counted unsupported)", "",
              "No Core-ATen decomposition exists for these, so the samples are "
              "\"unsupported by design\"; a direct lowering would still turn them into passes.",
              "", "| ATen op | samples | OpInfo ops |", "|---|---:|---|"]
    for name, n in kept.most_common(40):
        ops = sorted(kept_ops[name])
        lines.append(f"| `{name}` | {n} | {', '.join(ops[:6])}{' ...' if len(ops) > 6 else ''} |")
    columns = [(d, w) for d, w in COLUMNS
               if any(r["dtype"] == d and r["pass"] == w for r in records)]
    lines += ["", "## Per op", "",
              "Cells are passed/ran samples (bold = all pass); `(Nu)` = N samples "
              "unsupported (eager raises, non-Core-ATen op, graph break). Why = first "
              "failure.", "",
              "| op | " + " | ".join(f"{d} {w}" for d, w in columns) + " | why | eager device |",
              "|---|" + "---:|" * len(columns) + "---|---:|"]
    for key in sorted(swept):
        recs = swept[key]
        cells = [_cell([r for r in recs if r["dtype"] == d and r["pass"] == w])
                 for d, w in columns]
        bad = [r for r in recs if r["status"] == "failed"]
        why = _why(bad[0]) if bad else ""
        if not bad and not any(r["status"] == "passed" for r in recs):
            unsup = [r for r in recs if r["status"] == "unsupported"]
            why = f"unsupported: {_why(unsup[0])}" if unsup else ""
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {why} | "
                     f"{_op_cell(eager_by_op.get(key, []))} |")
    lines += ["", "## Unsupported by design", "",
              "Data-dependent output shapes, random or uninitialized outputs, and ops "
              "with no Core-ATen decomposition (LAPACK, FFT, sparse, complex):", ""]
    grouped: Dict[str, List[str]] = collections.defaultdict(list)
    for k, why in design.items():
        grouped[why].append(k)
    for why, ks in sorted(grouped.items()):
        lines.append(f"- {why} ({len(ks)}): {', '.join(sorted(ks))}")
    lines += eager_section(eager, eager_data.get("meta", {}))
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=DEFAULT_JSON)
    p.add_argument("--eager-json", default=DEFAULT_EAGER_JSON,
                   help="eager-device sweep (opinfo_sweep.py --mode eager); skipped if absent")
    p.add_argument("--out", default=DEFAULT_MD)
    p.add_argument("--run", action="store_true", help="run the sweep first")
    a, sweep_args = p.parse_known_args(argv)
    if a.run:
        eager = "eager" in sweep_args or "--mode=eager" in sweep_args
        subprocess.check_call([sys.executable, SWEEP, "--out", a.eager_json if eager else a.json]
                              + sweep_args)
    elif sweep_args:
        p.error(f"unknown arguments {sweep_args} (sweep arguments need --run)")
    with open(a.json) as f:
        data = json.load(f)
    eager_data: Dict[str, Any] = {}
    if os.path.exists(a.eager_json):
        with open(a.eager_json) as f:
            eager_data = json.load(f)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(render(data, eager_data))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
