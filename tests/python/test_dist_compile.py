"""torch.compile(backend="pjrt") over functional collectives (as Dynamo traces
compiled DDP, FSDP2 and DTensor), run under torchrun with 2 processes."""
import os

import torchrun

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_compile_worker.py")


def test_functional_collectives_split_the_compiled_graph():
    rc, out, _ = torchrun.run(WORKER, 2, timeout=180)
    assert rc == 0, out[-4000:]
    assert "ok compiled collectives size=2" in out, out[-4000:]
    assert "runs through the process group at a graph split" in out, out[-4000:]
