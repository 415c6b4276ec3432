"""Elementwise-family lowerings (arithmetic, comparison, logic, unary math,
activations and their backward ops, creation ops) run one op at a time through
torch_pjrt.run_aten and compared with PyTorch eager on CPU. The default run
covers float32/int64 and the edge cases; dtype sweeps are marked `full`."""
import math

import pytest
import torch

import reference
import torch_pjrt

aten = torch.ops.aten
INF, NAN = math.inf, math.nan


def _tol(dtype):
    if dtype in (torch.bfloat16, torch.float16):
        return dict(atol=1e-2, rtol=1.6e-2)
    if dtype == torch.float32:
        return dict(atol=2e-6, rtol=2e-6)
    return None  # assert_close defaults (exact for integers and bool)


def check(op, *args, tol=None, **kwargs):
    want = reference.eager(op, *args, **kwargs)
    got = torch_pjrt.run_aten(op, *args, **kwargs)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    t = tol if tol is not None else _tol(want.dtype)
    if t is None:
        torch.testing.assert_close(got, want, equal_nan=True)
    else:
        torch.testing.assert_close(got, want, equal_nan=True, **t)


def rand(*shape, dtype=torch.float32, lo=-3.0, hi=3.0):
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if not dtype.is_floating_point:
        low = 0 if dtype == torch.uint8 else int(lo) - 2
        return torch.randint(low, int(hi) + 3, shape, dtype=dtype)
    return (torch.rand(shape, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


def special(dtype=torch.float32):
    return torch.tensor([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, INF, -INF, NAN, 1e-30,
                         3.0, -7.25], dtype=dtype)


FULL = pytest.mark.full
F32 = [torch.float32]
ALL_FLOAT = [torch.float32, pytest.param(torch.bfloat16, marks=FULL),
             pytest.param(torch.float16, marks=FULL), pytest.param(torch.float64, marks=FULL)]
NUMERIC = ALL_FLOAT + [torch.int64, pytest.param(torch.int32, marks=FULL)]

# --------------------------------------------------------------- arithmetic --

@pytest.mark.parametrize("dtype", NUMERIC)
def test_add_sub_mul(dtype):
    a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype)
    check(aten.add.Tensor, a, b)
    check(aten.add.Tensor, a, b, alpha=2)
    check(aten.sub.Tensor, a, b, alpha=3)
    check(aten.mul.Tensor, a, b)
    check(aten.rsub.Tensor, a, b, alpha=2)
    check(aten.add.Scalar, a, 3)
    check(aten.mul.Scalar, a, 2)
    check(aten.rsub.Scalar, a, 1)


def test_arith_promotion_and_rank0():
    i, f = rand(2, 3, dtype=torch.int64), rand(2, 3)
    check(aten.add.Tensor, i, f)
    check(aten.add.Tensor, i, 2.5)
    check(aten.mul.Tensor, f, torch.tensor(3, dtype=torch.int64))
    check(aten.add.Tensor, i, torch.tensor(1.5, dtype=torch.float64))
    check(aten.add.Tensor, rand(), rand())
    check(aten.sub.Tensor, f, rand(2, 1, dtype=torch.float64), alpha=0.5)
    check(aten.add.Tensor, rand(2, 3, dtype=torch.bool), rand(2, 3, dtype=torch.bool))
    check(aten.mul.Tensor, rand(2, 3, dtype=torch.bool), rand(3, dtype=torch.bool))
    check(aten.add.Tensor, special(), special().flip(0))
    check(aten.add.Tensor, rand(0, 3), rand(3))


@pytest.mark.parametrize("dtype", NUMERIC)
def test_div_modes(dtype):
    a = rand(4, 5, dtype=dtype, lo=-9, hi=9)
    b = rand(4, 5, dtype=dtype, lo=-4, hi=4)
    if not dtype.is_floating_point:
        b = torch.where(b == 0, torch.ones_like(b), b)
    check(aten.div.Tensor, a, b)
    check(aten.div.Tensor_mode, a, b, rounding_mode="trunc")
    check(aten.div.Tensor_mode, a, b, rounding_mode="floor")
    check(aten.div.Scalar_mode, a, -3, rounding_mode="floor")
    check(aten.div.Scalar, a, 4)
    check(aten.remainder.Tensor, a, b)
    check(aten.remainder.Scalar, a, -3)
    check(aten.fmod.Tensor, a, b)
    check(aten.fmod.Scalar, a, 3)
    check(aten.floor_divide.default, a, b)


def test_div_special_values():
    a = special()
    b = torch.tensor([0.0, 0.0, 0.0, -0.0, 3.0, -3.0, 0.5, 2.0, 2.0, -2.0, 1.0, INF, -INF, 1.5])
    for mode in (None, "trunc", "floor"):
        check(aten.div.Tensor_mode, a, b, rounding_mode=mode)
    check(aten.remainder.Tensor, a, b)
    check(aten.fmod.Tensor, a, b)
    check(aten.remainder.Scalar_Tensor, 5, b)


@pytest.mark.parametrize("dtype", NUMERIC)
def test_pow(dtype):
    if dtype.is_floating_point:
        a = rand(3, 4, dtype=dtype, lo=0.1, hi=3)
        check(aten.pow.Tensor_Tensor, a, rand(3, 4, dtype=dtype))
        check(aten.pow.Tensor_Scalar, a, 0.5)
        check(aten.pow.Tensor_Scalar, rand(3, 4, dtype=dtype), 2)
        check(aten.pow.Tensor_Scalar, rand(3, 4, dtype=dtype), 3)
        check(aten.pow.Scalar, 2.0, rand(3, 4, dtype=dtype))
    else:
        a = torch.tensor([2, -1, -1, 1, 0, 3, -2, 5, 7], dtype=dtype)
        e = torch.tensor([-1, -3, -2, -5, 3, 9, 3, 0, 2], dtype=dtype)
        check(aten.pow.Tensor_Tensor, a, e)
        check(aten.pow.Tensor_Scalar, a, 3)
        check(aten.pow.Scalar, 3, e.abs())


def test_pow_mixed_and_special():
    check(aten.pow.Tensor_Scalar, rand(3, dtype=torch.int64), 0.5)
    check(aten.pow.Tensor_Tensor, special(), torch.full((14,), 2.0))
    check(aten.pow.Tensor_Tensor, torch.full((14,), 2.0), special())


@pytest.mark.parametrize("dtype", NUMERIC)
def test_max_min(dtype):
    a, b = rand(3, 4, dtype=dtype), rand(1, 4, dtype=dtype)
    for op in (aten.maximum.default, aten.minimum.default):
        check(op, a, b)
    if dtype.is_floating_point:
        for op in (aten.fmax.default, aten.fmin.default):
            check(op, a, b)


def test_max_min_nan():
    a = torch.tensor([NAN, 1.0, NAN, -INF, 2.0])
    b = torch.tensor([1.0, NAN, NAN, 3.0, INF])
    for op in (aten.maximum.default, aten.minimum.default, aten.fmax.default, aten.fmin.default):
        check(op, a, b)
    check(aten.maximum.default, rand(4, dtype=torch.bool), rand(4, dtype=torch.bool))


@pytest.mark.parametrize("dtype", ALL_FLOAT)
def test_atan2_hypot_copysign_lerp(dtype):
    a, b = rand(3, 4, dtype=dtype), rand(3, 4, dtype=dtype)
    check(aten.atan2.default, a, b)
    check(aten.hypot.default, a, b)
    check(aten.copysign.Tensor, a, b)
    check(aten.copysign.Scalar, a, -1.0)
    check(aten.lerp.Scalar, a, b, 0.3)
    check(aten.lerp.Scalar, a, b, 0.8)
    check(aten.lerp.Tensor, a, b, rand(4, dtype=dtype, lo=-1, hi=2))


def test_binary_float_special():
    a, b = special(), special().flip(0)
    check(aten.atan2.default, a, b)
    check(aten.hypot.default, a, b)
    check(aten.hypot.default, torch.tensor([3e38, 1e-40]), torch.tensor([3e38, 1e-40]))
    check(aten.copysign.Tensor, a, b)
    check(aten.copysign.Tensor, rand(4, dtype=torch.int64), torch.tensor([-0.0, 0.0, -1.0, 2.0]))
    check(aten.atan2.default, rand(4, dtype=torch.int64), rand(4, dtype=torch.int64))

# ------------------------------------------------------- comparison / logic --

CMP = [aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge]


@pytest.mark.parametrize("dtype", NUMERIC + [pytest.param(torch.bool, marks=FULL)])
def test_compare(dtype):
    a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype)
    b[0] = a[0, 0]
    for op in CMP:
        check(op.Tensor, a, b)
        check(op.Scalar, a, 1)


