"""Export of trained Keras models as SavedModels for TF Serving and plain TF."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import keras

from nas_tf.export.files import atomic_export as _atomic_export


def _portable(keep_custom_ops: bool):
    """Traces layers with the pure-TF fallbacks of nas_tf's custom ops (unless ``keep_custom_ops``)."""
    if keep_custom_ops:
        return contextlib.nullcontext()
    from nas_tf.ops import custom_ops_disabled

    return custom_ops_disabled()


def _classifier_outputs(logits) -> dict:
    import tensorflow as tf

    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}


def export_saved_model(
    model: keras.Model, export_dir: str, verbose: bool = False, keep_custom_ops: bool = False
) -> str:
    """Exports ``model`` as a SavedModel.

    An image serving model (raw images to logits, with the dataset's
    preprocessing inside: :func:`nas_tf.export.image_serving_model`) gets two
    endpoints, callable from plain TensorFlow or TF Serving without nas_tf:

    * the signature ``serving_default(images)`` -> ``{"logits": [batch,
      classes] float32, "probabilities": [batch, classes] float32}`` (the
      softmax of the logits); ``images`` are raw images as users hold them
      (their dtype and range: :data:`nas_tf.data.images.RAW_PIXELS`);
    * ``serve(images)`` -> the logits tensor.

    Any other Keras model is written by ``model.export`` (a ``serve``
    endpoint, also the ``serving_default`` signature).

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

    >>> export_saved_model(image_serving_model(net, RAW_PIXELS["digits"]), "runs/final/saved_model")  # doctest: +SKIP
    >>> import tensorflow as tf
    >>> served = tf.saved_model.load("runs/final/saved_model").signatures["serving_default"]  # doctest: +SKIP
    >>> served(images=sklearn_digits.images[:, :, :, None].astype("float32"))["probabilities"]  # doctest: +SKIP
    """
    from nas_tf.export.serving import INPUT_NAME, is_image_serving_model

    def write(tmp: str) -> None:
        with _portable(keep_custom_ops):
            if not is_image_serving_model(model):
                model.export(tmp, format="tf_saved_model", verbose=verbose)
                return
            import tensorflow as tf

            spec = model.inputs[0]
            signature = [tf.TensorSpec((None, *spec.shape[1:]), spec.dtype, name=INPUT_NAME)]
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serving_default", lambda images: _classifier_outputs(model(images, training=False)),
                                 input_signature=signature)
            archive.add_endpoint("serve", lambda images: model(images, training=False), input_signature=signature)
            archive.write_out(tmp, verbose=verbose)

    return _atomic_export(export_dir, write)


def export_language_model(
    model,
    export_dir: str,
    vocab: Sequence[str] | None = None,
    batch_size: int | None = None,
    keep_custom_ops: bool = False,
) -> str:
    """Exports a :class:`~nas_tf.models.LanguageModel` as a SavedModel (atomically).

    Endpoints, usable from plain TensorFlow or TF Serving without nas_tf
    (``tokens``: int32 token ids ``[batch, T]``, the ids of the vocabulary):

    * the signature ``serving_default(tokens)`` -> ``{"logits": [batch, T,
      vocab] float32, "probabilities": [batch, T, vocab] float32}`` (the
      softmax of the logits: the distribution of the next word), starting
      from zero states;
    * ``serve_with_state(tokens, state_0, ..., state_k)`` -> ``{"logits": ...,
      "state_0": ..., ...}``: continue from the states of the previous call
      (their sizes are ``model.state_sizes()``; zeros to start), e.g. for
      streaming text;
    * ``serve(tokens)`` -> the logits tensor.

    With ``vocab`` the vocabulary ships in the SavedModel directory as
    ``assets.extra/vocab.txt`` (one word per line: the word of id ``i`` on
    line ``i``; map words to ids with it before serving).

    Args:
        model: a built language model.
        export_dir: destination directory.
        vocab: the words of the ids (``TextCorpus.vocab``), ``vocab_size`` of them.
        batch_size: a fixed batch size of every endpoint (None: any; TFLite
            conversion needs a fixed one).
        keep_custom_ops: keep ``NasTf*`` custom ops in the exported graph.

    Returns:
        ``export_dir``.
    """
    import tensorflow as tf

    from nas_tf.export.serving import TOKENS_NAME, VOCAB_FILE, write_vocab

    if vocab is not None and len(vocab) != model.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} words but the model predicts {model.vocab_size}")
    tokens = tf.TensorSpec((batch_size, None), tf.int32, name=TOKENS_NAME)
    states = [tf.TensorSpec((batch_size, s), tf.float32, name=f"state_{i}") for i, s in enumerate(model.state_sizes())]

    def serve(tokens):
        return model(tokens, training=False)[0]

    def serving_default(tokens):
        return _classifier_outputs(serve(tokens))

    def serve_with_state(tokens, *states):
        logits, new_states = model(tokens, states=list(states), training=False)
        return {"logits": logits, **{f"state_{i}": s for i, s in enumerate(new_states)}}

    def write(tmp: str) -> None:
        with _portable(keep_custom_ops):
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serving_default", serving_default, input_signature=[tokens])
            archive.add_endpoint("serve_with_state", serve_with_state, input_signature=[tokens, *states])
            archive.add_endpoint("serve", serve, input_signature=[tokens])
            archive.write_out(tmp, verbose=False)
        if vocab is not None:
            write_vocab(os.path.join(tmp, "assets.extra", VOCAB_FILE), vocab)

    return _atomic_export(export_dir, write)
