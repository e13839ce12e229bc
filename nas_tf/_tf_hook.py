"""Makes what nas_tf saves loadable after ``import nas_tf`` alone, which imports no TensorFlow.

``import nas_tf`` stays cheap, yet two kinds of files must load after it:

* a SavedModel exported with ``keep_custom_ops=True`` names ``NasTf*`` ops,
  which TensorFlow only knows once the op library is loaded: if TensorFlow is
  already imported, the library is loaded (quietly) and the gradients
  registered now; otherwise a one-shot import hook does it right after
  ``import tensorflow`` finishes. Only a library that is already built
  (installed or in the cache, see :mod:`nas_tf._native`) is loaded here:
  building one is left to its first use, never done by an import. Nothing
  happens with ``NAS_TF_DISABLE_CUSTOM_OPS=1``, and a failure never breaks the
  import of TensorFlow (the op wrappers then use their fallbacks and warn on
  first use);
* a ``.keras`` file names nas_tf's layers and models (``"nas_tf>PaddedConcat"``),
  which Keras finds in its registry of custom objects once their modules are
  imported. As soon as Keras is imported (now, or by a one-shot import hook),
  every class of :data:`KERAS_CLASSES` gets a lazy entry in that registry
  (``keras.saving.get_custom_objects()``): deserialising one imports its
  module, whose own registration then replaces the entry. So
  ``keras.saving.load_model("model.keras")`` works with no ``custom_objects``
  and without importing all of nas_tf up front.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_installed = {"done": False}

# Every class nas_tf registers for Keras serialisation, and its module
# (tests/test_conformance.py checks this against the registry).
KERAS_CLASSES = {
    "BranchMaxPooling2D": "nas_tf.layers.branch_pool",
    "Controller": "nas_tf.controller.policy",
    "EnasRnnCell": "nas_tf.layers.enas_rnn_cell",
    "EnasMacroSupernet": "nas_tf.models.enas_macro",
    "EnasMicroSupernet": "nas_tf.models.enas_micro",
    "EnasRnnSupernetLM": "nas_tf.models.enas_rnn",
    "FactorizedConv": "nas_tf.layers.cell_ops",
    "FactorizedReduction": "nas_tf.layers.cell_ops",
    "IdentityOp": "nas_tf.layers.cell_ops",
    "ImagePreprocessing": "nas_tf.data.images",
    "LanguageModel": "nas_tf.models.language_model",
    "NASCell": "nas_tf.layers.nas_cell",
    "NB201Cell": "nas_tf.layers.nb201_cell",
    "PaddedConcat": "nas_tf.layers.padded_concat",
    "PoolOp": "nas_tf.layers.cell_ops",
    "ReLUConvBN": "nas_tf.layers.cell_ops",
    "ScheduledDropPath": "nas_tf.layers.drop_path",
    "SeparableConvStack": "nas_tf.layers.cell_ops",
    "TreeCell": "nas_tf.layers.tree_cell",
}


class _LazyClass:
    """A registry entry that imports the real class when Keras deserialises one."""

    def __init__(self, name: str, module: str):
        self.name, self.module = name, module

    def load(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name)

    def from_config(self, config, *args, **kwargs):
        return self.load().from_config(config, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<nas_tf class {self.module}.{self.name}, imported on first use>"


def _register_keras_classes() -> None:
    try:
        objects = sys.modules["keras"].saving.get_custom_objects()
        for name, module in KERAS_CLASSES.items():
            objects.setdefault(f"nas_tf>{name}", _LazyClass(name, module))
    except Exception:  # noqa: BLE001 - never break the user's import of Keras
        pass


def _register() -> None:
    try:
        import nas_tf.ops

        nas_tf.ops.load_library(quiet=True, build=False)  # built on first use, not at import
    except Exception:  # noqa: BLE001 - never break the user's import of TensorFlow
        pass


class _ImportHook(importlib.abc.MetaPathFinder):
    """Finds the module ``name`` through the other finders and runs ``then()`` after it loads.

    The hook stays in ``sys.meta_path`` until the module is executed: a mere
    ``importlib.util.find_spec(name)`` (TensorFlow's own import asks where
    ``keras`` is before importing it) does not use it up.
    """

    def __init__(self, name: str, then):
        self.name, self.then = name, then
        self._finding = False

    def _remove(self) -> None:
        try:
            sys.meta_path.remove(self)  # one shot
        except ValueError:
            pass

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._finding:
            return None
        if fullname in sys.modules:  # imported some other way: nothing left to wait for
            self._remove()
            return None
        self._finding = True  # the other finders, not this one again
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            self._remove()
            exec_module(module)
            self.then()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Makes the custom ops known to TensorFlow, and nas_tf's classes to Keras, now or when imported."""
    if _installed["done"]:
        return
    _installed["done"] = True
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "saving"):
        _register_keras_classes()
    else:
        sys.meta_path.insert(0, _ImportHook("keras", _register_keras_classes))
    if os.environ.get("NAS_TF_DISABLE_CUSTOM_OPS", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        if hasattr(tf, "load_op_library"):
            _register()
        return
    sys.meta_path.insert(0, _ImportHook("tensorflow", _register))
