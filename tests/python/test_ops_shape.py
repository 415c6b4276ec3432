"""Shape / view / indexing lowerings vs PyTorch eager, one ATen op at a time."""
import pytest
import torch

import torch_pjrt
from torch_pjrt import _C

aten = torch.ops.aten
torch.manual_seed(0)


def check(op, *args, **kwargs):
    got = torch_pjrt.run_aten(op, *args, **kwargs)
    want = op(*args, **kwargs)
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w.contiguous(), equal_nan=True)
    else:
        torch.testing.assert_close(got, want.contiguous(), equal_nan=True)


def rand(shape, dtype=torch.float32):
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype.is_floating_point:
        return torch.randn(shape).to(dtype)
    return torch.randint(-50, 50, shape, dtype=dtype)


def expect_error(code, op, out_shape, *args, **kwargs):
    """Lowers op directly (PyTorch's meta would reject bad static args first)."""
    from torch_pjrt import _aten
    g = _C.Graph()

    def tensor_id(t):
        return g.param(_aten.dtype_code(t.dtype), tuple(t.shape))

    enc = _aten.encode_args(op, args, kwargs, tensor_id)
    with pytest.raises(_C.Error) as info:
        g.lower(_aten.target_name(op), enc, [(11, tuple(out_shape))])
    assert info.value.code == code, str(info.value)
    return str(info.value)


def fast_first(values, multi=False):
    """Parameters where only the first runs in the default (fast) suite; the
    rest are marked `full` (make test-full). multi: each value is a tuple of
    several argnames."""
    return [v if i == 0 else pytest.param(*(v if multi else (v,)), marks=pytest.mark.full)
            for i, v in enumerate(values)]


DTYPES = [torch.float32, torch.int64, torch.bool, torch.bfloat16]


# ------------------------------------------------------------------ views --

@pytest.mark.parametrize("dtype", fast_first(DTYPES))
def test_views(dtype):
    x = rand((2, 3, 4), dtype)
    check(aten.view.default, x, [6, 4])
    check(aten.view.default, x, [-1])
    check(aten._unsafe_view.default, x, [4, 6])
    check(aten.reshape.default, x, [3, -1])
    check(aten.view_copy.default, x, [24])
    check(aten.permute.default, x, [2, 0, 1])
    check(aten.permute.default, x, [-1, -3, 1])
    check(aten.transpose.int, x, 0, -1)
    check(aten.t.default, rand((3, 5), dtype))
    check(aten.t.default, rand((5,), dtype))
    check(aten.unsqueeze.default, x, -1)
    check(aten.unsqueeze.default, x, 0)
    check(aten.squeeze.default, rand((1, 3, 1), dtype))
    check(aten.squeeze.dim, rand((1, 3, 1), dtype), -1)
    check(aten.squeeze.dims, rand((1, 3, 1), dtype), [0, 2])
    check(aten.alias.default, x)
    check(aten.expand.default, rand((3, 1), dtype), [2, 3, 4])
    check(aten.expand.default, rand((3, 1), dtype), [-1, 5])


def test_views_rank0_and_empty():
    s = torch.tensor(2.5)
    check(aten.view.default, s, [1, 1])
    check(aten.unsqueeze.default, s, 0)
    check(aten.permute.default, s, [])
    check(aten.transpose.int, s, 0, -1)
    check(aten.expand.default, s, [2, 3])
    e = torch.zeros(0, 3)
    check(aten.view.default, e, [3, 0])
    check(aten.permute.default, e, [1, 0])


def test_view_errors():
    x = rand((2, 3))
    msg = expect_error("INVALID_ARGUMENT", aten.transpose.int, (2, 3), x, 0, 5)
    assert "transpose" in msg and "5" in msg


@pytest.mark.parametrize("dtype", fast_first(DTYPES))
def test_flip_roll_repeat(dtype):
    x = rand((2, 3, 4), dtype)
    check(aten.flip.default, x, [0, -1])
    check(aten.flip.default, x, [])
    check(aten.roll.default, x, [1], [])
    check(aten.roll.default, x, [-7])
    check(aten.roll.default, x, [2, -1], [2, 0])
    check(aten.repeat.default, x, [2, 1, 3])
    check(aten.repeat.default, x, [2, 1, 1, 2])
    check(aten.repeat.default, torch.tensor(3, dtype=torch.int64), [4])
    check(aten.repeat.default, x, [0, 1, 1])


