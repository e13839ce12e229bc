"""Rewards that trade accuracy against serving cost (MnasNet; Vertex AI NAS).

MnasNet (Tan et al. 2019, eq. 2) searches with the reward

    ACC(m) * [LAT(m) / T] ** w,   w = alpha if LAT(m) <= T else beta

for a target latency ``T`` and negative weights. Two settings:

* **soft** (``alpha = beta = w``, MnasNet's default ``w = -0.07``): faster
  than the target earns a bonus, slower a penalty; ``w = -0.07`` makes a
  model twice as slow but 5% more accurate as good as the faster one
  (``1.05 * 2 ** -0.07 ~= 1``);
* **hard** (``alpha = 0, beta = w``; MnasNet used ``w = -1``): no bonus
  under the target, a penalty over it. Vertex AI NAS applies the same two
  variants (``compute_reward(..., use_hard_limit=True)`` caps the factor at
  1) to latency or FLOPs, and multiplies the factors of several targets.

:class:`CostObjective` holds one :class:`CostTarget` per constrained metric
(``latency_ms``, ``flops``, ``params``: :mod:`nas_tf.export.cost`) and turns
an accuracy and the measured costs into the reward. With a reward exponent
``e`` (the NAS reward is the accuracy cubed) the reward is
``(accuracy * factor) ** e``: a monotonic transform of the MnasNet reward,
so the trade-off a weight expresses does not depend on ``e``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["CONSTRAINTS", "CostObjective", "CostTarget", "mnas_factor"]

CONSTRAINTS = ("soft", "hard")
MNAS_WEIGHT = -0.07

# The command-line flag of each metric's target and weight (for error messages).
_FLAGS = {
    "latency_ms": ("target_latency_ms", "latency_weight"),
    "flops": ("target_flops", "flops_weight"),
    "params": ("target_params", "params_weight"),
}


def mnas_factor(measured: float, target: float, weight: float = MNAS_WEIGHT, constraint: str = "soft") -> float:
    """The MnasNet factor ``(measured / target) ** w`` (``w = 0`` under the target when hard).

    Args:
        measured: the child's latency, FLOPs or parameters (> 0).
        target: the target (> 0).
        weight: ``w`` (<= 0).
        constraint: ``"soft"`` (bonus under the target, penalty over it) or
            ``"hard"`` (penalty over the target only).

    Example:

    >>> round(mnas_factor(2.0, 1.0, -0.07), 4), round(mnas_factor(0.5, 1.0, -0.07), 4)
    (0.9527, 1.0497)
    >>> mnas_factor(0.5, 1.0, -1.0, "hard"), mnas_factor(2.0, 1.0, -1.0, "hard")
    (1.0, 0.5)
    """
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    if not (measured > 0 and math.isfinite(measured)):
        raise ValueError(f"the measured cost must be a positive number, got {measured!r}")
    if not target > 0:
        raise ValueError(f"the target must be > 0, got {target!r}")
    if constraint == "hard" and measured <= target:
        return 1.0
    return float((measured / target) ** weight)


@dataclasses.dataclass(frozen=True)
class CostTarget:
    """One constrained metric of a :class:`CostObjective`.

    Args:
        metric: ``"latency_ms"``, ``"flops"`` or ``"params"``.
        target: the target value (ms, FLOPs, parameters), > 0.
        weight: the exponent ``w`` of ``(measured / target) ** w``, < 0
            (MnasNet: -0.07 soft, -1 hard).
    """

    metric: str
    target: float
    weight: float = MNAS_WEIGHT

    def __post_init__(self):
        if self.metric not in _FLAGS:
            raise ValueError(f"unknown cost metric {self.metric!r}; known: {', '.join(_FLAGS)}")
        target_flag, weight_flag = _FLAGS[self.metric]
        if isinstance(self.target, bool) or not isinstance(self.target, (int, float)) or not self.target > 0:
            raise ValueError(f"--{target_flag}={self.target}: the target must be > 0")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not self.weight < 0:
            raise ValueError(
                f"--{weight_flag}={self.weight}: the weight must be negative (MnasNet: -0.07 soft, -1 hard); "
                "a positive weight would reward slower or larger children"
            )


@dataclasses.dataclass(frozen=True)
class CostObjective:
    """Accuracy traded against measured serving costs: the MnasNet reward.

    Args:
        targets: one :class:`CostTarget` per constrained metric (each metric
            at most once); no targets: the reward is the accuracy alone.
        constraint: ``"soft"`` or ``"hard"`` (:func:`mnas_factor`).

    Example:

    >>> objective = CostObjective.from_settings(target_latency_ms=0.05, latency_weight=-0.07)
    >>> objective.metrics
    ('latency_ms',)
    >>> round(objective.reward(0.9, {"latency_ms": 0.1}), 4)   # twice the target: 0.9 * 2 ** -0.07
    0.8574
    """

    targets: tuple[CostTarget, ...] = ()
    constraint: str = "soft"

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"--cost_constraint={self.constraint}: must be one of {', '.join(CONSTRAINTS)}")
        seen = [t.metric for t in self.targets]
        if len(set(seen)) != len(seen):
            raise ValueError(f"each cost metric may have one target, got {seen}")

    @classmethod
    def from_settings(
        cls,
        target_latency_ms: float = 0.0,
        latency_weight: float = MNAS_WEIGHT,
        target_flops: float = 0.0,
        flops_weight: float = MNAS_WEIGHT,
        target_params: float = 0.0,
        params_weight: float = MNAS_WEIGHT,
        constraint: str = "soft",
    ) -> CostObjective:
        """The objective of the ``--target_*`` / ``--*_weight`` / ``--cost_constraint`` flags (a target of 0: off).

        Raises:
            ValueError: a negative target, a weight >= 0 for a set target, an
                unknown constraint; the message names the flag and the value.
        """
        targets = []
        for metric, target, weight in (
            ("latency_ms", target_latency_ms, latency_weight),
            ("flops", target_flops, flops_weight),
            ("params", target_params, params_weight),
        ):
            if target is None or target == 0:
                continue
            if target < 0:
                raise ValueError(f"--{_FLAGS[metric][0]}={target}: the target must be > 0 (0 turns it off)")
            targets.append(CostTarget(metric, float(target), float(weight)))
        return cls(tuple(targets), constraint)

    @property
    def active(self) -> bool:
        """Whether any cost is constrained."""
        return bool(self.targets)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics to measure for the reward."""
        return tuple(t.metric for t in self.targets)

    def factor(self, costs: Mapping[str, float]) -> float:
        """The product of the MnasNet factors of every target (1 without targets)."""
        out = 1.0
        for t in self.targets:
            if costs.get(t.metric) is None:
                raise ValueError(f"no measured {t.metric} to weigh against its target {t.target:g}")
            out *= mnas_factor(float(costs[t.metric]), t.target, t.weight, self.constraint)
        return out

    def reward(self, accuracy: float, costs: Mapping[str, float], exponent: float = 1.0) -> float:
        """``(accuracy * factor(costs)) ** exponent``: the MnasNet reward (``exponent = 1``)."""
        return float((accuracy * self.factor(costs)) ** exponent)

    def config(self) -> dict[str, Any]:
        """JSON-able settings (for a search's record)."""
        return {"constraint": self.constraint, "targets": [dataclasses.asdict(t) for t in self.targets]}
