"""The evaluator interface: the only way the search loops get rewards.

A multi-trial loop hands a batch of :class:`ChildRequest` s to an
:class:`Evaluator` and receives one :class:`ChildResult` per request, in any
order, as each child finishes. :class:`InProcessEvaluator` trains children one
after another in this process; a parallel evaluator (several devices, worker
processes) plugs in behind the same interface without touching the loop.

A child that fails -- cannot be built, is larger than allowed, runs out of
memory, diverges -- is not an error of the search: it gets reward 0 and its
``status`` and ``reason`` say why (:func:`failure_result`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from nas_tf.spaces.arch import Arch

# Statuses a child result can have.
OK = "ok"
BUILD_ERROR = "build_error"
TOO_LARGE = "too_large"
OUT_OF_MEMORY = "out_of_memory"
DIVERGED = "diverged"
ERROR = "error"
WORKER_CRASHED = "worker_crashed"  # the worker process died while training the child
TIMEOUT = "timeout"  # no result within the child timeout


class ChildTooLarge(RuntimeError):
    """The child has more parameters than the search allows."""


class ChildBuildError(RuntimeError):
    """The child network could not be built from its arch."""


class ChildDiverged(RuntimeError):
    """Training produced a non-finite loss."""


@dataclasses.dataclass(frozen=True)
class ChildRequest:
    """One child to evaluate.

    Args:
        index: the child's index in the whole search (0-based); it, not the
            worker that trains the child, determines the child's seed.
        step: the controller step that sampled it.
        arch: the architecture.
        seed: seed of the child's initialisation, shuffling and augmentation.
    """

    index: int
    step: int
    arch: Arch
    seed: int


@dataclasses.dataclass
class ChildResult:
    """The outcome of one child.

    Args:
        index: the request's index.
        reward: the reward (0 for failed children).
        status: ``"ok"`` or the kind of failure.
        reason: why it failed (None when ok).
        metrics: JSON-able metrics (validation accuracy per epoch, parameter
            count, ...), written to the history.
        wall_time: seconds spent on the child.
    """

    index: int
    reward: float
    status: str = OK
    reason: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    wall_time: float = 0.0


def failure_result(index: int, exc: BaseException, wall_time: float = 0.0, **metrics: Any) -> ChildResult:
    """Reward-0 result of a child that raised ``exc``, with its status and reason."""
    status = ERROR
    if isinstance(exc, ChildBuildError):
        status = BUILD_ERROR
    elif isinstance(exc, ChildTooLarge):
        status = TOO_LARGE
    elif isinstance(exc, ChildDiverged):
        status = DIVERGED
    elif isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        status = OUT_OF_MEMORY
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {message}"[:500]
    return ChildResult(index=index, reward=0.0, status=status, reason=reason, metrics=metrics, wall_time=wall_time)


class Evaluator(abc.ABC):
    """Trains children and reports their rewards.

    Two ways in: :meth:`evaluate` takes a whole batch (the synchronous loop),
    :meth:`submit` and :meth:`next_result` keep up to :attr:`capacity`
    children in flight and hand back each as it finishes (the asynchronous
    controller). The defaults of the second pair train one submitted child at
    a time through :meth:`evaluate`.
    """

    @abc.abstractmethod
    def evaluate(self, requests: Sequence[ChildRequest]) -> Iterator[ChildResult]:
        """Yields one result per request, in any order, as children finish."""

    @property
    def capacity(self) -> int:
        """Children trained at the same time."""
        return 1

    def _submitted(self) -> list:
        if not hasattr(self, "_queue"):
            self._queue: list[ChildRequest] = []
        return self._queue

    def submit(self, request: ChildRequest) -> None:
        """Queues ``request``; its result comes from :meth:`next_result`."""
        self._submitted().append(request)

    def in_flight(self) -> int:
        """Submitted children whose results were not handed back yet."""
        return len(self._submitted())

    def next_result(self) -> ChildResult:
        """Blocks until one submitted child finishes; returns its result."""
        queue = self._submitted()
        if not queue:
            raise RuntimeError("next_result: no child was submitted")
        (result,) = list(self.evaluate([queue.pop(0)]))
        return result

    def config(self) -> dict[str, Any]:
        """JSON-able settings (written to the run directory)."""
        return {}

    def close(self) -> None:  # noqa: B027  (optional: most evaluators hold nothing)
        """Releases workers or devices."""


ChildFunction = Callable[[ChildRequest], ChildResult]


class TrainerRecipe(Protocol):
    """A picklable recipe of a child function (``nas_tf.tasks.TrainerSpec`` is one).

    Evaluators that train children in other processes send the recipe there;
    each process builds its own child function from it (loading the data).
    """

    def build(self, strategy: Any = None) -> ChildFunction:
        """Loads what the children need and returns the child function."""


class InProcessEvaluator(Evaluator):
    """Evaluates children one after another in this process.

    Args:
        train_child: ``request -> ChildResult``; exceptions it raises become
            reward-0 results (:func:`failure_result`), so one bad child never
            stops the search. ``KeyboardInterrupt`` still stops it.
        settings: JSON-able description of ``train_child`` for the run record.
    """

    def __init__(self, train_child: ChildFunction, settings: dict[str, Any] | None = None):
        self.train_child = train_child
        self.settings = dict(settings or {})

    def evaluate(self, requests: Sequence[ChildRequest]) -> Iterator[ChildResult]:
        for request in requests:
            start = time.time()
            try:
                result = self.train_child(request)
            except Exception as exc:  # noqa: BLE001 - every child failure is penalised, never fatal
                result = failure_result(request.index, exc, time.time() - start)
            yield result

    def config(self) -> dict[str, Any]:
        return {"evaluator": "in_process", **self.settings}