@pytest.mark.parametrize("k", fast_first([0, 1, -1, 5, -5]))
def test_tril_triu(k):
    x = rand((2, 3, 5))
    check(aten.tril.default, x, k)
    check(aten.triu.default, x, k)
    check(aten.triu.default, rand((4, 4), torch.bool), k)


# ------------------------------------------------------------------ pieces --

@pytest.mark.parametrize("dtype", fast_first(DTYPES))
def test_cat_stack(dtype):
    a, b = rand((2, 3), dtype), rand((4, 3), dtype)
    check(aten.cat.default, [a, b])
    check(aten.cat.default, [a, rand((2, 1), dtype), a], -1)
    check(aten.stack.default, [a, a, a], 1)
    check(aten.stack.default, [a, a], -1)


def test_cat_promotes_and_skips_empty():
    a = rand((2, 3), torch.int64)
    b = rand((1, 3), torch.float32)
    check(aten.cat.default, [a, b])
    check(aten.cat.default, [a, torch.zeros(0, dtype=torch.int64), a])
    check(aten.cat.default, [torch.zeros(0, 3), a.float()])
    check(aten.cat.default, [rand((2, 3), torch.bool), rand((2, 3), torch.bfloat16)], 1)
    check(aten.stack.default, [torch.tensor(1.0), torch.tensor(2.0)])


@pytest.mark.parametrize("dim", fast_first([0, 1, -1]))
def test_split_family(dim):
    x = rand((6, 7, 5))
    check(aten.split.Tensor, x, 2, dim)
    check(aten.split.Tensor, x, 10, dim)
    n = x.shape[dim]
    check(aten.split_with_sizes.default, x, [1, n - 1], dim)
    check(aten.split_with_sizes.default, x, [0, n], dim)
    check(aten.unbind.int, x, dim)
    check(aten.chunk.default, x, 3, dim)


@pytest.mark.parametrize("args", fast_first([
    (0, None, None, 1), (1, 1, None, 1), (1, -3, -1, 1), (-1, 1, 100, 2),
    (2, -100, 3, 3), (0, 5, 2, 1), (1, None, None, 4), (1, 2, 2, 1),
]))
def test_slice(args):
    x = rand((4, 6, 5))
    check(aten.slice.Tensor, x, *args)
    check(aten.slice.Tensor, x.to(torch.bool), *args)


def test_select_narrow():
    x = rand((4, 6, 5), torch.int64)
    check(aten.select.int, x, 0, 3)
    check(aten.select.int, x, -1, -5)
    check(aten.select.int, x, 1, -1)
    check(aten.narrow.default, x, 1, 2, 3)
    check(aten.narrow.default, x, -1, -3, 2)
    check(aten.narrow.default, x, 0, 4, 0)
    msg = expect_error("INVALID_ARGUMENT", aten.select.int, (2,), torch.zeros(3, 2), 0, 3)
    assert "select" in msg and "3" in msg
    msg = expect_error("INVALID_ARGUMENT", aten.select.int, (3,), torch.zeros(3, 2), 1, -3)
    assert "-3" in msg


@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.int64, torch.bfloat16, torch.bool]))
def test_constant_pad_nd(dtype):
    x = rand((2, 3, 4), dtype)
    check(aten.constant_pad_nd.default, x, [1, 2])
    check(aten.constant_pad_nd.default, x, [1, 0, 0, 2, 3, 1], 1)
    check(aten.constant_pad_nd.default, x, [-1, 2, 1, -2])
    if dtype != torch.bool:
        check(aten.constant_pad_nd.default, x, [2, 2], 3)


@pytest.mark.parametrize("args", fast_first([(0, None, None, 1), (1, 1, 4, 1), (1, -4, None, 2),
                                  (2, 0, 5, 3)]))
def test_slice_scatter(args):
    x = rand((4, 6, 5))
    dim, start, end, step = args
    src = aten.slice.Tensor(x, dim, start, end, step).clone().normal_()
    check(aten.slice_scatter.default, x, src, *args)
    check(aten.slice_scatter.default, x.to(torch.int64), src.to(torch.int64), *args)


def test_select_scatter():
    x = rand((4, 6, 5))
    check(aten.select_scatter.default, x, rand((6, 5)), 0, -1)
    check(aten.select_scatter.default, x, rand((4, 5)), 1, 2)
    check(aten.select_scatter.default, x, rand((4, 6)), -1, 0)


