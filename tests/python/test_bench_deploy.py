"""Tests of the deployment bench's machinery (torch_pjrt/bench/deploy.py) on a
tiny MLP defined here: export -> save -> load -> tpj-run -> compare against
eager, the rows it returns, that a failing or wrong system becomes a marked
row instead of a crash, and the report files. Times are never asserted: speed
lives in the bench. AOTInductor compiles C++, so its test is `full` only."""
import json
import os

import pytest
import torch
import torch.nn as nn

import torch_pjrt

from torch_pjrt.bench import __main__ as bench_main
from torch_pjrt.bench import deploy, harness
from torch_pjrt.bench.workloads import Workload

needs_tool = pytest.mark.skipif(not os.path.exists(deploy.tool_path()),
                                reason="tpj-run not built (make tools)")
ROW_FIELDS = ("system", "status", "max_abs_diff", "max_rel_error", "allclose", "tol",
              "p50_ms", "p99_ms", "blocks", "prepare_s")


def _mlp():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    return model, (torch.randn(4, 16),)


def _workload():
    return Workload("tiny_mlp", "infer", _mlp, items=4, tol=1e-4)


def _quiet(msg):
    pass


def test_percentile_nearest_rank():
    xs = [float(i) for i in range(1, 101)]
    assert harness.percentile(xs, 50) == 50.0
    assert harness.percentile(xs, 99) == 99.0
    assert harness.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert harness.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        harness.percentile([], 50)


def test_parse_summary():
    line = ("platform cpu | inputs s64[1,32] | outputs f32[1,384] -> out/output_*.npy"
            " | ms per run p50 1.250 p99 3.500 (40 runs)\n")
    assert deploy.parse_summary(line) == (1.25, 3.5, 40)
    with pytest.raises(RuntimeError, match="p50"):
        deploy.parse_summary("platform cpu | inputs (none)")


def test_compare():
    a = (torch.ones(3), torch.zeros(2, 2))
    ok = deploy.compare(a, a, 1e-4)
    assert ok["allclose"] and ok["max_abs_diff"] == 0.0
    bad = deploy.compare((torch.ones(3) + 0.5, torch.zeros(2, 2)), a, 1e-4)
    assert not bad["allclose"] and bad["max_abs_diff"] == pytest.approx(0.5)
    shape = deploy.compare((torch.ones(4), torch.zeros(2, 2)), a, 1e-4)
    assert not shape["allclose"] and "structure" in shape["detail"]
    assert deploy._status(bad).startswith("MISMATCH")


def _check_row(row):
    for k in ROW_FIELDS:
        assert k in row, (row["system"], k)
    assert row["status"] == "ok", row
    assert row["allclose"] and row["max_abs_diff"] <= 1e-4
    assert 0 < row["p50_ms"] <= row["p99_ms"]


@needs_tool
def test_tiny_mlp_export_load_and_tpj_run(tmp_path):
    w = deploy.measure_workload(_workload(), str(tmp_path), systems=("eager", "tpj_load",
                                "tpj_run"), calls=5, rounds=2, log=_quiet)
    assert (w["workload"], w["batch"], w["calls"], w["rounds"]) == ("tiny_mlp", 4, 5, 2)
    rows = w["systems"]
    assert set(rows) == {"eager", "tpj_load", "tpj_run"}
    for row in rows.values():
        _check_row(row)
        assert len(row["blocks"]) == 2
    assert rows["tpj_load"]["load_s"] >= 0 and rows["tpj_load"]["artifact_bytes"] > 0
    if hasattr(torch_pjrt._C.Executable, "serialize"):  # the artifact carries executables
        assert rows["tpj_load"]["executables"] is True and rows["tpj_run"]["executables"] is True
    assert rows["tpj_run"]["cold_run_s"] > 0 and "p50" not in rows["tpj_run"]["summary"]
    assert rows["tpj_run"]["save_s"] == rows["tpj_load"]["save_s"]  # one artifact for both
    assert w["ratios"]["eager/tpj_run_p50"] > 0 and w["ratios"]["aoti/tpj_run_p50"] is None
    assert (tmp_path / "tiny_mlp.tpj").exists() and (tmp_path / "tiny_mlp.in0.npy").exists()


def _res(w):
    return {"date": "2026-01-02T03:04:05", "host": "h", "machine": "m", "torch": "t",
            "plugin": "p", "rounds": 2, "command": "cmd", "wall_s": 1.0,
            "loadavg_start": (0.1, 0.2, 0.3), "loadavg_end": (0.1, 0.2, 0.3),
            "workloads": {w["workload"]: w}}


def test_failing_system_is_a_row(tmp_path, monkeypatch):
    def boom(case):
        raise RuntimeError("no compiler here")
    monkeypatch.setitem(deploy.PREPARE, "aoti", boom)
    w = deploy.measure_workload(_workload(), str(tmp_path), systems=("eager", "aoti"),
                                calls=3, rounds=1, log=_quiet)
    _check_row(w["systems"]["eager"])
    aoti = w["systems"]["aoti"]
    assert "no compiler here" in aoti["status"] and "p50_ms" not in aoti
    md = deploy.markdown(_res(w))
    assert "no compiler here" in md and "aoti: failed" in md


def test_mismatch_is_timed_and_marked(tmp_path, monkeypatch):
    def wrong(case):
        return (lambda: case.module(*case.inputs).detach() + 1.0), {}
    monkeypatch.setitem(deploy.PREPARE, "tpj_load", wrong)
    w = deploy.measure_workload(_workload(), str(tmp_path), systems=("eager", "tpj_load"),
                                calls=3, rounds=2, log=_quiet)
    row = w["systems"]["tpj_load"]
    assert row["status"].startswith("MISMATCH") and not row["allclose"]
    assert row["max_abs_diff"] == pytest.approx(1.0, rel=1e-5) and "p50_ms" in row
    paths = deploy.write(_res(w), str(tmp_path / "out"))
    assert [os.path.basename(p) for p in paths] == ["2026-01-02-deploy.json",
                                                     "2026-01-02-deploy.md"]
    md = open(paths[1]).read()
    assert "tpj_load: MISMATCH" in md and "## Mismatches and errors" in md
    assert json.load(open(paths[0]))["workloads"]["tiny_mlp"]["systems"]["tpj_load"]["status"] \
        == row["status"]


def test_deploy_flag_runs_deploy_main(tmp_path, monkeypatch):
    """--deploy routes to deploy.main (no workload matches: an empty report)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "i"))  # main resets both;
    monkeypatch.setenv("TORCH_PJRT_CACHE_DIR", os.environ.get("TORCH_PJRT_CACHE_DIR", ""))
    assert bench_main.parse_args(["--deploy"]).deploy
    assert bench_main.main(["--deploy", "--models", "no_such_model", "--out",
                            str(tmp_path)]) == 0
    (md,) = [p for p in os.listdir(tmp_path) if p.endswith("-deploy.md")]
    text = open(tmp_path / md).read()
    assert "--deploy --models no_such_model" in text and "no batch-1 workload" in text


@pytest.mark.full
def test_tiny_mlp_aoti(tmp_path):
    w = deploy.measure_workload(_workload(), str(tmp_path), systems=("eager", "aoti"),
                                calls=5, rounds=1, log=_quiet)
    _check_row(w["systems"]["aoti"])
    assert w["systems"]["aoti"]["compile_s"] > 0 and (tmp_path / "tiny_mlp.pt2").exists()
