"""Benchmark-suite logic (no timings asserted): argument parsing, device and
system selection, size tables, GPU peak lookup, the profile split, the
correctness guard, the report's target/profile sections, and the runtime's
timing counters that the profile reads."""
from __future__ import annotations

import types

import pytest
import torch

import torch_pjrt
from torch_pjrt.bench import __main__ as bench_main
from torch_pjrt.bench import harness, peaks, perop, report, systems, workloads


@pytest.fixture(autouse=True)
def _restore_dynamo_config():
    """harness.measure makes Dynamo's recompile-limit hit an error (right for
    the bench process); keep that from leaking into other tests."""
    cfg = torch._dynamo.config
    saved = (cfg.fail_on_recompile_limit_hit, cfg.recompile_limit)
    yield
    cfg.fail_on_recompile_limit_hit, cfg.recompile_limit = saved


# ------------------------------------------------------------ arguments --

def test_resolve_device_from_flag_and_plugin_env():
    assert bench_main.resolve_device(None, {}) == "cpu"
    assert bench_main.resolve_device(None, {"TORCH_PJRT_PLUGIN": "cuda"}) == "cuda"
    assert bench_main.resolve_device(None, {"TORCH_PJRT_PLUGIN": "cpu"}) == "cpu"
    assert bench_main.resolve_device("cuda", {}) == "cuda"
    assert bench_main.resolve_device("cpu", {"TORCH_PJRT_PLUGIN": "cuda"}) == "cpu"
    with pytest.raises(SystemExit, match="names another plugin"):
        bench_main.resolve_device("cuda", {"TORCH_PJRT_PLUGIN": "cpu"})


def test_parse_args_sizes(monkeypatch):
    monkeypatch.delenv("TORCH_PJRT_PLUGIN", raising=False)
    assert bench_main.parse_args([]).size == "quick"
    assert bench_main.parse_args(["--full"]).size == "full"
    a = bench_main.parse_args(["--device", "cuda"])
    assert (a.device, a.size) == ("cuda", "gpu")
    assert bench_main.parse_args(["--device", "cuda", "--size", "quick"]).size == "quick"
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--systems", "nonesuch"])


def _fake_torch(available):
    flags = types.SimpleNamespace(allow_tf32=False)
    cudnn = types.SimpleNamespace(allow_tf32=False)
    return types.SimpleNamespace(
        __version__="0.test", version=types.SimpleNamespace(cuda=None),
        cuda=types.SimpleNamespace(is_available=lambda: available),
        backends=types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=flags), cudnn=cudnn))


def test_cuda_preflight_refuses_without_cuda_and_configures_with_it():
    env = {}
    with pytest.raises(SystemExit, match=r"--device cuda: torch.cuda.is_available\(\) is False"):
        bench_main.cuda_preflight(_fake_torch(False), env)
    assert env == {}
    t = _fake_torch(True)
    bench_main.cuda_preflight(t, env)
    assert env["TORCH_PJRT_PLUGIN"] == "cuda"
    assert t.backends.cuda.matmul.allow_tf32 and t.backends.cudnn.allow_tf32


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_main_device_cuda_refused_on_cpu_only_machine(monkeypatch):
    monkeypatch.delenv("TORCH_PJRT_PLUGIN", raising=False)
    with pytest.raises(SystemExit, match="torch.cuda.is_available"):
        bench_main.main(["--device", "cuda", "--models", "tiny"])


# -------------------------------------------------------------- systems --

def test_plan_systems_moves_torchax_to_a_child_when_needed():
    names, child = bench_main.plan_systems(None, None)
    assert child and "torchax" not in names and names[0] == "eager"
    assert set(names) == set(systems.SYSTEM_NAMES) - {"torchax"}
    assert bench_main.plan_systems(["eager", "torchax"], None) == (["eager", "torchax"], False)
    assert bench_main.plan_systems(["pjrt", "torchax"], None) == (["eager", "pjrt"], True)
    assert bench_main.plan_systems(["eager", "torchax"], "/tmp/x.json")[1] is False


