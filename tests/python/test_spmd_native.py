"""_eager.spmd_run and the _C.Graph manual-sharding methods (the native layer
under torch_pjrt.spmd): one SPMD program over 4 local CPU devices, in a
worker process started with cpu_device_count=4 (spmd_native_worker.py)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_spmd_run_across_four_local_devices():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               TORCH_PJRT_CLIENT_OPTIONS="cpu_device_count=4")
    worker = os.path.join(ROOT, "tests", "python", "spmd_native_worker.py")
    p = subprocess.run([sys.executable, worker], env=env, capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    for line in ("ok graph errors", "ok spmd_run", "ok spmd_run errors", "ok spmd native"):
        assert line in out, out[-4000:]
