"""Optimizer step time on the eager pjrt device: fused=True (one compiled
program per step, python/torch_pjrt/fused_optim.py) vs foreach=True vs the
for-loop step, for AdamW and SGD(momentum), side by side.

    .venv/bin/python bench/fused_optim.py [--steps N] [--reps R]

Per configuration: median milliseconds per optimizer.step() (grads fixed, a
synchronize after the timed steps; the three variants interleaved R times),
device programs launched per step (torch_pjrt.metrics()["executions"]), and
the ratios foreach/fused and for-loop/fused (above 1: fused is faster).
`run()` returns the same numbers as a dict.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import torch  # noqa: E402

# name: parameter shapes (a 4-block MLP with biases; many small tensors; a
# GPT-like layer stack of 8 blocks)
PARAM_SETS = {
    "mlp_4x512": [(512, 512), (512,)] * 4,
    "small_x96": [(64,)] * 96,
    "gpt_8x256": [(768, 256), (768,), (256, 256), (256,), (1024, 256), (1024,),
                  (256, 1024), (256,), (256,), (256,), (256,), (256,)] * 8,
}
VARIANTS = {"fused": {"fused": True}, "foreach": {"foreach": True},
            "for-loop": {"foreach": False}}
OPTIMIZERS = {
    "AdamW": lambda ps, kw: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **kw),
    "SGD": lambda ps, kw: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, **kw),
}


def _setup(shapes, make, kw):
    params = [torch.nn.Parameter(torch.randn(s).to("pjrt")) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = make(params, kw)
    for _ in range(3):  # warm-up: state, compiles
        opt.step()
    torch.pjrt.synchronize()
    return opt


def _time_steps(opt, steps: int):
    import torch_pjrt
    e0 = torch_pjrt.metrics()["executions"]
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    torch.pjrt.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return dt, (torch_pjrt.metrics()["executions"] - e0) / steps


def run(steps: int = 20, reps: int = 5) -> dict:
    import torch_pjrt  # noqa: F401  (registers the device)
    torch.manual_seed(0)
    out = {}
    for pname, shapes in PARAM_SETS.items():
        for oname, make in OPTIMIZERS.items():
            opts = {v: _setup(shapes, make, kw) for v, kw in VARIANTS.items()}
            times = {v: [] for v in VARIANTS}
            progs = {}
            for _ in range(reps):
                for v, opt in opts.items():
                    dt, ex = _time_steps(opt, steps)
                    times[v].append(dt)
                    progs[v] = ex
            row = {v: statistics.median(t) * 1e3 for v, t in times.items()}
            out[f"{oname}/{pname}"] = {
                "params": len(shapes), "ms": row, "programs_per_step": progs,
                "foreach_over_fused": row["foreach"] / row["fused"],
                "loop_over_fused": row["for-loop"] / row["fused"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import torch_pjrt
    dev = torch_pjrt.devices()[0]
    print(f"device: {dev.get('kind', dev)}; median ms per optimizer.step() over "
          f"{args.reps} interleaved runs of {args.steps} steps")
    print(f"{'config':<20} {'params':>6} {'fused':>9} {'foreach':>9} {'for-loop':>9} "
          f"{'foreach/fused':>14} {'loop/fused':>11}  programs/step (fused, foreach, loop)")
    for name, r in run(args.steps, args.reps).items():
        ms, pr = r["ms"], r["programs_per_step"]
        print(f"{name:<20} {r['params']:>6} {ms['fused']:>9.3f} {ms['foreach']:>9.3f} "
              f"{ms['for-loop']:>9.3f} {r['foreach_over_fused']:>13.2f}x "
              f"{r['loop_over_fused']:>10.2f}x  {pr['fused']:.0f}, {pr['foreach']:.0f}, "
              f"{pr['for-loop']:.0f}")


if __name__ == "__main__":
    main()
