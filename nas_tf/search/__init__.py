"""Search loops, the evaluator interface and the evaluators.

This package holds no Keras model and no dataset: what a child is and how it
is trained comes from :mod:`nas_tf.tasks` (child trainers, supernet tasks)
through the interfaces here (:class:`Evaluator`, :class:`SharedWeightsTask`).
"""

from nas_tf.search.evaluator import (
    ChildBuildError,
    ChildDiverged,
    ChildRequest,
    ChildResult,
    ChildTooLarge,
    Evaluator,
    InProcessEvaluator,
    TrainerRecipe,
    failure_result,
)
from nas_tf.search.multi_trial import MultiTrialSearch, SearchConfig, child_seed
from nas_tf.search.one_shot import OneShotConfig, OneShotSearch, SharedWeightsTask
from nas_tf.search.run_dir import ResumeMismatchError, RunDirectory, record_diff

__all__ = [
    "ChildBuildError",
    "ChildDiverged",
    "ChildRequest",
    "ChildResult",
    "ChildTooLarge",
    "Evaluator",
    "InProcessEvaluator",
    "MultiTrialSearch",
    "OneShotConfig",
    "OneShotSearch",
    "ResumeMismatchError",
    "RunDirectory",
    "SearchConfig",
    "SharedWeightsTask",
    "TrainerRecipe",
    "child_seed",
    "failure_result",
    "record_diff",
]
