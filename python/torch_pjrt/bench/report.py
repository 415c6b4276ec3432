"""Report writer: Markdown table, targets with a profile of every torch-pjrt
row that misses one, the per-op overhead section, JSON and a PNG chart of
speed-up vs eager."""
from __future__ import annotations

import json
import math
import os

from torch_pjrt.bench.perop import PER_OP_TARGET, rows as perop_rows
from torch_pjrt.bench.systems import SYSTEM_NAMES

SYSTEMS = SYSTEM_NAMES
# The torch-pjrt systems measured against the targets, and their labels.
PJRT_SYSTEMS = {"pjrt": "pjrt (CPU tensors in and out)",
                "pjrt_dev_compile": "pjrt_dev_compile (tensors on the pjrt device)"}
TINY_TARGET = 1.5  # per-call overhead of the tiny model, x Inductor's


def ratio(rows, peer, system="pjrt"):
    """time(peer) / time(system): > 1 means `system` is faster."""
    a, b = rows.get(system, {}), rows.get(peer, {})
    if "median_s" in a and "median_s" in b:
        return b["median_s"] / a["median_s"]
    return None


def _device_ratio(rows):
    """time(eager) / time(eager pjrt device): above 1 means the device is faster."""
    return ratio(rows, "eager", "pjrt_device")


def _cell(row):
    if "median_s" not in row:
        return row.get("status", "n/a")
    ms = row["median_s"] * 1e3
    s = f"{ms:.3g} ms [{row['min_s'] * 1e3:.3g}–{row['max_s'] * 1e3:.3g}]"
    if "gflops" in row:
        s += f"<br>{row['gflops']:.1f} GFLOP/s"
    else:
        s += f"<br>{row['throughput']:.4g} {row['unit']}"
    return s


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _x(r):
    return f"{r:.2f}×" if r else "–"


def missed_targets(name, rows, inductor_geomean_missed):
    """[(system, text, peer)] of the targets this workload's torch-pjrt rows miss.
    inductor_geomean_missed: the systems whose suite geomean vs Inductor is
    below 1 (their rows slower than Inductor count as misses), or a bool for all."""
    out = []
    for s in PJRT_SYSTEMS:
        geo_missed = (inductor_geomean_missed if isinstance(inductor_geomean_missed, bool)
                      else s in inductor_geomean_missed)
        rt = ratio(rows, "torchax", s)
        if rt is not None and rt < 1.0:
            out.append((s, f"{rt:.2f}× torchax (target ≥ 1.0×)", "torchax"))
        ri = ratio(rows, "inductor", s)
        if geo_missed and ri is not None and ri < 1.0:
            out.append((s, f"{ri:.2f}× Inductor (geomean target ≥ 1.0×)", "inductor"))
    for s in PJRT_SYSTEMS if name == "tiny_call_overhead" else ():
        ri = ratio(rows, "inductor", s)
        if ri is not None and 1.0 / ri > TINY_TARGET:
            out.append((s, f"{1.0 / ri:.2f}× Inductor's per-call time "
                           f"(target ≤ {TINY_TARGET}×)", "inductor"))
    return out


def _table(res):
    wl = res["workloads"]
    head = ("| workload | " + " | ".join(SYSTEMS) + " | pjrt vs eager | pjrt vs inductor | "
            "pjrt vs torchax | pjrt_dev_compile vs torchax | device vs eager | pjrt bytes/call |")
    lines = [head, "|---" * (len(SYSTEMS) + 7) + "|"]
    for name, rows in wl.items():
        cells = [_cell(rows.get(s, {"status": "not run"})) for s in SYSTEMS]
        rs = [ratio(rows, "eager"), ratio(rows, "inductor"), ratio(rows, "torchax"),
              ratio(rows, "torchax", "pjrt_dev_compile"), _device_ratio(rows)]
        b = rows.get("pjrt", {}).get("bytes_moved_per_call")
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(_x(r) for r in rs) +
                     f" | {f'{b:.0f}' if b is not None else '–'} |")
    return lines


