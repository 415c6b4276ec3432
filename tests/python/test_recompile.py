"""Recompile reasons (issue 17): every compile after a graph's first logs the
input that changed and how, with the graph's compile count; Dynamo frame
recompiles log the changed input and Dynamo's failed guard;
config.recompile_warn_after warns once; metrics() counts recompiles per graph.
Every compiled result is checked against eager."""
import logging
import warnings

import pytest
import torch

import torch_pjrt
from torch_pjrt import recompile


@pytest.fixture(autouse=True)
def _fresh(caplog):
    torch._dynamo.reset()
    old = torch_pjrt.config.recompile_warn_after
    caplog.set_level(logging.INFO, logger="torch_pjrt")
    yield
    torch_pjrt.config.recompile_warn_after = old
    torch._dynamo.reset()


def _messages(caplog, word="recompiling"):
    return [r.getMessage() for r in caplog.records
            if r.name == "torch_pjrt" and word in r.getMessage()]


def _run(cf, fn, *args):
    got = cf(*args)
    torch.testing.assert_close(got, fn(*args))
    return got


def _frame_label(fn):
    code = fn.__code__
    return f"{code.co_name} (test_recompile.py:{code.co_firstlineno})"


def f(x):
    return torch.tanh(x) * 3 + x.sum(dim=-1, keepdim=True)


def test_first_compile_logs_no_recompiling(caplog):
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    x = torch.randn(8, 17)
    _run(cf, f, x)
    _run(cf, f, torch.randn(8, 17))  # same signature: no compile at all
    assert any("compiling" in m for m in _messages(caplog, "compiling"))
    assert _messages(caplog) == []


def test_frame_recompile_names_input_and_shapes(caplog):
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    _run(cf, f, torch.randn(8, 17))
    assert _messages(caplog) == []
    _run(cf, f, torch.randn(8, 33))
    msgs = _messages(caplog)
    assert len(msgs) == 1, msgs
    m = msgs[0]
    assert m.startswith(f"torch_pjrt: recompiling frame {_frame_label(f)} (compile 2 of f): ")
    assert "input x: shape (8, 17) -> (8, 33)" in m
    assert "Dynamo guard failed: tensor 'x' size mismatch at index 1" in m
    assert "expected 17, actual 33" in m
    _run(cf, f, torch.randn(8, 50))
    m = _messages(caplog)[-1]
    assert "(compile 3 of f)" in m and "input x: shape (8, 33) -> (8, 50)" in m


def test_dtype_change_is_named_against_the_closest_compile(caplog):
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    _run(cf, f, torch.randn(8, 17))
    _run(cf, f, torch.randn(8, 33))
    # Closest earlier compile: (8, 17) float32 (only the dtype differs), not
    # the latest one (8, 33).
    _run(cf, f, torch.randn(8, 17, dtype=torch.float64))
    m = _messages(caplog)[-1]
    assert "(compile 3 of f)" in m
    assert "input x: dtype float32 -> float64;" in m, m
    assert "shape" not in m.split("Dynamo guard")[0], m
    assert "dtype mismatch" in m and "(Dynamo compile 0/0)" in m


def test_stride_change_is_named(caplog):
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    x = torch.randn(4, 8)
    _run(cf, f, x)
    xt = torch.randn(8, 4).t()  # the same shape, transposed strides
    _run(cf, f, xt)
    m = _messages(caplog)[-1]
    assert "input x: stride (8, 1) -> (1, 4)" in m, m
    assert "stride mismatch" in m


def test_grad_mode_change_is_named(caplog):
    lin = torch.nn.Linear(6, 3)

    def g(x):
        return lin(x).relu()

    cf = torch.compile(g, backend="pjrt", dynamic=False)
    x = torch.randn(2, 6)
    _run(cf, g, x)
    with torch.no_grad():
        _run(cf, g, x)
    m = _messages(caplog)[-1]
    assert "(compile 2 of g)" in m
    assert "grad mode: value True -> False" in m, m
    assert "GLOBAL_STATE changed: grad_mode" in m


def test_graph_recompile_names_placeholder(caplog):
    """dynamic=True: one Dynamo graph; its CompiledGraph compiles one program
    per concrete shape and names the changed input by its source name."""
    cf = torch.compile(f, backend="pjrt", dynamic=True)
    _run(cf, f, torch.randn(4, 17))
    assert _messages(caplog) == []
    _run(cf, f, torch.randn(4, 33))
    msgs = _messages(caplog)
    assert len(msgs) == 1, msgs
    m = msgs[0]
    assert m.startswith("torch_pjrt: recompiling inference_"), m
    assert "(compile 2 of this graph): input x: shape (4, 17) -> (4, 33)" in m
    assert "recompiling frame" not in m  # Dynamo did not recompile
    _run(cf, f, torch.randn(8, 17))  # closest: (4, 17), one dim apart
    m = _messages(caplog)[-1]
    assert "(compile 3 of this graph)" in m and "input x: shape (4, 17) -> (8, 17)" in m


