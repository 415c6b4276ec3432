"""StableHLO text statistics for the program comparison (bench/compare.py).

torch-pjrt's emitter prints MLIR's generic form (`"stablehlo.add"(%a, %b)`),
JAX prints the pretty form (`stablehlo.add %a, %b`, `call @relu(...)`, chlo
ops, compact reducers). This module reads both, line by line, into op
statistics that can be compared: a histogram of op names, result bytes per
op, dot_general and convolution signatures (shapes, dimension numbers,
windows), reduce bodies, custom-call targets, transposes next to a
dot_general or convolution, and shape no-ops. Calls to private functions
(JAX's `call @_where`) count their callee's ops once per call, as XLA inlines
them. It needs nothing but the standard library, so it is tested on small
hand-written texts."""
from __future__ import annotations

import re
from collections import Counter
from typing import Dict, List, Optional, Tuple

# element type -> (bytes, tpj_dtype_t code); see torch_pjrt/_dtypes.py
ELEMENTS = {
    "i1": (1, 1), "i8": (1, 2), "i16": (2, 3), "i32": (4, 4), "i64": (8, 5),
    "ui8": (1, 6), "ui16": (2, 7), "ui32": (4, 8), "ui64": (8, 9),
    "f16": (2, 10), "f32": (4, 11), "f64": (8, 12), "bf16": (2, 13),
    "complex<f32>": (8, 14), "complex<f64>": (16, 15),
}

_TYPE = re.compile(r"tensor<((?:[^<>]|<[^<>]*>)*)>")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RESULTS = r"(?P<res>%[\w.$-]+(?::\d+)?(?:\s*,\s*%[\w.$-]+(?::\d+)?)*)\s*=\s*"
_OP = re.compile(r"^(?:" + _RESULTS + r")?(?P<q>\"?)(?P<name>[a-z_][\w]*\.[a-z_][\w.]*)(?P=q)")
_CALL = re.compile(r"^(?:" + _RESULTS + r")?(?:func\.)?call\s+@(?P<callee>[\w.$-]+)")
_FUNC = re.compile(r"^func\.func\s+(?:(?:public|private|nested)\s+)?@(?P<name>[\w.$-]+)")
_VALUE = re.compile(r"%[\w.$-]+")
_TERMINATORS = {"stablehlo.return", "func.return", "mhlo.return", "return"}
# Ops whose operand -> result may be a plain data movement.
SHAPE_OPS = ("reshape", "transpose", "broadcast_in_dim", "slice", "convert", "copy")
# Ops looked through when asking "does this transpose feed a dot_general?"
_PASS_THROUGH = {"stablehlo.reshape", "stablehlo.convert", "stablehlo.copy",
                 "stablehlo.slice", "stablehlo.reverse"}
HEAVY = ("stablehlo.dot_general", "stablehlo.dot", "stablehlo.convolution")


def parse_type(text: str) -> Tuple[Tuple[int, ...], str]:
    """'tensor<64x128xf32>' or its inside '64x128xf32' -> ((64, 128), 'f32')."""
    m = _TYPE.search(text)
    inner = m.group(1) if m else text
    dims: List[int] = []
    parts = inner.split("x")
    i = 0
    while i < len(parts) - 1 and re.fullmatch(r"\d+|\?", parts[i]):
        dims.append(int(parts[i]) if parts[i] != "?" else -1)
        i += 1
    elem = "x".join(parts[i:])
    return tuple(dims), elem


def type_bytes(t: Tuple[Tuple[int, ...], str]) -> int:
    n = 1
    for d in t[0]:
        n *= max(d, 0)
    return n * ELEMENTS.get(t[1], (4, 0))[0]


def short(t: Tuple[Tuple[int, ...], str]) -> str:
    return "x".join(str(d) for d in t[0]) + ("x" if t[0] else "") + t[1]


