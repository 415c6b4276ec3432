"""Special-function family lowerings (src/lower/special*.c) and the targeted
fixes next to them (empty_permuted, conv in bf16, sort tie order), run one op
at a time through torch_pjrt.run_aten. Accuracy is checked against torch
float64 (the truth) with the error bounds documented in special.c, and the
result is also compared with eager in the input dtype."""
import pytest
import torch

import torch_pjrt

aten = torch.ops.aten


def _grid(lo, hi, n=2001, extra=()):
    return torch.cat([torch.linspace(lo, hi, n), torch.tensor(list(extra), dtype=torch.float32)])


def _vs_f64(op, x, *pre, rtol, atol, dtype=torch.float32):
    """run_aten on x (cast to dtype) vs op on x in float64, where finite."""
    xd = x.to(dtype)
    got = torch_pjrt.run_aten(op, *pre, xd)
    assert got.dtype == op(*pre, xd).dtype
    ref = op(*pre, xd.double())
    fin = torch.isfinite(ref)
    if dtype == torch.float32:  # f64 truth beyond the f32 range is inf in f32
        fin &= ref.abs() < 3e38
    torch.testing.assert_close(got.double()[fin], ref[fin], rtol=rtol, atol=atol)
    # non-finite truths (poles, +-inf) come back identical
    nf = ~torch.isfinite(ref)
    torch.testing.assert_close(got.double()[nf], ref[nf], equal_nan=True)


SPECIAL_X = _grid(-9.5, 9.5, extra=(0.0, 0.5, 1.0, 2.0, 1e-3, -1e-3, float("nan"), 30.0))


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.full)])
@pytest.mark.parametrize("name,op,rtol,atol", [
    ("erfc", aten.erfc.default, 2e-5, 1e-7),
    ("erfcx", aten.special_erfcx.default, 2e-5, 1e-7),
    ("lgamma", aten.lgamma.default, 2e-5, 1e-5),
    ("i0", aten.i0.default, 2e-6, 0.0),
    ("i0e", aten.special_i0e.default, 2e-6, 1e-7),
    ("i1", aten.special_i1.default, 2e-6, 1e-7),
    ("i1e", aten.special_i1e.default, 2e-6, 1e-7),
    ("modified_bessel_i0", aten.special_modified_bessel_i0.default, 2e-6, 0.0),
])
def test_unary_vs_f64(name, op, rtol, atol, dtype):
    x = SPECIAL_X
    if name == "lgamma":  # away from the poles, where f32 sin(pi x) decides
        x = x[(x - x.round()).abs() > 1e-3]
    if dtype == torch.float64:
        rtol, atol = rtol * 1e-4, atol * 1e-4
    _vs_f64(op, x, rtol=rtol, atol=atol, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.full)])
def test_digamma_polygamma(dtype):
    x = SPECIAL_X[(SPECIAL_X - SPECIAL_X.round()).abs() > 0.02]
    f = 1e-4 if dtype == torch.float64 else 1.0  # torch's own f64 polygamma is off by 3e-10
    _vs_f64(aten.digamma.default, x, rtol=5e-5 * f, atol=5e-5 * f, dtype=dtype)
    for n in range(0, 5):
        _vs_f64(aten.polygamma.default, x, n, rtol=5e-5 * f, atol=5e-5 * f, dtype=dtype)


def test_digamma_edges():
    x = torch.tensor([0.0, -0.0, -1.0, -2.0, float("inf"), float("nan")])
    torch.testing.assert_close(torch_pjrt.run_aten(aten.digamma.default, x),
                               aten.digamma.default(x), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.full)])
def test_erfinv_ndtri(dtype):
    y = torch.cat([torch.linspace(-1, 1, 2001), torch.tensor([1 - 2**-23, -0.999, 1.5, -2.0])])
    f = 1e-6 if dtype == torch.float64 else 1.0
    _vs_f64(aten.erfinv.default, y, rtol=2e-6 * f, atol=1e-6 * f, dtype=dtype)
    p = torch.cat([torch.linspace(0, 1, 2001), torch.tensor([1e-30, 1e-10, -0.5, 2.0])])
    _vs_f64(aten.special_ndtri.default, p, rtol=2e-6 * f, atol=1e-6 * f, dtype=dtype)


@pytest.mark.parametrize("op", [aten.erfc.default, aten.lgamma.default, aten.digamma.default,
                                aten.i0.default, aten.erfinv.default])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_dtypes_vs_eager(op, dtype):
    x = torch.linspace(-0.99, 0.99, 101) if op == aten.erfinv.default else \
        torch.linspace(0.1, 6.0, 101)
    torch.testing.assert_close(torch_pjrt.run_aten(op, x.to(dtype)), op(x.to(dtype)),
                               atol=2e-2, rtol=2e-2)


def test_int_input_promotes():
    x = torch.arange(1, 8)
    torch.testing.assert_close(torch_pjrt.run_aten(aten.lgamma.default, x), aten.lgamma.default(x))
    torch.testing.assert_close(torch_pjrt.run_aten(aten.i0.default, x), aten.i0.default(x))


