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

The whole state (population tokens and rewards, and the counters: seed,
archs proposed, archs arrived) is held in TensorFlow variables, so a resumed
search proposes exactly what an uninterrupted one would have; a copy in
memory saves reading them back at every call. The random numbers of a
``sample`` call are a pure function of the seed and of the number of archs
proposed before it (``numpy.random.default_rng([seed, proposed,
generation])``), so the counters are the generator's whole state and a
resumed search continues with the checkpoint's seed. A stateful
``tf.random.Generator`` would cost several eager TensorFlow ops per call,
most of the time of a sequential (one arch per call) search.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

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


_SEED, _WIDTH, _GENERATION, _PROPOSED, _ARRIVED, _FINGERPRINT = range(6)


@dataclasses.dataclass
class _State:
    """The searcher's state in memory (the variables hold the same)."""

    counters: np.ndarray
    tokens: np.ndarray
    rewards: np.ndarray
    births: np.ndarray


def _fingerprint(previous: int, tokens: np.ndarray, rewards: np.ndarray) -> int:
    """A running hash of everything that joined the population (int64)."""
    digest = hashlib.blake2b(previous.to_bytes(8, "little", signed=True), digest_size=8)
    digest.update(np.ascontiguousarray(tokens).tobytes())
    digest.update(np.ascontiguousarray(rewards).tobytes())
    return int.from_bytes(digest.digest(), "little", signed=True)


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
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        # The population, oldest first: tokens [n, width], rewards [n]; the
        # members are the last n arrivals, so their births need no variable.
        self.tokens = tf.Variable(
            tf.zeros([0, 0], tf.int32), shape=tf.TensorShape([None, None]), trainable=False, name="population_tokens"
        )
        self.rewards = tf.Variable(
            tf.zeros([0], tf.float32), shape=tf.TensorShape([None]), trainable=False, name="population_rewards"
        )
        # seed, width (-1: none yet), generation, proposed, arrived, fingerprint
        self.counters = tf.Variable(
            tf.constant([self.seed, -1, 0, 0, 0, 0], tf.int64), trainable=False, name="counters"
        )
        self._mirror: _State | None = None

    # ------------------------------------------------------------------ state

    def _state(self) -> _State:
        """The state, from the variables unless the copy in memory is still theirs.

        Every change writes the counters (with a fingerprint of the
        population), so equal counters mean the variables hold what the copy
        holds; a restored checkpoint changes them and is read back.
        """
        counters = self.counters.numpy()
        if self._mirror is None or not np.array_equal(counters, self._mirror.counters):
            tokens, rewards = self.tokens.numpy(), self.rewards.numpy()
            arrived = int(counters[_ARRIVED])
            births = np.arange(arrived - rewards.shape[0], arrived, dtype=np.int64)
            self._mirror = _State(counters.copy(), tokens, rewards, births)
        return self._mirror

    def _commit(self, state: _State, population: bool) -> None:
        if population:
            self.tokens.assign(state.tokens, read_value=False)
            self.rewards.assign(state.rewards, read_value=False)
        self.counters.assign(state.counters, read_value=False)
        self._mirror = state

    def population(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tokens, rewards, births)`` of the members, oldest first (births count every arrival)."""
        state = self._state()
        return state.tokens.copy(), state.rewards.copy(), state.births.copy()

    def _use(self, decisions: DecisionList) -> _State:
        """The state; a decision list with another token count starts a new population."""
        state = self._state()
        width = decisions.num_tokens
        if state.counters[_WIDTH] != width:
            counters = state.counters.copy()
            counters[_WIDTH], counters[_GENERATION], counters[_PROPOSED] = width, counters[_GENERATION] + 1, 0
            state = _State(counters, np.zeros((0, width), np.int32), np.zeros(0, np.float32), np.zeros(0, np.int64))
            self._commit(state, population=True)
        return state

    # -------------------------------------------------------------- interface

    def sample(self, decisions: DecisionList, num: int) -> np.ndarray:
        state = self._use(decisions)
        seed, proposed, generation = (int(state.counters[k]) for k in (_SEED, _PROPOSED, _GENERATION))
        rng = np.random.default_rng([seed, proposed, generation])
        tokens, rewards = state.tokens, state.rewards
        out = np.zeros((num, decisions.num_tokens), dtype=np.int32)
        for k in range(num):
            if proposed + k < self.population_size or tokens.shape[0] == 0:
                out[k] = decisions.random_tokens(rng, 1)[0]
            else:
                members = rng.choice(tokens.shape[0], size=min(self.sample_size, tokens.shape[0]), replace=False)
                parent = members[int(np.argmax(rewards[members]))]
                out[k] = mutate_tokens(decisions, tokens[parent], rng)
        counters = state.counters.copy()
        counters[_PROPOSED] += num
        self._commit(_State(counters, tokens, rewards, state.births), population=False)
        return out

    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        tokens = np.asarray(tokens, dtype=np.int32)
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if tokens.shape != (rewards.shape[0], decisions.num_tokens):
            raise ValueError(f"tokens {tokens.shape} and rewards {rewards.shape} do not match the decision list")
        state = self._use(decisions)
        counters = state.counters.copy()
        first = int(counters[_ARRIVED])
        keep = self.population_size
        new = _State(
            counters,
            np.concatenate([state.tokens, tokens])[-keep:],
            np.concatenate([state.rewards, rewards])[-keep:],
            np.concatenate([state.births, np.arange(first, first + rewards.shape[0], dtype=np.int64)])[-keep:],
        )
        counters[_ARRIVED] += rewards.shape[0]
        counters[_FINGERPRINT] = _fingerprint(int(counters[_FINGERPRINT]), tokens, rewards)
        self._commit(new, population=True)
        if not new.rewards.shape[0]:
            return {"population": 0.0}
        return {
            "population": float(new.rewards.shape[0]),
            "population_best": float(new.rewards.max()),
            "population_mean": float(new.rewards.mean()),
            "oldest_birth": float(new.births[0]),
        }

    def trackables(self) -> dict[str, Any]:
        return {
            "population_tokens": self.tokens,
            "population_rewards": self.rewards,
            "counters": self.counters,
        }

    def config(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
