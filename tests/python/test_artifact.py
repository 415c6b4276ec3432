"""torch_pjrt.export.save writes the `.tpj` artifact of docs/artifact.md and
torch_pjrt.export.load runs it like ep.module(); save refuses, naming the op,
every program whose dynamic dimension cannot be padded exactly.

The container is parsed here independently of the package, and `Reference`
runs an artifact in pure Python (the per-bucket programs through
_C.Client.compile and _C.Program, padding as docs/artifact.md says), so the
saved files are checked even without the C loader; with _C.Model built, every
run also goes through export.load and must agree.
"""
import hashlib
import json
import os
import struct

import pytest
import safetensors.torch
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim
from torch.utils import _pytree as pytree

from torch_pjrt import _C, _dtypes, config, models
from torch_pjrt import compiled
from torch_pjrt.export import ArtifactError, load, save

CHECK_KINDS = {"index": 0, "div_zero": 1}  # tpj_check_kind_t


# ------------------------------------------------------ reference reader --

def read_container(path):
    """{part name: bytes}, checking every rule of the container format."""
    data = open(path, "rb").read()
    assert data[:8] == b"TPJMODEL"
    version, n = struct.unpack_from("<II", data, 8)
    assert version == 1 and 1 <= n <= 4096
    table = data[64:64 + 128 * n]
    assert hashlib.sha256(table).digest() == data[16:48]
    assert data[48:64] == bytes(16)
    parts, end = {}, 64 + 128 * n
    for i in range(n):
        e = table[128 * i:128 * (i + 1)]
        name = e[:64].rstrip(b"\0").decode("ascii")
        assert 1 <= len(name) <= 63 and e[len(name):64] == bytes(64 - len(name))
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_./-"), name
        offset, size = struct.unpack_from("<QQ", e, 64)
        assert offset % 64 == 0 and offset >= end and offset + size <= len(data), name
        assert hashlib.sha256(data[offset:offset + size]).digest() == e[80:112], name
        assert e[112:128] == bytes(16) and name not in parts
        parts[name] = data[offset:offset + size]
        end = offset + size
    return parts


class Reference:
    """Runs an artifact in Python: picks the bucket, pads dynamic inputs by
    repeating their last row, runs that bucket's program, slices back."""

    def __init__(self, path):
        parts = read_container(path)
        self.manifest = json.loads(parts["manifest.json"])
        self.weights = safetensors.torch.load(parts["weights.safetensors"])
        self.cl = compiled.client()
        self.programs = []
        for p in self.manifest["programs"]:
            exe = self.cl.compile(parts[p["part"]].decode())
            checks = [(CHECK_KINDS[c["kind"]], c["message"]) for c in p["checks"]]
            prog = _C.Program(exe, ["buffer"] * len(p["params"]), checks, p["part"])
            self.programs.append((p, prog))
        specs = self.manifest["pytree"]
        self.in_spec = pytree.treespec_loads(specs["in_spec"])
        self.out_spec = pytree.treespec_loads(specs["out_spec"])

    def _symbol(self, flat):
        for entry, t in zip(self.manifest["inputs"], flat):
            if entry["shape"] and isinstance(entry["shape"][0], dict):
                return t.shape[0] // entry["shape"][0]["scale"]
        return None

    @staticmethod
    def _pad(t, rows):
        if t.shape[0] == rows:
            return t
        fill = t[-1:] if t.shape[0] else torch.zeros((1,) + tuple(t.shape[1:]), dtype=t.dtype)
        return torch.cat([t, fill.expand((rows - t.shape[0],) + tuple(t.shape[1:]))])

    def _upload(self, t):
        t = t.contiguous()
        return self.cl.buffer_from_host(t.data_ptr(), t.numel() * t.element_size(),
                                        _dtypes.dtype_code(t.dtype), tuple(t.shape))

    def __call__(self, *args, **kwargs):
        flat = pytree.tree_leaves((args, kwargs))
        s = self._symbol(flat)
        p, prog = self.programs[0]
        if s is not None:
            p, prog = next(e for e in self.programs if e[0]["bucket"] >= s)
        b = p["bucket"]
        inputs = []
        for entry, t in zip(self.manifest["inputs"], flat):
            dyn = entry["shape"] and isinstance(entry["shape"][0], dict)
            inputs.append(self._pad(t, entry["shape"][0]["scale"] * b) if dyn else t)
        bufs = [self._upload(inputs[q["input"]]) if "input" in q
                else self._upload(self.weights[q["weight"]]) for q in p["params"]]
        outs = []
        for entry, buf in zip(self.manifest["outputs"], prog.run(bufs)):
            dyn = entry["shape"] and isinstance(entry["shape"][0], dict)
            t = torch.empty(buf.shape, dtype=_dtypes.code_dtype(buf.dtype))
            buf.to_host(t.data_ptr(), t.numel() * t.element_size())
            outs.append(t[:entry["shape"][0]["scale"] * s] if dyn else t)
        for c in self.manifest["pytree"]["constants"]:
            outs.insert(c["leaf"], c["value"])
        return pytree.tree_unflatten(outs, self.out_spec)


