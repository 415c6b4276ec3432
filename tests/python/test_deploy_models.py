"""Deployment of models nobody tuned for (issue 13): each is exported with
torch.export (a dynamic batch where export allows), saved with
torch_pjrt.export.save, run by `tpj-run` and compared with eager. These are
the regressions of a model-zoo sweep: inside nn.MultiheadAttention and the
RNNs the batch sits in dimension 1, attention folds the heads into it,
InstanceNorm views it as channels, GRU stacks its layers' states along it,
and the padding proof follows it there (artifact_layout); attention with a
shared k/v head, attention masks computed from weights, adaptive pooling's
as_strided, 2-D EmbeddingBag and one_hot's checks. The refusals at the end
are programs whose padding is not exact, and must stay refused."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

import torch_pjrt
from torch_pjrt.export import ArtifactError
from test_deploy import _built, assert_matches, run_tpj  # noqa: F401 - _built: autouse


class Fn(nn.Module):
    """fn(self, x), with the modules `mods` (self.mods) for it."""

    def __init__(self, fn, *mods):
        super().__init__()
        self.fn, self.mods = fn, nn.ModuleList(mods)

    def forward(self, x):
        return self.fn(self, x)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # the weights, drawn before check() draws the inputs


def check(tmp_path, model, make, names, sizes=(1, 3, 8), atol=1e-5, top=8):
    """Exports `model` on make(2) with dimension 0 of the inputs `names` as
    Dim('batch', max=top), saves it and compares tpj-run with eager at `sizes`."""
    torch.manual_seed(0)
    model = model.eval()
    batch = Dim("batch", max=top)
    ep = torch.export.export(model, make(2), dynamic_shapes={n: {0: batch} for n in names})
    path = tmp_path / "model.tpj"
    torch_pjrt.export.save(ep, str(path))
    for b in sizes:
        args = make(b)
        with torch.no_grad():
            ref = model(*args)
        outs, _ = run_tpj(path, [a.numpy() for a in args], str(tmp_path))
        assert_matches(outs, ref, atol=atol, rtol=1e-4)


# ------------------------------------------------------- the batch moves --

class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8, padding_idx=0)
        self.rnn = nn.LSTM(8, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.fc(out[:, -1])


def test_lstm_classifier(tmp_path):
    """Its states are [layers, batch, hidden] and its steps [seq, batch, d]."""
    check(tmp_path, LSTMClassifier(), lambda b: (torch.randint(0, 50, (b, 4)),), ["ids"],
          sizes=(1, 3), top=4)


class GRUStates(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        out, h = self.rnn(x)
        return self.fc(h[-1]), out


def test_gru_final_states(tmp_path):
    """h_n concatenates the layers' [batch, hidden] along the batch: blocks
    of rows, then viewed as [layers, batch, hidden]."""
    check(tmp_path, GRUStates(), lambda b: (torch.randn(b, 6, 8),), ["x"], sizes=(1, 3), top=4)


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.Transformer(32, 4, 1, 1, 64, dropout=0.0, batch_first=True)

    def forward(self, src, tgt, pad):
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.t(src, tgt, tgt_mask=causal, tgt_is_causal=True,
                      src_key_padding_mask=pad, memory_key_padding_mask=pad)


def test_nn_transformer_with_padding_mask(tmp_path):
    """nn.MultiheadAttention works on [seq, batch * heads, d] and
    [seq * batch, d] views of the batch."""
    def make(b):
        pad = torch.zeros(b, 6, dtype=torch.bool)
        pad[:, 4:] = True
        return torch.randn(b, 6, 32), torch.randn(b, 5, 32), pad

    check(tmp_path, Seq2Seq(), make, ["src", "tgt", "pad"], sizes=(1, 3), top=4)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1),
                                 nn.InstanceNorm2d(16, affine=True), nn.LeakyReLU(0.1),
                                 nn.Conv2d(16, 16, 3, padding=1, groups=16))
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = self.down(x)
        y = self.out(torch.cat([self.up(self.mid(a)), a], 1))
        return y + F.interpolate(F.max_pool2d(y, 2), scale_factor=2, mode="bilinear")


def test_unet_with_instance_norm(tmp_path):
    """InstanceNorm is batch norm over a [1, batch * C, h, w] view: the
    batch in the channel dimension, where its statistics are per row."""
    check(tmp_path, UNet(), lambda b: (torch.randn(b, 3, 16, 16),), ["x"], atol=2e-5)


class PooledHead(nn.Module):
    """Swin's head: layer norm, then AdaptiveAvgPool1d, whose decomposition
    restrides the mean with as_strided."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(16)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.pool(self.ln(x).transpose(1, 2)).flatten(1))


