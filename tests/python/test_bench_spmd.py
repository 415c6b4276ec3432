"""The SPMD step-cost bench (python/torch_pjrt/bench/spmd.py) end to end with
tiny settings: one worker process with 4 XLA CPU devices (dp, fsdp and 2d),
1 warm-up and 1 timed step per mode, one round, about 25 s. Checks the
report's rows, columns and claims and that the per-device bytes follow the
layouts, not speed."""
import json
import os
from types import SimpleNamespace

import bench_cli
from torch_pjrt.bench.report import busy_note, command_of


def run_bench(env, out, timeout=150.0):
    args = ["--spmd", "--devices", "4",
            "--reps", "1", "--warmup", "1", "--rounds", "1", "--out", str(out)]
    env = dict(env, TPJ_BENCH_SPMD_TIMEOUT="120")  # a hung launch fails its rows
    return bench_cli.run(env, args, "the SPMD bench", timeout)


def test_spmd_bench_rows_columns_and_bytes(subprocess_env, tmp_path):
    run_bench(subprocess_env, tmp_path)
    js = [f for f in os.listdir(tmp_path) if f.endswith("-spmd.json")]
    md = [f for f in os.listdir(tmp_path) if f.endswith("-spmd.md")]
    assert len(js) == 1 and len(md) == 1, os.listdir(tmp_path)
    with open(tmp_path / js[0]) as f:
        res = json.load(f)
    rows = res["rows"]
    assert set(rows) == {"dp4", "fsdp4", "2d4"}, rows.keys()
    for key, r in rows.items():
        assert r["status"] == "ok", (key, r)
        assert r["devices"] == 4 and r["steps"] == 1
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"], (key, r)
        assert 0 <= r["median_ms_less_compile"] <= r["median_ms"], (key, r)
        # forward, backward, the loss's ones_like, then the AdamW ops
        assert r["launches_per_step"] > 3, (key, r)
        assert r["fallbacks_timed"] == 0, (key, r)
        assert len(r["bytes_per_device"]) == 4
        assert r["replicated_bytes"] == 3 * r["replicated_param_bytes"]  # param, exp_avg(_sq)
        assert "vs_1_device" not in r  # no 1-device row in this run
    assert rows["dp4"]["mesh"] == [4] and rows["2d4"]["mesh"] == [2, 2]
    rep = rows["dp4"]["replicated_bytes"]
    assert rows["dp4"]["bytes_per_device"] == [rep] * 4
    assert all(4 * b <= rep * 1.05 for b in rows["fsdp4"]["bytes_per_device"]), rows["fsdp4"]
    assert rep / 4 < rows["2d4"]["bytes_per_device_max"] < rep, rows["2d4"]
    # The same model, batches and steps: every layout trains the same.
    want = rows["dp4"]["final_loss_first"]
    for key, r in rows.items():
        assert abs(r["final_loss_first"] - want) <= 1e-4 * abs(want), (key, r, want)
    text = (tmp_path / md[0]).read_text()
    for needle in (f"This host has {res['cores']} cores", "not a scaling claim",
                   "The memory column is the claim", "fsdp holds 1/N",
                   "| devices | mode | mesh | median ms | p90 ms | × 1 device | "
                   "ms less compiles | launches / step | compiles / step | params + AdamW state MB / device | "
                   "replicated MB | / replicated | final loss | status |",
                   "| 4 | fsdp | (4,) data, params dim 0 on data |",
                   "Command: `python -m torch_pjrt.bench --spmd --devices 4 --reps 1 --warmup 1 "
                   "--rounds 1`"):
        assert needle in text, needle


def test_shared_report_helpers():
    args = SimpleNamespace(models=None, devices=[1, 8], reps=5, warmup=0, rounds=None)
    assert command_of("bench", args, [("models", "--models"), ("devices", "--devices"),
                                      ("reps", "--reps"), ("warmup", "--warmup"),
                                      ("rounds", "--rounds")]) == \
        "bench --devices 1 8 --reps 5 --warmup 0"
    calm = {"cores": 2, "loadavg_start": (0.5, 0, 0), "loadavg_end": (1.0, 0, 0)}
    assert busy_note(calm) == []
    busy = dict(calm, loadavg_end=(3.0, 0, 0))
    assert busy_note(busy, "the 2-process rows most")[0].endswith(
        "every row, the 2-process rows most.**")
