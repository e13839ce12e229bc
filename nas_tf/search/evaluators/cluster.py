"""Sharing each step's children among the hosts of a multi-worker search.

Under ``--strategy=multi_worker`` every host runs the same multi-trial loop
and asks for the same children (same seed, same controller). The
:class:`MultiWorkerEvaluator` on each host trains only its share -- child
``k`` of a round goes to worker ``k mod W`` -- with the host's own evaluator
(in this process, or ``--parallel_children`` worker processes on the host's
GPUs), then all-gathers every worker's results through the strategy's
collective ops, so every host sees every result and applies the same
controller update. A round is ``W x capacity`` children: at most one round of
work is lost when a host dies, and the cluster resumes from the last
checkpoint when the same command is started again on every host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from nas_tf.distribute.cluster import all_gather_json, worker_info
from nas_tf.search.evaluator import ChildRequest, ChildResult, Evaluator


class MultiWorkerEvaluator(Evaluator):
    """Trains this host's share of the children; returns everyone's results.

    Args:
        local: the evaluator of this host.
        strategy: the cluster's ``MultiWorkerMirroredStrategy``.

    Every host must call :meth:`evaluate` with the same requests (the
    collectives pair them up).
    """

    def __init__(self, local: Evaluator, strategy: tf.distribute.Strategy):
        self.local = local
        self.strategy = strategy
        self.info = worker_info(strategy)

    @property
    def capacity(self) -> int:
        return self.info.count * self.local.capacity

    def evaluate(self, requests: Sequence[ChildRequest]) -> Iterator[ChildResult]:
        requests = list(requests)
        count = self.info.count
        size = count * self.local.capacity
        for start in range(0, len(requests), size):
            share = requests[start : start + size][self.info.index :: count]
            mine = []
            for result in self.local.evaluate(share):
                result.metrics["worker"] = self.info.index
                mine.append(dataclasses.asdict(result))
            gathered = all_gather_json(self.strategy, mine)
            results = [ChildResult(**fields) for rows in gathered for fields in rows]
            yield from sorted(results, key=lambda r: r.index)

    def submit(self, request: ChildRequest) -> None:
        raise NotImplementedError("the multi-worker search updates its controller synchronously")

    def config(self) -> dict[str, Any]:
        return self.local.config()

    def execution(self) -> dict[str, Any]:
        return {"workers": self.info.count, **getattr(self.local, "execution", dict)()}

    def close(self) -> None:
        self.local.close()
