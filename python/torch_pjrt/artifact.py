"""The deployable `.tpj` artifact (docs/artifact.md): `save` writes one from
a torch.export.ExportedProgram, `load` runs one from Python.

An artifact is what `tpj-run` and `tpj_model_load` (include/tpj/model.h)
run without Python: a manifest, one StableHLO program per shape bucket, the
weights in safetensors, optionally serialized executables, in a checksummed
container. `save` refuses, before writing anything, every program the
format cannot run exactly: mutated buffers, random ops, ops without a device
lowering, outputs that are inputs returned as they are, more than one
dynamic size, and dynamic sizes whose padding to a bucket is not exact
(artifact_check). Constant outputs (a None loss) are no program results:
the manifest's "pytree" keeps them for `load`. A failed save leaves no file
behind (it writes a temporary file and renames it).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import struct
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind, TensorArgument
from torch.utils import _pytree as pytree

from . import _dtypes
from . import artifact_check
from . import fx_lower
from .artifact_check import ArtifactError

MAGIC = b"TPJMODEL"
FORMAT_VERSION = 1
HEADER_SIZE = 64
ENTRY_SIZE = 128
ALIGN = 64
MAX_PARTS = 4096
MAX_RANK = 8
# tpj_check_kind_t (include/tpj/ir.h) -> the manifest's check kind.
CHECK_KINDS = {0: "index", 1: "div_zero"}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_./-")


def _C() -> Any:
    from . import _C as c
    return c


def dtype_name(dtype: torch.dtype) -> str:
    """The manifest's spelling of a dtype ('float32'); ArtifactError outside
    the dtype table."""
    if dtype not in _dtypes.DTYPE_TO_CODE:
        raise ArtifactError(f"torch_pjrt.export: dtype {dtype} is not in the .tpj dtype table")
    return str(dtype).replace("torch.", "")


@dataclass
class _Signature:
    """What feeds each graph placeholder, and the weights."""
    # ("input", i) / ("weight", key) / ("constant", value)
    feeds: List[Tuple[str, Any]] = field(default_factory=list)
    weights: Dict[str, torch.Tensor] = field(default_factory=dict)
    inputs: List[fx.Node] = field(default_factory=list)          # the user inputs' placeholders
    outputs: List[fx.Node] = field(default_factory=list)         # the tensor output leaves
    # (output leaf, value) of the outputs that are constants (a None loss):
    # not program results; export.load puts them back (manifest "pytree").
    constants: List[Tuple[int, Any]] = field(default_factory=list)
    # (input leaf, value) of the call's arguments torch.export made constants
    # (use_cache=False): baked into the program, not runtime inputs.
    input_constants: List[Tuple[int, Any]] = field(default_factory=list)


# --------------------------------------------------------------- signature --

def _constant_input(spec: Any, leaf: int, sig: _Signature) -> None:
    """A user input torch.export specialized to a constant: the program has
    it built in; the manifest keeps it for export.load to check."""
    value = getattr(spec.arg, "value", None)
    if not hasattr(spec.arg, "value") or not _json_constant(value):
        what = (f"the constant {value!r}" if hasattr(spec.arg, "value")
                else f"a {type(spec.arg).__name__}")
        raise ArtifactError(f"export.save: user input {spec.arg.name} is {what}, not a "
                            f"tensor nor a None, bool, int, float or str constant; an "
                            f"artifact's inputs are tensors")
    sig.feeds.append(("constant", value))
    sig.input_constants.append((leaf, value))


def _input_specs(ep: ExportedProgram, sig: _Signature) -> None:
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    leaf = 0
    for spec, node in zip(ep.graph_signature.input_specs, placeholders):
        if spec.kind == InputKind.USER_INPUT:
            leaf += 1
            if not isinstance(spec.arg, TensorArgument):
                _constant_input(spec, leaf - 1, sig)
                continue
            sig.feeds.append(("input", len(sig.inputs)))
            sig.inputs.append(node)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            key = spec.target
            value = ep.state_dict[key] if key in ep.state_dict else ep.constants.get(key)
            if not isinstance(value, torch.Tensor):
                raise ArtifactError(f"export.save: {spec.kind.name.lower()} {key} is not a "
                                    f"tensor (got {type(value).__name__})")
            sig.feeds.append(("weight", key))
            sig.weights[key] = value
        else:
            raise ArtifactError(f"export.save: input {spec.arg.name} is a {spec.kind.name} "
                                f"input; an artifact takes tensors and tensor weights only")


def _output_specs(ep: ExportedProgram, sig: _Signature) -> None:
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    leaves = list(out_node.args[0])  # flat in export graphs, one per output spec
    for i, spec in enumerate(ep.graph_signature.output_specs):
        if spec.kind == OutputKind.BUFFER_MUTATION:
            raise ArtifactError(f"export.save: the program mutates buffer {spec.target} "
                                f"(BatchNorm in training mode?): call model.eval() before "
                                f"torch.export")
        if spec.kind == OutputKind.USER_INPUT_MUTATION:
            raise ArtifactError(f"export.save: the program mutates its input {spec.target} "
                                f"in place; an artifact's inputs are read-only")
        if spec.kind not in (OutputKind.USER_OUTPUT, OutputKind.LOSS_OUTPUT):
            raise ArtifactError(f"export.save: output {i} is a {spec.kind.name} output; an "
                                f"artifact returns computed tensors only")
        leaf = leaves[i] if i < len(leaves) else None
        if not isinstance(spec.arg, TensorArgument) or not isinstance(leaf, fx.Node):
            value = getattr(spec.arg, "value", leaf)
            if not _json_constant(value):
                raise ArtifactError(f"export.save: output {i} is the constant {value!r}, "
                                    f"not a tensor the program computes; return tensors (or "
                                    f"None, bool, int, float, str constants) only")
            sig.constants.append((i, value))
            continue
        if leaf.op == "placeholder":
            raise ArtifactError(f"export.save: output {i} returns the program input "
                                f"{leaf.name} unchanged, not a tensor the program computes; "
                                f"return a computed tensor (x.clone()) or drop it")
        sig.outputs.append(leaf)


def _json_constant(value: Any) -> bool:
    """A constant output the manifest can hold exactly (finite numbers)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    return isinstance(value, float) and value == value and abs(value) != float("inf")