@pytest.mark.parametrize("op", [aten.cummax.default, aten.cummin.default])
@pytest.mark.parametrize("case", ["ties_nan", "int", "bool", "bf16", "dim0", "rank0"])
def test_cummax_cummin(op, case):
    nan = float("nan")
    x, dim = {
        "ties_nan": (torch.tensor([[1.0, 3, 3, 2, 5, 5, nan, 7, nan, 1], [4, 4, 4, 1, 1, 9, 0, 0, 9, 9]]), 1),
        "int": (torch.randint(0, 3, (4, 9)), -1),
        "bool": (torch.randint(0, 2, (7,)).bool(), 0),
        "bf16": (torch.randint(-3, 3, (3, 8)).bfloat16(), 1),
        "dim0": (torch.randint(0, 4, (6, 5)).float(), 0),
        "rank0": (torch.tensor(2.5), 0),
    }[case]
    want = op(x, dim)
    got = torch_pjrt.run_aten(op, x, dim)
    torch.testing.assert_close(got[0], want[0], equal_nan=True)
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_logcumsumexp(dtype):
    x = torch.randn(4, 30) * 10
    x[0, 3] = -float("inf")
    x[1, :] = -float("inf")
    x[2, 5] = float("inf")
    x[3, 7] = float("nan")
    x = x.to(dtype)
    for d in (0, 1, -1):
        torch.testing.assert_close(torch_pjrt.run_aten(aten.logcumsumexp.default, x, d),
                                   aten.logcumsumexp.default(x, d), equal_nan=True)


def test_empty_permuted_is_zeros_of_logical_shape():
    got = torch_pjrt.run_aten(aten.empty_permuted.default, [2, 3, 4], [2, 0, 1],
                              dtype=torch.float32)
    assert got.shape == (2, 3, 4) and got.dtype == torch.float32
    assert torch.equal(got, torch.zeros(2, 3, 4))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_sort_stable_ties_like_eager_stable(dtype):
    # PyTorch's sort(stable=False) leaves the tie order unspecified (std::sort on
    # CPU for long rows); ours is always stable, i.e. eager's stable=True order.
    x = torch.randint(0, 7, (3, 500)).to(dtype)
    for desc in (False, True):
        want = aten.sort.stable(x, stable=True, dim=-1, descending=desc)
        got = torch_pjrt.run_aten(aten.sort.default, x, -1, desc)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])


def test_conv_transpose_bf16_accumulates_in_f32():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5).bfloat16()
    w = torch.randn(3, 4, 3, 3).bfloat16()
    b = torch.randn(4).bfloat16()
    args = (x, w, b, [2, 2], [1, 1], [1, 1], True, [1, 1], 1)
    got = torch_pjrt.run_aten(aten.convolution.default, *args)
    f32 = aten.convolution.default(x.float(), w.float(), b.float(), *args[3:])
    torch.testing.assert_close(got, f32.bfloat16(), atol=0, rtol=0)


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0, 3.0, float("inf"), 0.5])
def test_cdist_pdist(p):
    torch.manual_seed(1)
    for s1, s2 in [((5, 4), (6, 4)), ((2, 1, 5, 3), (3, 7, 3)), ((30, 4), (27, 4))]:
        a, b = torch.randn(s1), torch.randn(s2)
        torch.testing.assert_close(torch_pjrt.run_aten(aten._cdist_forward.default, a, b, p, None),
                                   aten._cdist_forward.default(a, b, p, None))
    x = torch.randn(7, 3)
    x[3] = x[1]  # a zero distance
    torch.testing.assert_close(torch_pjrt.run_aten(aten._pdist_forward.default, x, p),
                               aten._pdist_forward.default(x, p))
    assert torch_pjrt.run_aten(aten._pdist_forward.default, torch.randn(1, 3), p).shape == (0,)


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grid_sampler_2d(mode, pad, align, dtype):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 5, 7).to(dtype)
    grid = (torch.rand(2, 4, 6, 2) * 2.6 - 1.3).to(dtype)  # some points outside [-1, 1]
    grid[0, 0, 0, 0], grid[0, 0, 1, 1] = 1.0, -1.0
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(
        torch_pjrt.run_aten(aten.grid_sampler_2d.default, x, grid, mode, pad, align),
        aten.grid_sampler_2d.default(x, grid, mode, pad, align), **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int64])
def test_signbit_angle(dtype):
    x = torch.tensor([-1.0, -0.0, 0.0, 2.0, float("nan"), -float("nan"), -float("inf")])
    if dtype == torch.int64:
        x = torch.tensor([-3, 0, 5])
    x = x.to(dtype)
    assert torch.equal(torch_pjrt.run_aten(aten.signbit.default, x), aten.signbit.default(x))
    torch.testing.assert_close(torch_pjrt.run_aten(aten.angle.default, x), aten.angle.default(x),
                               equal_nan=True)


def test_ldexp_dist():
    torch.manual_seed(3)
    a, e = torch.randn(4, 5), torch.randint(-5, 5, (4, 5))
    for x in (a, a.bfloat16()):
        torch.testing.assert_close(torch_pjrt.run_aten(aten.ldexp.Tensor, x, e), aten.ldexp.Tensor(x, e))
    b = torch.randn(5)  # broadcast against a
    for p in (0, 1, 2, 3.5, float("inf")):
        torch.testing.assert_close(torch_pjrt.run_aten(aten.dist.default, a, b, p),
                                   aten.dist.default(a, b, p))
