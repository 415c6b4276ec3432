"""The program comparison (python -m torch_pjrt.bench.compare, issue 16): the
StableHLO reader on small hand-written texts in both printed forms (our
emitter's generic form, JAX's pretty form with calls, compact and full
reducers, chlo ops and argument attributes), the signature parser, dot and
convolution keys that agree across the forms, the histogram diff, the
diagnosis and report, random device inputs, and one end-to-end run on the
tiny workload (JAX's side needs torchax: requirements-bench.txt)."""
from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter

import pytest

from torch_pjrt.bench import compare_hlo as hlo
from torch_pjrt.bench import compare_report as report

GENERIC = """module {
  func.func @main(%arg0: tensor<4x8xf32>, %arg1: tensor<16x8xf32>, %arg2: tensor<2xui64>) -> (tensor<4x16xf32>, tensor<f32>) {
    %0 = "stablehlo.transpose"(%arg1) {permutation = array<i64: 1, 0>} : (tensor<16x8xf32>) -> tensor<8x16xf32>
    %1 = "stablehlo.dot_general"(%arg0, %0) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %2 = "stablehlo.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %3 = "stablehlo.reduce"(%1, %2) ({
      ^bb0(%5: tensor<f32>, %6: tensor<f32>):
        %7 = "stablehlo.add"(%5, %6) : (tensor<f32>, tensor<f32>) -> tensor<f32>
        "stablehlo.return"(%7) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 0, 1>} : (tensor<4x16xf32>, tensor<f32>) -> tensor<f32>
    %4 = "stablehlo.slice"(%1) {start_indices = array<i64: 0, 0>, limit_indices = array<i64: 4, 16>, strides = array<i64: 1, 1>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    "func.return"(%4, %3) : (tensor<4x16xf32>, tensor<f32>) -> ()
  }
}
"""

PRETTY = """module @jit_f attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @empty_mesh = <[]> {stablehlo.mesh = {axes = []}}
  func.func public @main(%arg0: tensor<4x8xf32> {sdy.sharding = #sdy.sharding<@empty_mesh, [{}, {}]>}, %arg1: tensor<16x8xf32> {mhlo.sharding = "{replicated}"}) -> (tensor<4x16xf32> {jax.result_info = "result[0]"}, tensor<f32> {jax.result_info = "result['a}']"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, contracting_dims = [1] x [1], precision = [DEFAULT, DEFAULT] : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
    %1 = call @relu(%0) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %2 = call @relu(%1) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %3 = stablehlo.reduce(%2 init: %cst) applies stablehlo.add across dimensions = [0, 1] : (tensor<4x16xf32>, tensor<f32>) -> tensor<f32>
    %4 = stablehlo.reduce(%2 init: %cst) across dimensions = [0, 1] : (tensor<4x16xf32>, tensor<f32>) -> tensor<f32>
     reducer(%arg2: tensor<f32>, %arg3: tensor<f32>)  {
      %6 = stablehlo.maximum %arg2, %arg3 : tensor<f32>
      stablehlo.return %6 : tensor<f32>
    }
    %5 = chlo.erf %2 : tensor<4x16xf32> -> tensor<4x16xf32>
    return %5, %3 : tensor<4x16xf32>, tensor<f32>
  }
  func.func private @relu(%arg0: tensor<4x16xf32>) -> tensor<4x16xf32> {
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x16xf32>
    %1 = stablehlo.maximum %arg0, %0 : tensor<4x16xf32>
    return %1 : tensor<4x16xf32>
  }
}
"""

CONV_GENERIC = ('%2 = "stablehlo.convolution"(%0, %1) {dimension_numbers = #stablehlo.conv<[b, f, '
                '0, 1]x[o, i, 0, 1]->[b, f, 0, 1]>, window_strides = array<i64: 2, 2>, padding = '
                'dense<[[1, 1], [1, 1]]> : tensor<2x2xi64>, lhs_dilation = array<i64: 1, 1>, '
                'rhs_dilation = array<i64: 1, 1>, feature_group_count = 1 : i64, '
                'batch_group_count = 1 : i64} : (tensor<8x3x32x32xf32>, tensor<16x3x3x3xf32>) '
                '-> tensor<8x16x16x16xf32>')