def _balanced(text: str, start: int) -> int:
    """Index just past the ')' closing the '(' at text[start] (strings skipped)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            m = _STRING.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _split_top(text: str) -> List[str]:
    out, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            m = _STRING.match(text, i)
            j = m.end() if m else i + 1
            cur.append(text[i:j])
            i = j
            continue
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def signature(text: str, func: str = "main") -> Dict[str, List[Tuple[Tuple[int, ...], str]]]:
    """{'params': [...], 'results': [...]} of `func.func @main(...) -> (...)`,
    each a (dims, element type) pair; argument attributes are skipped."""
    m = re.search(r"func\.func\s+(?:public\s+)?@" + re.escape(func) + r"\(", text)
    if m is None:
        raise ValueError(f"no func.func @{func} in the program text")
    end = _balanced(text, m.end() - 1)
    params = [parse_type(a) for a in _split_top(text[m.end():end - 1]) if _TYPE.search(a)]
    rest = text[end:]
    results: List[Tuple[Tuple[int, ...], str]] = []
    arrow = re.match(r"\s*->\s*", rest)
    if arrow:
        rest = rest[arrow.end():]
        if rest.startswith("("):
            body = rest[1:_balanced(rest, 0) - 1]
            results = [parse_type(r) for r in _split_top(body) if _TYPE.search(r)]
        else:
            results = [parse_type(rest)]
    return {"params": params, "results": results}


class Op:
    """One operation line: name, result and operand SSA names, types, text."""
    __slots__ = ("name", "results", "operands", "line", "ins", "outs", "depth", "body")

    def __init__(self, name: str, results: List[str], operands: List[str], line: str,
                 depth: int):
        self.name, self.results, self.operands = name, results, operands
        self.line, self.depth = line, depth
        self.ins: List[Tuple[Tuple[int, ...], str]] = []
        self.outs: List[Tuple[Tuple[int, ...], str]] = []
        self.body: Optional[str] = None  # first op of its region (reduce bodies)

    def set_types(self, text: str) -> None:
        """Reads the trailing ': (ins) -> outs' (or ': type') signature."""
        sig = text
        arrow = sig.rfind(" -> ")
        colon = sig.rfind(" : ", 0, arrow if arrow >= 0 else len(sig))
        if colon < 0:
            return
        if arrow >= 0:
            self.ins = [parse_type(t) for t in _TYPE.findall(sig[colon:arrow])]
            self.outs = [parse_type(t) for t in _TYPE.findall(sig[arrow:])]
        else:
            t = [parse_type(x) for x in _TYPE.findall(sig[colon:])]
            self.ins, self.outs = t, t[:1]


def _names(res: Optional[str]) -> List[str]:
    if not res:
        return []
    return [r.strip().split(":")[0] for r in res.split(",")]


def _braces(line: str) -> int:
    s = _STRING.sub('""', line)
    return s.count("{") - s.count("}")


def parse_module(text: str) -> Dict[str, List[Op]]:
    """Function name -> its ops (region ops have depth > 0), in order."""
    funcs: Dict[str, List[Op]] = {}
    depth, fdepth, cur = 0, None, None
    open_ops: List[Tuple[Op, int]] = []  # ops whose region is open, with the depth before it
    last: Optional[Op] = None
    for raw in text.splitlines():
        line = raw.strip()
        delta = _braces(line)
        fm = _FUNC.match(line)
        if fm:
            cur, fdepth = funcs.setdefault(fm.group("name"), []), depth
            depth += delta
            continue
        if cur is None or not line or line.startswith("//"):
            depth += delta
            continue
        if line.startswith("}"):  # a region closes: '}) {attrs} : (types) -> type'
            depth += delta
            while open_ops and depth <= open_ops[-1][1]:
                op, _ = open_ops.pop()
                if not op.outs:
                    op.set_types(line)
            if fdepth is not None and depth <= fdepth:
                cur, fdepth = None, None
            continue
        op = _parse_op(line, depth - fdepth - 1)
        if op is not None:
            if open_ops and open_ops[-1][0].body is None and op.name not in _TERMINATORS:
                open_ops[-1][0].body = op.name
            cur.append(op)
            last = op
            if delta > 0:
                open_ops.append((op, depth))
        elif delta > 0 and last is not None:  # 'reducer(%a, %b) {' opens last's region
            open_ops.append((last, depth))
        depth += delta
    return funcs


def _parse_op(line: str, depth: int) -> Optional[Op]:
    cm = _CALL.match(line)
    if cm:
        res = _names(cm.group("res"))
        return Op("call @" + cm.group("callee"), res, _operands(line[cm.end():]), line, depth)
    m = _OP.match(line)
    if m is None:
        return None
    name = m.group("name")
    op = Op(name, _names(m.group("res")), _operands(line[m.end():]), line, depth)
    if not line.rstrip().endswith("({") and not line.rstrip().endswith("{"):
        op.set_types(line)
    elif line.rstrip().endswith("{") and " : " in line:  # pretty reduce: types, then reducer
        op.set_types(line.rstrip()[:-1])
    am = re.search(r"applies\s+([a-z_]+\.[a-z_]+)", line)
    if am:
        op.body = am.group(1)
    return op


def _operands(rest: str) -> List[str]:
    rest = _STRING.sub('""', rest)
    return [v for v in _VALUE.findall(rest)]


# --------------------------------------------------------------- statistics --

def _ints(text: Optional[str]) -> str:
    return ",".join(re.findall(r"-?\d+", text or ""))


def dot_key(op: Op) -> str:
    """'64x128xf32 . 256x128xf32 -> 64x256xf32 [c 1x1]' (b: batch, c: contract)."""
    line = op.line
    g = re.search(r"#stablehlo\.dot<([^>]*)>", line)
    if g:
        d = dict(re.findall(r"(\w+)_dimensions = \[([^\]]*)\]", g.group(1)))
        bat = (d.get("lhs_batching", ""), d.get("rhs_batching", ""))
        con = (d.get("lhs_contracting", ""), d.get("rhs_contracting", ""))
    else:
        b = re.search(r"batching_dims = \[([^\]]*)\] x \[([^\]]*)\]", line)
        c = re.search(r"contracting_dims = \[([^\]]*)\] x \[([^\]]*)\]", line)
        bat = b.groups() if b else ("", "")
        con = c.groups() if c else ("", "")
    if op.name == "stablehlo.dot":
        con = ("1" if op.ins and len(op.ins[0][0]) > 1 else "0", "0")
    dims = f"c {_ints(con[0])}x{_ints(con[1])}"
    if bat[0] or bat[1]:
        dims = f"b {_ints(bat[0])}x{_ints(bat[1])}, " + dims
    ins = " . ".join(short(t) for t in op.ins[:2])
    out = short(op.outs[0]) if op.outs else "?"
    return f"{ins} -> {out} [{dims}]"


def conv_key(op: Op) -> str:
    """Shapes, layout and the non-default window of one convolution."""
    line = op.line
    m = re.search(r"(\[[^\]]*\]x\[[^\]]*\]->\[[^\]]*\])", line)
    layout = m.group(1).replace(" ", "") if m else "?"
    parts = [layout]
    for label, names in (("stride", ("window_strides", "stride")),
                         ("lhs_dil", ("lhs_dilation", "lhs_dilate")),
                         ("rhs_dil", ("rhs_dilation", "rhs_dilate"))):
        for n in names:
            v = re.search(n + r" = (?:array<i64: ([^>]*)>|\[([^\]]*)\])", line)
            if v:
                vals = _ints(v.group(1) or v.group(2))
                if set(vals.split(",")) - {"1", ""}:
                    parts.append(f"{label} {vals}")
                break
    pad = re.search(r"(?:padding = dense<|pad = )(\[\[[^\]]*\](?:, \[[^\]]*\])*\]|-?\d+)", line)
    if pad and set(_ints(pad.group(1)).split(",")) - {"0"}:
        parts.append(f"pad {_ints(pad.group(1))}")
    for g in ("feature_group_count", "batch_group_count"):
        v = re.search(g + r" = (\d+)", line)
        if v and v.group(1) != "1":
            parts.append(f"{g.split('_')[0]}_groups {v.group(1)}")
    ins = " * ".join(short(t) for t in op.ins[:2])
    out = short(op.outs[0]) if op.outs else "?"
    return f"{ins} -> {out} {' '.join(parts)}"


def _prod(dims: Tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= max(d, 0)
    return n


def dot_flops(op: Op) -> int:
    """2 x result elements x contracted size (from the lhs)."""
    if len(op.ins) < 2 or not op.outs:
        return 0
    g = re.search(r"lhs_contracting_dimensions = \[([^\]]*)\]", op.line) or re.search(
        r"contracting_dims = \[([^\]]*)\]", op.line)
    lhs = op.ins[0][0]
    if g:
        idx = [int(i) for i in re.findall(r"\d+", g.group(1))]
    else:  # stablehlo.dot: the lhs's last dimension
        idx = [len(lhs) - 1] if lhs else []
    k = _prod(tuple(lhs[i] for i in idx if i < len(lhs)))
    return 2 * _prod(op.outs[0][0]) * k


def conv_flops(op: Op) -> int:
    """2 x result elements x (kernel elements / output features)."""
    if len(op.ins) < 2 or not op.outs:
        return 0
    m = re.search(r"\]x\[([^\]]*)\]->", op.line)
    labels = [x.strip() for x in m.group(1).split(",")] if m else []
    rhs = op.ins[1][0]
    o = rhs[labels.index("o")] if "o" in labels and len(labels) == len(rhs) else 1
    return 2 * _prod(op.outs[0][0]) * (_prod(rhs) // max(o, 1))


def _empty() -> Dict[str, Counter]:
    return {k: Counter() for k in ("ops", "bytes", "dots", "convs", "reduces", "custom_calls",
                                   "adjacent", "noops", "region_ops", "calls", "flops")}


def _own_stats(ops: List[Op]) -> Dict[str, Counter]:
    st = _empty()
    producer: Dict[str, Op] = {}
    users: Dict[str, List[Op]] = {}
    for op in ops:
        if op.depth > 0:
            if op.name not in _TERMINATORS:
                st["region_ops"][op.name] += 1
            continue
        for r in op.results:
            producer[r] = op
        for v in op.operands:
            users.setdefault(v.split("#")[0], []).append(op)
    for op in ops:
        if op.depth > 0 or op.name in _TERMINATORS:
            continue
        if op.name.startswith("call @"):
            st["calls"][op.name[6:]] += 1
            continue
        _count(st, op, producer, users)
    return st


def _count(st: Dict[str, Counter], op: Op, producer: Dict[str, Op],
           users: Dict[str, List[Op]]) -> None:
    name = op.name
    st["ops"][name] += 1
    st["bytes"][name] += sum(type_bytes(t) for t in op.outs)
    if name in ("stablehlo.dot_general", "stablehlo.dot"):
        st["dots"][dot_key(op)] += 1
        st["flops"]["dot_general"] += dot_flops(op)
    elif name == "stablehlo.convolution":
        st["convs"][conv_key(op)] += 1
        st["flops"]["convolution"] += conv_flops(op)
    elif name == "stablehlo.reduce":
        elem = op.ins[0][1] if op.ins else "?"
        st["reduces"][f"{(op.body or '?').split('.')[-1]} {elem}"] += 1
    elif name == "stablehlo.custom_call":
        t = re.search(r'call_target_name = "([^"]*)"', op.line) or re.search(
            r"custom_call\s+@([\w.$-]+)", op.line)
        st["custom_calls"][t.group(1) if t else "?"] += 1
    short_name = name.split(".")[-1]
    if short_name in SHAPE_OPS and _is_noop(op, short_name):
        st["noops"][short_name] += 1
    if name == "stablehlo.transpose":
        nbytes = sum(type_bytes(t) for t in op.outs)
        for heavy in _feeds(op, users):
            st["adjacent"][f"transpose -> {heavy.split('.')[-1]}"] += 1
            st["adjacent"][f"transpose -> {heavy.split('.')[-1]} bytes"] += nbytes
        src = _source(op, producer)
        if src is not None:
            st["adjacent"][f"{src.split('.')[-1]} -> transpose"] += 1
            st["adjacent"][f"{src.split('.')[-1]} -> transpose bytes"] += nbytes


def _is_noop(op: Op, short_name: str) -> bool:
    """A shape op whose result is its operand unchanged (same type; for
    transpose and broadcast_in_dim, the identity dimension map)."""
    if not op.ins or not op.outs or op.ins[0] != op.outs[0]:
        return False
    if short_name in ("transpose", "broadcast_in_dim"):
        m = re.search(r"(?:permutation|broadcast_dimensions) = array<i64(?::([^>]*))?>"
                      r"|dims = \[([^\]]*)\]", op.line)
        perm = _ints((m.group(1) or m.group(2)) if m else None)
        return perm == ",".join(str(i) for i in range(len(op.outs[0][0])))
    return True


def _feeds(op: Op, users: Dict[str, List[Op]], hops: int = 2) -> List[str]:
    """Heavy ops (dot_general, convolution) reading op's result, through up
    to `hops` reshapes / converts / copies / slices / reverses."""
    found, frontier = set(), [op]
    for _ in range(hops + 1):
        nxt = []
        for o in frontier:
            for r in o.results:
                for u in users.get(r, []):
                    if u.name in HEAVY:
                        found.add(u.name)
                    elif u.name in _PASS_THROUGH:
                        nxt.append(u)
        frontier = nxt
    return sorted(found)


def _source(op: Op, producer: Dict[str, Op], hops: int = 2) -> Optional[str]:
    """The heavy op the operand of `op` comes from, through up to `hops`
    reshapes / converts / copies / slices / reverses."""
    cur = op
    for _ in range(hops + 1):
        if not cur.operands:
            return None
        p = producer.get(cur.operands[0].split("#")[0])
        if p is None:
            return None
        if p.name in HEAVY:
            return p.name
        if p.name not in _PASS_THROUGH:
            return None
        cur = p
    return None


def stats(text: str) -> Dict[str, Counter]:
    """Statistics of @main, calls expanded (each callee counted per call)."""
    funcs = parse_module(text)
    memo: Dict[str, Dict[str, Counter]] = {}

    def of(fn: str, stack: Tuple[str, ...]) -> Dict[str, Counter]:
        if fn in memo:
            return memo[fn]
        st = _own_stats(funcs.get(fn, []))
        for callee, n in list(st["calls"].items()):
            if callee in stack or callee not in funcs:
                continue
            sub = of(callee, stack + (callee,))
            for k in st:
                if k != "calls":
                    for key, v in sub[k].items():
                        st[k][key] += v * n
        memo[fn] = st
        return st

    main = "main" if "main" in funcs else next(iter(funcs), "main")
    return of(main, (main,))


def merge(items: List[Dict[str, Counter]]) -> Dict[str, Counter]:
    out = _empty()
    for st in items:
        for k, c in st.items():
            out.setdefault(k, Counter()).update(c)
    return out


def diff(ours: Counter, theirs: Counter) -> List[Tuple[str, int, int, int]]:
    """(key, ours, theirs, ours - theirs) over both keys, largest |delta| first."""
    keys = set(ours) | set(theirs)
    rows = [(k, ours.get(k, 0), theirs.get(k, 0), ours.get(k, 0) - theirs.get(k, 0))
            for k in keys]
    rows.sort(key=lambda r: (-abs(r[3]), -max(r[1], r[2]), r[0]))
    return rows

