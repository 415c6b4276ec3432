"""Worker for test_spmd_shardy.py, run with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=4:
what the CPU plugin does with Client.compile(..., shardy=True)
(ExecutableBuildOptions.use_shardy_partitioner). The same two programs (x * 2
and a sum over the sharded dim, each device holding a flat block of 12) are
written with GSPMD's mhlo.sharding and manual-sharding custom calls (as
torch_pjrt.spmd's SpmdGraph emits them) and in Shardy's sdy dialect; each is
compiled with and without shardy and run over the 4 devices."""
import torch

import torch_pjrt
from torch_pjrt import _C, device as pjrt_device
from torch_pjrt._dtypes import dtype_code

F32 = dtype_code(torch.float32)
P = 4
HEAD = "module attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {\n"


def gspmd(reduce: bool) -> str:
    """The text SpmdGraph emits for x * 2 (or x.sum(0)) on x: f32[8, 6] split on dim 0."""
    def cc(n, src, target, sharding, ty):
        return (f'    %{n} = "stablehlo.custom_call"(%{src}) {{call_target_name = "{target}", '
                f'mhlo.sharding = "{sharding}"}} : {ty}\n')
    split, rows = "{devices=[4]0,1,2,3}", "{devices=[4,1]0,1,2,3}"
    out_ty, out_sh = ("tensor<6xf32>", "{replicated}") if reduce else ("tensor<48xf32>", split)
    t = HEAD + (f'  func.func @main(%arg0: tensor<48xf32> {{mhlo.sharding = "{split}"}}) -> '
                f'({out_ty} {{mhlo.sharding = "{out_sh}"}}) {{\n')
    t += cc(1, "arg0", "Sharding", split, "(tensor<48xf32>) -> tensor<48xf32>")
    t += cc(2, 1, "SPMDFullToShardShape", "{manual}", "(tensor<48xf32>) -> tensor<12xf32>")
    t += '    %3 = "stablehlo.reshape"(%2) : (tensor<12xf32>) -> tensor<2x6xf32>\n'
    t += cc(4, 3, "Sharding", "{manual}", "(tensor<2x6xf32>) -> tensor<2x6xf32>")
    t += cc(5, 4, "SPMDShardToFullShape", rows, "(tensor<2x6xf32>) -> tensor<8x6xf32>")
    if reduce:
        t += ('    %6 = "stablehlo.constant"() {value = dense<0.0> : tensor<f32>} : () -> '
              'tensor<f32>\n'
              '    %7 = "stablehlo.reduce"(%5, %6) ({\n'
              '      ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n'
              '        %s = "stablehlo.add"(%a, %b) : (tensor<f32>, tensor<f32>) -> tensor<f32>\n'
              '        "stablehlo.return"(%s) : (tensor<f32>) -> ()\n'
              '    }) {dimensions = array<i64: 0>} : (tensor<8x6xf32>, tensor<f32>) -> '
              'tensor<6xf32>\n')
        t += cc(8, 7, "Sharding", "{replicated}", "(tensor<6xf32>) -> tensor<6xf32>")
        t += cc(9, 8, "SPMDFullToShardShape", "{manual}", "(tensor<6xf32>) -> tensor<6xf32>")
        t += cc(10, 9, "Sharding", "{manual}", "(tensor<6xf32>) -> tensor<6xf32>")
        t += cc(11, 10, "SPMDShardToFullShape", "{replicated}", "(tensor<6xf32>) -> tensor<6xf32>")
    else:
        t += ('    %6 = "stablehlo.constant"() {value = dense<2.0> : tensor<8x6xf32>} : () -> '
              'tensor<8x6xf32>\n'
              '    %7 = "stablehlo.multiply"(%5, %6) : (tensor<8x6xf32>, tensor<8x6xf32>) -> '
              'tensor<8x6xf32>\n')
        t += cc(8, 7, "Sharding", rows, "(tensor<8x6xf32>) -> tensor<8x6xf32>")
        t += cc(9, 8, "SPMDFullToShardShape", "{manual}", "(tensor<8x6xf32>) -> tensor<2x6xf32>")
        t += '    %10 = "stablehlo.reshape"(%9) : (tensor<2x6xf32>) -> tensor<12xf32>\n'
        t += cc(11, 10, "Sharding", "{manual}", "(tensor<12xf32>) -> tensor<12xf32>")
        t += cc(12, 11, "SPMDShardToFullShape", split, "(tensor<12xf32>) -> tensor<48xf32>")
    last = 11 if reduce else 12
    return t + f'    "func.return"(%{last}) : ({out_ty}) -> ()\n  }}\n}}\n'


