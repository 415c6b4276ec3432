"""The PJRT client a torch.distributed job starts (issue 14): multi-process
plugins get node_id/num_nodes and the c10d Store as their key-value store
(checked with the fake plugin, which exchanges its topology through it); the
XLA CPU plugin keeps a one-process client."""
import os

import pytest

import torchrun

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_client_worker.py")


def _torchrun(mode, nproc, **env):
    rc, out, _ = torchrun.run(WORKER, nproc, [mode], env=dict(os.environ, **env), timeout=120)
    return rc, out


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
