"""Building the compiled libraries on first use (nas_tf/_native.py, csrc/build.py): cache, lock, records, wheels.

The fast tests exercise the cache, the file lock and the fallbacks with real
processes but no compiler run; the two slow ones compile the libraries for
real (a first-use build into an empty cache, and a wheel built by
``pip wheel`` installed elsewhere): a few minutes on 2 cores.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from nas_tf import _native

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, cwd=None, timeout=600, **env):
    full = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=timeout)


# ------------------------------------------------------------ cache and lock

LOCKED_BUILD = """
import os, sys, time
from nas_tf import _native

def build(path):
    with open(sys.argv[1], "a") as f:
        f.write("built\\n")
    time.sleep(1.0)
    with open(path, "w") as f:
        f.write("library")

print("path", _native._cached_build(sys.argv[2], "lib.so", "a test library", build))
"""


def test_parallel_processes_build_a_cached_library_once(tmp_path):
    count, folder = tmp_path / "count.txt", tmp_path / "cache" / "lib-key"
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [
        subprocess.Popen([sys.executable, "-c", LOCKED_BUILD, str(count), str(folder)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert count.read_text().splitlines() == ["built"]  # one build, the others waited for it
    assert {o[0].strip() for o in outs} == {f"path {folder / 'lib.so'}"}
    stderr = "".join(o[1] for o in outs)
    assert stderr.count(f"nas_tf: building a test library into {folder} (once) ...") == 1
    assert stderr.count("(once): done in ") == 1
    assert not list(folder.parent.glob("*.tmp"))


def test_a_failed_build_is_recorded_and_not_retried(tmp_path):
    b = _native.builder()
    calls = []

    def failing(path):
        calls.append(path)
        raise b.BuildError("compiling x.cc failed (exit 1): c++ ...\nx.cc:1: error: boom")

    folder = str(tmp_path / "lib-key")
    for _ in range(2):
        with pytest.raises(_native.NativeUnavailable, match="boom"):
            _native._cached_build(folder, "lib.so", "a test library", failing)
    assert len(calls) == 1
    assert "boom" in (tmp_path / "lib-key" / "FAILED").read_text()


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(_native.ENV_CACHE_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _native.cache_root() == str(tmp_path / "xdg" / "nas_tf")
    monkeypatch.setenv(_native.ENV_CACHE_DIR, str(tmp_path / "mine"))
    assert _native.cache_root() == str(tmp_path / "mine")


def test_build_on_use_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(_native.ENV_BUILD_ON_USE, "0")
    with pytest.raises(_native.NativeUnavailable, match="NAS_TF_BUILD_ON_USE=0"):
        _native._cached_build(str(tmp_path / "k"), "lib.so", "a test library", lambda path: None)


# ------------------------------------------------------------ records and sources


def test_source_hash_changes_with_any_source(tmp_path):
    b = _native.builder()
    csrc = tmp_path / "csrc"
    shutil.copytree(_native.source_dir(), csrc, ignore=shutil.ignore_patterns("__pycache__"))
    before = b.source_hash(str(csrc))
    assert before == _native.source_hash()
    with open(csrc / "kernels" / "common.cc", "a") as f:
        f.write("\n// changed\n")
    assert b.source_hash(str(csrc)) != before


def test_build_record_is_found_in_a_binary(tmp_path):
    b = _native.builder()
    record = {"library": "op", "tensorflow": "2.99.0", "source_hash": "abc", "cuda": False}
    blob = b"\x7fELF\0junk" + b.INFO_MARKER + json.dumps(record).encode() + b"\0more junk"
    (tmp_path / "lib.so").write_bytes(blob)
    assert b.read_build_info(str(tmp_path / "lib.so")) == record
    (tmp_path / "bazel.so").write_bytes(b"\x7fELF\0no record")
    assert b.read_build_info(str(tmp_path / "bazel.so")) is None
    # A library built for another TensorFlow is refused, with the reason.
    why = _native._fits(str(tmp_path / "lib.so"), {"tensorflow": "2.21.0"})
    assert why.endswith("was built for tensorflow '2.99.0', not '2.21.0'")


def test_the_loaded_op_library_was_built_for_this_tensorflow():
    import tensorflow as tf

    import nas_tf.ops as O

    if os.environ.get("NAS_TF_OPS_LIBRARY") or not O.custom_ops_loaded():
        pytest.skip("no op library of this build mechanism in use")
    info = _native.builder().read_build_info(O.loaded_library_path())
    assert info["tensorflow"] == tf.__version__
    assert info["source_hash"] == _native.source_hash()


# ------------------------------------------------------------ no compiler

NO_COMPILER = """
import warnings
import numpy as np, tensorflow as tf
from nas_tf import _native
_native.installed_op_libraries = lambda: []  # as if pip had built nothing
import nas_tf.ops as O
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = O.padded_concat([tf.ones([1, 2, 2, 1]), tf.ones([1, 1, 1, 2])], [True, False])
    z = O.gather_matmul(tf.ones([2, 3]), tf.ones([2, 3, 4]), 1)
