"""Running a searcher against a table: sample, look up, update; no training, no files.

:class:`TokenLookup` turns a table into an array indexed by token vectors
(spaces of categorical decisions, such as NAS-Bench-201), so a query costs a
few microseconds; :func:`run_on_table` drives any
:class:`~nas_tf.controller.base.Searcher` for a budget of queries and returns
the metric of every query in order. Nothing here imports TensorFlow (the
searchers do).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas_tf.benchmarks.base import BenchmarkError, TabularBenchmark
from nas_tf.spaces.decisions import Categorical


class TokenLookup:
    """A metric of every arch of a table, indexed by token vectors.

    Args:
        table: the benchmark.
        metric: the recorded metric to look up.

    Raises:
        BenchmarkError: the space has a decision that is not categorical, or
            an arch of the space is missing from the table.

    Example:

    >>> lookup = TokenLookup(nb201())  # doctest: +SKIP
    >>> lookup(np.array([[3, 3, 3, 1, 3, 3]]))  # doctest: +SKIP
    array([93.988])
    """

    def __init__(self, table: TabularBenchmark, metric: str = "test_accuracy"):
        decisions = table.space.decisions
        if not all(isinstance(d, Categorical) for d in decisions):
            raise BenchmarkError(f"{table.source}: a token lookup needs categorical decisions only")
        self.decisions = decisions
        self.metric = metric
        self.dims = tuple(d.num_choices for d in decisions)
        values = np.empty(int(np.prod(self.dims)), dtype=np.float64)
        for code, tokens in enumerate(itertools.product(*(range(n) for n in self.dims))):
            values[code] = table.query(table.space.from_tokens(tokens))[metric]
        self.values = values

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """The metric of every row of ``tokens`` (int ``[n, num_tokens]``)."""
        tokens = np.asarray(tokens).reshape(-1, len(self.dims))
        return self.values[np.ravel_multi_index(tuple(tokens.T), self.dims)]

    def optimum(self) -> float:
        """The best value of the table."""
        return float(self.values.max())


def run_on_table(searcher: Any, lookup: TokenLookup, budget: int, batch: int = 1) -> np.ndarray:
    """Runs a searcher for ``budget`` queries against a table.

    Every step asks for ``batch`` archs (the last step fewer, to land on the
    budget), looks their metric up and hands ``metric / 100`` back as the
    rewards. Every proposal is a query, repeats included.

    Args:
        searcher: a :class:`~nas_tf.controller.base.Searcher`.
        lookup: the table as a :class:`TokenLookup`.
        budget: the number of queries.
        batch: archs per ``sample``/``update`` step.

    Returns:
        The metric of every query, in order, ``[budget]``.
    """
    if budget < 1 or batch < 1:
        raise ValueError(f"budget and batch must be >= 1, got {budget} and {batch}")
    out = np.empty(budget, dtype=np.float64)
    done = 0
    while done < budget:
        num = min(batch, budget - done)
        tokens = searcher.sample(lookup.decisions, num)
        values = lookup(tokens)
        searcher.update(lookup.decisions, tokens, values / 100.0)
        out[done : done + num] = values
        done += num
    return out


def best_so_far(values: np.ndarray) -> np.ndarray:
    """The running maximum along the last axis (the incumbent after every query)."""
    return np.maximum.accumulate(np.asarray(values), axis=-1)


def summarize(curves: np.ndarray, marks: Sequence[int], optimum: float) -> dict[int, dict[str, float]]:
    """Mean, standard deviation, standard error and regret of the best value after each mark.

    Args:
        curves: best-so-far values, ``[runs, budget]``.
        marks: query counts to report (1-based).
        optimum: the table's best value (for the regret).

    Returns:
        ``{mark: {"mean", "std", "se", "regret"}}``.
    """
    out = {}
    n = curves.shape[0]
    for m in marks:
        col = curves[:, m - 1]
        std = float(col.std(ddof=1)) if n > 1 else 0.0
        out[m] = {"mean": float(col.mean()), "std": std, "se": std / np.sqrt(n), "regret": optimum - float(col.mean())}
    return out
