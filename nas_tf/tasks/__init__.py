"""Child tasks: one folder per kind of child (image classification, language modelling, a benchmark table).

Each task folder holds that task's child trainer (multi-trial searches), its
supernet task (one-shot searches), its training loop and its final training,
and registers one :class:`Task` (:mod:`nas_tf.tasks.registry`) so that the
scripts, the parallel evaluator's workers and final training find it by name,
by arch space or by dataset. The search loops (:mod:`nas_tf.search`) see only
the interfaces they define; a new kind of task is a new folder here.
"""

from nas_tf.tasks.child import ChildTrainer, TrainerSpec
from nas_tf.tasks.image import (
    FinalImageConfig,
    ImageChildConfig,
    ImageChildTrainer,
    ImageSupernetTask,
    SharedTrainingConfig,
    accuracy_reward,
    train_final_image,
)
from nas_tf.tasks.registry import Task, get_task, register_task, task_for_dataset, task_for_space, task_names
from nas_tf.tasks.tabular import TabularChildConfig, TabularTrainer
from nas_tf.tasks.text import (
    FinalLMConfig,
    LMChildConfig,
    LMChildTrainer,
    LMSharedTrainingConfig,
    LMSupernetTask,
    perplexity_reward,
    train_final_lm,
)

__all__ = [
    "ChildTrainer",
    "FinalImageConfig",
    "FinalLMConfig",
    "ImageChildConfig",
    "ImageChildTrainer",
    "ImageSupernetTask",
    "LMChildConfig",
    "LMChildTrainer",
    "LMSharedTrainingConfig",
    "LMSupernetTask",
    "SharedTrainingConfig",
    "TabularChildConfig",
    "TabularTrainer",
    "Task",
    "TrainerSpec",
    "accuracy_reward",
    "get_task",
    "perplexity_reward",
    "register_task",
    "task_for_dataset",
    "task_for_space",
    "task_names",
    "train_final_image",
    "train_final_lm",
]
