"""Export of trained Keras models as SavedModels for TF Serving and plain TF."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable

import keras


def _atomic_export(export_dir: str, write: Callable[[str], None]) -> str:
    """Runs ``write(tmp_dir)`` next to ``export_dir`` and moves the result into place.

    An interrupted export never leaves a half-written SavedModel behind; an
    existing one is replaced.
    """
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(export_dir) + ".", dir=parent)
    try:
        write(tmp)
        if os.path.exists(export_dir):
            old = export_dir + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(export_dir, old)
            os.replace(tmp, export_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, export_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return export_dir


def export_saved_model(
    model: keras.Model, export_dir: str, verbose: bool = False, keep_custom_ops: bool = False
) -> str:
    """Exports ``model`` as a SavedModel with a ``serve`` signature.

    By default the export is portable: layers that can use nas_tf's compiled
    ops (:mod:`nas_tf.ops`) are traced with their pure-TensorFlow fallbacks, so
    stock TensorFlow and TF Serving load the SavedModel without nas_tf.
    ``keep_custom_ops=True`` keeps the compiled ops in the graph (faster where
    they are, but loading then needs ``import nas_tf`` first, or the
    ``nas-tf-saved-model-cli`` wrapper).

    The export is written to a temporary directory next to ``export_dir`` and
    moved into place at the end, so an interrupted export never leaves a
    half-written SavedModel behind (an existing one is replaced).

    Args:
        model: a built Keras model.
        export_dir: destination directory.
        verbose: let Keras print the signature.
        keep_custom_ops: keep ``NasTf*`` custom ops in the exported graph.

    Returns:
        ``export_dir``.

    Example:

    >>> export_saved_model(model, "runs/final/saved_model")  # doctest: +SKIP
    >>> import tensorflow as tf
    >>> tf.saved_model.load("runs/final/saved_model").serve(images)  # doctest: +SKIP
    """
    def write(tmp: str) -> None:
        if keep_custom_ops:
            scope = contextlib.nullcontext()
        else:
            from nas_tf.ops import custom_ops_disabled

            scope = custom_ops_disabled()
        with scope:
            model.export(tmp, format="tf_saved_model", verbose=verbose)

    return _atomic_export(export_dir, write)


def export_language_model(model, export_dir: str) -> str:
    """Exports a :class:`~nas_tf.models.LanguageModel` as a SavedModel (atomically).

    Two endpoints, usable from plain TensorFlow or TF Serving without nas_tf:

    * ``serve(tokens)`` -- int32 ``[batch, T]`` -> logits ``[batch, T, vocab]``,
      starting from zero states;
    * ``serve_with_state(tokens, state_0, ..., state_k)`` -> ``{"logits": ...,
      "state_0": ..., ...}``: continue from the states of the previous call
      (their sizes are ``model.state_sizes()``), e.g. for streaming text.

    Args:
        model: a built language model.
        export_dir: destination directory.

    Returns:
        ``export_dir``.
    """
    from nas_tf.models.language_model import lm_serving_signature

    signature = lm_serving_signature(model)

    def serve(tokens):
        return model(tokens, training=False)[0]

    def serve_with_state(tokens, *states):
        logits, new_states = model(tokens, states=list(states), training=False)
        return {"logits": logits, **{f"state_{i}": s for i, s in enumerate(new_states)}}

    def write(tmp: str) -> None:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=signature[:1])
        archive.add_endpoint("serve_with_state", serve_with_state, input_signature=signature)
        archive.write_out(tmp, verbose=False)

    return _atomic_export(export_dir, write)
