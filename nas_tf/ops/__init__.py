"""Custom TensorFlow ops of nas_tf, each with a pure-TensorFlow fallback.

* :func:`padded_concat` — zero-padded channel concatenation (NAS skip
  connections), with an optional run-time on/off mask per input.
* :func:`gather_matmul` — ``x @ weights[index]`` reading the selected shared
  weight matrix in place (ENAS), single or one index per group.

The compiled library (``csrc/``, built by ``pip install``) is loaded lazily on
first use. The wrappers use the pure-TF fallback (same results) when the
library is missing, when ``NAS_TF_DISABLE_CUSTOM_OPS=1``, when turned off with
:func:`set_custom_ops_enabled` or :func:`custom_ops_disabled`, and while XLA
compiles the function. Keras layers that may use the ops pick the fallback on
other Keras backends. :func:`custom_ops_loaded` tells whether the library is in
use.

Gradients are registered with ``tf.RegisterGradient``, so importing
``nas_tf.ops`` (or ``nas_tf``, see :mod:`nas_tf._tf_hook`) before loading a
SavedModel that contains these ops makes it loadable and differentiable.
"""

from nas_tf.ops._loader import (
    custom_ops_disabled,
    custom_ops_enabled,
    custom_ops_loaded,
    in_xla_context,
    library_path,
    load_error,
    load_library,
    loaded_library_path,
    set_custom_ops_enabled,
)
from nas_tf.ops.gather_matmul import gather_matmul, gather_matmul_fallback
from nas_tf.ops.padded_concat import padded_concat, padded_concat_fallback

__all__ = [
    "custom_ops_disabled",
    "custom_ops_enabled",
    "custom_ops_loaded",
    "gather_matmul",
    "gather_matmul_fallback",
    "in_xla_context",
    "library_path",
    "load_error",
    "load_library",
    "loaded_library_path",
    "padded_concat",
    "padded_concat_fallback",
    "set_custom_ops_enabled",
]