def _targets(res):
    wl = res["workloads"]
    lines, geo_missed = ["## Targets", ""], set()
    for s, label in PJRT_SYSTEMS.items():
        g = geomean([ratio(r, "inductor", s) for r in wl.values()])
        if g is not None and g < 1.0:
            geo_missed.add(s)
        if g is not None:
            n = sum(1 for r in wl.values() if ratio(r, "inductor", s))
            g2 = geomean([ratio(r, "inductor", s) for k, r in wl.items()
                          if not k.startswith("matmul_bf16")])
            lines.append(f"- {label} vs Inductor, geometric mean over {n} workloads: {_x(g)} "
                         f"(target ≥ 1.0×{'' if g >= 1 else ', missed'}); without the bf16 "
                         f"matmul, where PyTorch's CPU bf16 GEMM is the outlier: {_x(g2)}")
    for s, label in PJRT_SYSTEMS.items():
        g = geomean([ratio(r, "torchax", s) for r in wl.values()])
        if g is None:
            continue
        missed = [(n, ratio(r, "torchax", s)) for n, r in wl.items()]
        missed = [(n, r) for n, r in missed if r is not None and r < 1.0]
        lines.append(f"- {label} vs torchax: geometric mean {_x(g)}; target ≥ 1.0× on every "
                     f"workload: missed on {len(missed)}")
        for n, r in missed:
            lines.append(f"  - {n}: {r:.2f}× ({(1 / r - 1) * 100:.0f}% slower than torchax)")
    tiny = wl.get("tiny_call_overhead", {})
    for s in PJRT_SYSTEMS:
        if not ratio(tiny, "inductor", s):
            continue
        p, i = tiny[s]["median_s"] * 1e6, tiny["inductor"]["median_s"] * 1e6
        lines.append(f"- per-call overhead of the tiny model: {s} {p:.1f} µs vs Inductor "
                     f"{i:.1f} µs = {p / i:.2f}× Inductor's (target ≤ {TINY_TARGET}×"
                     f"{', missed' if p / i > TINY_TARGET else ''})")
    return lines, geo_missed


def _profile_row(name, s, rows, misses):
    prof = rows[s]["profile"]
    parts = prof["parts"]
    untimed = prof["launches_per_step"] > 0 and parts["execute"]["ms"] == 0
    cell = lambda k: f"{parts[k]['ms']:.3g} ({parts[k]['pct']:.0f}%)"
    ex = "not timed on this path" if untimed else cell("execute")
    py = "(includes execute)" if untimed else cell("python")
    nbytes = f"{prof['bytes_h2d_per_step']:.0f} + {prof['bytes_d2h_per_step']:.0f}"
    gaps = "; ".join(f"{(rows[s]['median_s'] - rows[peer]['median_s']) * 1e3:.3g} vs {peer}"
                     for peer in dict.fromkeys(peer for _, peer in misses))
    fc, cs = rows[s].get("first_call_s"), rows[s].get("first_call_compile_s")
    first = f"{fc:.2f} ({cs:.2f})" if fc is not None and cs is not None else "–"
    if rows[s].get("first_call_disk_hits"):
        first += f", {rows[s]['first_call_disk_hits']} from the disk cache"
    missed = "; ".join(text for text, _ in misses)
    return (f"| {name} | {s} | {missed} | {prof['step_ms']:.3g} | {ex} | {cell('h2d')} | "
            f"{cell('d2h')} | {py} | {prof['launches_per_step']:.3g} | {nbytes} | {gaps} | "
            f"{first} |")


def _profile(res, geo_missed):
    """Where torch-pjrt's step time goes, for every row that misses a target."""
    lines = ["", "## Where the time goes (torch-pjrt rows that miss a target)", "",
             "Median step split by the runtime's counters (`torch_pjrt.metrics()` deltas around "
             "each timed rep, medians over the reps): *execute* = inside the plugin's execute "
             "incl. waiting for completion, *h2d*/*d2h* = host↔device copies, "
             "*Python/framework* = the rest of the step (Dynamo guards, AOTAutograd, argument "
             "packing, output wrapping). Compile is not in the timed steps; the first call's time "
             "and the compile seconds inside it are shown apart. *gap* = this row's median minus "
             "the peer's, in ms.", "",
             "| workload | system | missed | step ms | execute | h2d | d2h | Python/framework | "
             "launches/step | bytes/step h2d + d2h | gap ms | first call s (compile s) |",
             "|---" * 12 + "|"]
    n = unprofiled = 0
    for name, rows in res["workloads"].items():
        by_sys = {}
        for s, text, peer in missed_targets(name, rows, geo_missed):
            by_sys.setdefault(s, []).append((text, peer))
        for s, misses in by_sys.items():
            if not rows.get(s, {}).get("profile"):
                unprofiled += 1
                continue
            n += 1
            lines.append(_profile_row(name, s, rows, misses))
    if unprofiled:
        lines += ["", f"{unprofiled} row(s) missing a target have no profile (a run without "
                      f"the runtime's timing counters)."]
    elif not n:
        lines.append("| (no torch-pjrt row misses a target) |" + " |" * 11)
    return lines