# ------------------------------------------------------- advanced indexing --

def idx(*vals, dtype=torch.int64):
    return torch.tensor(vals, dtype=dtype)


@pytest.mark.parametrize("dtype", fast_first(DTYPES))
def test_index_basic(dtype):
    x = rand((5, 6, 7), dtype)
    check(aten.index.Tensor, x, [idx(0, 4, -1)])
    check(aten.index.Tensor, x, [None, idx(1, -2, 5)])
    check(aten.index.Tensor, x, [None, None, idx(3)])
    check(aten.index.Tensor, x, [idx(1, 2), idx(0, -1)])
    check(aten._unsafe_index.Tensor, x, [idx(1, 2), None, idx(0, -1)])


def test_index_placement_and_broadcast():
    x = rand((5, 6, 7, 8))
    i2 = torch.randint(-5, 5, (2, 3))
    j1 = torch.randint(0, 6, (3,))
    check(aten.index.Tensor, x, [None, idx(1, 2, 3), torch.randint(-7, 7, (3,))])  # adjacent
    check(aten.index.Tensor, x, [None, i2.clamp(-6, 5), j1.clamp(0, 6)])  # broadcast
    check(aten.index.Tensor, x, [i2, None, j1])  # separated -> front
    check(aten.index.Tensor, x, [None, j1, None, i2.clamp(-8, 7)])
    check(aten.index.Tensor, x, [idx(1, dtype=torch.int32), idx(2, dtype=torch.int32)])
    check(aten.index.Tensor, x, [torch.tensor(3), None, torch.tensor(-1)])
    check(aten.index.Tensor, x, [torch.zeros(0, dtype=torch.int64)])


def test_index_bool_mask_unsupported():
    x = rand((3, 4))
    g = _C.Graph()
    p = g.param(11, (3, 4))
    m = g.param(1, (3, 4))
    with pytest.raises(_C.Error) as info:
        g.lower("aten::index.Tensor", [("tensor", p), ("tensors", [m])], [(11, (5,))])
    assert info.value.code == "UNIMPLEMENTED" and "mask" in str(info.value)
    del x


@pytest.mark.parametrize("accumulate", fast_first([False, True]))
@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.int64, torch.bfloat16]))
def test_index_put(accumulate, dtype):
    x = rand((5, 6, 7), dtype)
    check(aten.index_put.default, x, [idx(0, 3, -1)], rand((3, 6, 7), dtype), accumulate)
    check(aten.index_put.default, x, [None, idx(1, -2)], rand((7,), dtype), accumulate)
    check(aten.index_put.default, x, [idx(1, 2), None, idx(0, -1)], rand((2, 6), dtype),
          accumulate)
    check(aten._unsafe_index_put.default, x, [None, idx(1, 2), idx(3, 4)],
          rand((5, 2), dtype), accumulate)
    check(aten.index_put.default, x, [idx(2)], torch.tensor(7).to(dtype), accumulate)


def test_index_put_accumulate_duplicates():
    x = torch.zeros(4, 3)
    i = idx(0, 1, 0, 3, 0)
    check(aten.index_put.default, x, [i], torch.ones(5, 3), True)
    check(aten.index_put.default, torch.zeros(4, dtype=torch.bool), [i],
          torch.ones(5, dtype=torch.bool), True)


