"""`make demo`: the main job, end to end on the selected PJRT plugin.

1. The C half (build/release/tools/tpj_demo): devices, plugin versions and a
   StableHLO program built with the C builder, compiled and run without Python.
2. A GPT-style decoder trained for a few steps with torch.compile(backend="pjrt"),
   loss printed next to eager PyTorch on CPU, then the metrics line.
3. The same model trained on the eager device: model.to("pjrt"), stock AdamW.
4. ... and compiled over pjrt tensors; then the trained model exported,
   saved as a .tpj artifact with a dynamic batch and run by tpj-run (C, no
   Python), its logits next to eager's.
"""
import copy
import os
import subprocess
import sys
import time

import torch


def _run_c_demo():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tool = os.path.join(root, "build", "release", "tools", "tpj_demo")
    if not os.path.exists(tool):
        print(f"(skipping the C demo: {tool} not built; run `make demo`)")
        return
    env = dict(os.environ)
    import sysconfig
    env.setdefault("TORCH_PJRT_PLUGIN_PATH", os.pathsep.join(
        [sysconfig.get_paths()["purelib"]] + [p for p in sys.path if p]))
    print("== C runtime: plugin, devices and a C-built StableHLO program ==", flush=True)
    subprocess.run([tool], check=True, env=env)


def _train(model, steps, data, compiled):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(idx, tgt):
        _, loss = model(idx, tgt)
        loss.backward()
        return loss

    fn = torch.compile(step, backend="pjrt") if compiled else step
    losses = []
    for idx, tgt in data[:steps]:
        opt.zero_grad(set_to_none=True)
        loss = fn(idx, tgt)
        opt.step()
        losses.append(loss.item())
    return losses


def main(steps=8):
    import torch_pjrt
    from torch_pjrt.models import GPT, GPTConfig

    _run_c_demo()
    info = torch_pjrt.plugin_info()
    print("\n== torch.compile(backend=\"pjrt\"): GPT-style decoder training ==")
    print(f"plugin {info['path']}  api {info['api_version']}  devices {len(torch_pjrt.devices())}")
    torch.manual_seed(0)
    cfg = GPTConfig()
    model = GPT(cfg)
    ref = copy.deepcopy(model)
    ref_init = copy.deepcopy(model)
    data = [(torch.randint(0, cfg.vocab_size, (4, cfg.block_size)),
             torch.randint(0, cfg.vocab_size, (4, cfg.block_size))) for _ in range(steps)]
    t0 = time.perf_counter()
    got = _train(model, steps, data, compiled=True)
    t1 = time.perf_counter()
    want = _train(ref, steps, data, compiled=False)
    print(f"{'step':>4} {'pjrt loss':>12} {'eager loss':>12} {'|diff|':>10}")
    for i, (a, b) in enumerate(zip(got, want)):
        print(f"{i:>4} {a:>12.6f} {b:>12.6f} {abs(a - b):>10.2e}")
    m = torch_pjrt.metrics()
    print(f"pjrt wall time {t1 - t0:.2f}s (first call includes compilation)")
    print("metrics: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in sorted(m.items())))
    worst = max(abs(a - b) for a, b in zip(got, want))

    print("\n== eager device: the same model trained with .to(\"pjrt\") ==")
    dev_model = copy.deepcopy(ref_init).to("pjrt")
    t0 = time.perf_counter()
    dev = _train_on(dev_model, steps, [(i.to("pjrt"), t.to("pjrt")) for i, t in data])
    t1 = time.perf_counter()
    print(f"{'step':>4} {'device loss':>12} {'eager loss':>12} {'|diff|':>10}")
    for i, (a, b) in enumerate(zip(dev, want)):
        print(f"{i:>4} {a:>12.6f} {b:>12.6f} {abs(a - b):>10.2e}")
    print(f"device wall time {t1 - t0:.2f}s; parameters live on {next(dev_model.parameters()).device}")
    worst = max(worst, max(abs(a - b) for a, b in zip(dev, want)))

    print("\n== torch.compile(backend=\"pjrt\") on pjrt tensors: no host copies ==")
    cmodel = copy.deepcopy(ref_init).to("pjrt")
    dev_data = [(i.to("pjrt"), t.to("pjrt")) for i, t in data]
    before = torch_pjrt.metrics()
    comp = _train_on(torch.compile(cmodel, backend="pjrt"), steps, dev_data, read_loss=False)
    after = torch_pjrt.metrics()
    comp = [x.item() for x in comp]
    print(f"{'step':>4} {'compiled':>12} {'eager loss':>12} {'|diff|':>10}")
    for i, (a, b) in enumerate(zip(comp, want)):
        print(f"{i:>4} {a:>12.6f} {b:>12.6f} {abs(a - b):>10.2e}")
    moved = {k: after[k] - before[k] for k in ("bytes_h2d", "bytes_d2h")}
    print(f"bytes moved during the {steps} training steps: h2d={moved['bytes_h2d']}, "
          f"d2h={moved['bytes_d2h']}")
    worst = max(worst, max(abs(a - b) for a, b in zip(comp, want)))
    if _deploy(ref_init, data) != 0:
        return 1
    if worst > 1e-3:
        print(f"loss mismatch: max |diff| {worst:.3e} exceeds 1e-3")
        return 1
    return 0


def _deploy(model, data):
    """The model exported, saved as a .tpj artifact with a dynamic batch, and
    run by tpj-run (C, no Python) next to eager."""
    import tempfile

    import numpy as np
    from torch.export import Dim

    import torch_pjrt
    from torch_pjrt import _device
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tool = os.path.join(root, "build", "release", "tools", "tpj-run")
    if not os.path.exists(tool):
        print(f"(skipping the deployment demo: {tool} not built; run `make demo`)")
        return 0
    print("\n== deploy: torch.export -> torch_pjrt.export.save -> tpj-run (no Python) ==")
    model = copy.deepcopy(model).eval()
    idx = data[0][0]

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, idx):
            return self.m(idx)[0]

    net = Logits(model).eval()
    ep = torch.export.export(net, (idx,), dynamic_shapes={"idx": {0: Dim("batch", max=8)}})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gpt.tpj")
        torch_pjrt.export.save(ep, path)
        x = idx[:3]
        np.save(os.path.join(d, "idx.npy"), x.numpy())
        env = dict(os.environ)
        env.setdefault("TORCH_PJRT_PLUGIN_PATH", ":".join(_device.search_dirs()))
        cmd = [tool, path, os.path.join(d, "idx.npy"), "-o", os.path.join(d, "out"),
               "--bench", "20"]
        print("$ tpj-run gpt.tpj idx.npy -o out --bench 20   (" +
              f"{os.path.getsize(path) / 1e3:.0f} kB artifact, batch 3 of a dynamic 1..8)")
        subprocess.run(cmd, check=True, env=env)
        got = np.load(os.path.join(d, "out", "output_0.npy"))
    with torch.no_grad():
        want = net(x).numpy()
    diff = float(np.abs(got - want).max())
    print(f"tpj-run logits vs eager: max |diff| {diff:.2e}")
    return 0 if diff < 1e-4 else 1


def _train_on(model, steps, data, read_loss=True):
    """Plain eager training loop, whatever device the model and data are on.
    read_loss=False keeps the losses as tensors (no host read inside the loop)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for idx, tgt in data[:steps]:
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, tgt)
        loss.backward()
        opt.step()
        losses.append(loss.item() if read_loss else loss.detach())
    return losses


if __name__ == "__main__":
    sys.exit(main())
