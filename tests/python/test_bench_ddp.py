"""The DDP step-cost bench (python/torch_pjrt/bench/ddp.py, issue 14) end to end
with tiny settings: the MLP only, 1 warm-up and 3 timed steps per row, so the
three launches (no DDP, DDP with 1 and with 2 processes under torchrun) take
about 25 s. Checks the report has every row and sane numbers, not speed."""
import json
import os

import bench_cli


def run_bench(env, out, timeout=150.0):
    args = ["--ddp", "--models", "mlp",
            "--reps", "3", "--warmup", "1", "--rounds", "1", "--out", str(out)]
    env = dict(env, TPJ_BENCH_DDP_TIMEOUT="60")  # one launch; a hung one fails its row
    return bench_cli.run(env, args, "the DDP bench", timeout)


def test_ddp_bench_rows_and_sane_numbers(subprocess_env, tmp_path):
    run_bench(subprocess_env, tmp_path)
    js = [f for f in os.listdir(tmp_path) if f.endswith("-ddp.json")]
    md = [f for f in os.listdir(tmp_path) if f.endswith("-ddp.md")]
    assert len(js) == 1 and len(md) == 1, os.listdir(tmp_path)
    with open(tmp_path / js[0]) as f:
        res = json.load(f)
    w = res["models"]["mlp"]
    rows = w["rows"]
    assert set(rows) == {"plain1", "ddp1", "ddp2"}, rows.keys()
    params = w["params"]
    assert params > 0
    for key, r in rows.items():
        assert r["status"] == "ok", (key, r)
        assert r["steps"] == 3
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"], (key, r)
        assert 0.0 <= r["comm_share"] <= 1.0, (key, r)
        assert r["vs_baseline"] > 0
        assert r["fallbacks_timed"] == 0, (key, r)
    assert rows["plain1"]["vs_baseline"] == 1.0
    assert rows["plain1"]["comm_share"] == 0.0 and rows["plain1"]["staged_bytes_per_step"] == 0
    for key in ("ddp1", "ddp2"):
        r = rows[key]
        assert r["world"] == int(key[-1])
        assert r["allreduce_calls_per_step"] >= 1
        assert r["comm_share"] > 0.0 and r["comm_median_ms"] > 0.0
        assert len(r["comm_share_per_rank"]) == r["world"]
        # Every fp32 gradient goes to host and back once per step.
        assert 4 * params <= r["staged_bytes_per_step"] <= 8 * params, (key, r, params)
    assert rows["ddp2"]["local_batch"] * 2 == rows["ddp2"]["global_batch"]
    # Same initial weights and global batches: DDP trains what one process does.
    want = rows["plain1"]["final_loss_mean"]
    for key in ("ddp1", "ddp2"):
        assert abs(rows[key]["final_loss_mean"] - want) <= 1e-4 * abs(want), (key, rows[key], want)
    text = (tmp_path / md[0]).read_text()
    for needle in ("2-core" if res["cores"] == 2 else f"{res['cores']}-core",
                   "not a scaling claim", "staged through host memory", "gloo",
                   "comm hook", "DDP, 2 processes", "no DDP (baseline)"):
        assert needle in text, needle
