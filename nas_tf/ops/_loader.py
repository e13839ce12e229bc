"""Lazy loading of nas_tf's compiled TensorFlow op library and the switches around it.

The library (``nas_tf/ops/_nas_tf_ops*.so``, built by ``pip install``; see
``csrc/build.py``) is loaded on first use, never at ``import nas_tf``. Every op
wrapper falls back to a pure-TensorFlow implementation with the same results
when:

* the library is missing or cannot be loaded (a warning says why, once);
* ``NAS_TF_DISABLE_CUSTOM_OPS=1`` is set (the library is then never loaded);
* :func:`set_custom_ops_enabled` turned the ops off, or the code runs inside
  :func:`custom_ops_disabled` (what portable SavedModel export does);
* the code is being compiled by XLA (``jit_compile=True``), which cannot
  compile custom ops.

``NAS_TF_OPS_LIBRARY=/path/to/lib.so`` loads another build of the same library
(for example the one Bazel builds).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.machinery
import os
import threading
import warnings

ENV_DISABLE = "NAS_TF_DISABLE_CUSTOM_OPS"
ENV_LIBRARY = "NAS_TF_OPS_LIBRARY"
LIBRARY_STEM = "_nas_tf_ops"

_lock = threading.Lock()
_state = {"tried": False, "module": None, "error": None, "path": None}
_enabled = {"value": True}
_local = threading.local()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def library_path() -> str | None:
    """Path of the op library that would be loaded (None if there is none)."""
    forced = os.environ.get(ENV_LIBRARY)
    if forced:
        return forced
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, LIBRARY_STEM + suffix)
        if os.path.exists(path):
            return path
    found = sorted(glob.glob(os.path.join(here, LIBRARY_STEM + "*.so")))
    return found[0] if found else None


def _build_mismatch(tf_version: str) -> str | None:
    """Reason not to load the library: it was built for another TensorFlow."""
    try:
        from nas_tf import _kernels
    except ImportError:
        return None  # no build record; load and let TensorFlow judge
    built_for = _kernels.build_info().get("tensorflow", "")
    if built_for and built_for != tf_version:
        return (
            f"it was built for TensorFlow {built_for} but TensorFlow {tf_version} is running "
            "(rebuild: pip install --no-build-isolation -e .)"
        )
    return None


def load_library(quiet: bool = False):
    """Loads the op library once; returns its module of op wrappers or None.

    Args:
        quiet: do not warn now when the library cannot be used (a later call
            without ``quiet`` warns once).
    """
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                _try_load()
    if not quiet and _state["module"] is None and _state.get("warn") and not _state.get("warned"):
        _state["warned"] = True
        warnings.warn(f"nas_tf: {_state['warn']}; using the pure-TensorFlow fallbacks", RuntimeWarning, stacklevel=2)
    return _state["module"]


def _try_load() -> None:
    """One attempt to load the library; records the module or the reason."""
    try:
        if _truthy(os.environ.get(ENV_DISABLE)):
            _state["error"] = f"{ENV_DISABLE} is set"
            return
        path = library_path()
        if path is None:
            _state["error"] = "the compiled op library is not installed"
            _state["warn"] = "the compiled op library was not found (the C++ build was skipped or failed)"
            return
        import tensorflow as tf

        if not os.environ.get(ENV_LIBRARY):
            reason = _build_mismatch(tf.__version__)
            if reason:
                _state["error"] = _state["warn"] = f"not loading {path}: {reason}"
                return
        try:
            _state["module"] = tf.load_op_library(path)
            _state["path"] = path
        except Exception as e:  # noqa: BLE001 - any load failure means: use the fallback
            _state["error"] = _state["warn"] = f"could not load {path}: {e}"
    finally:
        _state["tried"] = True


def load_error() -> str | None:
    """Why the library is not in use (None when it is loaded)."""
    load_library()
    return _state["error"]


def loaded_library_path() -> str | None:
    load_library()
    return _state["path"]


def set_custom_ops_enabled(enabled: bool) -> None:
    """Turns the compiled ops on or off for the whole process."""
    _enabled["value"] = bool(enabled)


@contextlib.contextmanager
def custom_ops_disabled():
    """Within this block (this thread), the op wrappers trace their pure-TF fallbacks.

    Example:

    >>> with custom_ops_disabled():
    ...     model.export("portable")  # doctest: +SKIP
    """
    depth = getattr(_local, "disabled", 0)
    _local.disabled = depth + 1
    try:
        yield
    finally:
        _local.disabled = depth


def custom_ops_enabled() -> bool:
    """True unless turned off by the flag, the context manager or the environment."""
    return _enabled["value"] and not getattr(_local, "disabled", 0) and not _truthy(os.environ.get(ENV_DISABLE))


def custom_ops_loaded() -> bool:
    """Whether the compiled library is loaded and in use (not turned off)."""
    return custom_ops_enabled() and load_library() is not None


def in_xla_context() -> bool:
    """True while TensorFlow traces a function that XLA will compile."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def use_custom_ops() -> bool:
    """Whether an op wrapper called now should emit the compiled op."""
    return custom_ops_loaded() and not in_xla_context()


def gen_ops():
    """The loaded library's op module (raises if it is not loaded)."""
    module = load_library()
    if module is None:
        raise RuntimeError(f"nas_tf custom ops are not available: {load_error()}")
    return module