@pytest.mark.parametrize("dim", fast_first([0, 1, -1]))
def test_index_select_add(dim):
    x = rand((4, 5, 6))
    n = x.shape[dim]
    i = torch.randint(0, n, (7,))
    check(aten.index_select.default, x, dim, i)
    check(aten.index_select.default, x.to(torch.int64), dim, i.to(torch.int32))
    check(aten.index_select.default, x, dim, torch.tensor(1))
    src_shape = list(x.shape)
    src_shape[dim] = 7
    ip = torch.randint(0, n, (7,))
    check(aten.index_add.default, x, dim, ip, rand(src_shape))
    check(aten.index_add.default, x, dim, ip, rand(src_shape), alpha=2.5)
    check(aten.index_add.default, x.to(torch.int64), dim, ip,
          rand(src_shape, torch.int64), alpha=3)
    perm = torch.randperm(n)[: min(n, 3)]  # distinct: index_copy of duplicates is unordered
    copy_shape = list(x.shape)
    copy_shape[dim] = len(perm)
    check(aten.index_copy.default, x, dim, perm, rand(copy_shape))
    check(aten.index_copy.default, x.to(torch.int64), dim, perm, rand(copy_shape, torch.int64))
    # forward and gradient on the eager device against CPU
    src = rand(copy_shape)
    xs, ss = x.clone().requires_grad_(), src.clone().requires_grad_()
    xd, sd = x.to("pjrt").requires_grad_(), src.to("pjrt").requires_grad_()
    w = rand(tuple(x.shape))
    want = xs.index_copy(dim, perm, ss)
    got = xd.index_copy(dim, perm.to("pjrt"), sd)
    (want * w).sum().backward()
    (got * w.to("pjrt")).sum().backward()
    torch.testing.assert_close(got.detach().cpu(), want.detach())
    torch.testing.assert_close(xd.grad.cpu(), xs.grad)
    torch.testing.assert_close(sd.grad.cpu(), ss.grad)


@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.int64, torch.bool, torch.bfloat16]))
@pytest.mark.parametrize("dim", fast_first([0, 1, -1]))
def test_gather_scatter(dtype, dim):
    x = rand((4, 5, 6), dtype)
    ishape = [3, 4, 5]
    n = x.shape[dim]
    i = torch.randint(0, n, ishape)
    check(aten.gather.default, x, dim, i)
    src = rand((4, 5, 6), dtype)
    # unique indices along dim so the result does not depend on write order
    u = torch.argsort(torch.rand(x.shape), dim=dim).narrow(dim, 0, 3)
    check(aten.scatter.src, x, dim, u, src)
    check(aten.scatter.value, x, dim, u, 1)
    if dtype != torch.bool:
        check(aten.scatter_add.default, x, dim, i, src)
        check(aten.scatter.reduce, x, dim, i, src, reduce="add")
    if dtype in (torch.float32, torch.int64):
        check(aten.scatter.reduce, x, dim, u, src, reduce="multiply")
        check(aten.scatter.value_reduce, x, dim, i, 2, reduce="multiply")


@pytest.mark.parametrize("reduce", fast_first(["mean", "sum", "prod", "amax", "amin"]))
@pytest.mark.parametrize("include_self", fast_first([False, True]))
@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.int64]))
def test_scatter_reduce(reduce, include_self, dtype):
    x = rand((5, 4), dtype)
    i = torch.randint(0, 5, (6, 3))
    src = rand((6, 4), dtype)
    if reduce == "prod" and dtype == torch.float32:
        src = src.clamp(-2, 2)
    check(aten.scatter_reduce.two, x, 0, i, src, reduce, include_self=include_self)
    check(aten.scatter_reduce.two, x, 1, i.clamp(0, 3)[:5], src, reduce,
          include_self=include_self)


def test_gather_scatter_rank0():
    x = torch.tensor(3.5)
    i = torch.tensor(0)
    check(aten.gather.default, x, 0, i)
    check(aten.scatter.src, x, 0, i, torch.tensor(1.5))
    check(aten.scatter_add.default, x, -1, i, torch.tensor(1.5))


# --------------------------------------------------------------- embedding --

@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.bfloat16]))
def test_embedding(dtype):
    w = rand((10, 4), dtype)
    check(aten.embedding.default, w, torch.randint(0, 10, (3, 5)))
    check(aten.embedding.default, w, torch.randint(0, 10, (7,)), 2)
    check(aten.embedding.default, w, torch.tensor(4))


@pytest.mark.parametrize("padding_idx", fast_first([-1, 0, 3]))
@pytest.mark.parametrize("scale", fast_first([False, True]))
def test_embedding_dense_backward(padding_idx, scale):
    ind = torch.randint(0, 6, (4, 5))
    grad = rand((4, 5, 3))
    check(aten.embedding_dense_backward.default, grad, ind, 6, padding_idx, scale)


# ----------------------------------------------------------- strided views --

@pytest.mark.parametrize("args", fast_first([(0, 0, 1), (1, 0, 1), (-2, 0, 1), (1, 2, 0), (0, -1, -2),
                                  (10, 0, 1)]))
def test_diagonal(args):
    x = rand((4, 5, 3))
    check(aten.diagonal.default, x, *args)
    d = aten.diagonal.default(x, *args)
    check(aten.diagonal_scatter.default, x, rand(tuple(d.shape)), *args)


