"""Word-level language model over any recurrent cell (Zaremba et al. 2014; Gal 2016).

Embedding -> stacked RNN layers (two by default) of one cell kind -> softmax
over the vocabulary, optionally with the softmax weights tied to the embedding
(Press & Wolf 2017; Inan et al. 2017). Regularised with variational dropout
(Gal & Ghahramani 2016): whole word types dropped from the embedding, and
dropout masks that stay the same at every time step on the RNN inputs, outputs
and recurrent connections.

The model maps ``tokens [batch, T]`` and the RNN states to
``logits [batch, T, vocab]`` and the new states, so training can carry the
state from one window of truncated back-propagation through time to the next
(:mod:`nas_tf.tasks.text.train`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

from nas_tf.layers.enas_rnn_cell import EnasRnnCell
from nas_tf.layers.nas_cell import NASCell
from nas_tf.layers.tree_cell import TreeCell
from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.checks import rate

# Cells named by a word; anything else is an arch (object, dict, JSON, file or
# published name) of a space with a registered cell builder.
CELL_NAMES = ("lstm", "gru", "nascell")

# The language model a final training builds by default (FinalLMConfig.model_options; the exporter
# builds the same when it has only an arch).
FINAL_MODEL_OPTIONS: dict[str, Any] = {"units": 200, "num_layers": 2, "tie_weights": True, "output_dropout": 0.3}

CellBuilder = Callable[..., keras.layers.Layer]
_CELL_BUILDERS: dict[str, CellBuilder] = {}


def register_cell_builder(space: str, builder: CellBuilder) -> None:
    """Makes the archs of ``space`` usable as language-model cells.

    Args:
        space: the search space of the archs (e.g. ``"nas_rnn"``).
        builder: ``builder(arch, units, recurrent_dropout=..., seed=..., **kwargs)``
            returning a Keras RNN cell.
    """
    _CELL_BUILDERS[space] = builder


def recurrent_spaces() -> list[str]:
    """Spaces whose archs are recurrent cells (language models train them)."""
    return sorted(_CELL_BUILDERS)


register_cell_builder("nas_rnn", lambda arch, units, **kwargs: TreeCell(arch, units, **kwargs))
register_cell_builder("enas_rnn", lambda arch, units, **kwargs: EnasRnnCell(arch, units, **kwargs))


def cell_spec(cell: str | Arch | dict) -> str | dict:
    """The JSON-able form of a cell choice: a name of :data:`CELL_NAMES` or an arch dict.

    Raises:
        ValueError: the cell is neither a known name nor an arch of a
            recurrent space (:func:`recurrent_spaces`).
    """
    if isinstance(cell, str) and cell.lower() in CELL_NAMES:
        return cell.lower()
    kinds = f"one of {', '.join(CELL_NAMES)} or an arch of the spaces {', '.join(recurrent_spaces())}"
    try:
        arch = load_arch(cell)
    except ValueError as e:
        raise ValueError(f"cell: {cell!r} is not {kinds} ({e})") from None
    if arch.space not in _CELL_BUILDERS:
        raise ValueError(f"cell: a recurrent cell must be {kinds}, got an arch of space {arch.space!r}")
    return arch.to_dict()


def make_cell(cell: str | Arch | dict, units: int, recurrent_dropout: float = 0.0, seed: int | None = None, **kwargs):
    """One Keras RNN cell: ``"lstm"``, ``"gru"``, ``"nascell"`` or the cell of an arch.

    A ``nas_rnn`` arch gives its :class:`~nas_tf.layers.TreeCell`; other
    recurrent spaces plug in with :func:`register_cell_builder`.

    Args:
        cell: the cell kind (see :func:`cell_spec`).
        units: its size.
        recurrent_dropout: rate of the variational dropout on the recurrent
            input (the same mask at every step).
        seed: seed of the dropout masks.
        **kwargs: more cell arguments (``name``, ...).
    """
    spec = cell_spec(cell)
    if spec == "lstm":
        return keras.layers.LSTMCell(units, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
    if spec == "gru":
        return keras.layers.GRUCell(units, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
    if spec == "nascell":
        return NASCell(units, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
    arch = load_arch(spec)
    return _CELL_BUILDERS[arch.space](arch, units, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)


def _state_sizes(cell) -> list[int]:
    size = cell.state_size
    return [int(s) for s in size] if isinstance(size, (list, tuple)) else [int(size)]


@keras.saving.register_keras_serializable(package="nas_tf")
class LanguageModel(keras.Model):
    """Embedding, ``num_layers`` RNN layers of one cell, softmax (optionally tied).

    Call it as ``logits, states = model(tokens, states=None, training=False)``:
    ``tokens`` int ``[batch, T]``; ``states`` the flat list of every layer's
    states (None: zeros), as returned by the previous call; ``logits``
    ``[batch, T, vocab_size]``.

    Args:
        vocab_size: number of words.
        cell: ``"lstm"``, ``"gru"``, ``"nascell"``, or the arch of a
            recurrent space (an :class:`~nas_tf.spaces.Arch`, its dict or
            JSON, a file, a published name), e.g. a nas_rnn arch realised by
            :class:`~nas_tf.layers.TreeCell` (see :func:`make_cell`).
        units: size of every RNN layer.
        num_layers: number of stacked RNN layers.
        embedding_dim: word-vector size (default ``units``).
        tie_weights: use the embedding matrix as the softmax weights (needs
            ``embedding_dim == units``).
        embedding_dropout: rate at which whole word types are dropped from the
            embedding matrix (one mask per batch).
        input_dropout: variational dropout on the embedded words (one mask per
            sequence, shared by all time steps).
        output_dropout: variational dropout on the output of every RNN layer.
        recurrent_dropout: variational dropout on every layer's recurrent input.
        init_scale: embedding (and untied softmax) weights start
            ``U(-init_scale, init_scale)``.
        seed: seed of the dropout masks.
        **kwargs: ``keras.Model`` arguments (``name``).

    Example:

    >>> model = LanguageModel(vocab_size=100, cell="nascell", units=32)
    >>> logits, states = model(np.zeros((4, 10), "int32"))
    >>> logits.shape, len(states)
    ((4, 10, 100), 4)
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str | Arch | dict = "lstm",
        units: int = 200,
        num_layers: int = 2,
        embedding_dim: int | None = None,
        tie_weights: bool = False,
        embedding_dropout: float = 0.0,
        input_dropout: float = 0.0,
        output_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        init_scale: float = 0.1,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1):
            raise ValueError(f"embedding_dim must be a positive integer or None, got {embedding_dim!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
        self.vocab_size = vocab_size
        self.cell_spec = self._cell_spec(cell)
        self.units = units
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim or units
        self.tie_weights = bool(tie_weights)
        self.embedding_dropout = rate("embedding_dropout", embedding_dropout)
        self.input_dropout = rate("input_dropout", input_dropout)
        self.output_dropout = rate("output_dropout", output_dropout)
        self.recurrent_dropout = rate("recurrent_dropout", recurrent_dropout)
        self.init_scale = float(init_scale)
        self.seed = seed
        init = keras.initializers.RandomUniform(-self.init_scale, self.init_scale, seed=seed)
        self.embedding = keras.layers.Embedding(vocab_size, self.embedding_dim, embeddings_initializer=init, name="embedding")
        self.rnns = []
        for i in range(num_layers):
            layer_seed = None if seed is None else seed + 1 + i
            c = self._make_cell(i, layer_seed)
            self.rnns.append(keras.layers.RNN(c, return_sequences=True, return_state=True, name=f"rnn_{i}"))
        out_size = self.rnns[-1].cell.output_size
        if self.tie_weights and out_size != self.embedding_dim:
            raise ValueError(
                f"tie_weights needs the RNN output size ({out_size}) to equal embedding_dim ({self.embedding_dim})"
            )
        variational = (None, 1, None)  # one mask per sequence, shared by every time step
        self.input_drop = keras.layers.Dropout(self.input_dropout, noise_shape=variational, seed=seed, name="input_dropout")
        self.output_drops = [
            keras.layers.Dropout(
                self.output_dropout,
                noise_shape=variational,
                seed=None if seed is None else seed + 100 + i,
                name=f"output_dropout_{i}",
            )
            for i in range(num_layers)
        ]
        self.decoder = None if self.tie_weights else keras.layers.Dense(vocab_size, kernel_initializer=init, name="softmax")
        self._embedding_seed = keras.random.SeedGenerator(seed)

    # Hooks for models whose cell is not one arch (the ENAS recurrent supernet).

    def _cell_spec(self, cell):
        """The JSON-able description of ``cell`` kept in ``cell_spec``."""
        return cell_spec(cell)

    def _make_cell(self, index: int, seed: int | None):
        """The RNN cell of layer ``index``."""
        return make_cell(
            self.cell_spec, self.units, recurrent_dropout=self.recurrent_dropout, seed=seed, name=f"cell_{index}"
        )

    # ----------------------------------------------------------------- shape

    def state_sizes(self) -> list[int]:
        """Sizes of the flat state list (per layer, in the cell's state order)."""
        return [s for rnn in self.rnns for s in _state_sizes(rnn.cell)]

    def initial_states(self, batch_size: int) -> list:
        """Zero states for a batch."""
        return [ops.zeros((batch_size, s), dtype=self.compute_dtype) for s in self.state_sizes()]

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        dim = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((None, None, dim))
            dim = rnn.cell.output_size
        if self.tie_weights:
            self.softmax_bias = self.add_weight(name="softmax_bias", shape=(self.vocab_size,), initializer="zeros")
        else:
            self.decoder.build((None, None, dim))
        self.built = True

    # ------------------------------------------------------------------ call

    def call(self, tokens, states=None, training=False):
        tokens = ops.cast(tokens, "int32")
        table = self.embedding.embeddings
        if training and self.embedding_dropout > 0:
            keep = keras.random.dropout(
                ops.ones((self.vocab_size, 1), dtype=table.dtype), self.embedding_dropout, seed=self._embedding_seed
            )
            table = table * keep
        x = ops.take(table, tokens, axis=0)
        x = self.input_drop(x, training=training)
        new_states, offset = [], 0
        for rnn, drop in zip(self.rnns, self.output_drops):
            n = len(_state_sizes(rnn.cell))
            initial = None if states is None else list(states[offset : offset + n])
            out = rnn(x, initial_state=initial, training=training)
            x, layer_states = out[0], list(out[1:])
            new_states.extend(layer_states)
            offset += n
            x = drop(x, training=training)
        if self.tie_weights:
            logits = ops.add(ops.matmul(x, ops.transpose(self.embedding.embeddings)), self.softmax_bias)
        else:
            logits = self.decoder(x)
        return logits, new_states

    # --------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "cell": self.cell_spec,
            "units": self.units,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            "tie_weights": self.tie_weights,
            "embedding_dropout": self.embedding_dropout,
            "input_dropout": self.input_dropout,
            "output_dropout": self.output_dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "init_scale": self.init_scale,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def describe(self) -> str:
        cell = self.cell_spec if isinstance(self.cell_spec, str) else "arch " + json.dumps(self.cell_spec)[:60]
        return f"{self.num_layers} x {self.units} {cell}, vocab {self.vocab_size}, tied={self.tie_weights}"


def build_language_model(vocab_size: int, cell: str | Arch | dict = "lstm", **options: Any) -> LanguageModel:
    """Builds (and creates the weights of) a :class:`LanguageModel`.

    Args:
        vocab_size: number of words.
        cell: the recurrent cell (see :class:`LanguageModel`).
        **options: the other :class:`LanguageModel` arguments.

    Returns:
        The built model.

    Example:

    >>> model = build_language_model(1000, nas_tf.load_arch("nascell"), units=64, tie_weights=True)
    >>> model.count_params() > 0
    True
    """
    model = LanguageModel(vocab_size, cell, **options)
    model.build()
    return model


def lm_serving_signature(model: LanguageModel) -> Sequence:
    """``tf.TensorSpec`` s of ``(tokens, *states)`` for SavedModel endpoints."""
    import tensorflow as tf

    return [tf.TensorSpec((None, None), tf.int32, name="tokens")] + [
        tf.TensorSpec((None, s), tf.float32, name=f"state_{i}") for i, s in enumerate(model.state_sizes())
    ]
