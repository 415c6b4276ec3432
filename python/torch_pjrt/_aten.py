"""ATen schema helpers shared by the FX walker and the single-op runner.

`encode_args` turns the (args, kwargs) of one ATen OpOverload call into the
argument list `torch_pjrt._C.Graph.lower` takes: one entry per schema argument,
in schema order, defaults filled in, keyword-only arguments included. Entries:

    None                      absent optional / None
    bool, int, float, str     plain values (Scalar keeps its Python type)
    ("tensor", id)            Tensor / Tensor? (id from the `tensor_id` callback)
    ("tensors", [id|None,..]) Tensor[] / Tensor?[]
    ("dtype", code)           ScalarType (code = tpj_dtype_t number)
    ("ints", [...])           int[] / SymInt[] (a bare int fills all N slots)
    ("floats", [...])         float[]
    ("bools", [...])          bool[]
    ("other",)                Device / Layout / MemoryFormat / Generator

A Python number passed where the schema wants a Tensor (FX graphs do this for
wrapped scalars, e.g. aten.add.Tensor(x, 2)) is encoded as that number.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ._dtypes import code_dtype, dtype_code  # noqa: F401 (re-exported: _aten.dtype_code)

_OTHER_TYPES = ("Device", "Layout", "MemoryFormat", "Generator")


def target_name(op: torch._ops.OpOverload) -> str:
    """'aten::add.Tensor'; the default overload gives 'aten::relu.default'."""
    schema = op._schema
    overload = schema.overload_name or "default"
    return f"{schema.name}.{overload}"


def normalize_args(op: torch._ops.OpOverload, args: Sequence[Any],
                   kwargs: Optional[Dict[str, Any]]) -> List[Any]:
    """Values for every schema argument in schema order, defaults filled."""
    kwargs = dict(kwargs or {})
    schema_args = op._schema.arguments
    positional = [a for a in schema_args if not a.kwarg_only]
    if len(args) > len(positional):
        raise TypeError(f"{target_name(op)}: too many positional arguments "
                        f"(got {len(args)}, expected at most {len(positional)})")
    values = []
    for i, arg in enumerate(schema_args):
        if not arg.kwarg_only and i < len(args):
            if arg.name in kwargs:
                raise TypeError(f"{target_name(op)}: argument '{arg.name}' given twice")
            values.append(args[i])
        elif arg.name in kwargs:
            values.append(kwargs.pop(arg.name))
        elif arg.has_default_value():
            values.append(arg.default_value)
        elif str(arg.real_type).startswith("Optional["):
            values.append(None)
        else:
            raise TypeError(f"{target_name(op)}: missing argument '{arg.name}'")
    if kwargs:
        raise TypeError(f"{target_name(op)}: unexpected keyword arguments "
                        f"{sorted(kwargs)}")
    return values


def _concrete(value: Any, what: str) -> Any:
    """A plain int/float/bool for Python numbers, concrete SymInts and FX nodes
    whose example value is concrete; TypeError for symbolic values."""
    if isinstance(value, (bool, int, float)):
        return value
    node_val = getattr(value, "meta", {}).get("val") if hasattr(value, "meta") else None
    if node_val is not None:
        value = node_val
    if isinstance(value, torch.SymBool):
        value = value.node.maybe_as_bool() if hasattr(value.node, "maybe_as_bool") else None
    elif isinstance(value, torch.SymInt):
        value = value.node.maybe_as_int()
    elif isinstance(value, torch.SymFloat):
        value = value.node.maybe_as_float() if hasattr(value.node, "maybe_as_float") else None
    if isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"{what}: expected a concrete number, got {value!r}")


def _encode_scalar_list(values: Any, elem: str, n: Optional[int], what: str) -> Any:
    if not isinstance(values, (list, tuple)):
        values = [values] * (n or 1)
    items = [_concrete(v, what) for v in values]
    if elem in ("int", "SymInt"):
        return ("ints", [int(v) for v in items])
    if elem == "float":
        return ("floats", [float(v) for v in items])
    if elem == "bool":
        return ("bools", [bool(v) for v in items])
    raise TypeError(f"{what}: unsupported list element type {elem}")


def _encode_one(ty: str, value: Any, n: Optional[int], tensor_id: Callable[[Any], int],
                what: str) -> Any:
    if value is None:
        return None
    if ty.startswith("Optional[") and ty.endswith("]"):
        return _encode_one(ty[len("Optional["):-1], value, n, tensor_id, what)
    if ty == "Tensor":
        if isinstance(value, (bool, int, float)):
            return value
        return ("tensor", int(tensor_id(value)))
    if ty in ("List[Tensor]", "List[Optional[Tensor]]"):
        return ("tensors", [None if v is None else int(tensor_id(v)) for v in value])
    if ty.startswith("List[") and ty.endswith("]"):
        return _encode_scalar_list(value, ty[5:-1], n, what)
    if ty in ("int", "SymInt"):
        return int(_concrete(value, what))
    if ty in ("float", "SymFloat"):
        return float(_concrete(value, what))
    if ty in ("bool", "SymBool"):
        return bool(_concrete(value, what))
    if ty in ("Scalar", "number"):
        return _concrete(value, what)
    if ty == "ScalarType":
        if isinstance(value, int):
            return ("dtype", dtype_code(_int_to_dtype(value)))
        return ("dtype", dtype_code(value))
    if ty == "str":
        return str(value)
    if ty in _OTHER_TYPES:
        return ("other",)
    raise TypeError(f"{what}: unsupported schema type {ty}")


def _int_to_dtype(value: int) -> torch.dtype:
    """A c10::ScalarType number (how TorchScript defaults spell a dtype) as a
    torch.dtype; the numbering is read from c10 by the C++ layer."""
    from . import _eager
    dtype = getattr(torch, _eager.scalar_type_name(value), None)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"unsupported ScalarType number {value}")
    return dtype


def encode_args(op: torch._ops.OpOverload, args: Sequence[Any],
                kwargs: Optional[Dict[str, Any]],
                tensor_id: Callable[[Any], int]) -> List[Any]:
    """Normalizes (args, kwargs) against op._schema and encodes every argument
    for `_C.Graph.lower`. `tensor_id(t)` maps a Tensor (or fx.Node) argument to
    its graph value id."""
    values = normalize_args(op, args, kwargs)
    encoded = []
    name = target_name(op)
    for arg, value in zip(op._schema.arguments, values):
        what = f"{name} argument '{arg.name}'"
        encoded.append(_encode_one(str(arg.real_type), value, arg.N, tensor_id, what))
    return encoded


# ------------------------------------------------------------- single op --

class UnsupportedOpError(NotImplementedError):
    """An ATen op has no C lowering (see torch_pjrt._C.lower_ops())."""


def _fake_outputs(op: torch._ops.OpOverload, args: Sequence[Any],
                  kwargs: Dict[str, Any]) -> Any:
    """The op's output structure with fake tensors (dtype and shape only)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._pytree import tree_map_only

    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake_args, fake_kwargs = tree_map_only(torch.Tensor, mode.from_tensor,
                                               (tuple(args), dict(kwargs)))
        return op(*fake_args, **fake_kwargs)


