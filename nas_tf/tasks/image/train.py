"""The training loop of image classifiers (children and final runs).

Keras ``fit`` would do for one device, but the search needs control that
``fit`` hides: a child that diverges must stop at once with a reason, the
validation accuracy of every epoch feeds the reward, training progress drives
ScheduledDropPath, and the same loop must later run under every
``tf.distribute`` strategy (Keras ``fit`` is broken under
MultiWorkerMirroredStrategy, TF-NOTES 1b).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from nas_tf.data.images import ImageData
from nas_tf.search.evaluator import ChildDiverged
from nas_tf.training.steps import PerModel, clip_all_reduced, is_distributed, shard_by_data


@dataclasses.dataclass
class TrainResult:
    """Per-epoch metrics of one training run."""

    train_loss: list[float] = dataclasses.field(default_factory=list)
    train_accuracy: list[float] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    val_accuracy: list[float] = dataclasses.field(default_factory=list)
    steps: int = 0
    wall_time: float = 0.0


def _split_outputs(outputs):
    if isinstance(outputs, (list, tuple)):
        return outputs[0], list(outputs[1:])
    return outputs, []


def evaluate_classifier(model: keras.Model, dataset: tf.data.Dataset, eval_fn=None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``dataset`` (inference mode)."""
    if eval_fn is None:
        eval_fn = _make_eval_step(model)
    total_loss, correct, count = 0.0, 0.0, 0
    for x, y in dataset:
        loss_sum, n_correct = eval_fn(x, y)
        total_loss += float(loss_sum)
        correct += float(n_correct)
        count += int(y.shape[0])
    if count == 0:
        raise ValueError("the evaluation dataset is empty")
    return total_loss / count, correct / count


def _signature(model):
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    return tf.TensorSpec((None,) + shape, tf.float32), tf.TensorSpec((None,), tf.int32)


def _make_eval_step(model):
    def eval_step(x, y):
        logits, _ = _split_outputs(model(x, training=False))
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.float32))

    return tf.function(PerModel(eval_step), input_signature=_signature(model))


