"""The language-modelling task: child trainer, supernet task, training loop and final training.

Children are recurrent cells (``nas_rnn``, ``enas_rnn`` archs) inside a
word-level language model (:func:`nas_tf.models.build_language_model`),
trained with truncated BPTT (:func:`~nas_tf.tasks.text.train.train_language_model`)
and rewarded ``c / (validation perplexity)^2``.
"""

from nas_tf.data.text import TEXT_DATASETS, load_text_data
from nas_tf.models.language_model import recurrent_spaces
from nas_tf.tasks.registry import Task, register_task
from nas_tf.tasks.text.child import LMChildConfig, LMChildTrainer, lm_sgd, perplexity_reward
from nas_tf.tasks.text.final import FinalLMConfig, train_final_lm
from nas_tf.tasks.text.supernet import LMSharedTrainingConfig, LMSupernetTask
from nas_tf.tasks.text.train import LMTrainResult, evaluate_perplexity, train_language_model


def _load(name: str, data_dir: str | None = None, download: bool = False):
    """The corpus ``name`` (text corpora are files or embedded: nothing to download)."""
    return load_text_data(name, data_dir=data_dir)


TASK = register_task(
    Task(
        name="text",
        datasets=TEXT_DATASETS,
        load_data=_load,
        spaces=recurrent_spaces,
        child_trainer=LMChildTrainer,
        child_config=LMChildConfig,
        train_final=train_final_lm,
        final_config=FinalLMConfig,
        metrics=("test_perplexity", "val_perplexity"),
    )
)

__all__ = [
    "FinalLMConfig",
    "LMChildConfig",
    "LMChildTrainer",
    "LMSharedTrainingConfig",
    "LMSupernetTask",
    "LMTrainResult",
    "TASK",
    "evaluate_perplexity",
    "lm_sgd",
    "perplexity_reward",
    "train_final_lm",
    "train_language_model",
]
