"""torch_pjrt.comm: collectives across one process's local pjrt devices as one
StableHLO program run by the plugin's in-process transport (issue 14)."""
import os
import subprocess
import sys

import pytest
import torch

import torch_pjrt
from torch_pjrt import comm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_collective_across_four_local_devices():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               TORCH_PJRT_CLIENT_OPTIONS="cpu_device_count=4")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "python", "comm_worker.py")],
                       env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "ok comm" in out, out[-4000:]


def test_bad_arguments_are_named():
    x = torch.ones(4, 2, device="pjrt:0")
    with pytest.raises(RuntimeError, match=r"tensor 1 must be on pjrt:1 \(got pjrt:0\)"):
        comm.all_reduce([x, x])
    with pytest.raises(ValueError, match="op must be one of"):
        comm.all_reduce([x], op="avg")
    with pytest.raises(ValueError, match="no tensors given"):
        comm.all_gather([])
    with pytest.raises(TypeError, match="item 0 is not a tensor"):
        comm.all_reduce([3])
    with pytest.raises(IndexError, match="dim 2 out of range for rank 2"):
        comm.all_gather([x], dim=2)
    with pytest.raises(ValueError, match="a 0-d tensor has no dimension"):
        comm.all_gather([torch.ones((), device="pjrt:0")])
    if torch.pjrt.device_count() >= 2:
        y = torch.ones(3, 2, device="pjrt:1")
        with pytest.raises(RuntimeError, match=r"tensor 1 has shape \[3, 2\] \(expected \[4, 2\]"):
            comm.all_reduce([x, y])
        z = torch.ones(4, 2, dtype=torch.int32, device="pjrt:1")
        with pytest.raises(RuntimeError, match="tensor 1 is Int"):
            comm.all_reduce([x, z])
        with pytest.raises(ValueError, match="does not split into 2 equal chunks"):
            comm.reduce_scatter([x[:3], x[:3].to("pjrt:1")])
    cpu = torch.ones(2)
    with pytest.raises(RuntimeError, match=r"tensor 0 must be on pjrt:0 \(got cpu\)"):
        comm.all_reduce([cpu])
    assert torch_pjrt.metrics()["fallbacks"] == 0
