"""The `torch.compile(backend="pjrt")` Dynamo backend.

AOTAutograd (with Core-ATen decompositions) splits each Dynamo graph into a
functional forward and backward graph; each is lowered to one StableHLO
module per input signature and compiled through the C compile cache. Ops with
no device lowering either run eagerly on the CPU between device subgraphs
(config.fallback == "cpu", the default) or raise UnsupportedOpError
(config.fallback == "error").
"""
from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx

from . import _log
from . import compiled as _compiled
from . import fallback_policy
from . import fx_lower
from . import recompile

log = logging.getLogger("torch_pjrt")


try:  # one exception class for the whole package (defined with run_aten)
    from ._aten import UnsupportedOpError
except ImportError:  # pragma: no cover - older _aten
    class UnsupportedOpError(NotImplementedError):  # type: ignore[no-redef]
        """An op has no device lowering and config.fallback == "error"."""


def _C():
    from . import _C as c
    return c


# Decompositions beyond Core ATen: ops Core ATen keeps but that are easier to
# lower (or only lowerable) in decomposed form.
_EXTRA_DECOMP_OPS: List[Any] = []


@functools.lru_cache(maxsize=None)
def decompositions() -> Dict[Any, Callable[..., Any]]:
    from torch._decomp import core_aten_decompositions, get_decompositions
    table = dict(core_aten_decompositions())
    table.update(get_decompositions(_EXTRA_DECOMP_OPS))
    # index_copy and take have their own lowerings: PyTorch's decompositions
    # (index_put, index) would accept the negative indices CPU rejects
    # (index_copy) or name the wrong op in a bounds error (take).
    for op in (torch.ops.aten.index_copy.default, torch.ops.aten.index_copy_.default,
               torch.ops.aten.take.default):
        table.pop(op, None)
    # prims.fma (an Inductor prim, registered once Dynamo has run) comes out of
    # the lerp decomposition (AdamW's _foreach_lerp_).
    if hasattr(torch.ops.prims, "fma"):
        table[torch.ops.prims.fma.default] = _fma
    table[torch.ops.aten.histc.default] = _histc
    table.update(library_decompositions())
    return table


def library_decompositions() -> Dict[Any, Callable[..., Any]]:
    """Decompositions of other libraries' custom ops, where registered (the
    library imported): transformers' grouped matmul of MoE experts."""
    table: Dict[Any, Callable[..., Any]] = {}
    try:
        table[torch.ops.transformers.grouped_mm_fallback.default] = _grouped_mm
    except (AttributeError, RuntimeError):
        pass
    return table


def export_decompositions() -> Any:
    """The table for ExportedProgram.run_decompositions: decompositions() on
    torch.export's own table, keeping scaled_dot_product_attention whole (it
    has a lowering). PyTorch's decomposition of it re-traces with strides
    that differ from the exported graph's, so a later view fails to trace
    (HF GPT-2: "Cannot view a tensor with shape ..."); kept whole, it also
    leaves the batch in dimension 0 for export.save's shape buckets."""
    table = torch.export.default_decompositions()
    for op, fn in {**decompositions(), **library_decompositions()}.items():
        table[op] = fn
    sdpa = torch.ops.aten.scaled_dot_product_attention.default
    if sdpa in table:
        del table[sdpa]
    return table


def _fma(a: Any, b: Any, c: Any) -> Any:
    return torch.ops.aten.add.Tensor(torch.ops.aten.mul.Tensor(a, b), c)


def _histc(x: torch.Tensor, bins: int = 100, min: Any = 0, max: Any = 0) -> Any:
    """histc over a given range [min, max] (min < max; the data's own range,
    min == max, stays the op): bin (x - min) * bins / (max - min) as the CPU
    kernel computes it, max in the last bin, outside and NaN not counted."""
    lo, hi = float(min), float(max)
    if lo >= hi:
        return NotImplemented
    flat = x.reshape(-1)
    inside = (flat >= lo) & (flat <= hi)
    pos = ((flat - lo) * bins / (hi - lo)).to(torch.int64).clamp(0, bins - 1)
    pos = torch.where(inside, pos, torch.zeros_like(pos))
    out = torch.zeros((bins,), dtype=x.dtype, device=x.device)
    return out.scatter_add(0, pos, inside.to(x.dtype))


