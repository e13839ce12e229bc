"""The interface every tabular benchmark offers: given an arch, its recorded metrics."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

from nas_tf.spaces.arch import Arch
from nas_tf.spaces.base import SearchSpace


class BenchmarkError(ValueError):
    """A benchmark file is unreadable or an arch is not in the table; the message names both."""


class BenchmarkNotInstalled(BenchmarkError):
    """The package or directory a benchmark source reads is not there."""


class TabularBenchmark(abc.ABC):
    """A table of recorded metrics for every arch of a search space.

    Subclasses implement :meth:`query`, :meth:`__iter__` and
    :meth:`__len__`; the metrics of every arch include at least
    ``"test_accuracy"`` (in percent).

    Attributes:
        space: the search space whose archs the table holds.
        source: where the records come from (a package, a directory).
    """

    space: SearchSpace
    source: str

    @abc.abstractmethod
    def query(self, arch: Arch | str | dict) -> dict[str, Any]:
        """The recorded metrics of ``arch`` (an arch, its JSON or the benchmark's own string).

        Raises:
            BenchmarkError: the arch is not of this space or not in the table.
        """

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Arch]:
        """Every arch of the table."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of archs in the table."""

    def __contains__(self, arch: Any) -> bool:
        try:
            self.query(arch)
        except BenchmarkError:
            return False
        return True

    def optimum(self, metric: str = "test_accuracy") -> tuple[Arch, float]:
        """The arch with the highest ``metric`` and that value (reads the whole table)."""
        best, best_value = None, None
        for arch in self:
            value = self.query(arch)[metric]
            if best_value is None or value > best_value:
                best, best_value = arch, value
        if best is None:
            raise BenchmarkError(f"{self.source}: the table is empty")
        return best, float(best_value)

    def describe(self) -> dict[str, Any]:
        """Where the records come from, JSON-able (written beside a run)."""
        return {"space": self.space.name, "source": self.source, "archs": len(self)}


def reward_for(table: TabularBenchmark, arch: Arch, metric: str = "test_accuracy") -> tuple[float, dict[str, Any]]:
    """The reward of ``arch`` read from ``table`` (no training): ``metric / 100``.

    The tabular child task of a search calls this for every arch it is
    asked to evaluate.

    Args:
        table: the benchmark.
        arch: the arch to score.
        metric: the recorded accuracy (percent) the reward is made of.

    Returns:
        ``(reward, metrics)``: the accuracy as a fraction and every recorded
        metric of the arch.

    Raises:
        BenchmarkError: the arch is not in the table or has no ``metric``.

    Example:

    >>> reward, metrics = reward_for(nb201(), load_arch("nb201_resnet"))  # doctest: +SKIP
    """
    metrics = table.query(arch)
    if metric not in metrics:
        raise BenchmarkError(f"{table.source}: no metric {metric!r} recorded (metrics: {', '.join(sorted(metrics))})")
    return float(metrics[metric]) / 100.0, metrics
