"""nas_tf: reinforcement-learning neural architecture search for TensorFlow 2 / Keras 3.

NAS (Zoph & Le 2017), NASNet (Zoph et al. 2018) and ENAS (Pham et al. 2018):
search spaces as data, one LSTM controller, one search loop, Keras children.

Importing ``nas_tf`` is cheap: TensorFlow is imported only by the submodules
that need it (controller, layers, models, data, search).
"""

from nas_tf import _tf_hook
from nas_tf.spaces import Arch, ArchError, load_arch, make_space

# SavedModels that keep nas_tf's custom ops load after `import nas_tf`: the op
# library is registered when TensorFlow is (or gets) imported; see _tf_hook.
_tf_hook.install()

__version__ = "0.1.0"

__all__ = ["Arch", "ArchError", "EnasRnnCell", "NASCell", "TreeCell", "load_arch", "make_space", "__version__"]

# Keras layers exported at the top level; imported on first use so that
# ``import nas_tf`` stays free of TensorFlow.
_LAZY_LAYERS = {
    "EnasRnnCell": "nas_tf.layers.enas_rnn_cell",
    "NASCell": "nas_tf.layers.nas_cell",
    "TreeCell": "nas_tf.layers.tree_cell",
}


def __getattr__(name: str):
    if name in _LAZY_LAYERS:
        import importlib

        value = getattr(importlib.import_module(_LAZY_LAYERS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nas_tf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_LAYERS))