def _signature(ep: ExportedProgram) -> _Signature:
    sig = _Signature()
    _input_specs(ep, sig)
    _output_specs(ep, sig)
    for node in ep.graph.nodes:
        if node.op == "call_function" and fx_lower.draws_random(node):
            raise ArtifactError(f"export.save: node {node.name} ({fx_lower.op_name(node)}) "
                                f"draws random numbers; an artifact's programs are "
                                f"deterministic (call model.eval() to turn off dropout)")
    return sig


# --------------------------------------------------------------- lowering --

def _size(size: Any, sym: Optional[artifact_check.Symbol], bucket: int) -> Any:
    if isinstance(size, int):
        return size
    c = artifact_check.scale_of(size, sym.expr) if sym is not None else None
    if c is None:
        raise ArtifactError(f"export.save: size {size} is not c * the dynamic size")
    return c * bucket


def _tensor_entries(nodes: Sequence[fx.Node], names: Sequence[str],
                    sym: Optional[artifact_check.Symbol], what: str) -> List[Dict[str, Any]]:
    """The manifest's inputs or outputs: name, dtype, shape."""
    out = []
    for node, name in zip(nodes, names):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise ArtifactError(f"export.save: {what} {name} (node {node.name}) is not a "
                                f"tensor (got {type(val).__name__})")
        if val.dim() > MAX_RANK:
            raise ArtifactError(f"export.save: {what} {name} has rank {val.dim()} "
                                f"(expected at most {MAX_RANK})")
        shape: List[Any] = []
        for size in val.shape:
            if isinstance(size, int):
                shape.append(size)
            else:
                shape.append({"scale": _size(size, sym, 1)})
        out.append({"name": name, "dtype": dtype_name(val.dtype), "shape": shape})
    return out


def _example_args(gm: fx.GraphModule, sig: _Signature, sym: Optional[artifact_check.Symbol],
                  bucket: int) -> List[Any]:
    args: List[Any] = []
    for kind, v in sig.feeds:
        if kind == "weight":
            args.append(sig.weights[v])
        elif kind == "constant":
            args.append(v)
        else:
            val = sig.inputs[v].meta["val"]
            shape = [_size(s, sym, bucket) for s in val.shape]
            args.append(torch.zeros(shape, dtype=val.dtype))
    return args


