"""Per-op overhead of the eager pjrt device vs PyTorch CPU eager.

    .venv/bin/python bench/eager_overhead.py [--iters N]

Prints microseconds per op for (1) a chain of small elementwise ops on a
(16, 16) tensor and (2) one transformer encoder layer forward (d_model 64,
4 heads, batch 2, seq 16), each after a warm-up that fills the compile caches
(wall time, process CPU time and calling-thread CPU time, with ratios to
CPU eager),
and (3) the programs built by each of 5 AdamW steps (0 after the first).
`run()` returns the same numbers as a dict for other harnesses.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import torch  # noqa: E402


def _sync(dev: str) -> None:
    if dev != "cpu":
        torch.pjrt.synchronize()


def _chain(x: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        x = x * 1.0001
        x = x + 0.5
        x = torch.relu(x)
        x = x - 0.25
    return x


def _time(fn, dev: str, iters: int) -> tuple:
    """(wall, process CPU, calling-thread CPU) seconds per call. CPU time counts
    no time spent waiting for a core, so it is the steadier figure on a shared
    machine. Process CPU time also counts XLA's worker threads, which spin
    while idle after running a program (about as long as the calling thread
    for ops the XLA CPU client runs asynchronously); the calling thread's CPU
    time is the dispatch cost plus what runs inline."""
    fn()
    _sync(dev)
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(iters):
        fn()
    _sync(dev)
    n = iters
    return ((time.perf_counter() - t0) / n, (time.process_time() - c0) / n,
            (time.thread_time() - m0) / n)


def _adamw_compiles(steps: int = 5) -> list:
    """Eager programs built (signature misses: StableHLO emitted, then compiled
    or loaded from the disk cache) by each AdamW (foreach) step of a small MLP
    on the device: new bias-correction scalars must not build new programs."""
    from torch_pjrt import device
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    m = m.to("pjrt")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, foreach=True)
    x, y = torch.randn(5, 8).to("pjrt"), torch.randn(5, 4).to("pjrt")
    per_step = []
    for _ in range(steps):
        before = device.stats()["programs"]
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()
        _sync("pjrt")
        per_step.append(device.stats()["programs"] - before)
    return per_step


def run(iters: int = 20, chain: int = 25, threads: int = 1) -> dict:
    """threads: torch CPU intra-op threads for the eager CPU baseline (1 keeps
    the comparison stable on a shared machine)."""
    from torch_pjrt import device
    device.ensure_registered()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)  # the fused CPU kernel has no lowering
    out = {}
    layer_cpu = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True).eval()
    layer_pjrt = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True).eval()
    layer_pjrt.load_state_dict(layer_cpu.state_dict())
    layer_pjrt = layer_pjrt.to("pjrt")
    src = torch.randn(2, 16, 64)
    for dev, layer in (("cpu", layer_cpu), ("pjrt", layer_pjrt)):
        x = torch.randn(16, 16).to(dev)
        wall, cpu, main = _time(lambda: _chain(x, chain), dev, iters)
        out[f"{dev}_elementwise_us_per_op"] = wall / (4 * chain) * 1e6
        out[f"{dev}_elementwise_cpu_us_per_op"] = cpu / (4 * chain) * 1e6
        out[f"{dev}_elementwise_thread_us_per_op"] = main / (4 * chain) * 1e6
        s = src.to(dev)
        with torch.no_grad():
            wall, cpu, main = _time(lambda: layer(s), dev, iters)
        out[f"{dev}_transformer_layer_us"] = wall * 1e6
        out[f"{dev}_transformer_layer_cpu_us"] = cpu * 1e6
        out[f"{dev}_transformer_layer_thread_us"] = main * 1e6
    out["adamw_compiles_per_step"] = _adamw_compiles()
    st = device.stats()
    out["signature_hits"] = st["signature_hits"]
    out["programs"] = st["programs"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    r = run(args.iters)
    print(f"elementwise op (16x16): pjrt {r['pjrt_elementwise_us_per_op']:.1f} us/op, "
          f"cpu eager {r['cpu_elementwise_us_per_op']:.1f} us/op (wall); CPU time "
          f"{r['pjrt_elementwise_cpu_us_per_op']:.1f} vs {r['cpu_elementwise_cpu_us_per_op']:.1f}"
          f" = {r['pjrt_elementwise_cpu_us_per_op'] / r['cpu_elementwise_cpu_us_per_op']:.1f}x")
    print(f"transformer layer fwd:  pjrt {r['pjrt_transformer_layer_us']:.0f} us, "
          f"cpu eager {r['cpu_transformer_layer_us']:.0f} us (wall); CPU time "
          f"{r['pjrt_transformer_layer_cpu_us']:.0f} vs {r['cpu_transformer_layer_cpu_us']:.0f}"
          f" = {r['pjrt_transformer_layer_cpu_us'] / r['cpu_transformer_layer_cpu_us']:.1f}x; "
          f"calling thread {r['pjrt_transformer_layer_thread_us']:.0f} vs "
          f"{r['cpu_transformer_layer_thread_us']:.0f}"
          f" = {r['pjrt_transformer_layer_thread_us'] / r['cpu_transformer_layer_thread_us']:.1f}x")
    print(f"AdamW step programs built (steps 1..5): {r['adamw_compiles_per_step']}")
    print(f"programs built {r['programs']}, signature hits {r['signature_hits']}")


if __name__ == "__main__":
    main()