def train_classifier(
    model: keras.Model,
    data: ImageData,
    *,
    epochs: int,
    batch_size: int,
    optimizer: keras.optimizers.Optimizer,
    seed: int = 0,
    eval_split: str | None = "validation",
    aux_weight: float = 0.4,
    progress: tf.Variable | None = None,
    on_epoch_end: Callable[[int, TrainResult], None] | None = None,
    steps_per_epoch: int | None = None,
    initial_epoch: int = 0,
    result: TrainResult | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainResult:
    """Trains ``model`` with softmax cross-entropy and evaluates every epoch.

    Under a ``strategy`` with several replicas (model and optimizer built in
    its scope) every step is data-parallel: ``batch_size`` is the per-replica
    batch, each global batch of ``batch_size x replicas`` examples is split
    over the replicas, batch norm uses cross-replica statistics, the loss is
    averaged over the global batch and the gradients are summed across
    replicas by the optimizer, so one step equals a one-device step on the
    global batch. Under ``MultiWorkerMirroredStrategy`` (one process per
    host, every one running this same loop) each worker builds the same
    global batches and keeps its replicas' rows of them (``tf.data``
    auto-sharding by data), so the workers see different examples of every
    global batch; evaluation runs on every worker on the whole split (no
    collectives, the same numbers everywhere).

    Gradient clipping of the optimizer (``global_clipnorm``, ``clipnorm``,
    ``clipvalue``) applies to the all-reduced gradient, as on one device
    (Keras alone would clip each replica's share before the all-reduce).

    Args:
        model: maps images to logits, or to ``[logits, aux_logits...]`` (the
            auxiliary heads add ``aux_weight`` times their loss).
        data: the dataset.
        epochs: passes over the training split.
        batch_size: examples per step.
        optimizer: the optimizer (built here if needed).
        seed: seed of shuffling and augmentation (epoch ``e`` uses ``seed + e``).
        eval_split: split evaluated after every epoch (None: no evaluation).
        aux_weight: loss weight of auxiliary heads.
        progress: if given, set to the fraction of training done before every
            step (drives ScheduledDropPath).
        on_epoch_end: called with ``(epoch, result so far)``.
        steps_per_epoch: cap on the steps of an epoch (default: one pass).
        initial_epoch: epochs already done (resuming; model and optimizer
            state must have been restored).
        result: the metrics of the epochs already done, extended in place.
        strategy: a ``tf.distribute.Strategy`` the model and optimizer were
            built under (None: the default device).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ChildDiverged: the training loss became NaN or infinite.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from nas_tf.distribute import num_replicas, synchronize_batch_norm

    replicas = num_replicas(strategy)
    # Under a strategy of several replicas (or any multi-worker strategy) the
    # step runs in strategy.run on distributed batches.
    distributed = is_distributed(strategy)
    global_batch = batch_size * replicas
    n_train = data.size("train")
    per_epoch = max(1, math.ceil(n_train / global_batch))
    if steps_per_epoch:
        per_epoch = min(per_epoch, steps_per_epoch)
    total_steps = float(per_epoch * epochs)
    variables = model.trainable_variables
    if strategy is not None:
        with strategy.scope():
            optimizer.build(variables)
    else:
        optimizer.build(variables)
    if distributed:
        synchronize_batch_norm(model)

    def replica_step(x, y):
        """Mean loss and accuracy over the global batch (this replica's share); one optimizer step."""
        if not distributed:
            mean = tf.reduce_mean
        else:
            n = tf.distribute.get_replica_context().all_reduce("sum", tf.cast(tf.shape(y)[0], tf.float32))

            def mean(v):
                return tf.reduce_sum(v) / n

        with tf.GradientTape() as tape:
            logits, aux = _split_outputs(model(x, training=True))
            loss = mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            total = loss
            for a in aux:
                total += aux_weight * mean(keras.losses.sparse_categorical_crossentropy(y, a, from_logits=True))
            if model.losses:
                total += tf.add_n(model.losses) / replicas
        grads = tape.gradient(total, variables)
        if distributed:
            grads = clip_all_reduced(optimizer, grads)
        optimizer.apply(grads, variables)
        pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return loss, mean(tf.cast(tf.equal(pred, y), tf.float32))

    def train_step(x, y, step):
        if progress is not None:
            progress.assign(tf.cast(step, tf.float32) / total_steps)
        if not distributed:
            return replica_step(x, y)
        loss, acc = strategy.run(replica_step, args=(x, y))
        sum_ = tf.distribute.ReduceOp.SUM
        return strategy.reduce(sum_, loss, axis=None), strategy.reduce(sum_, acc, axis=None)

    if not distributed:
        train_step = tf.function(
            PerModel(train_step), input_signature=_signature(model) + (tf.TensorSpec((), tf.int64),)
        )
    else:  # distributed inputs: traced from the per-replica values
        train_step = tf.function(PerModel(train_step))
    eval_step = _make_eval_step(model)
    eval_ds = data.batches(eval_split, max(global_batch, 256)) if eval_split else None
    result = result if result is not None else TrainResult()
    start = time.time() - result.wall_time
    step = initial_epoch * per_epoch
    for epoch in range(initial_epoch, epochs):
        losses, accs = [], []
        ds = data.batches("train", global_batch, training=True, seed=seed + epoch).take(per_epoch)
        if distributed:
            ds = strategy.experimental_distribute_dataset(shard_by_data(ds))
        for x, y in ds:
            loss, acc = train_step(x, y, tf.constant(step, tf.int64))
            losses.append(float(loss))
            accs.append(float(acc))
            step += 1
            if not math.isfinite(losses[-1]):
                raise ChildDiverged(f"training loss became {losses[-1]} at epoch {epoch + 1}, step {step}")
        result.train_loss.append(float(np.mean(losses)))
        result.train_accuracy.append(float(np.mean(accs)))
        if eval_ds is not None:
            val_loss, val_acc = evaluate_classifier(model, eval_ds, eval_step)
            if not math.isfinite(val_loss):
                raise ChildDiverged(f"validation loss became {val_loss} at epoch {epoch + 1}")
            result.val_loss.append(val_loss)
            result.val_accuracy.append(val_acc)
        result.steps = step
        result.wall_time = time.time() - start
        if on_epoch_end is not None:
            on_epoch_end(epoch, result)
    if progress is not None:
        progress.assign(1.0)
    return result
