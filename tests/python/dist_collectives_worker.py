"""Worker of tests/python/test_dist_collectives.py (issue 14), run under
`python -m torch.distributed.run --standalone --nproc-per-node=N`: every c10d
collective on pjrt tensors through the default group (the "pjrt" backend)
against the same collective on CPU tensors through a separate gloo group.

Modes (argv[1]):
  collectives [INIT]  every collective; rank 0 prints "ok NAME" per case once
                      every rank passed it, then "all collectives ok".
                      INIT is the init_process_group backend string
                      ("default": no backend; "cpu:gloo,pjrt:pjrt"; "pjrt").
  mismatch            ranks all_reduce tensors of different shapes (run it
                      with TORCH_DISTRIBUTED_DEBUG=DETAIL for c10d's shape
                      check on every rank; without, gloo's own checks).
  die, die-async      rank 1 leaves with os._exit(0) (torchrun sees no failure
                      and kills nobody) while rank 0 waits in an all_reduce
                      (sync, or async_op=True and wait()); rank 0 must raise.
  hang                rank 1 stays alive but never joins; rank 0's all_reduce
                      must fail after the process group timeout.
  In these modes each rank prints "rank R failed after X s: TYPE: MESSAGE"
  (exit 1) or "rank R finished without error after X s".
The group timeout is TPJ_DIST_TIMEOUT seconds (default 60; the error modes
get a small one from the test); TPJ_DIST_CASES=a,b runs only those cases."""
import os
import sys
import time
import traceback
import warnings
from datetime import timedelta

import torch
import torch.distributed as dist

import torch_pjrt

R = dist.ReduceOp
FLOATS = (torch.float32, torch.bfloat16)
DTYPES = FLOATS + (torch.int64,)
SENTINEL = -77  # fills the parts of a view's base the collective must not touch
DELAY = 0.25    # seconds rank 0 arrives late in the wait() checks

RANK = WORLD = 0
DEV = None   # this process's pjrt device
REF = None   # the gloo group the CPU references run on
INIT = "default"  # the init_process_group backend string (argv[2])
_salt = [0]


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------- inputs --
def make(shape, dtype, rank=None, kind="any"):
    """Deterministic values of `rank` (default: this rank); every call takes a
    new salt, so all ranks make the same calls in the same order (the runner
    resets the salt per case)."""
    _salt[0] += 1
    rank = RANK if rank is None else rank
    g = torch.Generator().manual_seed(1000003 * _salt[0] + 7919 * rank + 17)
    if dtype.is_floating_point:
        if kind == "product":  # near 1: a product over 4 ranks stays normal
            x = 1 + 0.125 * torch.randn(shape, generator=g)
        else:
            x = 4 * torch.randn(shape, generator=g)
        return x.to(dtype)
    lo, hi = (-3, 4) if kind == "product" else (-1000, 1000)
    return torch.randint(lo, hi, shape, generator=g, dtype=dtype)


# Layouts a pjrt argument can have. build(x) gives a contiguous CPU base with
# x's values in the view's places and SENTINEL elsewhere; view(base) the view.
LAYOUTS = {
    "contig": (lambda x: x.clone(), lambda b: b),
    # a transpose: the same elements, column-major
    "T": (lambda x: x.t().contiguous(), lambda b: b.t()),
    # every other column of a wider base
    "strided": (lambda x: torch.full((x.shape[0], 2 * x.shape[1]), SENTINEL, dtype=x.dtype)
                .index_copy_(1, torch.arange(1, 2 * x.shape[1], 2), x),
                lambda b: b[:, 1::2]),
    # contiguous but at a storage offset: a row of SENTINEL before it
    "offset": (lambda x: torch.cat([torch.full((1,) + x.shape[1:], SENTINEL, dtype=x.dtype), x]),
               lambda b: b[1:]),
}
# (shape, layout) pairs the in-place collectives see; 0-d and a large tensor too
SHAPES = [((), "contig"), ((7,), "contig"), ((3, 5), "contig"), ((2, 3, 4), "contig"),
          ((4, 5), "T"), ((4, 3), "strided"), ((3, 4), "offset")]
LARGE = ((300, 257), "contig")   # big enough for gloo to split it into chunks


def to_dev(x, layout="contig"):
    """(base, view) on the pjrt device, the view holding x's values."""
    build, view = LAYOUTS[layout]
    base = put(build(x))
    return base, view(base)


def put(x):
    """A copy of CPU tensor x on the device."""
    return x.to(DEV, copy=True)


def expect_base(want, layout):
    return LAYOUTS[layout][0](want)


# ---------------------------------------------------------------- checking --
def same(what, got, want):
    """got (a pjrt tensor) equals want (a CPU tensor) exactly, on this
    process's device. Both come from the same gloo engine over the same
    values, so floats must match bit for bit too."""
    assert isinstance(got, torch.Tensor), f"{what}: got {type(got).__name__}, not a tensor"
    assert got.device == DEV, f"{what}: result on {got.device}, not {DEV}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, want {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, want {tuple(want.shape)}"
    host = got.cpu()
    if not torch.equal(host, want):
        bad = (host != want).nonzero()
        first = tuple(bad[0].tolist()) if bad.numel() else ()
        raise AssertionError(f"{what}: {bad.shape[0]} of {want.numel()} elements differ; "
                             f"first at {first}: got {host[first].item()}, want {want[first].item()}")


