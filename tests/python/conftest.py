"""Shared pytest setup: import torch_pjrt from the source tree (python/) and seed
every test deterministically."""
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


@pytest.fixture
def subprocess_env():
    """Environment for child Pythons that import torch_pjrt from the tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PYDIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
