"""Worker for test_dist_compile.py (run under torchrun): functional collectives
inside torch.compile(backend="pjrt") run through the process group at a graph
split, on pjrt and on CPU tensors, with fallback="error" (they are not
fallbacks), and equal the same code run eagerly."""
import sys

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc

import torch_pjrt


def step(x, w):
    h = torch.tanh(x @ w)
    s = fc.all_reduce(h, "sum", dist.group.WORLD)
    g = fc.all_gather_tensor(s * 2, 0, dist.group.WORLD)
    r = fc.reduce_scatter_tensor(g, "avg", 0, dist.group.WORLD)
    return r.sum(dim=0) + 1


def main() -> None:
    dist.init_process_group("pjrt")
    torch_pjrt.config.fallback = "error"
    rank, size = dist.get_rank(), dist.get_world_size()
    dev = torch.device("pjrt", torch_pjrt.local_device_index())
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(4, 3, generator=gen)
    w = torch.randn(3, 5, generator=gen)
    compiled = torch.compile(step, backend="pjrt")
    want = step(x, w)  # eager on CPU, through gloo
    torch_pjrt.metrics_reset()
    for where in (dev, "cpu"):
        got = compiled(x.to(where), w.to(where))
        assert got.device == torch.device(where), (got.device, where)
        torch.testing.assert_close(got.cpu(), want, rtol=1e-6, atol=1e-6)
    m = torch_pjrt.metrics()
    assert m["fallbacks"] == 0, m["fallbacks"]
    assert m["dist_staged_bytes"] > 0, m["dist_staged_bytes"]
    if rank == 0:
        print(f"ok compiled collectives size={size} staged={m['dist_staged_bytes']}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