print("loaded", O.custom_ops_loaded())
print("warnings", len(caught), [str(w.message) for w in caught])
print("sum", float(tf.reduce_sum(y)), float(tf.reduce_sum(z)))
"""


def test_without_a_compiler_the_ops_fall_back_with_one_warning_naming_it(tmp_path):
    out = _python(NO_COMPILER, CXX="/nonexistent/c++", NAS_TF_CACHE_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "loaded False" in out.stdout
    assert "warnings 1 " in out.stdout and "no C++ compiler found (install g++ or clang++, or set CXX)" in out.stdout
    assert "sum 4.0 24.0" in out.stdout
    assert not os.listdir(tmp_path)  # nothing was attempted, nothing recorded as failed


def test_kernels_module_without_a_compiler_says_what_is_missing(tmp_path):
    code = """
    import sys
    from nas_tf import _native
    _native.installed_kernels_module = lambda: None  # as if pip had built nothing
    try:
        import nas_tf.kernels
    except ImportError as e:
        print("error", e)
    """
    out = _python(code, CXX="/nonexistent/c++", NAS_TF_CACHE_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "error nas_tf._kernels (the pybind11 module of nas_tf's kernels) is not available" in out.stdout
    assert "no C++ compiler found" in out.stdout


# ------------------------------------------------------------ real builds (slow)

FIRST_USE = """
import numpy as np, tensorflow as tf
from nas_tf import _native
_native.installed_op_libraries = lambda: []  # as if pip had built nothing
import nas_tf.ops as O
y = O.padded_concat([tf.ones([1, 2, 2, 1]), tf.ones([1, 1, 1, 2])], [True, False])
z = O.gather_matmul(tf.ones([2, 3]), tf.ones([2, 3, 4]), 1)
print("loaded", O.custom_ops_loaded(), O.loaded_library_path())
print("sum", float(tf.reduce_sum(y)), float(tf.reduce_sum(z)))
"""


@pytest.mark.slow
def test_op_library_is_built_on_first_use_into_the_cache_then_reused(tmp_path):
    first = _python(FIRST_USE, NAS_TF_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"loaded True {tmp_path}" in first.stdout and "sum 4.0 24.0" in first.stdout
    assert "nas_tf: building nas_tf's TensorFlow op library" in first.stderr
    assert "(once): done in " in first.stderr
    again = _python(FIRST_USE, NAS_TF_CACHE_DIR=str(tmp_path))
    assert again.returncode == 0 and "loaded True" in again.stdout
    assert "building" not in again.stderr


WHEEL_USER = """
import sys
sys.path[:0] = [{target!r}, {site!r}]
import numpy as np, tensorflow as tf
import nas_tf, nas_tf.ops as O
assert nas_tf.__file__.startswith({target!r}), nas_tf.__file__
y = O.padded_concat([tf.ones([1, 2, 2, 1]), tf.ones([1, 1, 1, 2])], [True, False])
print("loaded", O.custom_ops_loaded(), O.load_error(), O.loaded_library_path())
print("sum", float(tf.reduce_sum(y)))
from nas_tf import kernels
print("kernels", kernels.padded_concat([np.ones((1, 2, 2, 1), "f4"), np.ones((1, 1, 1, 2), "f4")]).shape)
"""


@pytest.mark.slow
def test_a_wheel_built_by_pip_loads_the_ops_where_it_is_installed(tmp_path):
    """``pip wheel .`` (build isolation), installed elsewhere: the ops load, as built or built on first use."""
    import sysconfig

    wheels = tmp_path / "wheels"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), REPO],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (wheel,) = wheels.glob("nas_tf-*.whl")
    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (target / "nas_tf" / "_csrc" / "build.py").exists() and (target / "nas_tf" / "_csrc" / "tf" / "nas_tf_ops.cc").exists()
    # `python -S` outside the checkout: nas_tf comes from the wheel, not from an editable install.
    code = WHEEL_USER.format(target=str(target), site=sysconfig.get_paths()["purelib"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(NAS_TF_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="2")
    for prebuilt in (True, False):
        if not prebuilt:  # as a wheel built where the build saw no TensorFlow: built on first use from nas_tf/_csrc
            for lib in (target / "nas_tf" / "ops").glob("_nas_tf_ops*.so"):
                lib.unlink()
        run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "loaded True None" in run.stdout and "sum 4.0" in run.stdout and "kernels (1, 2, 2, 3)" in run.stdout
        if not prebuilt:
            assert f"loaded True None {tmp_path / 'cache'}" in run.stdout
            assert "building nas_tf's TensorFlow op library" in run.stderr
