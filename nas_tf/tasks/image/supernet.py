"""The shared-weights side of an ENAS image search (macro or micro supernet).

Under a ``tf.distribute`` strategy with several replicas (``mirrored`` over
local devices, ``multi_worker`` over hosts) the shared weights are trained
data-parallel:

* the supernet and its optimizer are built in ``strategy.scope()`` (the
  optimizer's slots before the first step);
* ``SharedTrainingConfig.batch_size`` is the **per-replica** batch: a global
  step reads ``batch_size x replicas`` examples, split over the replicas, and
  the loss is averaged over the global batch;
* **one sampled architecture per global step**: every replica runs the same
  arch on its share of the minibatch, so a global step is exactly the
  one-device step of the paper on the global batch (one arch per minibatch),
  and the controller is stepped once per global step, as on one device. The
  alternative -- one arch per replica -- turns a global step into one update
  from R architectures' gradients, each on 1/R of the batch, changes what
  the controller's samples mean and makes the search depend on the replica
  count. Measured (``scripts/bench_enas_distributed.py``, mirrored over 2
  logical CPU devices, macro 12 layers, 36 filters, batch 64): its step
  costs 0.88x the one-arch step, within the machine's run-to-run spread
  (1.5x), so it buys R times more archs per step at R times smaller per-arch
  batches and nothing else; the search keeps one arch per global step
  (:meth:`ImageSupernetTask.shared_step` runs the alternative, to measure it);
* batch norm: every ``BatchNormalization`` that runs in the step's dataflow
  uses cross-replica statistics. The layers a supernet calls inside
  ``tf.switch_case`` / ``tf.cond`` (its ``control_flow_layers()``: the chosen
  op of the macro supernet's default ``op_selection="switch"``, some h_{i-1}
  adjustments of the micro supernet) and the micro supernet's in-place batch
  norm of the chosen ops keep **per-replica** statistics: TensorFlow's
  cross-replica all-reduce needs a ``merge_call``, which a branch function
  does not allow (``RuntimeError: merge_call called while defining a new
  graph``, TF 2.21). Statistics over each replica's ``batch_size`` examples
  ("ghost" batch norm); with the macro supernet's ``op_selection="all"``
  (no control flow) a step on R replicas equals the one-device step on the
  global batch up to float rounding (tested);
* the gradients are summed over the replicas *before* the global-norm clip
  (the task all-reduces them itself, so the clip sees the global gradient
  that one device would see; the optimizer then skips its own all-reduce).

Rewards (validation accuracy of a sampled arch on one validation minibatch)
are computed locally on each worker with its copy of the shared weights
(identical on every worker), so no collective is needed there; the one-shot
loop broadcasts the chief's controller after every update anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nas_tf.data.images import ImageData
from nas_tf.search.one_shot import SharedWeightsTask
from nas_tf.training.optimizer import cosine_restart_lr
from nas_tf.utils.keras_private import PreReducedSGD, sublayers
from nas_tf.utils.progress import format_duration

log = logging.getLogger("nas_tf.search")


@dataclasses.dataclass(frozen=True)
class SharedTrainingConfig:
    """How the shared weights are trained (ENAS defaults).

    Args:
        batch_size: minibatch size per replica (the global batch of a step is
            ``batch_size x replicas``); also the size of the reward batches.
        lr_max: learning rate at the start of every cosine period.
        lr_min: learning rate at the end of a period.
        lr_t0: length of the first period in epochs.
        lr_t_mul: growth of the period length at every restart.
        momentum: Nesterov momentum.
        grad_clip: global gradient-norm clipping (0: off).
        steps_per_epoch: cap on the steps of a pass (0: one full pass).
        seed: seed of the data order and augmentation.
    """

    batch_size: int = 128
    lr_max: float = 0.05
    lr_min: float = 0.0005
    lr_t0: int = 10
    lr_t_mul: int = 2
    momentum: float = 0.9
    grad_clip: float = 5.0
    steps_per_epoch: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.lr_t0 < 1 or self.lr_t_mul < 1:
            raise ValueError("batch_size, lr_t0 and lr_t_mul must be >= 1")
        if not 0 <= self.lr_min <= self.lr_max or self.lr_max <= 0:
            raise ValueError(f"need 0 <= lr_min <= lr_max and lr_max > 0, got {self.lr_min}, {self.lr_max}")


class ImageSupernetTask(SharedWeightsTask):
    """Trains an image supernet and scores architectures by validation accuracy.

    Args:
        supernet: a model called as ``supernet(images, arch_tokens, training=...)``
            (:class:`~nas_tf.models.enas_macro.EnasMacroSupernet`, the micro
            supernet). With a multi-replica ``strategy`` construct it inside
            ``strategy.scope()``; it is built here, in the scope.
        data: the dataset (train split for the weights, validation split for
            rewards).
        config: training settings (``batch_size`` per replica).
        strategy: a ``tf.distribute.Strategy`` (:func:`nas_tf.distribute.make_strategy`)
            to train the shared weights under; None: the default device.
        cost_reward: a :class:`~nas_tf.export.CostAwareReward` that trades a
            derived arch's score against the serving costs of its final
            network (latency-aware derivation); None: the score alone.
        final_builder: ``arch -> keras.Model``, the final network of a
            derived arch (what ``cost_reward`` measures).

    Example:

    >>> strategy = make_strategy("mirrored", num_cpu_devices=2)  # doctest: +SKIP
    >>> with strategy.scope():  # doctest: +SKIP
    ...     supernet = EnasMacroSupernet(EnasMacroSpace(num_layers=4), 10, filters=8)
    >>> task = ImageSupernetTask(supernet, load_digits(), SharedTrainingConfig(batch_size=32),
    ...                          strategy=strategy)  # doctest: +SKIP
    """

    def __init__(
        self,
        supernet: keras.Model,
        data: ImageData,
        config: SharedTrainingConfig = SharedTrainingConfig(),
        strategy: tf.distribute.Strategy | None = None,
        cost_reward=None,
        final_builder: Callable[[Any], keras.Model] | None = None,
    ):
        if cost_reward is not None and final_builder is None:
            raise ValueError("cost_reward needs final_builder: the network whose costs are measured")
        self.cost_reward = cost_reward
        self.final_builder = final_builder
        from nas_tf.distribute import num_replicas, synchronize_batch_norm

        self.supernet = supernet
        self.data = data
        self.cfg = config
        self._announced = False
        self.strategy = strategy
        self.replicas = num_replicas(strategy)
        # The task all-reduces the gradients itself (to clip their global norm as one
        # device would), so the optimizer's own cross-replica sum is skipped.
        optimizer_class = PreReducedSGD if self.replicas > 1 else keras.optimizers.SGD
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            supernet.build((None,) + tuple(data.input_shape))
            self.optimizer = optimizer_class(
                learning_rate=config.lr_max, momentum=config.momentum, nesterov=True, name="SGD"
            )
            # Slots before the first step: a lazily built optimizer fails under tf.distribute (TF-NOTES 1a).
            self.optimizer.build(supernet.trainable_variables)
        if self.replicas > 1:
            local = [v.path for v in supernet.variables if not isinstance(v.value, tf.distribute.DistributedValues)]
            if local:
                raise ValueError(
                    f"ImageSupernetTask: {len(local)} supernet variable(s) were created outside the strategy's "
                    f"scope (e.g. {local[0]}); construct the supernet inside `with strategy.scope():`"
                )
            synchronize_batch_norm(supernet)
            # Batch norm inside a switch/cond branch cannot all-reduce (it needs a merge_call):
            # those layers keep per-replica statistics (see the module docstring).
            in_branches = getattr(supernet, "control_flow_layers", lambda: [])()
            for layer in in_branches:
                for sub in sublayers(layer):
                    if isinstance(sub, keras.layers.BatchNormalization):
                        sub.synchronized = False
        num_tokens = supernet.space.decisions.num_tokens
        image = tf.TensorSpec((None,) + tuple(data.input_shape), tf.float32)
        label = tf.TensorSpec((None,), tf.int32)
        arch = tf.TensorSpec((num_tokens,), tf.int32)
        if self.replicas > 1:  # distributed inputs: traced from the per-replica values
            self._train_step = tf.function(self._distributed_train)
        else:
            self._train_step = tf.function(self._train, input_signature=[image, label, arch])
        self._eval_step = tf.function(self._eval, input_signature=[image, label, arch])

    @property
    def distribute_strategy(self) -> tf.distribute.Strategy | None:
        """The ``tf.distribute`` strategy the shared weights are trained under."""
        return self.strategy

    @property
    def global_batch_size(self) -> int:
        """Examples per global step: the per-replica batch times the replicas."""
        return self.cfg.batch_size * self.replicas

    def _train(self, x, y, arch):
        """One step on one device (or one replica's share of a global step); mean loss and accuracy."""
        variables = self.supernet.trainable_variables
        if self.replicas > 1:
            ctx = tf.distribute.get_replica_context()
            count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(y)[0], tf.float32))

            def mean(values):
                return tf.reduce_sum(values) / count
        else:
            mean = tf.reduce_mean
        with tf.GradientTape() as tape:
            logits = self.supernet(x, arch, training=True)
            loss = mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            # The weight-decay terms once per global step (summed over the replicas below).
            total = loss + (tf.add_n(self.supernet.losses) / self.replicas if self.supernet.losses else 0.0)
        grads = tape.gradient(total, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads = [g for g, _ in pairs]
        if self.replicas > 1:
            # The global gradient on every replica, before clipping its global norm.
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.cfg.grad_clip:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.grad_clip)
        self.optimizer.apply(grads, [v for _, v in pairs])
        acc = mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def _distributed_train(self, x, y, arch):
        """One global step: every replica runs ``arch`` on its share of the global batch."""
        loss, acc = self.strategy.run(self._train, args=(x, y, arch))
        total = tf.distribute.ReduceOp.SUM  # each replica returned its share of the global mean
        return self.strategy.reduce(total, loss, axis=None), self.strategy.reduce(total, acc, axis=None)

    def _eval(self, x, y, arch):
        logits = self.supernet(x, arch, training=False)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))

    def _distribute(self, ds: tf.data.Dataset):
        """A dataset of global batches split over the replicas (each worker reads its share)."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def shared_step(self, images, labels, tokens) -> tuple[float, float]:
        """One shared-weights step on one global batch (for tests and benchmarks).

        Args:
            images: the global batch of images, ``[batch_size x replicas, H, W, C]``.
            labels: its int labels.
            tokens: the architecture (int token vector of the space), run by
                every replica. A ``[replicas, num_tokens]`` array gives each
                replica its own arch instead (one arch per replica: only to
                measure that alternative; the search runs one per global step).

        Returns:
            The loss and accuracy averaged over the global batch.

        Raises:
            ValueError: the global batch is not a multiple of the replicas, or
                ``tokens`` has another shape.
        """
        tokens = np.asarray(tokens, np.int32)
        num_tokens = self.supernet.space.decisions.num_tokens
        if tokens.shape not in ((num_tokens,), (self.replicas, num_tokens)):
            raise ValueError(
                f"shared_step: tokens must have shape ({num_tokens},) or ({self.replicas}, {num_tokens}), got {tokens.shape}"
            )
        if self.replicas == 1:
            loss, acc = self._train_step(tf.constant(images, tf.float32), tf.constant(labels, tf.int32),
                                         tf.constant(tokens.reshape(num_tokens)))
            return float(loss), float(acc)
        n = len(labels)
        if n % self.replicas:
            raise ValueError(f"shared_step: the global batch ({n}) must be a multiple of the replicas ({self.replicas})")
        per = n // self.replicas
        images, labels = np.asarray(images, np.float32), np.asarray(labels, np.int32)

        def shard(values, rows):
            return self.strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(values[ctx.replica_id_in_sync_group * rows : (ctx.replica_id_in_sync_group + 1) * rows])
            )

        if tokens.ndim == 1:
            arch = tf.constant(tokens)
        else:  # row r: the token vector of replica r
            arch = self.strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(tokens[ctx.replica_id_in_sync_group])
            )
        loss, acc = self._train_step(shard(images, per), shard(labels, per), arch)
        return float(loss), float(acc)

    def learning_rate(self, epoch: int) -> float:
        c = self.cfg
        return float(cosine_restart_lr(epoch, c.lr_max, c.lr_min, c.lr_t0, c.lr_t_mul))

    def train_epoch(self, epoch: int, sample_tokens: Callable[[], np.ndarray]) -> dict[str, float]:
        c = self.cfg
        lr = self.learning_rate(epoch)
        self.optimizer.learning_rate = lr
        batch = self.global_batch_size
        steps = math.ceil(self.data.size("train") / batch)
        if c.steps_per_epoch:
            steps = min(steps, c.steps_per_epoch)
        losses, accs = [], []
        ds = self.data.batches("train", batch, training=True, seed=c.seed * 100_003 + epoch, drop_remainder=True)
        ds = ds.take(steps)
        if self.replicas > 1:
            ds = self._distribute(ds)
        for x, y in ds:
            t0 = time.time()
            loss, acc = self._train_step(x, y, tf.constant(sample_tokens(), tf.int32))
            if not losses and self._train_step.experimental_get_tracing_count() == 1 and not self._announced:
                self._announced = True
                log.info("traced the shared-weights step in %s (once per search: every architecture reuses it)",
                         format_duration(time.time() - t0))
            losses.append(float(loss))
            accs.append(float(acc))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"shared-weights loss became {losses[-1]} in epoch {epoch + 1}")
        return {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accs)), "lr": lr, "steps": len(losses)}

    def reward_batches(self, epoch: int):
        ds = self.data.batches("validation", 256, training=False)
        ds = ds.unbatch().shuffle(self.data.size("validation"), seed=self.cfg.seed * 7919 + epoch).batch(
            min(self.cfg.batch_size, self.data.size("validation")), drop_remainder=True
        ).repeat()
        return iter(ds)

    def reward(self, tokens: np.ndarray, batch) -> tuple[float, dict[str, float]]:
        x, y = batch
        acc = float(self._eval_step(x, y, tf.constant(tokens, tf.int32)))
        return acc, {"val_accuracy": acc}

    def trackables(self) -> dict[str, Any]:
        return {"supernet": self.supernet, "optimizer": self.optimizer}

    def derive_reward(self, arch, accuracy: float) -> tuple[float, dict[str, float]]:
        if self.cost_reward is None:
            return accuracy, {}
        return self.cost_reward(accuracy, arch, lambda: self.final_builder(arch))

    def config(self) -> dict[str, Any]:
        # The replica count is not recorded: a search may resume on another one.
        model = {k: v for k, v in self.supernet.get_config().items() if k != "name"}
        out = {"dataset": self.data.name, "model": model, **dataclasses.asdict(self.cfg)}
        if self.cost_reward is not None:
            out["costs"] = self.cost_reward.config()
        return out

    def trace_counts(self) -> dict[str, int]:
        return {
            "train_step": self._train_step.experimental_get_tracing_count(),
            "reward_step": self._eval_step.experimental_get_tracing_count(),
        }