def test_all_systems_selection_and_devices():
    cpu = systems.all_systems()
    assert [s.name for s in cpu] == systems.SYSTEM_NAMES
    cuda = {s.name: s for s in systems.all_systems(device="cuda")}
    assert cuda["eager"].device == "cuda" and cuda["inductor"].device == "cuda"
    assert cuda["pjrt"].device == "cpu"  # torch-pjrt moves CPU tensors to its plugin itself
    assert cuda["torchax"].platform == "cuda"
    assert cuda["pjrt"].counts_metrics and cuda["pjrt_dev_compile"].counts_metrics
    assert not cuda["eager"].counts_metrics and not cuda["torchax"].counts_metrics
    assert [s.name for s in systems.all_systems(["torchax", "eager"])] == ["eager", "torchax"]
    with pytest.raises(ValueError, match="unknown systems"):
        systems.all_systems(["pjrtt"])
    with pytest.raises(ValueError, match="unknown bench device"):
        systems.all_systems(device="tpu")


def test_size_tables():
    keys = set(workloads.SIZES["quick"])
    for size, table in workloads.SIZES.items():
        assert set(table) == keys, size
        names = [w.name for w in workloads.suite(size)]
        assert len(names) == len(set(names)) == 13
    q, g = workloads.SIZES["quick"], workloads.SIZES["gpu"]
    for k in keys:
        if isinstance(q[k], int):
            assert g[k] >= q[k], k
    assert "matmul_bf16_8192" in [w.name for w in workloads.suite("gpu")]
    with pytest.raises(ValueError, match="unknown suite size"):
        workloads.suite("huge")


def test_gpu_peak_table():
    p, text = peaks.gpu_peak_from_name("NVIDIA H100 80GB HBM3")
    assert p == {"float32": 494.7e12, "bfloat16": 989.4e12} and "TF32" in text
    assert peaks.gpu_peak_from_name("NVIDIA H100 PCIe")[0]["float32"] == 378.0e12
    assert peaks.gpu_peak_from_name("NVIDIA A100-SXM4-80GB")[0]["bfloat16"] == 312.0e12
    t4 = peaks.gpu_peak_from_name("Tesla T4")[0]
    assert t4["float32"] == t4["bfloat16"] == 8.1e12
    assert peaks.gpu_peak_from_name("NVIDIA H100 NVL")[0] is None
    assert peaks.gpu_peak_from_name("Some Future GPU")[0] is None


def test_cpu_peak_arithmetic():
    p, text = peaks.cpu_peak()
    assert p["float32"] > 0 and "GFLOP/s" in text


# -------------------------------------------------------------- harness --

def test_breakdown_splits_step_time():
    b = harness.breakdown(0.010, {"execute_seconds": 0.006, "h2d_seconds": 0.001,
                                  "d2h_seconds": 0.001})
    assert b["execute"]["ms"] == pytest.approx(6.0) and b["execute"]["pct"] == pytest.approx(60)
    assert b["python"]["ms"] == pytest.approx(2.0) and b["python"]["pct"] == pytest.approx(20)
    assert harness.breakdown(0.001, {"execute_seconds": 0.002})["python"]["ms"] == 0.0


class _Fake:
    def __init__(self, name, out, counts=False, fail=None):
        self.name, self.out, self.counts_metrics, self.fail = name, out, counts, fail

    def prepare(self, wl):
        if self.fail:
            raise RuntimeError("outer") from ValueError(self.fail)
        return (lambda: self.out), (lambda o: o)


def test_measure_guards_correctness_and_profiles_counted_systems():
    wl = workloads.Workload("w", "infer", lambda: (None, ()), items=4, unit="x")
    good = torch.ones(3)
    syss = [_Fake("eager", good), _Fake("pjrt", good.clone(), counts=True),
            _Fake("inductor", good * 2), _Fake("torchax", good, fail="no GPU backend")]
    rows = harness.measure(wl, syss, 3, lambda m: None)
    assert rows["eager"]["status"] == "ok" and rows["eager"]["reps"] == 3
    assert rows["inductor"]["status"].startswith("wrong result") and "median_s" not in rows["inductor"]
    assert rows["torchax"]["status"] == "error: RuntimeError: ValueError: no GPU backend"
    prof = rows["pjrt"]["profile"]
    assert prof["launches_per_step"] == 0 and rows["pjrt"]["bytes_moved_per_call"] == 0
    assert set(prof["parts"]) == {"execute", "h2d", "d2h", "python"}
    assert "profile" not in rows["eager"]


