"""Lazy loading of nas_tf's compiled TensorFlow op library and the switches around it.

The library is loaded on first use, never at ``import nas_tf``: the one
``pip install`` built next to this package when it fits the imported
TensorFlow, else the one built for it on first use into the user's cache
(:mod:`nas_tf._native`: one line says what is built and how long it took).
Every op wrapper falls back to a pure-TensorFlow implementation with the
same results when:

* the library cannot be had (no C++ compiler, the build failed, ...): a
  warning says why, once;
* ``NAS_TF_DISABLE_CUSTOM_OPS=1`` is set (the library is then never loaded);
* :func:`set_custom_ops_enabled` turned the ops off, or the code runs inside
  :func:`custom_ops_disabled` (what portable SavedModel export does);
* the code is being compiled by XLA (``jit_compile=True``), which cannot
  compile custom ops.

``NAS_TF_OPS_LIBRARY=/path/to/lib.so`` loads another build of the same library
(for example the one Bazel builds) as it is.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

from nas_tf import _native

ENV_DISABLE = "NAS_TF_DISABLE_CUSTOM_OPS"
ENV_LIBRARY = "NAS_TF_OPS_LIBRARY"

_lock = threading.Lock()
_state = {"tried": False, "module": None, "error": None, "path": None}
_enabled = {"value": True}
_local = threading.local()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def library_path(build: bool = False) -> str | None:
    """Path of the op library that is (or would be) loaded; None if there is none yet.

    Args:
        build: build it now if needed (as the first use does).
    """
    forced = os.environ.get(ENV_LIBRARY)
    if forced:
        return forced
    import tensorflow as tf

    try:
        return _native.op_library(tf, build=build)
    except _native.NativeUnavailable:
        return None


def load_library(quiet: bool = False, build: bool = True):
    """Loads the op library once; returns its module of op wrappers or None.

    Args:
        quiet: do not warn now when the library cannot be used (a later call
            without ``quiet`` warns once).
        build: build the library if no installed or cached one fits (the
            import hook of :mod:`nas_tf._tf_hook` passes False: it only
            registers a library that is already there).
    """
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                _try_load(build)
    if not quiet and _state["module"] is None and _state.get("warn") and not _state.get("warned"):
        _state["warned"] = True
        # One line (no source line of ours under it): the file of the warning is the library's name.
        warnings.warn_explicit(f"{_state['warn']}; using the pure-TensorFlow fallbacks", RuntimeWarning,
                               filename="nas_tf", lineno=0, module="nas_tf.ops")
    return _state["module"]


def _try_load(build: bool) -> None:
    """One attempt to load the library; records the module or the reason (unless a build was deferred)."""
    if _truthy(os.environ.get(ENV_DISABLE)):
        _state.update(tried=True, error=f"{ENV_DISABLE} is set")
        return
    import tensorflow as tf

    path = os.environ.get(ENV_LIBRARY)
    if not path:
        try:
            path = _native.op_library(tf, build=build)
        except _native.NativeUnavailable as e:
            if not build:
                return  # a later use builds it
            _state.update(tried=True, error=str(e), warn=f"the compiled op library is not available: {e}")
            return
    try:
        _state["module"] = tf.load_op_library(path)
        _state["path"] = path
    except Exception as e:  # noqa: BLE001 - any load failure means: use the fallback
        _state["error"] = _state["warn"] = f"could not load {path}: {e}"
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