def test_compare_promotion():
    i = torch.tensor([0, 1, 2, 3])
    for op in CMP:
        check(op.Scalar, i, 1.5)
        check(op.Tensor, i, torch.tensor([0.5, 1.0, 2.5, 3.0]))
        check(op.Tensor, special(), special().flip(0))
        check(op.Tensor, rand(3, dtype=torch.float16), rand(3, dtype=torch.float32))
        check(op.Tensor, i, torch.tensor(1.5))


def test_logical_bitwise():
    for dtype in (torch.bool, torch.int64, torch.float32):
        a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype)
        check(aten.logical_and.default, a, b)
        check(aten.logical_or.default, a, b)
        check(aten.logical_xor.default, a, b)
        check(aten.logical_not.default, a)
    check(aten.logical_and.default, special(), rand(14, dtype=torch.int64))
    for dtype in (torch.bool, torch.int64, torch.int32, torch.uint8):
        a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype)
        check(aten.bitwise_and.Tensor, a, b)
        check(aten.bitwise_or.Tensor, a, b)
        check(aten.bitwise_xor.Tensor, a, b)
        check(aten.bitwise_not.default, a)
        check(aten.bitwise_and.Scalar, a, 1)
        check(aten.bitwise_xor.Scalar, a, True if dtype == torch.bool else 6)


