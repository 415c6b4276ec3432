"""Review cases for torch_pjrt.spmd, worker for test_spmd.py: each function
is one problem a review found (a silently wrong answer or a crash), fixed
since. Run with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=4 (like
spmd_worker.py).

usage: spmd_review_worker.py CASE [CASE ...] | all | list
(`all` runs each case in its own subprocess: scatter_sharded_index used to
abort the process inside XLA's partitioner.) Prints "ok <case>" per passing
case; a failing case raises."""
import copy
import os
import subprocess
import sys

import torch

import torch_pjrt  # noqa: F401
import torch_pjrt.spmd as spmd


def _mesh():
    return spmd.Mesh((4,), ("d",))


def _full(t):
    return t.full_tensor() if isinstance(t, spmd.ShardedTensor) else t.cpu()


def scatter_sharded_index():
    """scatter / scatter_add / scatter_reduce with a sharded index: today the
    XLA CPU plugin's SPMD partitioner aborts the whole process (Check failed:
    ShapeUtil::IsScalarWithElementType, spmd_partitioner_util.h:117) when
    the program compiles; eager and torch.compile alike."""
    mesh = _mesh()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g)
    idx = torch.randint(0, 7, (7, 5), generator=g)
    src = torch.ones(7, 5)
    got = torch.scatter_add(spmd.shard(x, mesh, ("d",)), 0, spmd.shard(idx, mesh, ("d",)),
                            spmd.shard(src, mesh, ("d",)))
    torch.testing.assert_close(_full(got), torch.scatter_add(x, 0, idx, src))
    got = torch.scatter(spmd.shard(x, mesh, (None, "d")), 0, spmd.shard(idx, mesh, (None, "d")),
                        1.0)
    torch.testing.assert_close(_full(got), torch.scatter(x, 0, idx, 1.0))


def inplace_keeps_dtype():
    """An in-place op keeps its tensor's dtype (torch casts the result, or
    raises when it cannot). Today the promoted result's pieces are installed
    as they are: a float32 tensor ends up holding float64 pieces (the next op
    raises 'row 0 input 0 is float64'), a bfloat16 one float32 values, and an
    int64 one float values."""
    mesh = _mesh()
    a = spmd.shard(torch.ones(7, 5), mesh, ("d",))
    a.add_(spmd.shard(torch.ones(7, 5, dtype=torch.float64), mesh, ("d",)))
    assert spmd.shards(a)[0].dtype == torch.float32, spmd.shards(a)[0].dtype
    torch.testing.assert_close(_full(a * 2), torch.full((7, 5), 4.0))
    p = spmd.shard(torch.ones(7, 5, dtype=torch.bfloat16), mesh, ("d",))
    p.add_(spmd.shard(torch.full((7, 5), 1e-3), mesh, ("d",)))
    want = torch.ones(7, 5, dtype=torch.bfloat16).add_(torch.full((7, 5), 1e-3))
    assert spmd.shards(p)[0].dtype == torch.bfloat16, spmd.shards(p)[0].dtype
    torch.testing.assert_close(_full(p), want)
    i = spmd.shard(torch.arange(7), mesh, ("d",))
    try:
        i.add_(1.5)
    except RuntimeError:
        pass
    else:
        raise AssertionError(f"int64.add_(1.5) did not raise (pieces now "
                             f"{spmd.shards(i)[0].dtype}; torch: can't cast Float to Long)")


def batch_norm_running_stats():
    """BatchNorm's running_mean/var are written by aten.native_batch_norm,
    whose schema does not mark them as written: today the one-op program
    drops the update (running_mean stays 0, running_var 1), so eval() after
    training is wrong. Eager and compiled."""
    mesh = _mesh()
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    for compiled in (False, True):
        ref = torch.nn.BatchNorm1d(5)
        m = spmd.shard_module(copy.deepcopy(ref).to("pjrt"), mesh, {})
        run = torch.compile(lambda mod, t: mod(t), backend="pjrt") if compiled \
            else (lambda mod, t: mod(t))
        run(m, spmd.shard(x, mesh, ("d",)))
        ref(x)
        torch.testing.assert_close(_full(m.running_mean), ref.running_mean, msg=f"c={compiled}")
        torch.testing.assert_close(_full(m.running_var), ref.running_var, msg=f"c={compiled}")


