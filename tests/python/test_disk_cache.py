"""The persistent compile cache across processes: a second Python process with
the same TORCH_PJRT_CACHE_DIR runs a torch.compile'd function (forward and
backward) without compiling anything, loading every executable from disk, and
gets bit-identical results; a process whose cache files were all damaged
(another program's file under the name, truncated, flipped bytes, empty,
foreign) warns, recompiles and gets eager's results; "off" disables the tier."""
import json
import os
import shutil
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

def head(x):
    return torch.softmax(x, dim=-1).cumsum(0)

w_eager = w.detach().clone().requires_grad_(True)
eager_loss = step(x, w_eager)
eager_loss.backward()

torch_pjrt.metrics_reset()
loss = torch.compile(step, backend="pjrt")(x, w)
loss.backward()
out = torch.compile(head, backend="pjrt")(x)
m = torch_pjrt.metrics()
print(json.dumps({"metrics": m, "loss": loss.item(), "grad": w.grad.flatten().tolist(),
                  "head": out.flatten().tolist(), "eager_loss": eager_loss.item(),
                  "eager_grad": w_eager.grad.flatten().tolist(),
                  "eager_head": head(x).flatten().tolist()}))
"""


def run_child(env, cache_dir, cwd=None):
    env = dict(env, TORCH_PJRT_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


def entry_files(cache_dir):
    return sorted(p for p in os.listdir(cache_dir) if p.endswith(".tpjx"))


def test_second_process_loads_from_disk(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first = run_child(subprocess_env, cache)
    m1 = first["metrics"]
    assert m1["compiles"] >= 3  # step's forward and backward, head
    assert m1["disk_hits"] == 0 and m1["disk_writes"] == m1["compiles"]
    files = entry_files(cache)
    assert len(files) == m1["compiles"]
    assert not [p for p in os.listdir(cache) if ".tmp." in p]

    second = run_child(subprocess_env, cache)
    m2 = second["metrics"]
    assert m2["compiles"] == 0
    assert m2["disk_hits"] == m1["compiles"] and m2["disk_writes"] == 0
    assert_matches_eager(first)
    for key in ("loss", "grad", "head"):
        assert second[key] == first[key]
    assert entry_files(cache) == files


def assert_matches_eager(run):
    torch = pytest.importorskip("torch")
    for got, want in (("loss", "eager_loss"), ("grad", "eager_grad"), ("head", "eager_head")):
        torch.testing.assert_close(torch.tensor(run[got]), torch.tensor(run[want]),
                                   rtol=1e-5, atol=1e-6, msg=got)


def damage(files, mode):
    """Rewrites every entry file in `files` (paths) the way `mode` says."""
    blobs = [p.read_bytes() for p in files]
    for i, path in enumerate(files):
        data = blobs[i]
        if mode == "collision":  # the next program's valid file under this name
            data = blobs[(i + 1) % len(blobs)]
        elif mode == "truncated":
            data = data[: len(data) // 2]
        elif mode == "flipped_payload":
            data = data[:-9] + bytes([data[-9] ^ 0x40]) + data[-8:]
        elif mode == "flipped_header":
            data = data[:20] + bytes([data[20] ^ 0x01]) + data[21:]
        elif mode == "empty":
            data = b""
        elif mode == "foreign":
            data = b"\x7fELF" + bytes(range(256)) * 8
        path.write_bytes(data)


_POPULATED = {}


def populated_cache(tmp_path_factory, env):
    """A cache directory filled by one child run (made once per session), and
    that run's result."""
    if not _POPULATED:
        cache = tmp_path_factory.mktemp("populated") / "cache"
        _POPULATED["first"] = run_child(env, cache)
        _POPULATED["dir"] = cache
    return _POPULATED["dir"], _POPULATED["first"]


@pytest.mark.parametrize("mode", ["collision", "truncated", "flipped_payload",
                                  "flipped_header", "empty", "foreign"])
def test_damaged_entries_are_recompiled(tmp_path, tmp_path_factory, subprocess_env, mode):
    template, first = populated_cache(tmp_path_factory, subprocess_env)
    compiles = first["metrics"]["compiles"]
    assert compiles >= 3 and len(entry_files(template)) == compiles
    assert_matches_eager(first)
    cache = tmp_path / "cache"
    shutil.copytree(template, cache)
    files = [cache / name for name in entry_files(cache)]
    damage(files, mode)
    second = run_child(subprocess_env, cache)
    m = second["metrics"]
    assert m["disk_hits"] == 0 and m["compiles"] == compiles
    assert m["disk_writes"] == compiles
    assert second["stderr"].count("the program is compiled again") == compiles, second["stderr"]
    assert_matches_eager(second)
    for key in ("loss", "grad", "head"):
        assert second[key] == first[key]
    # Each damaged file was replaced by a valid entry for its own key (the
    # header's first 48 bytes: magic, format, size and key digest).
    assert entry_files(cache) == entry_files(template)
    for name in entry_files(cache):
        assert (cache / name).read_bytes()[:48] == (template / name).read_bytes()[:48]


@pytest.mark.parametrize("setting", ["off", ""])
def test_disabled_cache_writes_nothing(tmp_path, subprocess_env, setting):
    env = dict(subprocess_env, HOME=str(tmp_path / "home"))
    out = run_child(env, setting, cwd=tmp_path)  # "off" is not a relative path
    assert out["metrics"]["compiles"] >= 2
    assert out["metrics"]["disk_hits"] == 0 and out["metrics"]["disk_writes"] == 0
    assert not (tmp_path / "home").exists() and os.listdir(tmp_path) == []
