"""Finds nas_tf's compiled libraries, or builds them on first use into the user's cache.

``pip install`` builds the TensorFlow op library only when the build can see
a TensorFlow (pip's build isolation and ``pip wheel`` usually cannot), and a
TensorFlow upgrade makes an installed op library unusable (the C++ ABI of
TensorFlow changes between versions). So, on first use:

1. an installed library (next to the package) is used when its build record
   names the TensorFlow actually imported and the sources at hand;
2. else the library cached for this TensorFlow version and source hash;
3. else it is built, against the imported TensorFlow's ``tf.sysconfig``
   flags, into the cache: ``$NAS_TF_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/nas_tf``, else ``~/.cache/nas_tf``. A file lock makes
   parallel processes (child workers) build it once; the others wait for it.
   One line says what is built, and one how long it took.

``NAS_TF_BUILD_ON_USE=0`` turns step 3 off. A build that fails is recorded
(``FAILED`` in its cache folder: delete it to retry) so that every later
process falls back at once instead of failing the same build again.

The pybind11 module ``nas_tf._kernels`` follows the same steps (keyed by the
Python extension suffix instead of TensorFlow); it has the CUDA kernels when
``NAS_TF_CUDA=1`` (then a module without them does not fit). The build mechanism is
``csrc/build.py`` -- the one ``setup.py`` uses -- read from the source tree
or from the copy a wheel installs as ``nas_tf/_csrc``. Imports no
TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
import threading

from nas_tf.utils.progress import timed

ENV_CACHE_DIR = "NAS_TF_CACHE_DIR"
ENV_BUILD_ON_USE = "NAS_TF_BUILD_ON_USE"
OP_STEM = "_nas_tf_ops"
KERNELS_MODULE = "nas_tf._kernels"

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_builder: dict = {}


class NativeUnavailable(RuntimeError):
    """No usable compiled library; the message says what is missing."""


# ------------------------------------------------------------------ sources


def source_dir() -> str | None:
    """The C++ sources: ``nas_tf/_csrc`` (a wheel) or ``csrc/`` beside the package (a checkout)."""
    for folder in (os.path.join(_PACKAGE, "_csrc"), os.path.join(os.path.dirname(_PACKAGE), "csrc")):
        if all(os.path.exists(os.path.join(folder, p)) for p in ("build.py", "kernels", "tf", "python")):
            return folder
    return None


def builder():
    """``csrc/build.py`` as a module (raises :class:`NativeUnavailable` when the sources are missing)."""
    with _lock:
        if "module" not in _builder:
            folder = source_dir()
            if folder is None:
                raise NativeUnavailable("the C++ sources of nas_tf are not installed (nas_tf/_csrc is missing)")
            spec = importlib.util.spec_from_file_location("nas_tf._csrc_build", os.path.join(folder, "build.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _builder["module"] = module
            _builder["hash"] = module.source_hash(folder)
        return _builder["module"]


def source_hash() -> str:
    builder()
    return _builder["hash"]


def cache_root() -> str:
    """Where libraries built on first use live (``$NAS_TF_CACHE_DIR`` / XDG cache / ``~/.cache``)."""
    forced = os.environ.get(ENV_CACHE_DIR)
    if forced:
        return os.path.abspath(os.path.expanduser(forced))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nas_tf")


def build_on_use() -> bool:
    return os.environ.get(ENV_BUILD_ON_USE, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def file_lock(path: str):
    """An exclusive lock on ``path`` across processes (``fcntl.flock``; no lock where it is missing)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _key(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def _fits(path: str, expect: dict) -> str | None:
    """Why the installed library at ``path`` does not fit (None: it fits)."""
    info = builder().read_build_info(path)
    if not info:
        return f"{path} carries no build record"
    for field, want in expect.items():
        if info.get(field) != want:
            return f"{path} was built for {field} {info.get(field)!r}, not {want!r}"
    return None


def _cached_build(folder: str, filename: str, what: str, build) -> str:
    """The library ``folder/filename``: built by ``build(path)`` under a file lock unless present."""
    path = os.path.join(folder, filename)
    failed = os.path.join(folder, "FAILED")
    if os.path.exists(path):
        return path
    if os.path.exists(failed):
        with open(failed, encoding="utf-8") as f:
            raise NativeUnavailable(f"building {what} failed before ({failed}; delete it to retry): {f.read().strip()}")
    if not build_on_use():
        raise NativeUnavailable(f"{what} is not built and {ENV_BUILD_ON_USE}=0")
    b = builder()
    if b.find_compiler() is None:
        raise NativeUnavailable(f"{what} cannot be built: no C++ compiler found (install g++ or clang++, or set CXX)")
    try:
        with file_lock(folder + ".lock"):
            if os.path.exists(path):  # another process built it while this one waited
                return path
            os.makedirs(folder, exist_ok=True)
            try:
                with timed(f"building {what} into {folder} (once)"):
                    build(path)
            except b.BuildError as e:
                with open(failed, "w", encoding="utf-8") as f:
                    f.write(str(e))
                raise NativeUnavailable(f"building {what} failed: {e}") from None
    except OSError as e:
        raise NativeUnavailable(f"cannot write the build cache ({e}); set {ENV_CACHE_DIR} to a writable folder") from None
    return path


# -------------------------------------------------------------- op library


def installed_op_libraries() -> list[str]:
    """Op libraries next to ``nas_tf.ops`` (built by ``pip install``)."""
    ops = os.path.join(_PACKAGE, "ops")
    found = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(ops, OP_STEM + suffix)
        if os.path.exists(path):
            found.append(path)
    return found


def op_library(tf, build: bool = True) -> str:
    """The op library that fits the imported TensorFlow module ``tf`` (built into the cache if needed).

    Args:
        tf: the imported ``tensorflow`` module.
        build: build it when neither an installed nor a cached one fits.

    Raises:
        NativeUnavailable: none fits and it cannot (or may not) be built; the
            message says why (no compiler, no sources, the build failed, ...).
    """
    b = builder()
    expect = {"tensorflow": tf.__version__, "source_hash": source_hash()}
    for path in installed_op_libraries():
        if _fits(path, expect) is None:
            return path
    info = b.tensorflow_info_from(tf)
    cuda = b.cuda_wanted(info, log=lambda msg: print(msg, file=sys.stderr))
    key = _key({**expect, "cflags": info["cflags"], "lflags": info["lflags"], "cuda": bool(cuda)})
    folder = os.path.join(cache_root(), f"ops-tf{tf.__version__}-{source_hash()}-{key}")
    if not build and not os.path.exists(os.path.join(folder, OP_STEM + ".so")):
        raise NativeUnavailable("the op library is not built yet")
    kernels = "C++ and CUDA" if cuda else "C++"
    return _cached_build(
        folder, OP_STEM + ".so", f"nas_tf's TensorFlow op library ({kernels} kernels) for TensorFlow {tf.__version__}",
        lambda path: b.build_op_library(path, info, cuda=cuda, csrc=source_dir()),
    )


# --------------------------------------------------------- pybind11 module


def kernels_module():
    """The pybind11 module ``nas_tf._kernels`` (installed, cached or built now).

    Raises:
        ImportError: it cannot be found or built; the message says what is missing.
    """
    module = sys.modules.get(KERNELS_MODULE)
    if module is not None:
        return module
    try:
        path = _kernels_path()
    except NativeUnavailable as e:
        raise ImportError(f"nas_tf._kernels (the pybind11 module of nas_tf's kernels) is not available: {e}") from None
    spec = importlib.util.spec_from_file_location(KERNELS_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[KERNELS_MODULE] = module
    import nas_tf

    nas_tf._kernels = module
    return module


def _suffix() -> str:
    return sysconfig.get_config_var("EXT_SUFFIX") or importlib.machinery.EXTENSION_SUFFIXES[0]


def installed_kernels_module() -> str | None:
    """The pybind11 module next to the package (built by ``pip install``), or None."""
    path = os.path.join(_PACKAGE, "_kernels" + _suffix())
    return path if os.path.exists(path) else None


def _kernels_path() -> str:
    suffix = _suffix()
    b = builder()
    installed = installed_kernels_module()
    expect = {"source_hash": source_hash()}
    if os.environ.get("NAS_TF_CUDA") == "1":  # asked for the CUDA kernels: a CPU-only build does not fit
        expect["cuda"] = True
    if installed and _fits(installed, expect) is None:
        return installed
    # CUDA kernels in the module only when asked for (NAS_TF_CUDA=1, e.g. scripts/check_cuda_ops.py --build).
    cuda = b.cuda_wanted(None, log=lambda msg: print(msg, file=sys.stderr))
    key = _key({"source_hash": source_hash(), "suffix": suffix, "cuda": bool(cuda)})
    folder = os.path.join(cache_root(), f"kernels-{source_hash()}-{key}")

    def build(path):
        try:
            import pybind11
        except ImportError:
            raise NativeUnavailable("pybind11 is not installed (pip install pybind11)") from None
        b.build_pybind_module(path, pybind_include=pybind11.get_include(), cuda=cuda, csrc=source_dir())

    return _cached_build(folder, "_kernels" + suffix, f"nas_tf's pybind11 kernels module{' (with CUDA)' if cuda else ''}", build)
