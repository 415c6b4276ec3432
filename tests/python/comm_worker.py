"""Worker for test_comm.py, run with TORCH_PJRT_CLIENT_OPTIONS=cpu_device_count=4:
every torch_pjrt.comm collective across the 4 local devices against the same
result computed on the CPU, one program launch per collective and nothing
staged through the host."""
import torch

import torch_pjrt
from torch_pjrt import comm


def check(name, got, want):
    assert len(got) == len(want), (name, len(got))
    for d, (a, b) in enumerate(zip(got, want)):
        assert a.device == torch.device("pjrt", d), (name, d, a.device)
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, a.shape, b.shape)
        if b.dtype.is_floating_point:
            torch.testing.assert_close(a.cpu(), b, rtol=1e-6, atol=1e-6, msg=name)
        else:
            assert torch.equal(a.cpu(), b), name
    print("ok", name, flush=True)


def main() -> None:
    torch_pjrt.config.fallback = "error"
    n = torch.pjrt.device_count()
    assert n == 4, n
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(8, 4, 12, generator=g) for _ in range(n)]
    dev = [x.to(f"pjrt:{d}") for d, x in enumerate(xs)]
    torch.pjrt.synchronize()
    torch_pjrt.metrics_reset()
    total = sum(xs)
    got = comm.all_reduce(dev)
    torch.pjrt.synchronize()
    m = torch_pjrt.metrics()  # one launch over the 4 devices; no host copies
    assert m["executions"] == 1 and m["bytes_h2d"] == 0 and m["bytes_d2h"] == 0, m
    check("all_reduce sum", got, [total] * n)
    stack = torch.stack(xs)
    check("all_reduce max", comm.all_reduce(dev, "max"), [stack.amax(0)] * n)
    check("all_reduce min", comm.all_reduce(dev, "min"), [stack.amin(0)] * n)
    check("all_reduce prod", comm.all_reduce(dev, "prod"), [stack.prod(0)] * n)
    for dim in (0, 1, 2, -1):
        check(f"all_gather dim {dim}", comm.all_gather(dev, dim), [torch.cat(xs, dim)] * n)
    for dim in (0, 1, 2):
        check(f"reduce_scatter dim {dim}", comm.reduce_scatter(dev, dim),
              list(total.chunk(n, dim)))
    for sd, cd in [(0, 0), (0, 1), (1, 2), (2, 0), (1, 1)]:
        want = [torch.cat([xs[j].chunk(n, sd)[k] for j in range(n)], cd) for k in range(n)]
        check(f"all_to_all {sd}->{cd}", comm.all_to_all(dev, sd, cd), want)
    ints = [torch.arange(12).reshape(3, 4) * (d + 1) - 5 for d in range(n)]
    check("int64 sum", comm.all_reduce([t.to(f"pjrt:{d}") for d, t in enumerate(ints)]),
          [sum(ints)] * n)
    halves = [x.bfloat16() for x in xs]
    check("bfloat16 gather", comm.all_gather([h.to(f"pjrt:{d}") for d, h in enumerate(halves)]),
          [torch.cat(halves)] * n)
    views = [t[:, 1, ::2] for t in dev]  # strided views of larger storages
    check("views", comm.all_reduce(views), [total[:, 1, ::2]] * n)
    m = torch_pjrt.metrics()
    assert m["fallbacks"] == 0 and m["dist_staged_bytes"] == 0, m
    print("ok comm", flush=True)


if __name__ == "__main__":
    main()
