"""torch_pjrt.profile / TORCH_PJRT_TRACE: the Chrome trace-event file written by
the C runtime (src/runtime/trace.c) parses, its spans nest on every thread,
record_function ranges enclose the work inside them, and a known program shows
its compiles, launches (enqueue and device completion), copies and fallback."""
import collections
import json
import subprocess
import sys
import threading

import pytest
import torch

import torch_pjrt

DEV = "pjrt"
EPS = 0.002  # microseconds: ts and dur are each rounded to 1 ns


def load(path):
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    for e in events:
        assert {"name", "ph", "pid", "tid"} <= set(e), e
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0, e
    return events


def spans(events, cat=None, name=None):
    return [e for e in events if e["ph"] == "X" and (cat is None or e.get("cat") == cat)
            and (name is None or e["name"] == name)]


def check_nesting(events):
    """Every track's spans nest: a span that starts inside another ends inside it."""
    by_tid = collections.defaultdict(list)
    for e in spans(events):
        by_tid[e["tid"]].append(e)
    for tid, track in by_tid.items():
        track.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in track:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"] + EPS:
                stack.pop()
            if stack:
                p = stack[-1]
                assert e["ts"] + e["dur"] <= p["ts"] + p["dur"] + EPS, (
                    f"track {tid}: {e['name']} crosses its parent {p['name']}")
            stack.append(e)


def inside(child, parent):
    return (child["tid"] == parent["tid"] and child["ts"] >= parent["ts"] - EPS
            and child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + EPS)


def small_fn(x, y):
    return torch.relu(x @ y) * 2 + 1


@pytest.mark.fallback
def test_profile_traces_compile_launch_copy_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_pjrt.config, "fallback", "cpu")
    path = tmp_path / "trace.json"
    x, y = torch.randn(8, 16), torch.randn(16, 4)
    compiled = torch.compile(small_fn, backend="pjrt")
    with torch_pjrt.profile(path) as p:
        assert p == str(path) and torch_pjrt._C.trace_enabled()
        with torch.profiler.record_function("compiled calls"):
            out = compiled(x, y)
            out = compiled(x, y)
        with torch.autograd.profiler.record_function("eager ops"):
            a = x.to(DEV)
            b = (a * 3 + 1).sum(0)
            host = b.cpu()
        with torch.profiler.record_function("forced fallback"):
            with torch_pjrt.config.disabled_ops("aten::cummax.default"):
                cm = torch.cummax(a, 0)[0].cpu()
        with torch.profiler.record_function("compiled fallback"):
            with torch_pjrt.config.disabled_ops("aten::cummin.default"):
                cmin = torch.compile(lambda t: torch.cummin(t, 0)[0] + 1, backend="pjrt")(x)
    assert not torch_pjrt._C.trace_enabled()
    torch.testing.assert_close(cmin, torch.cummin(x, 0)[0] + 1)
    torch.testing.assert_close(out, small_fn(x, y))
    torch.testing.assert_close(host, (x * 3 + 1).sum(0))
    torch.testing.assert_close(cm, torch.cummax(x, 0)[0])

    events = load(path)
    check_nesting(events)
    user = {e["name"]: e for e in spans(events, "user")}
    assert {"compiled calls", "eager ops", "forced fallback"} <= set(user)

    compiles = spans(events, "compile")
    assert compiles
    for c in compiles:
        assert c["args"]["cache"] in ("memory", "disk", "none")
        assert c["args"]["ops"] > 0 and c["args"]["bytes"] > 0
        assert c["args"]["seconds"] >= 0 and len(c["args"]["program"]) == 16

    launches = spans(events, "launch")
    device = spans(events, "device")
    # the compiled graph: two launches of one program, inside its range
    graph = [e for e in launches if inside(e, user["compiled calls"])]
    assert len(graph) == 2 and graph[0]["args"]["program"] == graph[1]["args"]["program"]
    # the eager ops: each launch inside its op span, inside the range
    eager = [e for e in launches if inside(e, user["eager ops"])]
    ops = {e["args"]["op"] for e in eager}
    assert {"aten::mul.Tensor", "aten::add.Tensor", "aten::sum.dim_IntList"} <= ops
    for e in eager:
        assert any(inside(e, o) for o in spans(events, "eager", e["args"]["op"]))
    # every launch completed on its device's track, after its enqueue
    programs = collections.Counter(e["args"]["program"] for e in launches)
    done = collections.Counter(e["args"]["program"] for e in device)
    assert done == programs
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert all(names[e["tid"]] == f"pjrt device {e['args']['device']}" for e in device)
    for launch in launches:
        first = min((d for d in device if d["args"]["program"] == launch["args"]["program"]
                     and d["ts"] >= launch["ts"] + launch["dur"] - EPS), key=lambda d: d["ts"],
                    default=None)
        assert first is not None, launch

    copies = spans(events, "copy")
    assert {c["args"]["direction"] for c in copies} == {"h2d", "d2h"}
    assert all(c["args"]["bytes"] > 0 for c in copies)
    assert any(inside(c, user["eager ops"]) and c["args"]["direction"] == "h2d"
               for c in copies)  # x.to("pjrt")
    assert any(inside(c, user["compiled calls"]) for c in copies)

    fallback = spans(events, "fallback", "fallback aten::cummax.default")
    assert len(fallback) == 1 and inside(fallback[0], user["forced fallback"])
    assert fallback[0]["args"]["op"] == "aten::cummax.default"
    assert any(e["ph"] == "i" and e["cat"] == "fallback" for e in events)
    # a compiled graph's partition that runs on the CPU is named too
    named = [e for e in events if e["ph"] == "i" and e["name"] == "fallback aten::cummin.default"]
    assert named and all(inside(dict(e, dur=0), user["compiled fallback"]) for e in named)
    assert named[0]["args"]["op"] == "aten::cummin.default"