def same_base(what, base, want, layout):
    """The whole base of a view: the collective's result in the view's places
    and the SENTINEL fill untouched around it."""
    same(what, base, expect_base(want, layout))


def waited(what, work):
    """An async_op=True Work (all_reduce_coalesced gives a Future): wait()
    returns. Whether it waited is checked by the values read after it, and by
    case_wait_waits with a rank that comes late. (is_completed() is not
    checked here: gloo's own reduce_scatter Work says False after wait().)"""
    assert work is not None, f"{what}: async_op=True returned no Work"
    work.wait()


def run(fn, async_op, what):
    """fn(async_op) issues one collective; with async_op=True wait on it."""
    work = fn(async_op)
    if async_op:
        waited(what, work)
    else:
        assert work is None, f"{what}: a sync call returned {work!r}"


def ops_for(dtype):
    ops = [R.SUM, R.MAX, R.MIN, R.PRODUCT]
    return ops + [R.AVG] if dtype.is_floating_point else ops


def kind_of(op):
    return "product" if op == R.PRODUCT else "any"


def dn(dtype):
    return str(dtype).replace("torch.", "")


# ------------------------------------------------------------------- cases --
CASES = []


def case(fn):
    CASES.append((fn.__name__.removeprefix("case_"), fn))
    return fn


@case
def case_setup():
    assert dist.get_default_backend_for_device("pjrt") == "pjrt", dist.Backend.default_device_backend_map
    assert dist.get_world_size() == WORLD and dist.get_rank() == RANK
    n = torch.pjrt.device_count()
    want = int(os.environ["LOCAL_RANK"]) % n
    assert torch_pjrt.local_device_index() == want, (torch_pjrt.local_device_index(), want, n)
    assert torch_pjrt.config.fallback == "error"
    world = dist.group.WORLD
    assert world._get_backend(DEV).name() == "pjrt", world._get_backend(DEV).name()
    # which backend serves CPU tensors in the default group
    cpu = {"default": "gloo", "cpu:gloo,pjrt:pjrt": "gloo", "pjrt": "pjrt"}[INIT]
    try:
        got = world._get_backend(torch.device("cpu")).name()
    except RuntimeError:
        got = None
    assert got == cpu, f"init {INIT!r}: CPU tensors go to {got}, expected {cpu}"


@case
def case_all_reduce():
    for dtype in DTYPES:
        for op in ops_for(dtype):
            for shape, layout in SHAPES + ([LARGE] if op == R.SUM else []):
                x = make(shape, dtype, kind=kind_of(op))
                want = x.clone()
                dist.all_reduce(want, op=op, group=REF)
                asy = layout == "contig" and len(shape) == 1
                base, view = to_dev(x, layout)
                what = f"all_reduce {op} {dn(dtype)} {shape} {layout}{' async' if asy else ''}"
                run(lambda a: dist.all_reduce(view, op=op, async_op=a), asy, what)
                same(what, view, want)
                same_base(what + " (base)", base, want, layout)


@case
def case_all_reduce_int_avg():
    """gloo refuses AVG of integers ("result type Float can't be cast to ...
    Long"); the pjrt backend must raise too, not round."""
    x = make((5,), torch.int64)
    errors = []
    for t, group in ((x.clone(), REF), (put(x), None)):
        try:
            dist.all_reduce(t, op=R.AVG, group=group)
            errors.append(None)
        except (RuntimeError, ValueError) as e:
            errors.append(type(e).__name__)
    assert errors[0] is not None, "gloo no longer refuses AVG of int64: update this case"
    assert errors[1] is not None, "AVG of int64 on pjrt gave a result where gloo raises"


@case
def case_argument_errors():
    """Calls gloo refuses on CPU (checked locally, before anything is sent)
    must raise on pjrt tensors too, not run on a wrong layout."""
    def raises(what, fn, on):
        try:
            fn()
        except (RuntimeError, ValueError):
            return
        raise AssertionError(f"{what} on {on} tensors did not raise")
    for dev in ("cpu", DEV):
        group = REF if dev == "cpu" else None
        x = torch.zeros(6, device=dev)
        raises("all_gather_into_tensor into too small an output",
               lambda: dist.all_gather_into_tensor(torch.zeros(6 * WORLD - 1, device=dev), x,
                                                   group=group), dev)
        raises("all_gather_into_tensor into [world, 6] (gloo wants [world * 6])",
               lambda: dist.all_gather_into_tensor(torch.zeros(WORLD, 6, device=dev), x,
                                                   group=group), dev)
        raises("reduce_scatter_tensor of an input not world times the output",
               lambda: dist.reduce_scatter_tensor(torch.zeros(2, device=dev), x[:5], group=group), dev)
        raises("all_to_all_single with splits that do not add up",
               lambda: dist.all_to_all_single(torch.zeros(6, device=dev), x, [1] * WORLD,
                                              [7] + [0] * (WORLD - 1), group=group), dev)
        raises("all_gather with outputs of another dtype",
               lambda: dist.all_gather([torch.zeros(6, dtype=torch.int64, device=dev)
                                        for _ in range(WORLD)], x, group=group), dev)