def _flatten_outputs(out: Any, name: str) -> List[Optional[torch.Tensor]]:
    if isinstance(out, torch.Tensor) or out is None:
        return [out]
    if isinstance(out, (tuple, list)):
        flat: List[Optional[torch.Tensor]] = []
        for o in out:
            flat.extend(_flatten_outputs(o, name))
        return flat
    raise TypeError(f"run_aten {name}: unsupported output {type(out).__name__}")


def _rebuild(out: Any, results: List[Optional[torch.Tensor]]) -> Any:
    if isinstance(out, torch.Tensor) or out is None:
        return results.pop(0)
    rebuilt = [_rebuild(o, results) for o in out]
    return tuple(rebuilt) if isinstance(out, tuple) else rebuilt


def build_single_op_graph(op: torch._ops.OpOverload, args: Sequence[Any],
                          kwargs: Dict[str, Any]):
    """(graph, input tensors, fake output structure, flat fake outputs) for one op
    lowered through the C table; raises UnsupportedOpError if it has no lowering."""
    from . import _C

    name = target_name(op)
    if not _C.lower_supported(name):
        raise UnsupportedOpError(f"torch_pjrt: no lowering for {name}")
    fake_out = _fake_outputs(op, args, kwargs)
    flat = _flatten_outputs(fake_out, name)
    graph = _C.Graph()
    inputs: List[torch.Tensor] = []
    ids: Dict[int, int] = {}

    def tensor_id(t: Any) -> int:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"run_aten {name}: expected a tensor, got {type(t).__name__}")
        if id(t) not in ids:
            ids[id(t)] = graph.param(dtype_code(t.dtype), tuple(t.shape))
            inputs.append(t)
        return ids[id(t)]

    encoded = encode_args(op, args, kwargs, tensor_id)
    if torch.Tag.nondeterministic_seeded in op.tags:
        # Random ops take one trailing uint64[2] state, drawn from the pjrt
        # device's generator (torch.manual_seed seeds it too).
        from .compiled import rng_seed
        seed = rng_seed(0).view(torch.uint64)
        encoded.append(("tensor", tensor_id(seed)))
    out_types = [None if o is None else (dtype_code(o.dtype), tuple(int(d) for d in o.shape))
                 for o in flat]
    values = graph.lower(name, encoded, out_types)
    graph.set_results([v for v in values if v is not None])
    return graph, inputs, fake_out, values


def run_aten(op: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> Any:
    """Runs ONE ATen op through the C lowering table on the default device and
    returns CPU tensors structured like the op's own output (None stays None)."""
    from . import _device

    graph, inputs, fake_out, values = build_single_op_graph(op, args, kwargs)
    # A failed runtime check (the program's last result) raises here.
    outs = _device.run_stablehlo(graph.to_stablehlo(), inputs, checks=graph.checks)
    it = iter(outs)
    results = [None if v is None else next(it) for v in values]
    return _rebuild(fake_out, results)
