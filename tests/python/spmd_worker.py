"""Worker for test_spmd.py, run with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=N:
sharded pjrt tensors over a device mesh (torch_pjrt.spmd), their eager ops as
one-op SPMD programs, and GPT training under data, FSDP-style and 2-D
(data x Megatron model) sharding against the same training on the CPU.

usage: spmd_worker.py ops | models DEVICES | train MODE DEVICES [compiled]"""
import copy
import io
import sys

import torch
import torch.nn.functional as F

import torch_pjrt
import torch_pjrt.spmd as spmd
from torch_pjrt.models import GPT, GPT_SHARDING_RULES, GPTConfig, char_batch


def close(name, got, want, rtol=1e-5, atol=1e-6):
    got = got.full_tensor() if isinstance(got, spmd.ShardedTensor) else got.cpu()
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=name)
    print("ok", name, flush=True)


def raises(name, exc, pattern, fn):
    try:
        fn()
    except exc as e:
        assert pattern in str(e), (name, str(e))
        print("ok", name, "->", str(e).splitlines()[0][:140], flush=True)
        return
    raise AssertionError(f"{name}: no {exc.__name__}")


def ops() -> None:
    mesh = spmd.Mesh((2, 4), ("data", "model"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=g)         # dim 1 uneven over 4 (blocks of 3)
    y = torch.randn(10, 5, generator=g)
    xs = spmd.shard(x.to("pjrt"), mesh, ("data", "model"))
    ys = spmd.shard(y, mesh, ("model", None))
    assert spmd.sharding_of(xs).spec() == ("data", "model")
    pieces = spmd.shards(xs)
    assert len(pieces) == 8 and tuple(pieces[0].shape) == (3, 3), pieces[0].shape
    assert [p.device.index for p in pieces] == list(range(8))
    torch.testing.assert_close(pieces[5].cpu(), x[3:6, 3:6])   # data 1, model 1
    torch.testing.assert_close(pieces[3].cpu()[:, :1], x[0:3, 9:10])  # the padded block
    close("elementwise", xs * 2 + 1, x * 2 + 1)
    close("matmul over the sharded contraction dim", xs @ ys, x @ y, rtol=1e-5, atol=1e-5)
    close("sum over the uneven sharded dim", xs.sum(1), x.sum(1), atol=1e-5)
    close("amax over the uneven sharded dim", xs.amax(1), x.amax(1))
    close("mean of all", xs.mean(), x.mean())
    close("softmax", torch.softmax(xs, 1), torch.softmax(x, 1))
    close("slice and transpose", xs[1:4].t(), x[1:4].t())
    close("plain tensor operand (replicated)", xs + torch.arange(10.0, device="pjrt"),
          x + torch.arange(10.0))
    assert abs(xs.sum().item() - x.sum().item()) < 1e-4
    assert "ShardedTensor(tensor(" in repr(xs) and "data" in repr(xs)
    # in place: aliases see it; views recompute after their base changed
    a = xs.clone()
    alias = a.detach()
    view = a.t()
    a.add_(1.0)
    close("in-place add", a, x + 1)
    close("alias sees in-place", alias, x + 1)
    close("view recomputed after its base changed", view, (x + 1).t())
    raises("in-place on a view", NotImplementedError, "view of a sharded tensor",
           lambda: view.mul_(2))
    b = xs.clone()
    b.copy_(torch.ones(6, 10))
    close("copy_ from the host", b, torch.ones(6, 10))
    # resharding on the devices and in place
    r = spmd.shard(xs, mesh, (None, "data"))
    assert spmd.sharding_of(r).spec() == (None, "data")
    close("reshard", r, x)
    spmd.mark_sharding(r, mesh, ())
    assert spmd.sharding_of(r).tiles == 1
    close("mark_sharding to replicated", r, x)
    # autograd through sharded ops
    w = spmd.shard(y, mesh, ("model", None)).requires_grad_()
    loss = (xs @ w).square().mean()
    loss.backward()
    wc = y.clone().requires_grad_()
    (x @ wc).square().mean().backward()
    close("gradient", w.grad, wc.grad, atol=1e-5)
    assert spmd.sharding_of(w.grad) == spmd.sharding_of(w), (spmd.sharding_of(w.grad), spmd.sharding_of(w))
    # a checkpoint of sharded tensors holds whole CPU tensors
    buf = io.BytesIO()
    torch.save({"x": xs}, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    assert type(loaded["x"]) is torch.Tensor and torch.equal(loaded["x"], x)
    print("ok checkpoint", flush=True)
    # torch.compile over sharded tensors: one SPMD program, with a constraint
    # on an intermediate
    def fn(a, b):
        h = spmd.mark_sharding(a @ b, mesh, (None, "model"))
        return h.relu().sum(1)

    f = torch.compile(fn, backend="pjrt")
    torch_pjrt.metrics_reset()
    close("torch.compile over sharded tensors", f(xs, ys), (x @ y).relu().sum(1), atol=1e-5)
    assert torch_pjrt.metrics()["executions"] == 1, torch_pjrt.metrics()
    # errors name the tensor, the spec and what was expected
    raises("unknown axis", ValueError, "names axis 'batch'",
           lambda: spmd.shard(x, mesh, ("batch", None), name="x"))
    raises("spec longer than the rank", ValueError, "has 3 entries but the tensor has rank 2",
           lambda: spmd.shard(x, mesh, ("data", None, None)))
    raises("axis used twice", ValueError, "uses axis 'data' for dims 0 and 1",
           lambda: spmd.shard(x, mesh, ("data", "data")))
    raises("mesh too large", ValueError, "needs 16 devices but only 8",
           lambda: spmd.Mesh((4, 4), ("a", "b")))
    raises("two meshes", RuntimeError, "two meshes",
           lambda: xs + spmd.shard(x, spmd.Mesh((8,), ("d",)), ("d",)))
    assert torch_pjrt.metrics()["fallbacks"] == 0, torch_pjrt.metrics()
    print("ok ops", flush=True)


class LSTMNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(12, 16, batch_first=True)
        self.gru = torch.nn.GRU(16, 16)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        h, _ = self.rnn(x)
        h, _ = self.gru(h.transpose(0, 1))
        return self.head(h[-1])


def models(n: int) -> None:
    """Models nobody tuned for, data-parallel and FSDP-style, eager and
    compiled: an MLP, a CNN with BatchNorm, a Transformer encoder, LSTM+GRU."""
    from torch_pjrt.models import CNN, MLP
    torch_pjrt.config.fallback = "error"
    mesh = spmd.Mesh((n,), ("data",))
    nn = torch.nn

    def encoder():
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        return nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                             nn.Flatten(), nn.Linear(32 * 6, 10))

    cases = [("mlp", MLP, (8, 32), "fsdp", True), ("mlp foreach+clip", MLP, (8, 32), "fsdp", False),
             ("cnn", CNN, (8, 3, 8, 8), "fsdp", False),
             ("cnn", CNN, (8, 3, 8, 8), "dp", True),
             ("encoder", encoder, (8, 6, 32), "fsdp", True),
             ("lstm", LSTMNet, (8, 5, 12), "dp", False)]
    for name, make, shape, mode, compiled in cases:
        torch.manual_seed(0)
        ref = make()
        model = spmd.shard_module(copy.deepcopy(ref).to("pjrt"), mesh, RULES[mode])
        clip = "clip" in name  # foreach AdamW and grad clipping (in place on the grads)
        if clip:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-4, foreach=True)
            ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, eps=1e-4, foreach=True)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)

        def step(m, x, y):
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            return loss

        run = torch.compile(step, backend="pjrt") if compiled else step
        g = torch.Generator().manual_seed(1)
        for _ in range(2):
            x = torch.randn(*shape, generator=g)
            y = torch.randint(0, 10, (shape[0],), generator=g)
            want = step(ref, x, y).item()
            if clip:
                torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
            ref_opt.step()
            ref_opt.zero_grad()
            got = run(model, spmd.shard(x, mesh, ("data",)), spmd.shard(y, mesh, ("data",)))
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            opt.zero_grad()
            assert abs(got.item() - want) <= 1e-5 * abs(want), (name, got.item(), want)
        for (pname, p), q in zip(model.named_parameters(), ref.parameters()):
            close(f"{name} {mode} {pname}", p, q.detach(), rtol=1e-4, atol=1e-5)
        print(f"ok model {name} {mode}{' compiled' if compiled else ''}", flush=True)
    assert torch_pjrt.metrics()["fallbacks"] == 0, torch_pjrt.metrics()
    print("ok models", flush=True)