def multi_output_views_after_write():
    """unbind/split/chunk outputs are views; after their base is written,
    reading one recomputes it, and today _refresh takes `._box` of the
    op's tuple result: AttributeError."""
    mesh = _mesh()
    x = torch.randn(7, 5)
    a = spmd.shard(x, mesh, ("d",))
    rows = a.unbind(0)
    parts = a.split(3)
    a.zero_()
    torch.testing.assert_close(_full(rows[3]), torch.zeros(5))
    torch.testing.assert_close(_full(parts[2]), torch.zeros(1, 5))


def set_data():
    """t.data = other: today the wrapper's metadata is replaced but its
    pieces are not, so t silently keeps its old values (and a new shape
    leaves metadata and pieces disagreeing). Expected: t holds other's
    values (or a clear error)."""
    mesh = _mesh()
    x, y = torch.randn(7, 5), torch.randn(7, 5)
    a = spmd.shard(x, mesh, ("d",))
    try:
        a.data = spmd.shard(y, mesh, ("d",))
    except (NotImplementedError, RuntimeError, TypeError):
        pass  # raising is an acceptable answer
    else:
        torch.testing.assert_close(_full(a), y)
    p = torch.nn.Parameter(spmd.shard(x, mesh, ("d",)))
    try:
        p.data = spmd.shard(y, mesh, (None, "d"))
    except (NotImplementedError, RuntimeError, TypeError):
        pass
    else:
        torch.testing.assert_close(_full(p), y)


def shard_keeps_autograd():
    """spmd.shard of a tensor that is part of an autograd graph (a non-leaf:
    an activation resharded in a forward) returns a new leaf: the gradient
    silently stops there (upstream .grad is None). Expected: shard is
    differentiable (the gradient comes back in the input's layout), or it
    raises for a non-leaf that requires grad."""
    mesh = _mesh()
    x = torch.randn(7, 5)
    for plain in (True, False):
        w = (x.clone().to("pjrt") if plain else spmd.shard(x, mesh, ("d",))).requires_grad_()
        h = w * 2
        try:
            h2 = spmd.shard(h, mesh, (None, "d"))
        except (RuntimeError, NotImplementedError):
            continue
        h2.sum().backward()
        assert w.grad is not None, f"plain={plain}: gradient cut at spmd.shard"
        torch.testing.assert_close(_full(w.grad), torch.full((7, 5), 2.0))


def as_strided_on_view():
    """as_strided addresses the base's storage; a view of a sharded tensor is
    a contiguous copy reporting its own strides ((7, 1) for a (7, 5).t(),
    torch: (1, 5)), so as_strided over it picks other elements: a silently
    wrong answer. Expected: the same elements as torch, or a raise."""
    mesh = _mesh()
    x = torch.randn(7, 5)
    v = spmd.shard(x, mesh, ("d",)).t()
    try:
        got = v.as_strided((7, 5), (5, 1))
    except (NotImplementedError, RuntimeError):
        return
    torch.testing.assert_close(_full(got), x.t().as_strided((7, 5), (5, 1)))


def grad_accumulates_on_plain_sharded_leaf():
    """A sharded leaf (not through shard_module) whose first gradient came
    out of a view op (sum -> expand): the second backward's accumulation
    raises 'add_ writes into a view' (micro-batch gradient accumulation)."""
    mesh = _mesh()
    w = spmd.shard(torch.randn(7, 5), mesh, ("d",)).requires_grad_()
    w.sum().backward()
    w.sum().backward()
    torch.testing.assert_close(_full(w.grad), torch.full((7, 5), 2.0))
    w.grad.zero_()
    torch.testing.assert_close(_full(w.grad), torch.zeros(7, 5))


CASES = [scatter_sharded_index, inplace_keeps_dtype, batch_norm_running_stats,
         multi_output_views_after_write, set_data, shard_keeps_autograd, as_strided_on_view,
         grad_accumulates_on_plain_sharded_leaf]


def main(argv):
    by_name = {f.__name__: f for f in CASES}
    if argv == ["list"]:
        print(" ".join(by_name))
        return
    if argv == ["all"]:
        failed = []
        for name in by_name:
            p = subprocess.run([sys.executable, __file__, name], env=dict(os.environ),
                               capture_output=True, text=True, timeout=300)
            ok = p.returncode == 0 and f"ok {name}" in p.stdout
            print(("ok " if ok else "FAILED ") + name, flush=True)
            if not ok:
                failed.append((name, (p.stdout + p.stderr)[-1500:]))
        for name, tail in failed:
            print(f"--- {name}\n{tail}")
        if failed:
            raise SystemExit(1)
        return
    for name in argv:
        by_name[name]()
        print("ok", name, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
