"""An optimisation that turns itself off because a private PyTorch API failed
says so once (logger torch_pjrt, WARNING), and the answer stays right."""
import logging

import torch
import torch.fx as fx

from torch_pjrt import _log, backend


def test_metadata_failure_warns_once(monkeypatch, caplog):
    import torch._guards

    def broken():
        raise RuntimeError("no context here")

    monkeypatch.setattr(torch._guards.TracingContext, "try_get", staticmethod(broken))
    monkeypatch.setattr(_log, "_warned", set())
    gm = fx.symbolic_trace(lambda x: x + 1)
    with caplog.at_level(logging.WARNING, logger="torch_pjrt"):
        assert backend._input_mutations(gm) == ([], [])
        assert backend._input_mutations(gm) == ([], [])
        assert backend._saved_from(gm) is None
    msgs = [r.getMessage() for r in caplog.records if r.name == "torch_pjrt"]
    assert sum("input donation is off" in m for m in msgs) == 1, msgs
    assert sum("placeholders are off" in m for m in msgs) == 1, msgs
    assert all("no context here" in m for m in msgs)
