"""nn lowerings (convolution, pooling, resampling, random, sort) vs eager."""
import itertools

import pytest
import torch

import reference
import torch_pjrt

aten = torch.ops.aten


def run(op, *args, **kwargs):
    return torch_pjrt.run_aten(op, *args, **kwargs)


def close(got, exp, rtol=1e-4, atol=1e-4):
    if isinstance(exp, (tuple, list)):
        assert len(got) == len(exp)
        for a, b in zip(got, exp):
            if b is None:
                assert a is None
            else:
                close(a, b, rtol, atol)
        return
    torch.testing.assert_close(got, exp, rtol=rtol, atol=atol, equal_nan=True)


def tiered(items, keep=2, single=True):
    """The first `keep` cases run by default; the rest only in `make test-full`."""
    out = []
    for i, item in enumerate(items):
        args = (item,) if single else tuple(item)
        marks = () if i < keep else (pytest.mark.full,)
        out.append(pytest.param(*args, marks=marks, id=str(i)))
    return out


def gen(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


# ----------------------------------------------------------- convolution --

# (input shape, weight shape, stride, padding, dilation, groups)
CONV = [
    ((1, 4, 10, 7), (6, 2, 3, 2), [2, 1], [1, 0], [1, 2], 2),
    ((2, 6, 8, 8), (6, 1, 3, 3), [2, 2], [2, 1], [2, 1], 6),
    ((2, 4, 11), (6, 2, 3), [2], [1], [2], 2),
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1], [1, 1, 2], 1),
    ((2, 3, 10), (4, 3, 3), [1], [0], [1], 1),
    ((2, 3, 9, 9), (5, 3, 3, 3), [1, 1], [1, 1], [1, 1], 1),
    ((2, 3, 7, 7), (4, 3, 7, 7), [1, 1], [0, 0], [1, 1], 1),
]


@pytest.mark.parametrize("cfg", tiered(CONV, 4))
@pytest.mark.parametrize("bias", tiered([True, False], 1))
def test_convolution(cfg, bias):
    xs, ws, s, p, d, groups = cfg
    x, w = gen(*xs), gen(*ws, seed=1)
    b = gen(ws[0], seed=2) if bias else None
    args = (x, w, b, s, p, d, False, [0] * len(s), groups)
    close(run(aten.convolution.default, *args), aten.convolution.default(*args))


# (input shape, weight shape (Cin, Cout/g, k..), stride, padding, dilation, out_pad, groups)
CONV_T = [
    ((2, 4, 6), (4, 3, 3), [2], [1], [1], [1], 1),
    ((1, 4, 5, 5), (4, 2, 3, 3), [2, 2], [1, 0], [1, 1], [1, 0], 2),
    ((2, 2, 4, 5), (2, 3, 3, 2), [1, 3], [2, 1], [2, 1], [0, 2], 1),
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), [2, 1, 2], [0, 0, 1], [1, 1, 1], [1, 0, 0], 1),
]


@pytest.mark.parametrize("cfg", tiered(CONV_T, 2))
def test_convolution_transposed(cfg):
    xs, ws, s, p, d, op, groups = cfg
    x, w, b = gen(*xs), gen(*ws, seed=1), gen(ws[1] * groups, seed=2)
    args = (x, w, b, s, p, d, True, op, groups)
    close(run(aten.convolution.default, *args), aten.convolution.default(*args))


