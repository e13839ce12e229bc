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

**Stale architectures.** ``P_old`` must be the policy that *sampled* each
architecture. In a synchronous search that is the current policy; with an
asynchronous controller (one update per returned child) a child sampled
``s`` updates ago comes back under a policy that has moved. PPO therefore
remembers the log-probability of every architecture it samples, with the
number of updates done at that time, and uses it as ``log P_old`` when the
policy has changed since: the ratio of a stale child starts away from 1 and
is clipped like any other (``staleness`` in the metrics). The memory is part
of the checkpointed state (a JSON string variable), so a resumed search
still knows the children in flight; token vectors this searcher never
sampled are scored as if sampled by the current policy.

**Options.** Every :class:`~nas_tf.controller.reinforce.PolicyGradientSearcher`
option is honoured as REINFORCE honours it: ``entropy_mode="reward"`` adds
the (stop-gradient) entropy of the sampling policy to the rewards and
``"loss"`` subtracts ``entropy_weight * entropy`` from every epoch's loss;
``baseline_update`` and ``baseline_mode`` place the baseline; ``skip_weight``
adds the skip penalty to every epoch's loss. With one epoch PPO is exactly a
REINFORCE step under every option (tested).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
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
        memory: how many sampled architectures' log-probabilities are kept
            for stale updates (oldest forgotten first).
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
    ['approx_kl', 'baseline', 'clip_fraction', 'entropy', 'log_prob', 'loss', 'mean_reward', 'skip_kl', 'skips', 'staleness']
    """

    name = "ppo"

    def __init__(
        self, controller: Controller, clip_epsilon: float = 0.2, epochs: int = 4, memory: int = 4096, **kwargs: Any
    ):
        if not 0.0 < clip_epsilon < 1.0:
            raise ValueError(f"clip_epsilon must be in (0, 1), got {clip_epsilon}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
            raise ValueError(f"memory must be a positive integer, got {memory!r}")
        super().__init__(controller, **kwargs)
        self.clip_epsilon = float(clip_epsilon)
        self.epochs = epochs
        self.memory = memory
        # {"updates": n, "entries": [[key, log_prob, updates when sampled], ...]}, oldest first.
        self.sampled_log_probs = tf.Variable(
            json.dumps({"updates": 0, "entries": []}), trainable=False, dtype=tf.string, name="sampled_log_probs"
        )
        self._digests: dict = {}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "clip_epsilon": self.clip_epsilon, "epochs": self.epochs}

    def trackables(self) -> dict[str, Any]:
        return {**super().trackables(), "sampled_log_probs": self.sampled_log_probs}

    # ------------------------------------------------ sampling log-probabilities

    def _load(self) -> dict:
        return json.loads(self.sampled_log_probs.numpy().decode("utf-8"))

    def _store(self, memory: dict) -> None:
        memory["entries"] = memory["entries"][-self.memory :]
        self.sampled_log_probs.assign(json.dumps(memory, separators=(",", ":")))

    def _keys(self, decisions: DecisionList, tokens: np.ndarray) -> list[str]:
        sig = decisions.signature()
        digest = self._digests.get(sig)
        if digest is None:
            digest = self._digests[sig] = hashlib.sha1(repr(sig).encode("utf-8")).hexdigest()[:12]
        return [digest + ":" + ",".join(map(str, row.tolist())) for row in tokens]

    def _sampled(self, decisions: DecisionList, tokens: np.ndarray, log_probs: np.ndarray) -> None:
        memory = self._load()
        n = memory["updates"]
        memory["entries"].extend([k, float(lp), n] for k, lp in zip(self._keys(decisions, tokens), log_probs))
        self._store(memory)

    def _sampling_log_probs(self, decisions: DecisionList, tokens: np.ndarray):
        memory = self._load()
        entries, now = memory["entries"], memory["updates"]
        m = tokens.shape[0]
        log_probs, staleness = np.zeros(m, np.float32), np.zeros(m, np.int64)
        for row, key in enumerate(self._keys(decisions, tokens)):
            # The newest sample of these tokens (the one a synchronous step just drew).
            for i in range(len(entries) - 1, -1, -1):
                if entries[i][0] == key:
                    _, log_probs[row], sampled_at = entries.pop(i)
                    staleness[row] = now - sampled_at
                    break
        self._store(memory)
        return log_probs, staleness > 0, {"staleness": float(staleness.mean())}

    def _updated(self) -> None:
        memory = self._load()
        memory["updates"] += 1
        self._store(memory)

    # ------------------------------------------------------------------ update

    def _update(self, decisions: DecisionList, tokens, rewards, sampled_log_prob, stale) -> dict:
        batch = tf.shape(tokens)[0]
        variables = self.controller.trainable_variables
        stats: dict = {}
        _, current_log_prob, old_entropy = self.controller._run(
            decisions, batch, tokens=tokens, stats=stats, skip_target=self.skip_target
        )
        # The sampling policy: the current one unless it has moved since the sample.
        old_log_prob = tf.stop_gradient(tf.where(stale, sampled_log_prob, current_log_prob))
        old_entropy = tf.stop_gradient(old_entropy)
        shaped = self._shaped_rewards(rewards, old_entropy)
        b, new_b = self._baseline_for(shaped)
        advantage = shaped - b

        def objective(log_prob, entropy, skip_kl):
            surrogate, clip_fraction = ppo_surrogate_loss(log_prob, old_log_prob, advantage, self.clip_epsilon)
            loss = surrogate
            if self.entropy_mode == "loss" and self.entropy_weight:
                loss -= self.entropy_weight * tf.reduce_mean(entropy)
            if self.skip_weight:
                loss += self.skip_weight * tf.reduce_mean(skip_kl)
            return loss, clip_fraction

        first_loss, _ = objective(current_log_prob, old_entropy, stats["skip_kl"])

        def epoch(i, clip_fraction):
            with tf.GradientTape() as tape:
                epoch_stats: dict = {}
                _, log_prob, entropy = self.controller._run(
                    decisions, batch, tokens=tokens, stats=epoch_stats, skip_target=self.skip_target
                )
                loss, clip_fraction = objective(log_prob, entropy, epoch_stats["skip_kl"])
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
            # The objective at the start of the update (ratio 1 unless stale).
            "loss": first_loss,
            "baseline": tf.reduce_mean(b),
            "mean_reward": tf.reduce_mean(rewards),
            "entropy": tf.reduce_mean(old_entropy),
            "log_prob": tf.reduce_mean(old_log_prob),
            "clip_fraction": clip_fraction,
            "approx_kl": tf.reduce_mean(old_log_prob - new_log_prob),
            "skip_kl": tf.reduce_mean(stats["skip_kl"]),
            "skips": tf.reduce_mean(stats["num_skips"]),
        }

