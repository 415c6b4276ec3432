"""The torchrun worker of tests/python/test_dist_models.py (issue 14): unchanged
PyTorch distributed code -- DDP (no_sync, find_unused_parameters), FSDP2
fully_shard (fp32 and a bf16 MixedPrecisionPolicy), DTensor, tensor parallelism
and DCP -- on pjrt tensors, each checked against single-process CPU training on
the same global batch (computed in rank 0, in the same process, from the same
init seed). `--device cpu` runs the very same code with gloo on CPU tensors.

  torchrun --standalone --nproc-per-node=2 dist_models_worker.py MODE [--device pjrt|cpu]
      MODE: ddp | ddp_unused | fsdp | fsdp_bf16 | dtensor | tp | dcp | batchnorm | before_init
Rank 0 prints "OK <mode> ..." when every check passed; any failure raises.
"""
import argparse
import copy
import datetime
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from torch_pjrt.models import GPT, GPTConfig, char_batch

CFG = GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=32)
LOSS_RTOL = 1e-5  # the bound for fp32 losses per step
# fp32 parameters after a few AdamW steps (lr 1e-2: they move by ~3e-2). Adam
# divides by the gradient's own scale, so where a gradient is near zero a
# reduction-order difference already moves that element by ~1e-4 with gloo
# on CPU; 5e-4 is under 2% of how far the parameters moved.
PARAM_ATOL = 5e-4


def log(msg: str) -> None:
    if dist.get_rank() == 0:
        print(msg, flush=True)


def init(args) -> torch.device:
    timeout = datetime.timedelta(seconds=args.timeout)
    if args.device == "pjrt":
        import torch_pjrt
        torch_pjrt.config.fallback = "error"  # an op without a device lowering fails
        # No backend: cpu -> gloo, pjrt -> pjrt (as cuda -> nccl).
        dist.init_process_group(args.backend, timeout=timeout)
        return torch.device("pjrt", torch_pjrt.local_device_index())
    dist.init_process_group("gloo", timeout=timeout)
    return torch.device("cpu")


def mesh_of(dev: torch.device):
    from torch.distributed.device_mesh import init_device_mesh
    return init_device_mesh(dev.type, (dist.get_world_size(),))


# --------------------------------------------------------------- data --

def dataset(n: int) -> TensorDataset:
    x, y = char_batch(n, CFG, torch.Generator().manual_seed(1234))
    return TensorDataset(x, y)


def global_batches(ds: TensorDataset, local_b: int, epoch: int = 0):
    """The global batch of every step: rank r's DataLoader(DistributedSampler)
    batch k, concatenated over the ranks, as one process sees the data."""
    world = dist.get_world_size()
    per_rank = []
    for r in range(world):
        s = DistributedSampler(ds, num_replicas=world, rank=r, shuffle=True, seed=0)
        s.set_epoch(epoch)
        per_rank.append(list(s))
    steps = len(per_rank[0]) // local_b
    for k in range(steps):
        idx = [i for r in range(world) for i in per_rank[r][k * local_b:(k + 1) * local_b]]
        yield ds.tensors[0][idx], ds.tensors[1][idx]


def local_loader(ds: TensorDataset, local_b: int, epoch: int = 0) -> DataLoader:
    sampler = DistributedSampler(ds, shuffle=True, seed=0)  # rank and world from the group
    sampler.set_epoch(epoch)
    return DataLoader(ds, batch_size=local_b, sampler=sampler)


def global_mean(values, dev: torch.device) -> list:
    """The mean over ranks of each rank's per-step values (one collective)."""
    t = torch.stack([v.detach().float() for v in values]).to(dev)
    dist.all_reduce(t)  # SUM: gloo has no AVG
    return (t / dist.get_world_size()).cpu().tolist()


# ------------------------------------------------------------- checks --

def check_losses(name: str, got: list, want: list, rtol: float) -> float:
    assert len(got) == len(want), (name, got, want)
    worst = max(abs(g - w) / abs(w) for g, w in zip(got, want))
    assert worst <= rtol, f"{name}: losses differ by {worst:.3g} relative (> {rtol:g}):\n  got  {got}\n  want {want}"
    return worst


