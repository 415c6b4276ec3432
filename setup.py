"""Builds the CPython extension torch_pjrt._C from the C core (src/) and the
thin binding layer (python/csrc/) -- all C, no torch headers -- and, when torch
is importable at build time, torch_pjrt._eager (python/csrc/*.cpp)."""
import glob
import os

from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))


def rel(pattern):
    return sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, pattern), recursive=True))


ext = Extension(
    "torch_pjrt._C",
    sources=rel("src/**/*.c") + rel("python/csrc/*.c"),
    include_dirs=["include", "src", "python/csrc"],
    extra_compile_args=["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    libraries=["dl", "m", "pthread"],
)


def device_extension():
    """torch_pjrt._eager: the eager pjrt device, the C++ files python/csrc/*.cpp
    against the installed torch, with the C core's -Wall -Wextra -Werror. Its C
    core symbols (tpj_*) resolve at load time from torch_pjrt._C, which
    python/torch_pjrt/device.py loads RTLD_GLOBAL first, so both modules share
    one client, compile cache and metrics."""
    try:
        import torch
        from torch.utils.cpp_extension import CppExtension
    except ImportError:  # torch is not installed: build the C extension only
        return None
    dev = CppExtension(
        "torch_pjrt._eager",
        sources=rel("python/csrc/*.cpp"),
        include_dirs=[os.path.join(here, "include"), os.path.join(here, "src")],
        # The C core's warning flags (Makefile WARN). C++20: torch's headers
        # use C++20 features (c10/core/AutogradState.h bit-field initializers)
        # and warn under C++17, which -Werror would turn into a failed build.
        extra_compile_args=["-std=c++20", "-O2", "-Wall", "-Wextra", "-Werror",
                            "-Wno-unused-parameter",
                            f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}"],
    )
    return dev


_dev = device_extension()
setup(ext_modules=[ext] + ([_dev] if _dev else []))
