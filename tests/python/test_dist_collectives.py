"""Issue 14's "every collective against a gloo CPU reference", and the failure
cases (a rank that dies or never joins, shapes that differ across ranks): each
test runs dist_collectives_worker.py under torchrun on loopback, bounded in
time. 2 processes in `make test`; 4 processes and the slower cases are `full`."""
import os
import re

import pytest

import torchrun as launcher

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "dist_collectives_worker.py")
with open(WORKER) as _f:
    CASES = re.findall(r"^def case_(\w+)\(", _f.read(), re.M)

ERROR_TIMEOUT = 8  # the process group timeout of the failure cases, seconds


def torchrun(env, nproc, *args, timeout, extra_env=None):
    """(returncode, merged output, seconds) of the worker under torchrun; a run
    past `timeout` is a hang: its whole process tree is killed and the test fails."""
    env = dict(env, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    env.pop("TORCH_DISTRIBUTED_DEBUG", None)
    env.pop("TPJ_DIST_CASES", None)
    env.update(extra_env or {})
    rc, out, took = launcher.run(WORKER, nproc, args, env=env, timeout=timeout,
                                 torchrun_args=["--max-restarts=0", "--monitor-interval=0.1"])
    if rc is None:
        pytest.fail(f"torchrun {' '.join(args)} ({nproc} processes) did not finish in "
                    f"{timeout} s: a hang\n{out[-8000:]}")
    return rc, out, took


def check_collectives(env, nproc, init="default", timeout=150, extra_env=None):
    rc, out, took = torchrun(env, nproc, "collectives", init, timeout=timeout,
                             extra_env={"TPJ_DIST_TIMEOUT": "15", **(extra_env or {})})
    lines = out.splitlines()
    missing = [c for c in CASES if not any(ln.startswith(f"ok {c} (") for ln in lines)]
    failures = "\n".join(ln for ln in lines if "FAIL" in ln) or "(none printed)"
    assert rc == 0 and not missing, (
        f"torchrun with {nproc} processes, init {init!r}: exit {rc} after {took:.1f} s; "
        f"cases not ok: {missing}\nfailures:\n{failures}\n--- output tail ---\n{out[-10000:]}")
    summary = [ln for ln in lines if ln.startswith("all collectives ok")]
    assert summary, out[-4000:]
    print(summary[0], f"(torchrun {took:.1f} s)")


def rank_lines(out):
    """{rank: its line} of an error mode."""
    return {int(m.group(1)): m.group(0)
            for m in re.finditer(r"^rank (\d+) (?:failed|finished).*$", out, re.M)}


def test_collectives_2_processes(subprocess_env):
    """Every collective, sync and async, over float32/bfloat16/int64 in 0-d,
    1-3-d, transposed, strided and offset views, equal to gloo on CPU bit for
    bit, results on this rank's pjrt device, no CPU fallback."""
    check_collectives(subprocess_env, 2)


@pytest.mark.full
def test_collectives_4_processes(subprocess_env):
    check_collectives(subprocess_env, 4, timeout=300)


@pytest.mark.full
@pytest.mark.parametrize("init", ["cpu:gloo,pjrt:pjrt", "pjrt"])
def test_collectives_init_strings(subprocess_env, init):
    """init_process_group("cpu:gloo,pjrt:pjrt") and ("pjrt"): the same cases,
    and CPU tensors in the default group go to gloo or pass through unstaged."""
    check_collectives(subprocess_env, 2, init)


@pytest.mark.full
def test_collectives_two_devices_per_process(subprocess_env):
    """With cpu_device_count=2 each process has two pjrt devices and rank 1
    works on pjrt:1 (torch_pjrt.local_device_index()): staged from there."""
    check_collectives(subprocess_env, 2,
                      extra_env={"TORCH_PJRT_CLIENT_OPTIONS": "cpu_device_count=2"})


def _dead_peer(env, mode):
    rc, out, took = torchrun(env, 2, mode, timeout=90,
                             extra_env={"TPJ_DIST_TIMEOUT": str(ERROR_TIMEOUT)})
    ranks = rank_lines(out)
    assert rc != 0, f"torchrun exited 0 although rank 1 died:\n{out[-6000:]}"
    assert 0 in ranks and " failed after " in ranks[0], (
        f"rank 0 did not report an error (exit {rc}, {took:.1f} s):\n{out[-6000:]}")
    waited = float(re.search(r"failed after ([\d.]+) s", ranks[0]).group(1))
    # a closed connection is seen at once; at worst the group timeout applies
    assert waited <= ERROR_TIMEOUT + 2, ranks[0]
    assert 1 not in ranks, f"rank 1 should have left without a word: {ranks[1]}"
    print(ranks[0], f"(torchrun {took:.1f} s)")


def test_rank_dies(subprocess_env):
    """Rank 1 exits (status 0, so torchrun kills nobody) while rank 0 is in an
    all_reduce on pjrt tensors: rank 0 raises within the timeout, no hang."""
    _dead_peer(subprocess_env, "die")


@pytest.mark.full
def test_rank_dies_async(subprocess_env):
    """The same with async_op=True: the Work's wait() raises."""
    _dead_peer(subprocess_env, "die-async")


@pytest.mark.full
def test_rank_never_joins(subprocess_env):
    """Rank 1 is alive but never calls the collective: rank 0's all_reduce
    fails after the process group's timeout, not later."""
    rc, out, took = torchrun(subprocess_env, 2, "hang", timeout=90,
                             extra_env={"TPJ_DIST_TIMEOUT": str(ERROR_TIMEOUT)})
    ranks = rank_lines(out)
    assert rc != 0 and 0 in ranks and " failed after " in ranks[0], out[-6000:]
    waited = float(re.search(r"failed after ([\d.]+) s", ranks[0]).group(1))
    assert ERROR_TIMEOUT - 1 <= waited <= ERROR_TIMEOUT + 5, ranks[0]
    print(ranks[0], f"(torchrun {took:.1f} s)")


def test_mismatched_shapes_detail(subprocess_env):
    """TORCH_DISTRIBUTED_DEBUG=DETAIL wraps the pjrt backend in c10d's
    ProcessGroupWrapper: an all_reduce of [8] on rank 0 and [9] on rank 1
    fails on every rank at once, naming both shapes."""
    rc, out, took = torchrun(subprocess_env, 2, "mismatch", timeout=90,
                             extra_env={"TPJ_DIST_TIMEOUT": str(ERROR_TIMEOUT),
                                        "TORCH_DISTRIBUTED_DEBUG": "DETAIL"})
    ranks = rank_lines(out)
    assert sorted(ranks) == [0, 1], f"exit {rc} after {took:.1f} s:\n{out[-8000:]}"
    for r, line in ranks.items():
        assert "Detected mismatch between collectives" in line, line
        assert "TensorShape=[8]" in line and "TensorShape=[9]" in line, line
    assert rc != 0
    print(ranks[0][:300], f"(torchrun {took:.1f} s)")


@pytest.mark.full
def test_mismatched_shapes(subprocess_env):
    """Without the debug wrapper the shapes go to gloo as they are: gloo finds
    the size mismatch ("Received data size doesn't match expected size. Is
    there a distributed collective mismatch", which aborts that rank) or a
    rank times out; the run fails within the bound either way, never hangs."""
    rc, out, took = torchrun(subprocess_env, 2, "mismatch", timeout=90,
                             extra_env={"TPJ_DIST_TIMEOUT": str(ERROR_TIMEOUT)})
    ranks = rank_lines(out)
    assert rc != 0, f"a shape mismatch went through:\n{out[-6000:]}"
    assert "collective mismatch" in out or "Timed out" in out, out[-6000:]
    assert took < 60, f"{took:.1f} s"
    print(f"exit {rc} after {took:.1f} s:", "; ".join(ranks.values())[:400])
