"""torch_pjrt.run_aten: single ATen ops through the C lowering table on the
device, compared with PyTorch eager on CPU; plus schema encoding and errors."""
import pytest
import torch

import torch_pjrt
from torch_pjrt import _C
from torch_pjrt._aten import encode_args, normalize_args, target_name

A = torch.ops.aten


def _check(op, *args, **kwargs):
    got = torch_pjrt.run_aten(op, *args, **kwargs)
    want = op(*args, **kwargs)
    torch.testing.assert_close(got, want)
    return got


def test_target_name():
    assert target_name(A.add.Tensor) == "aten::add.Tensor"
    assert target_name(A.relu.default) == "aten::relu.default"
    assert target_name(A.sum.dim_IntList) == "aten::sum.dim_IntList"


def test_encode_args_schema_order_defaults_and_kinds():
    ids = {}

    def tid(t):
        return ids.setdefault(id(t), len(ids))

    x, y = torch.randn(2, 3), torch.randn(2, 3)
    assert encode_args(A.add.Tensor, (x, y), {"alpha": 2}, tid) == [
        ("tensor", 0), ("tensor", 1), 2]
    assert encode_args(A.add.Tensor, (x, 2.5), {}, tid) == [("tensor", 0), 2.5, 1]
    assert encode_args(A.sum.dim_IntList, (x, 1), {"dtype": torch.bfloat16}, tid) == [
        ("tensor", 0), ("ints", [1]), False, ("dtype", 13)]
    assert encode_args(A.max_pool2d_with_indices.default, (x, 3), {}, tid) == [
        ("tensor", 0), ("ints", [3, 3]), ("ints", []), ("ints", [0, 0]), ("ints", [1, 1]),
        False]
    assert encode_args(A.index.Tensor, (x, [None, y]), {}, tid) == [
        ("tensor", 0), ("tensors", [None, 1])]
    assert encode_args(A.full.default, ([2, 3], True), {"dtype": torch.bool,
                                                          "device": "cpu"}, tid) == [
        ("ints", [2, 3]), True, ("dtype", 1), None, ("other",), None]
    assert encode_args(A.div.Tensor_mode, (x, y), {"rounding_mode": "floor"}, tid)[2] == "floor"
    assert encode_args(A.upsample_bilinear2d.vec, (x, None, False, [2, 2]), {}, tid)[3] == (
        "floats", [2.0, 2.0])
    with pytest.raises(TypeError, match="missing argument 'other'"):
        normalize_args(A.add.Tensor, (x,), {})
    with pytest.raises(TypeError, match="unexpected keyword"):
        normalize_args(A.add.Tensor, (x, y), {"beta": 1})


def test_add_with_alpha():
    _check(A.add.Tensor, torch.randn(3, 4), torch.randn(3, 4), alpha=2)


def test_add_broadcast_and_scalar_other():
    _check(A.add.Tensor, torch.randn(3, 4), torch.randn(4))
    _check(A.mul.Tensor, torch.randn(3, 4), 3.0)


def test_mm_and_addmm():
    _check(A.mm.default, torch.randn(3, 5), torch.randn(5, 2))
    _check(A.addmm.default, torch.randn(2), torch.randn(3, 5), torch.randn(5, 2),
           beta=0.5, alpha=2.0)


def test_relu_and_where_bool_input():
    x = torch.randn(4, 4)
    _check(A.relu.default, x)
    _check(A.where.self, x > 0, x, torch.zeros(4, 4))


def test_same_tensor_twice_is_one_param():
    x = torch.randn(5)
    _check(A.mul.Tensor, x, x)


def test_tuple_output_structure():
    got = _check(A.max.dim, torch.randn(3, 4), 1)
    assert isinstance(got, tuple) and len(got) == 2 and got[1].dtype == torch.int64


def test_list_output_structure():
    got = _check(A.split.Tensor, torch.randn(5, 4), 2)
    assert isinstance(got, list) and len(got) == 3


def test_reduction_kwargs_and_dtype():
    x = torch.randn(3, 4)
    _check(A.sum.dim_IntList, x, [1], True)
    _check(A.sum.dim_IntList, x, [0], dtype=torch.float64)


def test_convolution():
    _check(A.convolution.default, torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3),
           torch.randn(3), [1, 1], [1, 1], [1, 1], False, [0, 0], 1)


def test_cache_hit_on_repeat():
    x, y = torch.randn(2, 2), torch.randn(2, 2)
    torch_pjrt.run_aten(A.mm.default, x, y)
    torch_pjrt.metrics_reset()
    torch_pjrt.run_aten(A.mm.default, torch.randn(2, 2), torch.randn(2, 2))
    m = torch_pjrt.metrics()
    assert m["cache_hits"] == 1 and m["compiles"] == 0 and m["executions"] == 1


def test_unsupported_op_raises_clear_error():
    assert not _C.lower_supported("aten::not_an_op.default")
    with pytest.raises(torch_pjrt.UnsupportedOpError, match="no lowering for aten::_fft_r2c"):
        torch_pjrt.run_aten(A._fft_r2c.default, torch.randn(8), [0], 0, True)


def test_lowering_error_is_c_error():
    g = _C.Graph()
    a = g.param(11, (2, 3))
    with pytest.raises(_C.Error) as err:
        g.lower("aten::mm.default", [("tensor", a), ("tensor", a)], [(11, (2, 2))])
    assert err.value.code in ("INVALID_ARGUMENT", "INTERNAL")
    assert "mm" in str(err.value)
    with pytest.raises(_C.Error, match="unsupported argument encoding"):
        g.lower("aten::relu.default", [{"x": 1}], [(11, (2, 3))])
    with pytest.raises(_C.Error, match="unknown tag"):
        g.lower("aten::relu.default", [("blob", 1)], [(11, (2, 3))])


def test_random_ops_get_a_seed_from_torch_generator():
    torch.manual_seed(123)
    a = torch_pjrt.run_aten(torch.ops.aten.rand.default, [2000])
    torch.manual_seed(123)
    b = torch_pjrt.run_aten(torch.ops.aten.rand.default, [2000])
    c = torch_pjrt.run_aten(torch.ops.aten.rand.default, [2000])
    assert torch.equal(a, b)          # reproducible under manual_seed
    assert not torch.equal(a, c)      # a new draw differs
    assert 0.45 < a.mean().item() < 0.55 and a.min() >= 0 and a.max() < 1
    out, mask = torch_pjrt.run_aten(torch.ops.aten.native_dropout.default, torch.ones(4000), 0.25, True)
    assert 0.70 < mask.float().mean().item() < 0.80
    torch.testing.assert_close(out[mask], torch.full_like(out[mask], 1 / 0.75))


def test_scalar_type_numbers_come_from_c10():
    """TorchScript defaults spell dtypes as c10::ScalarType numbers; the
    C++ layer reads the numbering from c10 (no table in Python or C)."""
    from torch_pjrt import _aten
    assert _aten._int_to_dtype(6) is torch.float32
    assert _aten._int_to_dtype(4) is torch.int64
    assert _aten._int_to_dtype(11) is torch.bool
    assert _aten._int_to_dtype(15) is torch.bfloat16
    with pytest.raises(TypeError, match="unsupported ScalarType number 9999"):
        _aten._int_to_dtype(9999)