def _lower(gm: fx.GraphModule, sig: _Signature, sym: Optional[artifact_check.Symbol],
           bucket: int) -> fx_lower.LoweredGraph:
    """The graph lowered for inputs of bucket `bucket`, runtime checks on;
    every op must lower."""
    args = _example_args(gm, sig, sym, bucket)
    values = fx_lower.propagate_values(gm, args)
    graph_cls = functools.partial(_C().Graph, checks=True)
    lowered = fx_lower.lower_graph(gm, values, graph_cls, tolerate_failures=True)
    if lowered.failed:
        what = "; ".join(f"{fx_lower.op_name(n)} (node {n.name}): {e}"
                         for n, e in lowered.failed.items())
        raise ArtifactError(f"export.save: {len(lowered.failed)} op(s) have no device "
                            f"lowering, and an artifact runs every op on the device: {what}")
    return lowered


class _Constants:
    """Names for the graph constants a lowering feeds as ("const", tensor):
    weights "_constant_<k>", one per tensor across every bucket."""

    def __init__(self, weights: Dict[str, torch.Tensor]):
        self.weights = weights
        self.names: Dict[int, str] = {}

    def name_of(self, t: torch.Tensor) -> str:
        name = self.names.get(id(t))
        if name is None:
            k = len(self.names)
            while f"_constant_{k}" in self.weights:
                k += 1
            name = f"_constant_{k}"
            self.names[id(t)] = name
            self.weights[name] = t
        return name


def _params(lowered: fx_lower.LoweredGraph, sig: _Signature,
            consts: _Constants) -> List[Dict[str, Any]]:
    params: List[Dict[str, Any]] = []
    for src in lowered.inputs:
        if src[0] == "arg":
            kind, v = sig.feeds[src[1]]
            params.append({"input": v} if kind == "input" else {"weight": v})
        elif src[0] == "const":
            params.append({"weight": consts.name_of(src[1])})
        else:
            raise ArtifactError("export.save: the program draws random numbers (it takes a "
                                "seed); an artifact's programs are deterministic")
    return params


def _check_results(lowered: fx_lower.LoweredGraph, gm: fx.GraphModule, sig: _Signature,
                   outputs: List[Dict[str, Any]], bucket: int) -> None:
    """The program's results are the manifest's outputs at `bucket`, the
    other output leaves the signature's constants."""
    names = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    constants = dict(sig.constants)
    for leaf, (kind, v) in enumerate(lowered.outputs):
        if kind == "result" and v == leaf - sum(1 for i in constants if i < leaf):
            continue
        if kind == "value" and leaf in constants and constants[leaf] == v:
            continue
        what = (f"the constant {v!r}" if kind == "value" else
                f"the program input {names[v]} (or a view of it)" if kind in ("input", "alias")
                else f"{kind} {v!r}")
        raise ArtifactError(f"export.save: output {leaf} is {what}, not a tensor the program "
                            f"computes; return computed tensors only")
    if len(lowered.result_types) != len(outputs):
        raise ArtifactError(f"export.save: the program at bucket {bucket} has "
                            f"{len(lowered.result_types)} results (expected {len(outputs)})")
    for entry, (dtype, shape) in zip(outputs, lowered.result_types):
        want = [d if isinstance(d, int) else d["scale"] * bucket for d in entry["shape"]]
        if dtype_name(dtype) != entry["dtype"] or list(shape) != want:
            raise ArtifactError(f"export.save: output {entry['name']} of the program at bucket "
                                f"{bucket} is {dtype_name(dtype)}{list(shape)} (expected "
                                f"{entry['dtype']}{want} from the exported shapes)")


def _program_entry(lowered: fx_lower.LoweredGraph, gm: fx.GraphModule, sig: _Signature,
                   consts: _Constants, outputs: List[Dict[str, Any]], index: int,
                   bucket: int) -> Dict[str, Any]:
    if not lowered.text:
        raise ArtifactError("export.save: the program returns no tensors")
    _check_results(lowered, gm, sig, outputs, bucket)
    checks = []
    for kind, message in lowered.checks:
        if kind not in CHECK_KINDS:
            raise ArtifactError(f"export.save: runtime check {message!r} has kind {kind} "
                                f"(expected one of {sorted(CHECK_KINDS)})")
        checks.append({"kind": CHECK_KINDS[kind], "message": message})
    return {"part": f"program/{index}.mlir", "bucket": bucket,
            "params": _params(lowered, sig, consts), "checks": checks}


