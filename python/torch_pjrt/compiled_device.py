"""Compiled graphs on eager "pjrt" tensors: torch.compile(backend="pjrt")
with inputs already on the device moves no data between host and device.

A program for device inputs takes each device tensor's storage buffer as a
flat 1-D parameter (a contiguous tensor covering its storage is passed as the
storage's buffer itself, no copy; any other view is first materialized on the
device) and returns flat 1-D results, which become the storages of new pjrt
tensors. Results that AOTAutograd copies into mutated inputs (BatchNorm
running stats, in-place optimizer steps) are installed straight into those
inputs' storages; the copy_ that follows is then a no-op. CPU tensor inputs
(e.g. 0-dim scalars) are uploaded as before, and outputs that eager PyTorch
would put on the CPU are downloaded.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import _aten

# Where each program parameter comes from and what each output leaf is are
# the _eager.FEED_* and LEAF_* kinds of python/csrc/device_compiled.cpp.


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def device_type() -> str:
    """The name PyTorch knows the pjrt device by (PrivateUse1)."""
    return torch._C._get_privateuse1_backend_name()


def program_device(args: Sequence[Any], name: str) -> Optional[torch.device]:
    """The pjrt device the tensors in `args` live on (None: all on the CPU).
    Raises for other device types and for tensors on two pjrt devices."""
    found: Dict[str, torch.device] = {}
    pjrt = device_type()
    spmd_tensor = sys.modules.get("torch_pjrt.spmd_tensor")
    if spmd_tensor is not None and any(isinstance(a, spmd_tensor.ShardedTensor) for a in args):
        raise NotImplementedError(
            f"torch_pjrt: graph {name} got a sharded tensor; one compiled program over a "
            f"mesh is not supported yet (run the code eagerly: each op is one SPMD program)")
    for a in args:
        if isinstance(a, torch.Tensor) and a.device.type != "cpu":
            found.setdefault(str(a.device), a.device)
    if not found:
        return None
    bad = [d for d in found if found[d].type != pjrt]
    if bad or len(found) > 1:
        raise NotImplementedError(
            f"torch.compile(backend=\"pjrt\"): graph {name} has inputs on "
            f"{', '.join(sorted(found))} (expected one {pjrt} device, optionally with CPU "
            f"tensors); move all inputs to one device")
    return next(iter(found.values()))


class FlatParamGraph:
    """A _C.Graph whose first parameters (flags[i] true) are declared flat 1-D
    and viewed back to their shape, and whose results are flattened: the
    layout of eager storage buffers."""

    def __init__(self, graph_cls: Any, flags: Sequence[bool]):
        self._g = graph_cls()
        self._flags = list(flags)
        self._n = 0

    def param(self, code: int, shape: Sequence[int]) -> int:
        i = self._n
        self._n += 1
        if i < len(self._flags) and self._flags[i]:
            pid = self._g.param(code, (_numel(shape),))
            return self._g.lower("aten::view.default",
                                 [("tensor", pid), ("ints", list(shape))],
                                 [(code, tuple(shape))])[0]
        return self._g.param(code, shape)

    def set_results(self, ids: Sequence[int]) -> None:
        flat = []
        for rid in ids:
            code, shape = self._g.value_type(rid)
            n = _numel(shape)
            flat.append(self._g.lower("aten::view.default", [("tensor", rid), ("ints", [n])],
                                      [(code, (n,))])[0])
        self._g.set_results(flat)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._g, name)


def _placeholder_flags(gm: fx.GraphModule, values: Dict[fx.Node, Any],
                       args: Sequence[Any]) -> Tuple[List[bool], List[int]]:
    """Per tensor parameter (placeholders in order): is it a device tensor;
    and the positions of the device tensor arguments."""
    flags, dev = [], []
    pos = 0
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        if isinstance(values.get(node), torch.Tensor):
            is_dev = isinstance(args[pos], torch.Tensor) and args[pos].device.type != "cpu"
            flags.append(is_dev)
            if is_dev:
                dev.append(pos)
        pos += 1
    return flags, dev


def _output_on_device(gm: fx.GraphModule, n_leaves: int) -> List[bool]:
    """Per output leaf: does eager PyTorch put it on the device (meta value's
    device; True when unknown)."""
    out = next((n for n in gm.graph.nodes if n.op == "output"), None)
    leaves = pytree.tree_leaves(out.args[0]) if out is not None else []
    flags = [True] * n_leaves
    if len(leaves) != n_leaves:
        return flags
    for i, leaf in enumerate(leaves):
        val = leaf.meta.get("val") if isinstance(leaf, fx.Node) else None
        if isinstance(val, torch.Tensor) and val.device.type == "cpu":
            flags[i] = False
    return flags


class DeviceProgram:
    """One compiled signature for inputs on one pjrt device: its _C.Program
    (storage parameters, CPU tensors uploaded per call, constants, the RNG
    seed, runtime checks left pending on the device) and the call spec that
    _eager.compiled_run reads (one native call per step)."""
    __slots__ = ("lowered", "program", "native", "device", "index", "flat_type")

    def __init__(self, gm: fx.GraphModule, lowered: Any, executable: Any, cl: Any,
                 device: torch.device, dev_args: Sequence[int], arg_dtypes: Tuple[int, ...],
                 args: Sequence[Any], writebacks: Sequence[Tuple[int, int]], name: str):
        from . import _C, _eager, compiled
        ek = _eager  # its FEED_* / LEAF_* kinds
        self.lowered = lowered
        self.device = device
        self.index = device.index or 0
        dev = set(dev_args)
        feeds, plan = [], []
        for i, src in enumerate(lowered.inputs):
            if src[0] == "arg" and src[1] in dev:
                t = args[src[1]]
                feeds.append((ek.FEED_DEV, src[1], t.dtype, tuple(t.shape)))
                plan.append(("storage", arg_dtypes[i]))
            elif src[0] == "arg":  # a CPU tensor (e.g. a 0-dim scalar): uploaded per call
                t = args[src[1]]
                feeds.append((ek.FEED_HOST, src[1], t.dtype, tuple(t.shape)))
                plan.append(("host", _aten.dtype_code(t.dtype), tuple(t.shape)))
            elif src[0] == "const":
                feeds.append((ek.FEED_CONST, 0, None, None))
                plan.append(("constant", compiled.upload(src[1], cache=False, cl=cl)))
            else:
                feeds.append((ek.FEED_RNG, 0, None, None))
                plan.append("seed")
        self.flat_type = flat_type(lowered)
        self.program = self.native = None
        if executable is None:
            return
        self.program = _C.Program(executable, plan, lowered.checks or [], name)
        on_dev = _output_on_device(gm, len(lowered.outputs))
        res_dev = [True] * len(lowered.result_types)
        for leaf, (kind, k) in enumerate(lowered.outputs):
            if kind == "result":
                res_dev[k] = on_dev[leaf]
        back = [-1] * len(lowered.result_types)
        for leaf, pos in writebacks:
            if leaf < len(lowered.outputs) and lowered.outputs[leaf][0] == "result":
                k = lowered.outputs[leaf][1]
                dtype, shape = lowered.result_types[k]
                if (res_dev[k] and pos in dev and args[pos].dtype == dtype
                        and tuple(args[pos].shape) == tuple(shape)):
                    back[k] = pos
        results = [(d, tuple(shape), dtype, b) for (dtype, shape), d, b
                   in zip(lowered.result_types, res_dev, back)]
        kinds = {"result": ek.LEAF_RESULT, "input": ek.LEAF_INPUT, "alias": ek.LEAF_ALIAS,
                 "value": ek.LEAF_VALUE}
        leaves = [(kinds[kind], v) for kind, v in lowered.outputs]
        flat = 0 if self.flat_type is tuple else 1 if self.flat_type is list else 2
        self.native = _eager.compiled_create(self.program, self.index, len(args), feeds,
                                             results, leaves, flat)


def lower(gm: fx.GraphModule, values: Dict[fx.Node, Any], args: Sequence[Any],
          graph_cls: Any, lower_graph: Any, tolerate_failures: bool = False
          ) -> Tuple[Any, List[int], Tuple[int, ...]]:
    """Lowers `gm` with flat device parameters and results; returns the
    lowered graph, the device argument positions and the per-parameter dtype
    codes (0 for parameters that are not device tensors). `args` may be the
    placeholders' example values (the backend's dry run)."""
    flags, dev = _placeholder_flags(gm, values, args)
    lowered = lower_graph(gm, values, lambda: FlatParamGraph(graph_cls, flags),
                          tolerate_failures)
    if lowered.failed:
        return lowered, dev, ()
    dev_set = set(dev)
    codes = []
    for i, src in enumerate(lowered.inputs):
        want = i < len(flags) and flags[i]
        got = src[0] == "arg" and src[1] in dev_set
        if want != got or (src[0] == "arg" and i >= len(flags)):
            raise RuntimeError(f"torch_pjrt internal error: parameter {i} of the device "
                               f"program is fed by {src[0]} but was declared "
                               f"{'flat' if want else 'shaped'}")
        codes.append(_aten.dtype_code(args[src[1]].dtype) if got else 0)
    return lowered, dev, tuple(codes)


def run(prog: DeviceProgram, args: Sequence[Any]) -> Any:
    """Runs `prog` on `args` (device tensors stay on the device) in one native
    call, without waiting for it, as an eager op runs; returns the graph's
    output structure."""
    from . import _eager
    out = _eager.compiled_run(prog.native, args if type(args) is tuple else tuple(args))
    if out is NotImplemented:  # the program's signature was checked when it was found
        raise RuntimeError(f"torch_pjrt internal error: program {prog.program.name} got "
                           f"arguments that do not match its signature")
    if prog.flat_type is None:
        return pytree.tree_unflatten(out, prog.lowered.out_spec)
    return out


def outputs(prog: Any, results: List[Any], args: Sequence[Any]) -> Any:
    """The graph's outputs in its own structure, from a program's results and
    the call's arguments (outputs that are an input, or an alias of one, are
    returned without a launch). Only the host path's Python fallback (forward
    graphs with saved-activation placeholders) uses it; both native paths
    build their outputs in C++ (OutputLeaves, python/csrc/device_internal.h)."""
    if prog.identity_out:
        leaves = results
    else:
        leaves = [results[v] if kind == "result" else args[v] if kind == "input" else
                  args[v].detach() if kind == "alias" else v for kind, v in prog.leaves]
    if prog.flat_type is tuple:
        return tuple(leaves)
    if prog.flat_type is list:
        return leaves
    return pytree.tree_unflatten(leaves, prog.lowered.out_spec)


def flat_type(lowered: Any) -> Any:
    """tuple / list when the graph's output is a flat sequence of leaves (the
    AOTAutograd case), so outputs() builds it directly instead of through
    pytree; else None."""
    spec = lowered.out_spec
    if (spec is not None and spec.type in (tuple, list)
            and spec.num_leaves == len(lowered.outputs)
            and all(c.is_leaf() for c in spec.children())):
        return spec.type
    return None
