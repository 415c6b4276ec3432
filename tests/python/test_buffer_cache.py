"""The buffer cache of graphs compiled over CPU tensors (C++,
python/csrc/device_buffer_cache.cpp) and the one native call per step that
reads it (device_host_call.cpp): which tensors an entry matches, when it
stops matching, that dead tensors' entries go, and that a compiled graph on
CPU tensors gives eager's results, sends unchanged parameters once, and
takes the program lookup for another signature."""
from __future__ import annotations

import gc

import torch

import torch_pjrt
from torch_pjrt import compiled


def _buf(t: torch.Tensor):
    return compiled.upload(t, cache=False)


def test_upload_entry_matches_that_tensor_until_it_changes():
    cache = compiled.buffer_cache
    t = torch.arange(6.0).reshape(2, 3)
    b = _buf(t)
    cache.insert(t, b)
    assert cache.lookup(t) is b
    assert cache.lookup(t.detach()) is None  # another tensor on the same storage
    assert cache.lookup(t.view(2, 3)) is None
    t.add_(1)  # a new version
    assert cache.lookup(t) is None
    cache.insert(t, b)
    assert cache.pop(t) is b and cache.lookup(t) is None


def test_result_entry_matches_aliases_until_the_result_changes():
    cache = compiled.buffer_cache
    r = torch.ones(4)
    b = _buf(r)
    cache.insert(r, b, alias_ok=True)
    alias = r.detach()
    assert cache.lookup(alias) is b  # a gradient handed back as detach()
    assert cache.lookup(r[1:]) is None  # another view
    r.mul_(2)
    assert cache.lookup(alias) is None and cache.lookup(r) is None


def test_expected_version_and_dead_tensors():
    cache = compiled.buffer_cache
    t = torch.zeros(3)
    b = _buf(t)
    cache.insert(t, b, version=t._version + 1)  # a write-back about to happen
    assert cache.lookup(t) is None
    t.copy_(torch.ones(3))
    assert cache.lookup(t) is b
    n = len(cache)
    del t, b
    gc.collect()
    assert len(cache) <= n - 1  # the storage died: its entry (and buffer) went


def test_compiled_cpu_graph_in_one_native_call():
    torch._dynamo.reset()
    model = torch.nn.Linear(16, 8)
    f = torch.compile(model, backend="pjrt", dynamic=False)
    xs = [torch.randn(4, 16) for _ in range(3)]
    with torch.no_grad():
        f(torch.randn(4, 16))
        torch_pjrt.metrics_reset()
        for x in xs:
            torch.testing.assert_close(f(x), model(x))
        m = torch_pjrt.metrics()
        assert m["executions"] == 3
        assert m["bytes_h2d"] == 3 * 4 * 16 * 4  # the inputs only: weights stay cached
        model.weight.add_(1)  # a changed parameter is sent again; xs[0] is still cached
        torch.testing.assert_close(f(xs[0]), model(xs[0]))
        assert torch_pjrt.metrics()["bytes_h2d"] == 3 * 4 * 16 * 4 + 8 * 16 * 4


def test_host_native_call_takes_the_lookup_for_another_signature():
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(x, y):
        return torch.relu(x) * y + 1, x.sum()

    gm = make_fx(f)(torch.randn(3, 4), torch.randn(3, 4))
    cg = compiled.CompiledGraph(gm, name="host_native_test")
    for i, shape in enumerate([(3, 4), (5, 4), (3, 4), (5, 4)]):
        dtype = torch.float64 if i == 3 else torch.float32
        x, y = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
        got, want = cg(x, y), f(x, y)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    assert cg.num_programs == 3


def test_call_specs_refuse_bad_output_leaves():
    """A call spec whose output leaf reads past the results or arguments is
    an error when it is made, for both compiled call paths."""
    import pytest
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch_pjrt import _eager as ek

    gm = make_fx(lambda x: x * 2)(torch.randn(3))
    cg = compiled.CompiledGraph(gm, name="bad_leaves")
    x = torch.randn(3)
    torch.testing.assert_close(cg(x), x * 2)
    prog = cg.program((x,))
    feeds = [(ek.HOST_FEED_ARG, 0, torch.float32, (3,))]
    results = [(torch.float32, (3,))]
    for leaf in [(ek.LEAF_RESULT, 1), (ek.LEAF_INPUT, 1), (ek.LEAF_ALIAS, -1), (7, 0)]:
        with pytest.raises(RuntimeError, match="output leaf 0"):
            ek.host_create(prog.program, 1, feeds, results, [], [leaf], 0,
                           compiled._upload_missing)
    spec = ek.host_create(prog.program, 1, feeds, results, [], [(ek.LEAF_RESULT, 0)], 0,
                          compiled._upload_missing)
    torch.testing.assert_close(ek.host_run(spec, (x,))[0], x * 2)
    assert ek.host_run(spec, (torch.randn(4),)) is NotImplemented