def test_convolution_bf16():
    x, w = gen(2, 3, 8, 8, dtype=torch.bfloat16), gen(4, 3, 3, 3, dtype=torch.bfloat16, seed=1)
    args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    close(run(aten.convolution.default, *args), aten.convolution.default(*args),
          rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("cfg", tiered(CONV, 2))
@pytest.mark.parametrize("mask", tiered([[True, True, True], [True, False, False],
                                         [False, True, False]], 1))
def test_convolution_backward(cfg, mask):
    xs, ws, s, p, d, groups = cfg
    x, w = gen(*xs), gen(*ws, seed=1)
    y = aten.convolution.default(x, w, None, s, p, d, False, [0] * len(s), groups)
    go = gen(*y.shape, seed=3)
    args = (go, x, w, [ws[0]], s, p, d, False, [0] * len(s), groups, mask)
    close(run(aten.convolution_backward.default, *args),
          aten.convolution_backward.default(*args), rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("cfg", tiered(CONV_T, 2))
def test_convolution_backward_transposed(cfg):
    xs, ws, s, p, d, op, groups = cfg
    x, w = gen(*xs), gen(*ws, seed=1)
    y = aten.convolution.default(x, w, None, s, p, d, True, op, groups)
    go = gen(*y.shape, seed=3)
    args = (go, x, w, [ws[1] * groups], s, p, d, True, op, groups, [True, True, True])
    close(run(aten.convolution_backward.default, *args),
          aten.convolution_backward.default(*args), rtol=1e-4, atol=2e-4)


# --------------------------------------------------------------- pooling --

# (shape, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL2D = [
    ((2, 3, 8, 8), [2, 2], [], [0, 0], [1, 1], False),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], [1, 1], False),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], [1, 1], True),
    ((2, 10, 11), [3, 2], [2, 3], [1, 1], [2, 1], True),
    ((1, 1, 6, 6), [2, 2], [2, 2], [1, 0], [2, 2], False),
    ((1, 2, 5, 5), [3, 3], [1, 1], [0, 0], [1, 1], True),
]


@pytest.mark.parametrize("cfg", tiered(MAXPOOL2D, 2))
def test_max_pool2d_with_indices(cfg):
    shape, k, s, p, d, ceil = cfg
    x = gen(*shape)
    args = (x, k, s, p, d, ceil)
    got = run(aten.max_pool2d_with_indices.default, *args)
    exp = aten.max_pool2d_with_indices.default(*args)
    close(got[0], exp[0])
    assert torch.equal(got[1], exp[1])
    go = gen(*exp[0].shape, seed=5)
    bargs = (go, x, k, s, p, d, ceil, exp[1])
    close(run(aten.max_pool2d_with_indices_backward.default, *bargs),
          aten.max_pool2d_with_indices_backward.default(*bargs))


def test_max_pool2d_ties_and_nan():
    x = torch.tensor([[[[1.0, 1.0, 2.0, 2.0],
                        [1.0, 1.0, 2.0, 2.0],
                        [float("nan"), 0.0, -float("inf"), -float("inf")],
                        [0.0, float("nan"), -float("inf"), -float("inf")]]]])
    args = (x, [2, 2], [2, 2], [0, 0], [1, 1], False)
    got = run(aten.max_pool2d_with_indices.default, *args)
    exp = reference.eager(aten.max_pool2d_with_indices.default, *args)
    close(got[0], exp[0], rtol=0, atol=0)
    assert torch.equal(got[1], exp[1])


def test_max_pool2d_bf16():
    x = gen(2, 3, 8, 8, dtype=torch.bfloat16)
    args = (x, [3, 3], [2, 2], [1, 1], [1, 1], False)
    got = run(aten.max_pool2d_with_indices.default, *args)
    exp = aten.max_pool2d_with_indices.default(*args)
    close(got[0], exp[0], rtol=0, atol=0)
    assert torch.equal(got[1], exp[1])


@pytest.mark.full
def test_max_pool1d_3d():
    x = gen(2, 3, 11)
    args = (x, [3], [2], [1], [1], True)
    got = run(aten.max_pool1d_with_indices.default, *args)
    exp = aten.max_pool1d_with_indices.default(*args)
    close(got[0], exp[0])
    assert torch.equal(got[1], exp[1])
    x = gen(1, 2, 5, 6, 7)
    args = (x, [2, 3, 2], [2, 2, 1], [1, 1, 0], [1, 1, 2], False)
    got = run(aten.max_pool3d_with_indices.default, *args)
    exp = aten.max_pool3d_with_indices.default(*args)
    close(got[0], exp[0])
    assert torch.equal(got[1], exp[1])
    go = gen(*exp[0].shape, seed=5)
    bargs = (go, x, [2, 3, 2], [2, 2, 1], [1, 1, 0], [1, 1, 2], False, exp[1])
    close(run(aten.max_pool3d_with_indices_backward.default, *bargs),
          aten.max_pool3d_with_indices_backward.default(*bargs))


# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVGPOOL2D = [
    ((2, 3, 8, 8), [2, 2], [], [0, 0], False, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], False, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], True, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], True, False, None),
    ((2, 10, 11), [3, 2], [2, 3], [1, 1], True, False, None),
    ((1, 2, 6, 6), [3, 2], [1, 2], [1, 0], False, True, 5),
    ((1, 2, 5, 5), [2, 2], [2, 2], [1, 1], True, False, None),
]


