"""ScheduledDropPath (Zoph et al. 2018, section 4; released code ``_apply_drop_path``).

During training every op output of a cell (identity excepted) is dropped
for whole examples: ``x <- x / k * m`` with a per-example mask
``m ~ Bernoulli(k)``. The keep probability ``k`` falls with the depth of the
cell and with training progress (the released code's default, "v3"):

    k_layer = 1 - (cell_index + 1) / total_cells * (1 - keep_prob)
    k       = 1 - min(1, progress) * (1 - k_layer)

where ``progress`` is the fraction of training done. Training loops share
one progress variable with every drop-path layer of a model through
:func:`attach_training_progress`; ``nas_tf``'s training loop
(:func:`~nas_tf.tasks.image.train.train_classifier`) sets it before every
step. A layer with no progress variable attached uses ``progress = 1`` (the
depth-scaled keep probability of the end of training).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops


def drop_path_keep_prob(keep_prob: float, cell_index: int, total_cells: int, progress: float = 1.0) -> float:
    """The scheduled keep probability, as a plain number.

    Args:
        keep_prob: base keep probability (the value reached by the last cell
            at the end of training).
        cell_index: 0-based index of the cell in the network (stem cells
            included).
        total_cells: number of cells of the network.
        progress: fraction of training done (clipped to at most 1).

    Returns:
        The keep probability.

    Example:

    >>> round(drop_path_keep_prob(0.6, cell_index=9, total_cells=20, progress=0.5), 4)
    0.9
    """
    layer_keep = 1.0 - (cell_index + 1) / float(total_cells) * (1.0 - keep_prob)
    return 1.0 - min(1.0, float(progress)) * (1.0 - layer_keep)


@keras.saving.register_keras_serializable(package="nas_tf")
class ScheduledDropPath(keras.layers.Layer):
    """Drops whole examples of a cell op's output, with the scheduled keep probability.

    Args:
        keep_prob: base keep probability in (0, 1].
        cell_index: 0-based index of the cell the op belongs to.
        total_cells: number of cells of the network.
        seed: seed of the drop masks (None: Keras' global seed).
        **kwargs: ``keras.layers.Layer`` arguments.

    Example:

    >>> layer = ScheduledDropPath(0.6, cell_index=19, total_cells=20)
    >>> round(layer.keep_probability(progress=1.0), 4)
    0.6
    """

    def __init__(self, keep_prob: float, cell_index: int, total_cells: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"ScheduledDropPath: keep_prob must be in (0, 1], got {keep_prob}")
        if isinstance(total_cells, bool) or not isinstance(total_cells, int) or total_cells < 1:
            raise ValueError(f"ScheduledDropPath: total_cells must be a positive integer, got {total_cells!r}")
        if isinstance(cell_index, bool) or not isinstance(cell_index, int) or not 0 <= cell_index < total_cells:
            raise ValueError(f"ScheduledDropPath: cell_index must be in [0, {total_cells - 1}], got {cell_index!r}")
        self.keep_prob = float(keep_prob)
        self.cell_index = cell_index
        self.total_cells = total_cells
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The progress variable is shared by every drop-path layer of a model
        # and owned by the training loop: kept out of Keras' and TensorFlow's
        # tracking so it is neither a weight of the layer nor part of its
        # checkpoint.
        object.__setattr__(self, "_progress", None)

    @property
    def progress(self):
        """The attached training-progress variable (None: none attached)."""
        return self._progress

    def set_progress(self, progress) -> None:
        """Attaches the scalar variable holding the fraction of training done."""
        object.__setattr__(self, "_progress", progress)

    def keep_probability(self, progress: Any = None):
        """The keep probability at ``progress`` (default: the attached variable, or 1)."""
        if progress is None:
            progress = self._progress if self._progress is not None else 1.0
        if isinstance(progress, (int, float)):
            return drop_path_keep_prob(self.keep_prob, self.cell_index, self.total_cells, progress)
        layer_keep = 1.0 - (self.cell_index + 1) / float(self.total_cells) * (1.0 - self.keep_prob)
        ratio = ops.minimum(ops.cast(progress, "float32"), 1.0)
        return 1.0 - ratio * (1.0 - layer_keep)

    def call(self, inputs, training=None):
        if not training or self.keep_prob >= 1.0:
            return inputs
        keep = ops.cast(self.keep_probability(), inputs.dtype)
        batch = ops.shape(inputs)[0]
        noise = keras.random.uniform((batch, 1, 1, 1), dtype=inputs.dtype, seed=self.seed_generator)
        mask = ops.floor(keep + noise)
        return inputs / keep * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(keep_prob=self.keep_prob, cell_index=self.cell_index, total_cells=self.total_cells, seed=self.seed)
        return config


def drop_path_layers(model: keras.layers.Layer) -> list[ScheduledDropPath]:
    """Every :class:`ScheduledDropPath` layer inside ``model`` (nested layers included)."""
    from nas_tf.utils.keras_private import sublayers

    return [layer for layer in sublayers(model) if isinstance(layer, ScheduledDropPath)]


def attach_training_progress(model: keras.layers.Layer, progress: tf.Variable | None = None) -> tf.Variable | None:
    """Shares one training-progress variable with every drop-path layer of ``model``.

    Call it before the training step is traced; then set the variable to the
    fraction of training done before every step (``train_classifier`` does
    when given it as ``progress``).

    Args:
        model: the model.
        progress: the variable to attach (default: a new float32 scalar at 0).

    Returns:
        The attached variable, or None when the model has no drop-path layer.

    Example:

    >>> progress = attach_training_progress(model)  # doctest: +SKIP
    >>> train_classifier(model, data, ..., progress=progress)  # doctest: +SKIP
    """
    layers = drop_path_layers(model)
    if not layers:
        return None
    if progress is None:
        progress = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="training_progress")
    for layer in layers:
        layer.set_progress(progress)
    return progress