@case
def case_broadcast():
    for dtype in DTYPES:
        for src in sorted({0, WORLD - 1}):
            for shape, layout in SHAPES:
                x = make(shape, dtype)
                want = x.clone()
                dist.broadcast(want, src, group=REF)
                asy = layout == "contig" and len(shape) == 2
                base, view = to_dev(x, layout)
                what = f"broadcast src={src} {dn(dtype)} {shape} {layout}{' async' if asy else ''}"
                run(lambda a: dist.broadcast(view, src, async_op=a), asy, what)
                same(what, view, want)
                same_base(what + " (base)", base, want, layout)


@case
def case_reduce():
    dst = WORLD - 1
    for dtype in DTYPES:
        for op in (R.SUM, R.MAX, R.PRODUCT):
            for shape, layout in [((), "contig"), ((6,), "contig"), ((4, 3), "strided")]:
                x = make(shape, dtype, kind=kind_of(op))
                want = x.clone()
                dist.reduce(want, dst, op=op, group=REF)
                asy = shape == (6,)
                base, view = to_dev(x, layout)
                what = f"reduce dst={dst} {op} {dn(dtype)} {shape} {layout}"
                run(lambda a: dist.reduce(view, dst, op=op, async_op=a), asy, what)
                if RANK == dst:  # only dst's result is defined
                    same(what, view, want)
                    same_base(what + " (base)", base, want, layout)


@case
def case_all_gather():
    for dtype in DTYPES:
        for shape, layout in [((), "contig"), ((5,), "contig"), ((3, 4), "contig"), ((4, 3), "strided")]:
            x = make(shape, dtype)
            want = [torch.empty(shape, dtype=dtype) for _ in range(WORLD)]
            dist.all_gather(want, x.contiguous(), group=REF)
            _, view = to_dev(x, layout)
            for asy in (False, True):
                # separate output tensors, and rows of one stacked tensor
                outs = [torch.full(shape, SENTINEL, dtype=dtype, device=DEV) for _ in range(WORLD)]
                what = f"all_gather {dn(dtype)} {shape} {layout}{' async' if asy else ''}"
                run(lambda a: dist.all_gather(outs, view, async_op=a), asy, what)
                for i, (o, w) in enumerate(zip(outs, want)):
                    same(f"{what} [{i}]", o, w)
            stacked = torch.full((WORLD,) + shape, SENTINEL, dtype=dtype, device=DEV)
            dist.all_gather(list(stacked.unbind(0)), view)
            same(f"all_gather {dn(dtype)} {shape} into unbind() views", stacked, torch.stack(want))


@case
def case_all_gather_into_tensor():
    for dtype in DTYPES:
        for shape in [(1,), (6,), (2, 3), (3, 2, 2)]:
            x = make(shape, dtype)
            out_shape = (WORLD * shape[0],) + shape[1:]
            want = torch.empty(out_shape, dtype=dtype)
            dist.all_gather_into_tensor(want, x, group=REF)
            for asy in (False, True):
                out = torch.full(out_shape, SENTINEL, dtype=dtype, device=DEV)
                what = f"all_gather_into_tensor {dn(dtype)} {shape}{' async' if asy else ''}"
                run(lambda a: dist.all_gather_into_tensor(out, put(x), async_op=a), asy, what)
                same(what, out, want)


@case
def case_reduce_scatter():
    for dtype in DTYPES:
        for op in [R.SUM, R.MAX, R.MIN] + ([R.AVG] if dtype.is_floating_point else []):
            for shape in [(), (4,), (2, 3)]:
                xs = [make(shape, dtype) for _ in range(WORLD)]
                want = torch.empty(shape, dtype=dtype)
                dist.reduce_scatter(want, [x.clone() for x in xs], op=op, group=REF)
                asy = shape == (4,)
                out = torch.full(shape, SENTINEL, dtype=dtype, device=DEV)
                what = f"reduce_scatter {op} {dn(dtype)} {shape}{' async' if asy else ''}"
                ins = [put(x) for x in xs]
                run(lambda a: dist.reduce_scatter(out, ins, op=op, async_op=a), asy, what)
                same(what, out, want)
                for i, (t, x) in enumerate(zip(ins, xs)):
                    same(f"{what} input [{i}] unchanged", t, x)


@case
def case_reduce_scatter_tensor():
    for dtype in DTYPES:
        for op in [R.SUM, R.MAX, R.PRODUCT] + ([R.AVG] if dtype.is_floating_point else []):
            for shape in [(1,), (5,), (2, 3)]:
                x = make((WORLD * shape[0],) + shape[1:], dtype, kind=kind_of(op))
                want = torch.empty(shape, dtype=dtype)
                dist.reduce_scatter_tensor(want, x.clone(), op=op, group=REF)
                for asy in (False, True):
                    out = torch.full(shape, SENTINEL, dtype=dtype, device=DEV)
                    inp = put(x)
                    what = f"reduce_scatter_tensor {op} {dn(dtype)} {shape}{' async' if asy else ''}"
                    run(lambda a: dist.reduce_scatter_tensor(out, inp, op=op, async_op=a), asy, what)
                    same(what, out, want)
                    same(what + " input unchanged", inp, x)