@pytest.mark.parametrize("cfg", tiered(AVGPOOL2D, 3))
def test_avg_pool2d(cfg):
    shape, k, s, p, ceil, cip, div = cfg
    x = gen(*shape)
    args = (x, k, s, p, ceil, cip, div)
    exp = aten.avg_pool2d.default(*args)
    close(run(aten.avg_pool2d.default, *args), exp)
    go = gen(*exp.shape, seed=5)
    bargs = (go, x, k, s, p, ceil, cip, div)
    close(run(aten.avg_pool2d_backward.default, *bargs),
          aten.avg_pool2d_backward.default(*bargs))


@pytest.mark.full
def test_avg_pool1d_3d():
    x = gen(2, 3, 11)
    args = (x, [3], [2], [1], True, False)
    close(run(aten.avg_pool1d.default, *args), aten.avg_pool1d.default(*args))
    x = gen(1, 2, 5, 6, 7)
    args = (x, [2, 3, 2], [2, 2, 1], [1, 1, 0], False, True, None)
    exp = aten.avg_pool3d.default(*args)
    close(run(aten.avg_pool3d.default, *args), exp)
    go = gen(*exp.shape, seed=5)
    bargs = (go, x, [2, 3, 2], [2, 2, 1], [1, 1, 0], False, True, None)
    close(run(aten.avg_pool3d_backward.default, *bargs),
          aten.avg_pool3d_backward.default(*bargs))


@pytest.mark.parametrize("shape,out", tiered([((2, 3, 8, 8), [4, 4]), ((2, 3, 8, 8), [1, 1]),
                                       ((1, 2, 7, 10), [3, 4]), ((3, 5, 5), [2, 3]),
                                       ((1, 2, 6, 6), [6, 6]), ((1, 1, 3, 4), [5, 7])], 3, single=False))
def test_adaptive_avg_pool2d(shape, out):
    x = gen(*shape)
    exp = aten._adaptive_avg_pool2d.default(x, out)
    close(run(aten._adaptive_avg_pool2d.default, x, out), exp)
    go = gen(*exp.shape, seed=5)
    close(run(aten._adaptive_avg_pool2d_backward.default, go, x),
          aten._adaptive_avg_pool2d_backward.default(go, x))


@pytest.mark.full
def test_adaptive_avg_pool3d():
    x = gen(1, 2, 5, 6, 4)
    exp = aten._adaptive_avg_pool3d.default(x, [2, 3, 3])
    close(run(aten._adaptive_avg_pool3d.default, x, [2, 3, 3]), exp)
    go = gen(*exp.shape, seed=5)
    close(run(aten._adaptive_avg_pool3d_backward.default, go, x),
          aten._adaptive_avg_pool3d_backward.default(go, x))


# ------------------------------------------------------------------ sort --

def check_sorted(got_v, got_i, exp_v, exp_i, x, dim):
    """Values must match exactly; indices where the value is unique in its row,
    and every index must point at its value."""
    close(got_v, exp_v, rtol=0, atol=0)
    gathered = torch.take_along_dim(x, got_i, dim=dim) if x.dim() else x
    close(gathered, got_v, rtol=0, atol=0)
    xs = x.movedim(dim, -1) if x.dim() else x.reshape(1)
    ev = exp_v.movedim(dim, -1) if x.dim() else exp_v.reshape(1)
    gi = got_i.movedim(dim, -1) if x.dim() else got_i.reshape(1)
    ei = exp_i.movedim(dim, -1) if x.dim() else exp_i.reshape(1)
    for idx in itertools.product(*[range(n) for n in ev.shape[:-1]]):
        row = xs[idx]
        for j in range(ev.shape[-1]):
            val = ev[idx][j]
            same = (row == val).sum() if not torch.isnan(val) else torch.isnan(row).sum()
            if same == 1:
                assert gi[idx][j] == ei[idx][j]