def check_params(name: str, got: dict, want: dict, atol: float, rtol: float) -> float:
    assert got.keys() == want.keys(), (name, sorted(got), sorted(want))
    worst = 0.0
    for k in want:
        g, w = got[k].float(), want[k].float()
        assert g.shape == w.shape, (name, k, g.shape, w.shape)
        worst = max(worst, (g - w).abs().max().item())
        torch.testing.assert_close(g, w, atol=atol, rtol=rtol, msg=lambda m, k=k: f"{name}: parameter {k}: {m}")
    return worst


def moved(start: dict, end: dict) -> float:
    return max((end[k].float() - start[k].float()).abs().max().item() for k in start)


def cpu_params(model: nn.Module) -> dict:
    return {k: p.detach().cpu().clone() for k, p in model.named_parameters()}


# ---------------------------------------------------------------- DDP --

class GPTWithBranches(nn.Module):
    """GPT plus a branch used on even steps only and one never used: DDP needs
    find_unused_parameters=True for it."""

    def __init__(self):
        super().__init__()
        self.gpt = GPT(CFG)
        self.aux = nn.Linear(CFG.vocab_size, 1)
        self.never = nn.Linear(CFG.n_embd, CFG.n_embd)

    def forward(self, x, y, use_aux: bool):
        logits, loss = self.gpt(x, y)
        if use_aux:
            loss = loss + 0.1 * self.aux(logits).square().mean()
        return loss


def ddp_step_loss(model, x, y, step: int, unused: bool):
    if unused:
        return model(x, y, step % 2 == 0)
    return model(x, y)[1]


def run_ddp(args, dev: torch.device, unused: bool) -> str:
    from torch.nn.parallel import DistributedDataParallel as DDP
    rank, world = dist.get_rank(), dist.get_world_size()
    accum, local_b = 2, 4
    ds = dataset(args.steps * accum * local_b * world)

    torch.manual_seed(0)
    model = GPTWithBranches() if unused else GPT(CFG)
    ref = copy.deepcopy(model) if rank == 0 else None
    start = cpu_params(model)
    ddp = DDP(model.to(dev), find_unused_parameters=unused)
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-2)
    losses = []
    t0 = time.perf_counter()
    micro = iter(local_loader(ds, local_b))
    for step in range(args.steps):
        opt.zero_grad()
        for a in range(accum):
            x, y = next(micro)
            x, y = x.to(dev), y.to(dev)
            if a < accum - 1:
                with ddp.no_sync():  # accumulate locally, no all-reduce
                    loss = ddp_step_loss(ddp, x, y, step, unused)
                    (loss / accum).backward()
            else:
                loss = ddp_step_loss(ddp, x, y, step, unused)
                (loss / accum).backward()
            losses.append(loss.detach())
        opt.step()
    got = global_mean(losses, dev)
    seconds = time.perf_counter() - t0
    if unused:
        assert model.never.weight.grad is None, "a never-used parameter got a gradient"
    # Every replica holds the same parameters, bit for bit.
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    for r in range(1, world):
        assert torch.equal(gathered[r].cpu(), gathered[0].cpu()), f"rank {r}'s parameters differ from rank 0's"
    if rank != 0:
        return ""

    # The reference: one process, CPU, the whole global batch of each micro-step.
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    want = []
    gb = global_batches(ds, local_b)
    for step in range(args.steps):
        ropt.zero_grad()
        for a in range(accum):
            x, y = next(gb)
            loss = ddp_step_loss(ref, x, y, step, unused)
            (loss / accum).backward()
            want.append(loss.item())
        ropt.step()
    lw = check_losses("ddp", got, want, LOSS_RTOL)
    end = cpu_params(model)
    pw = check_params("ddp", end, cpu_params(ref), atol=PARAM_ATOL, rtol=1e-3)
    return (f"steps={args.steps} accum={accum} loss_rel_err={lw:.2e} param_max_err={pw:.2e} "
            f"param_moved={moved(start, end):.2e} train_s={seconds:.2f}")


# -------------------------------------------------------------- FSDP2 --