@case
def case_all_to_all():
    for dtype in DTYPES:
        for shape in [(), (3,), (2, 3)]:
            xs = [make(shape, dtype) for _ in range(WORLD)]
            want = [torch.empty(shape, dtype=dtype) for _ in range(WORLD)]
            dist.all_to_all(want, [x.clone() for x in xs], group=REF)
            for asy in (False, True):
                outs = [torch.full(shape, SENTINEL, dtype=dtype, device=DEV) for _ in range(WORLD)]
                ins = [put(x) for x in xs]
                what = f"all_to_all {dn(dtype)} {shape}{' async' if asy else ''}"
                run(lambda a: dist.all_to_all(outs, ins, async_op=a), asy, what)
                for i, (o, w) in enumerate(zip(outs, want)):
                    same(f"{what} [{i}]", o, w)


def split(src, dst):
    """Rows rank src sends rank dst in the uneven all_to_all_single."""
    return 1 + (2 * src + dst) % 3


@case
def case_all_to_all_single():
    for dtype in DTYPES:
        for rest in [(), (3,)]:
            # equal splits
            x = make((2 * WORLD,) + rest, dtype)
            want = torch.empty_like(x)
            dist.all_to_all_single(want, x.clone(), group=REF)
            for asy in (False, True):
                out = put(torch.full_like(x, SENTINEL))
                what = f"all_to_all_single {dn(dtype)} {x.shape[1:]} equal{' async' if asy else ''}"
                run(lambda a: dist.all_to_all_single(out, put(x), async_op=a), asy, what)
                same(what, out, want)
            # uneven splits
            ins = [split(RANK, j) for j in range(WORLD)]
            outs = [split(j, RANK) for j in range(WORLD)]
            x = make((sum(ins),) + rest, dtype)
            want = torch.empty((sum(outs),) + rest, dtype=dtype)
            dist.all_to_all_single(want, x.clone(), outs, ins, group=REF)
            for asy in (False, True):
                out = torch.full(want.shape, SENTINEL, dtype=dtype, device=DEV)
                what = f"all_to_all_single {dn(dtype)} {rest} splits {ins}->{outs}{' async' if asy else ''}"
                run(lambda a: dist.all_to_all_single(out, put(x), outs, ins, async_op=a), asy, what)
                same(what, out, want)


@case
def case_gather():
    for dtype in DTYPES:
        for dst in sorted({0, WORLD - 1}):
            for shape, layout in [((), "contig"), ((2, 3), "contig"), ((4, 5), "T")]:
                x = make(shape, dtype)
                want = [torch.empty(shape, dtype=dtype) for _ in range(WORLD)] if RANK == dst else None
                dist.gather(x.contiguous(), want, dst=dst, group=REF)
                _, view = to_dev(x, layout)
                outs = ([torch.full(shape, SENTINEL, dtype=dtype, device=DEV) for _ in range(WORLD)]
                        if RANK == dst else None)
                asy = shape == (2, 3)
                what = f"gather dst={dst} {dn(dtype)} {shape} {layout}{' async' if asy else ''}"
                run(lambda a: dist.gather(view, outs, dst=dst, async_op=a), asy, what)
                if RANK == dst:
                    for i, (o, w) in enumerate(zip(outs, want)):
                        same(f"{what} [{i}]", o, w)


@case
def case_scatter():
    for dtype in DTYPES:
        for src in sorted({0, WORLD - 1}):
            for shape, layout in [((), "contig"), ((2, 3), "contig"), ((4, 3), "strided")]:
                xs = [make(shape, dtype) for _ in range(WORLD)]
                want = torch.empty(shape, dtype=dtype)
                dist.scatter(want, [x.clone() for x in xs] if RANK == src else None, src=src, group=REF)
                base, view = to_dev(torch.zeros(shape, dtype=dtype), layout)
                ins = [put(x) for x in xs] if RANK == src else None
                asy = shape == (2, 3)
                what = f"scatter src={src} {dn(dtype)} {shape} {layout}{' async' if asy else ''}"
                run(lambda a: dist.scatter(view, ins, src=src, async_op=a), asy, what)
                same(what, view, want)
                same_base(what + " (base)", base, want, layout)


@case
def case_send_recv():
    nxt, prv = (RANK + 1) % WORLD, (RANK - 1) % WORLD
    for dtype in DTYPES:
        for shape, layout in [((), "contig"), ((5,), "contig"), ((4, 3), "strided")]:
            x = make(shape, dtype)
            # even ranks send first, odd ones receive first: no deadlock (even world sizes)
            want = torch.empty(shape, dtype=dtype)
            if RANK % 2 == 0:
                dist.send(x.contiguous(), nxt, group=REF)
                dist.recv(want, prv, group=REF)
            else:
                dist.recv(want, prv, group=REF)
                dist.send(x.contiguous(), nxt, group=REF)
            what = f"send/recv {dn(dtype)} {shape} {layout}"
            _, src_view = to_dev(x, layout)
            base, dst_view = to_dev(torch.zeros(shape, dtype=dtype), layout)
            if RANK % 2 == 0:
                dist.send(src_view, nxt)
                dist.recv(dst_view, prv)
            else:
                dist.recv(dst_view, prv)
                dist.send(src_view, nxt)
            same(what, dst_view, want)
            same_base(what + " (base)", base, want, layout)
            same(what + " sent tensor unchanged", src_view, x)