def _check(path, ep, *args, rtol=1e-4, atol=1e-5, **kwargs):
    """The artifact at `path` computes ep.module()(*args) (reference reader,
    and export.load when _C.Model exists)."""
    want = ep.module()(*args, **kwargs)
    torch.testing.assert_close(Reference(path)(*args, **kwargs), want, rtol=rtol, atol=atol)
    if hasattr(_C, "Model"):
        torch.testing.assert_close(load(path)(*args, **kwargs), want, rtol=rtol, atol=atol)


def _save(tmp_path, model, args, kwargs=None, dynamic_shapes=None, **save_kw):
    ep = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    path = str(tmp_path / "model.tpj")
    save(ep, path, **save_kw)
    return ep, path


def _manifest(path):
    return json.loads(read_container(path)["manifest.json"])


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Fn2(_Fn):
    def forward(self, x, y):
        return self.fn(x, y)


# -------------------------------------------------------------- round trip --

def test_mlp_static(tmp_path):
    model = models.MLP().eval()
    x = torch.randn(5, 32)
    ep, path = _save(tmp_path, model, (x,))
    m = _manifest(path)
    assert m["format"] == "tpj-model" and m["version"] == 1 and m["symbol"] is None
    assert [p["bucket"] for p in m["programs"]] == [0]
    assert m["inputs"] == [{"name": "x", "dtype": "float32", "shape": [5, 32]}]
    assert m["outputs"] == [{"name": "output_0", "dtype": "float32", "shape": [5, 10]}]
    assert m["producer"]["torch"] == torch.__version__
    weights = safetensors.torch.load(read_container(path)["weights.safetensors"])
    assert set(weights) == set(model.state_dict())
    torch.testing.assert_close(weights["fc1.weight"], model.fc1.weight.detach())
    _check(path, ep, x)


class _TwoKwargs(nn.Module):
    def forward(self, x, *, a, b):
        return x * a - b


@pytest.mark.skipif(not hasattr(_C, "Model"), reason="needs _C.Model")
def test_load_reorders_keyword_arguments(tmp_path):
    x, a, b = torch.randn(2, 3), torch.randn(3), torch.randn(3)
    ep, path = _save(tmp_path, _TwoKwargs(), (x,), {"a": a, "b": b})
    torch.testing.assert_close(load(path)(x, b=b, a=a), ep.module()(x, a=a, b=b))


@pytest.mark.skipif(not hasattr(_C, "Model"), reason="needs _C.Model")
def test_load_takes_pjrt_tensors(tmp_path):
    import torch_pjrt.device  # noqa: F401 - registers the pjrt device
    x = torch.randn(3, 32)
    ep, path = _save(tmp_path, models.MLP().eval(), (x,))
    out = load(path)(x.to("pjrt"))
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, ep.module()(x), rtol=1e-4, atol=1e-5)


def test_container_layout(tmp_path):
    _, path = _save(tmp_path, models.MLP().eval(), (torch.randn(2, 32),))
    data = open(path, "rb").read()
    n = struct.unpack_from("<I", data, 12)[0]
    names = [data[64 + 128 * i:64 + 128 * i + 64].rstrip(b"\0").decode() for i in range(n)]
    assert names == ["manifest.json", "weights.safetensors", "program/0.mlir"]
    mlir = read_container(path)["program/0.mlir"].decode()
    assert "func.func" in mlir and "stablehlo" in mlir
    # A flipped byte anywhere in a part breaks its checksum.
    bad = bytearray(data)
    bad[-1] ^= 1
    (tmp_path / "bad.tpj").write_bytes(bytes(bad))
    with pytest.raises(AssertionError):
        read_container(str(tmp_path / "bad.tpj"))


