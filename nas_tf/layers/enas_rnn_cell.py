"""EnasRnnCell: a Keras 3 RNN cell that realises any cell of the ENAS recurrent space.

The cell of an ``enas_rnn`` arch (:mod:`nas_tf.spaces.enas_rnn`; the
corrected ``enas_lm`` formulation, PAPERS.md 3.5.3): node 0 is a tanh highway
of ``x_t`` and ``h_{t-1}``; node ``l`` is a highway of the node it reads,
``s_l = s_p + sigmoid(t) * (f_l(h) - s_p)`` with ``[h, t] = s_p W_l``; ``h_t``
is the mean of the arch's output nodes. No biases, no batch norm.

Weights: ``kernel`` ``[D, 2 * units]`` and ``recurrent_kernel``
``[units, 2 * units]`` (node 0; the authors' ``w_prev`` is these two stacked),
``node_kernel_1`` .. ``node_kernel_L`` ``[units, 2 * units]`` (``W_l``; one
variable per node: slicing one stacked variable inside the time loop would
make every step's gradient as large as all nodes' weights). Columns
``0 .. units-1`` of every product are the candidate ``h``, the rest the gate
``t``.

Dropout (variational: one mask per sequence, Gal & Ghahramani 2016):
``dropout`` masks ``x_t`` (the authors' ``x_mask``), ``recurrent_dropout``
masks ``h_{t-1}`` and the input of every node with the same mask (their
``layer_mask``); the highway term ``s_p`` itself is never masked.

Written with ``keras.ops`` only.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.checks import positive_int, rate
from nas_tf.utils.keras_private import DropoutRNNCell

ACTIVATION_FNS = {
    "tanh": ops.tanh,
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "identity": lambda x: x,
}


def highway(s_in, ht, activation):
    """One highway node: ``s_in + sigmoid(t) * (activation(h) - s_in)`` with ``[h, t] = ht``."""
    h, t = ops.split(ht, 2, axis=-1)
    return s_in + ops.sigmoid(t) * (activation(h) - s_in)


@keras.saving.register_keras_serializable(package="nas_tf")
class EnasRnnCell(DropoutRNNCell, keras.layers.Layer):
    """RNN cell computing the chain of highway nodes of an ``enas_rnn`` arch.

    State ``[h]`` (size ``units``); the output is the new ``h``.

    Args:
        arch: the cell: an ``enas_rnn`` :class:`~nas_tf.spaces.Arch`, its dict
            or JSON text, a file, or a published name (``"enas_rnn"``).
        units: size of ``h`` and of every node.
        kernel_initializer: initializer of ``kernel`` and ``node_kernel``.
        recurrent_initializer: initializer of ``recurrent_kernel``.
        dropout: rate of the variational dropout on ``x_t``.
        recurrent_dropout: rate of the variational dropout on ``h_{t-1}`` and
            on every node's input.
        seed: seed of the dropout masks.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).

    Example:

    >>> cell = EnasRnnCell("enas_rnn", units=16)
    >>> rnn = keras.layers.RNN(cell, return_sequences=True)
    >>> tuple(rnn(np.zeros((4, 10, 8), "float32")).shape)
    (4, 10, 16)
    """

    def __init__(
        self,
        arch: Arch | dict | str,
        units: int,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "glorot_uniform",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        arch = load_arch(arch)
        if arch.space != "enas_rnn":
            raise ValueError(f"{type(self).__name__} needs an enas_rnn arch, got space {arch.space!r}")
        self.arch = arch
        self.units = positive_int("units", units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.dropout = rate("dropout", dropout)
        self.recurrent_dropout = rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [self.units]
        self.output_size = self.units
        self._outputs = arch.output_nodes()

    def build(self, input_shape):
        input_size = input_shape[-1]
        if input_size is None:
            raise ValueError(f"{self.name}: the last dimension of the input must be known, got shape {input_shape}")
        width = 2 * self.units
        self.kernel = self.add_weight(name="kernel", shape=(input_size, width), initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, width), initializer=self.recurrent_initializer
        )
        self.node_kernels = [
            self.add_weight(name=f"node_kernel_{k}", shape=(self.units, width), initializer=self.kernel_initializer)
            for k in range(1, self.arch.num_nodes + 1)
        ]
        self.built = True

    def call(self, inputs, states, training=False):
        h_prev = states[0]
        mask = None
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            mask = self.get_recurrent_dropout_mask(h_prev)
        h_in = h_prev if mask is None else h_prev * mask
        s0 = highway(h_prev, ops.matmul(inputs, self.kernel) + ops.matmul(h_in, self.recurrent_kernel), ops.tanh)
        nodes = [s0]
        for k, node in enumerate(self.arch.nodes):
            s_in = nodes[node.input]
            x = s_in if mask is None else s_in * mask
            nodes.append(highway(s_in, ops.matmul(x, self.node_kernels[k]), ACTIVATION_FNS[node.activation]))
        out = ops.mean(ops.stack([nodes[k] for k in self._outputs], axis=0), axis=0)
        return out, [out]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "arch": self.arch.to_dict(),
            "units": self.units,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