def test_eager_ops_from_threads_nest_per_thread(tmp_path):
    path = tmp_path / "threads.json"
    base = torch.randn(32, 32)
    errors = []

    def work(i):
        try:
            t = base.to(DEV)
            for _ in range(5):
                with torch.profiler.record_function(f"step {i}"):
                    t = torch.tanh(t * 0.5 + i)
            t.cpu()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    with torch_pjrt.profile(path):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    events = load(path)
    check_nesting(events)
    steps = spans(events, "user")
    assert len(steps) == 20 and len({e["tid"] for e in steps}) == 4
    for s in steps:
        inner = [e for e in spans(events, "launch") if inside(e, s)]
        assert {e["args"]["op"] for e in inner} >= {"aten::tanh.default"}


def test_profile_errors_and_exceptions(tmp_path):
    with pytest.raises(torch_pjrt.Error, match="cannot create"):
        with torch_pjrt.profile(tmp_path / "missing" / "trace.json"):
            pass
    assert not torch_pjrt._C.trace_enabled()
    path = tmp_path / "raised.json"
    with pytest.raises(ValueError):
        with torch_pjrt.profile(path):
            with pytest.raises(torch_pjrt.Error, match="already running"):
                with torch_pjrt.profile(tmp_path / "inner.json"):
                    pass
            torch.ones(3, device=DEV).cpu()
            raise ValueError("boom")
    assert not torch_pjrt._C.trace_enabled()
    assert spans(load(path), "copy")  # written although the block raised
    # Python code can add its own spans and instants
    path = tmp_path / "py.json"
    with torch_pjrt.profile(path):
        t0 = torch_pjrt._C.trace_now_ns()
        torch_pjrt._C.trace_instant("mark", "here", {"k": "v"})
        torch_pjrt._C.trace_span("py", "mine", t0, torch_pjrt._C.trace_now_ns(),
                                 {"n": 3, "s": "x\"y", "b": True})
    events = load(path)
    mine = spans(events, "py", "mine")
    assert len(mine) == 1 and mine[0]["args"] == {"n": 3, "s": "x\"y", "b": "true"}


def test_env_trace_covers_the_whole_run(tmp_path, subprocess_env):
    path = tmp_path / "env.json"
    code = ("import torch, torch_pjrt\n"
            "f = torch.compile(lambda a: (a * 2).sum(), backend='pjrt')\n"
            "f(torch.randn(5)); f(torch.randn(5))\n"
            "torch.ones(4, device='pjrt').add(1).cpu()\n")
    env = dict(subprocess_env, TORCH_PJRT_TRACE=str(path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    events = load(path)
    check_nesting(events)
    assert spans(events, "compile") and spans(events, "device")
    assert len(spans(events, "launch")) >= 3
    assert {c["args"]["direction"] for c in spans(events, "copy")} == {"h2d", "d2h"}
