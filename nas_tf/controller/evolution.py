"""Regularized (aging) evolution (Real et al., AAAI 2019), the baseline users pick instead of RL.

A population of the last ``P`` evaluated architectures is kept in arrival
order. The first ``P`` proposals are uniformly random; after that each
proposal is a *tournament*: ``S`` members drawn without replacement, the one
with the highest reward is the parent, and the child is the parent with one
decision mutated. Every evaluated child joins the population and the
*oldest* member leaves (aging), whatever its reward.

Mutation works on any space's :class:`~nas_tf.spaces.decisions.DecisionList`:
one decision that can change is drawn uniformly; a categorical or select
decision moves to another value drawn uniformly, a skip (anchor-point)
decision flips one of its bits. The child is therefore always a valid
architecture of the space and differs from its parent in exactly one
decision.

Batches: ``sample(num)`` proposes ``num`` children from the population as it
stands (a parallel evolution with ``num`` workers); ``update`` adds them in
order. ``num = 1`` is the sequential algorithm of the paper. The population
belongs to one decision list: a list with another token count (a depth
schedule) starts a new population, first ``P`` proposals random again.

The whole state (population tokens, rewards, births, counters, the
random-number generator) is held in TensorFlow variables, so a resumed search
proposes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.spaces.decisions import Categorical, DecisionList, Select, Skip


def mutable_decisions(decisions: DecisionList) -> list[int]:
    """Indices of the decisions a mutation can change (more than one possible value)."""
    out = []
    for k, d in enumerate(decisions.decisions):
        if (
            (isinstance(d, Categorical) and d.num_choices > 1)
            or (isinstance(d, Select) and d.num_candidates > 1)
            or (isinstance(d, Skip) and d.num_candidates > 0)
        ):
            out.append(k)
    return out


def mutate_tokens(decisions: DecisionList, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``tokens`` with one decision changed (the mutation of regularized evolution).

    Args:
        decisions: the space's decision list.
        tokens: one token vector, ``[decisions.num_tokens]``.
        rng: the random-number generator.

    Returns:
        The mutated token vector (a copy; unchanged only if no decision of
        the space has two values).

    Example:

    >>> from nas_tf.spaces import NB201Space
    >>> dl = NB201Space().decisions
    >>> child = mutate_tokens(dl, np.zeros(6, np.int32), np.random.default_rng(0))
    >>> int((child != 0).sum())
    1
    """
    child = np.array(tokens, dtype=np.int32, copy=True).reshape(-1)
    if child.shape[0] != decisions.num_tokens:
        raise ValueError(f"expected {decisions.num_tokens} tokens, got {child.shape[0]}")
    sites = mutable_decisions(decisions)
    if not sites:
        return child
    k = sites[int(rng.integers(len(sites)))]
    d, off = decisions.decisions[k], decisions.offsets[k]
    if isinstance(d, Skip):
        bit = off + int(rng.integers(d.num_candidates))
        child[bit] = 1 - child[bit]
    else:
        n = d.num_choices if isinstance(d, Categorical) else d.num_candidates
        new = int(rng.integers(n - 1))
        child[off] = new + (new >= child[off])
    return child