def test_check_indices_toggle_is_named(caplog):
    cf = torch.compile(f, backend="pjrt", dynamic=True)
    x = torch.randn(4, 5)
    _run(cf, f, x)
    old = torch_pjrt.config.check_indices
    torch_pjrt.config.check_indices = not old
    try:
        _run(cf, f, x)
    finally:
        torch_pjrt.config.check_indices = old
    m = _messages(caplog)[-1]
    assert f"config.check_indices: value {bool(old)} -> {not old}" in m, m


def test_training_graph_names_module_inputs(caplog):
    lin = torch.nn.Linear(4, 3)

    def g(x):
        return lin(x).relu().sum()

    cf = torch.compile(g, backend="pjrt", dynamic=True)
    for n in (2, 5):
        x = torch.randn(n, 4, requires_grad=True)
        xe = x.detach().clone().requires_grad_()
        cf(x).backward()
        g(xe).backward()
        torch.testing.assert_close(x.grad, xe.grad)
    fwd = [m for m in _messages(caplog) if "recompiling forward_" in m]
    assert len(fwd) == 1 and "input x: shape (2, 4) -> (5, 4)" in fwd[0], fwd
    assert any("recompiling backward_" in m for m in _messages(caplog))


def _sizes_warned(cf, fn, sizes):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in sizes:
            _run(cf, fn, torch.randn(3, n))
    return [w for w in caught if issubclass(w.category, recompile.RecompileWarning)]


def test_warn_after_n_frame_compiles_once(caplog):
    torch_pjrt.config.recompile_warn_after = 3
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    got = _sizes_warned(cf, f, (5, 6, 7))
    assert got == []  # 3 compiles: not over 3 yet
    got = _sizes_warned(cf, f, (8, 9, 10))
    assert len(got) == 1, [str(w.message) for w in got]
    msg = str(got[0].message)
    assert f"frame {_frame_label(f)} has compiled 4 times" in msg
    assert "recompile_warn_after = 3" in msg
    assert "input x dim 1 (4 values: 5, 6, 7, 8)" in msg
    assert "torch._dynamo.mark_dynamic(x, 1)" in msg
    assert "shape_buckets" in msg and "static" in msg
    if not hasattr(torch_pjrt.config, "shape_buckets"):
        assert "not implemented yet" in msg
    assert [r for r in caplog.records if r.levelno == logging.WARNING
            and "has compiled 4 times" in r.getMessage()]


def test_warn_after_n_graph_compiles_once():
    torch_pjrt.config.recompile_warn_after = 2
    cf = torch.compile(f, backend="pjrt", dynamic=True)
    got = _sizes_warned(cf, f, (5, 6, 7, 8, 9))
    assert len(got) == 1, [str(w.message) for w in got]
    msg = str(got[0].message)
    assert "has compiled 3 times" in msg and "inference_" in msg
    assert "input x dim 1 (3 values: 5, 6, 7)" in msg
    assert "one program per concrete size" in msg


def test_warn_off():
    torch_pjrt.config.recompile_warn_after = 0
    cf = torch.compile(f, backend="pjrt", dynamic=True)
    assert _sizes_warned(cf, f, (5, 6, 7, 8)) == []
    torch_pjrt.config.recompile_warn_after = None
    cf = torch.compile(f, backend="pjrt", dynamic=False)
    assert _sizes_warned(cf, f, (5, 6, 7, 8)) == []


def test_metrics_count_recompiles_per_graph(caplog):
    torch_pjrt.metrics_reset()
    assert torch_pjrt.metrics()["recompiles"] == {}
    assert torch_pjrt.metrics()["frame_recompiles"] == {}
    cf = torch.compile(f, backend="pjrt", dynamic=True)
    for n in (5, 6, 7, 6):
        _run(cf, f, torch.randn(3, n))
    m = torch_pjrt.metrics()
    name = _messages(caplog)[-1].split()[2]
    assert m["recompiles"] == {name: 2}, m["recompiles"]
    torch._dynamo.reset()
    cs = torch.compile(f, backend="pjrt", dynamic=False)
    for n in (5, 6, 7, 5):
        _run(cs, f, torch.randn(3, n))
    m = torch_pjrt.metrics()
    assert m["frame_recompiles"] == {_frame_label(f): 2}, m["frame_recompiles"]
    assert m["recompiles"] == {name: 2}  # each static graph compiled once
    torch_pjrt.metrics_reset()
    m = torch_pjrt.metrics()
    assert m["recompiles"] == {} and m["frame_recompiles"] == {}


def test_diff_unit():
    a = (("x", ("T", torch.float32, (8, 17), "cpu")), ("n", ("S", "int", 2)))
    b = (("x", ("T", torch.float32, (8, 33), "cpu")), ("n", ("S", "int", 3)))
    assert recompile.diff(a, b) == ["input x: shape (8, 17) -> (8, 33)",
                                    "input n: value 2 -> 3"]
    c = (("x", ("S", "float", 1.5)),)
    assert recompile.diff(a, c) == ["input x: tensor float32 (8, 17) on cpu -> float 1.5",
                                    "input n is gone (was int 2)"]
    d = (("x", ("T", torch.float32, (8, 17), "pjrt:0")), ("n", ("S", "int", 2)))
    assert recompile.diff(a, d) == ["input x: device cpu -> pjrt:0"]
