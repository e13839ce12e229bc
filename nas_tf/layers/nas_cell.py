"""NASCell: the recurrent cell found by Zoph & Le (2017), as a Keras 3 layer.

A drop-in replacement for ``tfa.rnn.NASCell`` (TensorFlow Addons, end of life,
no Keras 3 support) and ``tf.contrib.rnn.NASCell``: the same constructor
arguments, the same state order ``[c, m]``, the same weights in the same order
and shapes, the same equations (bias on the recurrent product only; optional
bias-free projection of the output). It is the :class:`TreeCell` of the
published ``nascell`` arch of the NAS recurrent space.

Moving weights from a TF Addons model: in the old environment save
``cell.get_weights()`` (``[recurrent_kernel, kernel, bias?, projection_weights?]``,
e.g. ``np.savez("nas_cell.npz", *cell.get_weights())``), then in Keras 3 build a
``NASCell`` with the same ``units``/``projection``/``use_bias`` and call
``cell.set_weights(...)`` with the arrays in the same order. See
docs/nascell.md.
"""

from __future__ import annotations

from typing import Any

import keras

from nas_tf.layers.tree_cell import TreeCell
from nas_tf.spaces.nas_rnn import nascell_arch


@keras.saving.register_keras_serializable(package="nas_tf")
class NASCell(TreeCell):
    """Neural Architecture Search (NAS) recurrent cell (Zoph & Le, ICLR 2017).

    Eight leaves, each ``act(x_t W_k (+ or *) (m_{t-1} U_k + b_k))``, combined
    in a binary tree with the cell state ``c`` injected at the second level::

        a0 = sigmoid(X0 + M0)   a1 = relu(X1 + M1)   a2 = sigmoid(X2 + M2)   a3 = relu(X3 * M3)
        a4 = tanh(X4 + M4)      a5 = sigmoid(X5 + M5) a6 = tanh(X6 + M6)     a7 = sigmoid(X7 + M7)
        b0 = tanh(tanh(a0 * a1) + c_{t-1})   b1 = tanh(a2 + a3)   b2 = tanh(a4 * a5)   b3 = sigmoid(a6 + a7)
        c_t = b0 * b1                        m_t = tanh(c_t * tanh(b2 + b3))   (then m_t @ projection_weights)

    where ``X = x_t @ kernel`` and ``M = m_{t-1} @ recurrent_kernel (+ bias)``
    are split in eight column blocks. Two fused matmuls per step.

    State ``[c, m]`` with sizes ``[units, projection or units]``; the output is
    the new ``m``. Weights, in this order (as in TF Addons):
    ``recurrent_kernel`` ``[P, 8 * units]``, ``kernel`` ``[D, 8 * units]``,
    ``bias`` ``[8 * units]`` (only with ``use_bias``) and
    ``projection_weights`` ``[units, P]`` (only with ``projection``), with D
    the input size and P ``projection or units``.

    Args:
        units: number of units of the cell (size of ``c`` and of every node).
        projection: optional output size: ``m`` is projected to it by a
            bias-free matrix.
        use_bias: add a bias to the recurrent product (default False, as in
            TF Addons).
        kernel_initializer: initializer of ``kernel``.
        recurrent_initializer: initializer of ``recurrent_kernel``.
        projection_initializer: initializer of ``projection_weights``.
        bias_initializer: initializer of ``bias``.
        dropout: rate of the input dropout, one mask per sequence (not in TF
            Addons; default off).
        recurrent_dropout: rate of the dropout on ``m_{t-1}``, one mask per
            sequence (variational dropout; not in TF Addons; default off).
        seed: seed of the dropout masks.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).

    Example:

    >>> cell = NASCell(32)
    >>> rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    >>> outputs, c, m = rnn(np.zeros((4, 10, 8), "float32"))
    >>> outputs.shape, c.shape, m.shape
    ((4, 10, 32), (4, 32), (4, 32))
    """

    # Number of leaves of the tree (column blocks of the fused kernels).
    _NAS_BASE = 8

    def __init__(
        self,
        units: int,
        projection: int | None = None,
        use_bias: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "glorot_uniform",
        projection_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.pop("arch", None)  # a TreeCell config carries it; NASCell's is fixed
        super().__init__(
            nascell_arch(),
            units,
            projection=projection,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            projection_initializer=projection_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            **kwargs,
        )

    def get_config(self):
        return {**keras.layers.Layer.get_config(self), **self._cell_config()}