def _perop(res):
    po = res.get("perop")
    if not po:
        return []
    lines = ["", "## Per-op overhead of the eager pjrt device (bench/eager_overhead.py)", ""]
    if "error" in po:
        return lines + [f"not measured: {po['error']}"]
    lines += ["| measurement | pjrt device | PyTorch CPU eager | ratio | target |", "|---|---|---|---|---|"]
    for label, p, c, r in perop_rows(po):
        lines.append(f"| {label} | {p:.1f} µs | {c:.1f} µs | {r:.2f}× | ≤ {PER_OP_TARGET:g}× "
                     f"({'met' if r <= PER_OP_TARGET else 'missed'}) |")
    lines += ["", "One process, one torch thread for the CPU baseline, after a warm-up that fills "
              f"the compile caches. Programs built per AdamW step (steps 1..5): "
              f"{po.get('adamw_compiles_per_step', '–')}."]
    return lines


def _peak_for(res, name):
    peaks = res.get("peak_flops") or {}
    if not isinstance(peaks, dict):
        peaks = {}
    if not peaks and res.get("cpu_peak_flops"):  # reports written before peaks per dtype
        peaks = {"float32": res["cpu_peak_flops"], "bfloat16": res["cpu_peak_flops"]}
    return peaks.get("bfloat16" if "bf16" in name else "float32")


def markdown(res):
    dev = res.get("device", "cpu")
    lines = [f"# Benchmarks {res['date']} on {res['host']} ({res['machine']}, torch {res['torch']}, "
             f"{res['size']} suite, device {dev}, {res['reps']} interleaved reps, median [min–max])",
             ""] + _table(res)
    lines += ["", "Ratios are time(peer) / time(torch-pjrt system): above 1 means torch-pjrt is faster. "
              "`pjrt` is torch.compile(backend=\"pjrt\") on CPU tensors (inputs uploaded, outputs "
              "downloaded every call); `pjrt_dev_compile` is the same backend over a model and inputs "
              "already on the eager \"pjrt\" device (no per-call copies: the like-for-like peer of "
              "torchax, which keeps its arrays on the device). `pjrt_device` is the eager device "
              "(model.to(\"pjrt\"), op by op). All of these run interleaved in the main process. "
              "torchax runs in a child process, interleaved with its own eager run "
              "(`eager_same_process_s` in the JSON): torchax 0.0.13 renames PrivateUse1 to \"jax\" "
              "without device hooks, after which torch 2.13's Dynamo fails in torch.accelerator, so "
              "it cannot share a process with torch.compile.", ""]
    tl, geo_missed = _targets(res)
    lines += tl + _profile(res, geo_missed) + _perop(res)
    lines += ["", "## Peak FLOP/s", "", res.get("peak_text") or res.get("cpu_peak_text", ""), ""]
    for name, rows in res["workloads"].items():
        peak = _peak_for(res, name)
        for s, row in rows.items():
            if "gflops" in row and peak:
                lines.append(f"- {name} {s}: {row['gflops']:.1f} GFLOP/s = "
                             f"{100 * row['gflops'] * 1e9 / peak:.0f}% of peak")
    if res.get("compile"):
        c = res["compile"]
        lines += ["", f"## Compile time ({c['workload']}, first call in a new process)", "",
                  "| system | cold (empty caches) | warm (caches from the cold run) |", "|---|---|---|"]
        for s, r in c["rows"].items():
            fmt = lambda v: f"{v:.2f} s" if v is not None else r.get("error", "failed")
            lines.append(f"| {s} | {fmt(r.get('cold'))} | {fmt(r.get('warm'))} |")
    lines += ["", f"torchax: {res.get('torchax_note', '')}", "",
              "Peak RSS is the whole benchmark process's high-water mark after each workload "
              "(in `.json`), since all systems share one process.", ""]
    return "\n".join(lines)


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(res["workloads"])
    shown = [s for s in SYSTEMS if any("median_s" in r.get(s, {}) for r in res["workloads"].values())]
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.5))
    width = 0.8 / max(len(shown), 1)
    for i, s in enumerate(shown):
        vals = []
        for n in names:
            rows = res["workloads"][n]
            e, r = rows.get("eager", {}), rows.get(s, {})
            vals.append(e["median_s"] / r["median_s"] if "median_s" in e and "median_s" in r else 0)
        ax.bar([j + i * width for j in range(len(names))], vals, width, label=s)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("speed-up vs PyTorch eager (×)")
    ax.set_yscale("log")
    ax.set_title(f"{res['host']} {res['date'][:10]} ({res['size']} suite, {res.get('device', 'cpu')})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cell(v, fmt="{:.2f}"):
    """A table cell: `v` formatted, or an em dash where there is no value."""
    return "—" if v is None else fmt.format(v)


def run_info(command):
    """The fields a worker-launching bench's results open with (DDP, SPMD):
    date, host, torch, machine, cores, plugin, the command and the load
    average at the start; finish() adds the wall time and the closing load."""
    import datetime
    import platform
    import socket

    import torch
    import torch_pjrt
    cores = len(os.sched_getaffinity(0))
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": socket.gethostname(), "torch": torch.__version__,
            "machine": f"{platform.machine()}, {cores} cores", "cores": cores,
            "plugin": os.path.basename(torch_pjrt.plugin_path()), "command": command,
            "loadavg_start": os.getloadavg()}


