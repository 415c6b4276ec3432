"""Thread safety: 8 threads compile and run models at once (forward and
backward, batch sizes that change, so Dynamo and this backend recompile while
other threads trace and run), under torch.compile(backend="pjrt") on CPU
tensors, on the eager "pjrt" device, and compiled over pjrt tensors. Every
result is compared with CPU eager. A backend that keeps per-call state in
process globals fails here (it once did: "Expected current_level > 0, got 0")."""
import copy
import threading
import traceback

import pytest
import torch
import torch.nn as nn

import torch_pjrt
from torch_pjrt import config

N_THREADS = 8
DEV = "pjrt"


@pytest.fixture(autouse=True)
def _strict():
    old = config.fallback
    config.fallback = "error"
    torch._dynamo.reset()
    before = torch_pjrt.metrics()["fallbacks"]
    yield
    config.fallback = old
    torch._dynamo.reset()
    assert torch_pjrt.metrics()["fallbacks"] == before, "an op fell back to the CPU"


def _mlp(width):
    return nn.Sequential(nn.Linear(8, width), nn.GELU(), nn.Linear(width, 4))


class _Block(nn.Module):
    """Layer norm, a matmul chain and a softmax: more ops than the MLP."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        h = self.proj(self.norm(x))
        return self.out(torch.softmax(h, dim=-1) * h)


def _model(tid):
    return _Block() if tid % 2 else _mlp(8 + 4 * tid)


def _close(got, want):
    torch.testing.assert_close(got.detach().cpu(), want.detach(), rtol=1e-4, atol=1e-5)


def _step(run, params, x, target):
    """Loss and its gradients w.r.t. `params` (autograd.grad: nothing is
    accumulated into .grad, so threads may share a model)."""
    out = run(x)
    loss = nn.functional.mse_loss(out, target)
    return out, torch.autograd.grad(loss, params)


def _check_step(run, params, ref, x, target):
    out, grads = _step(run, params, x, target)
    want_out, want_grads = _step(ref, list(ref.parameters()), x.cpu(), target.cpu())
    _close(out, want_out)
    for g, w in zip(grads, want_grads):
        _close(g, w)


def _inputs(gen, b, device="cpu"):
    x = torch.randn(b, 8, generator=gen)
    t = torch.randn(b, 4, generator=gen)
    return x.to(device), t.to(device)


def _batch(i, tid):
    return 1 + (3 * i + tid) % 7


def _worker(tid, iters, shared, errors):
    """One thread's schedule: its own model compiled on CPU tensors, the
    model shared by all threads, and (every other thread) the eager device
    or a compile over pjrt tensors."""
    try:
        # Past the recompile limit Dynamo would quietly run a frame eagerly on
        # the CPU, and the comparison would no longer test this backend. The
        # 9 compiled modules share one code object (Dynamo's wrapper around
        # nn.Module calls), hence the higher limit. Dynamo's config is
        # per thread (a ContextVar), so it is set here, in the worker.
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        torch._dynamo.config.recompile_limit = 64
        gen = torch.Generator().manual_seed(tid)
        ref, own = shared["models"][tid]
        own_fn = torch.compile(own, backend="pjrt")
        dev = copy.deepcopy(ref).to(DEV)
        dev_fn = torch.compile(dev, backend="pjrt") if tid % 4 == 3 else dev
        for i in range(iters):
            b = _batch(i, tid)
            x, t = _inputs(gen, b)
            _check_step(own_fn, list(own.parameters()), ref, x, t)
            _check_step(shared["fn"], list(shared["model"].parameters()), shared["ref"], x, t)
            if tid % 2:
                xd, td = _inputs(gen, b, DEV)
                _check_step(dev_fn, list(dev.parameters()), ref, xd, td)
    except BaseException:  # noqa: BLE001 - reported by the main thread
        errors.append(f"thread {tid}:\n{traceback.format_exc()}")


def _stress(iters):
    torch.manual_seed(0)
    models = []
    for tid in range(N_THREADS):
        ref = _model(tid)
        models.append((ref, copy.deepcopy(ref)))
    shared_ref = _mlp(16)
    shared_model = copy.deepcopy(shared_ref)
    shared = {"models": models, "ref": shared_ref, "model": shared_model,
              "fn": torch.compile(shared_model, backend="pjrt")}
    errors = []
    threads = [threading.Thread(target=_worker, args=(tid, iters, shared, errors))
               for tid in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, f"{len(errors)} of {N_THREADS} threads failed:\n" + "\n".join(errors)


def test_threads_compile_and_device():
    _stress(iters=8)


@pytest.mark.full
def test_threads_compile_and_device_long():
    _stress(iters=200)