def shard_gpt(model: GPT, mesh, mp=None):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = mp or MixedPrecisionPolicy()
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def full_params(model: nn.Module) -> dict:
    """Every parameter unsharded (a collective per DTensor), on CPU."""
    from torch.distributed.tensor import DTensor
    out = {}
    for k, p in model.named_parameters():
        t = p.full_tensor() if isinstance(p, DTensor) else p
        out[k] = t.detach().cpu().clone()
    return out


def check_sharded(model: nn.Module, mesh) -> None:
    from torch.distributed.tensor import DTensor, Shard
    world = mesh.size()
    for k, p in model.named_parameters():
        assert isinstance(p, DTensor), f"{k} is not sharded"
        assert p.placements == (Shard(0),), (k, p.placements)
        assert p.to_local().shape[0] <= math.ceil(p.shape[0] / world), (k, p.to_local().shape, p.shape)
        assert p.to_local().device.type == mesh.device_type, (k, p.to_local().device)


def bf16_reference(ref: GPT, batches, world: int, lr: float, momentum: float) -> list:
    """FSDP2's MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32) done by
    hand in one process on CPU: per rank, a bf16 copy of the fp32 parameters
    runs forward and backward on that rank's shard of the global batch; the
    bf16 gradients are cast to fp32 and averaged over the ranks; SGD updates
    the fp32 parameters. Only the op numerics differ from the device run."""
    opt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=momentum)
    losses = []
    for x, y in batches:
        grads = {k: torch.zeros_like(p) for k, p in ref.named_parameters()}
        step_loss = 0.0
        for xs, ys in zip(x.chunk(world), y.chunk(world)):
            low = copy.deepcopy(ref).to(torch.bfloat16)
            _, loss = low(xs, ys)
            loss.backward()
            step_loss += loss.float().item() / world
            for k, p in low.named_parameters():
                grads[k] += p.grad.float() / world
        for k, p in ref.named_parameters():
            p.grad = grads[k]
        opt.step()
        opt.zero_grad()
        losses.append(step_loss)
    return losses


def run_fsdp(args, dev: torch.device, bf16: bool) -> str:
    from torch.distributed.fsdp import MixedPrecisionPolicy
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = mesh_of(dev)
    local_b = 4
    accum = 1 if bf16 else 2  # fp32 also accumulates with set_requires_gradient_sync(False)
    ds = dataset(args.steps * accum * local_b * world)

    torch.manual_seed(0)
    model = GPT(CFG)
    ref = copy.deepcopy(model) if rank == 0 else None
    start = cpu_params(model)
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if bf16 else MixedPrecisionPolicy())
    shard_gpt(model.to(dev), mesh, mp)
    check_sharded(model, mesh)
    seen = []
    model.blocks[0].fc.register_forward_pre_hook(
        lambda m, inp: seen.append((inp[0].dtype, m.weight.dtype)))
    # bf16: SGD, whose update is proportional to the gradient, so bf16 rounding
    # moves the parameters proportionally; Adam's sign-like update would turn
    # the rounding of near-zero gradients into whole lr-sized steps.
    lr, momentum = 0.5, 0.9
    opt = (torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum) if bf16
           else torch.optim.AdamW(model.parameters(), lr=1e-2))
    losses = []
    t0 = time.perf_counter()
    micro = iter(local_loader(ds, local_b))
    for step in range(args.steps):
        for a in range(accum):
            x, y = next(micro)
            model.set_requires_gradient_sync(a == accum - 1)
            _, loss = model(x.to(dev), y.to(dev))
            (loss / accum).backward()
            losses.append(loss.detach())
        opt.step()
        opt.zero_grad()
    got = global_mean(losses, dev)
    seconds = time.perf_counter() - t0
    want_dtype = torch.bfloat16 if bf16 else torch.float32
    assert seen and all(d == (want_dtype, want_dtype) for d in seen), seen
    end = full_params(model)
    check_sharded(model, mesh)
    if rank != 0:
        return ""

    if bf16:
        gbs = list(global_batches(ds, local_b))
        fp32 = copy.deepcopy(ref)
        want = bf16_reference(ref, gbs, world, lr, momentum)
        # The same policy by hand: bf16 losses agree to about one bf16 ulp
        # (2^-7 relative), the fp32 parameters to bf16 rounding of the updates.
        lw = check_losses("fsdp_bf16", got, want, 1e-2)
        pw = check_params("fsdp_bf16", end, cpu_params(ref), atol=2e-3, rtol=2e-2)
        # And plain fp32 training: bf16 is a few ulps away from it.
        fopt = torch.optim.SGD(fp32.parameters(), lr=lr, momentum=momentum)
        want32 = []
        for x, y in gbs:
            _, loss = fp32(x, y)
            loss.backward()
            fopt.step()
            fopt.zero_grad()
            want32.append(loss.item())
        lw32 = check_losses("fsdp_bf16 vs fp32", got, want32, 3e-2)
        pw32 = check_params("fsdp_bf16 vs fp32", end, cpu_params(fp32), atol=1e-2, rtol=5e-2)
        return (f"steps={args.steps} loss_rel_err={lw:.2e} param_max_err={pw:.2e} "
                f"vs_fp32: loss_rel_err={lw32:.2e} param_max_err={pw32:.2e} "
                f"param_moved={moved(start, end):.2e} train_s={seconds:.2f}")

    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    want = []
    gb = global_batches(ds, local_b)
    for step in range(args.steps):
        for a in range(accum):
            x, y = next(gb)
            _, loss = ref(x, y)
            (loss / accum).backward()
            want.append(loss.item())
        ropt.step()
        ropt.zero_grad()
    lw = check_losses("fsdp", got, want, LOSS_RTOL)
    pw = check_params("fsdp", end, cpu_params(ref), atol=PARAM_ATOL, rtol=1e-3)
    return (f"steps={args.steps} accum={accum} loss_rel_err={lw:.2e} param_max_err={pw:.2e} "
            f"param_moved={moved(start, end):.2e} train_s={seconds:.2f}")


