"""Training on the eager "pjrt" device, part 2 (part 1, with the harness's
description, is test_device_models.py): plain-torch architectures (RNNs,
U-Net, TransformerEncoder incl. its eval fast path, MultiheadAttention,
EmbeddingBag), a whole CUDA-style script with only the device string changed
(DataLoader, clip_grad_norm_, OneCycleLR, checkpoint round trip), autocast,
GradScaler, the device-module calls such scripts make, and regression tests
for ops these models needed. fallback = "error" throughout."""
import copy
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt
import torch_pjrt.config
from device_train import DEV, check_training
from zoo_models import BagClassifier, KeyPaddedMHA, MiscOps, RNNTagger, UNet, mha_args, misc_args


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(torch_pjrt.config, "fallback", "error")
    yield


# ---------------------------------------------- a whole CUDA-style script --

class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(64, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids)).mean(1))


def _cuda_style_main(device: str) -> dict:
    """What a CUDA training script does, with `device` in place of "cuda"."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randint(0, 64, (24, 9), generator=g),
                                          torch.randint(0, 3, (24,), generator=g))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, pin_memory=True,
                                         generator=torch.Generator().manual_seed(2))
    model = _Classifier().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=len(loader))
    losses = []
    model.train()
    for ids, labels in loader:
        ids = ids.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(ids), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    correct = 0
    logits = []
    with torch.no_grad():
        for ids, labels in loader:
            out = model(ids.to(device))
            correct += (out.argmax(1) == labels.to(device)).sum().item()
            logits.append(out.cpu())
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, map_location=device)
    fresh = _Classifier().to(device)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(ckpt["opt"])
    state = fresh_opt.state[next(iter(fresh.parameters()))]
    assert state["exp_avg"].device.type == device
    return {"losses": losses, "correct": correct, "logits": torch.cat(logits),
            "params": {n: p.detach().cpu() for n, p in fresh.named_parameters()}}


def test_device_module_calls_of_cuda_scripts():
    mod = getattr(torch, DEV)  # torch.cuda.X in the script becomes torch.pjrt.X
    mod.manual_seed_all(0)
    mod.synchronize()
    mod.empty_cache()
    assert mod.is_available() and mod.device_count() >= 1 and mod.is_bf16_supported()
    assert isinstance(mod.get_device_name(0), str) and mod.get_device_name()
    with mod.device(f"{DEV}:0"):
        assert mod.current_device() == 0
    assert torch.accelerator.current_accelerator().type == DEV


def test_cuda_style_script_only_device_changed():
    want = _cuda_style_main("cpu")
    before = torch_pjrt.metrics()["fallbacks"]
    got = _cuda_style_main(DEV)
    assert torch_pjrt.metrics()["fallbacks"] == before
    assert got["losses"] == pytest.approx(want["losses"], rel=1e-4, abs=1e-5)
    assert got["correct"] == want["correct"]
    # Eval runs the fused encoder fast path on both devices.
    torch.testing.assert_close(got["logits"], want["logits"], rtol=1e-4, atol=1e-5)
    for n, p in want["params"].items():
        torch.testing.assert_close(got["params"][n], p, rtol=1e-3, atol=1e-5 + 2e-3 * 3,
                                   msg=lambda m: f"{n}: {m}")


def _cuda_style_timed(seed: int) -> dict:
    """A CUDA script's seeding, timing and memory calls (torch.cuda.X ->
    torch.pjrt.X): dropout in training, fused AdamW, events around the loop."""
    mod = getattr(torch, DEV)
    torch.manual_seed(0)  # the same initial weights (CPU generator)
    mod.manual_seed(seed)  # the device's stream: dropout masks
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.2, batch_first=True)
    model = nn.Sequential(nn.Embedding(64, 32), nn.TransformerEncoder(
        layer, 2, enable_nested_tensor=False)).to(DEV)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    ids = torch.randint(0, 64, (8, 9), generator=torch.Generator().manual_seed(3)).to(DEV)
    # A fixed projection: the layer-normed output's own mean square is 1
    # whatever dropout did, so it could not tell two seeds apart.
    w = torch.randn(32, generator=torch.Generator().manual_seed(4)).to(DEV)
    mod.reset_peak_memory_stats()
    start, end = mod.Event(enable_timing=True), mod.Event(enable_timing=True)
    losses = []
    start.record()
    for _ in range(3):
        loss = (model(ids) * w).sum(-1).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    end.record()
    end.synchronize()
    assert end.query()
    return {"losses": [v.item() for v in losses], "ms": start.elapsed_time(end),
            "peak": mod.max_memory_allocated(), "now": mod.memory_allocated()}


def test_cuda_style_seeding_events_and_memory():
    a = _cuda_style_timed(seed=5)
    torch.rand(100)  # CPU generator use between the runs changes nothing on the device
    b = _cuda_style_timed(seed=5)
    c = _cuda_style_timed(seed=6)
    assert a["losses"] == b["losses"]  # torch.pjrt.manual_seed reproduces the dropout masks
    assert a["losses"][0] != c["losses"][0]  # another seed, other masks
    assert a["ms"] > 0 and b["ms"] > 0
    assert a["peak"] >= a["now"] > 0


# ------------------------------------------------------- plain torch --

@pytest.mark.full
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU], ids=["lstm", "gru"])
def test_rnn(cell):
    ids = torch.randint(0, 50, (3, 7))
    y = torch.randint(0, 5, (3, 7))
    check_training(cell.__name__, lambda: RNNTagger(cell), [(ids, y)] * 2,
                   loss_fn=lambda m, b: F.cross_entropy(m(b[0]).flatten(0, 1), b[1].flatten()),
                   eval_batch=ids)


@pytest.mark.full
def test_unet_conv_transpose_upsample_cat():
    x = torch.randn(2, 3, 16, 16)
    check_training("U-Net", UNet, [x], eval_batch=[x])


def test_transformer_encoder_layer_train_and_eval():
    # In eval mode under no_grad nn.TransformerEncoderLayer takes its fused
    # fast path (aten::_transformer_encoder_layer_fwd) on the device too.
    x = torch.randn(2, 9, 32)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[1, 6:] = True
    batch = {"src": x, "src_key_padding_mask": mask}
    check_training("TransformerEncoderLayer",
                   lambda: nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0,
                                                      batch_first=True), batch,
                   eval_batch=batch)


@pytest.mark.full
def test_transformer_encoder_layer_norm_first_gelu():
    x = torch.randn(2, 9, 32)
    causal = nn.Transformer.generate_square_subsequent_mask(9)
    batch = {"src": x, "src_mask": causal}
    check_training("TransformerEncoderLayer (norm_first, gelu)",
                   lambda: nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0,
                                                      batch_first=True, norm_first=True,
                                                      activation="gelu"), batch,
                   eval_batch=batch)


@pytest.mark.full
def test_transformer_encoder_stack_eval():
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
    x = torch.randn(2, 9, 32)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 7:] = True
    batch = {"src": x, "src_key_padding_mask": mask}
    check_training("TransformerEncoder", lambda: nn.TransformerEncoder(layer, 2,
                                                                      enable_nested_tensor=False),
                   batch, eval_batch=batch)


@pytest.mark.full
def test_multihead_attention_key_padding_mask():
    args = mha_args()
    check_training("MultiheadAttention", KeyPaddedMHA, [args], eval_batch=args)


@pytest.mark.full
@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_embedding_bag(mode):
    args = [torch.randint(0, 40, (11,)), torch.tensor([0, 3, 3, 7])]  # one empty bag
    check_training(f"EmbeddingBag ({mode})", lambda: BagClassifier(mode), [args], eval_batch=args)


@pytest.mark.full
def test_misc_ops_model():
    args = misc_args()
    check_training("misc ops", MiscOps, [args], eval_batch=args)


# ----------------------------------------------- ops these models need --

def test_batch_norm_without_running_stats():
    # InstanceNorm and batch_norm(training, running stats None) reach the
    # device's native_batch_norm with undefined (not None) running stats.
    x, w, b = torch.randn(2, 4, 5, 5), torch.rand(4) + 0.5, torch.randn(4)
    X, W, B = (t.to(DEV).requires_grad_() for t in (x, w, b))
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    for fn in (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
               lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
               lambda x, w, b: F.group_norm(x, 2, w, b)):
        got, want = fn(X, W, B), fn(xr, wr, br)
        torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)
        got.pow(2).sum().backward()
        want.pow(2).sum().backward()
    for d, r in ((X, xr), (W, wr), (B, br)):
        torch.testing.assert_close(d.grad.cpu(), r.grad, rtol=1e-4, atol=1e-4)


def test_dropout_runs_on_device():
    # native_dropout has no Generator argument yet draws random bits: the
    # device passes it a fresh RNG state like the ops that do.
    x = torch.randn(20000, device=DEV, requires_grad=True)
    before = torch_pjrt.metrics()["fallbacks"]
    y = F.dropout(x, 0.25, training=True)
    y.sum().backward()
    assert torch_pjrt.metrics()["fallbacks"] == before
    kept = y.detach().cpu() != 0
    assert 0.72 < kept.float().mean().item() < 0.78
    torch.testing.assert_close(y.detach().cpu()[kept], x.detach().cpu()[kept] / 0.75)
    torch.testing.assert_close(x.grad.cpu(), kept.float() / 0.75)
    assert not F.dropout(x, 0.25, training=True).cpu().equal(y.detach().cpu())  # fresh bits
    assert F.dropout(x, 0.25, training=False).cpu().equal(x.detach().cpu())


def test_autocast_bf16_training_step():
    # torch.autocast(device_type, dtype=torch.bfloat16) as a CUDA script uses
    # it: PyTorch's CUDA op lists apply (linear in bf16, log_softmax / losses
    # in f32); parameters and their gradients stay f32.
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 4))
    dev = copy.deepcopy(ref).to(DEV)
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    results = []
    for model, device in ((ref, "cpu"), (dev, DEV)):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            hidden = model[0](x.to(device))
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
        assert hidden.dtype == torch.bfloat16 and loss.dtype == torch.float32, device
        loss.backward()
        results.append((loss.item(), [p.grad for p in model.parameters()]))
    (want, want_g), (got, got_g) = results
    assert got == pytest.approx(want, rel=1e-2)
    for a, b in zip(got_g, want_g):
        assert a.dtype == torch.float32 and a.device.type == DEV
        torch.testing.assert_close(a.cpu(), b, rtol=5e-2, atol=5e-3)


def test_grad_scaler_skips_overflow_and_regrows():
    # torch.amp.GradScaler(device): unscale_, the inf check and the scale
    # update run on the device; an overflowing step is skipped as on CPU.
    def run(device):
        torch.manual_seed(0)
        model = nn.Linear(4, 3).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        scaler = torch.amp.GradScaler(device, init_scale=2.0 ** 16, growth_interval=2)
        x = torch.randn(5, 4).to(device)
        scales = []
        for step in range(5):
            opt.zero_grad()
            loss = model(x).pow(2).mean() * (float("inf") if step == 1 else 1.0)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
        return scales, [p.detach().cpu() for p in model.parameters()]

    want, want_p = run("cpu")
    before = torch_pjrt.metrics()["fallbacks"]
    got, got_p = run(DEV)
    assert torch_pjrt.metrics()["fallbacks"] == before
    assert got == want == [2.0 ** 16, 2.0 ** 15, 2.0 ** 15, 2.0 ** 16, 2.0 ** 16]
    for a, b in zip(got_p, want_p):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
