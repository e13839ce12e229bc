"""The ENAS recurrent supernet: every cell of the ``enas_rnn`` space, shared weights.

:class:`EnasRnnSupernetLM` is the :class:`~nas_tf.models.LanguageModel`
(embedding, variational dropouts, tied softmax, carried states) whose cell is
:class:`EnasRnnSupernetCell`; it is called as
``logits, states = supernet(tokens, arch, states, training=...)`` with the
arch as an int32 token vector of ``space.decisions``, so a train step is
traced once for all architectures.

**Sharing** (PAPERS.md 3.5.3). Node 0's weights are shared by every cell.
Node ``l`` owns a bank ``[l * A, units, 2 * units]``: one matrix per (earlier
node it may read, activation) -- the corrected code's ``w_skip[l][f, prev]``
(``weights_per_activation=False`` gives the paper's one matrix per (l, prev),
bank ``[l, units, 2 * units]``).

**Weight selection** (``weight_selection``), chosen by measurement
(``scripts/bench_enas_rnn.py``, docs/benchmarks.md):

* ``"gather"`` (default): :func:`gather_shared` (``tf.gather``) copies each
  node's matrix **once per call**, before the loop over time steps, so each
  step multiplies by ``L`` plain ``[units, 2 * units]`` matrices, as the
  static child does, and each step's gradient is that of the selected
  matrices only;
* ``"gather_matmul"``: every step multiplies by the chosen matrix read in
  place from its bank (:func:`nas_tf.ops.gather_matmul`, no copy). Its bank
  gradient is produced inside the time loop, which accumulates it over the
  steps as large as the whole bank.

**Only the chosen activation runs** (``tf.switch_case``;
``activation_selection="all"`` computes the four and picks one, as the
authors' code). The node a node reads is picked by a switch over the earlier nodes
(gathering from their stack costs 15-20% more per step).

**No batch norm**, as the corrected code (the old code's BN on the node
inputs and on the output made the search and the final cell differ).

**Dropouts** (``enas_lm``'s names, PAPERS.md 3.6.2): ``embedding_dropout``
(``drop_e``, whole words), ``input_dropout`` (``drop_i``, the embedded
words), ``x_dropout`` (``drop_x``: the cell's own mask on ``x_t`` before node
0, one mask per sequence), ``recurrent_dropout`` (``drop_l``: on ``h_{t-1}``
and on every node's input), ``output_dropout`` (``drop_o``). ``input_dropout``
and ``x_dropout`` act one after the other on the same ``x_t``, as in the
authors' code (keep ``0.8 * 0.25`` with their search values).

:meth:`EnasRnnSupernetLM.copy_to_child` copies the weights one arch selects
into a :class:`~nas_tf.models.LanguageModel` of that arch built by
:meth:`EnasRnnSupernetLM.build_child` (the :class:`~nas_tf.layers.EnasRnnCell`
that ``scripts/train_final.py`` trains); both compute the same function
(tested).
"""

from __future__ import annotations

import functools
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nas_tf.layers.enas_rnn_cell import highway
from nas_tf.models.language_model import LanguageModel, build_language_model
from nas_tf.models.registry import from_space_config
from nas_tf.ops import gather_matmul
from nas_tf.spaces.enas_rnn import EnasRnnArch, EnasRnnSpace
from nas_tf.utils.checks import positive_int, rate
from nas_tf.utils.keras_private import DropoutRNNCell

WEIGHT_SELECTIONS = ("gather", "gather_matmul")
_ACTS = {"tanh": tf.tanh, "relu": tf.nn.relu, "sigmoid": tf.sigmoid, "identity": tf.identity}


def gather_shared(bank, index: tf.Tensor) -> tf.Tensor:
    """``bank[index]``: the shared-weight selection of the ``"gather"`` mode (once per call)."""
    return tf.gather(bank, index)