# ------------------------------------------------------------ DTensor --

def run_dtensor(args, dev: torch.device) -> str:
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = mesh_of(dev)
    g = torch.Generator().manual_seed(7)
    full = torch.randn(8, 6, generator=g)
    uneven = torch.randn(7, 5, generator=g)
    w = torch.randn(6, 3, generator=g)
    checks = 0

    def shard(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """This rank's Shard(dim) piece: torch.chunk's, empty past the last chunk."""
        pieces = t.chunk(world, dim)
        return pieces[rank] if rank < len(pieces) else t.narrow(dim, t.size(dim), 0)

    def same(t: torch.Tensor, want: torch.Tensor, what: str, exact: bool = True) -> None:
        nonlocal checks
        assert t.device.type == dev.type, (what, t.device)
        t = t.cpu()
        if exact:
            assert t.shape == want.shape and torch.equal(t, want), f"rank {rank}: {what}:\n{t}\nwant\n{want}"
        else:
            torch.testing.assert_close(t, want, msg=lambda m: f"rank {rank}: {what}: {m}")
        checks += 1

    # Rank 0's tensor is the source (src_data_rank=0): the other ranks hold garbage.
    src = full.to(dev) if rank == 0 else torch.full_like(full, float("nan")).to(dev)
    d = distribute_tensor(src, mesh, [Shard(0)])
    same(d.to_local(), shard(full), "distribute_tensor Shard(0)")
    r = d.redistribute(mesh, [Replicate()])  # all_gather
    same(r.to_local(), full, "Shard(0) -> Replicate")
    s1 = r.redistribute(mesh, [Shard(1)])  # local chunk
    same(s1.to_local(), shard(full, 1), "Replicate -> Shard(1)")
    s0 = s1.redistribute(mesh, [Shard(0)])  # all_to_all
    same(s0.to_local(), shard(full), "Shard(1) -> Shard(0)")
    same(s0.full_tensor(), full, "full_tensor")
    rep = distribute_tensor(full.to(dev), mesh, [Replicate()])  # broadcast from rank 0
    same(rep.to_local(), full, "distribute_tensor Replicate")
    same(rep.redistribute(mesh, [Shard(0)]).to_local(), shard(full), "Replicate -> Shard(0)")

    u = distribute_tensor(uneven.to(dev), mesh, [Shard(0)])  # 7 rows: padded collectives
    same(u.to_local(), shard(uneven), "uneven Shard(0)")
    same(u.full_tensor(), uneven, "uneven full_tensor")
    same(u.redistribute(mesh, [Shard(1)]).to_local(), shard(uneven, 1), "uneven Shard(0) -> Shard(1)")

    # Partial: each rank holds a summand.
    part = full * (rank + 1)
    p = DTensor.from_local(part.to(dev), mesh, [Partial()])
    total = full * sum(range(1, world + 1))
    same(p.redistribute(mesh, [Replicate()]).to_local(), total, "Partial -> Replicate", exact=False)
    p = DTensor.from_local(part.to(dev), mesh, [Partial()])
    same(p.redistribute(mesh, [Shard(0)]).to_local(), shard(total), "Partial -> Shard(0)", exact=False)

    # Ops on DTensors: sharded matmul, a reduction to Partial, autograd.
    wd = distribute_tensor(w.to(dev), mesh, [Replicate()])
    same((d @ wd).full_tensor(), full @ w, "Shard(0) @ Replicate", exact=False)
    same(d.sum().full_tensor(), full.sum(), "sum of Shard(0)", exact=False)
    leaf = distribute_tensor(full.to(dev), mesh, [Shard(0)]).requires_grad_()
    (leaf * leaf).sum().backward()
    same(leaf.grad.full_tensor(), 2 * full, "grad through DTensor", exact=False)
    return f"checks={checks} (per rank)"


# ---------------------------------------------------- tensor parallel --

class TPMLP(nn.Module):
    def __init__(self, d: int = 16, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def run_tp(args, dev: torch.device) -> str:
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    rank = dist.get_rank()
    mesh = mesh_of(dev)
    torch.manual_seed(0)
    model = TPMLP()
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(4, 16, generator=g) for _ in range(args.steps)]
    proj = torch.randn(4, 16, generator=g)  # a loss that weighs every output

    tp = parallelize_module(model.to(dev), mesh, {"fc1": ColwiseParallel(), "fc2": RowwiseParallel()})
    assert isinstance(tp.fc1.weight, DTensor) and tp.fc1.weight.placements == (Shard(0),)
    assert isinstance(tp.fc2.weight, DTensor) and tp.fc2.weight.placements == (Shard(1),)
    assert tp.fc1.weight.to_local().shape == (64 // mesh.size(), 16), tp.fc1.weight.to_local().shape
    opt = torch.optim.SGD(tp.parameters(), lr=0.1)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)
    worst = 0.0
    for step, x in enumerate(xs):
        xd = x.to(dev, copy=True).requires_grad_()
        out = tp(xd)
        assert not isinstance(out, DTensor) and out.device.type == dev.type
        (out * proj.to(dev)).sum().backward()
        xr = x.clone().requires_grad_()
        rout = ref(xr)
        (rout * proj).sum().backward()
        pairs = [("output", out, rout), ("input grad", xd.grad, xr.grad)]
        for k, p in tp.named_parameters():
            pairs.append((f"{k}.grad", p.grad.full_tensor(), dict(ref.named_parameters())[k].grad))
        for what, a, b in pairs:
            a = a.detach().cpu()
            worst = max(worst, (a - b).abs().max().item())
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4,
                                       msg=lambda m, what=what: f"rank {rank} step {step}: {what}: {m}")
        opt.step()
        ropt.step()
        opt.zero_grad()
        ropt.zero_grad()
    return f"steps={len(xs)} max_err={worst:.2e}"


