"""Diagnosis and report of the program comparison (bench/compare.py).

Given the op statistics of both sides (compare_hlo.stats), names in one line
what most likely makes our programs slower than JAX's: heavy-op counts, work
and dimension numbers, extra transposes and copies (by bytes written, and
whether they sit next to a dot_general or convolution), the forward/backward
split, data-movement ops, reduces (index checks among them) and elementwise
substitutions. Then writes the side-by-side report: a summary table, and per
workload the op histogram with the differences in bold, the dot_general and
convolution signatures, reduces, transposes next to heavy ops, no-op shape
ops and custom calls; stdout gets the summary and each row's differing ops."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from torch_pjrt.bench import compare_hlo as hlo

Stats = Dict[str, Counter]
Note = Tuple[float, str]

# Ops that move or rearrange data, or loop, compared one by one.
STRUCTURAL = ("copy", "reverse", "reduce_window", "select_and_scatter", "gather", "scatter",
              "pad", "concatenate", "slice", "dynamic_slice", "dynamic_update_slice", "while",
              "sort", "custom_call", "rng_bit_generator", "iota")
_NOT_ELEMENTWISE = set(STRUCTURAL) | {"dot_general", "dot", "convolution", "transpose",
                                      "reshape", "broadcast_in_dim", "constant", "convert",
                                      "reduce"}
_HEAVY = (("convolution", "convs", r"(\[[^ ]*\])"), ("dot_general", "dots", r"(\[[^\]]*\])$"))


def _mb(nbytes: float) -> str:
    if nbytes >= 1e4:
        return f"{nbytes / 1e6:.2f} MB"
    return f"{nbytes / 1e3:.1f} kB" if nbytes >= 1e3 else f"{int(nbytes)} B"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if abs(n) == 1 else "s")


def _op(st: Stats, short_name: str) -> int:
    return st["ops"].get("stablehlo." + short_name, 0)


def _bytes(st: Stats, short_name: str) -> int:
    return st["bytes"].get("stablehlo." + short_name, 0)


def _layouts(keys: Counter, pattern: str) -> Counter:
    out: Counter = Counter()
    for k, n in keys.items():
        m = re.search(pattern, k)
        out[m.group(1) if m else "?"] += n
    return out


def _mix(c: Counter) -> str:
    return ", ".join(f"{k} x{n}" for k, n in c.most_common())


def _transpose_notes(ours: Stats, theirs: Stats) -> List[Note]:
    notes = []
    for short_name in ("transpose", "copy"):
        d = _op(ours, short_name) - _op(theirs, short_name)
        if d <= 0:
            continue
        nb = max(_bytes(ours, short_name) - _bytes(theirs, short_name), 0)
        parts = []
        if short_name == "transpose":
            for k in ("transpose -> convolution", "transpose -> dot_general",
                      "convolution -> transpose", "dot_general -> transpose"):
                dk = ours["adjacent"].get(k, 0) - theirs["adjacent"].get(k, 0)
                if dk > 0:
                    heavy = k.replace("transpose", "").replace("->", "").strip()
                    parts.append(f"{dk} {'feeding' if k.startswith('transpose') else 'after'} "
                                 f"{heavy}")
        extra = f": {', '.join(parts)}" if parts else ""
        notes.append((32 + d / 2 + nb / 1e5, f"{_plural(d, 'more ' + short_name)} "
                                     f"({_mb(nb)} written){extra}"))
    return notes


def _heavy_notes(ours: Stats, theirs: Stats, transpose_score: float) -> List[Note]:
    notes = []
    for short_name, key, pattern in _HEAVY:
        o, j = _op(ours, short_name), _op(theirs, short_name)
        fo, fj = ours["flops"].get(short_name, 0), theirs["flops"].get(short_name, 0)
        more_work = fj and abs(fo - fj) > 0.01 * fj
        if o != j or more_work:
            text = f"{o} {short_name} vs JAX's {j}"
            if more_work:
                text = f"{short_name} work {fo / 1e6:.1f} vs {fj / 1e6:.1f} MFLOP ({o} vs {j} ops)"
            notes.append((100 + abs(o - j), text))
        lo, lj = _layouts(ours[key], pattern), _layouts(theirs[key], pattern)
        if lo != lj:
            adj = sum(ours["adjacent"].get(k, 0) - theirs["adjacent"].get(k, 0)
                      for k in (f"transpose -> {short_name}", f"{short_name} -> transpose"))
            notes.append((transpose_score - 0.5 if adj > 0 else 15,
                          f"{short_name} dimension numbers: ours {_mix(lo - lj)}; "
                          f"JAX {_mix(lj - lo)}"))
        elif ours[key] != theirs[key]:
            n = sum((ours[key] - theirs[key]).values())
            notes.append((40, f"{n} {short_name} with other operand shapes than JAX's"))
    return notes


def _structural_notes(ours: Stats, theirs: Stats) -> List[Note]:
    notes = []
    for short_name in STRUCTURAL:
        o, j = _op(ours, short_name), _op(theirs, short_name)
        if o == j:
            continue
        nb = _bytes(ours, short_name) - _bytes(theirs, short_name)
        # no-ops (a slice of the whole operand) cost nothing
        real = (o - ours["noops"].get(short_name, 0)) - (j - theirs["noops"].get(short_name, 0))
        score = (30 + real + max(nb, 0) / 1e5) if real > 0 else 14
        noop = ours["noops"].get(short_name, 0)
        notes.append((score, f"{short_name} {o} vs {j}" + (f" (+{_mb(nb)})" if nb > 0 else "")
                      + (f", {noop} of ours no-ops" if noop else "")))
    more, fewer = ours["reduces"] - theirs["reduces"], theirs["reduces"] - ours["reduces"]
    if more or fewer:
        checks = sum(n for k, n in more.items() if k.split()[0] in ("or", "maximum")
                     and k.split()[-1] in ("i1", "i32", "i64"))
        bits = [f"+{n} {k}" for k, n in more.most_common(3)] + \
            [f"-{n} {k}" for k, n in fewer.most_common(2)]
        text = f"reduce {_op(ours, 'reduce')} vs {_op(theirs, 'reduce')} ({', '.join(bits)})"
        if checks:
            text += f", {checks} of ours index checks"
        notes.append((25 + sum(more.values()) / 10 if more else 14, text))
    return notes


def _elementwise(st: Stats) -> Counter:
    return Counter({k: n for k, n in st["ops"].items()
                    if k.split(".")[-1] not in _NOT_ELEMENTWISE})


def _elementwise_notes(ours: Stats, theirs: Stats) -> List[Note]:
    eo, ej = _elementwise(ours), _elementwise(theirs)
    deltas = [(k, eo.get(k, 0) - ej.get(k, 0)) for k in set(eo) | set(ej)]
    deltas = sorted((d for d in deltas if abs(d[1]) >= 3), key=lambda d: (-abs(d[1]), d[0]))
    notes = []
    if deltas:
        extra = sum(max(ours["bytes"].get(k, 0) - theirs["bytes"].get(k, 0), 0)
                    for k, _ in deltas)
        subs = ", ".join(f"{d:+d} {k.replace('stablehlo.', '')}" for k, d in deltas[:4])
        # XLA fuses elementwise chains: their bytes weigh little
        notes.append((12 + min(extra / 5e6, 20), f"elementwise ops {sum(eo.values())} vs "
                                        f"{sum(ej.values())} ({subs})"))
    bo = _op(ours, "broadcast_in_dim") + _op(ours, "reshape")
    bj = _op(theirs, "broadcast_in_dim") + _op(theirs, "reshape")
    if bo > bj * 1.5 and bo - bj >= 10:
        notes.append((5, f"reshape+broadcast_in_dim {bo} vs {bj}"))
    return notes


def notes(ours: Stats, theirs: Stats, programs: int = 1, jax_programs: int = 1,
          between_bytes: int = 0) -> List[Note]:
    """Every difference found, as (score, text), highest score first."""
    tr = _transpose_notes(ours, theirs)
    out = tr + _heavy_notes(ours, theirs, max((s for s, t in tr if "transpose" in t),
                                              default=15.5))
    if programs > jax_programs:
        out.append((30 + min(between_bytes / 1e5, 40), f"{programs} programs vs {jax_programs} "
                    f"({_mb(between_bytes)} of forward results written for the backward)"))
    out += _structural_notes(ours, theirs) + _elementwise_notes(ours, theirs)
    return sorted(out, key=lambda n: -n[0])


def diagnose(ours: Stats, theirs: Stats, ratio: Optional[float] = None, programs: int = 1,
             jax_programs: int = 1, between_bytes: int = 0, limit: int = 4) -> str:
    """One line naming the differences that most likely make ours slower."""
    found = notes(ours, theirs, programs, jax_programs, between_bytes)
    body = "; ".join(t for _, t in found[:limit]) or "same ops, shapes and data movement"
    if ratio is not None and ratio <= 1.02:
        return f"not slower (x{ratio:.2f}); differences: {body}" if found else \
            f"not slower (x{ratio:.2f}); {body}"
    return "ours: " + body


# ---------------------------------------------------------------- report --

def _f(v: Optional[float], fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def summary_lines(res: Dict[str, Any]) -> List[str]:
    """The markdown summary table, one row per workload."""
    lines = ["| workload | ours execute ms (programs) | JAX execute ms | ours/JAX (min) | "
             "JAX whole call ms | ours whole step ms | what makes ours slower |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res["workloads"].items():
        if "error" in r:
            lines.append(f"| {name} | - | - | - | - | - | error: {r['error']} |")
            continue
        progs = " + ".join(f"{p['ms']:.3f}" for p in r["ours_programs"])
        ours = f"{r['ours_ms']:.3f}" + (f" ({progs})" if len(r["ours_programs"]) > 1 else "")
        ratio = f"{_f(r['ratio'], '{:.2f}x')} ({_f(r.get('ratio_min'), '{:.2f}x')})"
        lines.append(f"| {name} | {ours} | {r['jax_ms']:.3f} | {ratio} | "
                     f"{_f(r.get('jax_call_ms'))} | {_f(r.get('ours_step_ms'))} | "
                     f"{r['diagnosis']} |")
    return lines


def _table(title: str, rows: List[Any], key_name: str, only_diff: bool = False) -> List[str]:
    rows = [r for r in rows if r[3] or not only_diff]
    if not rows:
        return []
    out = [f"**{title}**", "", f"| {key_name} | ours | JAX | ours - JAX |", "|---|---|---|---|"]
    for k, o, j, d in rows:
        if d:
            out.append(f"| **{k}** | **{o}** | **{j}** | **{d:+d}** |")
        else:
            out.append(f"| {k} | {o} | {j} | 0 |")
    return out + [""]


def detail_lines(name: str, r: Dict[str, Any]) -> List[str]:
    """Per workload: programs, the op histogram side by side (differences in
    bold), dot_general / convolution signatures, reduces, transposes next to
    heavy ops, shape no-ops and custom calls."""
    out = [f"## {name}", "", f"Diagnosis: {r['diagnosis']}", ""]
    for p in r["ours_programs"]:
        out.append(f"- ours `{p['name']}`: {p['ms']:.3f} ms (min {p['min_ms']:.3f}), "
                   f"{p['params']} parameters, {p['ops']} ops, results "
                   f"{p['result_bytes'] / 1e6:.2f} MB")
    jp = r["jax_program"]
    out.append(f"- JAX: {jp['ms']:.3f} ms (min {jp['min_ms']:.3f}), {jp['params']} parameters, "
               f"{jp['ops']} ops; JAX's own jitted call {_f(r.get('jax_call_ms'))} ms")
    out.append(f"- ours in the bench loop (`{r['system']}`): {r['launches_per_step']:g} launches "
               f"per step (programs and eager ops), whole step {_f(r['ours_step_ms'])} ms")
    so, sj = r["stats"]["ours"], r["stats"]["jax"]
    for k in ("dot_general", "convolution"):
        fo, fj = so.get("flops", {}).get(k, 0), sj.get("flops", {}).get(k, 0)
        if fo or fj:
            out.append(f"- {k} work: ours {fo / 1e6:.2f} MFLOP, JAX {fj / 1e6:.2f} MFLOP")
    out.append("")

    def rows(k):
        return hlo.diff(so.get(k, {}), sj.get(k, {}))

    hist = [(k.replace("stablehlo.", ""), o, j, d) for k, o, j, d in rows("ops")]
    hist.sort(key=lambda x: (x[3] == 0, -abs(x[3]), -max(x[1], x[2]), x[0]))
    out += _table("Op histogram", hist, "op")
    out += _table("dot_general", rows("dots"), "operands -> result [b: batch, c: contracting]")
    out += _table("convolution", rows("convs"), "lhs * rhs -> result, layout, window")
    out += _table("reduce (body, element type)", rows("reduces"), "reduce", only_diff=True)
    adj = [x for x in rows("adjacent") if not x[0].endswith("bytes")]
    out += _table("transposes next to dot_general / convolution", adj, "pair")
    out += _table("no-op shape ops (operand type == result type)", rows("noops"), "op")
    out += _table("custom_call targets", rows("custom_calls"), "target")
    return out


def markdown(res: Dict[str, Any]) -> str:
    head = [f"# Program comparison: torch-pjrt vs JAX (torchax), {res['date']}", "",
            f"Plugin: {res['plugin']} ({res['platform']}); our programs from the "
            f"`{res['system']}` system; suite `{res['size']}`; median of {res['reps']} "
            f"executes after 3 warm-up, interleaved; inputs random. JAX side: "
            f"{res.get('jax_note', '')}.", "",
            "Execute time is `Executable.execute` plus waiting for its results, on "
            "device buffers, for the very same compiled text of each side: per-call "
            "overhead is not in it. ours/JAX > 1 means ours is slower. For reference, "
            "'JAX whole call' is JAX's own jitted call (dispatch, execute, wait) and 'ours "
            "whole step' one step of torch.compile as the bench runs it (guards, launches, "
            "eager ops, synchronize).", ""]
    body = summary_lines(res) + [""]
    for name, r in res["workloads"].items():
        if "error" not in r:
            body += detail_lines(name, r)
    return "\n".join(head + body) + "\n"


def stdout_lines(res: Dict[str, Any]) -> List[str]:
    out = [f"{'workload':<20} {'ours ms':>9} {'JAX ms':>9} {'ours/JAX':>8}  diagnosis"]
    for name, r in res["workloads"].items():
        if "error" in r:
            out.append(f"{name:<20} error: {r['error']}")
            continue
        out.append(f"{name:<20} {r['ours_ms']:>9.3f} {r['jax_ms']:>9.3f} "
                   f"{_f(r['ratio'], '{:.2f}x'):>8}  {r['diagnosis']}")
        diffs = [(k.replace("stablehlo.", ""), o, j, d)
                 for k, o, j, d in hlo.diff(r["stats"]["ours"]["ops"], r["stats"]["jax"]["ops"])
                 if d]
        if diffs:
            out.append("    * " + ", ".join(f"{k} {o}/{j}" for k, o, j, d in diffs[:10])
                       + (" ..." if len(diffs) > 10 else ""))
    return out


def write(res: Dict[str, Any], out_dir: str, save_programs: bool = False) -> List[str]:
    """<date>-compare.md and .json (and the programs' texts with save_programs)."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{res['date'][:10]}-compare")
    paths = [stem + ".md", stem + ".json"]
    if save_programs:
        for name, r in res["workloads"].items():
            d = os.path.join(stem + "-programs", name)
            os.makedirs(d, exist_ok=True)
            for label, text in r.get("texts", {}).items():
                with open(os.path.join(d, f"{label}.mlir"), "w") as f:
                    f.write(text)
        paths.append(stem + "-programs/")
    with open(stem + ".md", "w") as f:
        f.write(markdown(res))
    slim = dict(res, workloads={n: {k: v for k, v in r.items() if k != "texts"}
                                for n, r in res["workloads"].items()})
    with open(stem + ".json", "w") as f:
        json.dump(slim, f, indent=1, default=str)
    return paths