class EnasRnnSupernetCell(DropoutRNNCell, keras.layers.Layer):
    """All cells of an ``enas_rnn`` space in one RNN cell with shared weights.

    The arch is given per call of the owning :class:`EnasRnnSupernetLM`
    (:meth:`select`), which gathers each node's matrix before the time loop.

    Args:
        space: the ENAS recurrent space.
        units: size of ``h`` and of every node.
        weights_per_activation: one matrix per (node, input, activation) (the
            corrected code) instead of per (node, input) (the paper).
        activation_selection: ``"switch"`` (only the chosen activation runs)
            or ``"all"`` (all four run, one is picked).
        weight_selection: ``"gather"`` (each node's matrix copied once per
            call) or ``"gather_matmul"`` (read in place at every step); see
            the module docstring.
        kernel_initializer: initializer of every input and node kernel.
        recurrent_initializer: initializer of node 0's recurrent kernel.
        dropout: variational dropout on ``x_t``.
        recurrent_dropout: variational dropout on ``h_{t-1}`` and every
            node's input.
        seed: seed of the dropout masks.
    """

    def __init__(
        self,
        space: EnasRnnSpace,
        units: int,
        weights_per_activation: bool = True,
        activation_selection: str = "switch",
        weight_selection: str = "gather",
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "glorot_uniform",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(space, EnasRnnSpace):
            raise ValueError(f"space must be an EnasRnnSpace, got {type(space).__name__}")
        if activation_selection not in ("switch", "all"):
            raise ValueError(f"activation_selection must be 'switch' or 'all', got {activation_selection!r}")
        if weight_selection not in WEIGHT_SELECTIONS:
            raise ValueError(f"weight_selection must be 'gather' or 'gather_matmul', got {weight_selection!r}")
        self.space = space
        self.units = positive_int("units", units)
        self.weights_per_activation = bool(weights_per_activation)
        self.activation_selection = activation_selection
        self.weight_selection = weight_selection
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.dropout = rate("dropout", dropout)
        self.recurrent_dropout = rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [self.units]
        self.output_size = self.units
        self.num_activations = len(space.activations)
        self._acts = [_ACTS[a] for a in space.activations]
        self._layout = np.asarray(space.token_layout(), dtype=np.int32)  # [L, 2]: (input, activation) offsets
        self._selected = None

    @property
    def per_input(self) -> int:
        """Matrices per earlier node in each bank."""
        return self.num_activations if self.weights_per_activation else 1

    def build(self, input_shape):
        input_size = input_shape[-1]
        if input_size is None:
            raise ValueError(f"{self.name}: the last dimension of the input must be known, got shape {input_shape}")
        width = 2 * self.units
        self.kernel = self.add_weight(name="kernel", shape=(input_size, width), initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, width), initializer=self.recurrent_initializer
        )
        self.banks = [
            self.add_weight(
                name=f"node{k}_kernels", shape=(k * self.per_input, self.units, width), initializer=self.kernel_initializer
            )
            for k in range(1, self.space.num_nodes + 1)
        ]
        self.built = True

    # ------------------------------------------------------------ selection

    def bank_index(self, prev, act):
        """Row of node ``l``'s bank for input ``prev`` and activation ``act``."""
        return prev * self.per_input + act if self.weights_per_activation else prev

    def select(self, arch) -> None:
        """Selects the arch (int32 tokens) for the next call: gathers every node's matrix."""
        arch = tf.convert_to_tensor(arch, tf.int32)
        prevs = tf.gather(arch, self._layout[:, 0])
        acts = tf.gather(arch, self._layout[:, 1])
        L = self.space.num_nodes
        if self.space.output == "mean":
            weights = tf.fill([L], 1.0 / L)
        else:  # loose ends: nodes 1..L no node reads
            read = tf.reduce_any(tf.equal(prevs[None, :], tf.range(1, L + 1)[:, None]), axis=1)
            loose = 1.0 - tf.cast(read, tf.float32)
            weights = loose / tf.reduce_sum(loose)
        index = [self.bank_index(prevs[k], acts[k]) for k in range(L)]
        if self.weight_selection == "gather":
            kernels = [gather_shared(self.banks[k], index[k]) for k in range(L)]
        else:  # read in place at every step
            kernels = [functools.partial(gather_matmul, weights=self.banks[k], index=index[k]) for k in range(L)]
        self._selected = {"prevs": prevs, "acts": acts, "kernels": kernels, "output_weights": weights}

    def clear(self) -> None:
        self._selected = None

    def _activate(self, act, h):
        if self.activation_selection == "all":
            return tf.gather(tf.stack([f(h) for f in self._acts]), act)
        return tf.switch_case(act, [lambda f=f: f(h) for f in self._acts])

    def call(self, inputs, states, training=False):
        if self._selected is None:
            raise RuntimeError(f"{self.name}: call the supernet as supernet(tokens, arch, ...); no arch was selected")
        sel = self._selected
        h_prev = states[0]
        mask = None
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            mask = self.get_recurrent_dropout_mask(h_prev)
        h_in = h_prev if mask is None else h_prev * mask
        s0 = highway(h_prev, tf.matmul(inputs, self.kernel) + tf.matmul(h_in, self.recurrent_kernel), tf.tanh)
        nodes = [s0]
        for k in range(self.space.num_nodes):
            prev, act = sel["prevs"][k], sel["acts"][k]
            # The node read: a switch returning one of the earlier nodes (no stacked copy).
            s_in = nodes[0] if k == 0 else tf.switch_case(prev, [lambda n=n: n for n in nodes])
            x = s_in if mask is None else s_in * mask
            kernel = sel["kernels"][k]
            ht = kernel(x) if callable(kernel) else tf.matmul(x, kernel)
            nodes.append(highway(s_in, ht, lambda h, a=act: self._activate(a, h)))
        out = tf.tensordot(sel["output_weights"], tf.stack(nodes[1:]), axes=1)
        return out, [out]

    def get_initial_state(self, batch_size=None):
        return [tf.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "space": self.space.config(),
            "units": self.units,
            "weights_per_activation": self.weights_per_activation,
            "activation_selection": self.activation_selection,
            "weight_selection": self.weight_selection,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return from_space_config(cls, config, "enas_rnn")


@keras.saving.register_keras_serializable(package="nas_tf")
class EnasRnnSupernetLM(LanguageModel):
    """A language model over every cell of an ``enas_rnn`` space, weights shared.

    Call it as ``logits, states = supernet(tokens, arch, states=None,
    training=False)``: ``arch`` int32 ``[space.decisions.num_tokens]``; the
    rest as :class:`~nas_tf.models.LanguageModel`.

    Args:
        space: the ENAS recurrent space.
        vocab_size: number of words.
        units: size of the cell (and of the embedding unless
            ``embedding_dim``).
        num_layers: stacked RNN layers (ENAS: 1).
        weights_per_activation: see :class:`EnasRnnSupernetCell`.
        activation_selection: see :class:`EnasRnnSupernetCell`.
        x_dropout: variational dropout of every cell on its input ``x_t``
            (``enas_lm``'s ``drop_x``, 0.75 in its search; the cell's
            ``dropout``), in training only.
        weight_selection: see :class:`EnasRnnSupernetCell`.
        **options: the other :class:`~nas_tf.models.LanguageModel` arguments
            (``tie_weights``, ``embedding_dropout``, ``input_dropout``,
            ``output_dropout``, ``recurrent_dropout``, ``init_scale``,
            ``seed``, ...).

    Example:

    >>> space = EnasRnnSpace(num_nodes=4)
    >>> lm = EnasRnnSupernetLM(space, vocab_size=50, units=16, tie_weights=True)
    >>> lm.build()
    >>> logits, states = lm(np.zeros((2, 5), "int32"), space.to_tokens(space.from_tokens([0, 1, 1, 0, 2, 3, 0, 0])))
    >>> logits.shape
    TensorShape([2, 5, 50])
    """

    def __init__(
        self,
        space: EnasRnnSpace,
        vocab_size: int,
        units: int = 200,
        num_layers: int = 1,
        weights_per_activation: bool = True,
        activation_selection: str = "switch",
        x_dropout: float = 0.0,
        weight_selection: str = "gather",
        **options,
    ):
        if not isinstance(space, EnasRnnSpace):
            raise ValueError(f"space must be an EnasRnnSpace, got {type(space).__name__}")
        # Read by the cell hooks, which LanguageModel.__init__ calls.
        self.space = space
        self.weights_per_activation = bool(weights_per_activation)
        self.activation_selection = activation_selection
        self.x_dropout = rate("x_dropout", x_dropout)
        self.weight_selection = weight_selection
        if "cell" in options:
            raise ValueError("EnasRnnSupernetLM: the cell is the supernet cell of `space`; do not pass `cell`")
        super().__init__(vocab_size, cell=None, units=units, num_layers=num_layers, **options)

    def _cell_spec(self, cell):
        return {"supernet": self.space.name, **self.space.config()}

    def _make_cell(self, index, seed):
        return EnasRnnSupernetCell(
            self.space,
            self.units,
            weights_per_activation=self.weights_per_activation,
            activation_selection=self.activation_selection,
            dropout=self.x_dropout,
            weight_selection=self.weight_selection,
            recurrent_dropout=self.recurrent_dropout,
            seed=seed,
            name=f"cell_{index}",
        )

    def call(self, tokens, arch, states=None, training=False):
        cells = [rnn.cell for rnn in self.rnns]
        for cell in cells:
            cell.select(arch)
        try:
            return super().call(tokens, states=states, training=training)
        finally:
            for cell in cells:
                cell.clear()

    # ---------------------------------------------------------- children

    def child_options(self) -> dict[str, Any]:
        """The :class:`~nas_tf.models.LanguageModel` arguments of a child of the same shape."""
        config = LanguageModel.get_config(self)
        for key in ("name", "vocab_size", "cell"):
            config.pop(key)
        return config

    def build_child(self, arch: EnasRnnArch, copy_weights: bool = True) -> LanguageModel:
        """The standalone language model of ``arch`` (an :class:`~nas_tf.layers.EnasRnnCell`).

        Args:
            arch: an arch of this supernet's space.
            copy_weights: copy the weights ``arch`` selects into it.
        """
        self.space.to_tokens(arch)  # fails with a clear message if the arch is outside the space
        child = build_language_model(self.vocab_size, arch, **self.child_options())
        if copy_weights:
            self.copy_to_child(arch, child)
        return child

    def copy_to_child(self, arch: EnasRnnArch, child: LanguageModel) -> None:
        """Copies the weights ``arch`` selects into ``child`` (built by :meth:`build_child`)."""
        tokens = self.space.to_tokens(arch)
        if child.num_layers != self.num_layers or child.units != self.units:
            raise ValueError("copy_to_child: the child must have the supernet's units and num_layers")
        child.embedding.embeddings.assign(self.embedding.embeddings)
        if self.tie_weights:
            child.softmax_bias.assign(self.softmax_bias)
        else:
            for src, dst in zip(self.decoder.weights, child.decoder.weights):
                dst.assign(src)
        layout = self.space.token_layout()
        for rnn_s, rnn_c in zip(self.rnns, child.rnns):
            src, dst = rnn_s.cell, rnn_c.cell
            dst.kernel.assign(src.kernel)
            dst.recurrent_kernel.assign(src.recurrent_kernel)
            for k, (i, a) in enumerate(layout):
                dst.node_kernels[k].assign(src.banks[k][int(src.bank_index(int(tokens[i]), int(tokens[a])))])

    def get_config(self) -> dict[str, Any]:
        config = self.child_options()
        return {
            "name": self.name,
            "space": self.space.config(),
            "vocab_size": self.vocab_size,
            **config,
            "weights_per_activation": self.weights_per_activation,
            "activation_selection": self.activation_selection,
            "x_dropout": self.x_dropout,
            "weight_selection": self.weight_selection,
        }

    @classmethod
    def from_config(cls, config):
        return from_space_config(cls, config, "enas_rnn")