def test_cnn_eval(tmp_path):
    model = models.CNN().eval()
    with torch.no_grad():  # non-trivial running statistics
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn2.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 10, 10)
    ep, path = _save(tmp_path, model, (x,))
    assert "bn1.running_mean" in safetensors.torch.load(
        read_container(path)["weights.safetensors"])
    _check(path, ep, x)


class _MultiIO(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("scale", torch.tensor([1.0, 2.0, 3.0]))

    def forward(self, x, y, *, bias):
        h = self.lin(x) * self.scale + bias
        return {"h": h, "pair": (y.sum(1), torch.tanh(y) + torch.tensor(0.5))}


def test_several_inputs_dict_tuple_output(tmp_path):
    x, y, bias = torch.randn(2, 4), torch.randn(2, 5), torch.randn(3)
    ep, path = _save(tmp_path, _MultiIO().eval(), (x, y), {"bias": bias})
    m = _manifest(path)
    assert [e["name"] for e in m["inputs"]] == ["x", "y", "bias"]
    assert len(m["outputs"]) == 3
    _check(path, ep, x, y, bias=bias)


def test_dynamic_batch_buckets(tmp_path):
    model = models.MLP().eval()
    batch = Dim("batch", max=16)
    ep, path = _save(tmp_path, model, (torch.randn(4, 32),), dynamic_shapes=({0: batch},))
    m = _manifest(path)
    assert m["symbol"]["name"] == "batch" and m["symbol"]["max"] == 16
    assert [p["bucket"] for p in m["programs"]] == [1, 2, 4, 8, 16]
    assert m["inputs"][0]["shape"] == [{"scale": 1}, 32]
    assert m["outputs"][0]["shape"] == [{"scale": 1}, 10]
    for n in (1, 3, 8, 16):
        x = torch.randn(n, 32)
        _check(path, ep, x)
        torch.testing.assert_close(Reference(path)(x), model(x), rtol=1e-4, atol=1e-5)
    if hasattr(_C, "Model") and m["symbol"]["min"] == 0:  # an empty batch runs bucket 1
        assert load(path)(torch.randn(0, 32)).shape == (0, 10)


class _Rowwise(nn.Module):
    """Per-row work the padding keeps exact: softmax and layer norm over
    features, a [2 * batch] input viewed as [batch, 2 * ...], sizes from the
    symbol (view, expand, zeros, arange's end), a full slice."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)

    def forward(self, x, y):
        n = x.shape[0]
        h = self.norm(torch.cat([x, y.view(n, 4)], dim=1))
        h = F.softmax(h, dim=-1) + torch.zeros(n, 6) + torch.arange(n).view(n, 1)
        return h[:n].reshape(n, 2, 3).sum(-1), h.reshape(n * 3, 2).view(-1)


def test_dynamic_rowwise_ops_and_scaled_input(tmp_path):
    batch = Dim("batch", max=10)
    ep, path = _save(tmp_path, _Rowwise().eval(), (torch.randn(3, 2), torch.randn(6, 2)),
                     dynamic_shapes=({0: batch}, {0: 2 * batch}), buckets=[2, 5, 10])
    m = _manifest(path)
    assert [p["bucket"] for p in m["programs"]] == [2, 5, 10]
    assert m["inputs"][1]["shape"] == [{"scale": 2}, 2]
    assert m["outputs"][1]["shape"] == [{"scale": 6}]
    for n in (1, 4, 5, 7, 10):
        _check(path, ep, torch.randn(n, 2), torch.randn(2 * n, 2))


def test_save_with_executables(tmp_path):
    ep = torch.export.export(models.MLP().eval(), (torch.randn(3, 32),))
    path = str(tmp_path / "model.tpj")
    if not hasattr(_C.Executable, "serialize"):
        with pytest.raises(ArtifactError, match="no serialize"):
            save(ep, path, executables=True)
        assert os.listdir(tmp_path) == []
        return
    save(ep, path, executables=True)
    m = _manifest(path)
    info = compiled.client().plugin_info()
    assert m["executables"] == [{"part": "executable/0.bin", "program": 0,
                                 "platform": info["platform_name"],
                                 "platform_version": info["platform_version"],
                                 "api": list(info["api_version"]),
                                 "xla_version": info["xla_version"]}]
    assert read_container(path)["executable/0.bin"]
    _check(path, ep, torch.randn(3, 32))
    assert load(path).model.num_deserialized == 1


@pytest.mark.skipif(not hasattr(_C, "Model"), reason="needs _C.Model")
def test_load_matches_the_call_and_checks_inputs(tmp_path):
    x, y, bias = torch.randn(2, 4), torch.randn(2, 5), torch.randn(3)
    ep, path = _save(tmp_path, _MultiIO().eval(), (x, y), {"bias": bias},
                     dynamic_shapes={"x": {0: Dim("batch", max=4)},
                                     "y": {0: Dim("batch", max=4)}, "bias": None})
    prog = load(path)
    out = prog(x, y, bias=bias)
    assert set(out) == {"h", "pair"} and isinstance(out["pair"], tuple)
    torch.testing.assert_close(out, ep.module()(x, y, bias=bias))
    with pytest.raises(TypeError, match="do not match the exported signature"):
        prog(x, y, bias)
    with pytest.raises(TypeError, match="do not match the exported signature"):
        prog(x, y, bias=bias, extra=bias)
    with pytest.raises(TypeError, match="input y is float64"):
        prog(x, y.double(), bias=bias)
    with pytest.raises(ValueError, match=r"input y has size 3 in dim 0 \(expected 1 \* batch "
                                         r"with batch in \[\d, 4\], batch = 2\)"):
        prog(x, torch.randn(3, 5), bias=bias)
    with pytest.raises(ValueError, match="input bias has size 4 in dim 0 \\(expected 3\\)"):
        prog(x, y, bias=torch.randn(4))
    with pytest.raises(Exception, match="(?i)no such file"):
        load(str(tmp_path / "missing.tpj"))


@pytest.mark.skipif(not hasattr(_C, "Model"), reason="needs _C.Model")
def test_load_refuses_a_damaged_file(tmp_path):
    _, path = _save(tmp_path, models.MLP().eval(), (torch.randn(2, 32),))
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x40  # inside the last program's text
    bad = tmp_path / "bad.tpj"
    bad.write_bytes(bytes(data))
    with pytest.raises(Exception, match="program/0.mlir"):
        load(str(bad))


@pytest.mark.parametrize("fn", [
    lambda x: torch.diag_embed(x),
    lambda x: torch.tile(x, (1, 2)) + x.repeat(1, 2),
    lambda x: F.group_norm(x.view(-1, 3, 1), 3),
    lambda x: x.unfold(1, 2, 1).cumsum(-1),
    lambda x: F.pad(x, (1, 2)).softmax(1).max(1).values,
    lambda x: torch.stack([x, -x], dim=-2).amax(-1),
    lambda x: x.view(-1, 1, 3)[:, :, 1:].flip(-1),
], ids=["diag_embed", "tile", "group_norm", "unfold", "pad", "stack", "view_slice"])
def test_dynamic_exact_ops(tmp_path, fn):
    ep = torch.export.export(_Fn(fn), (torch.randn(4, 3),),
                             dynamic_shapes=({0: Dim("batch", max=8)},))
    path = str(tmp_path / "model.tpj")
    save(ep, path)
    for n in (1, 3, 8):
        _check(path, ep, torch.randn(n, 3))


def test_bucket_overrides_are_validated(tmp_path):
    ep = torch.export.export(models.MLP().eval(), (torch.randn(4, 32),),
                             dynamic_shapes=({0: Dim("batch", max=16)},))
    for bad in ([4, 2, 16], [1, 8], [0, 16], [2, 2, 16]):
        with pytest.raises(ArtifactError, match="strictly ascending"):
            save(ep, str(tmp_path / "m.tpj"), buckets=bad)
    assert os.listdir(tmp_path) == []
    static = torch.export.export(models.MLP().eval(), (torch.randn(4, 32),))
    with pytest.raises(ArtifactError, match="has no dynamic size"):
        save(static, str(tmp_path / "m.tpj"), buckets=[4])


class _Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, ids):
        return self.out(self.emb(ids)).mean(1)


def test_embedding_int64_ids(tmp_path):
    ids = torch.randint(0, 20, (4, 5))
    ep, path = _save(tmp_path, _Embed().eval(), (ids,),
                     dynamic_shapes=({0: Dim("batch", max=8)},))
    m = _manifest(path)
    assert m["inputs"][0]["dtype"] == "int64"
    assert any(c["kind"] == "index" for c in m["programs"][0]["checks"])
    for n in (1, 3, 8):
        _check(path, ep, torch.randint(0, 20, (n, 5)))
    for run in [Reference(path)] + ([load(path)] if hasattr(_C, "Model") else []):
        with pytest.raises(IndexError, match="index 25 is out of bounds for dimension 0"):
            run(torch.full((2, 5), 25))


# ---------------------------------------------------------------- refusals --

def _refused(tmp_path, model, args, match, dynamic_shapes=None, kwargs=None):
    """save refuses with a message matching `match` and writes nothing."""
    ep = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    with pytest.raises(ArtifactError, match=match) as info:
        save(ep, str(tmp_path / "model.tpj"))
    assert os.listdir(tmp_path) == [], "a refused save left files behind"
    return str(info.value)


_BATCH = ({0: Dim("batch", max=16)},)


def test_refuses_buffer_mutation(tmp_path):
    msg = _refused(tmp_path, models.CNN().train(), (torch.randn(2, 3, 8, 8),),
                   "mutates buffer bn1.running_mean")
    assert "model.eval()" in msg


def test_refuses_unbounded_dim(tmp_path):
    _refused(tmp_path, models.MLP().eval(), (torch.randn(4, 32),),
             r"'batch' has no upper bound: give Dim\('batch', max=N\)",
             dynamic_shapes=({0: Dim("batch")},))


def test_refuses_dynamic_dim_1(tmp_path):
    _refused(tmp_path, _Fn(lambda x: x * 2), (torch.randn(2, 5),),
             r"'seq' is not exact at input x \(node x, dim 1\)",
             dynamic_shapes=({1: Dim("seq", max=16)},))


def test_refuses_two_symbols(tmp_path):
    _refused(tmp_path, _Fn2(lambda x, y: (x * 2, y + 1)), (torch.randn(3, 4), torch.randn(5, 4)),
             r"2 dynamic sizes \(a, b\)",
             dynamic_shapes=({0: Dim("a", max=8)}, {0: Dim("b", max=8)}))


@pytest.mark.parametrize("fn, match", [
    (lambda x: x.cumsum(0), r"at aten::cumsum \(node cumsum\w*, dim 0\): it scans"),
    (lambda x: x.sum(0), r"at aten::sum \(node sum\w*, dim 0\): it reduces"),
    (lambda x: x.mean(), r"at aten::mean \(node mean, its result\): its result of shape \[\] "
                         r"has no dynamic dimension"),
    (lambda x: x.sum(dim=None), r"at aten::sum \(node \w+, (every dim|its result)\)"),
    (lambda x: x.repeat(2, 1), r"at aten::repeat \(node \w+, dim 0\): it repeats"),
    (lambda x: F.pad(x, (0, 0, -1, 1)), r"at aten::constant_pad_nd \(node \w+, dim 0\)"),
    (lambda x: torch.searchsorted(x[:, 0].contiguous(), x),
     r"at aten::searchsorted \(node \w+, dim 0\): it reads rows of the dynamic tensor"),
    (lambda x: x - x.mean(0, keepdim=True), r"at aten::(mean|sum) \(node \w+, dim 0\)"),
    (lambda x: x.softmax(0), r"at aten::_softmax \(node \w+, dim 0\)"),
    (lambda x: x[-1], r"at aten::select \(node \w+, dim 0\)"),
    (lambda x: torch.cat([x, x]), r"at output 0 \(node cat\w*, dim 0\): output 0 \(shape "
                                  r"\[2\*batch, 3\]\) interleaves the batch rows"),
    (lambda x: x.flip(0), r"at aten::flip \(node \w+, dim 0\)"),
    (lambda x: x.t() @ x, r"at aten::mm \(node \w+, its result\): its result of shape "
                          r"\[3, 3\] has no dynamic dimension"),
    (lambda x: x * x.shape[0], r"at aten::mul \(node \w+, argument other\): it uses the "
                               r"dynamic size batch \(node \w+\) as a value"),
])
def test_refuses_inexact_padding(tmp_path, fn, match):
    msg = _refused(tmp_path, _Fn(fn), (torch.randn(4, 3),), match, dynamic_shapes=_BATCH)
    assert msg.startswith("export.save: padding the dynamic dimension 'batch' is not exact")
    assert msg.endswith("export with a static shape or change the model")


def test_refuses_slicing_dim_0(tmp_path):
    # min=3: torch.export itself refuses x[1:] when batch may be 2 (size 1).
    _refused(tmp_path, _Fn(lambda x: x[1:] * 2), (torch.randn(4, 3),),
             r"at aten::slice \(node \w+, dim 0\): it slices along dimension 0",
             dynamic_shapes=({0: Dim("batch", min=3, max=16)},))


def test_refuses_ops_outside_the_rule_table(tmp_path):
    _refused(tmp_path, _Fn(lambda x: x.masked_scatter(x > 0, torch.ones(2, 3))),
             (torch.randn(4, 3),), r"at aten::masked_scatter \(node \w+, dim 0\): "
             r"torch_pjrt does not know that it keeps the rows", dynamic_shapes=_BATCH)


def test_refuses_indexing_a_dynamic_tensor(tmp_path):
    idx = torch.tensor([0, 1])
    _refused(tmp_path, _Fn(lambda x: x[idx]), (torch.randn(4, 3),),
             r"at aten::index \(node \w+, dim 0\): it indexes dimension 0",
             dynamic_shapes=_BATCH)
    _refused(tmp_path, _Fn2(lambda w, i: F.embedding(i, w)),
             (torch.randn(4, 3), torch.tensor([0, 1])),
             r"at aten::embedding \(node \w+, dim 0\): it reads rows of the dynamic tensor "
             r"weight", dynamic_shapes=({0: Dim("batch", max=16)}, None))


def test_refuses_batch_statistics(tmp_path):
    _refused(tmp_path, _Fn(lambda x: F.batch_norm(x, None, None, training=True)),
             (torch.randn(4, 3),), r"(batch-norm statistics|it reduces)",
             dynamic_shapes=_BATCH)


def test_refuses_random_ops(tmp_path):
    _refused(tmp_path, _Fn(lambda x: x + torch.rand_like(x)), (torch.randn(4, 3),),
             "draws random numbers")


def test_refuses_outputs_not_computed(tmp_path):
    _refused(tmp_path, _Fn(lambda x: (x * 2, x)), (torch.randn(4, 3),),
             "output 1 returns the program input x unchanged")


class _NumberArg(nn.Module):
    def forward(self, x, k: int):
        return x * k


def test_refuses_non_tensor_inputs_and_outputs(tmp_path):
    _refused(tmp_path, _NumberArg(), (torch.randn(2), float("nan")),
             "user input k is the constant nan, not a tensor nor a None, bool, int, float "
             "or str constant")
    _refused(tmp_path, _Fn(lambda x: (x * 2, float("inf"))), (torch.randn(2),),
             "output 1 is the constant inf, not a tensor the program computes")


def test_constant_inputs_are_built_in(tmp_path):
    """An argument torch.export made a constant (k=3; HF's use_cache=False)
    is part of the program, not a runtime input: the manifest lists the
    tensor inputs only, and export.load checks a call passes the same one."""
    x = torch.randn(2)
    _, path = _save(tmp_path, _NumberArg(), (x, 3))
    m = _manifest(path)
    assert [i["name"] for i in m["inputs"]] == ["x"]
    assert m["pytree"]["input_constants"] == [{"leaf": 1, "value": 3}]
    if hasattr(_C, "Model"):
        torch.testing.assert_close(load(path)(x, 3), x * 3)
        with pytest.raises(TypeError, match="argument leaf 1 is 4; the program was "
                                            "exported with the constant 3 there"):
            load(path)(x, 4)


def test_constant_outputs_come_back(tmp_path):
    """A None loss (GPT at inference) or a number among the outputs is not a
    program result; load puts it back in its place."""
    x = torch.randn(3, 4)
    ep, path = _save(tmp_path, _Fn(lambda x: (x * 2, None, {"k": 3, "y": x + 1})), (x,))
    m = _manifest(path)
    assert [o["name"] for o in m["outputs"]] == ["output_0", "output_1"]
    assert m["pytree"]["constants"] == [{"leaf": 1, "value": None}, {"leaf": 2, "value": 3}]
    _check(path, ep, x)


def test_refuses_ops_without_lowering(tmp_path):
    ep = torch.export.export(models.MLP().eval(), (torch.randn(4, 32),))
    with config.disabled_ops("aten::addmm.default"):
        with pytest.raises(ArtifactError, match=r"have no device lowering.*aten::addmm"):
            save(ep, str(tmp_path / "model.tpj"))
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.tpj"
    path.write_bytes(b"old")
    ep = torch.export.export(_Fn(lambda x: x.cumsum(0)), (torch.randn(4, 3),),
                             dynamic_shapes=_BATCH)
    with pytest.raises(ArtifactError):
        save(ep, str(path))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.tpj"]