def sdy(reduce: bool) -> str:
    """The same program in the sdy dialect: a mesh, sdy.sharding attributes,
    sdy.manual_computation for the flat block <-> whole tensor steps."""
    out_ty, out_sh = ("tensor<6xf32>", '[{}]') if reduce else ("tensor<48xf32>", '[{"d"}]')
    t = HEAD + '  sdy.mesh @mesh = <["d"=4]>\n'
    t += ('  func.func @main(%arg0: tensor<48xf32> {sdy.sharding = #sdy.sharding<@mesh, '
          f'[{{"d"}}]>}}) -> ({out_ty} {{sdy.sharding = #sdy.sharding<@mesh, {out_sh}>}}) {{\n')
    t += ('    %0 = sdy.manual_computation(%arg0) in_shardings=[<@mesh, [{"d"}]>] '
          'out_shardings=[<@mesh, [{"d"}, {}]>] manual_axes={"d"} (%a: tensor<12xf32>) {\n'
          '      %r = stablehlo.reshape %a : (tensor<12xf32>) -> tensor<2x6xf32>\n'
          '      sdy.return %r : tensor<2x6xf32>\n'
          '    } : (tensor<48xf32>) -> tensor<8x6xf32>\n')
    if reduce:
        t += ('    %z = stablehlo.constant dense<0.0> : tensor<f32>\n'
              '    %s = stablehlo.reduce(%0 init: %z) applies stablehlo.add across dimensions = '
              '[0] : (tensor<8x6xf32>, tensor<f32>) -> tensor<6xf32>\n'
              '    %c = sdy.sharding_constraint %s <@mesh, [{}]> : tensor<6xf32>\n'
              '    %1 = sdy.manual_computation(%c) in_shardings=[<@mesh, [{}]>] '
              'out_shardings=[<@mesh, [{}]>] manual_axes={"d"} (%b: tensor<6xf32>) {\n'
              '      sdy.return %b : tensor<6xf32>\n'
              '    } : (tensor<6xf32>) -> tensor<6xf32>\n')
    else:
        t += ('    %k = stablehlo.constant dense<2.0> : tensor<8x6xf32>\n'
              '    %m = stablehlo.multiply %0, %k : tensor<8x6xf32>\n'
              '    %c = sdy.sharding_constraint %m <@mesh, [{"d"}, {}]> : tensor<8x6xf32>\n'
              '    %1 = sdy.manual_computation(%c) in_shardings=[<@mesh, [{"d"}, {}]>] '
              'out_shardings=[<@mesh, [{"d"}]>] manual_axes={"d"} (%b: tensor<2x6xf32>) {\n'
              '      %r = stablehlo.reshape %b : (tensor<2x6xf32>) -> tensor<12xf32>\n'
              '      sdy.return %r : tensor<12xf32>\n'
              '    } : (tensor<8x6xf32>) -> tensor<48xf32>\n')
    return t + f'    return %1 : {out_ty}\n  }}\n}}\n'


def run(ext, text: str, shardy: bool, reduce: bool, x: torch.Tensor) -> None:
    exe = torch_pjrt.default_client().compile(text, num_partitions=P, spmd=True, shardy=shardy)
    prog = _C.Program(exe, [("storage", F32)], [], "shardy_test")
    rows = [[x[2 * d:2 * d + 2].reshape(12).to(f"pjrt:{d}")] for d in range(P)]
    spec = [((6,), torch.float32)] if reduce else [((12,), torch.float32)]
    got = ext.spmd_run(prog, rows, spec, wait=True)
    for d in range(P):
        want = x.sum(0) if reduce else (x * 2)[2 * d:2 * d + 2].reshape(12)
        torch.testing.assert_close(got[d][0].cpu(), want, rtol=1e-5, atol=1e-5)


def main() -> None:
    torch_pjrt.config.fallback = "error"
    assert torch.pjrt.device_count() == P, torch.pjrt.device_count()
    ext = pjrt_device._load_extension()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    for reduce in (False, True):
        name = "sum" if reduce else "mul"
        # GSPMD text: right with and without shardy (with it, the plugin falls back to GSPMD).
        run(ext, gspmd(reduce), False, reduce, x)
        print(f"ok gspmd {name}", flush=True)
        run(ext, gspmd(reduce), True, reduce, x)
        print(f"ok gspmd {name} shardy", flush=True)
        # sdy text: right with shardy; without it the GSPMD partitioner refuses it.
        run(ext, sdy(reduce), True, reduce, x)
        print(f"ok sdy {name} shardy", flush=True)
        try:
            run(ext, sdy(reduce), False, reduce, x)
        except Exception as e:  # _C.Error
            assert "xla.sdy" in str(e), str(e)
            print(f"ok sdy {name} refused without shardy", flush=True)
        else:
            raise AssertionError("sdy program compiled without shardy")
    print("ok spmd shardy", flush=True)


if __name__ == "__main__":
    main()
