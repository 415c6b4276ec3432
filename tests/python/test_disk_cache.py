"""The persistent compile cache across processes: a second Python process with
the same TORCH_PJRT_CACHE_DIR runs a torch.compile'd function (forward and
backward) without compiling anything, loading every executable from disk, and
gets bit-identical results; "off" disables the tier."""
import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, sys
import torch
import torch_pjrt

torch.manual_seed(0)
w = torch.randn(16, 8, requires_grad=True)
x = torch.randn(4, 16)

def step(x, w):
    y = torch.tanh(x @ w) * 2 + x.sum()
    return (y * y).mean()

torch_pjrt.metrics_reset()
loss = torch.compile(step, backend="pjrt")(x, w)
loss.backward()
m = torch_pjrt.metrics()
print(json.dumps({"metrics": m, "loss": loss.item(), "grad": w.grad.flatten().tolist()}))
"""


def run_child(env, cache_dir, cwd=None):
    env = dict(env, TORCH_PJRT_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def entry_files(cache_dir):
    return sorted(p for p in os.listdir(cache_dir) if p.endswith(".tpjx"))


def test_second_process_loads_from_disk(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first = run_child(subprocess_env, cache)
    m1 = first["metrics"]
    assert m1["compiles"] >= 2  # forward and backward programs
    assert m1["disk_hits"] == 0 and m1["disk_writes"] == m1["compiles"]
    files = entry_files(cache)
    assert len(files) == m1["compiles"]
    assert not [p for p in os.listdir(cache) if ".tmp." in p]

    second = run_child(subprocess_env, cache)
    m2 = second["metrics"]
    assert m2["compiles"] == 0
    assert m2["disk_hits"] == m1["compiles"] and m2["disk_writes"] == 0
    assert second["loss"] == first["loss"]
    assert second["grad"] == first["grad"]
    assert entry_files(cache) == files


@pytest.mark.full  # the C tests cover corrupt files; this is the end-to-end check
def test_corrupt_entries_are_recompiled(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first = run_child(subprocess_env, cache)
    for name in entry_files(cache):
        with open(cache / name, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
    second = run_child(subprocess_env, cache)
    m = second["metrics"]
    assert m["disk_hits"] == 0 and m["compiles"] == first["metrics"]["compiles"]
    assert m["disk_writes"] == m["compiles"]
    assert second["loss"] == first["loss"] and second["grad"] == first["grad"]
    third = run_child(subprocess_env, cache)
    assert third["metrics"]["compiles"] == 0 and third["metrics"]["disk_hits"] == m["compiles"]


@pytest.mark.parametrize("setting", ["off", ""])
def test_disabled_cache_writes_nothing(tmp_path, subprocess_env, setting):
    env = dict(subprocess_env, HOME=str(tmp_path / "home"))
    out = run_child(env, setting, cwd=tmp_path)  # "off" is not a relative path
    assert out["metrics"]["compiles"] >= 2
    assert out["metrics"]["disk_hits"] == 0 and out["metrics"]["disk_writes"] == 0
    assert not (tmp_path / "home").exists() and os.listdir(tmp_path) == []
