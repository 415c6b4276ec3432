"""Runs `python -m torch_pjrt.bench ARGS` for the bench tests in its own
session, killed as a whole when it overruns, and fails the test with the
output's tail; shared by test_bench_ddp.py and test_bench_spmd.py."""
import os
import signal
import subprocess
import sys

import pytest


def run(env, args, what, timeout=150.0):
    """The bench's output; `what` names it in failures ("the DDP bench")."""
    cmd = [sys.executable, "-m", "torch_pjrt.bench", *args]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        text, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        text, _ = p.communicate()
        pytest.fail(f"{what} did not finish in {timeout:.0f} s:\n{text[-4000:]}")
    assert p.returncode == 0, f"{what} exited {p.returncode}:\n{text[-6000:]}"
    return text