def _executables(texts: Sequence[str]) -> Tuple[List[Dict[str, Any]], List[Tuple[str, bytes]]]:
    """Each program compiled on the current client and serialized, with the
    plugin identity a runner matches before it uses the bytes."""
    from . import compiled
    if not hasattr(_C().Executable, "serialize"):
        raise ArtifactError("export.save(executables=True): this build's "
                            "torch_pjrt._C.Executable has no serialize(); save without "
                            "executables (runners compile the StableHLO)")
    cl = compiled.client()
    info = cl.plugin_info()
    entries, parts = [], []
    for i, text in enumerate(texts):
        parts.append((f"executable/{i}.bin", bytes(cl.compile(text).serialize())))
        entries.append({"part": f"executable/{i}.bin", "program": i,
                        "platform": info["platform_name"],
                        "platform_version": info["platform_version"],
                        "api": [int(v) for v in info["api_version"]],
                        "xla_version": int(info["xla_version"])})
    return entries, parts


def _weights_bytes(weights: Dict[str, torch.Tensor]) -> bytes:
    import safetensors.torch
    out = {}
    for key, t in weights.items():
        dtype_name(t.dtype)
        if t.dim() > MAX_RANK:
            raise ArtifactError(f"export.save: weight {key} has rank {t.dim()} "
                                f"(expected at most {MAX_RANK})")
        # A private dense copy: safetensors refuses tensors sharing storage (tied weights).
        out[key] = t.detach().cpu().resolve_conj().resolve_neg().contiguous().clone()
    return safetensors.torch.save(out)


def _pytree_specs(ep: ExportedProgram, sig: _Signature) -> Optional[Dict[str, Any]]:
    """The manifest's "pytree": the call's specs and the constant outputs."""
    spec = ep.call_spec
    if spec.in_spec is None or spec.out_spec is None:
        if sig.constants or sig.input_constants:
            raise ArtifactError("export.save: the program takes or returns constants but has "
                                "no argument or output structure to place them in")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return {"in_spec": pytree.treespec_dumps(spec.in_spec),
                    "out_spec": pytree.treespec_dumps(spec.out_spec),
                    "constants": [{"leaf": i, "value": v} for i, v in sig.constants],
                    "input_constants": [{"leaf": i, "value": v}
                                        for i, v in sig.input_constants]}
    except Exception as e:  # noqa: BLE001 - any unserializable node type
        raise ArtifactError(f"export.save: cannot store the call's argument or output "
                            f"structure ({type(e).__name__}: {e}); use tuples, lists and "
                            f"dicts of tensors") from e


def _producer() -> Dict[str, str]:
    try:
        version = importlib.metadata.version("torch-pjrt")
    except importlib.metadata.PackageNotFoundError:
        version = "0.1.0"
    return {"torch_pjrt": version, "torch": torch.__version__}


# -------------------------------------------------------------- container --

def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _check_part_name(name: str) -> bytes:
    raw = name.encode("ascii", "replace")
    if not 1 <= len(raw) <= 63 or not set(name) <= _NAME_CHARS:
        raise ArtifactError(f"export.save: bad part name {name!r} (expected 1-63 bytes of "
                            f"[a-z0-9_./-])")
    return raw


def container_layout(parts: Sequence[Tuple[str, bytes]]) -> Tuple[bytes, List[int]]:
    """(header + part table, each part's offset) for `parts` in order."""
    if not 1 <= len(parts) <= MAX_PARTS or len({n for n, _ in parts}) != len(parts):
        raise ArtifactError(f"export.save: {len(parts)} parts (expected 1-{MAX_PARTS} "
                            f"uniquely named)")
    offset = _align(HEADER_SIZE + ENTRY_SIZE * len(parts))
    table, offsets = [], []
    for name, data in parts:
        table.append(_check_part_name(name).ljust(64, b"\0")
                     + struct.pack("<QQ", offset, len(data))
                     + hashlib.sha256(data).digest() + bytes(16))
        offsets.append(offset)
        offset = _align(offset + len(data))
    table_bytes = b"".join(table)
    header = (MAGIC + struct.pack("<II", FORMAT_VERSION, len(parts))
              + hashlib.sha256(table_bytes).digest() + bytes(16))
    return header + table_bytes, offsets


