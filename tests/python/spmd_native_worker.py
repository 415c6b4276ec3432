"""Worker for test_spmd_native.py, run with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=4:
a manual-sharding program built with the _C.Graph sharding methods, compiled
SPMD for 4 partitions on the eager device's client and run by
_eager.spmd_run over pjrt tensors, against the CPU; then every refused call,
each leaving no device memory behind."""
import torch

import torch_pjrt
from torch_pjrt import _C, device as pjrt_device
from torch_pjrt._dtypes import dtype_code

F32 = dtype_code(torch.float32)
P = 4
SPLIT = "{devices=[4]0,1,2,3}"


def build(result_rank2: bool = False):
    """(Program, Executable): x, y: f32[48] split over 4 partitions; per
    partition x * y and x + y, back to f32[48] each (result_rank2: the first
    viewed as (6, 2) per partition and f32[6, 8] in all)."""
    g = _C.Graph(checks=False)
    shards = []
    for i in range(2):
        p = g.param(F32, (12 * P,))
        g.set_param_attr(i, f'mhlo.sharding = "{SPLIT}"')
        shards.append(g.full_to_shard(g.sharding(p, SPLIT), (12,)))
    x, y = shards
    prod, = g.lower("aten::mul.Tensor", [("tensor", x), ("tensor", y)], [(F32, (12,))])
    total, = g.lower("aten::add.Tensor", [("tensor", x), ("tensor", y), 1], [(F32, (12,))])
    if result_rank2:
        prod, = g.lower("aten::view.default", [("tensor", prod), ("ints", [6, 2])],
                        [(F32, (6, 2))])
        full = (g.shard_to_full(g.sharding(prod, "{manual}"), "{devices=[1,4]0,1,2,3}",
                                (6, 2 * P)), )
    else:
        full = (g.shard_to_full(g.sharding(prod, "{manual}"), SPLIT, (12 * P,)),)
    full += (g.shard_to_full(g.sharding(total, "{manual}"), SPLIT, (12 * P,)),)
    g.set_results(list(full))
    for k in range(2):
        sharding = "{devices=[1,4]0,1,2,3}" if result_rank2 and k == 0 else SPLIT
        g.set_result_attr(k, f'mhlo.sharding = "{sharding}"')
    g.add_module_attr(f"mhlo.num_partitions = {P} : i32")
    g.add_module_attr("mhlo.num_replicas = 1 : i32")
    text = g.to_stablehlo()
    assert 'call_target_name = "SPMDFullToShardShape", mhlo.sharding = "{manual}"' in text, text
    exe = torch_pjrt.default_client().compile(text, num_partitions=P, spmd=True)
    return _C.Program(exe, [("storage", F32), ("storage", F32)], [], "spmd_test"), exe


def expect(exc, match, fn):
    try:
        fn()
    except exc as e:
        assert match in str(e), (match, str(e))
        return
    raise AssertionError(f"no {exc.__name__} for {match!r}")


def graph_errors() -> None:
    g = _C.Graph()
    p = g.param(F32, (8,))
    expect(_C.Error, "stablehlo.custom_call @Sharding: sharding is not in braces "
           "(got \"manual\", expected \"{...}\")", lambda: g.sharding(p, "manual"))
    expect(_C.Error, "@SPMDFullToShardShape: shard dim 0 does not fit the full dim (got 9, "
           "expected 1..8)", lambda: g.full_to_shard(p, (9,)))
    expect(_C.Error, "@SPMDShardToFullShape: full dim 0 is smaller than the shard dim (got 4, "
           "expected >= 8)", lambda: g.shard_to_full(p, SPLIT, (4,)))
    expect(_C.Error, "@SPMDFullToShardShape: operand is not a value of this graph (got 7",
           lambda: g.full_to_shard(7, (1,)))
    expect(_C.Error, "Graph.set_param_attr: index is negative (got -1, expected >= 0)",
           lambda: g.set_param_attr(-1, "a = 1"))
    expect(_C.Error, "graph_set_param_attr: index out of range (got 1, expected < 1)",
           lambda: g.set_param_attr(1, "a = 1"))
    expect(_C.Error, "graph_set_result_attr: results are not set yet",
           lambda: g.set_result_attr(0, "a = 1"))
    g.add_module_attr("mhlo.num_partitions = 1 : i32")
    assert g.value_type(g.shard_to_full(p, "{replicated}", (8,))) == (F32, (8,))
    print("ok graph errors", flush=True)


