"""The process that python/torch_pjrt/bench/spmd.py times: GPT training on a
mesh of the XLA CPU plugin's devices (torch_pjrt.spmd), one process per
device count, started with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=N.

  TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=4 \\
      python -m torch_pjrt.bench.spmd_worker --devices 4 --out R.json

For each mode (dp, fsdp, and 2d for N >= 4) it builds the same GPT (same
seed), lays it out on the mesh, and runs `warmup` untimed and `steps` timed
training steps: forward and backward as one torch.compile(backend="pjrt")
call (one SPMD program each way), the AdamW step eagerly (every optimizer op
a one-op SPMD program), then loss.item() and a device synchronize. R.json
holds every timed step's wall time, launches and compiles, and the bytes each
device holds for the parameters and the AdamW state.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

import torch_pjrt
import torch_pjrt.spmd as spmd
import torch_pjrt.spmd_ops as spmd_ops
from torch_pjrt.bench.harness import fresh_dynamo
from torch_pjrt.models import GPT, GPT_SHARDING_RULES, GPTConfig, char_batch

GPT_CFG = GPTConfig(vocab_size=96, block_size=32, n_layer=2, n_head=4, n_embd=64)
BATCH = 8
MODES = ("dp", "fsdp", "2d")
RULES = GPT_SHARDING_RULES  # parameter layouts per mode (torch_pjrt.models)


def modes_for(n: int):
    """The modes a mesh of n devices runs: 2d needs a 2 x (n/2) grid, n >= 4."""
    return [m for m in MODES if m != "2d" or (n >= 4 and n % 2 == 0)]


def mesh_for(mode: str, n: int):
    if mode == "2d":
        return spmd.Mesh((2, n // 2), ("data", "model"))
    return spmd.Mesh((n,), ("data",))


def _step(model, x, y):
    _, loss = model(x, y)
    loss.backward()
    return loss


def _bytes(ts):
    """Whole-tensor bytes of the distinct tensors in ts: what one device holds
    when every one of them is replicated."""
    seen, total = set(), 0
    for t in ts:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def cold_caches():
    """Each mode starts as a fresh process would: Dynamo's caches, the SPMD op
    programs and the runtime's in-memory compile cache cleared (the driver
    turns the disk cache off), so that no mode reuses another's programs."""
    fresh_dynamo()
    spmd_ops.clear_cache()
    torch_pjrt._C.cache_clear()


def run_mode(mode: str, n: int, warmup: int, steps: int):
    cold_caches()
    ext = torch_pjrt.device._load_extension()
    mesh = mesh_for(mode, n)
    torch.manual_seed(0)
    model = GPT(GPT_CFG).to("pjrt")
    spmd.shard_module(model, mesh, RULES[mode])
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    step_fn = torch.compile(_step, backend="pjrt")
    g = torch.Generator().manual_seed(1234)
    data = []
    for _ in range(warmup + steps):  # on the mesh before timing: no input copies timed
        x, y = char_batch(BATCH, GPT_CFG, g)
        data.append((spmd.shard(x.to("pjrt"), mesh, ("data", None)),
                     spmd.shard(y.to("pjrt"), mesh, ("data", None))))
    ext.synchronize()
    out = []
    for i, (x, y) in enumerate(data):
        m0 = torch_pjrt.metrics()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = step_fn(model, x, y)
        opt.step()
        loss_v = loss.item()
        ext.synchronize()
        t1 = time.perf_counter()
        m1 = torch_pjrt.metrics()
        if i < warmup:
            continue
        out.append({"step_ms": (t1 - t0) * 1e3,
                    "launches": m1["executions"] - m0["executions"],
                    "compiles": m1["compiles"] - m0["compiles"],
                    "compile_ms": (m1["compile_seconds"] - m0["compile_seconds"]) * 1e3,
                    "cache_hits": m1["cache_hits"] - m0["cache_hits"],
                    "disk_hits": m1["disk_hits"] - m0["disk_hits"],
                    "fallbacks": m1["fallbacks"] - m0["fallbacks"]})
    state = [t for p in params for t in opt.state[p].values()
             if isinstance(t, spmd.ShardedTensor)]
    return {"mode": mode, "devices": n, "mesh": list(mesh.shape),
            "axes": list(mesh.axis_names), "steps": out, "final_loss": loss_v,
            "params": sum(p.numel() for p in params),
            "param_bytes_per_device": spmd.device_bytes(params),
            "state_bytes_per_device": spmd.device_bytes(state),
            "bytes_per_device": spmd.device_bytes(params + state),
            "replicated_param_bytes": _bytes(params),
            "replicated_bytes": _bytes(params + state)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench.spmd_worker")
    ap.add_argument("--devices", type=int, required=True,
                    help="the mesh size (the process must have that many pjrt devices)")
    ap.add_argument("--modes", nargs="*", default=None, help="a subset of " + " ".join(MODES))
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    have = int(torch_pjrt.device._load_extension().device_count())
    if have != args.devices:
        raise SystemExit(f"spmd_worker: {have} pjrt devices, expected {args.devices} (set "
                         f"TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count={args.devices})")
    modes = [m for m in modes_for(args.devices) if not args.modes or m in args.modes]
    res = {"devices": args.devices, "warmup": args.warmup, "batch": BATCH,
           "config": {k: getattr(GPT_CFG, k) for k in
                      ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")},
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "client_options": os.environ.get("TORCH_PJRT_CLIENT_OPTIONS"),
           "cache_dir": os.environ.get("TORCH_PJRT_CACHE_DIR"), "modes": {}}
    for mode in modes:
        t0 = time.perf_counter()
        res["modes"][mode] = run_mode(mode, args.devices, args.warmup, args.steps)
        res["modes"][mode]["wall_s"] = time.perf_counter() - t0
        print(f"spmd_worker: {mode} on {args.devices} devices done", flush=True)
    with open(args.out, "w") as f:
        json.dump(res, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