def write_container(path: str, parts: Sequence[Tuple[str, bytes]]) -> None:
    """Writes the container to a temporary file next to `path`, then renames
    it: `path` is either the whole new artifact or untouched."""
    head, offsets = container_layout(parts)
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for (_, data), offset in zip(parts, offsets):
                f.write(bytes(offset - f.tell()))
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ------------------------------------------------------------------- save --

def save(ep: ExportedProgram, path: str, *, buckets: Optional[Sequence[int]] = None,
         executables: bool = False) -> None:
    """Writes `ep` as the `.tpj` artifact `path` (docs/artifact.md): one
    program per bucket of its dynamic size (`buckets`, or powers of two up to
    the Dim's max), its weights, and with `executables` the programs compiled
    for the current plugin. Raises ArtifactError, writing nothing, for a
    program the format cannot run exactly."""
    if not isinstance(ep, ExportedProgram):
        raise TypeError(f"export.save: expected a torch.export.ExportedProgram "
                        f"(got {type(ep).__name__})")
    from . import backend
    ep = ep.run_decompositions(backend.export_decompositions())
    gm = ep.graph_module
    sig = _signature(ep)
    sym = artifact_check.find_symbol(ep, sig.inputs)
    if sym is None and buckets is not None:
        raise ArtifactError(f"export.save: buckets={list(buckets)!r} given, but the program "
                            f"has no dynamic size")
    sizes = [0] if sym is None else artifact_check.bucket_sizes(sym, buckets)
    if sym is not None:
        artifact_check.check_exact(gm, sym.expr, sym.name)
    specs = _pytree_specs(ep, sig)
    inputs = _tensor_entries(sig.inputs, [n.name for n in sig.inputs], sym, "input")
    outputs = _tensor_entries(sig.outputs, [f"output_{i}" for i in range(len(sig.outputs))],
                              sym, "output")
    consts = _Constants(dict(sig.weights))
    programs, texts = [], []
    for i, bucket in enumerate(sizes):
        lowered = _lower(gm, sig, sym, bucket)
        programs.append(_program_entry(lowered, gm, sig, consts, outputs, i, bucket))
        texts.append(lowered.text)
    manifest: Dict[str, Any] = {
        "format": "tpj-model", "version": FORMAT_VERSION, "producer": _producer(),
        "symbol": None if sym is None else {"name": sym.name, "min": sym.min, "max": sym.max},
        "inputs": inputs, "outputs": outputs, "programs": programs}
    exe_parts: List[Tuple[str, bytes]] = []
    if executables:
        manifest["executables"], exe_parts = _executables(texts)
    if specs is not None:
        manifest["pytree"] = specs
    parts = [("manifest.json", json.dumps(manifest, allow_nan=False).encode()),
             ("weights.safetensors", _weights_bytes(consts.weights))]
    parts += [(p["part"], t.encode()) for p, t in zip(programs, texts)] + exe_parts
    write_container(path, parts)


# ------------------------------------------------------------------- load --

