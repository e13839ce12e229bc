"""Which builder turns an arch of a given space into an image classifier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from nas_tf.spaces.arch import Arch

_IMAGE_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


def register_image_builder(space: str, builder: Callable[..., keras.Model]) -> None:
    """Registers ``builder(arch, input_shape, num_classes, **options)`` for a space."""
    _IMAGE_BUILDERS[space] = builder


def build_image_model(arch: Arch, input_shape: tuple, num_classes: int, **options: Any) -> keras.Model:
    """Builds the image classifier (logits output) of any image-space arch.

    Args:
        arch: a typed arch (``nas_tf.load_arch``).
        input_shape: ``(H, W, C)`` of the images.
        num_classes: number of classes (size of the logits).
        **options: builder options (weight decay, dropout, ...), see each
            space's builder.

    Returns:
        An unbuilt-optimizer ``keras.Model`` mapping images to logits.
    """
    if arch.space not in _IMAGE_BUILDERS:
        raise ValueError(
            f"arch space {arch.space!r} has no image-model builder; image spaces: {sorted(_IMAGE_BUILDERS)}"
        )
    return _IMAGE_BUILDERS[arch.space](arch, input_shape, num_classes, **options)


def image_spaces() -> list[str]:
    """The spaces with a registered image builder.

    The built-in builders register themselves when :mod:`nas_tf.models` is
    imported (which importing this module does first).
    """
    return sorted(_IMAGE_BUILDERS)


def from_space_config(cls: type, config: dict[str, Any], space: str) -> Any:
    """``cls(**config)`` where ``config["space"]`` is a space's ``config()``: the ``from_config`` of the supernets.

    Example:

    >>> from_space_config(EnasMacroSupernet, supernet.get_config(), "enas_macro")  # doctest: +SKIP
    """
    from nas_tf.spaces.base import make_space

    config = dict(config)
    config["space"] = make_space(space, **config["space"])
    return cls(**config)
