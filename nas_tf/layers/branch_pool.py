"""Max pooling for ops that run inside a branch function (``tf.switch_case``, a node function).

TensorFlow's fast CPU gradient of max pooling (the oneDNN pair) needs the
forward pool in the same graph as its gradient op. When the pool runs inside
a branch of ``tf.switch_case`` or a non-inlined graph function, its gradient
lands in another function and falls back to a kernel about five times slower
(and ``tf.nn.max_pool_with_argmax``, the usual way round, is slower still in
the forward pass). :func:`branch_max_pool` recomputes the pool next to its
gradient op instead: one cheap forward pool buys the fast pair back, with the
same values and the same gradient (``scripts/bench_enas.py`` measures the
supernets that use it).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def branch_max_pool(x: tf.Tensor, pool_size: int, strides: int) -> tf.Tensor:
    """``pool_size`` x ``pool_size`` SAME max pool whose gradient is fast inside a branch function.

    Args:
        x: NHWC input.
        pool_size: window size.
        strides: stride in both spatial dimensions.

    Returns:
        ``tf.nn.max_pool2d(x, pool_size, strides, "SAME")``.

    Example:

    ```python
    y = branch_max_pool(tf.ones([2, 8, 8, 4]), 3, 1)  # shape [2, 8, 8, 4]
    ```
    """
    ksize, stride = [1, pool_size, pool_size, 1], [1, strides, strides, 1]

    @tf.custom_gradient
    def pool(x):
        def grad(dy):
            again = tf.nn.max_pool2d(x, ksize, stride, "SAME")
            return tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=again, grad=dy, ksize=ksize, strides=stride, padding="SAME")

        return tf.nn.max_pool2d(x, ksize, stride, "SAME"), grad

    # The identity makes ``x`` a tensor of the current (branch) graph, which
    # the gradient function may then capture.
    return pool(tf.identity(x))


@keras.saving.register_keras_serializable(package="nas_tf")
class BranchMaxPooling2D(keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D`` (SAME padding, TensorFlow backend) computed by :func:`branch_max_pool`.

    For a pooling op that a supernet calls inside ``tf.switch_case``; the
    same arguments, config and outputs as the Keras layer it extends.

    Args:
        pool_size: window size (an int, or a square pair).
        strides: stride (an int, or a square pair; default ``pool_size``).
        **kwargs: further ``keras.layers.MaxPooling2D`` arguments.

    Example:

    ```python
    pool = BranchMaxPooling2D(3, 1, padding="same")
    y = pool(tf.ones([2, 8, 8, 4]))  # shape [2, 8, 8, 4]
    ```
    """

    def __init__(self, pool_size: int | tuple = 2, strides: int | tuple | None = None, **kwargs):
        super().__init__(pool_size, strides, **kwargs)
        if self.padding != "same" or self.data_format != "channels_last":
            raise ValueError(f"BranchMaxPooling2D supports padding='same', channels_last only, got {self.padding!r}, {self.data_format!r}")
        if self.pool_size[0] != self.pool_size[1] or self.strides[0] != self.strides[1]:
            raise ValueError(f"BranchMaxPooling2D needs square pools and strides, got {self.pool_size}, {self.strides}")

    def get_config(self) -> dict:
        config = super().get_config()
        # Lists, as JSON gives them back (Keras stores tuples).
        return {**config, "pool_size": list(config["pool_size"]), "strides": list(config["strides"])}

    def call(self, inputs):
        return branch_max_pool(inputs, self.pool_size[0], self.strides[0])
