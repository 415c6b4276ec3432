"""Shared pytest setup: import torch_pjrt from the source tree (python/), seed
every test deterministically, and run every test with fallback="error" while
checking that no op ran outside the device (tests of the fallback itself opt
out with @pytest.mark.fallback)."""
import atexit
import os
import shutil
import sys
import tempfile

import pytest
import torch

# A fresh persistent-compile-cache directory per test session: never ~/.cache,
# and no entries left over from an earlier run (tests count compiles).
os.environ["TORCH_PJRT_CACHE_DIR"] = tempfile.mkdtemp(prefix="torch_pjrt_cache_")
atexit.register(shutil.rmtree, os.environ["TORCH_PJRT_CACHE_DIR"], True)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _no_fallback(request):
    """fallback="error" and an unmoved metrics()["fallbacks"]: a test passes only
    when the device did the work. @pytest.mark.fallback opts a test out."""
    if request.node.get_closest_marker("fallback"):
        yield
        return
    import torch_pjrt
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    seen = [0, torch_pjrt.metrics()["fallbacks"]]  # counted before resets, start
    real_reset = torch_pjrt._C.metrics_reset

    def reset():  # a test's metrics_reset must not hide a fallback before it
        seen[0] += torch_pjrt.metrics()["fallbacks"] - seen[1]
        real_reset()
        seen[1] = torch_pjrt.metrics()["fallbacks"]
    torch_pjrt._C.metrics_reset = reset
    try:
        yield
    finally:
        torch_pjrt.config.fallback = old
        torch_pjrt._C.metrics_reset = real_reset
    moved = seen[0] + torch_pjrt.metrics()["fallbacks"] - seen[1]
    assert moved == 0, f"{moved} op(s) fell back to the CPU during the test"


@pytest.fixture
def subprocess_env():
    """Environment for child Pythons that import torch_pjrt from the tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PYDIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
