"""TreeCell: a Keras 3 RNN cell that realises any cell of the NAS recurrent space.

The cell computes the tree of a ``nas_rnn`` arch (see
:mod:`nas_tf.spaces.nas_rnn`). All leaves are fused: one matmul of the input
with ``kernel`` ``[D, N * units]`` and one of the previous output with
``recurrent_kernel`` ``[P, N * units]`` give the N leaf operands at once
(leaf ``k`` owns columns ``k * units .. (k + 1) * units - 1``). The optional
bias is added to the recurrent product only and the optional projection maps
``h_t`` from ``units`` to ``projection`` -- the layout of ``tfa.rnn.NASCell``,
which is this cell with the ``nascell`` arch (:class:`~nas_tf.layers.NASCell`).

Written with ``keras.ops`` only: it runs in ``keras.layers.RNN`` on the
TensorFlow (eager, ``tf.function``, XLA) and JAX backends.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.checks import positive_int, rate
from nas_tf.utils.keras_private import DropoutRNNCell

_ACTIVATIONS = {
    "identity": None,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
}


def _combine(kind: str, a, b):
    return ops.add(a, b) if kind == "add" else ops.multiply(a, b)


def _activate(kind: str, x):
    fn = _ACTIVATIONS[kind]
    return x if fn is None else fn(x)


def evaluate_tree(arch, x_proj, m_proj, c_prev):
    """One step of a tree cell, given the fused leaf products.

    Args:
        arch: a ``nas_rnn`` arch.
        x_proj: ``x_t @ kernel``, ``[batch, N * units]``.
        m_proj: ``h_{t-1} @ recurrent_kernel (+ bias)``, ``[batch, N * units]``.
        c_prev: ``c_{t-1}``, ``[batch, units]``.

    Returns:
        ``(h_t, c_t)``, both ``[batch, units]`` (``h_t`` before any projection).
    """
    base = arch.base
    kinds = {node.combination for node in arch.nodes[:base]}
    # One elementwise op over all leaves per combination kind, then one split.
    leaf_pre = {}
    for kind in kinds:
        leaf_pre[kind] = ops.split(_combine(kind, x_proj, m_proj), base, axis=-1)
    pre, out = [], []
    for k, (node, kids) in enumerate(zip(arch.nodes, arch.children())):
        if kids is None:
            value = leaf_pre[node.combination][k]
        else:
            value = _combine(node.combination, out[kids[0]], out[kids[1]])
        pre.append(value)
        result = _activate(node.activation, value)
        if k == arch.cell_inject_node:
            result = _activate(arch.cell_inject.activation, _combine(arch.cell_inject.combination, result, c_prev))
        out.append(result)
    return out[arch.root], pre[arch.cell_output_node]


@keras.saving.register_keras_serializable(package="nas_tf")
class TreeCell(DropoutRNNCell, keras.layers.Layer):
    """RNN cell computing the tree of a ``nas_rnn`` arch (Zoph & Le 2017, 3.4).

    State ``[c, h]`` (sizes ``[units, projection or units]``); the output is
    the new ``h``. Weights, in this order: ``recurrent_kernel``
    ``[P, N * units]``, ``kernel`` ``[D, N * units]``, ``bias`` ``[N * units]``
    (with ``use_bias``; added to the recurrent product), ``projection_weights``
    ``[units, P]`` (with ``projection``), where N is the arch's base, D the
    input size and P ``projection or units``.

    Args:
        arch: the cell: a ``nas_rnn`` :class:`~nas_tf.spaces.Arch`, its dict or
            JSON text, a file, or a published name such as ``"nascell"``.
        units: size of every tree node and of ``c``.
        projection: optional output size (a bias-free projection of ``h``).
        use_bias: add a bias to the recurrent product of the leaves.
        kernel_initializer: initializer of ``kernel``.
        recurrent_initializer: initializer of ``recurrent_kernel``.
        projection_initializer: initializer of ``projection_weights``.
        bias_initializer: initializer of ``bias``.
        dropout: rate of the input dropout (one mask per sequence).
        recurrent_dropout: rate of the dropout on ``h_{t-1}`` (one mask per
            sequence: variational dropout, Gal & Ghahramani 2016).
        seed: seed of the dropout masks.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).

    Example:

    >>> cell = TreeCell("nascell", units=16)
    >>> rnn = keras.layers.RNN(cell, return_sequences=True)
    >>> rnn(np.zeros((4, 10, 8), "float32")).shape
    (4, 10, 16)
    """

    def __init__(
        self,
        arch: Arch | dict | str,
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
        super().__init__(**kwargs)
        arch = load_arch(arch)
        if arch.space != "nas_rnn":
            raise ValueError(f"{type(self).__name__} needs a nas_rnn arch, got space {arch.space!r}")
        self.arch = arch
        self.units = positive_int("units", units)
        self.projection = positive_int("projection", projection, allow_none=True)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.projection_initializer = keras.initializers.get(projection_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout = rate("dropout", dropout)
        self.recurrent_dropout = rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        out = self.projection or self.units
        self.state_size = [self.units, out]
        self.output_size = out

    @property
    def base(self) -> int:
        """Number of leaves of the tree (blocks of the fused kernels)."""
        return self.arch.base

    def build(self, input_shape):
        input_size = input_shape[-1]
        if input_size is None:
            raise ValueError(f"{self.name}: the last dimension of the input must be known, got shape {input_shape}")
        width = self.base * self.units
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.output_size, width), initializer=self.recurrent_initializer
        )
        self.kernel = self.add_weight(name="kernel", shape=(input_size, width), initializer=self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(width,), initializer=self.bias_initializer)
        if self.projection is not None:
            self.projection_weights = self.add_weight(
                name="projection_weights", shape=(self.units, self.projection), initializer=self.projection_initializer
            )
        self.built = True

    def get_recurrent_dropout_mask(self, step_input):
        # keras.layers.RNN asks for this mask with the *first* state (c, of
        # size units) before its loop; the mask applies to h (size P).
        if getattr(self, "_recurrent_dropout_mask", None) is None and self.recurrent_dropout > 0:
            ones = ops.ones((ops.shape(step_input)[0], self.output_size), dtype=self.compute_dtype)
            self._recurrent_dropout_mask = keras.random.dropout(ones, self.recurrent_dropout, seed=self.seed_generator)
        return getattr(self, "_recurrent_dropout_mask", None)

    def call(self, inputs, states, training=False):
        c_prev, m_prev = states[0], states[1]
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            m_prev = m_prev * self.get_recurrent_dropout_mask(m_prev)
        x_proj = ops.matmul(inputs, self.kernel)
        m_proj = ops.matmul(m_prev, self.recurrent_kernel)
        if self.use_bias:
            m_proj = ops.add(m_proj, self.bias)
        h, c = evaluate_tree(self.arch, x_proj, m_proj, c_prev)
        if self.projection is not None:
            h = ops.matmul(h, self.projection_weights)
        return h, [c, h]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def _cell_config(self) -> dict:
        return {
            "units": self.units,
            "projection": self.projection,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "projection_initializer": keras.initializers.serialize(self.projection_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), "arch": self.arch.to_dict(), **self._cell_config()}