def test_adaptive_avg_pool_as_strided(tmp_path):
    check(tmp_path, PooledHead(), lambda b: (torch.randn(b, 9, 16),), ["x"])


class BagAndOneHot(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(30, 6, mode="mean")
        self.fc = nn.Linear(11, 2)

    def forward(self, ids):
        hot = F.one_hot(ids[:, 0] % 5, 5).to(torch.float32)
        return self.fc(torch.cat([self.bag(ids), hot], 1))


def test_embedding_bag_2d_and_one_hot(tmp_path):
    """2-D ids are bags of one size (offsets arange(0, c * batch, c)); the
    checks one_hot makes on every class value feed only assertions."""
    check(tmp_path, BagAndOneHot(), lambda b: (torch.randint(0, 30, (b, 4)),), ["ids"])


# --------------------------------------------------------------- attention --

class BiasedAttention(nn.Module):
    """T5's attention: a learned position bias as the mask, scale 1."""

    def __init__(self, heads=4, d=8):
        super().__init__()
        self.h, self.d = heads, d
        self.qkv = nn.Linear(heads * d, 3 * heads * d, bias=False)
        self.bias = nn.Parameter(torch.randn(1, heads, 10, 10))
        self.o = nn.Linear(heads * d, heads * d)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (z.view(b, t, self.h, self.d).transpose(1, 2)
                   for z in self.qkv(x).chunk(3, -1))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias + 0.0, scale=1.0)
        return self.o(a.transpose(1, 2).contiguous().view(b, t, self.h * self.d))


def test_attention_mask_from_weights(tmp_path):
    """At export attention returned [b, t, h, d]-strided results (the mask
    needed grad); save's fake run picks the math kernel ([b, h, t, d]), and
    the exported view after it must still trace."""
    check(tmp_path, BiasedAttention(), lambda b: (torch.randn(b, 10, 32),), ["x"])