def test_runtime_timing_counters_move():
    before = torch_pjrt.metrics()
    for k in ("execute_seconds", "h2d_seconds", "d2h_seconds"):
        assert isinstance(before[k], float)
    x = torch.randn(64, 64)
    out = torch_pjrt.run_aten(torch.ops.aten.mm.default, x, x)
    torch.testing.assert_close(out, x @ x)
    after = torch_pjrt.metrics()
    assert after["execute_seconds"] > before["execute_seconds"]
    assert after["executions"] > before["executions"]
    assert after["d2h_seconds"] > before["d2h_seconds"]


# --------------------------------------------------------------- report --

def _row(ms, **extra):
    return dict(median_s=ms / 1e3, min_s=ms / 1e3, max_s=ms / 1e3, throughput=1.0, unit="x/s",
                status="ok", **extra)


def _results():
    prof = {"step_ms": 4.0, "launches_per_step": 2, "bytes_h2d_per_step": 8,
            "bytes_d2h_per_step": 8, "compiles_during_timing": 0,
            "parts": harness.breakdown(0.004, {"execute_seconds": 0.003})}
    wl = {"gpt": {"eager": _row(5), "inductor": _row(3), "torchax": _row(2),
                  "pjrt": _row(4, profile=prof, bytes_moved_per_call=16, first_call_s=1.5,
                               first_call_compile_s=1.0),
                  "pjrt_dev_compile": _row(1.5, profile=prof)},
          "tiny_call_overhead": {"eager": _row(0.02), "inductor": _row(0.1), "pjrt": _row(0.2),
                                 "torchax": _row(0.3)}}
    return {"date": "2026-11-22T00:00:00", "host": "h", "machine": "m", "torch": "t",
            "size": "quick", "reps": 3, "device": "cpu", "workloads": wl,
            "peak_flops": {"float32": 1e11, "bfloat16": 1e11}, "peak_text": "peak",
            "perop": {"pjrt_elementwise_us_per_op": 30.0, "cpu_elementwise_us_per_op": 6.0,
                      "pjrt_transformer_layer_us": 900.0, "cpu_transformer_layer_us": 400.0,
                      "adamw_compiles_per_step": [9, 0, 0, 0, 0]}}


def test_missed_targets_and_profile_rows():
    res = _results()
    missed = report.missed_targets("gpt", res["workloads"]["gpt"], True)
    assert ("pjrt", "0.50× torchax (target ≥ 1.0×)", "torchax") in missed
    assert any(s == "pjrt" and peer == "inductor" for s, _, peer in missed)
    assert not any(s == "pjrt_dev_compile" and peer == "torchax" for s, _, peer in missed)
    tiny = report.missed_targets("tiny_call_overhead", res["workloads"]["tiny_call_overhead"], False)
    assert tiny == [("pjrt", "2.00× Inductor's per-call time (target ≤ 1.5×)", "inductor")]
    md = report.markdown(res)
    assert ("| gpt | pjrt | 0.50× torchax (target ≥ 1.0×); 0.75× Inductor (geomean target "
            "≥ 1.0×) | 4 | 3 (75%) | 0 (0%) | 0 (0%) | 1 (25%) |") in md
    assert "| 2 | 8 + 8 | 2 vs torchax; 1 vs inductor |" in md  # launches, bytes, gaps in ms
    assert "1.50 (1.00)" in md
    assert "pjrt_dev_compile (tensors on the pjrt device) vs torchax: geometric mean 1.33×" in md
    assert "| elementwise op on (16, 16), µs/op | 30.0 µs | 6.0 µs | 5.00× | ≤ 3× (missed) |" in md
    assert "= 2.00× Inductor's (target ≤ 1.5×, missed)" in md


