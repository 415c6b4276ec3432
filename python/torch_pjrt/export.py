"""torch.export support: run an ExportedProgram on the device.

`compile_exported(ep)` decomposes the program to Core ATen, lifts its
parameters, buffers and constants (per the graph signature) into device
inputs, and returns a callable equivalent to `ep.module()`: same arguments,
same outputs, buffer mutations (BatchNorm running stats) applied to the
callable's own copy of the state. Inputs are checked against the program's
guards (export_guards) first. Inputs on a pjrt device run a copy of the graph
whose factory ops create their tensors there, with the state moved to that
device; the outputs then live on it too.

`save(ep, path)` and `load(path)` (artifact.py) write and run the deployable
`.tpj` artifact of an ExportedProgram (docs/artifact.md).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.utils import _pytree as pytree

from . import compiled_device
from .artifact import ArtifactError, LoadedProgram, load, save  # noqa: F401 - the .tpj artifact
from .export_guards import GuardError, InputGuards  # noqa: F401 - GuardError re-exported


class CompiledExportedProgram:
    """Callable running a decomposed ExportedProgram as device programs."""

    def __init__(self, ep: ExportedProgram):
        from . import backend
        self.ep = ep.run_decompositions(backend.export_decompositions())
        sig = self.ep.graph_signature
        state = self.ep.state_dict
        constants = self.ep.constants
        # The program's own copy of the state, so mutations do not leak into ep.
        self.state: Dict[str, torch.Tensor] = {}
        self._inputs: List[Tuple[str, Any]] = []   # ("user", i) / ("state", key)
        n_user = 0
        for spec in sig.input_specs:
            if spec.kind == InputKind.USER_INPUT:
                self._inputs.append(("user", n_user))
                n_user += 1
            elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
                src = state[spec.target] if spec.target in state else constants[spec.target]
                self.state.setdefault(spec.target, src.detach().clone())
                self._inputs.append(("state", spec.target))
            elif spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
                value = constants[spec.target]
                if isinstance(value, torch.Tensor):
                    value = value.detach().clone()
                self.state.setdefault(spec.target, value)
                self._inputs.append(("state", spec.target))
            else:
                raise NotImplementedError(
                    f"compile_exported: input kind {spec.kind} of {spec.arg.name} is not supported")
        self._n_user = n_user
        self._outputs: List[Tuple[str, Any]] = []
        for spec in sig.output_specs:
            if spec.kind in (OutputKind.USER_OUTPUT, OutputKind.LOSS_OUTPUT):
                self._outputs.append(("user", None))
            elif spec.kind == OutputKind.BUFFER_MUTATION:
                self._outputs.append(("buffer", spec.target))
            elif spec.kind == OutputKind.USER_INPUT_MUTATION:
                self._outputs.append(("input", spec.target))
            else:
                raise NotImplementedError(
                    f"compile_exported: output kind {spec.kind} is not supported")
        self._user_input_names = [s.arg.name for s in sig.input_specs
                                  if s.kind == InputKind.USER_INPUT]
        self.guards = InputGuards(self.ep)
        self.graph = backend.compile_graph(self.ep.graph_module, "exported")
        self._graphs: Dict[Optional[torch.device], Any] = {None: self.graph}
        self._state_device: Optional[torch.device] = None  # None: the CPU

    def _graph_for(self, device: Optional[torch.device]) -> Any:
        """The compiled graph for inputs on `device` (None: the CPU), with the
        state moved there."""
        if device != self._state_device:
            target = device if device is not None else torch.device("cpu")
            self.state = {k: v.to(target) if isinstance(v, torch.Tensor) else v
                          for k, v in self.state.items()}
            self._state_device = device
        graph = self._graphs.get(device)
        if graph is None:
            from . import backend
            gm = _graph_on(self.ep.graph_module, device)
            graph = backend.compile_graph(gm, f"exported@{device}", on_device=True)
            self._graphs[device] = graph
        return graph

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        in_spec = self.ep.call_spec.in_spec
        flat, spec = pytree.tree_flatten((args, kwargs))
        if in_spec is not None and spec != in_spec:
            # Let torch's own matching handle reordered kwargs and the like.
            flat = _flat_user_args(self.ep, args, kwargs)
        if len(flat) != self._n_user:
            raise TypeError(f"compile_exported: expected {self._n_user} tensor inputs, "
                            f"got {len(flat)}")
        self.guards.check(flat)
        graph = self._graph_for(_input_device(flat, self._user_input_names))
        graph_args = [flat[i] if kind == "user" else self.state[i]
                      for kind, i in self._inputs]
        outs = graph(*graph_args)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        user_outs = []
        for (kind, target), value in zip(self._outputs, outs):
            if kind == "user":
                user_outs.append(value)
            elif kind == "buffer":
                with torch.no_grad():
                    self.state[target].copy_(value)
            else:  # input mutation
                pos = self._user_input_names.index(target)
                with torch.no_grad():
                    flat[pos].copy_(value)
        out_spec = self.ep.call_spec.out_spec
        if out_spec is None:
            return user_outs[0] if len(user_outs) == 1 else tuple(user_outs)
        return pytree.tree_unflatten(user_outs, out_spec)


def _input_device(flat: List[Any], names: List[str]) -> Optional[torch.device]:
    """The pjrt device of the tensor inputs (None: all on the CPU). Refuses
    other devices, two devices, and CPU tensors next to device ones (but
    0-dim CPU tensors, which eager PyTorch mixes too)."""
    found = {a.device for a in flat if isinstance(a, torch.Tensor) and a.device.type != "cpu"}
    if not found:
        return None
    pjrt = compiled_device.device_type()
    if len(found) > 1 or any(d.type != pjrt for d in found):
        raise RuntimeError(f"compile_exported: inputs on {', '.join(sorted(map(str, found)))} "
                           f"(expected the CPU or one {pjrt} device)")
    device = next(iter(found))
    for name, a in zip(names, flat):
        if isinstance(a, torch.Tensor) and a.device.type == "cpu" and a.dim() > 0:
            raise RuntimeError(f"compile_exported: input {name} is on the cpu, other inputs "
                               f"on {device} (expected all tensor inputs on one device)")
    return device


def _graph_on(gm: fx.GraphModule, device: torch.device) -> fx.GraphModule:
    """A copy of the exported graph `gm` for inputs on `device`: the CPU
    tensors that export recorded (factory ops' device arguments, to(device)
    calls, the example values) are on `device` instead."""
    graph = copy.deepcopy(gm.graph)

    def move(v: Any) -> Any:
        if isinstance(v, torch.device) and v.type == "cpu":
            return device
        if isinstance(v, torch.Tensor) and v.device.type == "cpu":
            return v.to(device)
        return v

    for node in graph.nodes:
        if isinstance(node.kwargs.get("device"), torch.device):
            node.kwargs = {**node.kwargs, "device": move(node.kwargs["device"])}
        if node.target is torch.ops.aten.to.device:
            node.args = tuple(move(a) for a in node.args)
        if "val" in node.meta:
            node.meta["val"] = pytree.tree_map(move, node.meta["val"])
    return fx.GraphModule(gm, graph)


def _flat_user_args(ep: ExportedProgram, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> List[Any]:
    from torch.export._unlift import _check_input_constraints_pre_hook  # noqa: F401
    sig = ep.module_call_graph[0].signature if ep.module_call_graph else None
    if sig is not None and sig.in_spec is not None:
        from torch._export.utils import reorder_kwargs
        kwargs = reorder_kwargs(kwargs, sig.in_spec)
    return pytree.tree_leaves((args, kwargs))


def compile_exported(ep: ExportedProgram) -> CompiledExportedProgram:
    """Runs `ep` on the device: `compile_exported(ep)(*args)` equals
    `ep.module()(*args)`."""
    return CompiledExportedProgram(ep)
