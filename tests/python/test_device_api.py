"""The CUDA-style device API on the pjrt device (torch.pjrt.* and
torch.accelerator.*), checked against the semantics of torch.cuda: out of
memory, memory statistics."""
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_pjrt  # noqa: F401  (registers the device)

MB = 1 << 20


@pytest.fixture(autouse=True)
def _strict():
    old = torch_pjrt.config.fallback
    torch_pjrt.config.fallback = "error"
    yield
    torch_pjrt.config.fallback = old


def run_child(code, env):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


# ------------------------------------------------------------- out of memory --

def test_too_large_allocations_raise_oom_early():
    free, total = torch.pjrt.mem_get_info()
    n = (total // 4) * 2  # twice the device's memory in float32 elements
    for make in (lambda: torch.empty(n, device="pjrt"), lambda: torch.randn(n, device="pjrt"),
                 lambda: torch.ones(2**40, device="pjrt")):
        before = torch.pjrt.memory_stats()["num_ooms"]
        with pytest.raises(torch.OutOfMemoryError, match=r"tried to allocate \d+ bytes on pjrt "
                           r"device 0"):
            make()
        assert torch.pjrt.memory_stats()["num_ooms"] == before + 1
    x = torch.arange(6, device="pjrt", dtype=torch.float32) * 2  # the device still works
    assert torch.equal(x.cpu(), torch.arange(6, dtype=torch.float32) * 2)


def test_oom_under_a_memory_limit_is_survivable(subprocess_env):
    # A child with RLIMIT_AS 3 GiB above what it uses: an eager allocation, an
    # eager op's output and a compiled program's temporary (6.4 GB, inside the
    # plugin) each raise torch.OutOfMemoryError; after that everything works
    # and the memory count is back where it was.
    out = run_child("""
        import resource, torch, torch_pjrt
        torch_pjrt.config.fallback = "error"
        a, b = torch.randn(40000, 8), torch.randn(8, 40000)
        mm = torch.compile(lambda a, b: (a @ b).sum(), backend="pjrt")
        small = (mm(a[:64], b[:, :64]), (a[:64] @ b[:, :64]).sum())
        pa, pb = a.to("pjrt"), b.to("pjrt")
        base = torch.pjrt.memory_allocated()
        vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), vm + (3 << 30)))
        tries = [lambda: torch.ones(2**30, device="pjrt"),
                 lambda: torch.empty(2**30, device="pjrt").normal_(),
                 lambda: torch.arange(2**30, device="pjrt", dtype=torch.float32),
                 lambda: pa @ pb,
                 lambda: float(mm(a, b)),
                 lambda: float(mm(pa, pb))]
        for i, f in enumerate(tries):
            try:
                f()
                print("no error", i)
            except torch.OutOfMemoryError as e:
                assert "bytes" in str(e), str(e)
                assert "pjrt device 0" in str(e) or "pjrt:0" in str(e), str(e)  # names where
                print("oom", i)
        assert torch.pjrt.memory_allocated() == base, (torch.pjrt.memory_allocated(), base)
        y = torch.ones(1000, device="pjrt") + 1
        assert float(y.sum()) == 2000.0
        torch.testing.assert_close(mm(a[:64], b[:, :64]), small[1], rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(mm(pa[:64], pb[:, :64]).cpu(), small[1], rtol=1e-5, atol=1e-3)
        print("ok", torch.pjrt.memory_stats()["num_ooms"])
    """, subprocess_env)
    lines = out.split()
    assert [l for l in out.splitlines() if l.startswith("oom")] == [f"oom {i}" for i in range(6)]
    assert lines[-2] == "ok" and int(lines[-1]) >= 4  # eager ones count per device


# ---------------------------------------------------------- memory statistics --

def test_memory_allocated_counts_live_storages():
    torch.pjrt.synchronize()
    base = torch.pjrt.memory_allocated()
    torch.pjrt.reset_peak_memory_stats()
    assert torch.pjrt.max_memory_allocated() == base
    x = torch.empty(MB // 4, device="pjrt")  # deferred (never written): counted
    assert torch.pjrt.memory_allocated() == base + MB
    y = torch.ones(2 * MB // 4, device="pjrt")
    assert torch.pjrt.memory_allocated() == base + 3 * MB
    assert torch.pjrt.memory_reserved() == torch.pjrt.memory_allocated()
    del x, y
    assert torch.pjrt.memory_allocated() == base
    assert torch.pjrt.max_memory_allocated() == base + 3 * MB
    assert torch.pjrt.max_memory_reserved() == base + 3 * MB
    torch.pjrt.reset_peak_memory_stats()
    assert torch.pjrt.max_memory_allocated() == base


def test_compiled_program_temporaries_count_in_the_peak():
    # (x @ x) * 2 + 1 summed: the 16 MiB product is a temporary of the one
    # program; the CPU plugin reports it (PJRT_Executable_GetCompiledMemoryStats).
    x = torch.randn(2048, 2048, device="pjrt")
    f = torch.compile(lambda x: ((x @ x) * 2 + 1).sum(), backend="pjrt")
    f(x)
    torch.pjrt.synchronize()
    torch.pjrt.reset_peak_memory_stats()
    base = torch.pjrt.memory_allocated()
    assert torch.pjrt.max_memory_allocated() == base
    y = f(x)
    torch.pjrt.synchronize()
    after = torch.pjrt.memory_allocated()
    assert after == base + y.untyped_storage().nbytes()
    assert torch.pjrt.max_memory_allocated() >= base + 16 * MB  # + the product, while it ran
    assert torch.pjrt.memory_stats()["allocated_bytes.all.peak"] == torch.pjrt.max_memory_allocated()


def test_memory_stats_keys_match_cuda_and_accelerator():
    x = torch.ones(1000, device="pjrt")
    s = torch.pjrt.memory_stats()
    for k in ("allocated_bytes.all.current", "allocated_bytes.all.peak",
              "reserved_bytes.all.current", "active_bytes.all.current", "num_alloc_retries",
              "num_ooms", "allocation.all.current"):
        assert k in s, k
    assert s["allocated_bytes.all.current"] == torch.pjrt.memory_allocated() >= 4000
    assert s["num_alloc_retries"] == 0
    assert torch.accelerator.memory.memory_allocated(0) == torch.pjrt.memory_allocated(0)
    assert torch.accelerator.memory.memory_stats(0) == s
    before = s["allocation.all.allocated"]
    torch.pjrt.reset_accumulated_memory_stats()
    assert torch.pjrt.memory_stats()["allocation.all.allocated"] == 0 < before
    del x


def test_mem_get_info_is_host_memory_on_cpu_plugin():
    free, total = torch.pjrt.mem_get_info()
    assert (free, total) == torch.accelerator.memory.get_memory_info(0)
    meminfo = dict(l.split(":") for l in open("/proc/meminfo"))
    assert total == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < free <= total
    torch.pjrt.empty_cache()  # nothing is cached: a no-op that must not fail
    torch.accelerator.memory.empty_cache()


def test_memory_stats_per_device():
    if torch.pjrt.device_count() < 2:
        pytest.skip("one device")
    base0, base1 = torch.pjrt.memory_allocated(0), torch.pjrt.memory_allocated(1)
    x = torch.ones(MB // 4, device="pjrt:1")
    assert torch.pjrt.memory_allocated(1) == base1 + MB
    assert torch.pjrt.memory_allocated("pjrt:0") == base0
    assert torch.pjrt.memory_allocated(torch.device("pjrt", 1)) == base1 + MB
    del x
    with pytest.raises(RuntimeError, match="invalid device index"):
        torch.pjrt.memory_allocated(torch.pjrt.device_count())
