"""Worker for test_dist_client.py (run under torchrun): which PJRT client a
process group starts. With TORCH_PJRT_DIST_CLIENT=on and the fake plugin, the
client spans the job (node_id = rank, num_nodes = world size) and the plugin
exchanges its topology through the c10d Store; on the XLA CPU plugin under
"auto" it stays a one-process client."""
import sys

import torch.distributed as dist

import torch_pjrt  # noqa: F401  (registers the "pjrt" backend)
from torch_pjrt import _device


def main() -> None:
    dist.init_process_group("pjrt")
    rank, size = dist.get_rank(), dist.get_world_size()
    version = _device.default_client().platform_version
    print(f"rank {rank} version: {version}", flush=True)
    if sys.argv[1] == "fake":
        want = f"node={rank}/{size} peers=" + ",".join(
            f"node{j}:2dev" for j in range(size) if j != rank)
        assert want in version, (want, version)
    else:
        assert "node=" not in version, version
    dist.barrier()
    if rank == 0:
        print(f"ok client {sys.argv[1]} size={size}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
