"""Pieces every custom training step shares: per-model tracing, clipping across replicas, input sharding."""

from __future__ import annotations

import keras
import tensorflow as tf

from nas_tf.utils.keras_private import clip_gradients


class PerModel:
    """Gives each model's step function its own identity for TensorFlow's
    frequent-retracing detector: a search builds a new model per child, and each
    traces its steps exactly once (one input signature) -- that is not the
    accidental retracing the detector warns about."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def clips_gradients(optimizer: keras.optimizers.Optimizer) -> bool:
    """Whether ``optimizer`` clips gradients (``global_clipnorm``, ``clipnorm`` or ``clipvalue``)."""
    return any(getattr(optimizer, name, None) for name in ("global_clipnorm", "clipnorm", "clipvalue"))


def clip_all_reduced(optimizer: keras.optimizers.Optimizer, grads: list) -> list:
    """Replica-context gradients for ``optimizer.apply`` that clip like one device.

    Keras clips each replica's gradient before it sums the replicas' gradients,
    so a ``global_clipnorm`` would bound the wrong norm under several
    replicas. If ``optimizer`` clips, the gradients are all-reduced here,
    clipped with the optimizer's own rule, and divided by the number of
    replicas; the optimizer's sum then gives the clipped all-reduced gradient
    back (its second clipping is a no-op: every share is within the bound).
    Without clipping the gradients are returned unchanged (one all-reduce,
    the optimizer's).

    Args:
        optimizer: the Keras optimizer the gradients go to.
        grads: this replica's gradients (None for unconnected variables).

    Returns:
        The gradients to pass to ``optimizer.apply`` in this replica.
    """
    if not clips_gradients(optimizer):
        return grads
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(grads[i]) for i in present])
    clipped = clip_gradients(optimizer, reduced)  # the optimizer's own rule
    out = list(grads)
    for i, g in zip(present, clipped):
        out[i] = g / replicas
    return out


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Multi-worker input: every worker builds the same global batches and keeps its replicas' rows.

    (In-memory data has no files to shard by; asking for data sharding up
    front spares TensorFlow's failed attempt at file sharding.)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def is_distributed(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether steps run in ``strategy.run`` on distributed batches (several replicas, or multi-worker)."""
    from nas_tf.distribute import num_replicas

    return num_replicas(strategy) > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