CONV_PRETTY = ('%2 = stablehlo.convolution(%0, %1) dim_numbers = [b, f, 0, 1]x[o, i, 0, 1]->[b, '
               'f, 0, 1], window = {stride = [2, 2], pad = [[1, 1], [1, 1]], lhs_dilate = [1, 1], '
               'rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, '
               'feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, '
               '#stablehlo<precision DEFAULT>]} : (tensor<8x3x32x32xf32>, tensor<16x3x3x3xf32>) '
               '-> tensor<8x16x16x16xf32>')
DOT_GENERIC = ('%2 = "stablehlo.dot_general"(%0, %1) {dot_dimension_numbers = #stablehlo.dot<'
               'lhs_batching_dimensions = [0], rhs_batching_dimensions = [0], '
               'lhs_contracting_dimensions = [2], rhs_contracting_dimensions = [1]>} : '
               '(tensor<4x8x16xf32>, tensor<4x16x32xf32>) -> tensor<4x8x32xf32>')
DOT_PRETTY = ('%2 = stablehlo.dot_general %0, %1, batching_dims = [0] x [0], contracting_dims = '
              '[2] x [1], precision = [DEFAULT, DEFAULT] : (tensor<4x8x16xf32>, '
              'tensor<4x16x32xf32>) -> tensor<4x8x32xf32>')


def _wrap(line: str) -> str:
    return ("module {\n  func.func @main(%0: tensor<1xf32>) -> tensor<1xf32> {\n    " + line +
            "\n  }\n}\n")


# ----------------------------------------------------------------- parsing --

def test_types_and_signatures_in_both_forms():
    assert hlo.parse_type("tensor<64x128xf32>") == ((64, 128), "f32")
    assert hlo.parse_type("tensor<f32>") == ((), "f32")
    assert hlo.parse_type("tensor<2x3xcomplex<f32>>") == ((2, 3), "complex<f32>")
    assert hlo.type_bytes(((2, 3), "bf16")) == 12
    sig = hlo.signature(GENERIC)
    assert sig["params"] == [((4, 8), "f32"), ((16, 8), "f32"), ((2,), "ui64")]
    assert sig["results"] == [((4, 16), "f32"), ((), "f32")]
    # argument attributes (braces inside strings, nested types) are skipped
    sig = hlo.signature(PRETTY)
    assert sig["params"] == [((4, 8), "f32"), ((16, 8), "f32")]
    assert sig["results"] == [((4, 16), "f32"), ((), "f32")]
    single = "func.func @main(%a: tensor<3xi64>, %b: tensor<i1>) -> tensor<3xi64> {\n}"
    assert hlo.signature(single) == {"params": [((3,), "i64"), ((), "i1")],
                                     "results": [((3,), "i64")]}
    with pytest.raises(ValueError, match="no func.func @main"):
        hlo.signature("module {}")


def test_generic_form_histogram_regions_and_neighbours():
    st = hlo.stats(GENERIC)
    assert st["ops"] == Counter({"stablehlo.transpose": 1, "stablehlo.dot_general": 1,
                                 "stablehlo.constant": 1, "stablehlo.reduce": 1,
                                 "stablehlo.slice": 1})
    assert st["region_ops"] == Counter({"stablehlo.add": 1})  # the reduce body, apart
    assert st["reduces"] == Counter({"add f32": 1})
    assert st["dots"] == Counter({"4x8xf32 . 8x16xf32 -> 4x16xf32 [c 1x0]": 1})
    assert st["flops"]["dot_general"] == 2 * 4 * 16 * 8
    assert st["adjacent"]["transpose -> dot_general"] == 1
    assert st["adjacent"]["transpose -> dot_general bytes"] == 8 * 16 * 4
    assert st["noops"] == Counter({"slice": 1})
    assert st["bytes"]["stablehlo.transpose"] == 512


