"""Registers nas_tf's custom ops with TensorFlow as soon as TensorFlow is imported.

``import nas_tf`` stays cheap (it imports no TensorFlow), yet a SavedModel
exported with ``keep_custom_ops=True`` must load after ``import nas_tf``: its
graph names ``NasTf*`` ops, which TensorFlow only knows once the op library is
loaded. So ``import nas_tf`` calls :func:`install`: if TensorFlow is already
imported, the library is loaded (quietly) and the gradients registered now;
otherwise a one-shot import hook does it right after ``import tensorflow``
finishes. Only a library that is already built (installed or in the cache,
see :mod:`nas_tf._native`) is loaded here: building one is left to its first
use, never done by an import. Nothing happens with
``NAS_TF_DISABLE_CUSTOM_OPS=1``, and a failure never breaks the import of
TensorFlow (the op wrappers then use their fallbacks and warn on first use).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_installed = {"done": False}


def _register() -> None:
    try:
        import nas_tf.ops

        nas_tf.ops.load_library(quiet=True, build=False)  # built on first use, not at import
    except Exception:  # noqa: BLE001 - never break the user's import of TensorFlow
        pass


class _TensorFlowImportHook(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders and runs _register after it loads."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        try:
            sys.meta_path.remove(self)  # one shot
        except ValueError:
            pass
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Makes the custom ops known to TensorFlow now or when it is imported."""
    if _installed["done"]:
        return
    _installed["done"] = True
    if os.environ.get("NAS_TF_DISABLE_CUSTOM_OPS", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        if hasattr(tf, "load_op_library"):
            _register()
        return
    sys.meta_path.insert(0, _TensorFlowImportHook())
