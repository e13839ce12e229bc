"""The one-shot (ENAS) search loop: shared weights and controller in turn.

Every epoch has two phases (Pham et al. 2018, section 2.2):

1. **shared weights**: one pass over the training split; for every minibatch
   the controller samples a new architecture and the shared weights take one
   SGD step on it;
2. **controller**: ``controller_steps`` updates, each on
   ``controller_aggregate`` sampled architectures whose rewards are measured
   on validation minibatches with the shared weights (accuracy for images,
   ``c / perplexity`` for language models).

After the last epoch the loop *derives* the result: it samples
``derive_samples`` architectures, scores each on the same validation batches
and writes the best to ``best_arch.json``.

The shared-weights side is a :class:`SharedWeightsTask` (an image supernet,
a recurrent language-model supernet); the controller side is any
:class:`~nas_tf.controller.base.SearchStrategy`. Architectures reach the task
as token vectors, which the supernets take as an int tensor, so each train or
reward step is traced once per search, never once per architecture
(``trace_counts`` in the run summary).

Run directory (``model_dir``): ``history.jsonl`` (one line per controller
sample: epoch, step, arch, reward), ``epochs.jsonl`` (per-epoch metrics),
``derived.jsonl`` and ``best_arch.json`` / ``best.json``, ``checkpoints/``
(shared weights, their optimizer, the strategy's whole state, epoch and phase
counters), ``search_config.json``, ``tensorboard/``. A checkpoint is written
after each phase; re-running the same command resumes from the last one.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import SearchStrategy
from nas_tf.search.multi_trial import ResumeMismatchError, _diff
from nas_tf.spaces.arch import Arch
from nas_tf.spaces.base import SearchSpace
from nas_tf.utils.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

log = logging.getLogger("nas_tf.search")


class SharedWeightsTask(abc.ABC):
    """The shared-weights side of a one-shot search."""

    @abc.abstractmethod
    def train_epoch(self, epoch: int, sample_tokens: Callable[[], np.ndarray]) -> dict[str, float]:
        """Phase 1: one pass over the training data, a new arch (``sample_tokens()``) per step."""

    @abc.abstractmethod
    def reward_batches(self, epoch: int):
        """An iterator of validation minibatches for the rewards of ``epoch`` (deterministic)."""

    @abc.abstractmethod
    def reward(self, tokens: np.ndarray, batch) -> tuple[float, dict[str, float]]:
        """The reward of one architecture on one validation minibatch, and metrics."""

    @abc.abstractmethod
    def trackables(self) -> dict[str, Any]:
        """Shared weights, their optimizer and any other state, for the checkpoint."""

    def config(self) -> dict[str, Any]:
        return {}

    def trace_counts(self) -> dict[str, int]:
        """How often each tf.function of the task was traced."""
        return {}


@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    """Settings of the one-shot loop.

    Args:
        model_dir: run directory (an existing run there is resumed).
        num_epochs: epochs (each: shared-weights pass, then controller phase).
        controller_steps: controller updates per epoch.
        controller_aggregate: architectures per controller update (k).
        derive_samples: architectures sampled at the end to pick the result.
        derive_batches: validation batches each derived arch is scored on.
        seed: seed of the validation batch order.
        keep_checkpoints: checkpoints kept.
    """

    model_dir: str
    num_epochs: int = 10
    controller_steps: int = 30
    controller_aggregate: int = 10
    derive_samples: int = 20
    derive_batches: int = 1
    seed: int = 0
    keep_checkpoints: int = 2

    def __post_init__(self):
        for name in ("num_epochs", "controller_aggregate", "derive_samples", "derive_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.controller_steps < 0:
            raise ValueError(f"controller_steps must be >= 0, got {self.controller_steps}")


_RESUMABLE_CHANGES = {("search", "num_epochs"), ("search", "keep_checkpoints"), ("search", "derive_samples"),
                      ("search", "derive_batches")}


class OneShotSearch:
    """Runs (or resumes) an ENAS-style one-shot search.

    Args:
        space: the search space.
        strategy: the controller's strategy (REINFORCE with the ENAS options).
        task: the shared-weights side.
        config: loop settings.
        arch_for_output: maps the searched arch to the arch written to
            ``best_arch.json`` (e.g. an ENAS micro arch to the NASNet-cell
            JSON the final builder reads); identity by default.
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: SearchStrategy,
        task: SharedWeightsTask,
        config: OneShotConfig,
        arch_for_output: Callable[[Arch], Arch] | None = None,
    ):
        self.space = space
        self.strategy = strategy
        self.task = task
        self.config = config
        self.arch_for_output = arch_for_output or (lambda a: a)
        self.model_dir = os.path.abspath(config.model_dir)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.phase = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")  # 0: shared, 1: controller
        self.controller_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="controller_updates")
        self.checkpoint = tf.train.Checkpoint(
            epoch=self.epoch,
            phase=self.phase,
            controller_updates=self.controller_updates,
            **{f"strategy_{k}": v for k, v in strategy.trackables().items()},
            **{f"task_{k}": v for k, v in task.trackables().items()},
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.model_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
        )
        self.record = {
            "space": {"name": space.name, **space.config()},
            "strategy": strategy.config(),
            "task": task.config(),
            "search": dataclasses.asdict(config) | {"model_dir": None},
        }
        self.history: list[dict] = []
        self._writer = None

    def _path(self, name: str) -> str:
        return os.path.join(self.model_dir, name)

    def _check_config(self) -> None:
        import json

        path = self._path("search_config.json")
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                old = json.load(f)
            changes = [d for d in _diff(old, self.record) if tuple(d[0]) not in _RESUMABLE_CHANGES]
            if changes:
                lines = [f"  {'.'.join(map(str, p))}: was {o!r}, now {n!r}" for p, o, n in changes[:10]]
                raise ResumeMismatchError(
                    f"{self.model_dir} holds a search with other settings; resume it with the same "
                    "flags, or use another --model_dir:\n" + "\n".join(lines)
                )
        atomic_write_json(path, self.record)

    def _restore(self) -> None:
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            log.info("resumed %s: epoch %d, phase %d", self.manager.latest_checkpoint, int(self.epoch), int(self.phase))
        rows = read_jsonl(self._path("history.jsonl"))
        done_updates = int(self.controller_updates)
        kept = [r for r in rows if r["update"] < done_updates]
        if len(kept) != len(rows):
            import json

            log.warning("dropping %d history rows written after the last checkpoint", len(rows) - len(kept))
            atomic_write_text(self._path("history.jsonl"), "".join(json.dumps(r) + "\n" for r in kept))
        self.history = kept

    def _writer_(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._path("tensorboard"))
        return self._writer

    def _scalars(self, values: dict[str, float], step: int) -> None:
        with self._writer_().as_default():
            for k, v in values.items():
                if v is not None:
                    tf.summary.scalar(k, float(v), step=step)
        self._writer_().flush()

    def _save(self, epoch: int, phase: int) -> None:
        self.epoch.assign(epoch)
        self.phase.assign(phase)
        self.manager.save(checkpoint_number=2 * epoch + phase)

    def run(self) -> dict[str, Any]:
        """Runs the remaining epochs, then derives the best architecture."""
        os.makedirs(self.model_dir, exist_ok=True)
        self._check_config()
        self._restore()
        cfg = self.config
        decisions = self.space.decisions
        start = time.time()
        while int(self.epoch) < cfg.num_epochs:
            epoch = int(self.epoch)
            if int(self.phase) == 0:
                t0 = time.time()
                metrics = self.task.train_epoch(epoch, lambda: self.strategy.sample(decisions, 1)[0])
                metrics["seconds"] = time.time() - t0
                append_jsonl(self._path("epochs.jsonl"), [{"epoch": epoch, "phase": "shared", **metrics}])
                self._scalars({f"shared/{k}": v for k, v in metrics.items()}, epoch + 1)
                log.info(
                    "epoch %d/%d shared weights: %s",
                    epoch + 1, cfg.num_epochs, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                )
                self._save(epoch, 1)
            t0 = time.time()
            rewards_epoch = []
            batches = self.task.reward_batches(epoch)
            for s in range(cfg.controller_steps):
                tokens = self.strategy.sample(decisions, cfg.controller_aggregate)
                rewards, rows = [], []
                update = int(self.controller_updates)
                for i, t in enumerate(tokens):
                    reward, extra = self.task.reward(t, next(batches))
                    rewards.append(reward)
                    rows.append(
                        {
                            "epoch": epoch,
                            "update": update,
                            "sample": i,
                            "reward": float(reward),
                            **{k: float(v) for k, v in extra.items()},
                            "tokens": [int(v) for v in t],
                            "arch": self.space.from_tokens(t).to_dict(),
                        }
                    )
                metrics = self.strategy.update(decisions, tokens, rewards)
                entropy = self.strategy.entropy(decisions, tokens)
                append_jsonl(self._path("history.jsonl"), rows)
                self.history.extend(rows)
                self.controller_updates.assign(update + 1)
                rewards_epoch += rewards
                self._scalars(
                    {"controller/reward": float(np.mean(rewards)), "controller/entropy": entropy,
                     **{f"controller/{k}": v for k, v in metrics.items()}},
                    update + 1,
                )
            if cfg.controller_steps:
                log.info(
                    "epoch %d/%d controller: %d updates, mean reward %.4f, max %.4f (%.0fs, %.0fs in all)",
                    epoch + 1, cfg.num_epochs, cfg.controller_steps, float(np.mean(rewards_epoch)),
                    float(np.max(rewards_epoch)), time.time() - t0, time.time() - start,
                )
            self._save(epoch + 1, 0)
        return self.derive()

    def derive(self) -> dict[str, Any]:
        """Samples ``derive_samples`` archs, scores them on the same batches, writes the best."""
        cfg = self.config
        decisions = self.space.decisions
        # A generator seeded by the search seed: deriving again gives the same samples.
        tokens = self.strategy.sample(decisions, cfg.derive_samples)
        batches = list(_take(self.task.reward_batches(cfg.num_epochs), cfg.derive_batches))
        scored = []
        for t in tokens:
            values = [self.task.reward(t, b) for b in batches]
            reward = float(np.mean([v[0] for v in values]))
            scored.append({"reward": reward, "tokens": [int(v) for v in t], "arch": self.space.from_tokens(t).to_dict()})
        atomic_write_text(self._path("derived.jsonl"), "".join(_json(r) + "\n" for r in scored))
        best = max(scored, key=lambda r: r["reward"])
        arch = self.arch_for_output(self.space.from_tokens(best["tokens"]))
        arch.to_json(self._path("best_arch.json"))
        atomic_write_json(self._path("best.json"), {"reward": best["reward"], "searched_arch": best["arch"], "arch_file": "best_arch.json"})
        summary = {
            "epochs": int(self.epoch),
            "controller_updates": int(self.controller_updates),
            "best_reward": best["reward"],
            "best_arch": self._path("best_arch.json"),
            "history": self._path("history.jsonl"),
            "trace_counts": self.task.trace_counts(),
        }
        atomic_write_json(self._path("summary.json"), summary)
        log.info("derived %d architectures: best reward %.4f -> %s", len(scored), best["reward"], summary["best_arch"])
        return summary


def _take(iterator, n):
    for _ in range(n):
        yield next(iterator)


def _json(obj) -> str:
    import json

    return json.dumps(obj)


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
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + np.cos(np.pi * (epoch - start) / period))