def late_join(what, issue_and_wait):
    """Runs issue_and_wait() on every rank, rank 0 DELAY seconds after the
    others, and checks that no rank got past its wait() before rank 0 had
    joined (wall clock times: all ranks are on this host)."""
    dist.barrier(group=REF)
    if RANK == 0:
        time.sleep(DELAY)
    joined = time.time()
    result = issue_and_wait()
    returned = time.time()
    stamp = torch.tensor([joined if RANK == 0 else 0.0], dtype=torch.float64)
    dist.all_reduce(stamp, group=REF)
    early = stamp.item() - returned
    assert early <= 0, f"{what}: returned {early:.3f} s before rank 0 joined"
    return result


@case
def case_barrier():
    """A barrier of the pjrt backend (a group of that backend alone) really
    holds the ranks: rank 0 arrives DELAY late and nobody leaves before it."""
    pjrt_only = dist.new_group(backend="pjrt")
    assert dist.get_backend(pjrt_only) == "pjrt", dist.get_backend(pjrt_only)
    for group in (pjrt_only, None):
        late_join(f"barrier (group {group})", lambda: dist.barrier(group=group))
        late_join(f"barrier async (group {group})",
                  lambda: waited("barrier async", dist.barrier(group=group, async_op=True)))
    # the pjrt-only group runs collectives too
    x = make((4,), torch.float32)
    want = x.clone()
    dist.all_reduce(want, group=REF)
    t = put(x)
    dist.all_reduce(t, group=pjrt_only)
    same("all_reduce on a pjrt-only group", t, want)
    dist.destroy_process_group(pjrt_only)