def test_pretty_form_calls_reducers_and_chlo():
    st = hlo.stats(PRETTY)
    # relu is called twice: its ops count twice; func-level `return`s never count
    assert st["ops"] == Counter({"stablehlo.dot_general": 1, "stablehlo.constant": 3,
                                 "stablehlo.broadcast_in_dim": 2, "stablehlo.maximum": 2,
                                 "stablehlo.reduce": 2, "chlo.erf": 1})
    assert st["calls"] == Counter({"relu": 2})
    assert st["reduces"] == Counter({"add f32": 1, "maximum f32": 1})
    assert st["region_ops"] == Counter({"stablehlo.maximum": 1})
    assert st["dots"] == Counter({"4x8xf32 . 16x8xf32 -> 4x16xf32 [c 1x1]": 1})
    assert st["flops"]["dot_general"] == 2 * 4 * 16 * 8
    assert not st["adjacent"] and not st["noops"]


def test_dot_and_convolution_keys_agree_across_forms():
    g, p = hlo.stats(_wrap(CONV_GENERIC)), hlo.stats(_wrap(CONV_PRETTY))
    key = ("8x3x32x32xf32 * 16x3x3x3xf32 -> 8x16x16x16xf32 [b,f,0,1]x[o,i,0,1]->[b,f,0,1] "
           "stride 2,2 pad 1,1,1,1")
    assert g["convs"] == p["convs"] == Counter({key: 1})
    assert g["flops"]["convolution"] == p["flops"]["convolution"] == 2 * 8 * 16 * 16 * 16 * 27
    g, p = hlo.stats(_wrap(DOT_GENERIC)), hlo.stats(_wrap(DOT_PRETTY))
    key = "4x8x16xf32 . 4x16x32xf32 -> 4x8x32xf32 [b 0x0, c 2x1]"
    assert g["dots"] == p["dots"] == Counter({key: 1})
    assert g["flops"]["dot_general"] == 2 * 4 * 8 * 32 * 16


def test_identity_transpose_is_a_noop_but_a_square_one_is_not():
    ident = ('%1 = "stablehlo.transpose"(%0) {permutation = array<i64: 0, 1>} : '
             '(tensor<4x4xf32>) -> tensor<4x4xf32>')
    swap = '%1 = stablehlo.transpose %0, dims = [1, 0] : (tensor<4x4xf32>) -> tensor<4x4xf32>'
    assert hlo.stats(_wrap(ident))["noops"] == Counter({"transpose": 1})
    assert not hlo.stats(_wrap(swap))["noops"]


# ------------------------------------------------------ diff and diagnosis --

def test_diff_orders_by_largest_difference():
    rows = hlo.diff(Counter(a=3, b=1), Counter(a=1, c=2))
    assert rows == [("a", 3, 1, 2), ("c", 0, 2, -2), ("b", 1, 0, 1)]
    merged = hlo.merge([hlo.stats(GENERIC), hlo.stats(GENERIC)])
    assert merged["ops"]["stablehlo.transpose"] == 2


def test_diagnosis_names_the_transpose_feeding_the_dot():
    ours, jax = hlo.stats(GENERIC), hlo.stats(PRETTY)
    line = report.diagnose(ours, jax, ratio=1.5)
    assert line.startswith("ours: 1 more transpose (512 B written): 1 feeding dot_general")
    assert "dot_general dimension numbers: ours [c 1x0] x1; JAX [c 1x1] x1" in line
    assert report.diagnose(ours, jax, ratio=0.9).startswith("not slower (x0.90); differences: ")
    assert report.diagnose(ours, ours, ratio=1.3) == "ours: same ops, shapes and data movement"
    split = report.diagnose(ours, ours, ratio=1.3, programs=2, between_bytes=2_000_000)
    assert split == "ours: 2 programs vs 1 (2.00 MB of forward results written for the backward)"


def _row(ours_text: str, jax_text: str) -> dict:
    so, sj = hlo.stats(ours_text), hlo.stats(jax_text)
    return {"kind": "infer", "system": "pjrt_dev_compile", "ours_ms": 2.0, "jax_ms": 1.0,
            "ratio": 2.0, "ratio_min": 1.9, "jax_call_ms": 1.5, "ours_step_ms": 2.5,
            "launches_per_step": 1, "fallbacks": [],
            "ours_programs": [{"name": "inference_1", "ms": 2.0, "min_ms": 1.8, "params": 3,
                               "ops": 5, "result_bytes": 260}],
            "jax_program": {"ms": 1.0, "min_ms": 0.9, "params": 2, "ops": 11},
            "stats": {"ours": {k: dict(v) for k, v in so.items()},
                      "jax": {k: dict(v) for k, v in sj.items()}},
            "diagnosis": report.diagnose(so, sj, 2.0)}