def check_rows(got, want):
    assert len(got) == P, len(got)
    for d in range(P):
        assert len(got[d]) == len(want[d])
        for a, b in zip(got[d], want[d]):
            assert a.device == torch.device("pjrt", d), (d, a.device)
            assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape)
            torch.testing.assert_close(a.cpu(), b)


def runs(prog, ext) -> None:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(12, generator=g) for _ in range(P)]
    ys = [torch.randn(12, generator=g) for _ in range(P)]
    rows = [[xs[d].to(f"pjrt:{d}"), ys[d].to(f"pjrt:{d}")] for d in range(P)]
    spec = [((6, 2), torch.float32), ((12,), torch.float32)]
    want = [[(xs[d] * ys[d]).view(6, 2), xs[d] + ys[d]] for d in range(P)]
    torch.pjrt.synchronize()
    torch_pjrt.metrics_reset()
    got = ext.spmd_run(prog, rows, spec)
    torch.pjrt.synchronize()
    m = torch_pjrt.metrics()  # one launch over the 4 devices, the storages passed as they are
    assert m["executions"] == 1 and m["bytes_h2d"] == 0 and m["bytes_d2h"] == 0, m
    check_rows(got, want)
    check_rows(ext.spmd_run(prog, rows, spec, wait=True), want)
    check_rows(ext.spmd_run(program=prog, rows=rows, results=spec, wait=False), want)
    # Views that do not cover their storage (strided, offset) are read first.
    big = [torch.randn(30, generator=g) for _ in range(P)]
    views = [[big[d].to(f"pjrt:{d}")[::2][:12], big[d].to(f"pjrt:{d}")[3:15]] for d in range(P)]
    want = [[(big[d][::2][:12] * big[d][3:15]).view(6, 2), big[d][::2][:12] + big[d][3:15]]
            for d in range(P)]
    check_rows(ext.spmd_run(prog, views, spec), want)
    print("ok spmd_run", flush=True)


