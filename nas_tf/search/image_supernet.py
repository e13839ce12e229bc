"""The shared-weights side of an ENAS image search (macro or micro supernet)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from nas_tf.data.images import ImageData
from nas_tf.search.one_shot import SharedWeightsTask, cosine_restart_lr


@dataclasses.dataclass(frozen=True)
class SharedTrainingConfig:
    """How the shared weights are trained (ENAS defaults).

    Args:
        batch_size: minibatch size (also of the reward batches).
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
            supernet).
        data: the dataset (train split for the weights, validation split for
            rewards).
        config: training settings.
    """

    def __init__(self, supernet: keras.Model, data: ImageData, config: SharedTrainingConfig = SharedTrainingConfig()):
        self.supernet = supernet
        self.data = data
        self.cfg = config
        supernet.build((None,) + tuple(data.input_shape))
        self.optimizer = keras.optimizers.SGD(learning_rate=config.lr_max, momentum=config.momentum, nesterov=True)
        self.optimizer.build(supernet.trainable_variables)
        num_tokens = supernet.space.decisions.num_tokens
        image = tf.TensorSpec((None,) + tuple(data.input_shape), tf.float32)
        label = tf.TensorSpec((None,), tf.int32)
        arch = tf.TensorSpec((num_tokens,), tf.int32)
        self._train_step = tf.function(self._train, input_signature=[image, label, arch])
        self._eval_step = tf.function(self._eval, input_signature=[image, label, arch])

    def _train(self, x, y, arch):
        variables = self.supernet.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.supernet(x, arch, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            total = loss + (tf.add_n(self.supernet.losses) if self.supernet.losses else 0.0)
        grads = tape.gradient(total, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads = [g for g, _ in pairs]
        if self.cfg.grad_clip:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.grad_clip)
        self.optimizer.apply(grads, [v for _, v in pairs])
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def _eval(self, x, y, arch):
        logits = self.supernet(x, arch, training=False)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))

    def learning_rate(self, epoch: int) -> float:
        c = self.cfg
        return float(cosine_restart_lr(epoch, c.lr_max, c.lr_min, c.lr_t0, c.lr_t_mul))

    def train_epoch(self, epoch: int, sample_tokens: Callable[[], np.ndarray]) -> dict[str, float]:
        c = self.cfg
        lr = self.learning_rate(epoch)
        self.optimizer.learning_rate = lr
        steps = math.ceil(self.data.size("train") / c.batch_size)
        if c.steps_per_epoch:
            steps = min(steps, c.steps_per_epoch)
        losses, accs = [], []
        ds = self.data.batches("train", c.batch_size, training=True, seed=c.seed * 100_003 + epoch, drop_remainder=True)
        for x, y in ds.take(steps):
            loss, acc = self._train_step(x, y, tf.constant(sample_tokens(), tf.int32))
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

    def config(self) -> dict[str, Any]:
        return {"dataset": self.data.name, **dataclasses.asdict(self.cfg)}

    def trace_counts(self) -> dict[str, int]:
        return {
            "train_step": self._train_step.experimental_get_tracing_count(),
            "reward_step": self._eval_step.experimental_get_tracing_count(),
        }