def test_report_marks_differences_and_writes_files(tmp_path):
    res = {"date": "2026-01-02T03:04:05", "size": "quick", "reps": 5, "system": "pjrt",
           "plugin": "p.so", "platform": "cpu", "jax_note": "same plugin",
           "workloads": {"w": _row(GENERIC, PRETTY), "bad": {"kind": "infer", "error": "boom"}}}
    md = report.markdown(res)
    assert "| w | 2.000 | 1.000 | 2.00x (1.90x) | 1.500 | 2.500 | ours: 1 more transpose" in md
    assert "| bad | - | - | - | - | - | error: boom |" in md
    assert "| **transpose** | **1** | **0** | **+1** |" in md
    assert "| dot_general | 1 | 1 | 0 |" in md
    assert "| **4x8xf32 . 16x8xf32 -> 4x16xf32 [c 1x1]** | **0** | **1** | **-1** |" in md
    out = "\n".join(report.stdout_lines(res))
    assert "    * " in out and "transpose 1/0" in out
    res["workloads"]["w"]["texts"] = {"jax": PRETTY, "inference_1": GENERIC}
    paths = report.write(res, str(tmp_path), save_programs=True)
    assert os.path.exists(tmp_path / "2026-01-02-compare.md")
    saved = json.loads((tmp_path / "2026-01-02-compare.json").read_text())
    assert "texts" not in saved["workloads"]["w"]
    assert (tmp_path / "2026-01-02-compare-programs" / "w" / "jax.mlir").read_text() == PRETTY
    assert len(paths) == 3


# ------------------------------------------------------------- runtime --

def test_random_args_match_the_parameter_types():
    from torch_pjrt import compiled
    from torch_pjrt.bench import compare
    text = ("func.func @main(%a: tensor<2x3xbf16>, %b: tensor<4xi64>, %c: tensor<2xui64>, "
            "%d: tensor<i1>, %e: tensor<0x5xf32>) -> tensor<i1> {\n}")
    bufs = compare.random_args(text, compiled.client())
    assert [tuple(b.shape) for b in bufs] == [(2, 3), (4,), (2,), (), (0, 5)]
    assert [b.dtype for b in bufs] == [13, 5, 9, 1, 11]


def test_jax_platform_follows_the_selected_plugin():
    from torch_pjrt.bench import compare
    assert compare.jax_platform({}) == "cpu"
    assert compare.jax_platform({"TORCH_PJRT_PLUGIN": "cuda"}) == "cuda"
    assert compare.jax_platform({"TORCH_PJRT_PLUGIN": "/x/xla_cpu_pjrt.so"}) == "cpu"


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None  # never import torchax here


@pytest.mark.skipif(not (_has("torchax") and _has("jax")),
                    reason="JAX's side needs torchax and jax: pip install -r "
                           "requirements-bench.txt")
def test_end_to_end_on_the_tiny_workload(tmp_path, capsys):
    from torch_pjrt.bench import compare
    assert compare.main(["tiny", "--reps", "3", "--out", str(tmp_path)]) == 0
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if f.endswith("-compare.json")], files
    res = json.loads((tmp_path / [f for f in files if f.endswith(".json")][0]).read_text())
    row = res["workloads"]["tiny_call_overhead"]
    assert "error" not in row, row.get("error")
    assert row["ours_ms"] > 0 and row["jax_ms"] > 0 and row["ratio"] > 0
    for side in ("ours", "jax"):
        assert row["stats"][side]["ops"]["stablehlo.dot_general"] == 1
    assert row["ours_programs"][0]["name"].startswith("inference")
    assert row["diagnosis"]
    assert "tiny_call_overhead" in capsys.readouterr().out
