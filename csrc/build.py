"""Compiles nas_tf's C++/CUDA libraries: one mechanism for ``pip install`` and for first use.

Two libraries share the framework-free kernels of ``csrc/kernels``:

* the TensorFlow op library (``_nas_tf_ops``: ``csrc/tf`` + the kernels),
  compiled with the flags of ``tf.sysconfig`` (C++17, the C++ ABI flag) and
  linked to ``libtensorflow_framework``: tied to one TensorFlow version;
* the pybind11 module (``nas_tf._kernels``: ``csrc/python`` + the kernels), no
  TensorFlow: tied to one Python.

This file imports nothing but the standard library. ``setup.py`` calls it
(``pip install``, ``pip wheel``); at run time ``nas_tf/_native.py`` loads it
from the source tree or from the copy a wheel ships (``nas_tf/_csrc``) and
builds a library into the user's cache when no installed one fits the
TensorFlow actually imported.

Every library carries its build record (TensorFlow version, hash of these
sources, CUDA or not) as a string in its data (:func:`read_build_info` finds
it without loading the library), so a stale or foreign build is never
loaded.

CUDA kernels (``csrc/kernels/nas_tf_kernels.cu``) are added when
``NAS_TF_CUDA=1``, or when it is unset and both ``nvcc`` and a CUDA build of
TensorFlow are present (``NAS_TF_CUDA=0`` turns them off). nvcc compiles them
for ``NAS_TF_CUDA_ARCHS`` (default 75,80,86,89,90 plus PTX of the last); the
static CUDA runtime is linked before TensorFlow and hidden
(``-Wl,--exclude-libs,ALL``), so one library loads in both the CPU and the
CUDA wheels of TensorFlow. ``CXX`` names the C++ compiler (default: ``c++``,
``g++`` or ``clang++`` on the PATH).

Command line (CI): ``python csrc/build.py nvcc-check`` compiles the CUDA
sources with nvcc (compile only, every architecture) and fails on an error.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

KERNEL_SOURCES = [
    "kernels/common.cc",
    "kernels/padded_concat_cpu.cc",
    "kernels/gather_matmul_cpu.cc",
    "kernels/gather_matmul_cpu_avx512.cc",
    "kernels/gather_matmul_cpu_avx2.cc",
]
CUDA_SOURCES = ["kernels/nas_tf_kernels.cu"]
TF_SOURCES = ["tf/nas_tf_ops.cc", "tf/nas_tf_kernels_tf.cc"]
PYBIND_SOURCES = ["python/kernels_module.cc"]
CXXFLAGS = ["-std=c++17", "-O3", "-g0", "-fPIC", "-fvisibility=hidden", "-DNDEBUG", "-Wno-deprecated-declarations"]
DEFAULT_CUDA_ARCHS = "75,80,86,89,90"
INFO_MARKER = b"NAS_TF_BUILD_INFO="
_HASHED_SUFFIXES = (".cc", ".h", ".cu", ".py")


class BuildError(RuntimeError):
    """A compiler or linker failed; the message ends with its last output lines."""


# ----------------------------------------------------------------- what to build


def source_hash(csrc: str = HERE) -> str:
    """SHA-256 (hex, 16 digits) of every C++/CUDA source and of this file, by relative path."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(csrc):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(_HASHED_SUFFIXES) or name == "__init__.py":
                continue
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, csrc).replace(os.sep, "/").encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read() + b"\0")
    return digest.hexdigest()[:16]


def find_compiler() -> list[str] | None:
    """The C++ compiler command (``CXX`` or c++ / g++ / clang++ on the PATH), or None."""
    forced = os.environ.get("CXX")
    if forced:
        cmd = shlex.split(forced)
        return cmd if cmd and shutil.which(cmd[0]) else None
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


_TF_QUERY = (
    "import json, tensorflow as tf;"
    "print(json.dumps({'cflags': tf.sysconfig.get_compile_flags(), 'lflags': tf.sysconfig.get_link_flags(),"
    "'version': tf.__version__, 'cuda': bool(tf.test.is_built_with_cuda())}))"
)


def tensorflow_info_from(tf) -> dict:
    """Compile/link flags, version and CUDA build of an imported ``tensorflow`` module."""
    return {
        "cflags": list(tf.sysconfig.get_compile_flags()),
        "lflags": list(tf.sysconfig.get_link_flags()),
        "version": tf.__version__,
        "cuda": bool(tf.test.is_built_with_cuda()),
    }


def target_environment() -> dict:
    """``os.environ`` without the overrides of pip's build isolation.

    Under build isolation pip runs the build with the target environment's
    interpreter but points ``PYTHONPATH`` at a temporary environment (and sets
    ``PYTHONNOUSERSITE``); without them the same interpreter sees the
    packages of the environment being installed into.
    """
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME"):
        env.pop(key, None)
    return env


def _run_python(code: str, env: dict, timeout: float = 300) -> str | None:
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.strip().splitlines()[-1]