def test_perop_rows_and_script_path():
    r = perop.rows({"pjrt_elementwise_us_per_op": 12.0, "cpu_elementwise_us_per_op": 6.0})
    assert r == [("elementwise op on (16, 16), µs/op", 12.0, 6.0, 2.0)]
    assert perop.script_path().endswith("bench/eager_overhead.py")


def test_error_text_names_the_root_cause():
    try:
        try:
            raise KeyError("inner")
        except KeyError as e:
            raise RuntimeError("backend raised:\n") from e
    except RuntimeError as e:
        assert harness.error_text(e) == "error: RuntimeError: KeyError: 'inner'"


class _Counting:
    """torch.compile with a backend that counts the graphs it is given."""
    counts_metrics = False

    def __init__(self, name):
        self.name, self.graphs = name, 0

    def backend(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward

    def prepare(self, wl):
        model, inputs = wl.build()
        fn = torch.compile(wl.torch_callable(model), backend=self.backend)
        return (lambda: fn(*inputs)), (lambda o: o)


def test_workloads_sharing_code_objects_are_all_compiled():
    """_Loss.forward is one code object for every infer_fn workload; beyond
    Dynamo's recompile_limit (8; 2 here, to keep the test fast) it would run
    eagerly unless measure resets Dynamo per workload."""
    torch._dynamo.config.recompile_limit = 2  # restored by _restore_dynamo_config
    sys_ = _Counting("inductor")
    eager = _Fake("eager", None)
    n = 4
    for i in range(n):
        wl = workloads.Workload(f"w{i}", "infer",
                                lambda i=i: (torch.nn.Linear(4 + i, 3), (torch.randn(2, 4 + i),)),
                                infer_fn=lambda m, x: m(x) * 2)
        eager.out = wl.infer_module(wl.build()[0])(*wl.build()[1])
        rows = harness.measure(wl, [eager, sys_], 2, lambda m: None)
        assert rows["inductor"]["status"] == "ok", rows["inductor"]
    assert sys_.graphs == n


def test_measure_reports_a_system_failing_in_the_timed_loop():
    calls = {"n": 0}

    class Flaky(_Fake):
        def prepare(self, wl):
            def run():
                calls["n"] += 1
                if calls["n"] > 3:
                    raise RuntimeError("recompile limit")
                return self.out
            return run, (lambda o: o)

    wl = workloads.Workload("w", "infer", lambda: (None, ()))
    rows = harness.measure(wl, [_Fake("eager", torch.ones(2)), Flaky("pjrt", torch.ones(2), True)],
                           4, lambda m: None)
    assert rows["pjrt"]["status"] == "timed call failed: RuntimeError: recompile limit"
    assert "median_s" not in rows["pjrt"] and "profile" not in rows["pjrt"]
    assert rows["eager"]["reps"] == 4


def test_report_write_files(tmp_path):
    paths = report.write(_results(), str(tmp_path))
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names[:2] == ["2026-11-22-h.json", "2026-11-22-h.md"]
    text = (tmp_path / "2026-11-22-h.md").read_text()
    assert "## Where the time goes" in text and "## Per-op overhead" in text


def test_measure_rotates_the_order_of_systems():
    """Each system follows each other equally often (a system right after
    eager or Inductor shares the cores with their spinning OpenMP workers)."""
    order = []

    class Logged(_Fake):
        def prepare(self, wl):
            def run():
                order.append(self.name)
                return self.out
            return run, (lambda o: o)

    wl = workloads.Workload("w", "infer", lambda: (None, ()))
    one = torch.ones(2)
    harness.measure(wl, [Logged("eager", one), Logged("inductor", one), Logged("pjrt", one)],
                    3, lambda m: None)
    timed = order[-9:]  # after each system's warm-up and correctness calls
    assert timed == ["eager", "inductor", "pjrt", "inductor", "pjrt", "eager",
                     "pjrt", "eager", "inductor"]
