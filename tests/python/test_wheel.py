"""Packaging: the wheel ships libtpj.so, the public headers and a native
tpj-run on PATH that needs neither Python nor libtorch; the cuda and tpu
extras exist, and a missing named plugin says which package to install."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest
import torch

import torch_pjrt
from torch_pjrt import _C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HINTS = {"cpu": "pip install xla-cpu-pjrt",
         "cuda": "pip install 'torch-pjrt[cuda]'",
         "tpu": "pip install 'torch-pjrt[tpu]'"}


# ------------------------------------------------------------------ fast ---

def test_pyproject_has_the_plugin_extras():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    extras = project["optional-dependencies"]
    assert extras["cuda"] == ["jax-cuda13-pjrt"]
    assert extras["tpu"] == ["libtpu"]
    assert "xla-cpu-pjrt" in project["dependencies"]


@pytest.mark.parametrize("spec", ["cpu", "cuda", "tpu"])
def test_missing_plugin_names_its_package(spec, monkeypatch):
    monkeypatch.delenv("TPU_LIBRARY_PATH", raising=False)
    with pytest.raises(_C.Error) as err:
        _C.plugin_resolve(spec, ["/nonexistent"])
    assert err.value.code == "NOT_FOUND"
    assert str(err.value).startswith(f'plugin "{spec}" not found (install it with: {HINTS[spec]}); '
                                     "tried: /nonexistent/"), str(err.value)


def test_missing_path_has_no_install_hint():
    with pytest.raises(_C.Error) as err:
        _C.plugin_resolve("/nonexistent/libnothing.so", [])
    assert "install it with" not in str(err.value)


@pytest.mark.parametrize("spec", ["cuda", "tpu"])
def test_env_plugin_reaches_the_resolver(spec, monkeypatch):
    """TORCH_PJRT_PLUGIN=cuda|tpu from Python: the default client's plugin_path
    goes through the same resolver and gets the same message."""
    monkeypatch.setenv("TORCH_PJRT_PLUGIN", spec)
    monkeypatch.delenv("TPU_LIBRARY_PATH", raising=False)
    try:
        found = torch_pjrt.plugin_path()
    except _C.Error as e:
        assert e.code == "NOT_FOUND"
        assert f'plugin "{spec}" not found (install it with: {HINTS[spec]})' in str(e)
    else:
        pytest.skip(f"the {spec} plugin is installed here ({found})")
    with pytest.raises(_C.Error, match=r"install it with: pip install 'torch-pjrt\[%s\]'" % spec):
        _C.plugin_resolve(None, ["/nonexistent"])  # None: the resolver reads the variable itself


# ------------------------------------------------------------------ full ---

def _copy_tree(dst):
    """The source tree without build outputs, the venv or git: a fresh build
    dir, so nothing stale from an earlier build lands in the wheel."""
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "__pycache__", ".pytest_cache", "*.egg-info", "*.so", "*.o",
        "*.a", ".whl", ".gl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Builds the wheel from a copy of the tree and installs it with --no-deps
    into a clean venv (no system site-packages, no torch). Returns (wheel path,
    venv dir)."""
    if not os.path.exists(os.path.join(ROOT, "tools", "tpj-run.c")):
        pytest.skip("tools/tpj-run.c does not exist yet: the wheel would have no tpj-run")
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, venv = tmp / "src", tmp / "dist", tmp / "venv"
    _copy_tree(src)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                            "--no-index", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    wheels = sorted(dist.glob("torch_pjrt-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist} (got {wheels})"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    inst = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                           "--no-index", str(wheels[0])], capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, f"pip install of the wheel failed:\n{inst.stdout}\n{inst.stderr}"
    print(f"wheel {wheels[0].name}: {wheels[0].stat().st_size / 2**20:.1f} MiB")
    return wheels[0], venv


def _site(venv):
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.mark.full
def test_wheel_contents(installed):
    wheel, venv = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "torch_pjrt/lib/libtpj.so" in names
    for h in sorted(os.listdir(os.path.join(ROOT, "include", "tpj"))):
        assert f"torch_pjrt/include/tpj/{h}" in names
    assert any(n.endswith(".data/scripts/tpj-run") for n in names)
    assert not any(n.startswith("csrc/") for n in names), "the extensions' sources are not a package"
    site = _site(venv)
    assert (site / "torch_pjrt" / "lib" / "libtpj.so").is_file()
    assert (site / "torch_pjrt" / "include" / "tpj" / "pjrt.h").is_file()


@pytest.mark.full
def test_tpj_run_is_native_and_python_free(installed):
    _, venv = installed
    exe = venv / "bin" / "tpj-run"
    assert exe.is_file() and os.access(exe, os.X_OK)
    with open(exe, "rb") as f:
        assert f.read(4) == b"\x7fELF", "tpj-run should be a native executable, not a script"
    run = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "usage: tpj-run" in run.stdout + run.stderr
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, timeout=60)
    assert ldd.returncode == 0, ldd.stderr
    for lib in ("libpython", "libtorch", "libc10", "libtpj"):
        assert lib not in ldd.stdout, f"tpj-run links {lib}:\n{ldd.stdout}"


@pytest.mark.full
def test_tpj_run_runs_an_artifact(installed, tmp_path):
    """An MLP saved with torch_pjrt.export.save, run by the installed tpj-run on
    the CPU plugin of the main venv, matches eager PyTorch."""
    if not hasattr(torch_pjrt.export, "save"):
        pytest.skip("torch_pjrt.export.save does not exist yet: no artifact to run")
    _, venv = installed
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        want = model(x).numpy()
    path = tmp_path / "mlp.tpj"
    torch_pjrt.export.save(torch.export.export(model, (x,)), str(path))
    np.save(tmp_path / "x.npy", x.numpy())
    env = dict(os.environ, TORCH_PJRT_PLUGIN_PATH=sysconfig.get_paths()["purelib"],
               TORCH_PJRT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("TORCH_PJRT_PLUGIN", None)
    exe = str(venv / "bin" / "tpj-run")
    run = subprocess.run([exe, str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, f"tpj-run failed:\n{run.stdout}\n{run.stderr}"
    got = np.load(tmp_path / "out" / "output_0.npy")
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # A missing named plugin: the same install hint as from Python.
    env["TORCH_PJRT_PLUGIN_PATH"] = str(tmp_path / "nowhere")
    run = subprocess.run([exe, str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "out2"),
                          "--plugin", "cuda"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1
    assert HINTS["cuda"] in run.stderr, run.stderr
