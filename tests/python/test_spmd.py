"""torch_pjrt.spmd (issue 15): sharded tensors over a mesh of the XLA CPU
plugin's devices (cpu_device_count=N), eager ops as SPMD programs partitioned
by XLA, and GPT training under data, FSDP-style and 2-D sharding matching
the same training on the CPU. Each case runs in its own process (the device
count is fixed when the client starts)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "python", "spmd_worker.py")


def run_worker(devices: int, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               TORCH_PJRT_CLIENT_OPTIONS=f"cpu_device_count={devices}")
    p = subprocess.run([sys.executable, WORKER, *args], env=env, capture_output=True,
                       text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    return out


def test_sharded_tensor_ops_on_eight_devices():
    out = run_worker(8, "ops")
    assert "ok ops" in out, out[-4000:]


def test_review_cases_on_four_devices():
    """Scatters with sharded indices, in-place dtypes, BatchNorm running
    stats, multi-output views, .data =, spmd.shard inside autograd,
    as_strided on views, gradient accumulation (spmd_review_worker.py)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               TORCH_PJRT_CLIENT_OPTIONS="cpu_device_count=4")
    worker = os.path.join(ROOT, "tests", "python", "spmd_review_worker.py")
    p = subprocess.run([sys.executable, worker, "all"], env=env, capture_output=True,
                       text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert out.count("ok ") >= 8, out[-4000:]


def test_other_models_match_cpu_on_four_devices():
    out = run_worker(4, "models", "4")
    assert "ok models" in out, out[-4000:]


@pytest.mark.parametrize("mode,devices", [("dp", 4), ("fsdp", 8)])
def test_gpt_training_matches_cpu(mode, devices):
    out = run_worker(devices, "train", mode, str(devices))
    assert f"ok train {mode} {devices}" in out, out[-4000:]


@pytest.mark.parametrize("mode,devices", [("fsdp", 8), ("2d", 8)])
def test_compiled_gpt_training_is_one_program_each_way(mode, devices):
    out = run_worker(devices, "train", mode, str(devices), "compiled")
    assert f"ok train {mode} {devices} compiled" in out, out[-4000:]


@pytest.mark.full
@pytest.mark.parametrize("mode,devices", [("2d", 8), ("dp", 8), ("fsdp", 4), ("2d", 4),
                                          ("dp", 2)])
def test_gpt_training_matches_cpu_more_meshes(mode, devices):
    out = run_worker(devices, "train", mode, str(devices))
    assert f"ok train {mode} {devices}" in out, out[-4000:]
