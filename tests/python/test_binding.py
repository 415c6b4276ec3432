"""torch_pjrt._C and the package helpers on the real CPU plugin: devices,
plugin info, hand-written StableHLO vs torch, buffer round trips for every
dtype, compile-cache metrics and errors raised as _C.Error."""
import subprocess
import sys

import pytest
import torch

import torch_pjrt
from torch_pjrt import _C

ADD_MUL = """
module {
  func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
    %0 = stablehlo.add %a, %b : tensor<2x3xf32>
    %1 = stablehlo.multiply %0, %b : tensor<2x3xf32>
    return %0, %1 : tensor<2x3xf32>, tensor<2x3xf32>
  }
}
"""

DOT = """
module {
  func.func @main(%a: tensor<4x5xf64>, %b: tensor<5x3xf64>) -> tensor<4x3xf64> {
    %0 = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0] : (tensor<4x5xf64>, tensor<5x3xf64>) -> tensor<4x3xf64>
    return %0 : tensor<4x3xf64>
  }
}
"""

DOUBLE = """
module {
  func.func @main(%a: tensor<3xf32>) -> tensor<3xf32> {
    %0 = stablehlo.add %a, %a : tensor<3xf32>
    return %0 : tensor<3xf32>
  }
}
"""

ALL_DTYPES = [torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
              torch.float16, torch.float32, torch.float64, torch.bfloat16]


def _sample(dtype, shape=(3, 4)):
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype.is_floating_point:
        return torch.randn(shape).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000), shape, dtype=dtype)


def test_devices_default_one_cpu():
    devs = torch_pjrt.devices()
    assert len(devs) >= 1
    assert devs[0]["index"] == 0
    assert set(devs[0]) == {"index", "id", "kind", "local_hardware_id"}
    assert "cpu" in devs[0]["kind"].lower()


def test_devices_four_cpu_devices_from_env(subprocess_env):
    env = dict(subprocess_env, TORCH_PJRT_CLIENT_OPTIONS="cpu_device_count=4")
    code = ("import torch, torch_pjrt\n"
            "d = torch_pjrt.devices()\n"
            "print(len(d), sorted(x['index'] for x in d), len({x['id'] for x in d}))\n"
            "t = torch.arange(6, dtype=torch.float32).reshape(2, 3)\n"
            "b = torch_pjrt.to_buffer(t, device=3)\n"
            "c = b.copy_to_device(1)\n"
            "print(b.device, c.device, bool(torch.equal(torch_pjrt.to_tensor(c), t)))\n"
            "exe = torch_pjrt.default_client().compile(DOUBLE, num_replicas=4)\n"
            "args = [[torch_pjrt.to_buffer(torch.full((3,), float(d)), device=d)] "
            "for d in range(4)]\n"
            "outs = exe.execute_sharded(args)\n"
            "print(exe.num_devices, [(o[0].device, torch_pjrt.to_tensor(o[0]).tolist()[0]) "
            "for o in outs])\n"
            "try:\n    exe.execute(args[0])\n"
            "except torch_pjrt.Error as e:\n    print(e.code)\n")
    code = "DOUBLE = " + repr(DOUBLE) + "\n" + code
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "4 [0, 1, 2, 3] 4"
    assert lines[1] == "3 1 True"
    assert lines[2] == "4 [(0, 0.0), (1, 2.0), (2, 4.0), (3, 6.0)]"
    assert lines[3] == "INVALID_ARGUMENT"


def test_plugin_info_fields():
    info = torch_pjrt.plugin_info()
    assert info["path"].endswith(".so")
    major, minor = info["api_version"]
    assert major == 0 and minor >= 40
    assert isinstance(info["xla_version"], int)
    for key in ("stablehlo_current_version", "stablehlo_minimum_version"):
        assert len(info[key]) == 3 and all(isinstance(v, int) for v in info[key])
    assert info["platform_name"] == torch_pjrt.default_client().platform_name
    assert isinstance(torch_pjrt.default_client().platform_version, str)
    assert torch_pjrt.plugin_path("cpu") == info["path"]


def test_run_stablehlo_matches_torch():
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    s, p = torch_pjrt.run_stablehlo(ADD_MUL, [a, b])
    torch.testing.assert_close(s, a + b)
    torch.testing.assert_close(p, (a + b) * b)
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    (z,) = torch_pjrt.run_stablehlo(DOT, [x, y])
    torch.testing.assert_close(z, x @ y)


def test_run_stablehlo_non_contiguous_input():
    a = torch.randn(3, 2).t()
    b = torch.randn(2, 3)
    s, _ = torch_pjrt.run_stablehlo(ADD_MUL, [a, b])
    torch.testing.assert_close(s, a + b)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_buffer_round_trip(dtype):
    t = _sample(dtype)
    buf = torch_pjrt.to_buffer(t)
    assert buf.dtype == torch_pjrt.dtype_code(dtype)
    assert buf.shape == (3, 4)
    assert buf.device == 0
    assert buf.nbytes == t.numel() * t.element_size()
    back = torch_pjrt.to_tensor(buf)
    assert back.dtype == dtype
    assert torch.equal(back, t)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.bool, torch.int8, torch.float16],
                         ids=str)
def test_identity_program_per_dtype(dtype):
    mlir = {torch.bfloat16: "bf16", torch.bool: "i1", torch.int8: "i8",
            torch.float16: "f16"}[dtype]
    text = (f"module {{\n  func.func @main(%a: tensor<3x4x{mlir}>) -> tensor<3x4x{mlir}> {{\n"
            f"    return %a : tensor<3x4x{mlir}>\n  }}\n}}\n")
    t = _sample(dtype)
    (out,) = torch_pjrt.run_stablehlo(text, [t])
    assert out.dtype == dtype and torch.equal(out, t)


