"""Builds the CPython extension torch_pjrt._C from the C core (src/) and the
thin binding layer (python/csrc/) -- all C, no torch headers -- and, when torch
is importable at build time, torch_pjrt._eager (python/csrc/*.cpp). A wheel or
`pip install .` also ships the C core as torch_pjrt/lib/libtpj.so with its
headers (torch_pjrt/include/tpj/) and the Python-free runner tpj-run on PATH."""
import glob
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from setuptools import Command, Extension, setup
from setuptools.command.build import build
from distutils.command.build_scripts import build_scripts  # setuptools has no own one
from setuptools.errors import CompileError

here = os.path.dirname(os.path.abspath(__file__))

# The C core's flags (Makefile REL_CFLAGS, without -g); -Werror as for _C.
C_STD = ["-std=c11", "-D_GNU_SOURCE", "-O2"]
C_WARN = ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
C_LIBS = ["dl", "m", "pthread"]

# Where build_native puts tpj-run; build_scripts copies it from here. Listed
# as a script only when its source exists (tools/tpj-run.c).
TPJ_RUN_SRC = "tools/tpj-run.c"
TPJ_RUN_BIN = "build/native/tpj-run"


def rel(pattern):
    return sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, pattern), recursive=True))


ext = Extension(
    "torch_pjrt._C",
    sources=rel("src/**/*.c") + rel("python/csrc/*.c"),
    include_dirs=["include", "src", "python/csrc"],
    extra_compile_args=C_STD + C_WARN,
    libraries=C_LIBS,
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


class build_native(Command):
    """Compiles the C core (src/**/*.c) once with $CC (default cc) into
    build/native/obj, links libtpj.so and libtpj.a from those objects, and
    tpj-run (tools/tpj-run.c against libtpj.a, so it needs only the C
    runtime). Puts libtpj.so and include/tpj/*.h into the package; in an
    editable install libtpj.so goes next to the sources instead
    (python/torch_pjrt/lib/) and the headers stay in include/."""

    description = "build libtpj.so and tpj-run with the system C compiler"
    user_options = []

    def initialize_options(self):
        self.build_lib = None
        self.editable_mode = False
        self.outputs = []

    def finalize_options(self):
        self.set_undefined_options("build", ("build_lib", "build_lib"))

    def get_source_files(self):
        return rel("src/**/*.c") + rel("src/**/*.h") + rel("src/**/*.inc") + rel("include/tpj/*.h") + (
            [TPJ_RUN_SRC] if os.path.exists(os.path.join(here, TPJ_RUN_SRC)) else [])

    def get_outputs(self):
        return list(self.outputs)

    def _run(self, cmd, what):
        """Runs one compiler command; a failure raises with its output."""
        proc = subprocess.run(cmd, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise CompileError(f"building {what} failed: {shlex.join(cmd)} exited with "
                               f"{proc.returncode}\n{proc.stdout}")

    def run(self):
        cc = shlex.split(os.environ.get("CC") or "cc")
        ar = shlex.split(os.environ.get("AR") or "ar")
        if shutil.which(cc[0]) is None:
            raise CompileError(f"building libtpj failed: no C compiler (got CC={cc[0]!r}, "
                               "expected a compiler on PATH; set CC)")
        cflags = C_STD + ["-fPIC"] + C_WARN + ["-Iinclude", "-Isrc"]
        libs = [f"-l{lib}" for lib in C_LIBS]
        out_dir = os.path.join(here, "build", "native")
        headers = rel("include/**/*.h") + rel("src/**/*.h") + rel("src/**/*.inc")
        newest_header = max((os.path.getmtime(os.path.join(here, h)) for h in headers), default=0)

        jobs, objs = [], []
        for src in rel("src/**/*.c"):
            obj = os.path.join(out_dir, "obj", os.path.splitext(src)[0] + ".o")
            objs.append(obj)
            if (not os.path.exists(obj) or os.path.getmtime(obj) < os.path.getmtime(os.path.join(here, src))
                    or os.path.getmtime(obj) < newest_header):
                os.makedirs(os.path.dirname(obj), exist_ok=True)
                jobs.append((cc + cflags + ["-c", src, "-o", obj], src))
        if jobs:
            print(f"build_native: compiling {len(jobs)} of {len(objs)} C core files with {cc[0]}")
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for fut in [pool.submit(self._run, cmd, src) for cmd, src in jobs]:
                fut.result()

        lib_so = os.path.join(out_dir, "libtpj.so")
        lib_a = os.path.join(out_dir, "libtpj.a")
        self._run(cc + ["-shared", "-Wl,-soname,libtpj.so", "-o", lib_so] + objs + libs, "libtpj.so")
        if os.path.exists(lib_a):
            os.remove(lib_a)
        self._run(ar + ["rcs", lib_a] + objs, "libtpj.a")
        if os.path.exists(os.path.join(here, TPJ_RUN_SRC)):
            self._run(cc + cflags + [TPJ_RUN_SRC, lib_a, "-o", TPJ_RUN_BIN] + libs, "tpj-run")
        else:
            print(f"build_native: {TPJ_RUN_SRC} does not exist; building without tpj-run")

        if self.editable_mode:
            self._put(lib_so, os.path.join(here, "python", "torch_pjrt", "lib", "libtpj.so"))
            return
        pkg = os.path.join(self.build_lib, "torch_pjrt")
        self._put(lib_so, os.path.join(pkg, "lib", "libtpj.so"))
        for h in rel("include/tpj/*.h"):
            self._put(os.path.join(here, h), os.path.join(pkg, "include", "tpj", os.path.basename(h)))

    def _put(self, src, dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
        self.outputs.append(dst)


class build_with_native(build):
    """build, with build_native after build_ext and before build_scripts (which
    copies tpj-run)."""
    sub_commands = [c for c in build.sub_commands if c[0] != "build_scripts"] + [
        ("build_native", None)] + [c for c in build.sub_commands if c[0] == "build_scripts"]


class build_binary_scripts(build_scripts):
    """Copies the scripts verbatim: they are native executables (tpj-run), which
    distutils would try to read as Python source to fix a shebang line."""

    def copy_scripts(self):
        self.mkpath(self.build_dir)
        outfiles = []
        for script in self.scripts:
            out = os.path.join(self.build_dir, os.path.basename(script))
            self.copy_file(script, out)
            os.chmod(out, os.stat(out).st_mode | 0o555)
            outfiles.append(out)
        return outfiles, outfiles


_dev = device_extension()
setup(
    ext_modules=[ext] + ([_dev] if _dev else []),
    scripts=[TPJ_RUN_BIN] if os.path.exists(os.path.join(here, TPJ_RUN_SRC)) else [],
    cmdclass={"build": build_with_native, "build_native": build_native,
              "build_scripts": build_binary_scripts},
)