def test_shifts():
    a = torch.tensor([1, -8, 255, -1, 7, 3], dtype=torch.int64)
    s = torch.tensor([0, 1, 3, 63, 64, 70], dtype=torch.int64)
    check(aten.bitwise_left_shift.Tensor, a, s)
    check(aten.bitwise_right_shift.Tensor, a, s)
    check(aten.bitwise_left_shift.Tensor_Scalar, a, 2)
    check(aten.bitwise_right_shift.Tensor_Scalar, a, 1)
    u = torch.tensor([1, 128, 255, 3], dtype=torch.uint8)
    check(aten.bitwise_right_shift.Tensor_Scalar, u, 1)
    check(aten.bitwise_left_shift.Tensor_Scalar, u, 1)


@pytest.mark.parametrize("dtype", NUMERIC + [pytest.param(torch.bool, marks=FULL)])
def test_where_masked_fill(dtype):
    c = rand(3, 4, dtype=torch.bool)
    a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype)
    check(aten.where.self, c, a, b)
    check(aten.where.self, rand(4, dtype=torch.bool), rand(3, 1, dtype=dtype), b)
    check(aten.masked_fill.Scalar, a, c, 1)
    check(aten.masked_fill.Scalar, a, rand(4, dtype=torch.bool), 0)
    check(aten.masked_fill.Tensor, a, c, torch.tensor(1, dtype=dtype))


def test_where_scalars_and_promotion():
    c = rand(5, dtype=torch.bool)
    check(aten.where.ScalarSelf, c, 2.5, rand(5))
    check(aten.where.ScalarOther, c, rand(5), -1.0)
    check(aten.where.Scalar, c, 1.0, 0.0)
    check(aten.where.self, c, rand(5, dtype=torch.int64), rand(5))
    check(aten.masked_fill.Scalar, rand(5), c, -INF)