def test_scalar_and_empty_buffers():
    for t in (torch.tensor(3.5), torch.zeros(0, 4)):
        buf = torch_pjrt.to_buffer(t)
        assert buf.shape == tuple(t.shape)
        assert torch.equal(torch_pjrt.to_tensor(buf), t)


def test_buffer_delete_and_zero_copy_keepalive():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    buf = torch_pjrt.to_buffer(t, zero_copy=True)
    del t
    assert torch.equal(torch_pjrt.to_tensor(buf), torch.arange(12.0).reshape(3, 4))
    assert not buf.is_deleted
    buf.delete()
    assert buf.is_deleted
    with pytest.raises(_C.Error) as err:
        _ = buf.shape
    assert err.value.code == "FAILED_PRECONDITION"


def test_compile_cache_metrics():
    client = torch_pjrt.default_client()
    torch_pjrt.metrics_reset()
    text = ADD_MUL + "\n// metrics test\n"
    e1 = client.compile(text)
    e2 = client.compile(text)
    m = torch_pjrt.metrics()
    assert m["compiles"] == 1 and m["cache_hits"] == 1
    assert m["compile_seconds"] > 0
    assert e1.cache_key == e2.cache_key and e1.num_outputs == 2
    a, b = torch.ones(2, 3), torch.full((2, 3), 2.0)
    outs = e1.execute([torch_pjrt.to_buffer(a), torch_pjrt.to_buffer(b)])
    assert [torch_pjrt.to_tensor(o).tolist() for o in outs] == [[[3.0] * 3] * 2, [[6.0] * 3] * 2]
    m = torch_pjrt.metrics()
    assert m["executions"] == 1
    assert m["bytes_h2d"] == 48 and m["bytes_d2h"] == 48
    assert m["fallbacks"] == 0 and m["cache_entries"] >= 1


ALIASED_ADD = """
module {
  func.func @main(%a: tensor<2x3xf32> {tf.aliasing_output = 0 : i32}, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
    %0 = stablehlo.add %a, %b : tensor<2x3xf32>
    return %0 : tensor<2x3xf32>
  }
}
"""


def test_donated_argument_is_deleted():
    exe = torch_pjrt.default_client().compile(ALIASED_ADD)
    a = torch_pjrt.to_buffer(torch.ones(2, 3))
    b = torch_pjrt.to_buffer(torch.ones(2, 3))
    with pytest.raises(_C.Error, match="donate has 1 entries, expected 2"):
        exe.execute([a, b], donate=[True])
    (out,) = exe.execute([a, b], donate=[True, False])
    assert torch.equal(torch_pjrt.to_tensor(out), torch.full((2, 3), 2.0))
    assert a.is_deleted and not b.is_deleted
    with pytest.raises(_C.Error, match="deleted or donated"):
        exe.execute([a, b])


def test_error_bad_stablehlo_text():
    with pytest.raises(_C.Error) as err:
        torch_pjrt.default_client().compile("module { this is not stablehlo }")
    assert isinstance(err.value, RuntimeError)
    assert err.value.code in ("INVALID_ARGUMENT", "INTERNAL", "UNKNOWN")
    assert "compile" in str(err.value)


def test_error_bad_dtype():
    t = torch.zeros(4, dtype=torch.float32)
    with pytest.raises(_C.Error, match="bad dtype") as err:
        torch_pjrt.default_client().buffer_from_host(t.data_ptr(), 16, 99, (4,))
    assert err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(_C.Error, match="size mismatch"):
        torch_pjrt.default_client().buffer_from_host(t.data_ptr(), 8, 11, (4,))
    with pytest.raises(TypeError, match="unsupported dtype"):
        torch_pjrt.to_buffer(torch.zeros(2, dtype=torch.float8_e5m2))


def test_error_wrong_arg_count():
    exe = torch_pjrt.default_client().compile(ADD_MUL)
    with pytest.raises(_C.Error) as err:
        exe.execute([torch_pjrt.to_buffer(torch.ones(2, 3))])
    assert err.value.code == "INVALID_ARGUMENT"
    assert str(err.value)
    with pytest.raises(_C.Error, match="not a Buffer"):
        exe.execute([torch.ones(2, 3), torch.ones(2, 3)])


def test_error_plugin_not_found():
    with pytest.raises(_C.Error) as err:
        _C.plugin_resolve("/nonexistent/libnothing.so", [])
    assert err.value.code == "NOT_FOUND"
    assert "/nonexistent/libnothing.so" in str(err.value)


def test_client_options_parsing():
    from torch_pjrt._device import parse_client_options
    assert parse_client_options("cpu_device_count=4, a=x ,b=true,c=1.5,d=[1;2]") == {
        "cpu_device_count": 4, "a": "x", "b": True, "c": 1.5, "d": [1, 2]}
    with pytest.raises(_C.Error, match="unsupported value type"):
        _C.Client(torch_pjrt.plugin_path(), {"x": object()})


def test_graph_builds_and_runs_params_only():
    g = _C.Graph()
    a = g.param(11, (2, 3))
    b = g.param(11, (2, 3))
    assert g.value_type(a) == (11, (2, 3)) and g.param_count == 2
    g.set_results([b, a])
    text = g.to_stablehlo()
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    out = torch_pjrt.run_stablehlo(text, [x, y])
    assert torch.equal(out[0], y) and torch.equal(out[1], x)
    with pytest.raises(_C.Error, match="bad dtype"):
        g.param(0, (1,))
    with pytest.raises(_C.Error, match="unknown value id"):
        g.value_type(1234)
