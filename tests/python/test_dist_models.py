"""Issue 14's "unchanged PyTorch code that must work": DDP, FSDP2, DTensor,
tensor parallelism and DCP on pjrt tensors, each run under torchrun (2
processes, loopback, bounded in time) by dist_models_worker.py and checked
there against single-process CPU training. One short DDP run is in `make test`;
the rest are `full`."""
import os

import pytest
import torch

import torchrun as launcher

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "dist_models_worker.py")


def torchrun(mode: str, env: dict, *extra: str, nproc: int = 2, timeout: float = 180.0) -> str:
    """Runs the worker under torchrun; returns rank 0's OK line. A run past
    `timeout` is killed with its whole process tree (torchrun's workers too)."""
    rc, out, _ = launcher.run(WORKER, nproc, [mode, *extra], env=env, timeout=timeout)
    if rc is None:
        pytest.fail(f"torchrun {mode} did not finish in {timeout:.0f} s:\n{out[-6000:]}")
    assert rc == 0, f"torchrun {mode} exited {rc}:\n{out[-12000:]}"
    ok = [line for line in out.splitlines() if line.startswith(f"OK {mode} ")]
    assert ok, out[-6000:]
    return ok[0]


def test_ddp_gpt_no_sync(subprocess_env):
    """DDP over pjrt tensors, gradient accumulation under no_sync, data from a
    DistributedSampler: losses equal one-process CPU training within 1e-5."""
    print(torchrun("ddp", subprocess_env, "--steps", "2"))


@pytest.mark.full
def test_ddp_find_unused_parameters(subprocess_env):
    print(torchrun("ddp_unused", subprocess_env))


@pytest.mark.full
def test_fsdp2_gpt(subprocess_env):
    print(torchrun("fsdp", subprocess_env))


@pytest.mark.full
def test_fsdp2_gpt_bf16_mixed_precision(subprocess_env):
    print(torchrun("fsdp_bf16", subprocess_env))


@pytest.mark.full
def test_dtensor_distribute_redistribute(subprocess_env):
    print(torchrun("dtensor", subprocess_env))


@pytest.mark.full
def test_tensor_parallel_mlp(subprocess_env):
    print(torchrun("tp", subprocess_env))


@pytest.mark.full
def test_dcp_round_trip_fsdp2(subprocess_env, tmp_path):
    print(torchrun("dcp", subprocess_env, "--dir", str(tmp_path / "ckpt")))


@pytest.mark.full
def test_ddp_explicit_backend_string(subprocess_env):
    """init_process_group("cpu:gloo,pjrt:pjrt") as well as no backend."""
    print(torchrun("ddp", subprocess_env, "--steps", "2", "--backend", "cpu:gloo,pjrt:pjrt"))


@pytest.mark.full
@pytest.mark.parametrize("mode", ["ddp", "fsdp", "dtensor", "tp"])
def test_four_processes(subprocess_env, mode):
    print(torchrun(mode, subprocess_env, "--steps", "2", nproc=4, timeout=300.0))


@pytest.mark.full
@pytest.mark.parametrize("mode", ["ddp", "fsdp", "dtensor", "tp"])
def test_same_code_on_cpu_gloo(subprocess_env, mode):
    """The worker's own check: the same code with gloo on CPU tensors."""
    print(torchrun(mode, subprocess_env, "--device", "cpu", "--steps", "2"))


@pytest.mark.full
def test_ddp_batchnorm_and_sync_batchnorm(subprocess_env):
    """DDP of a BatchNorm CNN: plain BatchNorm with broadcast_buffers, and
    nn.SyncBatchNorm (its batch_norm_stats/gather/elemt/backward kernels run
    on the device: CPU has none), parameters and running statistics too."""
    print(torchrun("batchnorm", subprocess_env))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sync_batchnorm_kernels(dtype):
    """SyncBatchNorm's kernels in one process, two uneven shards standing in
    for two ranks: global statistics, running statistics, output and the
    input/weight/bias gradients equal batch norm over the whole batch."""
    import torch.nn.functional as F
    dev = torch.device("pjrt", 0)
    x = (torch.randn(5, 3, 4, 4) * 2 + 1).to(dtype)
    w, b, rm, rv = torch.randn(3), torch.randn(3), torch.randn(3), torch.rand(3) + 0.5
    xr, wr, br = (t.float().clone().requires_grad_() for t in (x, w, b))
    rmr, rvr = rm.clone(), rv.clone()
    y = F.batch_norm(xr, rmr, rvr, wr, br, training=True, momentum=0.1, eps=1e-5)
    gy = torch.randn_like(y)
    y.backward(gy)

    xd, eps = x.to(dev), 1e-5
    stats = [torch.batch_norm_stats(part, eps) for part in (xd[:1], xd[1:])]
    assert stats[0][0].dtype == torch.float32  # accumulated in float32, as on CUDA
    counts = torch.tensor([16.0, 64.0], device=dev)
    rmd, rvd = rm.to(dev), rv.to(dev)
    mean, invstd = torch.batch_norm_gather_stats_with_counts(
        xd, torch.stack([s[0] for s in stats]), torch.stack([s[1] for s in stats]),
        rmd, rvd, 0.1, eps, counts)
    out = torch.batch_norm_elemt(xd, w.to(dev), b.to(dev), mean, invstd, eps)
    gyd = gy.to(dtype).to(dev)
    sum_dy, sum_dy_xmu, gw, gb = torch.batch_norm_backward_reduce(
        gyd, xd, mean, invstd, w.to(dev), True, True, True)
    gx = torch.batch_norm_backward_elemt(gyd, xd, mean, invstd, w.to(dev), sum_dy, sum_dy_xmu,
                                         torch.tensor([16, 64], dtype=torch.int32, device=dev))
    assert out.dtype == gx.dtype == dtype
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(rmd.cpu(), rmr, atol=1e-5, rtol=1e-5 if dtype == torch.float32 else 1e-2)
    torch.testing.assert_close(rvd.cpu(), rvr, atol=1e-5, rtol=1e-5 if dtype == torch.float32 else 1e-2)
    torch.testing.assert_close(out.float().cpu(), y.detach(), **tol)
    torch.testing.assert_close(gx.float().cpu(), xr.grad, **tol)
    torch.testing.assert_close(gw.cpu(), wr.grad, atol=tol["atol"] * 10, rtol=tol["rtol"])
    torch.testing.assert_close(gb.cpu(), br.grad, atol=tol["atol"] * 10, rtol=tol["rtol"])


@pytest.mark.full
def test_model_on_pjrt_before_init_process_group(subprocess_env):
    """A model moved to torch.device("pjrt") before init_process_group keeps
    its process on pjrt:0 (the process group does not switch the current
    device to LOCAL_RANK's under it): DDP and FSDP2 against one CPU process."""
    print(torchrun("before_init", subprocess_env))
