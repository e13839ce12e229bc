"""Search loops, the evaluator interface and the evaluators, callbacks, and reading a run back.

This package holds no Keras model and no dataset: what a child is and how it
is trained comes from :mod:`nas_tf.tasks` (child trainers, supernet tasks)
through the interfaces here (:class:`Evaluator`, :class:`SharedWeightsTask`).
Names are imported on first use, so ``from nas_tf.search import open_run``
(reading a run directory) imports no TensorFlow.
"""

import importlib

_NAMES = {
    "ChildBuildError": "nas_tf.search.evaluator",
    "ChildDiverged": "nas_tf.search.evaluator",
    "ChildRequest": "nas_tf.search.evaluator",
    "ChildResult": "nas_tf.search.evaluator",
    "ChildTooLarge": "nas_tf.search.evaluator",
    "Evaluator": "nas_tf.search.evaluator",
    "InProcessEvaluator": "nas_tf.search.evaluator",
    "TrainerRecipe": "nas_tf.search.evaluator",
    "failure_result": "nas_tf.search.evaluator",
    "MultiTrialSearch": "nas_tf.search.multi_trial",
    "SearchConfig": "nas_tf.search.multi_trial",
    "child_seed": "nas_tf.search.multi_trial",
    "OneShotConfig": "nas_tf.search.one_shot",
    "OneShotSearch": "nas_tf.search.one_shot",
    "SharedWeightsTask": "nas_tf.search.one_shot",
    "ResumeMismatchError": "nas_tf.search.run_dir",
    "RunDirectory": "nas_tf.search.run_dir",
    "record_diff": "nas_tf.search.run_dir",
    "SearchCallback": "nas_tf.search.callbacks",
    "CallbackList": "nas_tf.search.callbacks",
    "open_run": "nas_tf.search.results",
    "SearchRun": "nas_tf.search.results",
    "RunDirectoryError": "nas_tf.search.results",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nas_tf.search' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
