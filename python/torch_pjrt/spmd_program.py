"""SPMD programs over a mesh: an FX graph lowered with the C lowering table
into one StableHLO program for every device of the mesh, compiled with
num_partitions = mesh size and partitioned by XLA (GSPMD).

Each device's piece of a sharded tensor is an ordinary eager storage (a flat
1-D buffer of its padded block). The program takes those flat pieces as one
flat parameter per tensor, sharded over the tiles, and turns it into the
logical tensor with manual-sharding custom calls (the flat piece becomes the
device's block, the block becomes its tile of the whole tensor); results go
the same way back. No data moves for that: only the ops in between cause
the collectives the partitioner inserts.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from . import _aten
from . import compiled
from . import fx_lower
from .spmd_mesh import Mesh, Sharding

log = logging.getLogger("torch_pjrt")

_VIEW = "aten::view.default"


_SCATTERS = ("aten::scatter", "aten::scatter_add", "aten::scatter_reduce")


def _attr(text: str) -> str:
    return f'mhlo.sharding = "{text}"'


class SpmdGraph:
    """A _C.Graph whose parameters and results are flat device pieces: the
    walker (fx_lower) sees logical tensors, the program's signature has one
    flat, tile-sharded parameter (result) per tensor."""

    def __init__(self, mesh: Mesh, in_shardings: Sequence[Sharding],
                 out_shardings: Callable[[int, Tuple[int, ...]], Sharding], checks: bool):
        self._g = compiled._C().Graph(checks=checks, partitioned=True)
        self._mesh = mesh
        self._in = list(in_shardings)
        self._out = out_shardings
        self.param_shardings: List[Sharding] = []
        self.result_shardings: List[Sharding] = []

    def param(self, code: int, shape: Sequence[int]) -> int:
        i = len(self.param_shardings)
        sh = self._in[i] if i < len(self._in) else Sharding(self._mesh, (), len(shape))
        self.param_shardings.append(sh)
        block = sh.block(shape)
        k = math.prod(block)
        g = self._g
        flat = g.param(code, (sh.tiles * k,))
        g.set_param_attr(i, _attr(sh.flat_text()))
        v = g.full_to_shard(g.sharding(flat, sh.flat_text()), (k,))
        v = g.lower(_VIEW, [("tensor", v), ("ints", list(block))], [(code, tuple(block))])[0]
        return g.shard_to_full(g.sharding(v, "{manual}"), sh.text(), tuple(shape))

    def lower(self, name: str, args: Sequence[Any], out_types: Sequence[Any]) -> List[Any]:
        from .spmd_compile import CONSTRAINT, constraint_sharding
        if name.startswith(CONSTRAINT):  # spmd.mark_sharding inside a compiled graph
            x = next(a[1] for a in args if isinstance(a, tuple) and a[0] == "tensor")
            key = next(a for a in args if isinstance(a, str))
            return [self._g.sharding(x, constraint_sharding(key).text())]
        if name.startswith(_SCATTERS):
            # XLA's partitioner aborts the process on some sharded scatters
            # (a CHECK in spmd_partitioner_util.h): run them on whole operands.
            args = [("tensor", self._g.sharding(a[1], "{replicated}"))
                    if isinstance(a, tuple) and a[0] == "tensor" else a for a in args]
        return self._g.lower(name, args, out_types)

    def set_results(self, ids: Sequence[int]) -> None:
        g = self._g
        flat = []
        for j, rid in enumerate(ids):
            code, shape = g.value_type(rid)
            sh = self._out(j, tuple(shape))
            self.result_shardings.append(sh)
            block = sh.block(shape)
            k = math.prod(block)
            v = g.full_to_shard(g.sharding(rid, sh.text()), tuple(block))
            v = g.lower(_VIEW, [("tensor", v), ("ints", [k])], [(code, (k,))])[0]
            flat.append(g.shard_to_full(g.sharding(v, "{manual}"), sh.flat_text(),
                                        (sh.tiles * k,)))
        g.set_results(flat)
        for j, sh in enumerate(self.result_shardings):
            g.set_result_attr(j, _attr(sh.flat_text()))
        g.add_module_attr(f"mhlo.num_partitions = {self._mesh.size} : i32")
        g.add_module_attr("mhlo.num_replicas = 1 : i32")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._g, name)


def result_leaves(gm: fx.GraphModule) -> List[fx.Node]:
    """The output leaves that become program results, in result order (the
    rule of fx_lower's walker: tensors that are not a placeholder or an
    alias chain over one)."""
    aliased = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            aliased.add(node)
        elif (node.op == "call_function" and node.target in fx_lower.ALIAS_TARGETS
              and node.args and node.args[0] in aliased):
            aliased.add(node)
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return [leaf for leaf in pytree.tree_leaves(out.args[0])
            if isinstance(leaf, fx.Node) and leaf not in aliased
            and isinstance(leaf.meta.get("val"), torch.Tensor)]


class SpmdProgram:
    """One compiled SPMD program over `mesh` for `gm` whose tensor
    placeholders have `in_shardings`; `out_sharding(node)` picks each
    result's sharding. run() takes the placeholders' runtime values."""

    def __init__(self, gm: fx.GraphModule, mesh: Mesh, in_shardings: Sequence[Sharding],
                 out_sharding: Callable[[fx.Node], Sharding], name: str, checks: bool = True):
        values = fx_lower.meta_values(gm)
        if values is None:
            raise NotImplementedError(f"spmd program {name}: symbolic shapes are not supported")
        leaves = result_leaves(gm)
        chosen = [out_sharding(n) for n in leaves]

        def pick(j: int, shape: Tuple[int, ...]) -> Sharding:
            if j >= len(chosen) or tuple(leaves[j].meta["val"].shape) != shape:
                raise RuntimeError(f"torch_pjrt internal error: spmd program {name}: result "
                                   f"{j} of shape {shape} does not match the graph's outputs")
            return chosen[j]

        holder: List[SpmdGraph] = []

        def make() -> SpmdGraph:
            holder.append(SpmdGraph(mesh, in_shardings, pick, checks))
            return holder[-1]

        self.lowered = fx_lower.lower_graph(gm, values, make)
        g = holder[-1]
        self.mesh = mesh
        self.name = name
        self.param_shardings = g.param_shardings
        self.result_shardings = g.result_shardings
        self.results = [(sh.block(shape), dtype) for sh, (dtype, shape)
                        in zip(self.result_shardings, self.lowered.result_types)]
        self.program = None
        if self.lowered.text:
            cl = compiled.client()
            exe = cl.compile(self.lowered.text, num_partitions=mesh.size, spmd=True)
            types = _input_types(self.lowered.inputs, values, gm)
            plan = [("storage", _aten.dtype_code(dt)) for _, dt in types]
            # each row's pieces, checked before the launch (a multi-device
            # execute the plugin refuses can leave it stuck)
            self.inputs = [(sh.block(shape), dt) for sh, (shape, dt) in
                           zip(self.param_shardings, types)]
            self.program = compiled._C().Program(exe, plan, self.lowered.checks or [], name)
        self._consts: Dict[int, List[torch.Tensor]] = {}

    def _pieces(self, i: int, src: Tuple[Any, ...], args: Sequence[Any]) -> List[torch.Tensor]:
        from . import compiled_device
        from .spmd_tensor import ShardedTensor
        sh = self.param_shardings[i]
        dev = compiled_device.device_type()
        if src[0] == "arg":
            t = args[src[1]]
            if isinstance(t, ShardedTensor):
                if t._sharding() != sh:
                    raise RuntimeError(f"torch_pjrt internal error: spmd program {self.name}: "
                                       f"argument {src[1]} is {t._sharding()} (compiled "
                                       f"for {sh})")
                return t._pieces()
            return [t.to(torch.device(dev, d)).contiguous() for d in self.mesh.devices]
        if src[0] == "const":
            if i not in self._consts:
                c = src[1].detach().contiguous()
                self._consts[i] = [c.to(torch.device(dev, d)) for d in self.mesh.devices]
            return self._consts[i]
        words = compiled.rng_seed(self.mesh.devices[0]).view(torch.uint64)
        return [words.to(torch.device(dev, d)) for d in self.mesh.devices]

    def run(self, args: Sequence[Any]) -> List[Any]:
        """The graph's output leaves: results as new sharded tensors, inputs
        and aliases of inputs as the lowered graph says, folded values."""
        from . import device
        from .spmd_tensor import ShardedTensor, alias
        results: List[Any] = []
        if self.program is not None:
            cols = [self._pieces(i, src, args) for i, src in enumerate(self.lowered.inputs)]
            rows = [[col[p] for col in cols] for p in range(self.mesh.size)]
            out = device._load_extension().spmd_run(self.program, rows, self.results,
                                                    inputs=self.inputs)
            for k, (sh, (dtype, shape)) in enumerate(zip(self.result_shardings,
                                                         self.lowered.result_types)):
                pieces = [out[p][k] for p in range(self.mesh.size)]
                results.append(ShardedTensor.of(pieces, sh, shape, dtype))
        leaves = []
        for kind, v in self.lowered.outputs:
            if kind == "result":
                leaves.append(results[v])
            elif kind == "input":
                leaves.append(args[v])
            elif kind == "alias":
                leaves.append(alias(args[v]) if isinstance(args[v], ShardedTensor)
                              else args[v].detach())
            else:
                leaves.append(v)
        return leaves


def _input_types(inputs: Sequence[Tuple[Any, ...]], values: Dict[fx.Node, Any],
                 gm: fx.GraphModule) -> List[Tuple[Tuple[int, ...], Any]]:
    """(shape, dtype) of what feeds each program parameter: a placeholder's
    value, a constant, or the u64[2] random seed."""
    phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    out = []
    for src in inputs:
        if src[0] == "arg":
            v = values[phs[src[1]]]
        elif src[0] == "const":
            v = src[1]
        else:
            out.append(((2,), torch.uint64))
            continue
        out.append((tuple(v.shape), v.dtype))
    return out
