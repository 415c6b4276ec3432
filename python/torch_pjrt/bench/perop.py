"""Per-op overhead of the eager pjrt device next to PyTorch CPU eager: µs per
op of a chain of small elementwise ops and µs per transformer encoder layer
forward, from bench/eager_overhead.py (its run()), executed in a child process
because it pins torch's thread count to 1 and fills the eager caches."""
from __future__ import annotations

import json
import os
import subprocess
import sys

# Issue 5's target: the eager device within this factor of PyTorch CPU eager.
PER_OP_TARGET = 3.0


def script_path():
    """bench/eager_overhead.py of the source checkout this package runs from."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "bench", "eager_overhead.py"))


def run_child(iters=20, timeout=600):
    """{"cpu_elementwise_us_per_op", "pjrt_elementwise_us_per_op",
    "cpu_transformer_layer_us", "pjrt_transformer_layer_us", ...} or
    {"error": why}."""
    path = script_path()
    if not os.path.exists(path):
        return {"error": f"{path} not found (run from a source checkout)"}
    code = ("import json, runpy, sys; m = runpy.run_path(sys.argv[1]); "
            "print('TPJ-PEROP ' + json.dumps(m['run'](int(sys.argv[2]))))")
    try:
        p = subprocess.run([sys.executable, "-c", code, path, str(iters)], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("TPJ-PEROP "):
            return json.loads(line[len("TPJ-PEROP "):])
    return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def rows(res):
    """[(label, pjrt_us, cpu_us, ratio)] for the report; ratio = pjrt / cpu
    (lower is better, target <= PER_OP_TARGET)."""
    out = []
    for key, label in (("elementwise_us_per_op", "elementwise op on (16, 16), µs/op"),
                       ("transformer_layer_us", "transformer encoder layer forward, µs/layer")):
        p, c = res.get(f"pjrt_{key}"), res.get(f"cpu_{key}")
        if p is not None and c:
            out.append((label, p, c, p / c))
    return out
