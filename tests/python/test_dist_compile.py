"""torch.compile(backend="pjrt") over functional collectives (as Dynamo traces
compiled DDP, FSDP2 and DTensor), run under torchrun with 2 processes."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "python", "dist_compile_worker.py")


def test_functional_collectives_split_the_compiled_graph():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), MASTER_ADDR="127.0.0.1",
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node=2", WORKER]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "ok compiled collectives size=2" in out, out[-4000:]
    assert "runs through the process group at a graph split" in out, out[-4000:]