# ---------------------------------------------------------------- DCP --

def run_dcp(args, dev: torch.device) -> str:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.tensor import DTensor
    assert args.dir, "dcp needs --dir (a directory every rank sees)"
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = mesh_of(dev)
    local_b = 4
    ds = dataset(2 * local_b * world)
    batches = [(x.to(dev), y.to(dev)) for x, y in local_loader(ds, local_b)]

    def make(seed: int):
        torch.manual_seed(seed)
        m = shard_gpt(GPT(CFG).to(dev), mesh)
        return m, torch.optim.AdamW(m.parameters(), lr=1e-2)

    def step(m, o, batch) -> float:
        _, loss = m(*batch)
        loss.backward()
        o.step()
        o.zero_grad()
        return global_mean([loss], dev)[0]

    model, opt = make(0)
    step(model, opt, batches[0])  # parameters off their init, optimizer state present
    msd, osd = get_state_dict(model, opt)
    assert all(isinstance(v, DTensor) for v in msd.values()), "the model state dict is not sharded"
    saved = {k: v.full_tensor().cpu().clone() for k, v in msd.items()}
    saved_m = {k: v.full_tensor().cpu().clone() for k, v in osd["state"]["blocks.0.fc.weight"].items()
               if isinstance(v, DTensor)}
    t0 = time.perf_counter()
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=args.dir)
    save_s = time.perf_counter() - t0

    fresh, fopt = make(1)  # other init: the load must overwrite every value
    step(fresh, fopt, batches[1])
    fm, fo = get_state_dict(fresh, fopt)
    assert any(not torch.equal(fm[k].full_tensor().cpu(), saved[k]) for k in saved), "fresh model equals the saved one"
    t0 = time.perf_counter()
    state = {"model": fm, "optim": fo}
    dcp.load(state, checkpoint_id=args.dir)
    load_s = time.perf_counter() - t0
    set_state_dict(fresh, fopt, model_state_dict=state["model"], optim_state_dict=state["optim"])

    loaded = {k: v.full_tensor().cpu() for k, v in get_state_dict(fresh, fopt)[0].items()}
    assert loaded.keys() == saved.keys()
    for k in saved:
        assert torch.equal(loaded[k], saved[k]), f"parameter {k} differs after load"
    lo = get_state_dict(fresh, fopt)[1]["state"]["blocks.0.fc.weight"]
    for k, v in saved_m.items():
        assert torch.equal(lo[k].full_tensor().cpu(), v), f"optimizer state {k} differs after load"
    # The loaded model and optimizer carry on exactly as the saved ones.
    a, b = step(model, opt, batches[1]), step(fresh, fopt, batches[1])
    assert a == b, (a, b)
    files = sorted(os.listdir(args.dir))
    assert ".metadata" in files, files
    return f"tensors={len(saved)} files={len(files)} save_s={save_s:.2f} load_s={load_s:.2f}"