@case
def case_coalescing():
    for dtype in FLOATS + (torch.int64,):
        shapes = [(), (5,), (2, 3)]
        xs = [make(s, dtype) for s in shapes]
        want = [x.clone() for x in xs]
        dist.all_reduce_coalesced(want, group=REF)
        ts = [put(x) for x in xs]
        dist.all_reduce_coalesced(ts)
        for i, (t, w) in enumerate(zip(ts, want)):
            same(f"all_reduce_coalesced {dn(dtype)} [{i}]", t, w)
        ts = [put(x) for x in xs]
        waited(f"all_reduce_coalesced async {dn(dtype)}", dist.all_reduce_coalesced(ts, async_op=True))
        for i, (t, w) in enumerate(zip(ts, want)):
            same(f"all_reduce_coalesced async {dn(dtype)} [{i}]", t, w)
        # the coalescing manager: all_reduce; with a device too where the
        # backend says it coalesces (batch_isend_irecv asks the same)
        pjrt_backend = dist.group.WORLD._get_backend(DEV)
        for device in (None, DEV) if pjrt_backend.supports_coalescing else (None,):
            ts = [put(x) for x in xs]
            with dist._coalescing_manager(device=device, async_ops=True) as cm:
                for t in ts:
                    dist.all_reduce(t)
            cm.wait()
            for i, (t, w) in enumerate(zip(ts, want)):
                same(f"_coalescing_manager(device={device}) all_reduce {dn(dtype)} [{i}]", t, w)
        # all_gather_into_tensor and reduce_scatter_tensor, as FSDP2 issues them
        ins = [make((n,), dtype) for n in (1, 4, 3)]
        ag_want = [torch.empty(WORLD * x.numel(), dtype=dtype) for x in ins]
        with dist._coalescing_manager(group=REF):
            for o, x in zip(ag_want, ins):
                dist.all_gather_into_tensor(o, x, group=REF)
        rs_in = [make((WORLD * n,), dtype) for n in (2, 1)]
        rs_want = [torch.empty(x.numel() // WORLD, dtype=dtype) for x in rs_in]
        with dist._coalescing_manager(group=REF):
            for o, x in zip(rs_want, rs_in):
                dist.reduce_scatter_tensor(o, x.clone(), group=REF)
        for asy in (False, True):
            ag = [torch.full(w.shape, SENTINEL, dtype=dtype, device=DEV) for w in ag_want]
            with dist._coalescing_manager(async_ops=asy) as cm:
                for o, x in zip(ag, ins):
                    dist.all_gather_into_tensor(o, put(x))
            if asy:
                cm.wait()
            for i, (o, w) in enumerate(zip(ag, ag_want)):
                same(f"coalesced all_gather_into_tensor {dn(dtype)}{' async' if asy else ''} [{i}]", o, w)
            rs = [torch.full(w.shape, SENTINEL, dtype=dtype, device=DEV) for w in rs_want]
            with dist._coalescing_manager(async_ops=asy) as cm:
                for o, x in zip(rs, rs_in):
                    dist.reduce_scatter_tensor(o, put(x))
            if asy:
                cm.wait()
            for i, (o, w) in enumerate(zip(rs, rs_want)):
                same(f"coalesced reduce_scatter_tensor {dn(dtype)}{' async' if asy else ''} [{i}]", o, w)


@case
def case_object_collectives():
    """Pickled objects through the default group (tensors of bytes on the
    device it serves; torch.distributed.checkpoint relies on these)."""
    mine = {"rank": RANK, "data": list(range(RANK + 2)), "name": "r" * (RANK + 1)}
    every = [{"rank": r, "data": list(range(r + 2)), "name": "r" * (r + 1)} for r in range(WORLD)]
    got = [None] * WORLD
    dist.all_gather_object(got, mine)
    assert got == every, f"all_gather_object: {got}"
    objs = [mine, RANK] if RANK == WORLD - 1 else [None, None]
    dist.broadcast_object_list(objs, src=WORLD - 1)
    assert objs == [every[-1], WORLD - 1], f"broadcast_object_list: {objs}"
    got = [None] * WORLD if RANK == 0 else None
    dist.gather_object(mine, got, dst=0)
    if RANK == 0:
        assert got == every, f"gather_object: {got}"
    out = [None]
    dist.scatter_object_list(out, [("for", r) for r in range(WORLD)] if RANK == 0 else None, src=0)
    assert out == [("for", RANK)], f"scatter_object_list: {out}"


@case
def case_more_dtypes():
    """float16, float64, int32, int8, uint8 and bool through the staging."""
    for dtype in (torch.float16, torch.float64, torch.int32, torch.int8, torch.uint8, torch.bool):
        if dtype == torch.bool:
            x = make((9,), torch.int64) > 0
        elif dtype in (torch.int8, torch.uint8):
            x = (make((9,), torch.int64) % 50).to(dtype)  # sums stay in range
        else:
            x = make((9,), dtype if dtype.is_floating_point else torch.int64).to(dtype)
        for op in (R.SUM, R.MAX):
            want = x.clone()
            dist.all_reduce(want, op=op, group=REF)
            t = put(x)
            dist.all_reduce(t, op=op)
            same(f"all_reduce {op} {dn(dtype)}", t, want)
        want = x.clone()
        dist.broadcast(want, WORLD - 1, group=REF)
        t = put(x)
        dist.broadcast(t, WORLD - 1)
        same(f"broadcast {dn(dtype)}", t, want)
        want = torch.empty(WORLD * 9, dtype=dtype)
        dist.all_gather_into_tensor(want, x, group=REF)
        out = torch.zeros(WORLD * 9, dtype=dtype, device=DEV)
        dist.all_gather_into_tensor(out, put(x))
        same(f"all_gather_into_tensor {dn(dtype)}", out, want)


@case
def case_subgroups():
    """Groups of some ranks (as a DeviceMesh's dimensions make them): with 4
    ranks {0, 1}, {2, 3} and {1, 3}; with 2, one group of each rank alone and
    one of both. src/dst are global ranks; group_dst a rank in the group."""
    specs = [[0, 1], [2, 3], [1, 3]] if WORLD == 4 else [[r] for r in range(WORLD)] + [list(range(WORLD))]
    for ranks in specs:
        pg = dist.new_group(ranks)      # the default group's backends
        ref = dist.new_group(ranks, backend="gloo")
        x = make((6,), torch.float32)   # on every rank: the salts stay in step
        y = make((2 * len(ranks),), torch.float32)
        if RANK not in ranks:
            continue
        where = f"group {ranks}"
        assert dist.get_world_size(pg) == len(ranks) and dist.get_rank(pg) == ranks.index(RANK)
        want = x.clone()
        dist.all_reduce(want, group=ref)
        t = put(x)
        dist.all_reduce(t, group=pg)
        same(f"all_reduce in {where}", t, want)
        want = x.clone()
        dist.broadcast(want, ranks[-1], group=ref)
        t = put(x)
        dist.broadcast(t, ranks[-1], group=pg)
        same(f"broadcast from {ranks[-1]} in {where}", t, want)
        want = torch.empty(6 * len(ranks))
        dist.all_gather_into_tensor(want, x, group=ref)
        out = torch.zeros(6 * len(ranks), device=DEV)
        dist.all_gather_into_tensor(out, put(x), group=pg)
        same(f"all_gather_into_tensor in {where}", out, want)
        want = torch.empty(2)
        dist.reduce_scatter_tensor(want, y.clone(), group=ref)
        out = torch.zeros(2, device=DEV)
        dist.reduce_scatter_tensor(out, put(y), group=pg)
        same(f"reduce_scatter_tensor in {where}", out, want)
        if len(ranks) == 2:  # the first member sends to the second (group_dst=1)
            if RANK == ranks[0]:
                dist.send(x.clone(), group=ref, group_dst=1)
                dist.send(put(x), group=pg, group_dst=1)
            else:
                want = torch.empty(6)
                dist.recv(want, ranks[0], group=ref)
                got = torch.zeros(6, device=DEV)
                dist.recv(got, ranks[0], group=pg)
                same(f"send/recv in {where}", got, want)
        dist.barrier(group=pg)
    # every rank passes every new_group call before any group is destroyed
    dist.barrier(group=REF)


@case
def case_wait_waits():
    """async_op=True and wait(): rank 0 issues its part DELAY late, and no
    rank gets past wait() before that, with the right values after it.
    get_future() (DDP's comm hooks) resolves to the result tensors."""
    x = make((64,), torch.float32)
    want = x.clone()
    dist.all_reduce(want, group=REF)

    def all_reduce_and_wait():
        work = dist.all_reduce(t, async_op=True)
        waited("all_reduce", work)
        return work

    t = put(x)
    work = late_join("all_reduce wait()", all_reduce_and_wait)
    assert work.is_completed(), "all_reduce: is_completed() is False after wait()"
    same("all_reduce async, rank 0 late", t, want)

    t = put(x)
    vals = late_join("all_reduce get_future().wait()",
                     lambda: dist.all_reduce(t, async_op=True).get_future().wait())
    assert isinstance(vals, list) and len(vals) == 1, f"future value {vals!r}"
    same("all_reduce future value", vals[0], want)
    same("all_reduce future tensor", t, want)

    bwant = x.clone()
    dist.broadcast(bwant, 0, group=REF)
    t = put(x)
    late_join("broadcast wait()", lambda: waited("broadcast", dist.broadcast(t, 0, async_op=True)))
    same("broadcast async, rank 0 late", t, bwant)

    out = torch.full((WORLD * 64,), SENTINEL, dtype=torch.float32, device=DEV)
    awant = torch.empty(WORLD * 64)
    dist.all_gather_into_tensor(awant, x, group=REF)
    late_join("all_gather_into_tensor wait()", lambda: waited(
        "all_gather_into_tensor", dist.all_gather_into_tensor(out, put(x), async_op=True)))
    same("all_gather_into_tensor async, rank 0 late", out, awant)

    # irecv from rank 0, which sends late
    y = make((64,), torch.float32, rank=0)
    if RANK != 0:
        got = torch.zeros(64, device=DEV)
        late_join("irecv wait()", lambda: waited("irecv", dist.irecv(got, 0)))
        same("irecv, rank 0 sending late", got, y)
    else:
        late_join("isend", lambda: [waited("isend", dist.isend(put(y), r)) for r in range(1, WORLD)])


@case
def case_inflight_inputs():
    """Inputs still being computed on the device when the collective is
    called, and results used by device ops right after it: the staging must
    wait for the producer and order the copy back before the consumer."""
    for dtype in DTYPES:
        x = make((256,), dtype)
        two = torch.tensor(2, dtype=dtype)
        want = x * two
        dist.all_reduce(want, group=REF)
        t = put(x) * put(two)          # launched, not waited
        dist.all_reduce(t)
        u = t - t.flip(0)                    # uses the result at once
        same(f"all_reduce of an in-flight {dn(dtype)} input", t, want)
        same(f"device op on the all_reduce result {dn(dtype)}", u, want - want.flip(0))


@case
def case_staged_bytes():
    """metrics()["dist_staged_bytes"] counts the device->host->device bytes of
    the collectives on pjrt tensors, and nothing for CPU tensors."""
    n = 1000
    x = make((n,), torch.float32)
    t = put(x)
    before = torch_pjrt.metrics()["dist_staged_bytes"]
    dist.all_reduce(t)
    grew = torch_pjrt.metrics()["dist_staged_bytes"] - before
    assert 4 * n <= grew <= 2 * 4 * n, f"all_reduce of {4 * n} bytes staged {grew} bytes"
    before = torch_pjrt.metrics()["dist_staged_bytes"]
    c = x.clone()
    dist.all_reduce(c)  # gloo, or with init "pjrt" that backend passing CPU through
    grew = torch_pjrt.metrics()["dist_staged_bytes"] - before
    assert grew == 0, f"an all_reduce of a CPU tensor staged {grew} bytes"
    assert STAGED_AT_START < torch_pjrt.metrics()["dist_staged_bytes"]


@case
def case_recv_any_source():
    """Rank 0 receives one tensor from every other rank with src=None; recv
    returns the sender's rank. Late in the list: with more than 2 ranks a
    failed recv leaves senders waiting until the timeout."""
    xs = [make((3,), torch.float32, rank=r) for r in range(WORLD)]
    for group, dev in ((REF, "cpu"), (None, DEV)):
        if RANK == 0:
            got = {}
            for _ in range(WORLD - 1):
                t = torch.zeros(3, device=dev)
                sender = dist.recv(t, group=group)
                assert sender not in got and 0 < sender < WORLD, (sender, sorted(got))
                got[sender] = t
            for sender, t in got.items():
                if dev == DEV:
                    same(f"recv(src=None) from {sender}", t, xs[sender])
                else:
                    assert torch.equal(t, xs[sender]), "gloo reference"
        else:
            dist.send(xs[RANK].to(dev), 0, group=group)


@case
def case_isend_irecv():
    """Every rank posts its isend to the next rank before its irecv from the
    previous one, then waits on both (the pattern of pipeline parallelism):
    an isend that blocks until its receiver is there deadlocks here, so this
    case runs last. batch_isend_irecv too."""
    nxt, prv = (RANK + 1) % WORLD, (RANK - 1) % WORLD
    for dtype in (torch.float32, torch.int64):
        for shape in [(), (5,)]:
            x = make(shape, dtype)
            want = torch.empty(shape, dtype=dtype)
            works = [dist.isend(x.clone(), nxt, group=REF), dist.irecv(want, prv, group=REF)]
            for w in works:
                w.wait()
            got = torch.full(shape, SENTINEL, dtype=dtype, device=DEV)
            works = [dist.isend(put(x), nxt), dist.irecv(got, prv)]
            for i, w in enumerate(works):
                waited(f"isend/irecv {dn(dtype)} {shape} [{i}]", w)
            same(f"isend/irecv {dn(dtype)} {shape}", got, want)
            got = torch.full(shape, SENTINEL, dtype=dtype, device=DEV)
            ops = [dist.P2POp(dist.isend, put(x), nxt), dist.P2POp(dist.irecv, got, prv)]
            for i, w in enumerate(dist.batch_isend_irecv(ops)):
                waited(f"batch_isend_irecv {dn(dtype)} {shape} [{i}]", w)
            same(f"batch_isend_irecv {dn(dtype)} {shape}", got, want)


# -------------------------------------------------------------------- modes --
def run_collectives():
    failed = []
    t_start = time.monotonic()
    only = os.environ.get("TPJ_DIST_CASES")  # comma-separated names, for debugging
    for index, (name, fn) in enumerate(CASES):
        if only and name not in only.split(","):
            continue
        _salt[0] = 100000 * index  # each case's inputs whatever ran before it
        t0 = time.monotonic()
        err = None
        try:
            fn()
        except Exception:
            err = traceback.format_exc()
            # a failure inside dist._coalescing_manager leaves the group's
            # op list behind, and every later collective would only be queued
            dist.distributed_c10d._world.pg_coalesce_state.clear()
        flag = torch.tensor([0 if err is None else 1])
        try:
            dist.all_reduce(flag, group=REF)   # every rank's verdict, and a resync
        except Exception as e:  # a gloo timeout in the case closes every pair
            say(f"[rank {RANK}] FAIL {name}:\n{err}")
            say(f"[rank {RANK}] FAIL the ranks can no longer talk after {name}: {e}")
            return 1
        if err is not None:
            say(f"[rank {RANK}] FAIL {name}:\n{err}")
        if flag.item():
            failed.append(name)
        if RANK == 0:
            took = time.monotonic() - t0
            say(f"ok {name} ({took:.2f} s)" if not flag.item()
                else f"FAIL {name} on {flag.item()} rank(s) ({took:.2f} s)")
    fallbacks = torch_pjrt.metrics()["fallbacks"] - FALLBACKS_AT_START
    if fallbacks:
        say(f"[rank {RANK}] FAIL {fallbacks} op(s) fell back to the CPU")
        failed.append("fallbacks")
    if RANK == 0 and not failed:
        say(f"all collectives ok ({len(CASES)} cases, world {WORLD}, "
            f"{time.monotonic() - t_start:.1f} s, rank 0 staged "
            f"{torch_pjrt.metrics()['dist_staged_bytes'] - STAGED_AT_START} bytes)")
    return 1 if failed else 0


def run_error_mode(mode):
    """Each rank prints one line, "rank R failed after X s: ..." or "rank R
    finished without error after X s"; the test reads them."""
    t = put(make((8 + (RANK if mode == "mismatch" else 0),), torch.float32))
    dist.all_reduce(torch.ones(2, device=DEV))  # all ranks alive and connected
    t0 = time.monotonic()
    try:
        if mode == "mismatch":
            dist.all_reduce(t)
            dist.all_reduce(torch.ones(4, device=DEV))  # where the first one "fit"
        elif mode in ("die", "die-async"):
            if RANK == 1:
                os._exit(0)
            if mode == "die":
                dist.all_reduce(t)
            else:
                dist.all_reduce(t, async_op=True).wait()
        elif mode == "hang":
            if RANK == 1:  # alive, never joining; gone once torchrun is
                parent = os.getppid()
                while os.getppid() == parent:
                    time.sleep(0.5)
                os._exit(0)
            dist.all_reduce(t)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        say(f"rank {RANK} finished without error after {time.monotonic() - t0:.1f} s")
        return 0
    except Exception as e:
        msg = " ".join(str(e).split())[:600]
        say(f"rank {RANK} failed after {time.monotonic() - t0:.1f} s: {type(e).__name__}: {msg}")
        return 1


def main():
    global RANK, WORLD, DEV, REF, INIT, STAGED_AT_START, FALLBACKS_AT_START
    mode = sys.argv[1] if len(sys.argv) > 1 else "collectives"
    # all_gather_into_tensor, reduce_scatter_tensor: "deprecated" in this torch
    warnings.filterwarnings("ignore", category=FutureWarning)
    init = INIT = sys.argv[2] if len(sys.argv) > 2 else "default"
    torch_pjrt.config.fallback = "error"
    timeout = timedelta(seconds=float(os.environ.get("TPJ_DIST_TIMEOUT", "60")))
    backend = None if init == "default" else init
    dist.init_process_group(backend=backend, timeout=timeout)
    RANK, WORLD = dist.get_rank(), dist.get_world_size()
    DEV = torch.device("pjrt", torch_pjrt.local_device_index())
    torch.pjrt.set_device(DEV)
    REF = dist.new_group(backend="gloo")
    STAGED_AT_START = torch_pjrt.metrics()["dist_staged_bytes"]
    FALLBACKS_AT_START = torch_pjrt.metrics()["fallbacks"]
    if mode == "collectives":
        rc = run_collectives()
    else:
        rc = run_error_mode(mode)
    sys.stdout.flush()
    sys.stderr.flush()
    if rc == 0:
        dist.destroy_process_group()
    # after a failed collective gloo's threads abort at interpreter exit
    # ("terminate called without an active exception"): leave without it
    os._exit(rc)


if __name__ == "__main__":
    main()
