"""What the runtime index checks cost (torch_pjrt.config.check_indices).

    python -m torch_pjrt.bench.check_cost [--reps N] [--workloads NAME ...]

Times each workload with the checks on and off, interleaved (on, off, on,
...) so machine noise hits both alike, and prints the median step time of
each and their ratio, for three systems: `pjrt` (torch.compile on CPU
tensors), `pjrt_dev_compile` (torch.compile over pjrt tensors) and
`pjrt_device` (the eager device, op by op). Workloads:

  embed_gather_train  an index-heavy training step: two embedding lookups,
                      a torch.gather over the vocabulary and cross_entropy
                      (nll_loss targets), forward and backward
  gpt_train           the quick suite's GPT training step (one embedding
                      lookup and cross_entropy per step)
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

import torch_pjrt
from torch_pjrt import models


class EmbedGather(torch.nn.Module):
    """Token + position embeddings, a linear layer, then gather of the logits
    of 16 candidate ids per token: every op takes runtime indices."""

    def __init__(self, vocab: int = 4096, dim: int = 64, seq: int = 64):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(seq, dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, ids, cand, tgt):
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.tok(ids) + self.pos(pos)
        logits = self.out(torch.tanh(h))
        picked = logits.gather(-1, cand)  # (b, s, 16)
        return F.cross_entropy(picked.flatten(0, 1), tgt.flatten())


def _embed_gather() -> Tuple[torch.nn.Module, Tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    b, s, vocab = 16, 64, 4096
    return EmbedGather(vocab, 64, s), (torch.randint(0, vocab, (b, s)),
                                       torch.randint(0, vocab, (b, s, 16)),
                                       torch.randint(0, 16, (b, s)))


def _gpt() -> Tuple[torch.nn.Module, Tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    cfg = models.GPTConfig(vocab_size=256, block_size=64, n_layer=2, n_head=4, n_embd=64)
    idx = torch.randint(0, 256, (8, 64))
    model = models.GPT(cfg)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, i, t):
            logits = self.m(i)
            logits = logits[0] if isinstance(logits, tuple) else logits
            return F.cross_entropy(logits.flatten(0, 1), t.flatten())

    return Loss(), (idx, torch.randint(0, 256, (8, 64)))


WORKLOADS: Dict[str, Callable[[], Tuple[torch.nn.Module, Tuple[torch.Tensor, ...]]]] = {
    "embed_gather_train": _embed_gather,
    "gpt_train": _gpt,
}


def _step_fn(system: str, model: torch.nn.Module, inputs: Tuple[torch.Tensor, ...]):
    dev = system in ("pjrt_dev_compile", "pjrt_device")
    if dev:
        model = model.to("pjrt")
        inputs = tuple(t.to("pjrt") for t in inputs)
    fwd = model if system == "pjrt_device" else torch.compile(model, backend="pjrt")

    def step():
        for p in model.parameters():
            p.grad = None
        loss = fwd(*inputs)
        loss.backward()
        value = float(loss.detach().cpu())  # a host read: the eager checks surface here
        if dev:  # the gradients too, so no step's work spills into the next one's time
            torch.pjrt.synchronize()
        return value

    return step


def measure(name: str, system: str, reps: int) -> Dict[str, Any]:
    times: Dict[bool, List[float]] = {True: [], False: []}
    steps = {}
    old = torch_pjrt.config.check_indices
    try:
        for on in (True, False):  # builds (and compiles) each variant once
            torch_pjrt.config.check_indices = on
            torch._dynamo.reset()
            model, inputs = WORKLOADS[name]()
            steps[on] = _step_fn(system, model, inputs)
            for _ in range(3):
                steps[on]()
        for _ in range(reps):
            for on in (True, False):
                torch_pjrt.config.check_indices = on
                t0 = time.perf_counter()
                steps[on]()
                times[on].append(time.perf_counter() - t0)
    finally:
        torch_pjrt.config.check_indices = old
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {"workload": name, "system": system, "on_ms": on * 1e3, "off_ms": off * 1e3,
            "ratio": on / off}


def main(argv: List[str] = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m torch_pjrt.bench.check_cost")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--systems", nargs="*", default=["pjrt", "pjrt_dev_compile", "pjrt_device"])
    a = ap.parse_args(argv)
    print("| workload | system | checks on (ms) | checks off (ms) | on / off |")
    print("|---|---|---|---|---|")
    for w in a.workloads:
        for s in a.systems:
            r = measure(w, s, a.reps)
            print(f"| {w} | {s} | {r['on_ms']:.2f} | {r['off_ms']:.2f} | {r['ratio']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