# --------------------------------------------------------- BatchNorm --

class BNNet(nn.Module):
    """A small CNN with BatchNorm2d and BatchNorm1d (running statistics too)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8 * 2 * 2, 16)
        self.bn3 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.bn3(self.fc1(x.flatten(1)))))


def run_batchnorm(args, dev: torch.device) -> str:
    """DDP of a BatchNorm CNN two ways: plain BatchNorm (statistics per rank;
    broadcast_buffers=True: every forward starts from rank 0's running
    statistics) and nn.SyncBatchNorm.convert_sync_batchnorm (statistics over
    the global batch: batch_norm_stats, batch_norm_gather_stats_with_counts,
    batch_norm_elemt and the backward pair, which CPU has no kernels for).
    Each against one CPU process: SyncBatchNorm as BatchNorm on the global
    batch; plain BatchNorm as the mean of per-rank losses with the running
    statistics of rank 0's shard. Parameters and buffers are compared."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    rank, world = dist.get_rank(), dist.get_world_size()
    local_b = 4
    g = torch.Generator().manual_seed(5)
    n = args.steps * local_b * world
    ds = TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g))
    out = []
    for sync in (False, True):
        torch.manual_seed(0)
        model = BNNet()
        ref = copy.deepcopy(model) if rank == 0 else None
        if sync:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = DDP(model.to(dev))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for x, y in local_loader(ds, local_b):
            loss = F.cross_entropy(ddp(x.to(dev)), y.to(dev))
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.detach())
        got = global_mean(losses, dev)
        end = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if rank != 0:
            continue
        ropt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
        bns = [m for m in ref.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        want = []
        for x, y in global_batches(ds, local_b):
            if sync:
                loss = F.cross_entropy(ref(x), y)
                loss.backward()
                want.append(loss.item())
            else:
                saved = [copy.deepcopy(b.state_dict()) for b in bns]
                total = 0.0
                for r in reversed(range(world)):  # rank 0's shard last: its statistics stay
                    if r == 0:
                        for b, sd in zip(bns, saved):
                            b.load_state_dict(sd)
                    sl = slice(r * local_b, (r + 1) * local_b)
                    loss = F.cross_entropy(ref(x[sl]), y[sl]) / world
                    loss.backward()
                    total += loss.item()
                want.append(total)
            ropt.step()
            ropt.zero_grad()
        name = "syncbn" if sync else "batchnorm"
        lw = check_losses(name, got, want, LOSS_RTOL)
        pw = check_params(name, end, dict(ref.state_dict()), atol=PARAM_ATOL, rtol=1e-3)
        out.append(f"{name}: loss_rel_err={lw:.2e} state_max_err={pw:.2e}")
    return " ".join(out)


# ------------------------------------------------- device before init --

def run_before_init(args) -> str:
    """A script that moves its model to torch.device("pjrt") (no index) before
    init_process_group and its batches to "pjrt" after: the process already
    works on pjrt:0, and the process group must not switch its current device
    to pjrt:LOCAL_RANK under it. DDP, then FSDP2, against one CPU process."""
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP
    import torch_pjrt
    torch_pjrt.config.fallback = "error"
    dev = torch.device("pjrt")
    torch.manual_seed(0)
    models = {"ddp": nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))}
    models["fsdp"] = copy.deepcopy(models["ddp"])
    ref = copy.deepcopy(models["ddp"])
    for m in models.values():
        m.to(dev)
    dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=args.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    assert torch.pjrt.current_device() == 0, torch.pjrt.current_device()
    g = torch.Generator().manual_seed(3)
    xs, ys = torch.randn(args.steps, 4 * world, 6, generator=g), torch.randint(0, 3, (args.steps, 4 * world), generator=g)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.3)
    want = []
    for s in range(args.steps):
        loss = F.cross_entropy(ref(xs[s]), ys[s])
        loss.backward()
        ropt.step()
        ropt.zero_grad()
        want.append(loss.item())
    out = []
    for name, model in models.items():
        if name == "ddp":
            wrapped = DDP(model)
        else:
            fully_shard(model)
            wrapped = model
        opt = torch.optim.SGD(wrapped.parameters(), lr=0.3)
        losses = []
        for s in range(args.steps):
            mine = slice(rank * 4, (rank + 1) * 4)
            loss = F.cross_entropy(wrapped(xs[s, mine].to(dev)), ys[s, mine].to(dev))
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.detach())
        got = global_mean(losses, dev)
        end = full_params(model)
        if rank == 0:
            lw = check_losses(name, got, want, LOSS_RTOL)
            pw = check_params(name, end, cpu_params(ref), atol=PARAM_ATOL, rtol=1e-3)
            out.append(f"{name}: loss_rel_err={lw:.2e} param_max_err={pw:.2e}")
    return " ".join(out)