@pytest.mark.parametrize("size,stride,offset", fast_first([
    ([3, 4], [4, 1], 0), ([4, 3], [1, 4], 0), ([2, 2], [1, 1], 3), ([5], [2], 1),
    ([2, 3, 2], [6, 1, 3], 0), ([3, 3], [0, 1], 2), ([], [], 5),
], multi=True))
def test_as_strided(size, stride, offset):
    x = rand((3, 4))
    check(aten.as_strided.default, x, size, stride, offset)


def test_as_strided_out_of_range():
    msg = expect_error("INVALID_ARGUMENT", aten.as_strided.default, (3, 4),
                       torch.zeros(3, 4), [3, 4], [5, 1], 0)
    assert "as_strided" in msg


@pytest.mark.parametrize("args", fast_first([(0, 2, 1), (1, 3, 2), (-1, 4, 1), (2, 1, 3)]))
def test_unfold(args):
    check(aten.unfold.default, rand((4, 5, 6)), *args)


def test_nonzero_unsupported():
    assert _C.lower_supported("aten::nonzero.default")
    g = _C.Graph()
    p = g.param(11, (3,))
    with pytest.raises(_C.Error) as info:
        g.lower("aten::nonzero.default", [("tensor", p)], [(5, (2, 1))])
    assert info.value.code == "UNIMPLEMENTED"


# ------------------------------------------------- masks, take/put, misc --

@pytest.mark.parametrize("accumulate", fast_first([False, True]))
def test_index_put_bool_mask(accumulate):
    x = rand((4, 5, 3))
    m1 = torch.rand(4) > 0.5
    m2 = torch.rand(4, 5) > 0.5
    check(aten.index_put.default, x, [m1], rand((5, 3)), accumulate)
    check(aten.index_put.default, x, [m2], torch.tensor(2.0), accumulate)
    check(aten.index_put.default, x, [None, torch.rand(5) > 0.5], rand((3,)), accumulate)
    check(aten.index_put.default, x, [m2], rand((1, 3)), accumulate)
    check(aten.index_put.default, x.to(torch.int64), [m1], torch.tensor(7), accumulate)


def test_index_put_bool_mask_dynamic_values_unsupported():
    g = _C.Graph()
    p = g.param(11, (4, 3))
    m = g.param(1, (4,))
    v = g.param(11, (2, 3))
    with pytest.raises(_C.Error) as info:
        g.lower("aten::index_put.default", [("tensor", p), ("tensors", [m]), ("tensor", v),
                                            False], [(11, (4, 3))])
    assert info.value.code == "UNIMPLEMENTED"


def test_take_put():
    x = rand((3, 4))
    i = torch.tensor([[0, -1], [5, 11]])
    check(aten.take.default, x, i)
    check(aten.put.default, x, torch.tensor([0, -1, 5]), rand((3,)))
    check(aten.put.default, x, torch.tensor([0, 0, 5]), rand((3,)), True)


@pytest.mark.parametrize("args", fast_first([(3, 4, 1), (4, 3, 0), (4, 4, -2), (3, 3, 5),
                                             (0, 3, 0)]))
def test_tri_indices(args):
    check(aten.tril_indices.default, *args)
    check(aten.triu_indices.default, *args)
    check(aten.triu_indices.default, *args, dtype=torch.int32)


def test_backward_ops():
    g = rand((4, 5))
    check(aten.select_backward.default, g, [3, 4, 5], 0, -1)
    check(aten.slice_backward.default, rand((4, 2)), [4, 5], 1, 1, 5, 2)
    check(aten.diagonal_backward.default, rand((3,)), [3, 4], 1, 0, 1)


@pytest.mark.parametrize("reduce", fast_first(["mean", "prod", "amax", "amin"]))
@pytest.mark.parametrize("include_self", fast_first([False, True]))
@pytest.mark.parametrize("dtype", fast_first([torch.float32, torch.int64]))
def test_index_reduce(reduce, include_self, dtype):
    x = rand((5, 4), dtype)
    i = torch.tensor([0, 2, 0, 4, 2, 2])
    check(aten.index_reduce.default, x, 0, i, rand((6, 4), dtype), reduce,
          include_self=include_self)
    check(aten.index_reduce.default, x, 1, i.clamp(0, 3), rand((5, 6), dtype), reduce,
          include_self=include_self)


