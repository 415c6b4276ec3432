"""Shape buckets for compiled graphs (issue 17, torch_pjrt.shape_buckets): a
graph with a symbolic batch runs at bucket sizes, padded and cut back, only
where that is proven exact. Every result is compared with eager at every
size; the compiles are counted from the "compiling" log lines."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt import models


@pytest.fixture(autouse=True)
def _fresh(caplog):
    torch._dynamo.reset()
    old = torch_pjrt.config.shape_buckets
    caplog.set_level(logging.INFO, logger="torch_pjrt")
    yield
    torch_pjrt.config.shape_buckets = old
    torch._dynamo.reset()


def compiles(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "torch_pjrt" and r.getMessage().startswith("torch_pjrt: compiling ")]


def messages(caplog, word):
    return [r.getMessage() for r in caplog.records if word in r.getMessage()]


def run_sizes(fn, make, sizes, **kw):
    cf = torch.compile(fn, backend="pjrt", dynamic=True, **kw)
    with torch.no_grad():
        for b in sizes:
            args = make(b)
            torch.testing.assert_close(cf(*args), fn(*args), atol=2e-5, rtol=2e-5)


def test_cnn_batches_1_to_32_compile_per_bucket_not_per_size(caplog):
    torch.manual_seed(0)
    m = models.CNN().eval()
    for bn in (m.bn1, m.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    run_sizes(m, lambda b: (torch.randn(b, 3, 12, 12),), range(1, 33))
    n = len(compiles(caplog))
    # Dynamo: one graph for size 1, one bounded below 16 (a conv guard), one
    # above; buckets 2, 4, 8, 15 and 16, 32: 7 programs, not 32.
    assert n <= 8, compiles(caplog)
    assert messages(caplog, "runs in shape buckets")


def test_mark_dynamic_bound_is_the_last_bucket(caplog):
    torch.manual_seed(0)
    m = models.MLP().eval()
    cf = torch.compile(m, backend="pjrt")
    with torch.no_grad():
        for b in (3, 5, 6, 9, 12):
            x = torch.randn(b, 32)
            torch._dynamo.mark_dynamic(x, 0, min=2, max=12)
            torch.testing.assert_close(cf(x), m(x), atol=2e-5, rtol=2e-5)
    plans = messages(caplog, "runs in shape buckets")
    assert plans and plans[-1].endswith("1, 2, 4, 8, 12"), plans
    assert len(compiles(caplog)) == 3  # buckets 4, 8, 12


def test_chosen_buckets_and_sizes_past_them(caplog):
    torch_pjrt.config.shape_buckets = [4, 16]
    m = models.MLP().eval()
    run_sizes(m, lambda b: (torch.randn(b, 32),), [2, 3, 4, 7, 16, 20])
    # 2, 3, 4 -> bucket 4; 7, 16 -> 16; 20 is past the last bucket: its own
    # program; size 1 never comes (Dynamo's first call was size 2).
    assert len(compiles(caplog)) == 3, compiles(caplog)


def test_buckets_off_compiles_per_size(caplog):
    torch_pjrt.config.shape_buckets = False
    m = models.MLP().eval()
    run_sizes(m, lambda b: (torch.randn(b, 32),), [2, 3, 5])
    assert len(compiles(caplog)) == 3
    assert not messages(caplog, "runs in shape buckets")


class BatchMixer(nn.Module):
    """Normalizes over the batch: padding would change every row."""

    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def test_a_graph_mixing_rows_is_not_bucketed_and_stays_exact(caplog):
    m = BatchMixer()
    run_sizes(m, lambda b: (torch.randn(b, 6),), [2, 3, 5])
    why = messages(caplog, "is not exact")
    assert why and "aten::mean" in why[0], why
    assert len(compiles(caplog)) == 3


def test_embedding_with_int_ids():
    torch.manual_seed(0)
    emb = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 5, 3)).eval()
    run_sizes(emb, lambda b: (torch.randint(0, 50, (b, 5)),), [2, 3, 6, 9])


def test_out_of_range_ids_still_raise_in_a_bucket():
    emb = nn.Embedding(10, 4)
    cf = torch.compile(emb, backend="pjrt", dynamic=True)
    with torch.no_grad():
        cf(torch.randint(0, 10, (2, 3)))
        bad = torch.randint(0, 10, (3, 3))   # padded to bucket 4
        bad[1, 2] = 12
        with pytest.raises(IndexError, match="12"):
            cf(bad)


class MaskedDecoder(nn.Module):
    """Causal self-attention written out (scores, causal and padding masks,
    softmax), a residual and an MLP: attention within each row of the batch."""

    def __init__(self, vocab=40, d=16, heads=2, seq=10):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, vocab))
        self.heads = heads
        self.register_buffer("causal", torch.tril(torch.ones(seq, seq, dtype=torch.bool)))

    def forward(self, ids, pad):
        b, t = ids.shape
        h = self.emb(ids)
        q, k, v = self.qkv(h).split(h.shape[-1], dim=-1)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
        keep = self.causal[:t, :t] & pad[:, None, None, :].bool()
        s = s.masked_fill(~keep, float("-inf"))
        a = torch.softmax(s, -1).nan_to_num(0.0) @ v
        h = h + self.out(a.transpose(1, 2).reshape(b, t, -1))
        return F.log_softmax(self.mlp(h), -1)


def test_attention_masked_decoder_over_batches(caplog):
    torch.manual_seed(0)
    m = MaskedDecoder().eval()

    def make(b):
        ids = torch.randint(0, 40, (b, 10))
        pad = torch.ones(b, 10, dtype=torch.int64)
        pad[0, 7:] = 0
        return ids, pad

    run_sizes(m, make, [2, 3, 5, 8])
    assert messages(caplog, "runs in shape buckets"), messages(caplog, "not exact")


def test_sdpa_decomposition_runs_in_buckets(caplog):
    """PyTorch's decomposition of scaled_dot_product_attention under
    torch.compile permutes the batch off dimension 0 and folds the heads
    into it ([batch * heads, seq, d]); the analysis follows it there and
    back (artifact_layout), so the graph runs in buckets, exact."""
    torch.manual_seed(0)
    cfg = models.GPTConfig()
    m = models.GPT(cfg).eval()
    run_sizes(m, lambda b: (torch.randint(0, cfg.vocab_size, (b, cfg.block_size)),), [2, 3, 5])
    assert messages(caplog, "runs in shape buckets"), messages(caplog, "not exact")


def test_on_pjrt_tensors():
    torch.manual_seed(0)
    m = models.MLP().eval()
    dev = m.to("pjrt")
    cf = torch.compile(dev, backend="pjrt", dynamic=True)
    ref = models.MLP().eval()
    ref.load_state_dict({k: v.cpu() for k, v in dev.state_dict().items()})
    with torch.no_grad():
        for b in (2, 3, 5):
            x = torch.randn(b, 32)
            got = cf(x.to("pjrt"))
            assert got.device.type == "pjrt" and got.shape[0] == b
            torch.testing.assert_close(got.cpu(), ref(x), atol=2e-5, rtol=2e-5)


def test_training_graphs_are_left_alone():
    """Forward graphs that save activations for a backward run unpadded."""
    torch.manual_seed(0)
    m = models.MLP()
    ref = models.MLP()
    ref.load_state_dict(m.state_dict())
    cf = torch.compile(m, backend="pjrt", dynamic=True)
    for b in (2, 3):
        x = torch.randn(b, 32)
        cf(x).sum().backward()
        ref(x).sum().backward()
    for p, q in zip(m.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-5)
