"""Random search: the control experiment of Zoph & Le (2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.spaces.decisions import DecisionList


class RandomSearch(Searcher):
    """Samples every architecture uniformly; learns nothing.

    Every categorical and select decision is uniform over its choices and
    every skip bit a fair coin. The generator state is checkpointed, so a
    resumed search draws the same architectures as an uninterrupted one.

    Args:
        seed: seed of the random-number generator.

    Example:

    >>> from nas_tf.spaces import NASCNNSpace
    >>> searcher = RandomSearch(seed=1)
    >>> searcher.sample(NASCNNSpace(num_layers=2).decisions, 3).shape
    (3, 7)
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.generator = tf.random.Generator.from_seed(self.seed)

    def sample(self, decisions: DecisionList, num: int) -> np.ndarray:
        draw = int(self.generator.uniform_full_int([], dtype=tf.int64).numpy()) & 0x7FFFFFFFFFFFFFFF
        return decisions.random_tokens(np.random.default_rng(draw), num)

    def update(self, decisions: DecisionList, tokens: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        return {}

    def trackables(self) -> dict[str, Any]:
        return {"generator": self.generator}

    def config(self) -> dict[str, Any]:
        return {"algorithm": self.name, "seed": self.seed}