def sample_with_ties(*shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(7)
    x = torch.randint(-4, 5, shape, generator=g).to(dtype)
    if dtype.is_floating_point and x.numel() > 3:
        flat = x.view(-1)
        flat[1] = float("nan")
        flat[-2] = float("inf")
        flat[2] = -0.0
    return x


@pytest.mark.parametrize("shape,dim", tiered([((5, 7), -1), ((5, 7), 0), ((3, 4, 6), 1), ((9,), 0),
                                       ((), 0)], 3, single=False))
@pytest.mark.parametrize("descending", [False, True])
def test_sort(shape, dim, descending):
    x = sample_with_ties(*shape)
    gv, gi = run(aten.sort.default, x, dim, descending)
    ev, ei = aten.sort.default(x, dim, descending)
    check_sorted(gv, gi, ev, ei, x, dim)
    gv, gi = run(aten.sort.stable, x, stable=True, dim=dim, descending=descending)
    ev, ei = aten.sort.stable(x, stable=True, dim=dim, descending=descending)
    close(gv, ev, rtol=0, atol=0)
    assert torch.equal(gi, ei)  # stable: ties keep their order


@pytest.mark.parametrize("dtype", tiered([torch.bfloat16, torch.bool, torch.int64, torch.int32], 2))
def test_sort_dtypes(dtype):
    x = sample_with_ties(4, 9, dtype=dtype)
    for desc in (False, True):
        gv, gi = run(aten.sort.stable, x, stable=True, dim=-1, descending=desc)
        ev, ei = aten.sort.stable(x, stable=True, dim=-1, descending=desc)
        close(gv, ev, rtol=0, atol=0)
        assert torch.equal(gi, ei)


def test_argsort():
    x = sample_with_ties(6, 5)
    assert torch.equal(run(aten.argsort.stable, x, stable=True, dim=0, descending=True),
                       aten.argsort.stable(x, stable=True, dim=0, descending=True))


@pytest.mark.parametrize("k,dim,largest", tiered([(3, -1, True), (3, -1, False), (1, 0, True),
                                           (5, 1, False), (0, -1, True)], 2, single=False))
def test_topk(k, dim, largest):
    x = sample_with_ties(5, 8)
    gv, gi = run(aten.topk.default, x, k, dim, largest, True)
    ev, ei = aten.topk.default(x, k, dim, largest, True)
    check_sorted(gv, gi, ev, ei, x, dim)


def test_topk_unique_values():
    x = gen(4, 50)
    gv, gi = run(aten.topk.default, x, 10)
    ev, ei = aten.topk.default(x, 10)
    close(gv, ev, rtol=0, atol=0)
    assert torch.equal(gi, ei)


@pytest.mark.parametrize("keepdim", tiered([True, False], 1))
def test_kthvalue(keepdim):
    x = gen(4, 9)
    gv, gi = run(aten.kthvalue.default, x, 3, 1, keepdim)
    ev, ei = aten.kthvalue.default(x, 3, 1, keepdim)
    close(gv, ev, rtol=0, atol=0)
    assert torch.equal(gi, ei)


# ---------------------------------------------------------------- random --
# run_aten does not feed the trailing rng state, so these build the graph with
# the extra tensor<2xui64> argument themselves.

def run_random(op, seed, *args, **kwargs):
    from torch_pjrt import _C, _aten
    fake = _aten._fake_outputs(op, args, kwargs)
    flat = _aten._flatten_outputs(fake, "random")
    graph = _C.Graph()
    inputs = []

    def tensor_id(t):
        inputs.append(t)
        return graph.param(_aten.dtype_code(t.dtype), tuple(t.shape))

    encoded = _aten.encode_args(op, args, kwargs, tensor_id)
    state = torch.tensor([seed, 12345], dtype=torch.uint64)
    encoded.append(("tensor", tensor_id(state)))
    out_types = [(_aten.dtype_code(o.dtype), tuple(o.shape)) for o in flat]
    values = graph.lower(_aten.target_name(op), encoded, out_types)
    graph.set_results(values)
    outs = torch_pjrt.run_stablehlo(graph.to_stablehlo(), inputs)
    return outs[0] if len(outs) == 1 else tuple(outs)


@pytest.mark.parametrize("dtype", tiered([torch.float32, torch.bfloat16, torch.float64, torch.float16], 1))
def test_rand(dtype):
    x = run_random(aten.rand.default, 1, [200, 100], dtype=dtype)
    assert x.dtype == dtype and x.shape == (200, 100)
    assert x.min() >= 0 and x.max() < 1
    xf = x.double()
    assert abs(xf.mean() - 0.5) < 0.01 and abs(xf.var() - 1 / 12) < 0.005
    assert torch.equal(x, run_random(aten.rand.default, 1, [200, 100], dtype=dtype))
    assert not torch.equal(x, run_random(aten.rand.default, 2, [200, 100], dtype=dtype))


@pytest.mark.parametrize("dtype", tiered([torch.float32, torch.bfloat16], 1))
def test_randn(dtype):
    x = run_random(aten.randn.default, 3, [300, 100], dtype=dtype).double()
    assert abs(x.mean()) < 0.02 and abs(x.var() - 1) < 0.03
    assert torch.isfinite(x).all()
    # fraction within one sigma ~ 0.6827
    assert abs((x.abs() < 1).double().mean() - 0.6827) < 0.01
    like = run_random(aten.randn_like.default, 3, torch.zeros(300, 100, dtype=dtype))
    assert like.dtype == dtype and like.shape == (300, 100)


@pytest.mark.full
def test_rand_like_uniform_normal():
    base = torch.zeros(200, 150)
    u = run_random(aten.uniform.default, 4, base, -2.0, 3.0)
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 0.05
    r = run_random(aten.rand_like.default, 4, base)
    assert r.shape == base.shape and 0 <= r.min() and r.max() < 1
    n = run_random(aten.normal.float_float, 5, 2.0, 0.5, [200, 150])
    assert abs(n.mean() - 2) < 0.01 and abs(n.std() - 0.5) < 0.01
    mean = torch.linspace(-3, 3, 150).expand(200, 150).contiguous()
    n = run_random(aten.normal.Tensor_float, 6, mean, 0.1)
    assert ((n - mean).mean()).abs() < 0.005 and abs((n - mean).std() - 0.1) < 0.005
    std = torch.full((200, 150), 3.0)
    n = run_random(aten.normal.Tensor_Tensor, 7, mean, std)
    assert abs((n - mean).std() - 3) < 0.05


def test_bernoulli_randint():
    base = torch.zeros(200, 100)
    b = run_random(aten.bernoulli.p, 8, base, 0.3)
    assert b.dtype == torch.float32 and set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.015
    p = torch.rand(200, 100, generator=torch.Generator().manual_seed(0))
    b = run_random(aten.bernoulli.default, 9, p)
    assert abs(b.mean() - p.mean()) < 0.015
    assert (b[p < 0.01] == 0).float().mean() > 0.97
    i = run_random(aten.randint.low, 10, -3, 7, [20000])
    assert i.dtype == torch.int64 and i.min() == -3 and i.max() == 6
    counts = torch.bincount(i + 3)
    assert (counts - 2000).abs().max() < 250
    i = run_random(aten.randint.default, 11, 5, [100], dtype=torch.int32)
    assert i.dtype == torch.int32 and i.min() >= 0 and i.max() < 5


@pytest.mark.parametrize("p", tiered([0.2, 1.0, 0.0, 0.5], 2))
def test_native_dropout(p):
    x = gen(100, 200) + 3.0
    out, mask = run_random(aten.native_dropout.default, 12, x, p, True)
    assert mask.dtype == torch.bool
    assert abs(mask.float().mean() - (1 - p)) < 0.02
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    close(out, x * mask * scale, rtol=1e-6, atol=1e-6)
    out2, mask2 = run_random(aten.native_dropout.default, 12, x, p, True)
    assert torch.equal(mask, mask2)
    if 0 < p < 1:
        _, mask3 = run_random(aten.native_dropout.default, 13, x, p, True)
        assert not torch.equal(mask, mask3)
    out, mask = run_random(aten.native_dropout.default, 12, x, p, False)
    assert torch.equal(out, x) and mask.all()
    go = gen(100, 200, seed=4)
    close(run(aten.native_dropout_backward.default, go, mask2, scale),
          aten.native_dropout_backward.default(go, mask2, scale))


# -------------------------------------------------------------- upsample --

@pytest.mark.parametrize("shape,size,scales", tiered([
    ((2, 3, 4, 5), [8, 10], None), ((1, 2, 5, 7), [7, 4], None), ((1, 2, 5, 7), None, [1.7, 0.6]),
    ((1, 1, 3, 3), [3, 9], None)], 2, single=False))
def test_upsample_nearest2d(shape, size, scales):
    x = gen(*shape)
    exp = aten.upsample_nearest2d.vec(x, size, scales)
    close(run(aten.upsample_nearest2d.vec, x, size, scales), exp, rtol=0, atol=0)
    go = gen(*exp.shape, seed=2)
    osz = list(exp.shape[2:])
    sh, sw = (scales if scales else (None, None))
    bargs = (go, osz, list(shape), sh, sw)
    close(run(aten.upsample_nearest2d_backward.default, *bargs),
          aten.upsample_nearest2d_backward.default(*bargs))


@pytest.mark.parametrize("shape,size,align,scales", tiered([
    ((2, 3, 4, 5), [8, 10], False, None), ((2, 3, 4, 5), [8, 10], True, None),
    ((1, 2, 7, 6), [3, 4], False, None), ((1, 2, 7, 6), [3, 4], True, None),
    ((1, 2, 5, 7), None, False, [1.7, 2.5]), ((1, 1, 4, 4), [1, 6], True, None)], 3, single=False))
def test_upsample_bilinear2d(shape, size, align, scales):
    x = gen(*shape)
    exp = aten.upsample_bilinear2d.vec(x, size, align, scales)
    close(run(aten.upsample_bilinear2d.vec, x, size, align, scales), exp)
    go = gen(*exp.shape, seed=2)
    osz = list(exp.shape[2:])
    sh, sw = (scales if scales else (None, None))
    bargs = (go, osz, list(shape), align, sh, sw)
    close(run(aten.upsample_bilinear2d_backward.default, *bargs),
          aten.upsample_bilinear2d_backward.default(*bargs))


@pytest.mark.full
def test_upsample_1d_3d():
    x = gen(2, 3, 7)
    close(run(aten.upsample_nearest1d.vec, x, [12], None),
          aten.upsample_nearest1d.vec(x, [12], None), rtol=0, atol=0)
    close(run(aten.upsample_linear1d.vec, x, [12], False, None),
          aten.upsample_linear1d.vec(x, [12], False, None))
    x = gen(1, 2, 3, 4, 5)
    close(run(aten.upsample_trilinear3d.vec, x, [5, 6, 4], True, None),
          aten.upsample_trilinear3d.vec(x, [5, 6, 4], True, None))
    close(run(aten.upsample_nearest3d.vec, x, [5, 6, 4], None),
          aten.upsample_nearest3d.vec(x, [5, 6, 4], None), rtol=0, atol=0)


def test_upsample_bf16_default_overload():
    x = gen(1, 2, 4, 4, dtype=torch.bfloat16)
    close(run(aten.upsample_bilinear2d.default, x, [7, 9], False),
          aten.upsample_bilinear2d.default(x, [7, 9], False), rtol=1e-2, atol=1e-2)
    close(run(aten.upsample_nearest2d.default, x, [7, 9]),
          aten.upsample_nearest2d.default(x, [7, 9]), rtol=0, atol=0)


@pytest.mark.parametrize("shape,out", tiered([((2, 3, 8, 8), [4, 4]), ((1, 2, 7, 10), [3, 4]),
                                       ((3, 5, 5), [2, 3]), ((1, 1, 3, 4), [5, 7])], 2, single=False))
def test_adaptive_max_pool2d(shape, out):
    x = gen(*shape)
    gv, gi = run(aten.adaptive_max_pool2d.default, x, out)
    ev, ei = aten.adaptive_max_pool2d.default(x, out)
    close(gv, ev, rtol=0, atol=0)
    assert torch.equal(gi, ei)
    go = gen(*ev.shape, seed=5)
    close(run(aten.adaptive_max_pool2d_backward.default, go, x, ei),
          aten.adaptive_max_pool2d_backward.default(go, x, ei))


def test_median():
    x = gen(5, 8)
    close(run(aten.median.default, x), aten.median.default(x), rtol=0, atol=0)
    x[1, 3] = float("nan")
    x[1, 6] = float("nan")
    close(run(aten.median.default, x), reference.eager(aten.median.default, x), rtol=0, atol=0)
    for dim, keepdim in [(1, False), (0, True)]:
        gv, gi = run(aten.median.dim, x, dim, keepdim)
        ev, ei = reference.eager(aten.median.dim, x, dim, keepdim)
        close(gv, ev, rtol=0, atol=0)
        assert torch.equal(gi, ei)
    xi = torch.randint(0, 100, (4, 7), generator=torch.Generator().manual_seed(1))
    xi = xi * 1000 + torch.arange(28).view(4, 7)  # unique values: indices are defined
    gv, gi = run(aten.median.dim, xi, -1, False)
    ev, ei = aten.median.dim(xi, -1, False)
    assert torch.equal(gv, ev) and torch.equal(gi, ei)


def test_pooling_int64():
    x = torch.randint(-50, 50, (2, 3, 7, 7), generator=torch.Generator().manual_seed(2))
    args = (x, [3, 3], [2, 2], [1, 1], [1, 1], True)
    got = run(aten.max_pool2d_with_indices.default, *args)
    exp = aten.max_pool2d_with_indices.default(*args)
    assert torch.equal(got[0], exp[0]) and torch.equal(got[1], exp[1])
    for args in [(x, [3, 3], [2, 2], [1, 1], True, False, None),
                 (x, [2, 2], [2, 2], [0, 0], False, True, 3)]:
        assert torch.equal(run(aten.avg_pool2d.default, *args), aten.avg_pool2d.default(*args))
    xu = x.abs().to(torch.uint8)
    assert torch.equal(run(aten.upsample_nearest2d.vec, xu, [9, 11], None),
                       aten.upsample_nearest2d.vec(xu, [9, 11], None))


def test_adaptive_avg_pool2d_inf():
    x = gen(1, 2, 7, 10)
    x[0, 0, 3, 4] = float("inf")
    x[0, 1, 0, 0] = -float("inf")
    close(run(aten._adaptive_avg_pool2d.default, x, [3, 4]),
          reference.eager(aten._adaptive_avg_pool2d.default, x, [3, 4]))


def test_upsample_bilinear2d_inf():
    x = gen(1, 2, 5, 6)
    x[0, 0, 2, 3] = float("inf")
    for align in (False, True):
        close(run(aten.upsample_bilinear2d.vec, x, [9, 13], align, None),
              reference.eager(aten.upsample_bilinear2d.vec, x, [9, 13], align, None))


def test_convolution_dtypes():
    x, w = gen(1, 3, 8, 8, dtype=torch.float64), gen(4, 3, 3, 3, dtype=torch.float64, seed=1)
    args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    close(run(aten.convolution.default, *args), aten.convolution.default(*args))
    x, w = gen(2, 4, 8, 8, dtype=torch.bfloat16), gen(4, 2, 3, 3, dtype=torch.bfloat16, seed=1)
    y = aten.convolution.default(x, w, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 2)
    go = gen(*y.shape, dtype=torch.bfloat16, seed=3)
    args = (go, x, w, [4], [2, 2], [1, 1], [1, 1], False, [0, 0], 2, [True, True, True])
    close(run(aten.convolution_backward.default, *args),
          aten.convolution_backward.default(*args), rtol=2e-2, atol=1e-1)


# _weight_norm_interface and its backward (norm_weight.c)
@pytest.mark.parametrize("shape,dim", [((16, 8, 8), 2), ((6, 4, 3), 0), ((5, 7), 1)])
def test_weight_norm_interface_forward_backward(shape, dim):
    op, bw = torch.ops.aten._weight_norm_interface.default, torch.ops.aten._weight_norm_interface_backward.default
    v = torch.randn(shape)
    gshape = [1] * len(shape)
    gshape[dim] = shape[dim]
    g = torch.randn(gshape)
    want = op(v, g, dim)
    got = torch_pjrt.run_aten(op, v, g, dim)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    gw = torch.randn(shape)
    got = torch_pjrt.run_aten(bw, gw, v, g, want[1], dim)
    for a, b in zip(got, bw(gw, v, g, want[1], dim)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mask_type", [None, 0, 1, 2])
@pytest.mark.parametrize("need_weights,average", [(False, True), (True, True), (True, False)])
def test_native_multi_head_attention(mask_type, need_weights, average):
    """nn.MultiheadAttention's / TransformerEncoderLayer's eval fast path op on
    the device against the CPU kernel: self and cross attention, bool and
    additive float masks of each mask type, the weights (averaged or per
    head) or None."""
    op = torch.ops.aten._native_multi_head_attention.default
    b, t, d, h = 3, 5, 16, 4
    for same in (True, False):
        for float_mask in (False, True):
            q = torch.randn(b, t, d)
            k, v = (q, q) if same else (torch.randn(b, t, d), torch.randn(b, t, d))
            shape = {None: None, 0: (t, t), 1: (b, t), 2: (b, h, t, t)}[mask_type]
            mask = None if shape is None else torch.rand(shape) < 0.3
            if mask is not None:
                mask.view(-1, t)[:, 0] = False  # no fully masked row (NaN on the CPU)
                if float_mask:
                    mask = torch.zeros(shape).masked_fill(mask, float("-inf"))
            args = (q, k, v, d, h, torch.randn(3 * d, d) * 0.3, torch.randn(3 * d),
                    torch.randn(d, d) * 0.3, torch.randn(d), mask, need_weights, average, mask_type)
            want = op(*args)
            got = op(*[a.to("pjrt") if isinstance(a, torch.Tensor) else a for a in args])
            torch.testing.assert_close(got[0].cpu(), want[0], atol=1e-5, rtol=1e-5)
            if need_weights:
                torch.testing.assert_close(got[1].cpu(), want[1], atol=1e-5, rtol=1e-5)
            else:
                assert got[1] is None and want[1] is None


def test_transformer_encoder_eval_fast_path():
    """model.eval() + no_grad runs TransformerEncoderLayer's fast path
    (_transformer_encoder_layer_fwd, _native_multi_head_attention) on the
    device: encoder (post- and pre-norm, padding mask without nested
    tensors), decoder layer and nn.MultiheadAttention, against CPU."""
    for norm_first in (False, True):
        enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.1, batch_first=True, norm_first=norm_first), 2,
            enable_nested_tensor=False).eval()
        mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
        x = torch.randn(3, 5, 16)
        pad = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
        with torch.no_grad():
            want = [enc(x), enc(x, src_key_padding_mask=pad), *mha(x, x, x, key_padding_mask=pad)]
            enc.to("pjrt")
            mha.to("pjrt")
            xd, pd = x.to("pjrt"), pad.to("pjrt")
            got = [enc(xd), enc(xd, src_key_padding_mask=pd), *mha(xd, xd, xd, key_padding_mask=pd)]
        for g, w in zip(got, want):
            torch.testing.assert_close(g.cpu(), w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, float("inf")])
