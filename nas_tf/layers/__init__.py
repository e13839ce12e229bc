"""Keras 3 layers of nas_tf (all registered for serialisation)."""

from nas_tf.layers.padded_concat import PaddedConcat, padded_concat_reference

__all__ = ["PaddedConcat", "padded_concat_reference"]
