"""What every child trainer does: seed, build, check the size, train, score.

:class:`ChildTrainer` is the ``request -> ChildResult`` callable that
:class:`~nas_tf.search.InProcessEvaluator` (or any evaluator) runs. Subclasses
say how to build the child network of an arch and how to train and score it
(image classifiers: :mod:`nas_tf.search.image_child`; language models:
:mod:`nas_tf.search.lm_child`); the skeleton is shared:

1. every random generator seeded from the request (Keras' included);
2. the model built -- a ``ValueError``/``TypeError`` of the builder becomes
   :class:`~nas_tf.search.ChildBuildError`;
3. children over ``config.max_params`` parameters are refused
   (:class:`~nas_tf.search.ChildTooLarge`) before any training;
4. training failures (divergence, out of memory, ...) become reward-0 results
   that keep the parameter count.
"""

from __future__ import annotations

import abc
import dataclasses
import gc
import time
from typing import Any

import keras

from nas_tf.search.evaluator import ChildBuildError, ChildRequest, ChildResult, ChildTooLarge, failure_result
from nas_tf.spaces.arch import Arch


class ChildTrainer(abc.ABC):
    """Base of the callables that train one child and return its reward.

    Subclasses set ``self.config`` (a dataclass with a ``max_params`` field,
    0 meaning no limit) and implement :meth:`build_model` and
    :meth:`train_and_score`.
    """

    config: Any

    @abc.abstractmethod
    def build_model(self, arch: Arch) -> keras.Model:
        """The untrained child network of ``arch``."""

    @abc.abstractmethod
    def train_and_score(self, model: keras.Model, request: ChildRequest) -> tuple[float, dict[str, Any]]:
        """Trains ``model``; returns the reward and JSON-able metrics."""

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
            model = self.build_model(request.arch)
        except (ValueError, TypeError) as e:
            raise ChildBuildError(str(e)) from e
        params = int(model.count_params())
        max_params = getattr(self.config, "max_params", 0)
        if max_params and params > max_params:
            raise ChildTooLarge(f"{params} parameters > max_params={max_params}")
        try:
            reward, metrics = self.train_and_score(model, request)
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
