"""Training one image-classification child and turning it into a reward."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras

from nas_tf.data.images import ImageData
from nas_tf.export.cost import CostAwareReward, CostMeter
from nas_tf.export.latency import LatencySettings
from nas_tf.export.objective import CostObjective
from nas_tf.layers.drop_path import attach_training_progress
from nas_tf.models.registry import build_image_model
from nas_tf.search.evaluator import ChildRequest
from nas_tf.spaces.arch import Arch
from nas_tf.tasks.child import ChildTrainer
from nas_tf.tasks.image.train import train_classifier
from nas_tf.training.optimizer import SGDConfig


def accuracy_reward(accuracies: Sequence[float], window: int = 5, exponent: float = 3.0) -> float:
    """The NAS reward: the best validation accuracy of the last ``window`` epochs, to the ``exponent``.

    Args:
        accuracies: validation accuracy after every epoch.
        window: how many final epochs to consider (all if fewer were run).
        exponent: power applied to the accuracy (3 in Zoph & Le 2017).

    Example:

    >>> round(accuracy_reward([0.5, 0.9, 0.8], window=2, exponent=3), 3)
    0.729
    """
    if not accuracies:
        raise ValueError("no validation accuracy to compute a reward from")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return float(max(accuracies[-window:]) ** exponent)


@dataclasses.dataclass(frozen=True)
class ImageChildConfig:
    """How a child image classifier is trained during the search.

    The defaults are the paper's child training (Nesterov momentum 0.9, lr 0.1,
    weight decay 1e-4) with few epochs.

    Args:
        epochs: training epochs per child.
        batch_size: batch size.
        optimizer: SGD settings (learning rate, momentum, Nesterov, weight
            decay of the conv and dense kernels, schedule).
        reward_window: the reward looks at the last this-many epochs.
        reward_exponent: the reward is the accuracy to this power.
        max_params: children with more parameters get reward 0 without being
            trained (0: no limit).
        steps_per_epoch: cap on steps per epoch (0: full passes).
        builder_options: extra keyword arguments of the model builder.
        costs: targets of serving costs (latency, FLOPs, parameters) the
            reward trades accuracy against (MnasNet): the reward becomes
            ``(accuracy * prod (measured / target) ** w) ** reward_exponent``;
            no targets: the accuracy alone.
        latency: how latency is measured when a target needs it (the child
            as exported: TFLite on this CPU by default, batch 1).
    """

    epochs: int = 5
    batch_size: int = 32
    optimizer: SGDConfig = dataclasses.field(default_factory=SGDConfig)
    reward_window: int = 5
    reward_exponent: float = 3.0
    max_params: int = 0
    steps_per_epoch: int = 0
    builder_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    costs: CostObjective = dataclasses.field(default_factory=CostObjective)
    latency: LatencySettings = dataclasses.field(default_factory=LatencySettings)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "reward_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_params", "steps_per_epoch", "reward_exponent"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class ImageChildTrainer(ChildTrainer):
    """Builds, trains and scores one child on an image dataset.

    Called with a :class:`ChildRequest`, it seeds everything from the request
    seed, builds the child with the arch's registered builder, trains it on the
    training split, evaluates the validation split every epoch and returns the
    reward :func:`accuracy_reward`. Failures raise; the evaluator turns them
    into reward-0 results (the shared skeleton: :class:`~nas_tf.tasks.child.ChildTrainer`).

    Under a ``strategy`` of several replicas the child is trained
    data-parallel, ``config.batch_size`` examples per replica.

    Args:
        data: the dataset.
        config: the child training settings.
        strategy: a ``tf.distribute.Strategy`` (None: the default device).
    """

    def __init__(self, data: ImageData, config: ImageChildConfig = ImageChildConfig(), strategy=None):
        self.data = data
        self.config = config
        self.strategy = strategy
        self.cost_reward = None
        if config.costs.active:
            meter = CostMeter(
                raw=data.raw_pixels, latency=config.latency,
                context={"dataset": data.name, "input_shape": list(data.input_shape), "builder_options": config.builder_options},
            )
            self.cost_reward = CostAwareReward(config.costs, meter)

    def settings(self) -> dict[str, Any]:
        return {"dataset": self.data.name, **dataclasses.asdict(self.config)}

    def adjust_reward(self, request: ChildRequest, reward: float, metrics: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """With cost targets: the MnasNet reward from the accuracy and the child's measured serving costs."""
        if self.cost_reward is None:
            return reward, metrics
        reward, costs = self.cost_reward(
            metrics["val_accuracy"], request.arch, lambda: self.build_model(request.arch), self.config.reward_exponent
        )
        return reward, {**metrics, **costs}

    def build_model(self, arch: Arch) -> keras.Model:
        c = self.config
        return build_image_model(
            arch, self.data.input_shape, self.data.num_classes, weight_decay=c.optimizer.weight_decay,
            **c.builder_options,
        )

    def train_and_score(self, model: keras.Model, request: ChildRequest) -> tuple[float, dict[str, Any]]:
        c = self.config
        steps = c.steps_per_epoch or -(-self.data.size("train") // c.batch_size)
        optimizer = c.optimizer.make(total_steps=steps * c.epochs)
        result = train_classifier(
            model,
            self.data,
            epochs=c.epochs,
            batch_size=c.batch_size,
            optimizer=optimizer,
            seed=request.seed,
            steps_per_epoch=c.steps_per_epoch or None,
            progress=attach_training_progress(model),
            strategy=self.strategy,
        )
        reward = accuracy_reward(result.val_accuracy, c.reward_window, c.reward_exponent)
        return reward, {
            "val_accuracy": max(result.val_accuracy[-c.reward_window :]),
            "val_accuracies": [round(a, 6) for a in result.val_accuracy],
            "train_loss": round(result.train_loss[-1], 6),
        }
