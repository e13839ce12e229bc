"""Building searchers by name, and reusing one searcher's traced functions across seeds.

:func:`make_searcher` is the one place that turns ``(algorithm, settings)``
into a :class:`~nas_tf.controller.base.Searcher`. :class:`SearcherPool` gives
the searcher of every seed of a benchmark without tracing the controller's
``tf.function``\\ s again for each seed (tracing costs seconds, a controller
step milliseconds): it keeps one searcher, and for a new seed restores the
state it had when built (every trackable: optimizer slots, baseline,
counters) and then sets what a seed decides: the controller's initial
weights (those of a controller built with that seed) and the generator.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.spaces.decisions import DecisionList

ALGORITHMS = ("random", "evolution", "reinforce", "ppo")
# make_searcher options that configure the controller (the LSTM policy), not the searcher.
CONTROLLER_OPTIONS = ("lstm_units", "lstm_layers", "init_range", "temperature", "tanh_constant")


def make_searcher(algorithm: str, decisions: DecisionList, seed: int = 0, **options: Any) -> Searcher:
    """Builds a searcher by name.

    Args:
        algorithm: ``"random"``, ``"evolution"``, ``"reinforce"`` or ``"ppo"``.
        decisions: the decision list it will drive (sizes the controller heads).
        seed: seed of the searcher (and of the controller's initial weights).
        **options: settings; ``lstm_units``, ``lstm_layers``, ``init_range``,
            ``temperature``, ``tanh_constant`` go to the controller, the rest
            to the searcher's constructor (e.g. ``learning_rate``,
            ``baseline_decay``, ``entropy_weight``; ``population_size``,
            ``sample_size``; ``clip_epsilon``, ``epochs``).

    Returns:
        The searcher.

    Raises:
        ValueError: an unknown algorithm, or options it does not take (named).

    Example:

    >>> from nas_tf.spaces import NB201Space
    >>> searcher = make_searcher("evolution", NB201Space().decisions, seed=1, population_size=20, sample_size=5)
    >>> searcher.config()["sample_size"]
    5
    """
    from nas_tf.controller.evolution import RegularizedEvolution
    from nas_tf.controller.policy import controller_for
    from nas_tf.controller.ppo import PPO
    from nas_tf.controller.random_search import RandomSearch
    from nas_tf.controller.reinforce import Reinforce

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    controller_options = {k: v for k, v in options.items() if k in CONTROLLER_OPTIONS}
    searcher_options = {k: v for k, v in options.items() if k not in CONTROLLER_OPTIONS}
    if algorithm in ("random", "evolution"):
        if controller_options:
            raise ValueError(
                f"algorithm {algorithm!r} has no controller; got controller options {sorted(controller_options)}"
            )
        cls = RandomSearch if algorithm == "random" else RegularizedEvolution
        try:
            return cls(seed=seed, **searcher_options)
        except TypeError as e:
            raise ValueError(f"algorithm {algorithm!r}: {e}") from None
    controller = controller_for(decisions, seed=seed, **controller_options)
    cls = Reinforce if algorithm == "reinforce" else PPO
    try:
        return cls(controller, seed=seed, **searcher_options)
    except TypeError as e:
        raise ValueError(f"algorithm {algorithm!r}: {e}") from None


class SearcherPool:
    """The searcher of any seed for one algorithm and its settings, traced once.

    ``pool.get(seed)`` behaves as ``make_searcher(algorithm, decisions, seed,
    **options)`` (same samples, same updates: tested) but returns the same
    object every time, reset, so its ``tf.function``\\ s are traced once. The
    previous seed's searcher must no longer be used.

    Args:
        algorithm: see :func:`make_searcher`.
        decisions: the decision list.
        **options: see :func:`make_searcher`.
    """

    def __init__(self, algorithm: str, decisions: DecisionList, **options: Any):
        self.algorithm = algorithm
        self.decisions = decisions
        self.options = dict(options)
        self._searcher: Searcher | None = None
        self._initial: str | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="nas_tf_searcher_pool_")

    def get(self, seed: int) -> Searcher:
        """The searcher of ``seed``, in the state ``make_searcher`` builds it in."""
        if self.algorithm in ("random", "evolution"):  # nothing traced: build afresh
            return make_searcher(self.algorithm, self.decisions, seed, **self.options)
        if self._searcher is None:
            self._searcher = make_searcher(self.algorithm, self.decisions, seed, **self.options)
            self._initial = tf.train.Checkpoint(**self._searcher.trackables()).write(
                os.path.join(self._dir.name, "initial")
            )
            return self._searcher
        from nas_tf.controller.policy import controller_for

        searcher = self._searcher
        tf.train.Checkpoint(**searcher.trackables()).read(self._initial).assert_consumed()
        controller_options = {k: v for k, v in self.options.items() if k in CONTROLLER_OPTIONS}
        fresh = controller_for(self.decisions, seed=seed, **controller_options)
        searcher.controller.set_weights(fresh.get_weights())
        searcher.generator.reset_from_seed(seed)
        searcher.seed = int(seed)
        return searcher