@pytest.mark.parametrize("dtype", NUMERIC)
def test_clamp(dtype):
    x = rand(4, 5, dtype=dtype)
    check(aten.clamp.default, x, -1, 1)
    check(aten.clamp.default, x, None, 0)
    check(aten.clamp.default, x, 2, -2)
    check(aten.clamp_min.default, x, 0)
    check(aten.clamp_max.default, x, 1)
    lo, hi = rand(5, dtype=dtype), rand(4, 1, dtype=dtype)
    check(aten.clamp.Tensor, x, lo, hi)
    check(aten.clamp.Tensor, x, None, hi)
    check(aten.clamp_min.Tensor, x, lo)
    check(aten.clamp_max.Tensor, x, hi)


def test_clamp_special():
    check(aten.clamp.default, special(), -1.0, 1.0)
    check(aten.clamp.default, rand(4, dtype=torch.int64), 0.5, 2.5)
    check(aten.clamp_min.default, special(), NAN)


@pytest.mark.parametrize("dtype", ALL_FLOAT + [torch.int64, torch.bool])
def test_classify(dtype):
    x = special().to(dtype) if dtype.is_floating_point else rand(4, dtype=dtype)
    for op in (aten.isnan.default, aten.isinf.default, aten.isposinf.default,
               aten.isneginf.default):
        check(op, x)
    check(aten.nan_to_num.default, x)
    if dtype.is_floating_point:
        check(aten.nan_to_num.default, x, 1.0, 100.0, -100.0)
        check(aten.nan_to_num.default, x, None, None, -5.0)

# ------------------------------------------------------------------ unary --

UNARY = ["neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt",
         "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
         "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round",
         "trunc", "frac", "sign", "sgn"]
DOMAIN = {"log": (0.01, 5), "log2": (0.01, 5), "log10": (0.01, 5), "sqrt": (0.0, 5),
          "rsqrt": (0.05, 5), "log1p": (-0.9, 5), "asin": (-1, 1), "acos": (-1, 1),
          "atanh": (-0.99, 0.99), "acosh": (1.0, 10), "reciprocal": (0.1, 4)}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", ALL_FLOAT)
def test_unary_float(name, dtype):
    op = getattr(aten, name).default
    lo, hi = DOMAIN.get(name, (-4.0, 4.0))
    # in-domain random values plus 0, -0, +-1, +-inf, NaN, tiny, ...
    check(op, torch.cat([rand(24, dtype=dtype, lo=lo, hi=hi), special(dtype)]))


@FULL
@pytest.mark.parametrize("name", UNARY)
def test_unary_rank0(name):
    check(getattr(aten, name).default, torch.tensor(0.75))


@FULL
@pytest.mark.parametrize("name", ["neg", "abs", "floor", "ceil", "round", "trunc", "sign",
                                  "exp", "sqrt", "sin", "sigmoid", "erf", "reciprocal"])
def test_unary_int(name):
    x = torch.tensor([-3, -1, 0, 1, 2, 5], dtype=torch.int64)
    if name in ("sqrt",):
        x = x.abs()
    if name == "reciprocal":
        x = torch.tensor([-3, -1, 1, 2, 5])
    check(getattr(aten, name).default, x)


def test_unary_ranges():
    big = torch.tensor([1e-8, -1e-8, 20.0, -30.0, 88.0, -88.0, 1e10, -1e10, 100.0])
    for name in ("sinh", "cosh", "asinh", "tanh", "sigmoid", "expm1", "erf", "atan"):
        check(getattr(aten, name).default, big)
    check(aten.erf.default, torch.linspace(-6, 6, 2001))
    check(aten.erf.default, torch.linspace(-7, 7, 2001, dtype=torch.float64))
    check(aten.acosh.default, torch.tensor([1.0, 1.0001, 1e10, 0.5]))
    check(aten.atanh.default, torch.tensor([1e-7, 0.999, -1.0, 1.0]))
    check(aten.round.default, torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 1e20]))