class SharedKV(nn.Module):
    """Falcon's multi-query attention: one k/v head broadcast to every
    query head, without enable_gqa."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(32, 32)
        self.kv = nn.Linear(32, 16)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, 4, 8).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 1, 16).transpose(1, 2).split(8, -1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(b, t, 32)


def test_attention_broadcasts_one_kv_head(tmp_path):
    check(tmp_path, SharedKV(), lambda b: (torch.randn(b, 6, 32),), ["x"], sizes=(1, 5))
    m, x = SharedKV().eval(), torch.randn(2, 6, 32)
    torch_pjrt.export.save(torch.export.export(m, (x,)), str(tmp_path / "static.tpj"))
    outs, _ = run_tpj(tmp_path / "static.tpj", [x.numpy()], str(tmp_path))
    with torch.no_grad():
        assert_matches(outs, m(x), atol=1e-5)


def test_hf_t5_encoder(tmp_path):
    tf = pytest.importorskip("transformers")
    t5 = tf.T5EncoderModel(tf.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64,
                                       num_layers=1, num_heads=4)).eval()

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = t5

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask).last_hidden_state

    def make(b):
        mask = torch.ones(b, 10, dtype=torch.int64)
        mask[0, 7:] = 0
        return torch.randint(0, 64, (b, 10)), mask

    check(tmp_path, Enc(), make, ["ids", "mask"], sizes=(1, 3))


def test_hf_llama_called_with_use_cache_false(tmp_path):
    """The raw HF model exported with its keyword arguments, use_cache=False
    among them (a constant, not a runtime input), returning its ModelOutput."""
    tf = pytest.importorskip("transformers")
    lm = tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2)).eval()
    ids, mask = torch.randint(0, 64, (3, 8)), torch.ones(3, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    batch = Dim("batch", max=4)
    ep = torch.export.export(lm, (), {"input_ids": ids[:2], "attention_mask": mask[:2],
                                      "use_cache": False},
                             dynamic_shapes={"input_ids": {0: batch},
                                             "attention_mask": {0: batch}, "use_cache": None})
    torch_pjrt.export.save(ep, str(tmp_path / "llama.tpj"))
    with torch.no_grad():
        ref = lm(input_ids=ids, attention_mask=mask, use_cache=False).logits
    outs, _ = run_tpj(tmp_path / "llama.tpj", [ids.numpy(), mask.numpy()], str(tmp_path))
    assert_matches(outs, ref, atol=1e-5)


def test_hf_mixtral_default_experts(tmp_path):
    """transformers' default MoE experts sort the tokens by expert, count
    them with histc and run its grouped-matmul custom op: both decompose
    (backend._histc, backend._grouped_mm). Static shapes: the sort over every
    token mixes the batch, so a dynamic batch is refused."""
    tf = pytest.importorskip("transformers")
    lm = tf.MixtralForCausalLM(tf.MixtralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
        num_experts_per_tok=2)).eval()
    ids = torch.randint(0, 64, (2, 8))
    ep = torch.export.export(lm, (), {"input_ids": ids, "use_cache": False})
    torch_pjrt.export.save(ep, str(tmp_path / "moe.tpj"))
    with torch.no_grad():
        ref = lm(input_ids=ids, use_cache=False).logits
    outs, _ = run_tpj(tmp_path / "moe.tpj", [ids.numpy()], str(tmp_path))
    assert_matches(outs, ref, atol=1e-5)


def test_histc_bins_match_eager(tmp_path):
    """Values on every bin edge, both ends, outside the range and NaN."""
    edges = torch.linspace(-1.5, 2.0, 8)
    x = torch.cat([edges, torch.tensor([float("nan"), 3.0, -2.0]), torch.randn(200)])
    fn = Fn(lambda s, x: torch.histc(x, bins=7, min=-1.5, max=2.0))
    torch_pjrt.export.save(torch.export.export(fn, (x,)), str(tmp_path / "h.tpj"))
    outs, _ = run_tpj(tmp_path / "h.tpj", [x.numpy()], str(tmp_path))
    assert_matches(outs, torch.histc(x, bins=7, min=-1.5, max=2.0), atol=0, rtol=0)


# ---------------------------------------------------------------- refusals --

REFUSED = [
    ("softmax", lambda s, x: x.transpose(0, 1).softmax(1).transpose(0, 1), (4, 3, 5),
     r"at aten::_softmax \(node \w+, dim 1\): it normalizes along dimension 1 of a tensor "
     r"of shape \[3, batch, 5\]"),
    ("attention", lambda s, x: F.scaled_dot_product_attention(*[x.transpose(0, 1)] * 3),
     (4, 3, 5), r"at aten::scaled_dot_product_attention \(node \w+, dim 1\): it mixes the "
                r"last two dimensions of its argument query \(shape \[3, batch, 5\]\)"),
    ("output_dim1", lambda s, x: x.transpose(0, 1) * 2, (4, 3, 5),
     r"at output 0 \(node \w+, dim 1\): output 0 \(shape \[3, batch, 5\]\) has the dynamic "
     r"size in dimension 1"),
    ("interleaved", lambda s, x: x.transpose(0, 1).reshape(-1, 5) * 2, (4, 3, 5),
     r"at output 0 \(node \w+, dim 0\): output 0 \(shape \[3\*batch, 5\]\) interleaves"),
    ("split_view", lambda s, x: x.t().reshape(x.shape[0], 3), (4, 3),
     r"at aten::view \(node \w+, dim 0\): the reshape from \[3, batch\] to \[batch, 3\] "
     r"splits the dynamic size"),
    ("batch_stats", lambda s, x: s.mods[0](x), (4, 3, 2, 2),
     r"at aten::_native_batch_norm_legit \(node \w+, dim 0\): it computes batch-norm "
     r"statistics over the batch"),
    ("bag_offsets", lambda s, x: s.mods[1](x.flatten().long() % 30,
                                           torch.arange(x.shape[0]) * 2), (4, 5),
     r"at aten::_embedding_bag \(node \w+, dim 0\): it ends each bag at the next row's"),
    ("contraction", lambda s, x: x + (x.transpose(0, 2) @ x.transpose(0, 1)).sum(), (4, 3, 3),
     r"at aten::bmm \(node \w+, its result\): its result of shape \[3, 3, 3\] has no "
     r"dynamic dimension"),
]


@pytest.mark.parametrize("name, fn, shape, match", REFUSED, ids=[r[0] for r in REFUSED])
def test_inexact_padding_stays_refused(tmp_path, name, fn, shape, match):
    m = Fn(fn, nn.BatchNorm2d(3, track_running_stats=False), nn.EmbeddingBag(30, 4)).eval()
    ep = torch.export.export(m, (torch.randn(*shape),),
                             dynamic_shapes=({0: Dim("batch", min=4, max=16)},))
    with pytest.raises(ArtifactError, match=match) as info:
        torch_pjrt.export.save(ep, str(tmp_path / "model.tpj"))
    assert str(info.value).startswith("export.save: padding the dynamic dimension 'batch'")
    assert not list(tmp_path.iterdir())


def test_a_permuted_batch_still_runs_exactly(tmp_path):
    """x.t() with the batch in dimension 1, tril on it (positions, not other
    rows), a reduction over dimension 0 and back: exact, and run so."""
    fn = Fn(lambda s, x: torch.tril(x.t() * 2).sum(0, keepdim=True).t() + x)
    check(tmp_path, fn, lambda b: (torch.randn(b, 3),), ["x"])
