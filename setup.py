"""Builds the CPython extension torch_pjrt._C from the C core (src/) and the
thin binding layer (python/csrc/). All C; no torch headers are needed."""
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

setup(ext_modules=[ext])
