"""The child function of the tabular task: a table look-up instead of training."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from nas_tf.search.evaluator import ChildRequest, ChildResult

# The tables a search can read: the analog-nasbench package, or NATS-Bench files (--benchmark_dir).
TABLES = ("analog_nasbench", "nats")


def load_table(name: str, data_dir: str | None = None, download: bool = False):
    """The NAS-Bench-201 table ``name`` (``"nats"``: the NATS-Bench directory ``data_dir``).

    Raises:
        nas_tf.benchmarks.BenchmarkNotInstalled: the package or the directory is missing.
    """
    from nas_tf.benchmarks import nb201

    if name == "nats":
        return nb201("nats", benchmark_dir=data_dir)
    return nb201(name)


@dataclasses.dataclass(frozen=True)
class TabularChildConfig:
    """How a child's reward is read from the table.

    Args:
        metric: the recorded accuracy (percent) the reward is made of
            (reward = metric / 100).
    """

    metric: str = "test_accuracy"


class TabularTrainer:
    """The child function of a tabular search: ``request -> ChildResult`` by table look-up.

    Args:
        table: a :class:`~nas_tf.benchmarks.TabularBenchmark`.
        config: which metric is the reward.
        strategy: unused (a look-up needs no device); accepted like every task's trainer.

    Example:

    >>> trainer = TabularTrainer(nas_tf.benchmarks.nb201())  # doctest: +SKIP
    >>> trainer(ChildRequest(0, 0, nas_tf.load_arch("nb201_resnet"), 0)).reward  # doctest: +SKIP
    """

    def __init__(self, table, config: TabularChildConfig = TabularChildConfig(), strategy: Any = None):
        self.table = table
        self.config = config

    def settings(self) -> dict[str, Any]:
        # Where the file lies is left out: a moved environment may resume the search.
        table = {k: v for k, v in self.table.describe().items() if k != "source"}
        return {"table": table, **dataclasses.asdict(self.config)}

    def __call__(self, request: ChildRequest) -> ChildResult:
        from nas_tf.benchmarks import reward_for

        start = time.time()
        reward, metrics = reward_for(self.table, request.arch, self.config.metric)
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        metrics["val_accuracy"] = reward  # what the history's column shows
        return ChildResult(index=request.index, reward=reward, metrics=metrics, wall_time=time.time() - start)
