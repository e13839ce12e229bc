"""TensorBoard summaries of a training run: per-epoch curves and the model's graph.

Final training writes them into ``model_dir/tensorboard`` (the chief only);
:mod:`nas_tf.viz.tensorboard` re-exports the two functions for other uses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import tensorflow as tf


def log_scalars(values: Mapping[str, float | int | None], step: int, prefix: str = "") -> None:
    """Writes every non-None value as a scalar ``prefix + name`` (under the default writer).

    For the training curves: e.g. once per epoch ``log_scalars({"loss": ...,
    "accuracy": ..., "val_accuracy": ..., "learning_rate": ...}, epoch)``.
    """
    for name, value in values.items():
        if value is not None:
            tf.summary.scalar(prefix + name, float(value), step=step)


def log_model_graph(model, input_signature: Sequence[tf.TensorSpec] | tf.TensorSpec | None = None, step: int = 0) -> None:
    """Writes a Keras model's graph for TensorBoard's Graphs dashboard (under the default writer).

    Two views, as Keras's own TensorBoard callback writes them: the op graph
    of the model's inference function (traced once here) and the conceptual
    graph (the model's JSON config, tag ``keras``).

    Args:
        model: a built Keras model.
        input_signature: the input spec(s); default: the model's inputs with
            a free batch dimension.
        step: the step of the conceptual-graph summary.
    """
    if input_signature is None:
        specs = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in model.inputs]
        input_signature = specs[0] if len(specs) == 1 else specs

    @tf.function
    def inference(x):
        return model(x, training=False)

    graph = inference.get_concrete_function(input_signature).graph
    tf.summary.graph(graph)
    from tensorboard.compat.proto.summary_pb2 import SummaryMetadata

    metadata = SummaryMetadata()
    metadata.plugin_data.plugin_name = "graph_keras_model"
    metadata.plugin_data.content = b"1"
    tf.summary.write("keras", tf.constant(model.to_json()), step=step, metadata=metadata)


class TrainingSummaries:
    """The TensorBoard directory of one training run (writes nothing where ``write`` is False).

    Args:
        model_dir: the run directory (summaries go to ``model_dir/tensorboard``).
        write: whether this process writes (the chief of a cluster).
    """

    def __init__(self, model_dir: str, write: bool = True):
        self.directory = os.path.join(model_dir, "tensorboard")
        self.writer = tf.summary.create_file_writer(self.directory) if write else None

    def graph(self, model, input_signature=None) -> None:
        """The model's graph (once, before training)."""
        if self.writer is None:
            return
        with self.writer.as_default():
            try:
                log_model_graph(model, input_signature)
            except Exception as e:  # noqa: BLE001 - the graph is a picture for people: the curves still come
                logging.getLogger("nas_tf").warning("no model graph in TensorBoard: %s: %s", type(e).__name__, e)
        self.writer.flush()

    def epoch(self, values: Mapping[str, float | int | None], epoch: int) -> None:
        """The curves' values after ``epoch`` epochs."""
        if self.writer is None:
            return
        with self.writer.as_default():
            log_scalars(values, epoch)
        self.writer.flush()


def learning_rate(optimizer) -> float:
    """The optimizer's current learning rate (its schedule at the current step)."""
    import tensorflow as tf

    lr = optimizer.learning_rate
    value = lr(optimizer.iterations) if callable(lr) else lr
    # Under a tf.distribute strategy a Keras variable holds a MirroredVariable, which float() refuses.
    return float(tf.convert_to_tensor(getattr(value, "value", value)))