def tensorflow_info() -> dict | None:
    """``tensorflow_info_from`` the TensorFlow this interpreter sees, or else the target environment's (None: none)."""
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    for env in (dict(os.environ, **quiet), dict(target_environment(), **quiet)):
        line = _run_python(_TF_QUERY, env)
        if line:
            return json.loads(line)
    return None


def installed_distribution(names) -> str | None:
    """The first of ``names`` installed here or in the target environment (pip's build isolation hides it)."""
    import importlib.metadata

    for name in names:
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    code = (
        "import importlib.metadata as m\n"
        f"for n in {list(names)!r}:\n"
        "    try:\n"
        "        m.version(n); print(n); break\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
    )
    return _run_python(code, target_environment(), timeout=60)


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


def cuda_wanted(tf: dict | None, log=print) -> dict | None:
    """The CUDA toolchain to build with (``NAS_TF_CUDA``: 1 on, 0 off, unset: nvcc and a CUDA TensorFlow)."""
    want = os.environ.get("NAS_TF_CUDA", "")
    if want == "0":
        return None
    cuda = find_cuda()
    if want == "1":
        if cuda is None:
            log("nas_tf build: NAS_TF_CUDA=1 but nvcc or libcudart_static.a was not found: CPU kernels only")
        return cuda
    if cuda is not None and tf is not None and tf["cuda"]:
        return cuda
    return None


def cuda_archs() -> list[str]:
    archs = [a.strip() for a in os.environ.get("NAS_TF_CUDA_ARCHS", DEFAULT_CUDA_ARCHS).split(",") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        raise BuildError("NAS_TF_CUDA_ARCHS must be a comma-separated list of compute capabilities like 80,90; "
                         f"got {os.environ.get('NAS_TF_CUDA_ARCHS')!r}")
    return archs


# ---------------------------------------------------------------- compiling


def _c_string(text: str) -> str:
    """``text`` as a C string literal (JSON escapes are valid C escapes)."""
    return json.dumps(text)


def _abi_flags(tf: dict | None) -> list[str]:
    return [f for f in (tf or {}).get("cflags", []) if f.startswith("-D_GLIBCXX_USE_CXX11_ABI")]


def _check_call(cmd: list[str], what: str) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {out.returncode}): {shlex.join(cmd)}\n{tail}")


class _Build:
    """One build: objects in a temporary folder, the library moved into place at the end."""

    def __init__(self, csrc: str, tmp: str, cxx: list[str], jobs: int | None):
        self.csrc, self.tmp, self.cxx = csrc, tmp, cxx
        self.jobs = max(1, jobs or os.cpu_count() or 1)

    def compile(self, sources, flags) -> list[str]:
        def one(src):
            obj = os.path.join(self.tmp, src.replace("/", "_") + ".o")
            _check_call([*self.cxx, *CXXFLAGS, *flags, "-c", os.path.join(self.csrc, src), "-o", obj], f"compiling {src}")
            return obj

        with concurrent.futures.ThreadPoolExecutor(min(self.jobs, len(sources))) as pool:
            return list(pool.map(one, sources))

    def nvcc(self, cuda: dict, tf: dict | None, archs: list[str]) -> list[str]:
        objects = []
        for src in CUDA_SOURCES:
            obj = os.path.join(self.tmp, src.replace("/", "_") + ".o")
            _check_call(nvcc_command(cuda["nvcc"], os.path.join(self.csrc, src), obj, archs, _abi_flags(tf)), f"nvcc {src}")
            objects.append(obj)
        return objects

    def link(self, objects, out_path, pre=(), post=()) -> None:
        tmp_out = os.path.join(self.tmp, os.path.basename(out_path))
        extra = ["-undefined", "dynamic_lookup"] if sys.platform == "darwin" else []
        _check_call([*self.cxx, "-shared", *objects, *pre, "-o", tmp_out, *extra, *post], f"linking {os.path.basename(out_path)}")
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        # Atomic: a process loading the library never sees a half-written file.
        staged = f"{out_path}.{os.getpid()}.tmp"
        shutil.copyfile(tmp_out, staged)
        os.replace(staged, out_path)


def nvcc_command(nvcc: str, src: str, obj: str, archs: list[str], abi_flags=()) -> list[str]:
    gencode = []
    for a in archs:
        gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    return [nvcc, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-DNAS_TF_WITH_CUDA=1",
            *[f"-Xcompiler={f}" for f in abi_flags], *gencode, "-c", src, "-o", obj]


def _cuda_link(cuda):
    if not cuda:
        return [], []
    # Static CUDA runtime before TensorFlow's library, hidden: loads in the CPU and CUDA wheels.
    return [cuda["cudart_static"]], ["-Wl,--exclude-libs,ALL", "-ldl", "-lrt", "-lpthread"]


