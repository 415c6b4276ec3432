"""The PJRT client a torch.distributed job starts (issue 14): multi-process
plugins get node_id/num_nodes and the c10d Store as their key-value store
(checked with the fake plugin, which exchanges its topology through it); the
XLA CPU plugin keeps a one-process client."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "python", "dist_client_worker.py")


def _torchrun(mode, nproc, **env):
    e = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), MASTER_ADDR="127.0.0.1",
             OMP_NUM_THREADS="1", **env)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", WORKER, mode]
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_multiprocess_client_exchanges_through_the_c10d_store():
    rc, out = _torchrun("fake", 3, TORCH_PJRT_PLUGIN=os.environ["TPJ_FAKE_PLUGIN"],
                        TORCH_PJRT_DIST_CLIENT="on")
    assert rc == 0, out[-4000:]
    assert "ok client fake size=3" in out, out[-4000:]
    assert "rank 2 version: fake-1.0 node=2/3 peers=node0:2dev,node1:2dev" in out, out[-4000:]


@pytest.mark.full
def test_cpu_plugin_keeps_a_one_process_client():
    rc, out = _torchrun("cpu", 2, TORCH_PJRT_DIST_CLIENT="auto")
    assert rc == 0, out[-4000:]
    assert "ok client cpu size=2" in out, out[-4000:]
