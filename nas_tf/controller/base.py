"""The interface every searcher (REINFORCE, PPO, random search) offers.

The search loops only talk to this interface: they ask for ``num`` token
vectors of a decision list, have the architectures evaluated, and hand the
rewards back. A searcher's state (controller weights, optimizer slots,
baseline, random-number generator, counters) is exposed as TensorFlow
trackables so the loop saves and restores it with one checkpoint.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nas_tf.spaces.decisions import DecisionList


class Searcher(abc.ABC):
    """Proposes architectures as token vectors and learns from their rewards.

    A search algorithm (REINFORCE, PPO, random search, ...). Not to be confused
    with a ``tf.distribute.Strategy``, which says where tensors are computed.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def sample(self, decisions: DecisionList, num: int) -> np.ndarray:
        """Returns ``num`` token vectors, int32 ``[num, decisions.num_tokens]``."""

    @abc.abstractmethod
    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        """Learns from the rewards of ``tokens``; returns metrics to log."""

    @abc.abstractmethod
    def trackables(self) -> dict[str, Any]:
        """TensorFlow trackables holding the whole state, for ``tf.train.Checkpoint``."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The settings, JSON-able (written to the run directory)."""

    def entropy(self, decisions: DecisionList, tokens: np.ndarray) -> float | None:
        """Mean policy entropy at ``tokens`` (None for searchers without a policy)."""
        return None