def command_of(base, args, flags):
    """`base` and the options of `args` that were given: flags is a list of
    (attribute, option), e.g. [("reps", "--reps")]; lists are space-joined."""
    cmd = base
    for attr, opt in flags:
        v = getattr(args, attr, None)
        if v is None or v == [] or v is False:
            continue
        cmd += f" {opt}" + ("" if v is True else " " + (" ".join(str(x) for x in v)
                                                       if isinstance(v, (list, tuple)) else str(v)))
    return cmd


def busy_note(res, most=""):
    """A bold warning (and a blank line) when the load average at the start or
    the end passed half the cores; `most` names the rows it hits hardest."""
    busy = max(res["loadavg_start"][0], res["loadavg_end"][0])
    if busy <= 0.5 * res["cores"]:
        return []
    return [f"**Busy machine: load average up to {busy:.1f} on {res['cores']} cores while this "
            f"ran; other work inflates every row{', ' + most if most else ''}.**", ""]


def finish(res, t_start, out_dir, name, markdown_fn):
    """Closes a run_info() result (wall time since `t_start`, the load average
    at the end) and writes <date>-<name>.{json,md}; returns the paths."""
    import time
    res["wall_s"] = time.perf_counter() - t_start
    res["loadavg_end"] = os.getloadavg()
    return write_results(res, out_dir, name, markdown_fn)[1]


def command_line(res, note=""):
    """The report's closing line: the command, its wall time and the load
    average at the start and the end (`note` is appended after "end")."""
    la = lambda k: " ".join(f"{v:.2f}" for v in res.get(k, ()))  # noqa: E731
    return (f"Command: `{res['command']}`, wall time {res['wall_s']:.0f} s; load average "
            f"(1, 5, 15 min) {la('loadavg_start')} at the start, {la('loadavg_end')} at the "
            f"end{note}.")


def write_results(res, out_dir, name, markdown_fn):
    """bench/results/<date>-<name>.{json,md}: the results and their report.
    Returns (stem, paths)."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{res['date'][:10]}-{name}")
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown_fn(res))
    return stem, [stem + ".json", stem + ".md"]


def write(res, out_dir):
    dev = res.get("device", "cpu")
    stem, paths = write_results(res, out_dir, res["host"] + ("" if dev == "cpu" else f"-{dev}"),
                                markdown)
    try:
        chart(res, stem + ".png")
        paths.append(stem + ".png")
    except Exception as e:  # the chart needs matplotlib (requirements-bench.txt)
        print(f"chart not written: {e}")
    return paths
