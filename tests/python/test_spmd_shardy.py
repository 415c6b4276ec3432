"""Client.compile(..., shardy=True) (use_shardy_partitioner) on the XLA CPU
plugin with 4 devices, in a worker process (spmd_shardy_worker.py): programs
annotated with GSPMD's mhlo.sharding, as torch_pjrt.spmd emits them, still run
right but are partitioned by GSPMD (the plugin disables Shardy for them);
the same programs in the sdy dialect run right under Shardy only."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_shardy_takes_sdy_and_falls_back_to_gspmd_for_mhlo_sharding():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               TORCH_PJRT_CLIENT_OPTIONS="cpu_device_count=4", TF_CPP_MIN_LOG_LEVEL="0")
    worker = os.path.join(ROOT, "tests", "python", "spmd_shardy_worker.py")
    p = subprocess.run([sys.executable, worker], env=env, capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    for op in ("mul", "sum"):
        for line in (f"ok gspmd {op}", f"ok gspmd {op} shardy", f"ok sdy {op} shardy",
                     f"ok sdy {op} refused without shardy"):
            assert line in out, out[-4000:]
    assert "ok spmd shardy" in out, out[-4000:]
    # The plugin's own log says which partitioner ran.
    assert "Disabling Shardy and falling back to using GSPMD propagation" in out, out[-4000:]
    assert "Using Shardy for XLA SPMD propagation" in out, out[-4000:]