RULES = GPT_SHARDING_RULES  # dp, fsdp and 2d (Megatron) layouts (torch_pjrt.models)


def _step(model, x, y):
    _, loss = model(x, y)
    loss.backward()
    return loss


def train(mode: str, n: int, steps: int = 3, compiled: bool = False) -> None:
    """GPT training on a mesh of n devices equals it on the CPU; compiled:
    forward and backward are one SPMD program each (torch.compile)."""
    torch_pjrt.config.fallback = "error"
    mesh = spmd.Mesh((2, n // 2), ("data", "model")) if mode == "2d" else \
        spmd.Mesh((n,), ("data",))
    # fsdp: a vocabulary of 60 over 8 devices is uneven (blocks of 8, padded)
    cfg = GPTConfig(vocab_size=60 if mode == "fsdp" else 64, block_size=16, n_layer=2,
                    n_head=4, n_embd=32)
    torch.manual_seed(0)
    ref = GPT(cfg)
    model = copy.deepcopy(ref).to("pjrt")
    replicated = sum(p.numel() * p.element_size() for p in model.parameters())
    spmd.shard_module(model, mesh, RULES[mode])
    per_device = spmd.device_bytes(model)
    print(f"param bytes per device {per_device} (replicated {replicated})", flush=True)
    torch.pjrt.synchronize()
    on_device = [torch.pjrt.memory_allocated(d) for d in range(n)]
    print(f"allocated per device {on_device}", flush=True)
    # the memory stats see the pieces: device 1 holds nothing else yet
    assert on_device[1] == per_device[1], (on_device, per_device)
    if mode == "fsdp":
        assert all(b * n <= replicated * 1.05 for b in per_device), (per_device, replicated)
        assert all(b * n >= replicated for b in per_device), (per_device, replicated)
    # eps well above the rounding noise of gradients that are 0 in exact
    # arithmetic (the key bias), which Adam would otherwise blow up to lr-sized steps
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-4)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, eps=1e-4)
    step_fn = torch.compile(_step, backend="pjrt") if compiled else _step
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        idx, tgt = char_batch(2 * n if mode != "2d" else 4, cfg, generator=g)
        _, ref_loss = ref(idx, tgt)
        ref_loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
        xi = spmd.shard(idx.to("pjrt"), mesh, ("data", None))
        xt = spmd.shard(tgt.to("pjrt"), mesh, ("data", None))
        torch_pjrt.metrics_reset()
        loss = step_fn(model, xi, xt)
        launches = torch_pjrt.metrics()["executions"]
        opt.step()
        opt.zero_grad()
        compiles = torch_pjrt.metrics()["compiles"]
        if step >= 1:  # eager or compiled, the optimizer's step sizes included
            assert compiles == 0, (step, compiles)
        got, want = loss.item(), ref_loss.item()
        print(f"step {step} loss {got:.7f} cpu {want:.7f} launches {launches}", flush=True)
        if compiled:  # the forward and backward programs, and the loss's ones_like
            assert launches <= 3, launches
        assert abs(got - want) <= 1e-5 * abs(want), (step, got, want)
        if step == 0 and mode == "fsdp":  # AdamW state is sharded like its parameter
            st = opt.state[model.wte.weight]
            assert spmd.sharding_of(st["exp_avg"]) == spmd.sharding_of(model.wte.weight)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        close(f"param {name}", p, q.detach(), rtol=1e-4, atol=1e-5)
    # a sharded checkpoint: whole CPU tensors, loaded into a freshly sharded model
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    assert all(type(v) is torch.Tensor and v.device.type == "cpu" for v in sd.values())
    fresh = spmd.shard_module(GPT(cfg).to("pjrt"), mesh, RULES[mode])
    fresh.load_state_dict(sd)
    for (name, p), q in zip(fresh.named_parameters(), ref.parameters()):
        assert spmd.sharding_of(p) is not None, name
        close(f"loaded {name}", p, q.detach(), rtol=1e-4, atol=1e-5)
    if mode == "dp":  # a resharding between steps: the same model, now FSDP-style
        for p in model.parameters():
            spmd.mark_sharding(p, mesh, ("data",))
        idx, tgt = char_batch(2 * n, cfg, generator=g)
        _, ref_loss = ref(idx, tgt)
        _, loss = model(spmd.shard(idx, mesh, ("data",)), spmd.shard(tgt, mesh, ("data",)))
        assert abs(loss.item() - ref_loss.item()) <= 1e-5 * abs(ref_loss.item())
        print("ok reshard between steps", flush=True)
    assert torch_pjrt.metrics()["fallbacks"] == 0, torch_pjrt.metrics()
    print(f"ok train {mode} {n}{' compiled' if compiled else ''}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "ops":
        ops()
    elif sys.argv[1] == "models":
        models(int(sys.argv[2]))
    else:
        train(sys.argv[2], int(sys.argv[3]), compiled=len(sys.argv) > 4)
