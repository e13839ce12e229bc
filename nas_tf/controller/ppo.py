"""Proximal Policy Optimization for the controller (the RL algorithm of NASNet).

Zoph et al. (2018) train the controller with PPO (Schulman et al. 2017)
instead of REINFORCE: each batch of sampled architectures (20 in the paper)
is used for several epochs of updates of the clipped surrogate objective

    L(theta) = mean_k min(r_k A_k, clip(r_k, 1 - eps, 1 + eps) A_k),
    r_k = P_theta(a_k) / P_old(a_k),

where ``P_old`` is the policy that sampled the batch and ``A_k = R_k - b``
with the same moving-average baseline as REINFORCE. On the first epoch
``r_k = 1`` and nothing is clipped, so the first update is exactly the
REINFORCE update; later epochs stop moving an architecture's probability once
its ratio leaves ``[1 - eps, 1 + eps]`` in the direction its advantage pushes.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from nas_tf.controller.policy import Controller
from nas_tf.controller.reinforce import PolicyGradientSearcher
from nas_tf.spaces.decisions import DecisionList


def ppo_surrogate_loss(log_prob, old_log_prob, advantage, clip_epsilon: float):
    """The negated clipped surrogate objective (to minimise).

    Args:
        log_prob: log-probabilities of the architectures under the current
            policy, ``[m]`` (differentiable).
        old_log_prob: their log-probabilities under the sampling policy
            (treated as constants).
        advantage: ``R - b`` per architecture, ``[m]``.
        clip_epsilon: the clipping range ``eps``.

    Returns:
        ``(loss, clip_fraction)``: the scalar loss and the fraction of
        architectures whose objective is clipped.

    Example:

    >>> loss, clipped = ppo_surrogate_loss(tf.constant([0.0]), tf.constant([0.0]), tf.constant([0.5]), 0.2)
    >>> float(loss), float(clipped)
    (-0.5, 0.0)
    """
    ratio = tf.exp(log_prob - tf.stop_gradient(old_log_prob))
    unclipped = ratio * advantage
    clipped = tf.clip_by_value(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon) * advantage
    objective = tf.minimum(unclipped, clipped)
    clip_fraction = tf.reduce_mean(tf.cast(clipped < unclipped, tf.float32))
    return -tf.reduce_mean(objective), clip_fraction


class PPO(PolicyGradientSearcher):
    """PPO with the clipped surrogate objective and a moving-average baseline.

    Args:
        controller: the policy.
        clip_epsilon: clipping range of the probability ratio (the NASNet
            paper does not report it; 0.2 is PPO's default).
        epochs: optimisation epochs over each batch of architectures.
        **kwargs: :class:`~nas_tf.controller.reinforce.PolicyGradientSearcher`
            settings (NASNet: learning rate 3.5e-4, entropy weight 1e-5,
            baseline decay 0.95).

    Example:

    >>> from nas_tf.spaces import NASNetSpace
    >>> from nas_tf.controller import controller_for
    >>> space = NASNetSpace(num_blocks=2)
    >>> searcher = PPO(controller_for(space.decisions, lstm_units=16, lstm_layers=1), epochs=3)
    >>> tokens = searcher.sample(space.decisions, 4)
    >>> sorted(searcher.update(space.decisions, tokens, [0.1, 0.2, 0.3, 0.4]))
    ['approx_kl', 'baseline', 'clip_fraction', 'entropy', 'log_prob', 'loss', 'mean_reward']
    """

    name = "ppo"

    def __init__(self, controller: Controller, clip_epsilon: float = 0.2, epochs: int = 4, **kwargs: Any):
        if not 0.0 < clip_epsilon < 1.0:
            raise ValueError(f"clip_epsilon must be in (0, 1), got {clip_epsilon}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        super().__init__(controller, **kwargs)
        self.clip_epsilon = float(clip_epsilon)
        self.epochs = epochs

    def config(self) -> dict[str, Any]:
        return {**super().config(), "clip_epsilon": self.clip_epsilon, "epochs": self.epochs}

    def _update(self, decisions: DecisionList, tokens, rewards) -> dict:
        b, new_b = self._baseline_for(rewards)
        advantage = rewards - b
        batch = tf.shape(tokens)[0]
        variables = self.controller.trainable_variables
        _, old_log_prob, old_entropy = self.controller._run(decisions, batch, tokens=tokens)
        old_log_prob = tf.stop_gradient(old_log_prob)
        old_entropy = tf.stop_gradient(old_entropy)

        def epoch(i, clip_fraction):
            with tf.GradientTape() as tape:
                _, log_prob, entropy = self.controller._run(decisions, batch, tokens=tokens)
                surrogate, clip_fraction = ppo_surrogate_loss(log_prob, old_log_prob, advantage, self.clip_epsilon)
                loss = surrogate - self.entropy_weight * tf.reduce_mean(entropy)
            self._apply(tape.gradient(loss, variables), variables)
            return i + 1, clip_fraction

        # A graph loop: one copy of the controller's forward and backward pass
        # whatever the number of epochs (unrolling them makes tracing slow).
        _, clip_fraction = tf.while_loop(
            lambda i, _: i < self.epochs, epoch, (tf.constant(0), tf.constant(0.0)), parallel_iterations=1
        )
        _, new_log_prob, _ = self.controller._run(decisions, batch, tokens=tokens)
        self._commit_baseline(new_b)
        return {
            # The objective of the first epoch (ratio 1), as REINFORCE reports it.
            "loss": -tf.reduce_mean(advantage) - self.entropy_weight * tf.reduce_mean(old_entropy),
            "baseline": b,
            "mean_reward": tf.reduce_mean(rewards),
            "entropy": tf.reduce_mean(old_entropy),
            "log_prob": tf.reduce_mean(old_log_prob),
            "clip_fraction": clip_fraction,
            "approx_kl": tf.reduce_mean(old_log_prob - new_log_prob),
        }


def options_from_flags(flags_values) -> dict[str, Any]:
    """PPO's own settings from the ``define_ppo_flags`` flags (``--ppo_clip``, ``--ppo_epochs``)."""
    return {"clip_epsilon": flags_values.ppo_clip, "epochs": flags_values.ppo_epochs}
