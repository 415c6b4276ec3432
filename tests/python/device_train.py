"""The device-agnostic training script of the eager-device model tests
(test_device_models.py, test_device_training.py) and its CPU-vs-pjrt check."""
import copy
import io
import time

import pytest
import torch

import torch_pjrt
from torch_pjrt import device as pjrt_device
from zoo_models import float_tensors, no_dropout, square_loss

pjrt_device.ensure_registered()
DEV = "pjrt"


def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


# ------------------------------------------------------- the script --

def train_script(model, device, batches, loss_fn, lr=1e-4, eval_batch=None, eval_fn=None):
    """A device-agnostic training script: the only input that differs between
    the CPU and the pjrt run is `device`. Returns what it observed, on CPU."""
    seen = {"losses": [], "grads": [], "eval": None}
    start = time.perf_counter()
    model = model.to(device)
    if eval_batch is not None:
        model.eval()
        with torch.no_grad():
            out = (eval_fn or (lambda m, b: _call(m, b)))(model, _to(eval_batch, device))
            seen["eval"] = [t.cpu() for t in float_tensors(out)]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for batch in batches:
        batch = _to(batch, device)
        opt.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        seen["grads"].append({n: p.grad.detach().cpu() for n, p in model.named_parameters()
                              if p.grad is not None})
        opt.step()
        seen["losses"].append(loss.item())
    # state_dict round trip through torch.save: device tensors load on CPU.
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    seen["state"] = torch.load(buf, map_location="cpu")
    seen["seconds"] = time.perf_counter() - start
    return seen


def _call(model, batch):
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(*batch)
    return model(batch)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item() if b.numel() else 0.0


def check_training(name, build, batches, loss_fn=None, steps=2, lr=1e-4, rtol=1e-4,
                   atol=1e-5, grad_rtol=None, grad_atol=None, param_atol=None,
                   eval_batch=None, eval_fn=None):
    """Runs train_script on CPU and on pjrt from one seeded model and compares."""
    loss_fn = loss_fn or (lambda m, b: square_loss(_call(m, b)))
    torch.manual_seed(0)
    cpu_model = no_dropout(build())
    dev_model = copy.deepcopy(cpu_model)
    if not isinstance(batches, list):
        batches = [batches] * steps
    want = train_script(cpu_model, "cpu", batches, loss_fn, lr, eval_batch, eval_fn)
    fallbacks = torch_pjrt.metrics()["fallbacks"]
    got = train_script(dev_model, DEV, batches, loss_fn, lr, eval_batch, eval_fn)
    fallbacks = torch_pjrt.metrics()["fallbacks"] - fallbacks
    assert fallbacks == 0, "an op fell back to CPU"
    assert all(p.device.type == DEV for p in dev_model.parameters())

    close = torch.testing.assert_close
    if eval_batch is not None:
        assert len(got["eval"]) == len(want["eval"]) and want["eval"]
        for i, (a, b) in enumerate(zip(got["eval"], want["eval"])):
            close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"eval output {i}: {m}")
    for step, (a, b) in enumerate(zip(got["losses"], want["losses"])):
        assert a == pytest.approx(b, rel=rtol, abs=atol), f"step {step}: loss {a} vs {b}"
    grtol = grad_rtol if grad_rtol is not None else rtol * 10
    gatol = grad_atol if grad_atol is not None else atol * 10
    grad_rel = grad_abs = 0.0
    for step, (ga, gb) in enumerate(zip(got["grads"], want["grads"])):
        assert ga.keys() == gb.keys(), f"step {step}: parameters with gradients differ"
        scale = max(g.abs().max().item() for g in gb.values() if g.numel())
        for n in gb:
            if ga[n].equal(gb[n]):
                continue
            close(ga[n], gb[n], rtol=grtol, atol=gatol, msg=lambda m: f"step {step} grad {n}: {m}")
            grad_abs = max(grad_abs, (ga[n] - gb[n]).abs().max().item())
            if gb[n].numel() and gb[n].abs().max().item() >= 1e-3 * scale:  # not noise-only
                grad_rel = max(grad_rel, _rel(ga[n], gb[n]))
    # AdamW normalizes each gradient element: an element whose gradient is f32
    # rounding noise (|g| ~ 1e-9, e.g. a barely used embedding row) moves by
    # +-lr in a direction the noise picks, on CPU as on any device. Parameters
    # therefore get an absolute tolerance of 2*lr per step on top.
    patol = (param_atol if param_atol is not None else gatol) + 2 * lr * len(batches)
    assert got["state"].keys() == want["state"].keys()
    for n, b in want["state"].items():
        a = got["state"][n]
        assert a.device.type == "cpu" and a.dtype == b.dtype, n
        if not a.equal(b):  # frozen weights are bit-identical: skip the costly check
            close(a, b, rtol=grtol, atol=patol, msg=lambda m: f"after training, {n}: {m}")
    # Loading the CPU weights back into the device model is a state_dict round trip.
    dev_model.load_state_dict(want["state"])
    for n, p in dev_model.state_dict().items():
        assert p.device.type == DEV and p.cpu().equal(want["state"][n]), n
    loss_diff = max(abs(a - b) for a, b in zip(got["losses"], want["losses"]))
    print(f"\n[device-model] {name}: steps={len(batches)} loss_absdiff={loss_diff:.2e} "
          f"grad_absdiff={grad_abs:.2e} grad_reldiff={grad_rel:.2e} pjrt={got['seconds']:.2f}s "
          f"cpu={want['seconds']:.2f}s fallbacks={fallbacks}")
    return got, want


def _ids(vocab, batch=2, seq=12, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    return torch.randint(0, vocab, (batch, seq), generator=g)
