"""REINFORCE with an exponential-moving-average baseline (Zoph & Le 2017, 3.2).

For a step of ``m`` sampled architectures with rewards ``R_k`` the controller
parameters follow

    (1/m) sum_k sum_t grad log P(a_t | a_{1:t-1}) (R_k - b)

where ``b`` is an exponential moving average of earlier rewards, "of the
previous architectures" in the paper's words. How it moves (``baseline_mode``):

* ``"per_arch"`` (default): once per architecture, in sampling order,
  ``b_k = decay * b_{k-1} + (1 - decay) * R_k``, as the ENAS authors' code
  does (it runs one architecture per session step and aggregates the
  gradients of ``m`` of them). Architecture ``k`` of a step is compared with
  ``b_{k-1}`` (``baseline_update="after"``: the average of the architectures
  before it) or with ``b_k`` (``"before"``: its own reward folded in first,
  the authors' code, which shrinks its advantage to ``decay * (R_k - b_{k-1})``).
* ``"per_batch"``: once per step of ``m`` architectures, from their mean,
  ``b <- decay * b + (1 - decay) * mean(R)``; every architecture of the step
  is compared with the ``b`` of before the step (``"after"``) or after it
  (``"before"``). Its time constant is ``m`` times longer in architectures.

``per_arch`` makes ``baseline_decay`` mean the same thing whatever ``m`` is
(and the same in a synchronous search of ``m`` per step as in an asynchronous
one of one per update). On the very first step, when no earlier reward
exists, the moving average starts at the first reward (``per_arch``) or at
the step's mean reward (``per_batch``), not at the authors' 0
(docs/fidelity.md). An optional entropy bonus adds
``entropy_weight * entropy`` to the objective (``entropy_mode="loss"``) or to
every reward (``"reward"``, ENAS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.controller.policy import Controller
from nas_tf.spaces.decisions import DecisionList

BASELINE_MODES = ("per_arch", "per_batch")


class PolicyGradientSearcher(Searcher):
    """Shared part of the policy-gradient searchers (REINFORCE, PPO).

    Holds the controller, its Adam optimizer, the moving-average baseline, the
    random-number generator used for sampling, and the number of updates.

    Args:
        controller: the policy.
        learning_rate: Adam learning rate.
        baseline_decay: decay of the reward moving average.
        entropy_weight: weight of the entropy bonus (0 disables it).
        seed: seed of the sampling generator.
        beta_1: Adam beta_1 (ENAS uses 0).
        epsilon: Adam epsilon (ENAS uses 1e-3).
        clipnorm: optional gradient-norm clipping.
        entropy_mode: ``"loss"`` adds ``entropy_weight * entropy`` to the
            objective (its gradient acts directly); ``"reward"`` adds it to
            every reward (no gradient of its own, ENAS).
        baseline_update: ``"after"`` uses the moving average of the earlier
            architectures (or steps) as the baseline (NAS); ``"before"``
            folds the architecture's (or step's) reward in first (the ENAS
            code).
        baseline_mode: ``"per_arch"`` moves the baseline once per
            architecture, in sampling order (the ENAS code); ``"per_batch"``
            once per step, from the step's mean reward. See the module
            docstring.
        skip_target: target skip probability of the skip penalty.
        skip_weight: weight of the ENAS skip penalty (KL divergence between
            the skip probabilities and ``skip_target``; 0 disables it).
    """

    def __init__(
        self,
        controller: Controller,
        learning_rate: float = 6e-4,
        baseline_decay: float = 0.95,
        entropy_weight: float = 0.0,
        seed: int = 0,
        beta_1: float = 0.9,
        epsilon: float = 1e-7,
        clipnorm: float | None = None,
        entropy_mode: str = "loss",
        baseline_update: str = "after",
        skip_target: float = 0.4,
        skip_weight: float = 0.0,
        baseline_mode: str = "per_arch",
    ):
        if baseline_mode not in BASELINE_MODES:
            raise ValueError(f"baseline_mode must be one of {list(BASELINE_MODES)}, got {baseline_mode!r}")
        if entropy_mode not in ("loss", "reward"):
            raise ValueError(f"entropy_mode must be 'loss' or 'reward', got {entropy_mode!r}")
        if baseline_update not in ("after", "before"):
            raise ValueError(f"baseline_update must be 'after' or 'before', got {baseline_update!r}")
        if not 0.0 < skip_target < 1.0:
            raise ValueError(f"skip_target must be in (0, 1), got {skip_target}")
        if skip_weight < 0:
            raise ValueError(f"skip_weight must be >= 0, got {skip_weight}")
        self.entropy_mode = entropy_mode
        self.baseline_update = baseline_update
        self.baseline_mode = baseline_mode
        self.skip_target = float(skip_target)
        self.skip_weight = float(skip_weight)
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if entropy_weight < 0:
            raise ValueError(f"entropy_weight must be >= 0, got {entropy_weight}")
        self.controller = controller
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.seed = int(seed)
        self.beta_1 = float(beta_1)
        self.epsilon = float(epsilon)
        self.clipnorm = clipnorm
        self.optimizer = keras.optimizers.Adam(
            learning_rate=self.learning_rate, beta_1=self.beta_1, epsilon=self.epsilon, clipnorm=clipnorm
        )
        # Build the slots now: a lazily built optimizer inside tf.function (and
        # under tf.distribute) fails in obscure ways (TF-NOTES 1a).
        self.optimizer.build(controller.trainable_variables)
        self.baseline = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="baseline")
        self.baseline_ready = tf.Variable(False, trainable=False, name="baseline_ready")
        self.generator = tf.random.Generator.from_seed(self.seed)
        self._update_fns: dict = {}

    def sample(self, decisions: DecisionList, num: int) -> np.ndarray:
        seed = self.generator.make_seeds(1)[:, 0]
        tokens, log_probs, _ = self.controller.sample(decisions, num, seed)
        tokens = tokens.numpy()
        self._sampled(decisions, tokens, log_probs.numpy())
        return tokens

    def _sampled(self, decisions: DecisionList, tokens: np.ndarray, log_probs: np.ndarray) -> None:
        """Called with every sample and the log-probabilities it was drawn with (PPO keeps them)."""

    def entropy(self, decisions: DecisionList, tokens: np.ndarray) -> float:
        _, entropy = self.controller.log_prob(decisions, tokens)
        return float(tf.reduce_mean(entropy))

    def _baseline_for(self, rewards):
        """The baseline of every architecture, ``[m]``, and the updated moving average."""
        decay = self.baseline_decay
        if self.baseline_mode == "per_batch":
            mean = tf.reduce_mean(rewards)
            b = tf.where(self.baseline_ready, self.baseline, mean)
            new_b = decay * b + (1.0 - decay) * mean
            used = new_b if self.baseline_update == "before" else b
            return tf.fill(tf.shape(rewards), used), new_b
        # per_arch: b_k = decay * b_{k-1} + (1 - decay) * R_k, in sampling order.
        start = tf.where(self.baseline_ready, self.baseline, rewards[0])
        after = tf.scan(lambda b, r: decay * b + (1.0 - decay) * r, rewards, initializer=start)  # b_1 .. b_m
        if self.baseline_update == "before":
            return after, after[-1]
        return tf.concat([start[None], after[:-1]], axis=0), after[-1]

    def _shaped_rewards(self, rewards, entropy):
        """Rewards with the entropy bonus added when ``entropy_mode == "reward"``."""
        if self.entropy_mode == "reward" and self.entropy_weight:
            return rewards + self.entropy_weight * tf.stop_gradient(entropy)
        return rewards

    def _commit_baseline(self, new_b):
        self.baseline.assign(new_b)
        self.baseline_ready.assign(True)

    def trackables(self) -> dict[str, Any]:
        return {
            "controller": self.controller,
            "optimizer": self.optimizer,
            "baseline": self.baseline,
            "baseline_ready": self.baseline_ready,
            "generator": self.generator,
        }

    def config(self) -> dict[str, Any]:
        c = self.controller
        return {
            "algorithm": self.name,
            "learning_rate": self.learning_rate,
            "baseline_decay": self.baseline_decay,
            "entropy_weight": self.entropy_weight,
            "seed": self.seed,
            "beta_1": self.beta_1,
            "epsilon": self.epsilon,
            "clipnorm": self.clipnorm,
            "entropy_mode": self.entropy_mode,
            "baseline_update": self.baseline_update,
            "skip_target": self.skip_target,
            "skip_weight": self.skip_weight,
            "baseline_mode": self.baseline_mode,
            "controller": {
                "lstm_units": c.lstm_units,
                "lstm_layers": c.lstm_layers,
                "init_range": c.init_range,
                "temperature": c.temperature,
                "tanh_constant": c.tanh_constant,
                **c.options(),
            },
        }

    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        tokens = np.asarray(tokens, dtype=np.int32)
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if tokens.shape != (rewards.shape[0], decisions.num_tokens):
            raise ValueError(f"tokens {tokens.shape} and rewards {rewards.shape} do not match the decision list")
        if rewards.shape[0] == 0:
            raise ValueError("update needs the rewards of at least one architecture, got none")
        fn = self._update_fns.get(decisions.signature())
        if fn is None:
            fn = tf.function(
                lambda t, r, lp, stale: self._update(decisions, t, r, lp, stale),
                input_signature=[
                    tf.TensorSpec((None, decisions.num_tokens), tf.int32),
                    tf.TensorSpec((None,), tf.float32),
                    tf.TensorSpec((None,), tf.float32),
                    tf.TensorSpec((None,), tf.bool),
                ],
            )
            self._update_fns[decisions.signature()] = fn
        sampled_log_prob, stale, extra = self._sampling_log_probs(decisions, tokens)
        metrics = fn(tf.constant(tokens), tf.constant(rewards), tf.constant(sampled_log_prob), tf.constant(stale))
        self._updated()
        return {**{k: float(v) for k, v in metrics.items()}, **extra}

    def _sampling_log_probs(self, decisions: DecisionList, tokens: np.ndarray):
        """``(log_probs [m], stale [m], metrics)``: the log-probabilities ``tokens`` were sampled with.

        ``stale[k]`` says the policy has changed since row ``k`` was sampled
        (then ``log_probs[k]`` is the one it was sampled with); rows that are
        not stale are scored under the current policy. REINFORCE keeps none.
        """
        m = tokens.shape[0]
        return np.zeros(m, np.float32), np.zeros(m, bool), {}

    def _updated(self) -> None:
        """Called after every update."""

    def _update(self, decisions: DecisionList, tokens, rewards, sampled_log_prob, stale) -> dict:
        raise NotImplementedError

    def _apply(self, grads, variables) -> None:
        """Applies the gradients that exist (a short decision list may not use every head)."""
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


class Reinforce(PolicyGradientSearcher):
    """REINFORCE with a moving-average baseline, the NAS default.

    Args: see :class:`PolicyGradientSearcher` (learning rate 6e-4 as in the
        NAS CIFAR-10 search; 5e-4 for the recurrent-cell search).

    Example:

    >>> from nas_tf.spaces import NASCNNSpace
    >>> from nas_tf.controller import controller_for
    >>> space = NASCNNSpace(num_layers=2)
    >>> searcher = Reinforce(controller_for(space.decisions), seed=0)
    >>> tokens = searcher.sample(space.decisions, 4)
    >>> sorted(searcher.update(space.decisions, tokens, [0.1, 0.2, 0.3, 0.4]))
    ['baseline', 'entropy', 'log_prob', 'loss', 'mean_reward', 'skip_kl', 'skips']
    """

    name = "reinforce"

    def _update(self, decisions: DecisionList, tokens, rewards, sampled_log_prob, stale) -> dict:
        # REINFORCE scores every architecture under the current policy (a stale one, from an
        # asynchronous controller, makes the update off-policy by its staleness).
        variables = self.controller.trainable_variables
        stats: dict = {}
        with tf.GradientTape() as tape:
            _, log_prob, entropy = self.controller._run(
                decisions, tf.shape(tokens)[0], tokens=tokens, stats=stats, skip_target=self.skip_target
            )
            shaped = self._shaped_rewards(rewards, entropy)
            b, new_b = self._baseline_for(tf.stop_gradient(shaped))
            loss = -tf.reduce_mean((shaped - b) * log_prob)
            if self.entropy_mode == "loss" and self.entropy_weight:
                loss -= self.entropy_weight * tf.reduce_mean(entropy)
            if self.skip_weight:
                loss += self.skip_weight * tf.reduce_mean(stats["skip_kl"])
        self._apply(tape.gradient(loss, variables), variables)
        self._commit_baseline(new_b)
        return {
            "loss": loss,
            "baseline": tf.reduce_mean(b),
            "mean_reward": tf.reduce_mean(rewards),
            "entropy": tf.reduce_mean(entropy),
            "log_prob": tf.reduce_mean(log_prob),
            "skip_kl": tf.reduce_mean(stats["skip_kl"]),
            "skips": tf.reduce_mean(stats["num_skips"]),
        }
