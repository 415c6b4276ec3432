"""The input guards of an ExportedProgram, checked by compile_exported's
callable before every call: the program is only valid for the sizes, ranges,
dtypes and ranks it was exported for, and lowering it for other inputs would
silently compute something else than ep.module() (which refuses them).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import sympy
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind


class GuardError(AssertionError, RuntimeError):
    """An input does not satisfy the exported program's guards. An
    AssertionError like ep.module()'s "Guard failed: ..." (and a
    RuntimeError, like its dtype/rank errors)."""


def _bound(value: Any) -> Optional[int]:
    """An int for a finite range bound; None for +-infinity (int_oo, oo)."""
    try:
        from torch.utils._sympy.numbers import int_oo
        if value == int_oo or value == -int_oo:
            return None
    except ImportError:  # pragma: no cover - older torch
        pass
    if value in (sympy.oo, -sympy.oo) or getattr(value, "is_finite", True) is False:
        return None
    return int(value)


class _Dim:
    """What one size (a tensor dim or a SymInt input) must be."""
    __slots__ = ("where", "expr")

    def __init__(self, where: str, expr: Any):
        self.where = where   # "x.size()[0]", or the input's name for a SymInt input
        self.expr = expr     # an int, or a sympy expression over the program's symbols


class InputGuards:
    """The guards of the user inputs of `ep` (flattened, in call order)."""

    def __init__(self, ep: ExportedProgram):
        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        self.ranges: Dict[Any, Tuple[Optional[int], Optional[int]]] = {
            sym: (_bound(vr.lower), _bound(vr.upper))
            for sym, vr in ep.range_constraints.items()}
        self.inputs: List[Tuple[str, Any, List[_Dim]]] = []  # (name, meta value, dims)
        for spec in ep.graph_signature.input_specs:
            if spec.kind != InputKind.USER_INPUT:
                continue
            name = spec.arg.name
            val = nodes[name].meta.get("val") if name in nodes else None
            self.inputs.append((name, val, self._dims(name, val)))

    @staticmethod
    def _dims(name: str, val: Any) -> List[_Dim]:
        if isinstance(val, torch.Tensor):
            return [_Dim(f"{name}.size()[{i}]", _expr(s)) for i, s in enumerate(val.shape)]
        if isinstance(val, torch.SymInt):
            return [_Dim(name, _expr(val))]
        if val is None or isinstance(val, (bool, int, float, str)):
            return []
        raise NotImplementedError(
            f"compile_exported: input {name} has a kind of example value the guards "
            f"cannot check (got {type(val).__name__}, expected a tensor, SymInt or constant)")

    def check(self, flat: Sequence[Any]) -> None:
        """Raises GuardError naming the input, the dim, the expected and the
        got value when `flat` (the user inputs) does not fit the program."""
        sizes: List[Tuple[_Dim, int]] = []
        for (name, val, dims), arg in zip(self.inputs, flat):
            if isinstance(val, torch.Tensor):
                _check_tensor(name, val, arg)
                sizes.extend(zip(dims, (int(s) for s in arg.shape)))
            elif isinstance(val, torch.SymInt):
                if not isinstance(arg, int) or isinstance(arg, bool):
                    raise GuardError(f"compile_exported: input {name} must be an int "
                                     f"(got {type(arg).__name__})")
                sizes.append((dims[0], arg))
            elif val is not None and (type(arg) is not type(val) or arg != val):
                if not (isinstance(val, float) and val != val and arg != arg):  # nan
                    raise GuardError(f"compile_exported: guard failed for input {name}: "
                                     f"{name} == {val!r} (got {arg!r}, expected {val!r})")
        self._check_sizes(sizes)

    def _check_sizes(self, sizes: List[Tuple[_Dim, int]]) -> None:
        bound: Dict[Any, Tuple[int, str]] = {}   # symbol -> (value, where it came from)
        derived: List[Tuple[_Dim, int]] = []
        for dim, got in sizes:
            if isinstance(dim.expr, int):
                if got != dim.expr:
                    raise GuardError(
                        f"compile_exported: guard failed for input {_input(dim)}: "
                        f"{dim.where} == {dim.expr} (got {got}, expected {dim.expr}; the "
                        f"program was exported with this size static)")
            elif isinstance(dim.expr, sympy.Symbol):
                self._bind(dim, dim.expr, got, bound)
            else:
                derived.append((dim, got))
        for dim, got in derived:
            self._check_derived(dim, got, bound)

    def _bind(self, dim: _Dim, sym: Any, got: int, bound: Dict[Any, Tuple[int, str]],
              got_text: str = "") -> None:
        if sym in bound and bound[sym][0] != got:
            value, where = bound[sym]
            raise GuardError(
                f"compile_exported: guard failed for input {_input(dim)}: {dim.where} == "
                f"{where} (got {got}, expected {value}, the size {where} has)")
        self._check_range(dim, sym, got, got_text)
        bound.setdefault(sym, (got, dim.where))

    def _check_range(self, dim: _Dim, expr: Any, got: int, got_text: str = "") -> None:
        lo, hi = self.ranges.get(expr, (None, None))
        if (lo is not None and got < lo) or (hi is not None and got > hi):
            span = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            what = got_text or str(got)
            raise GuardError(
                f"compile_exported: guard failed for input {_input(dim)}: {dim.where} out "
                f"of the range of its dynamic dim (got {what}, expected {expr} in {span})")

    def _check_derived(self, dim: _Dim, got: int, bound: Dict[Any, Tuple[int, str]]) -> None:
        """A dim given as an expression of symbols (Dim("h") * 2): solved for
        its one unbound symbol, or evaluated when all are bound."""
        expr = dim.expr.subs({s: v for s, (v, _) in bound.items()})
        free = sorted(expr.free_symbols, key=str)
        if len(free) == 1:
            sols = [s for s in sympy.solve(sympy.Eq(expr, got), free[0]) if s.is_integer]
            if len(sols) != 1:
                raise GuardError(
                    f"compile_exported: guard failed for input {_input(dim)}: {dim.where} "
                    f"== {dim.expr} has no integer solution (got {got}, expected a value "
                    f"of {dim.expr})")
            self._bind(dim, free[0], int(sols[0]), bound,
                       f"{got}, so {free[0]} = {int(sols[0])}")
        elif free:
            raise GuardError(f"compile_exported: input {_input(dim)}: cannot check "
                             f"{dim.where} == {dim.expr} (got {got}; more than one "
                             f"unknown size in it)")
        elif int(expr) != got:
            raise GuardError(
                f"compile_exported: guard failed for input {_input(dim)}: {dim.where} == "
                f"{dim.expr} (got {got}, expected {int(expr)})")
        self._check_range(dim, dim.expr, got)


def _expr(size: Any) -> Any:
    """An int for a static size, else its sympy expression."""
    if isinstance(size, int):
        return size
    expr = size.node.expr
    return int(expr) if expr.is_Integer else expr


def _input(dim: _Dim) -> str:
    return dim.where.split(".size()")[0]


def _check_tensor(name: str, val: torch.Tensor, arg: Any) -> None:
    if not isinstance(arg, torch.Tensor):
        raise GuardError(f"compile_exported: input {name} must be a tensor "
                         f"(got {type(arg).__name__})")
    if arg.dtype != val.dtype:
        raise GuardError(f"compile_exported: input {name} has the wrong dtype "
                         f"(got {arg.dtype}, expected {val.dtype})")
    if arg.dim() != val.dim():
        raise GuardError(f"compile_exported: input {name} has the wrong number of dims "
                         f"(got {arg.dim()}: {list(arg.shape)}, expected {val.dim()}: "
                         "[" + ", ".join(str(s) for s in val.shape) + "])")
