"""The process that python/torch_pjrt/bench/ddp.py times: one training setup
(GPT or MLP, AdamW, a fixed global batch) on pjrt tensors, either plain (one
process, no process group: the baseline) or wrapped in DDP under torchrun, with
a comm hook that times the gradient all-reduce inside the process group call.

  python -m torch_pjrt.bench.ddp_worker --model gpt --mode plain --out R.json
  python -m torch.distributed.run --standalone --nproc-per-node=2 \\
      -m torch_pjrt.bench.ddp_worker --model gpt --mode ddp --out R.json

Each rank writes R.json.rank<r>: every timed step's wall time, the time spent
inside the all-reduce calls of that step, and the staged bytes of that step.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import torch
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt.models import GPT, MLP, GPTConfig, char_batch

# Small but not trivial: ~0.11 M parameters for GPT, ~0.4 M for the MLP, so a
# step is compute plus a gradient all-reduce of 0.4-1.6 MB, not only dispatch.
GPT_CFG = GPTConfig(vocab_size=96, block_size=32, n_layer=2, n_head=4, n_embd=64)
MLP_SHAPE = dict(in_features=256, hidden=512, num_classes=10)
DEFAULT_BATCH = {"gpt": 16, "mlp": 64}


def build(model: str):
    if model == "gpt":
        return GPT(GPT_CFG)
    if model == "mlp":
        return MLP(**MLP_SHAPE)
    raise SystemExit(f"ddp_worker: unknown model {model!r} (gpt, mlp)")


def batches(model: str, global_batch: int, n: int, rank: int, world: int, dev):
    """n global batches (fixed seed, the same on every rank); this rank's slice
    of each, already on the device, so the timed step moves no input data."""
    g = torch.Generator().manual_seed(1234)
    if global_batch % world:
        raise SystemExit(f"ddp_worker: global batch {global_batch} is not divisible by "
                         f"{world} processes")
    lb = global_batch // world
    out = []
    for _ in range(n):
        if model == "gpt":
            x, y = char_batch(global_batch, GPT_CFG, g)
        else:
            x = torch.randn(global_batch, MLP_SHAPE["in_features"], generator=g)
            y = torch.randint(0, MLP_SHAPE["num_classes"], (global_batch,), generator=g)
        out.append((x[rank * lb:(rank + 1) * lb].to(dev), y[rank * lb:(rank + 1) * lb].to(dev)))
    return out


def loss_of(model: str, net, x, y):
    if model == "gpt":
        return net(x, y)[1]
    return F.cross_entropy(net(x), y)


class HookState:
    """What the comm hook accumulates over one step."""

    def __init__(self, group, world: int):
        self.group, self.world = group, world
        self.comm_s = 0.0
        self.calls = 0


def timed_allreduce(state: HookState, bucket):
    """DDP's default hook (average: divide, then SUM all-reduce), timed. The
    device is synchronized first so that the timer starts when the bucket's
    gradients exist and does not include waiting for backward; the pjrt
    backend's all_reduce completes (staging to host, gloo, copy back) before
    it returns, so the returned future is already done."""
    buf = bucket.buffer()
    buf.div_(state.world)
    torch_pjrt.device._load_extension().synchronize()
    t0 = time.perf_counter()
    torch.distributed.all_reduce(buf, group=state.group)
    state.comm_s += time.perf_counter() - t0
    state.calls += 1
    fut = torch.futures.Future()
    fut.set_result(buf)
    return fut


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench.ddp_worker")
    ap.add_argument("--model", choices=("gpt", "mlp"), default="gpt")
    ap.add_argument("--mode", choices=("plain", "ddp"), default="ddp")
    ap.add_argument("--global-batch", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=120.0, help="process group timeout, s")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    gb = args.global_batch or DEFAULT_BATCH[args.model]
    ext = torch_pjrt.device._load_extension()

    dist = None
    rank, world = 0, 1
    if args.mode == "ddp":
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        # "pjrt" named: one backend for pjrt tensors (staged) and CPU tensors
        # (gloo), the same transport whichever tensors a collective gets.
        dist.init_process_group("pjrt", timeout=datetime.timedelta(seconds=args.timeout))
        rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("pjrt", torch_pjrt.local_device_index())

    torch.manual_seed(0)
    net = build(args.model).to(dev)
    state = None
    if args.mode == "ddp":
        net = DDP(net)
        state = HookState(None, world)
        net.register_comm_hook(state, timed_allreduce)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    data = batches(args.model, gb, args.warmup + args.steps, rank, world, dev)
    params = sum(p.numel() for p in net.parameters())

    steps = []
    for i, (x, y) in enumerate(data):
        if dist is not None:
            dist.barrier()  # every rank starts the step together (CPU, untimed)
        ext.synchronize()
        m0 = torch_pjrt.metrics()
        if state is not None:
            state.comm_s, state.calls = 0.0, 0
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(args.model, net, x, y)
        loss.backward()
        opt.step()
        ext.synchronize()
        t1 = time.perf_counter()
        m1 = torch_pjrt.metrics()
        if i < args.warmup:
            continue
        steps.append({"step_ms": (t1 - t0) * 1e3,
                      "comm_ms": state.comm_s * 1e3 if state else 0.0,
                      "comm_calls": state.calls if state else 0,
                      "staged_bytes": m1["dist_staged_bytes"] - m0["dist_staged_bytes"],
                      "compiles": m1["compiles"] - m0["compiles"],
                      "fallbacks": m1["fallbacks"] - m0["fallbacks"]})
    final_loss = float(loss.detach().cpu())

    res = {"rank": rank, "steps": steps, "final_loss": final_loss, "model": args.model,
           "mode": args.mode, "world": world, "global_batch": gb, "local_batch": gb // world,
           "warmup": args.warmup, "params": params,
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "torch_threads": torch.get_num_threads()}
    # One file per rank, no collective on Python-owned tensors at the end (see
    # the exit below).
    with open(f"{args.out}.rank{rank}", "w") as f:
        json.dump(res, f)
    if dist is not None:
        dist.destroy_process_group()
        # Skip interpreter teardown: there, dropping the last reference to DDP's
        # reducer destroys the pjrt backend and its inner ProcessGroupGloo with
        # the GIL held, and ~ProcessGroupGloo joins gloo's worker thread, which
        # may itself be waiting for the GIL to free a finished Work's tensor: an
        # occasional hang at exit (seen with all_gather_object here).
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