MODES = {
    "ddp": lambda a, d: run_ddp(a, d, unused=False),
    "ddp_unused": lambda a, d: run_ddp(a, d, unused=True),
    "fsdp": lambda a, d: run_fsdp(a, d, bf16=False),
    "fsdp_bf16": lambda a, d: run_fsdp(a, d, bf16=True),
    "dtensor": run_dtensor,
    "tp": run_tp,
    "dcp": run_dcp,
    "batchnorm": run_batchnorm,
    "before_init": None,  # run_before_init: it calls init_process_group itself
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--device", choices=["pjrt", "cpu"], default="pjrt")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--dir", default="")
    ap.add_argument("--backend", default=None, help="init_process_group's backend (default: none given)")
    ap.add_argument("--timeout", type=float, default=60.0, help="collective timeout, seconds")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.mode == "before_init":
        dev = torch.device("pjrt", 0)
    else:
        dev = init(args)
    try:
        summary = run_before_init(args) if args.mode == "before_init" else MODES[args.mode](args, dev)
        if args.device == "pjrt":
            import torch_pjrt
            m = torch_pjrt.metrics()
            assert m["fallbacks"] == 0, f"{m['fallbacks']} op(s) ran on the CPU"
            # The collectives on pjrt tensors went through the pjrt backend.
            assert m["dist_staged_bytes"] > 0, m["dist_staged_bytes"]
            summary += f" staged_bytes={m['dist_staged_bytes']}"
        dist.barrier()
        log(f"OK {args.mode} device={dev} world={dist.get_world_size()} {summary} "
            f"total_s={time.perf_counter() - t0:.1f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
