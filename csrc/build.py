"""setuptools build of nas_tf's C++/CUDA extensions (used by setup.py).

Two extensions share the framework-free kernels of ``csrc/kernels``:

* ``nas_tf.ops._nas_tf_ops``: the TensorFlow op library (``csrc/tf``), compiled
  with the flags of ``tf.sysconfig`` (C++17, the C++ ABI flag) and linked to
  ``libtensorflow_framework``; skipped when TensorFlow cannot be imported (e.g.
  pip's build isolation: install with ``--no-build-isolation``).
* ``nas_tf._kernels``: the pybind11 module (``csrc/python``), no TensorFlow.

CUDA kernels (``csrc/kernels/nas_tf_kernels.cu``) are added when
``NAS_TF_CUDA=1``, or when it is unset and both ``nvcc`` and a CUDA build of
TensorFlow are present (``NAS_TF_CUDA=0`` turns them off). They are compiled by
nvcc for ``NAS_TF_CUDA_ARCHS`` (default 75,80,86,89,90 plus PTX of the last) and
linked with the static CUDA runtime placed before TensorFlow and hidden
(``-Wl,--exclude-libs,ALL``), so one library loads in both the CPU and the CUDA
wheels of TensorFlow. ``NAS_TF_BUILD_OPS=0`` skips both extensions.

A failed build never fails the installation: it prints a warning and nas_tf
uses its pure-TensorFlow fallbacks.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

KERNEL_SOURCES = [
    "csrc/kernels/common.cc",
    "csrc/kernels/padded_concat_cpu.cc",
    "csrc/kernels/gather_matmul_cpu.cc",
    "csrc/kernels/gather_matmul_cpu_avx512.cc",
    "csrc/kernels/gather_matmul_cpu_avx2.cc",
]
CUDA_SOURCES = ["csrc/kernels/nas_tf_kernels.cu"]
TF_SOURCES = ["csrc/tf/nas_tf_ops.cc", "csrc/tf/nas_tf_kernels_tf.cc"]
PYBIND_SOURCES = ["csrc/python/kernels_module.cc"]
CXXFLAGS = ["-std=c++17", "-O3", "-g0", "-fPIC", "-fvisibility=hidden", "-Wno-deprecated-declarations"]


class NasTfExtension(Extension):
    """An extension whose sources are compiled by :class:`BuildExt`."""

    def __init__(self, name: str, kind: str):
        super().__init__(name, sources=[], optional=True)
        self.kind = kind  # "tf_op" or "pybind"


def extensions() -> list:
    if os.environ.get("NAS_TF_BUILD_OPS", "1") == "0":
        return []
    return [NasTfExtension("nas_tf.ops._nas_tf_ops", "tf_op"), NasTfExtension("nas_tf._kernels", "pybind")]


def _warn(msg: str) -> None:
    print(f"WARNING nas_tf build: {msg}", file=sys.stderr, flush=True)


def tensorflow_flags() -> dict | None:
    """tf.sysconfig flags of the TensorFlow in this environment (None if absent)."""
    code = (
        "import json, tensorflow as tf;"
        "print(json.dumps({'cflags': tf.sysconfig.get_compile_flags(), 'lflags': tf.sysconfig.get_link_flags(),"
        "'version': tf.__version__, 'cuda': bool(tf.test.is_built_with_cuda())}))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        _warn(f"could not run Python to query TensorFlow: {e}")
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def find_cuda() -> dict | None:
    """nvcc and the static CUDA runtime, or None."""
    nvcc = os.environ.get("NVCC") or shutil.which("nvcc")
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    if nvcc is None:
        for home in filter(None, homes):
            if os.path.exists(os.path.join(home, "bin", "nvcc")):
                nvcc = os.path.join(home, "bin", "nvcc")
                break
    if nvcc is None:
        return None
    homes.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in filter(None, homes):
        for lib in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib")):
            cudart = os.path.join(home, lib, "libcudart_static.a")
            if os.path.exists(cudart):
                return {"nvcc": nvcc, "cudart_static": cudart}
    return None


class BuildExt(build_ext):
    """Compiles the shared kernel objects once and links both extensions."""

    def run(self):
        self._tf = None
        self._tf_checked = False
        self._objects = None
        self._cuda = None
        super().run()

    # -- configuration -------------------------------------------------------------
    def _tensorflow(self):
        if not self._tf_checked:
            self._tf_checked = True
            self._tf = tensorflow_flags()
        return self._tf

    def _want_cuda(self) -> dict | None:
        want = os.environ.get("NAS_TF_CUDA", "")
        if want == "0":
            return None
        cuda = find_cuda()
        if want == "1":
            if cuda is None:
                _warn("NAS_TF_CUDA=1 but nvcc or libcudart_static.a was not found: building the CPU kernels only")
            return cuda
        tf = self._tensorflow()
        if cuda is not None and tf is not None and tf["cuda"]:
            return cuda
        return None

    def _abi_flags(self) -> list:
        tf = self._tensorflow()
        if tf is None:
            return []
        return [f for f in tf["cflags"] if f.startswith("-D_GLIBCXX_USE_CXX11_ABI")]

    def _compile(self, sources, extra, include_dirs=(), macros=()):
        """Compiles sources in parallel; returns the object files."""
        jobs = max(1, min(len(sources), os.cpu_count() or 1))

        def one(src):
            return self.compiler.compile(
                [src],
                output_dir=self.build_temp,
                macros=list(macros),
                include_dirs=list(include_dirs),
                extra_postargs=CXXFLAGS + list(extra),
            )[0]

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(one, [os.path.relpath(os.path.join(ROOT, s)) if not os.path.isabs(s) else s for s in sources]))

    def _kernel_objects(self):
        if self._objects is None:
            self._cuda = self._want_cuda()
            macros = [("NAS_TF_WITH_CUDA", "1")] if self._cuda else []
            objects = self._compile(KERNEL_SOURCES, self._abi_flags(), macros=macros)
            if self._cuda:
                objects += self._nvcc(CUDA_SOURCES)
            self._objects = objects
        return self._objects

    def _nvcc(self, sources):
        archs = [a.strip() for a in os.environ.get("NAS_TF_CUDA_ARCHS", "75,80,86,89,90").split(",") if a.strip()]
        gencode = []
        for a in archs:
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
        objects = []
        for src in sources:
            obj = os.path.join(self.build_temp, src + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            cmd = [self._cuda["nvcc"], "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-DNAS_TF_WITH_CUDA=1",
                   *[f"-Xcompiler={f}" for f in self._abi_flags()], *gencode, "-c", os.path.join(ROOT, src), "-o", obj]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
            objects.append(obj)
        return objects

    # -- extensions ------------------------------------------------------------------
    def build_extension(self, ext):
        if not isinstance(ext, NasTfExtension):
            return super().build_extension(ext)
        try:
            if ext.kind == "tf_op":
                self._build_tf_op(ext)
            else:
                self._build_pybind(ext)
        except Exception as e:  # a failed build leaves the pure-TF fallback
            _warn(f"could not build {ext.name} ({type(e).__name__}: {e}); nas_tf uses its pure-TensorFlow fallback")

    def _link(self, ext, objects, extra_pre=(), extra_post=()):
        path = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.compiler.link_shared_object(
            list(objects) + list(extra_pre), path, extra_postargs=list(extra_post), target_lang="c++"
        )
        print(f"nas_tf build: wrote {path}", flush=True)

    def _cuda_link(self):
        if not self._cuda:
            return [], []
        # Static CUDA runtime before TensorFlow's library, hidden: loads in the CPU and CUDA wheels.
        return [self._cuda["cudart_static"]], ["-Wl,--exclude-libs,ALL", "-ldl", "-lrt", "-lpthread"]

    def _build_tf_op(self, ext):
        tf = self._tensorflow()
        if tf is None:
            _warn(
                "TensorFlow cannot be imported by the build (with pip's build isolation use "
                "--no-build-isolation): the op library is not built; nas_tf uses its pure-TensorFlow fallback"
            )
            return
        kernels = self._kernel_objects()
        macros = [("NAS_TF_WITH_CUDA", "1"), ("GOOGLE_CUDA", "1")] if self._cuda else []
        extra = [f for f in tf["cflags"] if not f.startswith("--std") and not f.startswith("-std")]
        extra += ["-Wno-interference-size", "-w"]  # TensorFlow's headers are noisy under -Wall
        objects = self._compile(TF_SOURCES, extra, macros=macros)
        pre, post = self._cuda_link()
        self._link(ext, objects + kernels, extra_pre=pre, extra_post=post + tf["lflags"])

    def _build_pybind(self, ext):
        try:
            import pybind11
        except ImportError:
            _warn("pybind11 is not installed in the build environment: nas_tf._kernels is not built")
            return
        kernels = self._kernel_objects()
        tf = self._tensorflow()
        macros = [("NAS_TF_BUILT_FOR_TF", json.dumps(tf["version"] if tf else ""))]
        if self._cuda:
            macros.append(("NAS_TF_WITH_CUDA", "1"))
        include = [pybind11.get_include(), sysconfig.get_paths()["include"]]
        objects = self._compile(PYBIND_SOURCES, self._abi_flags(), include_dirs=include, macros=macros)
        pre, post = self._cuda_link()
        self._link(ext, objects + kernels, extra_pre=pre, extra_post=post)
