"""Zero-padded channel concatenation of feature maps of different sizes.

Rule 3 of Zoph & Le (2017): when the layers feeding a layer have different
spatial sizes, the smaller ones are zero-padded to the largest height and
width before the depth concatenation. Smaller inputs keep their top-left
corner; the zeros go to the bottom and the right.

On the TensorFlow backend the layer calls :func:`nas_tf.ops.padded_concat`
(the compiled one-pass op when it is loaded, its pure-TF fallback otherwise,
and always the fallback while XLA compiles); on other Keras backends it uses
:func:`padded_concat_reference` (``keras.ops``).
"""

from __future__ import annotations

import keras
from keras import ops


def padded_concat_reference(inputs):
    """Pads every NHWC tensor to the largest H and W (bottom/right), concatenates channels.

    Written with ``keras.ops`` only, so it runs on every Keras backend and
    under XLA.

    Args:
        inputs: list of tensors ``[batch, H_i, W_i, C_i]`` with the same batch.

    Returns:
        ``[batch, max H_i, max W_i, sum C_i]``.
    """
    if len(inputs) == 1:
        return inputs[0]
    static_h = [x.shape[1] for x in inputs]
    static_w = [x.shape[2] for x in inputs]
    if None not in static_h and None not in static_w:
        height, width = max(static_h), max(static_w)
        heights, widths = static_h, static_w
    else:
        heights = [ops.shape(x)[1] for x in inputs]
        widths = [ops.shape(x)[2] for x in inputs]
        height = heights[0]
        width = widths[0]
        for h, w in zip(heights[1:], widths[1:]):
            height = ops.maximum(height, h)
            width = ops.maximum(width, w)
    padded = []
    for x, h, w in zip(inputs, heights, widths):
        if isinstance(h, int) and isinstance(w, int) and h == height and w == width:
            padded.append(x)
        else:
            padded.append(ops.pad(x, [[0, 0], [0, height - h], [0, width - w], [0, 0]]))
    return ops.concatenate(padded, axis=-1)


@keras.saving.register_keras_serializable(package="nas_tf")
class PaddedConcat(keras.layers.Layer):
    """Concatenates NHWC inputs on channels after zero-padding them to one size.

    Inputs of different heights and widths are padded with zeros at the bottom
    and the right up to the largest height and width (rule 3 of the NAS paper).

    With the TensorFlow backend and nas_tf's compiled ops loaded, the layer
    runs the custom op and sets ``supports_jit = False``, so Keras does not
    turn on XLA for the model (its ``jit_compile="auto"`` would on a GPU); if a
    caller compiles with XLA anyway, the layer traces the pure-TF fallback.
    Exports through :func:`nas_tf.export.export_saved_model` use the fallback
    unless asked to keep the custom ops.

    Example:

    >>> a = keras.Input((8, 8, 4)); b = keras.Input((4, 4, 6))
    >>> PaddedConcat()([a, b]).shape
    (None, 8, 8, 10)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if keras.backend.backend() == "tensorflow":
            from nas_tf.ops import custom_ops_loaded

            # XLA cannot compile the custom op (TF-NOTES 2a).
            self.supports_jit = not custom_ops_loaded()

    def _check(self, shapes) -> list[tuple]:
        if not isinstance(shapes, (list, tuple)) or not shapes or isinstance(shapes[0], (int, type(None))):
            raise ValueError(f"{self.name}: expected a non-empty list of NHWC inputs, got {shapes}")
        shapes = [tuple(s) for s in shapes]
        for i, s in enumerate(shapes):
            if len(s) != 4:
                raise ValueError(f"{self.name}: input {i} must be rank 4 (NHWC), got shape {s}")
        return shapes

    def build(self, input_shape):
        self._check(input_shape)
        self.built = True

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            from nas_tf.ops import padded_concat

            return padded_concat(list(inputs))
        return padded_concat_reference(list(inputs))

    def compute_output_shape(self, input_shape):
        input_shape = self._check(input_shape)

        def biggest(values):
            return None if any(v is None for v in values) else max(values)

        channels = [s[3] for s in input_shape]
        return (
            input_shape[0][0],
            biggest([s[1] for s in input_shape]),
            biggest([s[2] for s in input_shape]),
            None if None in channels else sum(channels),
        )

    def get_config(self):
        return super().get_config()