def _grouped_mm(x: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """transformers::grouped_mm_fallback, the MoE experts' matmul: rows
    [offs[g - 1], offs[g]) of x (sorted by expert) times weight[g], rows past
    offs[-1] zero. Static shapes: one matmul per expert, masked to its rows."""
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    ends = offs.to(torch.int64)
    out = torch.zeros((x.shape[0], weight.shape[2]), dtype=x.dtype, device=x.device)
    for g in range(weight.shape[0]):
        start = ends[g - 1] if g else torch.zeros_like(ends[0])
        keep = (rows >= start) & (rows < ends[g])
        out = torch.where(keep, x @ weight[g], out)
    return out


def _tolerable(exc: BaseException) -> bool:
    """Errors that mean "no lowering for this case" rather than a bug."""
    if isinstance(exc, (fx_lower.UnsupportedNodeError, TypeError)):
        return True
    return getattr(exc, "code", None) in ("UNIMPLEMENTED", "NOT_FOUND")


def find_unsupported(gm: fx.GraphModule
                     ) -> Tuple[Dict[fx.Node, str], Optional[Tuple[Any, ...]]]:
    """node -> reason for every node that cannot run on the device: no
    lowering by name, or (static graphs) a lowering that rejects the case.
    Also the dry run's lowering of a static graph that fully lowered
    (CompiledGraph's `prelowered`, so the graph is not lowered twice)."""
    from . import config
    c = _C()
    out: Dict[fx.Node, str] = {}
    for node in gm.graph.nodes:
        ok, why = fx_lower.node_is_lowerable(node, c.lower_supported)
        if not ok:
            out[node] = why
    values = fx_lower.meta_values(gm)
    if values is None:
        return out, None
    checks = bool(config.check_indices)
    examples = [values[n] for n in gm.graph.nodes if n.op == "placeholder"]
    lowered, dev_args, codes = _compiled.lower_signature(gm, values, examples, checks,
                                                         tolerate_failures=True)
    for node, exc in lowered.failed.items():
        if node in out:
            continue
        if not _tolerable(exc):
            raise fx_lower.annotate(exc, node, fx_lower.op_name(node), values) from exc
        out[node] = str(exc)
    pre = None if out or lowered.failed else (checks, lowered, dev_args, codes)
    return out, pre


def _raise_unsupported(gm: fx.GraphModule, unsupported: Dict[fx.Node, str]) -> None:
    node, why = next(iter(unsupported.items()))
    names = sorted({fx_lower.op_name(n) for n in unsupported})
    raise UnsupportedOpError(
        f"torch_pjrt: op {fx_lower.op_name(node)} (node {node.name}, inputs "
        f"{fx_lower.describe_inputs(node, {})}) is not supported on the device: {why}; "
        f"unsupported ops in this graph: {', '.join(names)} "
        f"(set torch_pjrt.config.fallback = 'cpu' to run them eagerly)")


def compile_graph(gm: fx.GraphModule, name: str, donate_args: Sequence[int] = (),
                  writebacks: Sequence[Tuple[int, int]] = (),
                  saved_from: Optional[int] = None,
                  on_device: bool = False) -> Callable[..., Any]:
    """A callable running `gm` on the device (partitioned when needed).
    `saved_from`: see CompiledGraph (forward graphs of AOTAutograd);
    `on_device`: the inputs are pjrt tensors (unsupported ops then run on the
    eager device)."""
    unsupported, pre = find_unsupported(gm)
    if not unsupported:
        graph = _compiled.CompiledGraph(gm, name=name, donate_args=donate_args,
                                        writebacks=writebacks, saved_from=saved_from,
                                        prelowered=pre)
        if saved_from is None and not writebacks and not donate_args:
            from . import shape_buckets
            plan = shape_buckets.plan_for(gm, name)
            if plan is not None:
                return shape_buckets.BucketedGraph(graph, plan, name)
        return graph
    collectives = {n for n in unsupported if fx_lower.is_collective(n)}
    if collectives:
        _log_collective_split(sorted({fx_lower.op_name(n) for n in collectives}))
    others = {n: why for n, why in unsupported.items() if n not in collectives}
    if others and fallback_policy.is_error():
        _raise_unsupported(gm, others)
    return _compiled.PartitionedGraph(gm, others, name, on_device, collectives)


_collectives_logged: set = set()


def _log_collective_split(names: Sequence[str]) -> None:
    """Logs once per collective that it splits the graph: the program ends
    before it, the process group runs it, the next program starts after it."""
    new = [n for n in names if n not in _collectives_logged]
    if new:
        _collectives_logged.update(new)
        log.warning("torch_pjrt: %s runs through the process group at a graph split "
                     "(this plugin has no collectives inside programs across processes)",
                     ", ".join(new))


# Numbers the compiled graphs' names. next() on an itertools.count is atomic
# (the lazy backward compiles run outside Dynamo's compile lock, in any thread).
_graph_numbers = itertools.count(1)


def _input_mutations(gm: fx.GraphModule) -> Tuple[List[int], List[Tuple[int, int]]]:
    """From AOTAutograd's fw_metadata: the graph inputs whose data it overwrites
    after the call (their device buffers can be donated), and (output, input)
    pairs for the outputs it copies into them (the first outputs, in the order
    of mutated_inp_runtime_indices). Empty when anything looks unusual: this
    is only an optimisation."""
    try:
        from torch._guards import TracingContext
        ctx = TracingContext.try_get()
        meta = getattr(ctx, "fw_metadata", None) if ctx is not None else None
        infos = list(getattr(meta, "input_info", None) or [])
        mutated = list(getattr(meta, "mutated_inp_runtime_indices", None) or [])
    except Exception as e:  # noqa: BLE001 - private API
        _log.warn_once("input_mutations", f"input donation is off: reading AOTAutograd's "
                       f"metadata failed ({type(e).__name__}: {e})")
        return [], []
    n_inputs = sum(1 for n in gm.graph.nodes if n.op == "placeholder")
    if not infos or len(infos) > n_inputs or getattr(meta, "num_intermediate_bases", 0):
        return [], []
    if any(i >= len(infos) or not infos[i].mutates_data or infos[i].mutates_metadata
           for i in mutated):
        return [], []
    return list(mutated), [(out, inp) for out, inp in enumerate(mutated)]


def _saved_from(gm: fx.GraphModule) -> Optional[int]:
    """Index of the first forward output that AOTAutograd only saves for the
    backward (outputs are: mutated inputs, user outputs, intermediate bases,
    then saved tensors and symints); None when unsure (tokens, functionalized
    rng offsets, odd metadata): this is only an optimisation."""
    try:
        from torch._guards import TracingContext
        ctx = TracingContext.try_get()
        meta = getattr(ctx, "fw_metadata", None) if ctx is not None else None
        if meta is None or getattr(meta, "tokens", None):
            return None
        if getattr(meta, "num_outputs_rng_offset", 0):
            return None
        n = int(meta.num_forward_returns)
    except Exception as e:  # noqa: BLE001 - private API
        _log.warn_once("saved_from", f"saved-activation placeholders are off: reading "
                       f"AOTAutograd's metadata failed ({type(e).__name__}: {e})")
        return None
    out = next((node for node in gm.graph.nodes if node.op == "output"), None)
    if out is None or not isinstance(out.args[0], (tuple, list)):
        return None
    return n if 0 <= n <= len(out.args[0]) else None


def _compiler(kind: str) -> Callable[[fx.GraphModule, Sequence[Any]], Any]:
    def compile_fn(gm: fx.GraphModule, example_inputs: Sequence[Any]) -> Any:
        number = next(_graph_numbers)
        donate, writebacks = _input_mutations(gm) if kind != "backward" else ([], [])
        saved_from = _saved_from(gm) if kind == "forward" else None
        on_device = any(isinstance(t, torch.Tensor) and t.device.type not in ("cpu", "meta")
                        for t in example_inputs)
        fn = compile_graph(gm, f"{kind}_{number}", donate_args=donate,
                           writebacks=writebacks, saved_from=saved_from, on_device=on_device)
        recompile.name_inputs(fn, gm, kind)

        # AOTAutograd's boxed convention: one list argument, which we may clear
        # so that inputs (saved activations) are freed as early as possible.
        def run(args: List[Any]) -> Any:
            flat = list(args)
            args.clear()
            return fn(*flat)

        run._boxed_call = True  # type: ignore[attr-defined]
        run._torch_pjrt_compiled = fn  # type: ignore[attr-defined]
        return run

    return compile_fn


@functools.lru_cache(maxsize=None)
def _aot_backend() -> Any:
    from torch._dynamo.backends.common import aot_autograd
    return aot_autograd(fw_compiler=_compiler("forward"),
                        bw_compiler=_compiler("backward"),
                        inference_compiler=_compiler("inference"),
                        decompositions=decompositions())


def pjrt_backend(gm: fx.GraphModule, example_inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Dynamo backend: torch.compile(model, backend="pjrt")."""
    # Inputs may be CPU tensors (uploaded, results downloaded) or tensors on
    # one pjrt device (kept there: no host transfers); anything else is refused.
    # Sharded tensors (torch_pjrt.spmd) make it one SPMD program over their mesh.
    from . import spmd_compile
    if spmd_compile.has_sharded(example_inputs):
        with recompile.frame(gm, example_inputs):
            return spmd_compile.backend(gm, example_inputs, **kwargs)
    _compiled.compiled_device.program_device(
        [t for t in example_inputs if isinstance(t, torch.Tensor) and t.device.type != "meta"],
        "inputs")
    with recompile.frame(gm, example_inputs):  # logs why the frame compiled again
        return _aot_backend()(gm, example_inputs, **kwargs)


def _register() -> None:
    from torch._dynamo.backends import registry
    # When Dynamo already knows "pjrt" (our entry point, or an earlier import),
    # it registers the function itself on first lookup; registering here too
    # would be a duplicate.
    if "pjrt" in registry._COMPILER_FNS or registry._BACKENDS.get("pjrt") is not None:
        return
    registry.register_backend(pjrt_backend, name="pjrt")


_register()