def test_round_decimals():
    x = rand(20, lo=-100, hi=100)
    for d in (0, 1, 2, 3, -1, -2):
        check(aten.round.decimals, x, decimals=d)
    check(aten.round.decimals, torch.tensor([2.5, 0.125, 1.005, 15.0, 25.0]), decimals=-1)

# ------------------------------------------------------------ activations --

@pytest.mark.parametrize("dtype", ALL_FLOAT)
def test_activations(dtype):
    x = rand(4, 6, dtype=dtype, lo=-5, hi=5)
    x.view(-1)[:3] = torch.tensor([0.0, 3.0, -3.0], dtype=dtype)
    dy = rand(4, 6, dtype=dtype)
    check(aten.relu.default, x)
    check(aten.gelu.default, x)
    check(aten.gelu.default, x, approximate="tanh")
    check(aten.gelu_backward.default, dy, x)
    check(aten.gelu_backward.default, dy, x, approximate="tanh")
    check(aten.silu.default, x)
    check(aten.silu_backward.default, dy, x)
    check(aten.hardtanh.default, x)
    check(aten.hardtanh.default, x, -2.0, 0.5)
    check(aten.hardtanh_backward.default, dy, x, -1.0, 1.0)
    check(aten.leaky_relu.default, x)
    check(aten.leaky_relu.default, x, 0.2)
    check(aten.leaky_relu_backward.default, dy, x, 0.2, False)
    check(aten.elu.default, x)
    check(aten.elu.default, x, 0.5, 1.5, 2.0)
    y = aten.elu.default(x, 0.5, 1.5, 2.0)
    check(aten.elu_backward.default, dy, 0.5, 1.5, 2.0, False, x)
    check(aten.elu_backward.default, dy, 0.5, 1.5, 2.0, True, y)
    check(aten.softplus.default, x)
    check(aten.softplus.default, x, 2.0, 3.0)
    check(aten.softplus_backward.default, dy, x, 2.0, 3.0)
    check(aten.hardsigmoid.default, x)
    check(aten.hardsigmoid_backward.default, dy, x)
    check(aten.hardswish.default, x)
    check(aten.hardswish_backward.default, dy, x)
    check(aten.mish.default, x)
    check(aten.threshold.default, x, 0.5, -1.0)
    check(aten.threshold_backward.default, dy, x, 0.0)
    s = torch.sigmoid(x)
    check(aten.sigmoid_backward.default, dy, s)
    check(aten.tanh_backward.default, dy, torch.tanh(x))
    p = rand(4, 6, dtype=dtype, lo=0.0, hi=1.0)
    check(aten.logit.default, p)
    check(aten.logit.default, p, 0.1)
    check(aten.logit_backward.default, dy, p)
    check(aten.logit_backward.default, dy, p, 0.1)


def test_activation_special():
    x = special()
    for op in (aten.relu.default, aten.gelu.default, aten.silu.default, aten.mish.default,
               aten.hardswish.default, aten.hardsigmoid.default, aten.softplus.default,
               aten.elu.default, aten.leaky_relu.default):
        check(op, x)
    check(aten.relu.default, rand(5, dtype=torch.int64))
    check(aten.threshold.default, rand(5, dtype=torch.int64), 1, 7)
    check(aten.gelu.default, torch.linspace(-10, 10, 501, dtype=torch.float64))

# --------------------------------------------------------------- creation --

@pytest.mark.parametrize("src", [torch.float32, torch.bfloat16, torch.int64, torch.bool,
                                 torch.float64])
def test_to_copy(src):
    x = special().to(src) if src.is_floating_point else rand(3, 4, dtype=src)
    if src.is_floating_point:
        x = x[torch.isfinite(x)] * 3.7
    for dst in (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                torch.bool, torch.float64, torch.uint8):
        if dst == torch.uint8 and src.is_floating_point:
            x = x.abs()
        check(aten._to_copy.default, x, dtype=dst)


def test_identity_and_copy():
    x = rand(2, 3)
    for op in (aten.clone.default, aten.detach.default, aten.lift_fresh_copy.default):
        check(op, x)
    check(aten.copy.default, x, rand(3, dtype=torch.int64))
    check(aten.copy.default, rand(2, 3, dtype=torch.int64), rand(2, 3))
    check(aten.copy.default, x, torch.tensor(2.5))


