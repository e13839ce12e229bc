"""NB201Cell: one NAS-Bench-201 cell as a Keras 3 layer.

Node 0 is the input; node ``j`` (1, 2, 3) is the sum over ``i < j`` of
``op(i -> j)(node i)``; the output is node 3. The ops are those of the
benchmark's network (AutoDL-Projects ``cell_operations.py``):

* ``none``: zeros (no weights; the edge is dropped from the sum);
* ``skip_connect``: identity;
* ``nor_conv_1x1`` / ``nor_conv_3x3``: ReLU -> conv (no bias, "same") -> BN
  (:class:`~nas_tf.layers.cell_ops.ReLUConvBN`);
* ``avg_pool_3x3``: 3x3 average pooling, stride 1, padding excluded from
  the mean (PyTorch's ``count_include_pad=False``; TensorFlow's "same"
  pooling does the same).

A node whose every input edge is ``none`` is zeros, and the ops reading it
still exist (and hold weights), as in the benchmark's network, so parameter
counts match its records. The cell keeps the channel count and the spatial
size of its input.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nas_tf.layers.cell_ops import ReLUConvBN
from nas_tf.spaces.nb201 import EDGES, NB201Arch

_CONV_SIZE = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@keras.saving.register_keras_serializable(package="nas_tf")
class NB201Cell(keras.layers.Layer):
    """A NAS-Bench-201 cell.

    Args:
        cell: the cell (an :class:`~nas_tf.spaces.NB201Arch` or its string).
        filters: channels of the input and of every node.
        batch_norm_momentum: batch-norm momentum (0.9: PyTorch's 0.1).
        batch_norm_epsilon: batch-norm epsilon.
        kernel_initializer: initializer of the conv kernels.
        kernel_regularizer: regularizer of the conv kernels.
        **kwargs: ``keras.layers.Layer`` arguments.

    Example:

    >>> cell = NB201Cell("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|", 16)
    >>> cell(keras.Input((8, 8, 16))).shape
    (None, 8, 8, 16)
    """

    def __init__(
        self,
        cell: NB201Arch | str,
        filters: int,
        batch_norm_momentum: float = 0.9,
        batch_norm_epsilon: float = 1e-5,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(cell, str):
            cell = NB201Arch.from_string(cell)
        if not isinstance(cell, NB201Arch):
            raise TypeError(f"NB201Cell: cell must be an NB201Arch or its string, got {type(cell).__name__}")
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"NB201Cell: filters must be a positive integer, got {filters!r}")
        if not 0.0 <= batch_norm_momentum < 1.0:
            raise ValueError(f"NB201Cell: batch_norm_momentum must be in [0, 1), got {batch_norm_momentum}")
        if batch_norm_epsilon <= 0:
            raise ValueError(f"NB201Cell: batch_norm_epsilon must be > 0, got {batch_norm_epsilon}")
        self.cell = cell
        self.filters = filters
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(f"NB201Cell: the input has {input_shape[-1]} channels, the cell {self.filters}")
        self.edge_ops = []
        for (j, i), op in zip(EDGES, self.cell.ops):
            if op in _CONV_SIZE:
                layer = ReLUConvBN(
                    self.filters,
                    _CONV_SIZE[op],
                    batch_norm_momentum=self.batch_norm_momentum,
                    batch_norm_epsilon=self.batch_norm_epsilon,
                    kernel_initializer=self.kernel_initializer,
                    kernel_regularizer=self.kernel_regularizer,
                    dtype=self.dtype_policy,
                    name=f"edge_{j}_{i}_{op}",
                )
            elif op == "avg_pool_3x3":
                layer = keras.layers.AveragePooling2D(
                    3, 1, padding="same", dtype=self.dtype_policy, name=f"edge_{j}_{i}_pool"
                )
            else:  # none, skip_connect: no layer
                layer = None
            if layer is not None:
                layer.build(input_shape)
            self.edge_ops.append(layer)

    def call(self, inputs, training=None):
        nodes = [inputs]
        for j in range(1, 4):
            terms = []
            for k, ((jj, i), op) in enumerate(zip(EDGES, self.cell.ops)):
                if jj != j or op == "none":
                    continue
                layer = self.edge_ops[k]
                if layer is None:
                    terms.append(nodes[i])
                elif isinstance(layer, ReLUConvBN):
                    terms.append(layer(nodes[i], training=training))
                else:
                    terms.append(layer(nodes[i]))
            if not terms:
                nodes.append(ops.zeros_like(inputs))
            else:
                total = terms[0]
                for t in terms[1:]:
                    total = total + t
                nodes.append(total)
        return nodes[-1]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            cell=self.cell.cell,
            filters=self.filters,
            batch_norm_momentum=self.batch_norm_momentum,
            batch_norm_epsilon=self.batch_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=(
                keras.regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None
            ),
        )
        return config