class RegularizedEvolution(Searcher):
    """Regularized (aging) evolution.

    Args:
        population_size: P, the architectures kept (and the first P
            proposals, which are random).
        sample_size: S, the tournament size (``1 <= S <= P``).
        seed: seed of the random-number generator.

    Example:

    >>> from nas_tf.spaces import NB201Space
    >>> dl = NB201Space().decisions
    >>> searcher = RegularizedEvolution(population_size=4, sample_size=2, seed=0)
    >>> tokens = searcher.sample(dl, 4)
    >>> searcher.update(dl, tokens, [0.1, 0.4, 0.3, 0.2])["population"]
    4.0
    """

    name = "evolution"

    def __init__(self, population_size: int = 50, sample_size: int = 10, seed: int = 0):
        for field, value in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if sample_size > population_size:
            raise ValueError(f"sample_size must be <= population_size={population_size}, got {sample_size}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.seed = int(seed)
        self.generator = tf.random.Generator.from_seed(self.seed)
        # The population, oldest first: tokens [n, width], rewards [n], births [n].
        self.tokens = tf.Variable(
            tf.zeros([0, 0], tf.int32), shape=tf.TensorShape([None, None]), trainable=False, name="population_tokens"
        )
        self.rewards = tf.Variable(
            tf.zeros([0], tf.float32), shape=tf.TensorShape([None]), trainable=False, name="population_rewards"
        )
        self.births = tf.Variable(
            tf.zeros([0], tf.int64), shape=tf.TensorShape([None]), trainable=False, name="population_births"
        )
        self.width = tf.Variable(-1, dtype=tf.int64, trainable=False, name="width")
        self.proposed = tf.Variable(0, dtype=tf.int64, trainable=False, name="proposed")
        self.arrived = tf.Variable(0, dtype=tf.int64, trainable=False, name="arrived")

    # ------------------------------------------------------------------ state

    def population(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tokens, rewards, births)`` of the members, oldest first (births count every arrival)."""
        return self.tokens.numpy(), self.rewards.numpy(), self.births.numpy()

    def _use(self, decisions: DecisionList) -> None:
        """Starts a new population when the decision list has another token count."""
        width = decisions.num_tokens
        if int(self.width.numpy()) != width:
            self.tokens.assign(tf.zeros([0, width], tf.int32))
            self.rewards.assign(tf.zeros([0], tf.float32))
            self.births.assign(tf.zeros([0], tf.int64))
            self.width.assign(width)
            self.proposed.assign(0)

    def _rng(self) -> np.random.Generator:
        draw = int(self.generator.uniform_full_int([], dtype=tf.int64).numpy()) & 0x7FFFFFFFFFFFFFFF
        return np.random.default_rng(draw)

    # -------------------------------------------------------------- interface

    def sample(self, decisions: DecisionList, num: int) -> np.ndarray:
        self._use(decisions)
        rng = self._rng()
        tokens, rewards, _ = self.population()
        proposed = int(self.proposed.numpy())
        out = np.zeros((num, decisions.num_tokens), dtype=np.int32)
        for k in range(num):
            if proposed + k < self.population_size or tokens.shape[0] == 0:
                out[k] = decisions.random_tokens(rng, 1)[0]
            else:
                members = rng.choice(tokens.shape[0], size=min(self.sample_size, tokens.shape[0]), replace=False)
                parent = members[int(np.argmax(rewards[members]))]
                out[k] = mutate_tokens(decisions, tokens[parent], rng)
        self.proposed.assign_add(num)
        return out

    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        tokens = np.asarray(tokens, dtype=np.int32)
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if tokens.shape != (rewards.shape[0], decisions.num_tokens):
            raise ValueError(f"tokens {tokens.shape} and rewards {rewards.shape} do not match the decision list")
        self._use(decisions)
        pop_tokens, pop_rewards, births = self.population()
        first = int(self.arrived.numpy())
        new_births = np.arange(first, first + rewards.shape[0], dtype=np.int64)
        keep = self.population_size
        pop_tokens = np.concatenate([pop_tokens, tokens])[-keep:]
        pop_rewards = np.concatenate([pop_rewards, rewards])[-keep:]
        births = np.concatenate([births, new_births])[-keep:]
        self.tokens.assign(pop_tokens)
        self.rewards.assign(pop_rewards)
        self.births.assign(births)
        self.arrived.assign_add(rewards.shape[0])
        if not pop_rewards.shape[0]:
            return {"population": 0.0}
        return {
            "population": float(pop_rewards.shape[0]),
            "population_best": float(pop_rewards.max()),
            "population_mean": float(pop_rewards.mean()),
            "oldest_birth": float(births[0]),
        }

    def trackables(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "population_tokens": self.tokens,
            "population_rewards": self.rewards,
            "population_births": self.births,
            "width": self.width,
            "proposed": self.proposed,
            "arrived": self.arrived,
        }

    def config(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