def test_cdist_backward(p):
    """torch.cdist's gradients (_cdist_backward) on the device against the
    CPU, batched or not, with zero distances and zero difference components."""
    for s1, s2 in [((4, 3), (5, 3)), ((2, 4, 3), (2, 5, 3)), ((3, 2), (3, 2))]:
        x1, x2 = torch.randn(*s1), torch.randn(*s2)
        if s1 == s2:  # pairs at distance zero
            x2 = x1.clone()
            x2[0] += 1
        x2[..., 0, 0] = x1[..., 0, 0]
        a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        d = torch.cdist(a, b, p)
        g = torch.randn_like(d)
        d.backward(g)
        ad, bd = x1.to("pjrt").requires_grad_(), x2.to("pjrt").requires_grad_()
        torch.cdist(ad, bd, p).backward(g.to("pjrt"))
        torch.testing.assert_close(ad.grad.cpu(), a.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bd.grad.cpu(), b.grad, atol=1e-5, rtol=1e-4)


def test_upsample_bicubic2d_backward():
    import torch.nn.functional as F
    for shape, kw in [((1, 2, 4, 5), dict(scale_factor=2)), ((2, 1, 3, 3), dict(size=(7, 5))),
                      ((1, 1, 6, 6), dict(size=(4, 3)))]:
        for ac in (False, True):
            x = torch.randn(*shape, requires_grad=True)
            out = F.interpolate(x, mode="bicubic", align_corners=ac, **kw)
            go = torch.randn_like(out)
            out.backward(go)
            xd = x.detach().to("pjrt").requires_grad_()
            F.interpolate(xd, mode="bicubic", align_corners=ac, **kw).backward(go.to("pjrt"))
            torch.testing.assert_close(xd.grad.cpu(), x.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, float("inf")])
def test_pdist_backward(p):
    """F.pdist's gradient (_pdist_backward) against the CPU, with two equal
    rows (a zero distance: zero gradient, not NaN) and an equal component."""
    import torch.nn.functional as F
    x = torch.randn(5, 3)
    x[3] = x[1]
    x[4, 0] = x[0, 0]
    a = x.clone().requires_grad_()
    d = F.pdist(a, p)
    g = torch.randn_like(d)
    d.backward(g)
    ad = x.to("pjrt").requires_grad_()
    F.pdist(ad, p).backward(g.to("pjrt"))
    torch.testing.assert_close(ad.grad.cpu(), a.grad, atol=1e-5, rtol=1e-4)