def build_op_library(out_path: str, tf: dict, *, cuda: dict | None = None, csrc: str = HERE,
                     cxx: list[str] | None = None, jobs: int | None = None) -> dict:
    """Compiles and links the TensorFlow op library to ``out_path`` (atomically).

    Args:
        out_path: the library file to write.
        tf: :func:`tensorflow_info` of the TensorFlow to build against.
        cuda: :func:`find_cuda` to add the CUDA kernels, or None.
        csrc: the source folder.
        cxx: the compiler command (default :func:`find_compiler`).
        jobs: parallel compiler processes (default: the CPU count).

    Returns:
        The build record written into the library.

    Raises:
        BuildError: no compiler, or a compile or link step failed.
    """
    cxx = cxx or find_compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (install g++ or clang++, or set CXX)")
    info = {"library": "op", "tensorflow": tf["version"], "source_hash": source_hash(csrc), "cuda": bool(cuda)}
    macros = ["-DNAS_TF_WITH_CUDA=1"] if cuda else []
    with tempfile.TemporaryDirectory(prefix="nas_tf_build_") as tmp:
        b = _Build(csrc, tmp, cxx, jobs)
        objects = b.compile(KERNEL_SOURCES, _abi_flags(tf) + macros)
        if cuda:
            objects += b.nvcc(cuda, tf, cuda_archs())
        tf_flags = [f for f in tf["cflags"] if not f.startswith(("-std", "--std"))]
        tf_flags += ["-Wno-interference-size", "-w", f"-DNAS_TF_BUILD_INFO={_c_string(json.dumps(info))}"]
        if cuda:
            tf_flags.append("-DGOOGLE_CUDA=1")
        objects += b.compile(TF_SOURCES, tf_flags + macros)
        pre, post = _cuda_link(cuda)
        b.link(objects, out_path, pre, post + list(tf["lflags"]))
    return info


def build_pybind_module(out_path: str, *, pybind_include: str, cuda: dict | None = None, tf: dict | None = None,
                        csrc: str = HERE, cxx: list[str] | None = None, jobs: int | None = None) -> dict:
    """Compiles and links the pybind11 module ``nas_tf._kernels`` to ``out_path`` (atomically).

    Args:
        out_path: the extension file (its name ends with this Python's extension suffix).
        pybind_include: ``pybind11.get_include()``.
        cuda: :func:`find_cuda` to add the CUDA kernels, or None.
        tf: :func:`tensorflow_info` (only its C++ ABI flag is used), or None.
        csrc, cxx, jobs: as :func:`build_op_library`.

    Returns:
        The build record written into the module.
    """
    cxx = cxx or find_compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (install g++ or clang++, or set CXX)")
    info = {"library": "pybind", "python": sysconfig.get_config_var("EXT_SUFFIX") or "", "source_hash": source_hash(csrc),
            "cuda": bool(cuda)}
    macros = ["-DNAS_TF_WITH_CUDA=1"] if cuda else []
    with tempfile.TemporaryDirectory(prefix="nas_tf_build_") as tmp:
        b = _Build(csrc, tmp, cxx, jobs)
        objects = b.compile(KERNEL_SOURCES, _abi_flags(tf) + macros)
        if cuda:
            objects += b.nvcc(cuda, tf, cuda_archs())
        include = [f"-I{pybind_include}", f"-I{sysconfig.get_paths()['include']}"]
        flags = _abi_flags(tf) + macros + include + [f"-DNAS_TF_BUILD_INFO={_c_string(json.dumps(info))}"]
        objects += b.compile(PYBIND_SOURCES, flags)
        pre, post = _cuda_link(cuda)
        b.link(objects, out_path, pre, post)
    return info


def read_build_info(path: str) -> dict | None:
    """The build record inside a library built here (None: none, e.g. a Bazel build)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    at = data.find(INFO_MARKER)
    if at < 0:
        return None
    end = data.find(b"\0", at)
    try:
        return json.loads(data[at + len(INFO_MARKER) : end].decode())
    except (ValueError, UnicodeDecodeError):
        return None


# ------------------------------------------------------------------ CI check


def nvcc_check(archs: list[str] | None = None) -> int:
    """Compiles every CUDA source with nvcc (compile only); returns a process exit code."""
    cuda_nvcc = os.environ.get("NVCC") or shutil.which("nvcc")
    if cuda_nvcc is None:
        print("nvcc-check: nvcc not found", file=sys.stderr)
        return 2
    archs = archs or cuda_archs()
    with tempfile.TemporaryDirectory(prefix="nas_tf_nvcc_") as tmp:
        for src in CUDA_SOURCES:
            cmd = nvcc_command(cuda_nvcc, os.path.join(HERE, src), os.path.join(tmp, "out.o"), archs)
            print(shlex.join(cmd), flush=True)
            out = subprocess.run(cmd)
            if out.returncode != 0:
                print(f"nvcc-check: {src} failed (exit {out.returncode})", file=sys.stderr)
                return out.returncode
    print(f"nvcc-check: {len(CUDA_SOURCES)} CUDA source(s) compiled for sm_{', sm_'.join(archs)}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "nvcc-check":
        return nvcc_check([a for a in argv[2].split(",") if a] if len(argv) > 2 else None)
    print("usage: python csrc/build.py nvcc-check [ARCHS]   (e.g. 80,90)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