def test_fills():
    check(aten.full.default, [2, 3], 1.5)
    check(aten.full.default, [2, 3], 7, dtype=torch.int64)
    check(aten.full.default, [], 2 ** 53 + 1, dtype=torch.int64)
    check(aten.full.default, [3], True, dtype=torch.bool)
    x = rand(2, 3)
    check(aten.full_like.default, x, -INF)
    check(aten.zeros_like.default, x)
    check(aten.ones_like.default, x, dtype=torch.int64)
    check(aten.zeros.default, [4, 0])
    check(aten.ones.default, [2, 2], dtype=torch.bfloat16)
    check(aten.new_zeros.default, x, [3])
    check(aten.new_ones.default, x, [3], dtype=torch.int32)
    check(aten.new_full.default, x, [2], 4.0)
    check(aten.scalar_tensor.default, 3.5)
    check(aten.scalar_tensor.default, 3, dtype=torch.int64)
    check(aten.fill.Scalar, x, 2)
    check(aten.fill.Tensor, rand(2, 3, dtype=torch.int64), torch.tensor(3.7))
    # empty* are defined as zeros here; eager leaves them uninitialized, so
    # compare against zeros explicitly.
    for op, args in ((aten.empty.memory_format, ([2, 3],)),
                     (aten.empty_like.default, (x,)),
                     (aten.empty_strided.default, ([2, 3], [3, 1])),
                     (aten.new_empty.default, (x, [4]))):
        got = torch_pjrt.run_aten(op, *args)
        want = op(*args)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert torch.equal(got, torch.zeros_like(want))


def test_arange_linspace():
    check(aten.arange.default, 10)
    check(aten.arange.default, 5, dtype=torch.float32)
    check(aten.arange.start, -3, 4)
    check(aten.arange.start_step, 0, 1, 0.1)
    check(aten.arange.start_step, 1.0, -2.0, -0.3)
    check(aten.arange.start_step, 10, -5, -3)
    check(aten.arange.start_step, 0, 2 ** 40, 2 ** 37)
    check(aten.arange.start_step, 0.0, 1.0, 0.25, dtype=torch.bfloat16)
    check(aten.arange.start_step, 0, 5, 1, dtype=torch.float64)
    check(aten.arange.default, 0)
    check(aten.linspace.default, 0.0, 1.0, 11)
    check(aten.linspace.default, -5.0, 3.0, 7)
    check(aten.linspace.default, 2.0, 2.0, 1)
    check(aten.linspace.default, 0.0, 10.0, 6, dtype=torch.int64)
    check(aten.linspace.default, 0.0, 1.0, 5, dtype=torch.float64)


def test_lowering_errors_name_the_op():
    from torch_pjrt import _C
    g = _C.Graph()
    a = g.param(11, (3,))
    with pytest.raises(_C.Error, match=r"aten::div\.Tensor_mode: rounding_mode must be None, "
                       r"'trunc' or 'floor' \(got 'bogus'\)") as info:
        g.lower("aten::div.Tensor_mode", [("tensor", a), ("tensor", a), "bogus"], [(11, (3,))])
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(_C.Error, match=r"aten::gelu\.default: approximate must be"):
        g.lower("aten::gelu.default", [("tensor", a), "fast"], [(11, (3,))])
    with pytest.raises(_C.Error, match=r"aten::clone\.default: output 0: type mismatch "
                       r"\(got tensor<3xf32>, expected tensor<3xf64>\)") as info:
        g.lower("aten::clone.default", [("tensor", a), None], [(12, (3,))])
    assert info.value.code == "INTERNAL"
    with pytest.raises(_C.Error, match=r"aten::mul\.Tensor: argument 1: wrong kind "
                       r"\(got string, expected a tensor or a number\)"):
        g.lower("aten::mul.Tensor", [("tensor", a), "x"], [(11, (3,))])
