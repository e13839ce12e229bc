"""Training one language-model child (a recurrent cell) and turning it into a reward.

The NAS recurrent search (Zoph & Le 2017, 4.2): every sampled cell is trained
as a 2-layer word-level language model and rewarded ``c / (validation
perplexity)^2`` with ``c = 80``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from nas_tf.data.text import TextCorpus
from nas_tf.models.language_model import build_language_model
from nas_tf.search.evaluator import ChildRequest
from nas_tf.spaces.arch import Arch
from nas_tf.tasks.child import ChildTrainer
from nas_tf.tasks.text.train import train_language_model
from nas_tf.training.optimizer import SGDConfig


def perplexity_reward(perplexities: Sequence[float], c: float = 80.0, window: int = 1) -> float:
    """The NAS recurrent-search reward ``c / ppl ** 2`` (Zoph & Le 2017).

    Args:
        perplexities: validation perplexity after every epoch.
        c: the constant (80 in the paper).
        window: use the best (lowest) perplexity of the last ``window`` epochs.

    Example:

    >>> perplexity_reward([120.0, 80.0])
    0.0125
    """
    if not len(perplexities):
        raise ValueError("no validation perplexity to compute a reward from")
    if window < 1 or c <= 0:
        raise ValueError(f"window must be >= 1 and c > 0, got {window}, {c}")
    best = float(np.min(perplexities[-window:]))
    return float(c / best**2)


def lm_sgd(**overrides: Any) -> SGDConfig:
    """The SGD of language models (Zaremba et al. 2014): lr 20, no momentum, clipping at 0.25."""
    return SGDConfig(
        **{"learning_rate": 20.0, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "clip_norm": 0.25, **overrides}
    )


@dataclasses.dataclass(frozen=True)
class LMChildConfig:
    """How a recurrent-cell child is trained during the search.

    A 2-layer language model of the sampled cell, trained with plain SGD and
    gradient clipping (Zaremba et al. 2014) for a few epochs; small by default
    so a search runs on a CPU.

    Args:
        epochs: training epochs per child.
        batch_size: rows read in parallel.
        bptt: steps of truncated back-propagation through time.
        optimizer: SGD settings (learning rate 20, no momentum, gradient
            clipping at global norm 0.25, L2 penalty on all weights).
        reward_c: the constant c of the reward ``c / ppl^2``.
        reward_window: the reward uses the best perplexity of the last
            this-many epochs.
        max_params: children with more parameters get reward 0 untrained
            (0: no limit).
        steps_per_epoch: cap on the windows of an epoch (0: the whole split).
        eval_batch_size: rows read in parallel during validation.
        model_options: :class:`~nas_tf.models.LanguageModel` arguments
            (``units``, ``num_layers``, ``tie_weights``, dropouts, ...).
    """

    epochs: int = 2
    batch_size: int = 32
    bptt: int = 35
    optimizer: SGDConfig = dataclasses.field(default_factory=lm_sgd)
    reward_c: float = 80.0
    reward_window: int = 1
    max_params: int = 0
    steps_per_epoch: int = 0
    eval_batch_size: int = 10
    model_options: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"units": 64, "num_layers": 2, "tie_weights": True, "output_dropout": 0.2}
    )

    def __post_init__(self):
        for name in ("epochs", "batch_size", "bptt", "reward_window", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.reward_c > 0:
            raise ValueError(f"reward_c must be > 0, got {self.reward_c}")
        for name in ("max_params", "steps_per_epoch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class LMChildTrainer(ChildTrainer):
    """Trains the language model of one sampled cell and scores it ``c / ppl^2``.

    Under a ``strategy`` of several replicas the language model is trained
    data-parallel over its rows, ``config.batch_size`` rows per replica.

    Args:
        corpus: the text (train and validation splits).
        config: the child training settings.
        strategy: a ``tf.distribute.Strategy`` (None: the default device).

    Example:

    >>> trainer = LMChildTrainer(load_pydoc_corpus())  # doctest: +SKIP
    >>> evaluator = InProcessEvaluator(trainer, trainer.settings())  # doctest: +SKIP
    """

    def __init__(self, corpus: TextCorpus, config: LMChildConfig = LMChildConfig(), strategy=None):
        self.corpus = corpus
        self.config = config
        self.strategy = strategy

    def settings(self) -> dict[str, Any]:
        return {"dataset": self.corpus.name, "vocab_size": self.corpus.vocab_size, **dataclasses.asdict(self.config)}

    def build_model(self, arch: Arch) -> keras.Model:
        return build_language_model(self.corpus.vocab_size, arch, **self.config.model_options)

    def train_and_score(self, model: keras.Model, request: ChildRequest) -> tuple[float, dict[str, Any]]:
        c = self.config
        windows = self.corpus.num_windows("train", c.batch_size, c.bptt)
        steps = min(windows, c.steps_per_epoch) if c.steps_per_epoch else windows
        optimizer = c.optimizer.make(total_steps=max(1, steps * c.epochs))
        result = train_language_model(
            model,
            self.corpus,
            epochs=c.epochs,
            batch_size=c.batch_size,
            bptt=c.bptt,
            optimizer=optimizer,
            weight_decay=c.optimizer.weight_decay,
            eval_batch_size=c.eval_batch_size,
            steps_per_epoch=c.steps_per_epoch or None,
            strategy=self.strategy,
        )
        reward = perplexity_reward(result.val_perplexity, c.reward_c, c.reward_window)
        return reward, {
            "val_perplexity": round(min(result.val_perplexity[-c.reward_window :]), 4),
            "val_perplexities": [round(p, 4) for p in result.val_perplexity],
            "train_perplexity": round(result.train_perplexity[-1], 4),
        }
