"""REINFORCE with an exponential-moving-average baseline (Zoph & Le 2017, 3.2).

For a step of ``m`` sampled architectures with rewards ``R_k`` the controller
parameters follow

    (1/m) sum_k sum_t grad log P(a_t | a_{1:t-1}) (R_k - b)

where ``b`` is an exponential moving average of earlier rewards. The baseline
used for a step is the average *before* that step's rewards are folded in
(``b <- decay * b + (1 - decay) * mean(R)`` afterwards); on the very first step,
when no earlier reward exists, ``b`` is the step's mean reward. An optional
entropy bonus adds ``entropy_weight * mean entropy`` to the objective.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.controller.policy import Controller
from nas_tf.spaces.decisions import DecisionList


class PolicyGradientSearcher(Searcher):
    """Shared part of the policy-gradient strategies (REINFORCE, PPO).

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
            steps as the baseline (NAS); ``"before"`` folds the step's rewards
            in first (the ENAS code).
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
    ):
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
        tokens, _, _ = self.controller.sample(decisions, num, seed)
        return tokens.numpy()

    def entropy(self, decisions: DecisionList, tokens: np.ndarray) -> float:
        _, entropy = self.controller.log_prob(decisions, tokens)
        return float(tf.reduce_mean(entropy))

    def _baseline_for(self, rewards):
        """The baseline of this step and the updated moving average."""
        mean = tf.reduce_mean(rewards)
        b = tf.where(self.baseline_ready, self.baseline, mean)
        new_b = self.baseline_decay * b + (1.0 - self.baseline_decay) * mean
        if self.baseline_update == "before":
            return new_b, new_b
        return b, new_b

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
            "controller": {
                "lstm_units": c.lstm_units,
                "lstm_layers": c.lstm_layers,
                "init_range": c.init_range,
                "temperature": c.temperature,
                "tanh_constant": c.tanh_constant,
            },
        }

    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        tokens = np.asarray(tokens, dtype=np.int32)
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if tokens.shape != (rewards.shape[0], decisions.num_tokens):
            raise ValueError(f"tokens {tokens.shape} and rewards {rewards.shape} do not match the decision list")
        fn = self._update_fns.get(decisions.signature())
        if fn is None:
            fn = tf.function(
                lambda t, r: self._update(decisions, t, r),
                input_signature=[
                    tf.TensorSpec((None, decisions.num_tokens), tf.int32),
                    tf.TensorSpec((None,), tf.float32),
                ],
            )
            self._update_fns[decisions.signature()] = fn
        metrics = fn(tf.constant(tokens), tf.constant(rewards))
        return {k: float(v) for k, v in metrics.items()}

    def _update(self, decisions: DecisionList, tokens, rewards) -> dict:
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

    def _update(self, decisions: DecisionList, tokens, rewards) -> dict:
        variables = self.controller.trainable_variables
        stats: dict = {}
        with tf.GradientTape() as tape:
            _, log_prob, entropy = self.controller._run(
                decisions, tf.shape(tokens)[0], tokens=tokens, stats=stats, skip_target=self.skip_target
            )
            shaped = self._shaped_rewards(rewards, entropy)
            b, new_b = self._baseline_for(shaped)
            loss = -tf.reduce_mean((shaped - b) * log_prob)
            if self.entropy_mode == "loss" and self.entropy_weight:
                loss -= self.entropy_weight * tf.reduce_mean(entropy)
            if self.skip_weight:
                loss += self.skip_weight * tf.reduce_mean(stats["skip_kl"])
        self._apply(tape.gradient(loss, variables), variables)
        self._commit_baseline(new_b)
        return {
            "loss": loss,
            "baseline": b,
            "mean_reward": tf.reduce_mean(rewards),
            "entropy": tf.reduce_mean(entropy),
            "log_prob": tf.reduce_mean(log_prob),
            "skip_kl": tf.reduce_mean(stats["skip_kl"]),
            "skips": tf.reduce_mean(stats["num_skips"]),
        }