class LoadedProgram:
    """A `.tpj` artifact loaded for the current client (`_C.Model`): called
    like the exported module, on CPU tensors (pjrt tensors are copied to the
    host), it returns CPU tensors in the exported output structure."""

    def __init__(self, path: str, model: Any):
        self.path = os.fspath(path)
        self.model = model
        self.manifest: Dict[str, Any] = json.loads(model.manifest)
        self.inputs: List[Dict[str, Any]] = self.manifest["inputs"]
        self.outputs: List[Dict[str, Any]] = self.manifest["outputs"]
        self.symbol: Optional[Dict[str, Any]] = self.manifest.get("symbol")
        specs = self.manifest.get("pytree")
        self.in_spec = pytree.treespec_loads(specs["in_spec"]) if specs else None
        self.out_spec = pytree.treespec_loads(specs["out_spec"]) if specs else None
        self.constants = [(c["leaf"], c["value"]) for c in (specs or {}).get("constants", [])]
        self.input_constants = {c["leaf"]: c["value"]
                                for c in (specs or {}).get("input_constants", [])}

    def _flatten(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> List[Any]:
        flat, spec = pytree.tree_flatten((args, kwargs))
        if self.in_spec is not None and spec != self.in_spec:
            # Keyword arguments in another order than at export: reorder them.
            order = (self.in_spec.children_specs[1].context
                     if self.in_spec.type is tuple and self.in_spec.num_children == 2 else None)
            if isinstance(order, list) and set(kwargs) == set(order):
                flat, spec = pytree.tree_flatten((args, {k: kwargs[k] for k in order}))
            if spec != self.in_spec:
                raise TypeError(f"export.load: {self.path}: the call's arguments do not match "
                                f"the exported signature (expected {self.in_spec}, got {spec})")
        for leaf, value in self.input_constants.items():
            got = flat[leaf] if leaf < len(flat) else None
            if type(got) is not type(value) or got != value:
                raise TypeError(f"export.load: {self.path}: argument leaf {leaf} is {got!r}; "
                                f"the program was exported with the constant {value!r} there")
        flat = [t for i, t in enumerate(flat) if i not in self.input_constants]
        if len(flat) != len(self.inputs):
            raise TypeError(f"export.load: {self.path}: expected {len(self.inputs)} tensor "
                            f"inputs, got {len(flat)}")
        return flat

    def _host_input(self, entry: Dict[str, Any], t: Any, sizes: Dict[str, int]) -> torch.Tensor:
        name = entry["name"]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"export.load: input {name} must be a tensor (got "
                            f"{type(t).__name__})")
        if dtype_name(t.dtype) != entry["dtype"] or t.dim() != len(entry["shape"]):
            raise TypeError(f"export.load: input {name} is {dtype_name(t.dtype)} of rank "
                            f"{t.dim()} (expected {entry['dtype']} of rank {len(entry['shape'])})")
        for d, (want, got) in enumerate(zip(entry["shape"], t.shape)):
            if isinstance(want, int):
                if got != want:
                    raise ValueError(f"export.load: input {name} has size {got} in dim {d} "
                                     f"(expected {want})")
                continue
            s, rem = divmod(int(got), want["scale"])
            lo, hi, sym = self.symbol["min"], self.symbol["max"], self.symbol["name"]
            if rem or not lo <= s <= hi or sizes.setdefault(sym, s) != s:
                known = f", {sym} = {sizes[sym]}" if sym in sizes else ""
                raise ValueError(f"export.load: input {name} has size {got} in dim {d} "
                                 f"(expected {want['scale']} * {sym} with {sym} in "
                                 f"[{lo}, {hi}]{known})")
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        return t.resolve_conj().resolve_neg().contiguous()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = self._flatten(args, kwargs)
        sizes: Dict[str, int] = {}
        host = [self._host_input(e, t, sizes) for e, t in zip(self.inputs, flat)]
        outs = self.model.run([(t.data_ptr(), t.numel() * t.element_size(),
                                _dtypes.dtype_code(t.dtype), tuple(t.shape)) for t in host])
        results: List[Any] = [_host_tensor(*o) for o in outs]
        for leaf, value in self.constants:  # ascending leaf order
            results.insert(leaf, value)
        if self.out_spec is None:
            return results[0] if len(results) == 1 else tuple(results)
        return pytree.tree_unflatten(results, self.out_spec)


# A _C.HostArray is read-only to the buffer protocol, but it owns its malloc'ed
# block and nothing else reads it: the tensor over it (which keeps it alive)
# may be written. So torch's warning about read-only buffers is off, for the
# calls from this module only.
warnings.filterwarnings("ignore", message="The given buffer is not writable",
                        category=UserWarning, module=__name__.replace(".", r"\.") + "$")


def _host_tensor(array: Any, code: int, shape: Sequence[int]) -> torch.Tensor:
    """A CPU tensor over a result of _C.Model.run, without a copy."""
    dtype = _dtypes.code_dtype(code)
    if memoryview(array).nbytes == 0:
        return torch.empty(tuple(shape), dtype=dtype)
    t = torch.frombuffer(array, dtype=torch.uint8)
    return t.view(dtype).reshape(tuple(shape))


def load(path: str) -> LoadedProgram:
    """Loads the `.tpj` artifact `path` for the current client: the C loader
    checks the container, checksums, manifest and weights, uploads the
    weights and compiles (or deserializes) every bucket's program."""
    from . import compiled
    c = _C()
    if not hasattr(c, "Model"):
        raise RuntimeError("export.load: this build of torch_pjrt._C has no Model (the C "
                           "artifact runner); rebuild the extension (make ext)")
    return LoadedProgram(path, c.Model(compiled.client(), os.fspath(path)))
