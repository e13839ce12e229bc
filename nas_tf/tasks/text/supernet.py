"""The shared-weights side of an ENAS recurrent-cell search (a language-model supernet).

Phase 1 (:meth:`LMSupernetTask.train_epoch`) reads the training split once
with truncated back-propagation through time, the state carried from one
window to the next (as :mod:`nas_tf.tasks.text.train`), and a **new
architecture for every window**. Phase 2's reward (:meth:`LMSupernetTask.reward`)
is ``c / perplexity`` of one validation window (``c = 80``, PAPERS.md 3.1 --
not the NAS search's ``c / ppl^2``), read from a zero state: a carried state
would hand one architecture's state to another's reward.

Both steps are ``tf.function`` s with the arch as an int32 tensor in their
input signature: one trace per search (``trace_counts``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nas_tf.data.text import TextCorpus
from nas_tf.models.enas_rnn import EnasRnnSupernetLM
from nas_tf.search.one_shot import SharedWeightsTask
from nas_tf.utils.progress import format_duration

log = logging.getLogger("nas_tf.search")


@dataclasses.dataclass(frozen=True)
class LMSharedTrainingConfig:
    """How the shared weights of a recurrent supernet are trained, and rewards measured.

    Defaults are the paper's (PAPERS.md 3.6.2) where it gives one, else the
    corrected ``enas_lm`` code's; the ``enas_lm`` search used batch 128,
    clip 0.1, L2 8e-7 and no learning-rate decay.

    Args:
        batch_size: rows read in parallel (paper 64).
        bptt: window length (35).
        learning_rate: SGD learning rate (20).
        lr_decay: learning rate multiplied by this every epoch from
            ``lr_decay_start`` on (paper 0.96 from epoch 15; 1.0: none).
        lr_decay_start: first decayed epoch (0-based count of done epochs).
        grad_clip: global gradient-norm clipping (paper 0.25; 0: off).
        weight_decay: L2 penalty ``weight_decay / 2 * sum(w ** 2)`` on all
            shared weights (paper 1e-7).
        steps_per_epoch: cap on the windows of a pass (0: the whole split);
            consecutive epochs then read consecutive stretches.
        reward_c: the constant c of the reward ``c / ppl`` (80).
        reward_batch_size: rows of a reward window (default ``batch_size``).
        reward_bptt: length of a reward window (default ``bptt``).
        seed: seed of the order of the reward windows.
    """

    batch_size: int = 64
    bptt: int = 35
    learning_rate: float = 20.0
    lr_decay: float = 0.96
    lr_decay_start: int = 15
    grad_clip: float = 0.25
    weight_decay: float = 1e-7
    steps_per_epoch: int = 0
    reward_c: float = 80.0
    reward_batch_size: int = 0
    reward_bptt: int = 0
    seed: int = 0

    def __post_init__(self):
        for name in ("batch_size", "bptt"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "reward_batch_size", "reward_bptt", "lr_decay_start", "grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not self.reward_c > 0:
            raise ValueError(f"learning_rate and reward_c must be > 0, got {self.learning_rate}, {self.reward_c}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")


class LMSupernetTask(SharedWeightsTask):
    """Trains an ENAS recurrent supernet and scores cells by ``c / validation perplexity``.

    Args:
        supernet: the supernet language model (built here if needed).
        corpus: the text (``"train"`` for the weights, ``"validation"`` for
            rewards).
        config: training and reward settings.

    Example:

    >>> space = EnasRnnSpace()
    >>> corpus = load_text_data("pydoc")
    >>> task = LMSupernetTask(EnasRnnSupernetLM(space, corpus.vocab_size, units=64, tie_weights=True), corpus)
    >>> OneShotSearch(space, strategy, task, OneShotConfig("runs/rnn")).run()  # doctest: +SKIP
    """

    def __init__(
        self, supernet: EnasRnnSupernetLM, corpus: TextCorpus, config: LMSharedTrainingConfig = LMSharedTrainingConfig()
    ):
        if supernet.vocab_size != corpus.vocab_size:
            raise ValueError(f"the supernet has {supernet.vocab_size} words, the corpus {corpus.name!r} {corpus.vocab_size}")
        self.supernet = supernet
        self.corpus = corpus
        self.cfg = config
        self._announced = False
        if not supernet.built:
            supernet.build()
        self.n_windows = corpus.num_windows("train", config.batch_size, config.bptt)
        if self.n_windows < 1:
            raise ValueError(f"the training split of {corpus.name!r} is too short for batch_size {config.batch_size}")
        self.reward_rows = config.reward_batch_size or config.batch_size
        self.reward_len = config.reward_bptt or config.bptt
        self._reward_windows = list(corpus.windows("validation", self.reward_rows, self.reward_len))
        if not self._reward_windows:
            raise ValueError(f"the validation split of {corpus.name!r} is too short for {self.reward_rows} rows")
        self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate)
        self.optimizer.build(supernet.trainable_variables)
        tokens = tf.TensorSpec((None, None), tf.int32)
        states = [tf.TensorSpec((None, s), tf.float32) for s in supernet.state_sizes()]
        arch = tf.TensorSpec((supernet.space.decisions.num_tokens,), tf.int32)
        self._train_step = tf.function(self._train, input_signature=[tokens, tokens, states, arch])
        self._eval_step = tf.function(self._eval, input_signature=[tokens, tokens, arch])

    def _train(self, x, y, states, arch):
        variables = self.supernet.trainable_variables
        with tf.GradientTape() as tape:
            logits, new_states = self.supernet(x, arch, states=states, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            total = loss
            if self.cfg.weight_decay:
                total += 0.5 * self.cfg.weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])
        grads = tape.gradient(total, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads = [g for g, _ in pairs]
        if self.cfg.grad_clip:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.grad_clip)
        self.optimizer.apply(grads, [v for _, v in pairs])
        return loss, [tf.stop_gradient(s) for s in new_states]

    def _eval(self, x, y, arch):
        logits, _ = self.supernet(x, arch, training=False)
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    def learning_rate(self, epoch: int) -> float:
        c = self.cfg
        return float(c.learning_rate * c.lr_decay ** max(0, epoch - c.lr_decay_start + 1))

    def train_epoch(self, epoch: int, sample_tokens: Callable[[], np.ndarray]) -> dict[str, float]:
        c = self.cfg
        lr = self.learning_rate(epoch)
        self.optimizer.learning_rate = lr
        per_epoch = min(self.n_windows, c.steps_per_epoch) if c.steps_per_epoch else self.n_windows
        first = (epoch * per_epoch) % self.n_windows if per_epoch < self.n_windows else 0
        if first + per_epoch > self.n_windows:
            first = 0
        states = self.supernet.initial_states(c.batch_size)
        total, count, steps = 0.0, 0, 0
        for k, (x, y) in enumerate(self.corpus.windows("train", c.batch_size, c.bptt)):
            if k < first:
                continue
            if k >= first + per_epoch:
                break
            arch = tf.constant(sample_tokens(), tf.int32)
            t0 = time.time()
            loss, states = self._train_step(tf.constant(x), tf.constant(y), states, arch)
            loss = float(loss)
            if steps == 0 and self._train_step.experimental_get_tracing_count() == 1 and not self._announced:
                self._announced = True
                log.info("traced the shared-weights step in %s (once per search: every architecture reuses it)",
                         format_duration(time.time() - t0))
            if not math.isfinite(loss):
                raise FloatingPointError(f"shared-weights loss became {loss} in epoch {epoch + 1}, step {steps + 1}")
            total += loss * y.size
            count += y.size
            steps += 1
        return {"loss": total / count, "perplexity": math.exp(min(total / count, 700.0)), "lr": lr, "steps": steps}

    def reward_batches(self, epoch: int):
        order = np.random.default_rng(self.cfg.seed * 7919 + epoch).permutation(len(self._reward_windows))
        k = 0
        while True:
            yield self._reward_windows[order[k % len(order)]]
            k += 1

    def reward(self, tokens: np.ndarray, batch) -> tuple[float, dict[str, float]]:
        x, y = batch
        loss = float(self._eval_step(tf.constant(x), tf.constant(y), tf.constant(tokens, tf.int32)))
        ppl = math.exp(min(loss, 700.0))
        return self.cfg.reward_c / ppl, {"val_perplexity": ppl}

    def trackables(self) -> dict[str, Any]:
        return {"supernet": self.supernet, "optimizer": self.optimizer}

    def config(self) -> dict[str, Any]:
        model = {k: v for k, v in self.supernet.get_config().items() if k != "name"}
        return {"dataset": self.corpus.name, "model": model, **dataclasses.asdict(self.cfg)}

    def trace_counts(self) -> dict[str, int]:
        return {
            "train_step": self._train_step.experimental_get_tracing_count(),
            "reward_step": self._eval_step.experimental_get_tracing_count(),
        }
