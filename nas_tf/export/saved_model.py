"""Export of trained Keras models as SavedModels for TF Serving and plain TF."""

from __future__ import annotations

import os
import shutil
import tempfile

import keras


def export_saved_model(model: keras.Model, export_dir: str, verbose: bool = False) -> str:
    """Exports ``model`` as a SavedModel with a ``serve`` signature.

    The export is written to a temporary directory next to ``export_dir`` and
    moved into place at the end, so an interrupted export never leaves a
    half-written SavedModel behind (an existing one is replaced).

    Args:
        model: a built Keras model.
        export_dir: destination directory.
        verbose: let Keras print the signature.

    Returns:
        ``export_dir``.

    Example:

    >>> export_saved_model(model, "runs/final/saved_model")  # doctest: +SKIP
    >>> import tensorflow as tf
    >>> tf.saved_model.load("runs/final/saved_model").serve(images)  # doctest: +SKIP
    """
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(export_dir) + ".", dir=parent)
    try:
        model.export(tmp, format="tf_saved_model", verbose=verbose)
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
