"""Factorized reduction: halve the spatial size without losing half the pixels."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nas_tf")
class FactorizedReduction(keras.layers.Layer):
    """Stride-2 reduction to ``filters`` channels (Zoph et al. 2018, released code).

    Two paths see complementary pixels: path 1 takes every second pixel
    (1x1 average pooling, stride 2) and a 1x1 conv to ``filters // 2``; path 2
    shifts the image by one pixel up-left (zero at the bottom/right) and does
    the same with ``filters - filters // 2`` channels. The paths are
    concatenated and batch-normalised. With ``stride=1`` it is a 1x1 conv + BN.

    Args:
        filters: output channels.
        stride: 2 (reduce) or 1.
        relu: apply ReLU to the input first.
        regularizer: kernel regularizer of the convs.
        momentum: batch-norm momentum.
        epsilon: batch-norm epsilon.

    Example:

    >>> FactorizedReduction(16)(keras.ops.ones((2, 9, 8, 4))).shape
    (2, 5, 4, 16)
    """

    def __init__(
        self,
        filters: int,
        stride: int = 2,
        relu: bool = False,
        regularizer=None,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if filters < 2 and stride == 2:
            raise ValueError(f"filters must be >= 2 for a stride-2 factorized reduction, got {filters}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.filters = int(filters)
        self.stride = int(stride)
        self.relu = bool(relu)
        self.regularizer = keras.regularizers.get(regularizer)
        self.momentum = momentum
        self.epsilon = epsilon
        conv = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=self.regularizer)
        if self.stride == 1:
            self.convs = [keras.layers.Conv2D(self.filters, 1, name="conv", **conv)]
        else:
            half = self.filters // 2
            self.convs = [
                keras.layers.Conv2D(half, 1, name="path1_conv", **conv),
                keras.layers.Conv2D(self.filters - half, 1, name="path2_conv", **conv),
            ]
        self.bn = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name="bn")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expected NHWC input, got shape {tuple(input_shape)}")
        pooled = self.compute_output_shape(input_shape)[:3] + (input_shape[-1],)
        for conv in self.convs:
            conv.build(pooled)
        self.bn.build(self.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        if self.relu:
            x = ops.relu(x)
        if self.stride == 1:
            y = self.convs[0](x)
        else:
            path1 = x[:, ::2, ::2, :]
            shifted = ops.pad(x[:, 1:, 1:, :], [[0, 0], [0, 1], [0, 1], [0, 0]])
            path2 = shifted[:, ::2, ::2, :]
            y = ops.concatenate([self.convs[0](path1), self.convs[1](path2)], axis=-1)
        return self.bn(y, training=training)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.stride == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (n, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            stride=self.stride,
            relu=self.relu,
            regularizer=keras.regularizers.serialize(self.regularizer) if self.regularizer else None,
            momentum=self.momentum,
            epsilon=self.epsilon,
        )
        return config
