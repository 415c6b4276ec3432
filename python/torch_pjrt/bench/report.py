"""Report writer: Markdown table, JSON and a PNG chart of speed-up vs eager."""
from __future__ import annotations

import json
import math
import os

SYSTEMS = ["eager", "inductor", "pjrt", "torchax", "pjrt_device"]


def _ratio(rows, peer):
    """time(peer) / time(pjrt): > 1 means torch-pjrt is faster."""
    a, b = rows.get("pjrt", {}), rows.get(peer, {})
    if "median_s" in a and "median_s" in b:
        return b["median_s"] / a["median_s"]
    return None


def _device_ratio(rows):
    """time(eager) / time(eager pjrt device): above 1 means the device is faster."""
    d, e = rows.get("pjrt_device", {}), rows.get("eager", {})
    if "median_s" in d and "median_s" in e:
        return e["median_s"] / d["median_s"]
    return None


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


def _geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def markdown(res):
    wl = res["workloads"]
    lines = [f"# Benchmarks {res['date']} on {res['host']} ({res['machine']}, torch {res['torch']}, "
             f"{res['size']} suite, {res['reps']} interleaved reps, median [min–max])", "",
             "| workload | " + " | ".join(SYSTEMS) + " | pjrt vs eager | vs inductor | vs torchax | device vs eager | pjrt bytes/call |",
             "|---" * (len(SYSTEMS) + 6) + "|"]
    for name, rows in wl.items():
        cells = [_cell(rows.get(s, {"status": "not run"})) for s in SYSTEMS]
        ratios = [_ratio(rows, p) for p in ("eager", "inductor", "torchax")]
        ratios.append(_device_ratio(rows))
        rtxt = [f"{r:.2f}×" if r else "–" for r in ratios]
        b = rows.get("pjrt", {}).get("bytes_moved_per_call")
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(rtxt) +
                     f" | {b if b is not None else '–'} |")
    gi = _geomean([_ratio(r, "inductor") for r in wl.values()])
    gx = _geomean([_ratio(r, "torchax") for r in wl.values()])
    lines += ["", "Ratios are time(peer) / time(torch-pjrt): above 1 means torch-pjrt is faster. "
              "pjrt_device is the eager device (model.to(\"pjrt\"), op by op), interleaved with the "
              "others in the main process. torchax runs in a second child "
              "process, interleaved with its own eager run (`eager_same_process_s` in the JSON): torchax 0.0.13 "
              "renames PrivateUse1 to \"jax\" without device hooks, after which torch 2.13's Dynamo fails in "
              "torch.accelerator, so it cannot share a process with torch.compile.", "",
              "## Targets", "",
              f"- torch-pjrt vs Inductor, geometric mean: {gi:.2f}× (target ≥ 1.0×)" if gi else "- vs Inductor: n/a",
              f"- torch-pjrt vs torchax, geometric mean: {gx:.2f}× (target ≥ 1.0× on every workload)" if gx else "- vs torchax: n/a"]
    for name, rows in wl.items():
        r = _ratio(rows, "torchax")
        if r is not None and r < 1.0:
            lines.append(f"  - missed on {name}: {r:.2f}× ({(1 / r - 1) * 100:.0f}% slower than torchax)")
    tiny = wl.get("tiny_call_overhead", {})
    if "median_s" in tiny.get("pjrt", {}) and "median_s" in tiny.get("inductor", {}):
        p, i = tiny["pjrt"]["median_s"] * 1e6, tiny["inductor"]["median_s"] * 1e6
        lines.append(f"- per-call overhead: torch-pjrt {p:.1f} µs vs Inductor {i:.1f} µs = "
                     f"{p / i:.2f}× Inductor's (target ≤ 1.5×)")
    lines += ["", "## CPU peak", "", res["cpu_peak_text"], ""]
    for name, rows in wl.items():
        for s, row in rows.items():
            if "gflops" in row:
                lines.append(f"- {name} {s}: {row['gflops']:.1f} GFLOP/s = "
                             f"{100 * row['gflops'] * 1e9 / res['cpu_peak_flops']:.0f}% of peak")
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
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.5))
    width = 0.8 / len(SYSTEMS)
    for i, s in enumerate(SYSTEMS):
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
    ax.set_title(f"{res['host']} {res['date'][:10]} ({res['size']} suite)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{res['date'][:10]}-{res['host']}")
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown(res))
    paths = [stem + ".json", stem + ".md"]
    try:
        chart(res, stem + ".png")
        paths.append(stem + ".png")
    except Exception as e:  # the chart needs matplotlib (requirements-bench.txt)
        print(f"chart not written: {e}")
    return paths
