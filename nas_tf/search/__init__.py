"""Search loops, the evaluator interface, child training and rewards."""

from nas_tf.search.evaluator import (
    ChildBuildError,
    ChildRequest,
    ChildResult,
    ChildTooLarge,
    Evaluator,
    InProcessEvaluator,
    failure_result,
)
from nas_tf.search.child import ChildTrainer
from nas_tf.search.image_child import ImageChildConfig, ImageChildTrainer, accuracy_reward
from nas_tf.search.lm_child import LMChildConfig, LMChildTrainer, perplexity_reward
from nas_tf.search.multi_trial import MultiTrialSearch, ResumeMismatchError, SearchConfig, child_seed

__all__ = [
    "ChildBuildError",
    "ChildRequest",
    "ChildResult",
    "ChildTooLarge",
    "ChildTrainer",
    "Evaluator",
    "ImageChildConfig",
    "ImageChildTrainer",
    "InProcessEvaluator",
    "LMChildConfig",
    "LMChildTrainer",
    "MultiTrialSearch",
    "ResumeMismatchError",
    "SearchConfig",
    "accuracy_reward",
    "child_seed",
    "failure_result",
    "perplexity_reward",
]
