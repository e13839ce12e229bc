"""TensorFlow Lite export: float32, or post-training dynamic-range int8.

The model is written as a portable SavedModel (:mod:`nas_tf.export.saved_model`:
pure-TF paths of the custom ops) in a temporary directory and converted with
``tf.lite.TFLiteConverter.from_saved_model``, so the ``.tflite`` file has the
same named signatures:

* image models: ``serving_default(images)`` -> ``logits``, ``probabilities``
  (raw images as users hold them; any batch size, 1 by default);
* language models: ``serving_default(tokens)`` -> ``logits``,
  ``probabilities`` and ``serve_with_state(tokens, state_0, ...)`` ->
  ``logits``, ``state_0``, ...; the batch is fixed (1 by default: TFLite
  cannot lower the recurrent loop over a dynamic batch), the number of steps
  is free. The vocabulary is written beside the file (``vocab.txt``).

``quantize=True`` applies dynamic-range quantisation
(``tf.lite.Optimize.DEFAULT`` without a representative dataset): weights
stored as int8, activations computed in float.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Sequence

import keras

__all__ = ["convert_to_tflite", "export_tflite", "tflite_interpreter", "tflite_signature_runner"]


def convert_to_tflite(
    model: keras.Model,
    *,
    quantize: bool = False,
    batch_size: int = 1,
    keep_custom_ops: bool = False,
) -> bytes:
    """The TFLite flatbuffer of an image serving model or a language model.

    Args:
        model: an image serving model (:func:`~nas_tf.export.image_serving_model`)
            or a :class:`~nas_tf.models.LanguageModel`.
        quantize: dynamic-range int8 quantisation of the weights.
        batch_size: the fixed batch of a language model's signatures.
        keep_custom_ops: trace nas_tf's compiled ops instead of their fallbacks
            (TFLite cannot run them: leave False).

    Returns:
        The ``.tflite`` bytes.
    """
    import tensorflow as tf

    from nas_tf.export.saved_model import export_language_model, export_saved_model
    from nas_tf.export.serving import is_language_model

    with tempfile.TemporaryDirectory(prefix="nas_tf_tflite_") as tmp:
        path = os.path.join(tmp, "saved_model")
        if is_language_model(model):
            export_language_model(model, path, batch_size=batch_size, keep_custom_ops=keep_custom_ops)
            keys = ["serving_default", "serve_with_state"]
        else:
            export_saved_model(model, path, keep_custom_ops=keep_custom_ops)
            keys = ["serving_default"]
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=keys)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        with _quiet():
            return converter.convert()


def export_tflite(
    model: keras.Model,
    path: str,
    *,
    quantize: bool = False,
    vocab: Sequence[str] | None = None,
    batch_size: int = 1,
) -> str:
    """Writes the TFLite file of ``model`` to ``path`` (atomically); a language model's vocabulary beside it.

    Args:
        model: an image serving model or a language model.
        path: the ``.tflite`` file.
        quantize: dynamic-range int8 quantisation of the weights.
        vocab: the words of a language model's ids, written to ``vocab.txt``
            in the same directory.
        batch_size: the fixed batch of a language model.

    Returns:
        ``path``.

    Example:

    >>> export_tflite(serving_model, "runs/final/model.tflite")  # doctest: +SKIP
    >>> runner = tf.lite.Interpreter("runs/final/model.tflite").get_signature_runner()  # doctest: +SKIP
    >>> runner(images=raw_images[:1])["probabilities"]  # doctest: +SKIP
    """
    from nas_tf.export.files import atomic_write_bytes
    from nas_tf.export.serving import VOCAB_FILE, write_vocab

    content = convert_to_tflite(model, quantize=quantize, batch_size=batch_size)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, content)
    if vocab is not None:
        write_vocab(os.path.join(os.path.dirname(os.path.abspath(path)), VOCAB_FILE), vocab)
    return path


@contextlib.contextmanager
def _quiet():
    """Silences the converter's and the interpreter's deprecation chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def tflite_interpreter(model: str | bytes, num_threads: int | None = 1):
    """A ``tf.lite.Interpreter`` of a ``.tflite`` file (path) or its bytes, tensors allocated.

    Args:
        model: the file or the flatbuffer.
        num_threads: CPU threads of the interpreter (None: TFLite's default).
    """
    import tensorflow as tf

    with _quiet():
        if isinstance(model, (bytes, bytearray)):
            interpreter = tf.lite.Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            interpreter = tf.lite.Interpreter(model_path=str(model), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def tflite_signature_runner(model: str | bytes, signature: str = "serving_default", num_threads: int | None = 1):
    """The runner of one named signature: ``runner(images=...)`` -> ``{"logits": ..., "probabilities": ...}``."""
    return tflite_interpreter(model, num_threads).get_signature_runner(signature)