def errors(prog, exe, prog2, ext) -> None:
    rows = [[torch.ones(12, device=f"pjrt:{d}"), torch.ones(12, device=f"pjrt:{d}")]
            for d in range(P)]
    spec = [((12,), torch.float32), ((12,), torch.float32)]
    torch.pjrt.synchronize()
    before = [torch.pjrt.memory_allocated(d) for d in range(P)]
    expect(ValueError, "torch_pjrt.spmd: wrong number of rows (got 3, expected 4: one per "
           "device of the program)", lambda: ext.spmd_run(prog, rows[:3], spec))
    expect(ValueError, "torch_pjrt.spmd: row 1 has 1 inputs (expected 2)",
           lambda: ext.spmd_run(prog, [rows[0], rows[1][:1]] + rows[2:], spec))
    expect(TypeError, "torch_pjrt.spmd: row 3 input 0 is not a tensor (got int)",
           lambda: ext.spmd_run(prog, rows[:3] + [[3, rows[3][1]]], spec))
    bad = [list(r) for r in rows]
    bad[2][1] = rows[0][1]
    expect(RuntimeError, "torch_pjrt.spmd: row 2 input 1 is on pjrt:0 (expected pjrt:2)",
           lambda: ext.spmd_run(prog, bad, spec))
    bad[2][1] = torch.ones(12)
    expect(RuntimeError, "torch_pjrt.spmd: row 2 input 1 is on cpu (expected pjrt:2)",
           lambda: ext.spmd_run(prog, bad, spec))
    expect(TypeError, "torch_pjrt.spmd: rows must be a list of lists of tensors (got dict)",
           lambda: ext.spmd_run(prog, {}, spec))
    expect(ValueError, "torch_pjrt.spmd: wrong number of result specs (got 1, expected 2: one "
           "per program result)", lambda: ext.spmd_run(prog, rows, spec[:1]))
    expect(TypeError, "torch_pjrt.spmd: result 1 must be (shape, dtype) (got list)",
           lambda: ext.spmd_run(prog, rows, [spec[0], [(12,), torch.float32]]))
    # Refused after the run: its result buffers are destroyed, none wrapped.
    expect(RuntimeError, "torch_pjrt.spmd: device 0 result 1 does not fit its spec (got rank "
           "1, 12 float32 elements, expected a flat buffer of 5 float32)",
           lambda: ext.spmd_run(prog, rows, [spec[0], ((5,), torch.float32)]))
    expect(RuntimeError, "torch_pjrt.spmd: device 0 result 0 does not fit its spec (got rank "
           "1, 12 float32 elements, expected a flat buffer of 12 float64)",
           lambda: ext.spmd_run(prog, rows, [((12,), torch.float64), spec[1]]))
    expect(RuntimeError, "torch_pjrt.spmd: device 0 result 0 does not fit its spec (got rank "
           "2, 12 float32 elements, expected a flat buffer of 12 float32)",
           lambda: ext.spmd_run(prog2, rows, spec))
    # Refused before the launch: the plugin reinterprets another dtype's bytes,
    # and a multi-device execute it refuses (a wrong size) hangs its next one.
    ints = [[r[0], torch.ones(12, dtype=torch.int32, device=r[0].device)] for r in rows]
    expect(RuntimeError, "torch_pjrt.spmd: row 0 input 1 is int32 (expected float32, the "
           "program's)", lambda: ext.spmd_run(prog, ints, spec))
    odd = [list(r) for r in rows]
    odd[3][0] = torch.ones(13, device="pjrt:3")
    expect(RuntimeError, "torch_pjrt.spmd: row 3 input 0 has 13 elements (expected 12 as in "
           "row 0)", lambda: ext.spmd_run(prog, odd, spec))
    sizes = [((12,), torch.float32), ((12,), torch.float32)]
    check_rows(ext.spmd_run(prog, rows, spec, inputs=sizes),
               [[torch.ones(12), torch.full((12,), 2.0)]] * P)
    wide = [[torch.ones(13, device=f"pjrt:{d}")] * 2 for d in range(P)]
    expect(RuntimeError, "torch_pjrt.spmd: row 0 input 0 is Float[13] (expected Float[12])",
           lambda: ext.spmd_run(prog, wide, spec, inputs=sizes))
    expect(ValueError, "torch_pjrt.spmd: wrong number of input specs (got 1, expected 2: one "
           "per program input)", lambda: ext.spmd_run(prog, rows, spec, inputs=sizes[:1]))
    buffers = _C.Program(exe, ["buffer", ("storage", F32)], [], "buffers")
    expect(ValueError, "torch_pjrt.spmd: program input 0 is not a storage input (got plan "
           "kind 0)", lambda: ext.spmd_run(buffers, rows, spec))
    del bad, ints, odd, wide
    torch.pjrt.synchronize()
    after = [torch.pjrt.memory_allocated(d) for d in range(P)]
    assert after == before, (before, after)
    print("ok spmd_run errors", flush=True)


def main() -> None:
    torch_pjrt.config.fallback = "error"
    assert torch.pjrt.device_count() == P, torch.pjrt.device_count()
    ext = pjrt_device._load_extension()
    graph_errors()
    prog, exe = build()
    runs(prog, ext)
    errors(prog, exe, build(result_rank2=True)[0], ext)
    print("ok spmd native", flush=True)


if __name__ == "__main__":
    main()
