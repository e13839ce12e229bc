"""What every child trainer does: seed, build, check the size, train, score.

:class:`ChildTrainer` is the ``request -> ChildResult`` callable that
:class:`~nas_tf.search.InProcessEvaluator` (or any evaluator) runs. Subclasses
say how to build the child network of an arch and how to train and score it
(image classifiers: :mod:`nas_tf.tasks.image.child`; language models:
:mod:`nas_tf.tasks.text.child`); the skeleton is shared:

1. every random generator seeded from the request (Keras' included);
2. the model built -- a ``ValueError``/``TypeError`` of the builder becomes
   :class:`~nas_tf.search.ChildBuildError`;
3. children over ``config.max_params`` parameters are refused
   (:class:`~nas_tf.search.ChildTooLarge`) before any training;
4. training failures (divergence, out of memory, ...) become reward-0 results
   that keep the parameter count.

With a ``strategy`` of several replicas (a group of GPUs, or logical CPU
devices) the child is built and trained in its scope, data-parallel.

:class:`TrainerSpec` is the picklable recipe of a trainer: the worker
processes of :class:`~nas_tf.search.evaluators.ParallelEvaluator` load the
data and build their own trainer from it, through the task registry
(:mod:`nas_tf.tasks.registry`).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import gc
import time
from typing import Any

import keras

from nas_tf.search.evaluator import ChildBuildError, ChildRequest, ChildResult, ChildTooLarge, failure_result
from nas_tf.spaces.arch import Arch
from nas_tf.tasks.registry import get_task


class ChildTrainer(abc.ABC):
    """Base of the callables that train one child and return its reward.

    Subclasses set ``self.config`` (a dataclass with a ``max_params`` field,
    0 meaning no limit) and implement :meth:`build_model` and
    :meth:`train_and_score`.
    """

    config: Any
    strategy: Any = None  # a tf.distribute.Strategy to train children under (None: the default device)

    def _scope(self):
        from nas_tf.distribute import num_replicas

        return self.strategy.scope() if num_replicas(self.strategy) > 1 else contextlib.nullcontext()

    @abc.abstractmethod
    def build_model(self, arch: Arch) -> keras.Model:
        """The untrained child network of ``arch``."""

    @abc.abstractmethod
    def train_and_score(self, model: keras.Model, request: ChildRequest) -> tuple[float, dict[str, Any]]:
        """Trains ``model``; returns the reward and JSON-able metrics."""

    def adjust_reward(self, request: ChildRequest, reward: float, metrics: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """The final reward from the trained child's (e.g. its serving costs); called outside the strategy's scope."""
        return reward, metrics

    def settings(self) -> dict[str, Any]:
        """JSON-able description (written to the run directory)."""
        return dataclasses.asdict(self.config)

    def __call__(self, request: ChildRequest) -> ChildResult:
        start = time.time()
        # No keras.backend.clear_session() here: it resets TensorFlow's default
        # graph, which makes every tf.function traced so far (the controller's
        # sampling and update steps) trace again. set_random_seed alone makes the
        # child reproducible (it also resets Keras' global seed generator).
        keras.utils.set_random_seed(request.seed)
        try:
            with self._scope():
                model = self.build_model(request.arch)
        except (ValueError, TypeError) as e:
            raise ChildBuildError(str(e)) from e
        params = int(model.count_params())
        max_params = getattr(self.config, "max_params", 0)
        if max_params and params > max_params:
            raise ChildTooLarge(f"{params} parameters > max_params={max_params}")
        try:
            with self._scope():
                reward, metrics = self.train_and_score(model, request)
            reward, metrics = self.adjust_reward(request, reward, metrics)
        except Exception as e:
            return failure_result(request.index, e, time.time() - start, params=params)
        finally:
            del model
            gc.collect()
        return ChildResult(
            index=request.index,
            reward=float(reward),
            metrics={**metrics, "params": params},
            wall_time=time.time() - start,
        )


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
    """A picklable recipe of a child trainer: which task, which data, which settings.

    Args:
        task: the registered task that trains the children (``"image"``,
            ``"text"``, ...: :func:`nas_tf.tasks.task_names`).
        dataset: dataset name (``digits``, ``cifar10``, ``pydoc``, ``ptb``).
        config: the task's child config (``ImageChildConfig`` / ``LMChildConfig``).
        data_dir: data directory of the dataset.
        download: let tensorflow-datasets download a missing dataset.
        train_subset: keep only the first this-many training examples
            (images) or tokens (text); 0 keeps all.

    Example:

    >>> from nas_tf.tasks import ImageChildConfig
    >>> spec = TrainerSpec("image", "digits", ImageChildConfig(epochs=1), train_subset=256)
    >>> trainer = spec.build()  # doctest: +SKIP
    """

    task: str
    dataset: str
    config: Any
    data_dir: str | None = None
    download: bool = False
    train_subset: int = 0

    def __post_init__(self):
        get_task(self.task)  # an unknown task fails here, naming the known ones
        if self.train_subset < 0:
            raise ValueError(f"train_subset must be >= 0, got {self.train_subset}")

    def build(self, strategy: Any = None) -> ChildTrainer:
        """Loads the data and returns the trainer (trained under ``strategy`` if given)."""
        task = get_task(self.task)
        data = task.load_data(self.dataset, data_dir=self.data_dir, download=self.download)
        if self.train_subset:
            data = data.subset("train", self.train_subset)
        return task.child_trainer(data, self.config, strategy=strategy)
