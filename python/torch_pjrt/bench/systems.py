"""The systems under comparison. Each turns a workload into a zero-argument
callable (plus a way to read its result back as torch tensors for the
correctness guard). Systems that cannot run a workload raise Unsupported."""
from __future__ import annotations

import os

import torch


class Unsupported(Exception):
    pass


def _tree_to_torch(out):
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    if isinstance(out, (list, tuple)):
        return type(out)(_tree_to_torch(o) for o in out)
    if isinstance(out, dict):
        return {k: _tree_to_torch(v) for k, v in out.items()}
    if hasattr(out, "to_tuple"):
        return _tree_to_torch(out.to_tuple())
    return out


def _to_device(tree, dev):
    if isinstance(tree, torch.Tensor):
        return tree.to(dev)
    return type(tree)(_to_device(t, dev) for t in tree)


def _sync_pjrt():
    torch.pjrt.synchronize()


def _sync_cuda():
    torch.cuda.synchronize()


class TorchSystem:
    """eager / inductor / pjrt: the same torch callable, compiled or not.

    device: where PyTorch keeps the model and inputs: "cpu", "cuda" or the
    eager "pjrt" device (the `pjrt` system keeps CPU tensors: torch-pjrt
    uploads them to its plugin's device itself). On "cuda" and "pjrt" each
    call ends in a device synchronize, so the time covers the work, not just
    its launch."""

    counts_metrics = False

    def __init__(self, name, backend=None, device="cpu"):
        self.name = name
        self.backend = backend
        self.device = device
        self.counts_metrics = backend == "pjrt"

    def prepare(self, wl):
        model, inputs = wl.build()
        sync = {"cuda": _sync_cuda, "pjrt": _sync_pjrt}.get(self.device)
        if self.device != "cpu":
            model, inputs = model.to(self.device), _to_device(inputs, self.device)
        fn = wl.torch_callable(model)
        if self.backend is not None:
            fn = torch.compile(fn, backend=self.backend)
        ctx = torch.no_grad if wl.kind == "infer" else torch.enable_grad

        def run():
            with ctx():
                out = fn(*inputs)
            if sync is not None:
                sync()
            return out

        return run, lambda out: _tree_to_torch(out)


class PjrtDevCompileSystem(TorchSystem):
    """torch.compile(backend="pjrt") over a model and inputs that already live
    on the eager "pjrt" device: no host<->device copies per call, like torchax
    (whose weights and inputs are JAX arrays on the device). Outputs stay on
    the device; each call ends in torch.pjrt.synchronize()."""

    def __init__(self):
        super().__init__("pjrt_dev_compile", "pjrt", "pjrt")


_torchax_env = None


def _import_torchax():
    """torchax 0.0.13 names ATen overloads that torch 2.13 removed (the named-
    tensor ones, e.g. aten.prod.dim_Dimname) while building its tables; give
    those names inert placeholders during import so the rest of torchax works."""
    global _torchax_env
    if _torchax_env is not None:
        return _torchax_env
    import torch._ops as ops

    original = ops.OpOverloadPacket.__getattr__

    class _Removed:
        def __init__(self, name):
            self._name = name

        def name(self):
            return self._name

    def lenient(self, key):
        try:
            return original(self, key)
        except AttributeError:
            if key.startswith("_"):
                raise
            return _Removed(f"{self._qualified_op_name}.{key}")

    ops.OpOverloadPacket.__getattr__ = lenient
    try:
        import torchax
        _torchax_env = torchax.default_env()
    finally:
        ops.OpOverloadPacket.__getattr__ = original
    return _torchax_env


def torchax_backend_note():
    """Makes JAX use the very same xla-cpu-pjrt plugin file as torch-pjrt."""
    import jax
    from jax._src import xla_bridge
    import xla_plugins.xla_cpu_pjrt as pkg
    path = os.path.join(os.path.dirname(pkg.__file__), "xla_cpu_pjrt.so")
    if "pjrt_cpu_plugin" not in xla_bridge._backend_factories:
        xla_bridge.register_plugin("pjrt_cpu_plugin", priority=500, library_path=path,
                                   options={"cpu_device_count": 1})
    dev = jax.devices("pjrt_cpu_plugin")[0]
    return dev, path


def jax_step(wl, mod, inputs, dev):
    """(jitted JAX function, its arguments) for one step of workload `wl` on
    JAX device `dev`, through torchax: the module's forward for inference,
    the loss and its gradients w.r.t. the float weights for training
    (buffers such as num_batches_tracked are integers). torchax must be
    imported already (_import_torchax)."""
    import jax
    import jax.numpy as jnp
    import torchax
    weights, func = torchax.extract_jax(mod)
    weights = jax.device_put(weights, dev)

    def to_jax(t):  # numpy has no bfloat16: go through float32
        if t.dtype == torch.bfloat16:
            return jnp.asarray(t.float().numpy()).astype(jnp.bfloat16)
        return jnp.asarray(t.numpy())

    jargs = tuple(jax.device_put(to_jax(t), dev) for t in inputs)
    if wl.kind == "infer":
        return jax.jit(func), (weights, jargs)
    wf = {k: v for k, v in weights.items() if jnp.issubdtype(v.dtype, jnp.floating)}
    wo = {k: v for k, v in weights.items() if k not in wf}
    return jax.jit(jax.value_and_grad(lambda f, o, a: func({**o, **f}, a))), (wf, wo, jargs)


