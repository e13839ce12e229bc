"""The one SGD configuration every training loop nests, and learning-rate schedules.

Children of a multi-trial search, final training runs and the shared weights
of a one-shot search all train with SGD. Their configs nest one
:class:`SGDConfig` (learning rate, momentum, Nesterov, weight decay,
schedule, gradient clipping) instead of repeating its fields.
"""

from __future__ import annotations

import dataclasses
import math

SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class SGDConfig:
    """SGD with (Nesterov) momentum, weight decay, a schedule and optional clipping.

    Args:
        learning_rate: the initial learning rate.
        momentum: momentum (0: plain SGD).
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay. Image models put it on their kernels
            (a regulariser of the builder); language models add
            ``weight_decay / 2 * sum(w ** 2)`` over all weights to the loss.
        schedule: ``"constant"``, or ``"cosine"`` (one period of cosine decay
            from ``learning_rate`` to ``min_learning_rate`` over the run).
        min_learning_rate: the final learning rate of the cosine schedule.
        clip_norm: clip the gradients to this global norm (0: no clipping).

    Example:

    >>> SGDConfig(learning_rate=0.05, schedule="cosine").make(total_steps=100).momentum
    0.9
    """

    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "constant"
    min_learning_rate: float = 0.0
    clip_norm: float = 0.0

    def __post_init__(self):
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= self.min_learning_rate <= self.learning_rate:
            raise ValueError(
                f"min_learning_rate must be in [0, learning_rate={self.learning_rate}], got {self.min_learning_rate}"
            )
        if not self.clip_norm >= 0:
            raise ValueError(f"clip_norm must be >= 0 (0: off), got {self.clip_norm}")

    def make(self, total_steps: int | None = None):
        """The Keras optimizer (``total_steps``: steps of the whole run, needed by ``"cosine"``)."""
        return make_sgd(
            self.learning_rate,
            self.momentum,
            self.nesterov,
            schedule=self.schedule,
            total_steps=total_steps,
            min_learning_rate=self.min_learning_rate,
            clip_norm=self.clip_norm or None,
        )


def make_sgd(
    learning_rate: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    schedule: str = "constant",
    total_steps: int | None = None,
    min_learning_rate: float = 0.0,
    clip_norm: float | None = None,
):
    """SGD with (Nesterov) momentum and a constant or cosine learning rate.

    Args:
        learning_rate: initial learning rate.
        momentum: momentum.
        nesterov: Nesterov momentum.
        schedule: ``"constant"`` or ``"cosine"`` (single-period cosine decay
            to ``min_learning_rate`` over ``total_steps``).
        total_steps: steps of the whole run (needed for ``"cosine"``).
        min_learning_rate: final learning rate of the cosine schedule.
        clip_norm: clip the gradients to this global norm (None: no clipping).

    Returns:
        A ``keras.optimizers.SGD``.
    """
    import keras

    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if schedule == "constant":
        lr = learning_rate
    elif schedule == "cosine":
        if not total_steps or total_steps < 1:
            raise ValueError("the cosine schedule needs total_steps >= 1")
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=min_learning_rate / learning_rate)
    else:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if clip_norm is not None and clip_norm <= 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm}")
    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov, global_clipnorm=clip_norm)


def cosine_restart_lr(epoch: int, lr_max: float, lr_min: float, t0: int, t_mul: int) -> float:
    """The per-epoch cosine learning rate with warm restarts of the ENAS code.

    lr = lr_min + (lr_max - lr_min) * (1 + cos(pi * t / T)) / 2, where ``t`` is
    the epoch within the current period of length ``T``; periods last
    ``t0, t0 * t_mul, t0 * t_mul^2, ...`` epochs (restarts at 10, 30, 70, 150,
    ... for t0 = 10, t_mul = 2).

    Example:

    >>> [round(cosine_restart_lr(e, 1.0, 0.0, 2, 2), 3) for e in range(6)]
    [1.0, 0.5, 1.0, 0.854, 0.5, 0.146]
    """
    if t0 < 1 or t_mul < 1:
        raise ValueError(f"t0 and t_mul must be >= 1, got {t0}, {t_mul}")
    start, period = 0, t0
    while epoch >= start + period:
        start += period
        period *= t_mul
    return float(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * (epoch - start) / period)))
