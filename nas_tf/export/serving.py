"""The Keras models an export serves: raw images in, logits out.

A network trained by nas_tf reads *preprocessed* images (scaled, then
standardised per image: :meth:`nas_tf.data.images.ImageData.batches`). A user
holds raw ones (CIFAR-10 as uint8 0-255, the digits as float counts 0-16:
:data:`nas_tf.data.images.RAW_PIXELS`). :func:`image_serving_model` puts the
dataset's preprocessing (:class:`~nas_tf.data.images.ImagePreprocessing`) in
front of the network, so every export (SavedModel, ``.keras``, TFLite) maps
the raw images to the logits, and the network stays reachable as a nested
model (:func:`network_of`).

Language models take token ids as they are; their exports ship the
vocabulary (one word per line, the word of id ``i`` on line ``i``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np

from nas_tf.data.images import ImagePreprocessing, RawPixels

INPUT_NAME = "images"
TOKENS_NAME = "tokens"
VOCAB_FILE = "vocab.txt"

__all__ = [
    "INPUT_NAME",
    "TOKENS_NAME",
    "VOCAB_FILE",
    "image_serving_model",
    "is_image_serving_model",
    "is_language_model",
    "network_of",
    "raw_pixels_of",
    "read_vocab",
    "write_vocab",
]


def _single_output(network: keras.Model) -> keras.Model:
    """The network without its auxiliary heads (training-only outputs): images to logits."""
    if len(network.outputs) <= 1:
        return network
    inputs = network.inputs[0] if len(network.inputs) == 1 else network.inputs
    return keras.Model(inputs, network.outputs[0], name=network.name)


def image_serving_model(network: keras.Model, raw: RawPixels | float) -> keras.Model:
    """``network`` behind the preprocessing of its dataset: raw images to logits.

    Args:
        network: a built image classifier (preprocessed images to logits;
            auxiliary outputs, if any, are left out). A model that already
            carries the preprocessing is returned as it is.
        raw: what the users of the dataset hold (``ImageData.raw_pixels``,
            :data:`~nas_tf.data.images.RAW_PIXELS`), or only the value of a
            full-intensity pixel (float32 input).

    Returns:
        A functional model with one input ``images`` (``raw.dtype``, the
        network's image shape) and the logits as output; its layers are the
        input, ``preprocessing`` and the network.

    Example:

    >>> net = build_image_model(arch, (8, 8, 1), 10)  # doctest: +SKIP
    >>> serving = image_serving_model(net, RAW_PIXELS["digits"])  # doctest: +SKIP
    >>> serving(load_digits_from_sklearn().images[:4, :, :, None])  # doctest: +SKIP
    """
    if is_image_serving_model(network):
        return network
    if not isinstance(raw, RawPixels):
        raw = RawPixels("float32", float(raw))
    network = _single_output(network)
    if len(network.inputs) != 1:
        raise ValueError(f"an image network has one input, {network.name!r} has {len(network.inputs)}")
    shape = tuple(network.inputs[0].shape[1:])
    inputs = keras.Input(shape, dtype=raw.dtype, name=INPUT_NAME)
    x = ImagePreprocessing(raw.max_value, name="preprocessing")(inputs)
    return keras.Model(inputs, network(x), name=f"{network.name}_serving")


def _layers_after_input(model: keras.Model) -> list:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def is_image_serving_model(model) -> bool:
    """Whether ``model`` takes raw images (its first layer is an :class:`ImagePreprocessing`)."""
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or not _is_functional(model):
        return False
    layers = _layers_after_input(model)
    return bool(layers) and isinstance(layers[0], ImagePreprocessing) and len(model.inputs) == 1


def _is_functional(model) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def network_of(model: keras.Model) -> keras.Model:
    """The network inside a serving model (preprocessed images to logits); other models as they are."""
    if not is_image_serving_model(model):
        return model
    nested = [layer for layer in _layers_after_input(model) if isinstance(layer, keras.Model)]
    if len(nested) == 1:
        return nested[0]
    raise ValueError(f"serving model {model.name!r} should hold one nested network, found {len(nested)}")


def raw_pixels_of(model: keras.Model) -> RawPixels:
    """What a serving model takes (dtype and full-intensity value of its input)."""
    if not is_image_serving_model(model):
        raise ValueError(f"model {model.name!r} carries no image preprocessing")
    layer = _layers_after_input(model)[0]
    dtype = str(model.inputs[0].dtype)
    return RawPixels("uint8" if dtype == "uint8" else "float32", layer.max_value)


def is_language_model(model) -> bool:
    """Whether ``model`` is a :class:`~nas_tf.models.LanguageModel` (token ids to logits and states)."""
    from nas_tf.models.language_model import LanguageModel

    return isinstance(model, LanguageModel)


def write_vocab(path: str, vocab: Sequence[str]) -> str:
    """Writes the vocabulary, one word per line (line ``i``: the word of id ``i``), atomically."""
    from nas_tf.utils.io import atomic_write_text

    words = [str(w) for w in vocab]
    bad = [w for w in words if not w or "\n" in w or "\r" in w]
    if bad:
        raise ValueError(f"vocabulary words must be non-empty single lines, got {bad[0]!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, "".join(w + "\n" for w in words))
    return path


def read_vocab(path: str) -> tuple[str, ...]:
    """The vocabulary written by :func:`write_vocab`."""
    with open(path, encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f)


def random_raw_images(raw: RawPixels, shape: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """``n`` random raw images (uniform over the raw pixel range), for checks and timing."""
    rng = np.random.default_rng(seed)
    size = (n, *shape)
    if raw.dtype == "uint8":
        return rng.integers(0, int(raw.max_value) + 1, size=size).astype(np.uint8)
    return (rng.random(size) * raw.max_value).astype(np.float32)