class TorchaxSystem:
    """torchax: the model's ATen ops mapped to JAX and jitted (jax.jit over
    torchax.extract_jax), on the same xla-cpu-pjrt plugin when JAX accepts it,
    or on JAX's GPU backend when platform == "cuda"."""

    name = "torchax"
    counts_metrics = False

    def __init__(self, use_same_plugin=True, platform="cpu"):
        self.use_same_plugin = use_same_plugin
        self.platform = platform
        self.device = None
        self.note = ""

    def _device(self):
        import jax
        if self.device is None and self.platform == "cuda":
            try:
                self.device = jax.devices("gpu")[0]
            except RuntimeError as e:
                raise Unsupported(f"JAX {jax.__version__} has no GPU backend ({e}); install "
                                  f"the matching jax[cuda12] wheel") from e
            self.note = f"JAX {jax.__version__} GPU backend ({self.device.device_kind})"
        if self.device is None:
            if self.use_same_plugin:
                try:
                    self.device, path = torchax_backend_note()
                    self.note = f"JAX loads the same plugin file {path}"
                except Exception as e:  # fall back to jaxlib's built-in CPU client
                    self.device = jax.devices("cpu")[0]
                    self.note = f"JAX could not load xla-cpu-pjrt ({e}); using jaxlib {jax.__version__} CPU"
            else:
                self.device = jax.devices("cpu")[0]
                self.note = f"jaxlib {jax.__version__} built-in CPU client"
        return self.device

    def prepare(self, wl):
        import jax
        import jax.numpy as jnp
        import numpy as np
        dev = self._device()  # register the plugin before torchax starts JAX's backends
        _import_torchax()
        model, inputs = wl.build()
        if wl.kind == "train" and getattr(wl, "loss_module", None) is None:
            raise Unsupported("no loss module")
        mod = wl.loss_module(model) if wl.kind == "train" else wl.infer_module(model)
        param_names = {n for n, p in mod.named_parameters() if p.requires_grad}
        step, args = jax_step(wl, mod, inputs, dev)

        def run():
            out = step(*args)
            jax.block_until_ready(out)
            return out

        def readback(out):
            def to_t(a):
                a = np.asarray(a.astype(jnp.float32) if a.dtype == jnp.bfloat16 else a)
                return torch.from_numpy(a.copy())
            if wl.kind == "infer":
                return _tree_to_torch(jax.tree_util.tree_map(to_t, out))
            loss, grads = out
            return {"loss": to_t(loss),
                    "grads": {k: to_t(v) for k, v in grads.items() if k in param_names}}

        return run, readback


class PjrtDeviceSystem:
    """The eager pjrt device: model.to("pjrt"), every op dispatched one by one
    through the C lowering table (no torch.compile)."""

    name = "pjrt_device"
    counts_metrics = False  # the eager runtime's launches are not timed by the counters

    def prepare(self, wl):
        model, inputs = wl.build()
        model = model.to("pjrt")
        inputs = _to_device(inputs, "pjrt")
        fn = wl.torch_callable(model)
        ctx = torch.no_grad if wl.kind == "infer" else torch.enable_grad

        def run():
            with ctx():
                out = fn(*inputs)
            torch.pjrt.synchronize()
            return out

        return run, lambda out: _tree_to_torch(out)


# Every system, in the order rows and chart bars are shown.
SYSTEM_NAMES = ["eager", "inductor", "pjrt", "pjrt_dev_compile", "torchax", "pjrt_device"]
# Systems that cannot share a process with torch.compile (see __main__.py).
CHILD_ONLY = {"torchax"}


def all_systems(names=None, device="cpu"):
    """The systems named (all by default), in SYSTEM_NAMES order. device "cuda":
    eager and Inductor on torch's CUDA device, torchax on JAX's GPU backend, and
    the pjrt systems on whatever plugin $TORCH_PJRT_PLUGIN names (main() sets
    "cuda")."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown bench device {device!r} (expected 'cpu' or 'cuda')")
    unknown = sorted(set(names or []) - set(SYSTEM_NAMES))
    if unknown:
        raise ValueError(f"unknown systems {unknown} (expected some of {SYSTEM_NAMES})")
    make = {"eager": lambda: TorchSystem("eager", None, device),
            "inductor": lambda: TorchSystem("inductor", "inductor", device),
            "pjrt": lambda: TorchSystem("pjrt", "pjrt"),
            "pjrt_dev_compile": PjrtDevCompileSystem,
            "torchax": lambda: TorchaxSystem(platform=device),
            "pjrt_device": PjrtDeviceSystem}
    return [make[n]() for n in SYSTEM_NAMES if not names or n in names]