# reflection / replication padding (shape_pad.c), forward and backward
_PAD_CASES = [(1, (2, 3, 7), [2, 3]), (1, (3, 5), [4, 0]), (2, (2, 3, 5, 6), [1, 2, 3, 0]),
              (2, (3, 5, 4), [3, 3, 4, 4]), (3, (1, 2, 4, 5, 6), [1, 2, 0, 3, 2, 1])]


@pytest.mark.parametrize("kind", ["reflection", "replication"])
@pytest.mark.parametrize("k,shape,pad", _PAD_CASES)
def test_reflection_replication_pad(kind, k, shape, pad):
    x = torch.randn(shape)
    fwd = getattr(aten, f"{kind}_pad{k}d").default
    bwd = getattr(aten, f"{kind}_pad{k}d_backward").default
    check(fwd, x, pad)
    check(bwd, torch.randn(fwd(x, pad).shape), x, pad)


def test_replication_pad2d_backward_bf16():
    x = torch.randn(2, 3, 4, 5).to(torch.bfloat16)
    gy = torch.randn(2, 3, 7, 6).to(torch.bfloat16)
    got = torch_pjrt.run_aten(aten.replication_pad2d_backward.default, gy, x, [0, 1, 2, 1])
    want = aten.replication_pad2d_backward.default(gy.float(), x.float(), [0, 1, 2, 1])
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)


def test_reflection_pad_rejects_pad_not_smaller_than_size():
    with pytest.raises(Exception, match="(?i)pad"):
        torch_pjrt.run_aten(aten.reflection_pad1d.default, torch.randn(2, 3), [3, 0])


# _embedding_bag and its backward (index_bag.c)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("pad,last", [(-1, False), (4, False), (-1, True)])
def test_embedding_bag_forward_backward(mode, pad, last):
    w = torch.randn(10, 3)
    idx = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])
    off = torch.tensor([0, 3, 3, 5, 8] if last else [0, 3, 3, 5])  # bag 1 is empty
    args = (w, idx, off, False, mode, False, None, last, pad)
    want = aten._embedding_bag.default(*args)
    got = torch_pjrt.run_aten(aten._embedding_bag.default, *args)
    # outside max mode the meta kernel gives max_indices 0 elements (CPU: bags)
    for g, w_ in zip(got[:3] if mode < 2 else got, want):
        torch.testing.assert_close(g, w_)
    gr = torch.randn_like(want[0])
    bargs = (gr, idx, off, want[1], want[2], want[3], 10, False, mode, False, None, pad)
    check(aten._embedding_bag_backward.default, *bargs)


def test_embedding_bag_per_sample_weights():
    w, idx, off, psw = torch.randn(10, 3), torch.tensor([1, 2, 4, 5, 9]), torch.tensor([0, 2]), torch.randn(5)
    args = (w, idx, off, False, 0, False, psw, False, -1)
    want = aten._embedding_bag.default(*args)
    torch.testing.assert_close(torch_pjrt.run_aten(aten._embedding_bag.default, *args)[0], want[0])
    gr = torch.randn_like(want[0])
    check(aten._embedding_bag_backward.default, gr, idx, off, want[1], want[2], want[3], 10,
          False, 0, False, psw, -1)


@pytest.mark.parametrize("reduce", ["mean", "prod", "amax"])
def test_index_reduce_rank0(reduce):
    # Rank-0 self and source with a one-element index (an OpInfo sample).
    x, src = torch.tensor(2.5), torch.tensor(-1.5)
    for include_self in (True, False):
        check(aten.index_reduce.default, x, 0, torch.tensor([0]), src, reduce,
              include_self=include_self)


@pytest.mark.parametrize("k,shape,pad", [(1, (2, 3, 7), [-2, 3]), (2, (2, 3, 5, 6), [-1, 2, 3, -2]),
                                         (3, (1, 2, 4, 5, 6), [1, -2, 0, 3, -2, -1])])
def test_replication_pad_negative_crops(k, shape, pad):
    # A negative replicate pad crops (nn.functional.pad(mode="replicate")).
    x = torch.randn(shape)
    fwd = getattr(aten, f"replication_pad{k}d").default
    bwd = getattr(aten, f"replication_pad{k}d_backward").default
    check(fwd, x, pad)
    check(bwd, torch.randn(fwd(x, pad).shape), x, pad)
