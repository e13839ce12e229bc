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
:class:`~nas_tf.controller.base.Searcher`. Architectures reach the task
as token vectors, which the supernets take as an int tensor, so each train or
reward step is traced once per search, never once per architecture
(``trace_counts`` in the run summary).

Run directory (``model_dir``): ``history.jsonl`` (one line per controller
sample: epoch, step, arch, reward), ``epochs.jsonl`` (per-epoch metrics),
``derived.jsonl`` and ``best_arch.json`` / ``best.json``, ``checkpoints/``
(shared weights, their optimizer, the strategy's whole state, epoch and phase
counters), ``search_config.json``, ``tensorboard/``. A checkpoint is written
after each phase; re-running the same command resumes from the last one.

Distributed search (``--strategy=mirrored`` / ``multi_worker``): the task's
``distribute_strategy`` trains the shared weights data-parallel with **one
sampled architecture per global step** (every replica runs the same arch on
its share of the global batch; see :mod:`nas_tf.search.image_supernet`), so
the controller is stepped exactly as on one device: one sample per global
step in phase 1, ``controller_steps`` updates per epoch in phase 2. Under
``multi_worker`` every host runs the same command, and:

* the controller is a plain Keras model on every worker (created outside the
  strategy's scope, with the same seed), so every worker samples the same
  architectures, computes their rewards on the same validation batches with
  the same shared weights and applies the same update; after every update
  the chief's controller variables (weights, Adam slots, baseline) are
  broadcast (:func:`~nas_tf.distribute.broadcast_from_chief`) so no worker
  drifts. The final scores of the derived archs are gathered
  (:func:`~nas_tf.distribute.all_gather_json`): every worker reports the
  chief's best arch, and ``workers_agree`` in the summary says whether every
  worker had computed the same scores;
* only the chief writes the run directory. ``model_dir`` must be on a
  filesystem every worker sees (as TensorFlow's own multi-worker
  checkpointing assumes): every worker takes part in every checkpoint save
  (TensorFlow requires it for distributed variables) -- the chief into
  ``model_dir/checkpoints``, the others into a temporary directory they
  delete at once -- and on a resume every worker restores the chief's latest
  checkpoint and reads the chief's history;
* re-running the same command on every worker resumes the whole cluster.
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

from nas_tf.controller.base import Searcher
from nas_tf.distribute.cluster import (
    all_gather_json,
    barrier,
    broadcast_from_chief,
    float_variables,
    save_checkpoint,
    worker_info,
)
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

    @property
    def distribute_strategy(self) -> tf.distribute.Strategy | None:
        """The ``tf.distribute`` strategy of the shared weights (None: one device)."""
        return None


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
        strategy: Searcher,
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
        self.distribute = task.distribute_strategy
        self.worker = worker_info(self.distribute)
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
        self.checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
        # Only the chief keeps the run's checkpoints (a manager creates its directory).
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir, max_to_keep=config.keep_checkpoints)
            if self.worker.is_chief
            else None
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
        # Every worker has read the old record (and refused a mismatch alike) before the chief writes.
        self._barrier()
        if self.worker.is_chief:
            atomic_write_json(path, self.record)

    def _barrier(self) -> None:
        barrier(self.distribute)

    def _restore(self) -> None:
        import json

        latest = tf.train.latest_checkpoint(self.checkpoint_dir) if os.path.isdir(self.checkpoint_dir) else None
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            log.info("resumed %s: epoch %d, phase %d", latest, int(self.epoch), int(self.phase))
        chief = self.worker.is_chief
        rows = read_jsonl(self._path("history.jsonl"), repair=chief)
        done_updates = int(self.controller_updates)
        kept = [r for r in rows if r["update"] < done_updates]
        if len(kept) != len(rows) and chief:
            log.warning("dropping %d history rows written after the last checkpoint", len(rows) - len(kept))
            atomic_write_text(self._path("history.jsonl"), "".join(json.dumps(r) + "\n" for r in kept))
        self.history = kept
        # Epoch rows of a shared phase whose checkpoint was not written (it is run again).
        epochs = read_jsonl(self._path("epochs.jsonl"), repair=chief)
        done = int(self.epoch) + (1 if int(self.phase) == 1 else 0)
        kept_epochs = [r for r in epochs if r["epoch"] < done]
        if len(kept_epochs) != len(epochs) and chief:
            atomic_write_text(self._path("epochs.jsonl"), "".join(json.dumps(r) + "\n" for r in kept_epochs))
        # Every worker restored the same checkpoint; the chief's controller wins anyway.
        self._broadcast_controller()
        self._barrier()

    def _broadcast_controller(self) -> None:
        if self.worker.count > 1:
            broadcast_from_chief(self.distribute, float_variables(self.strategy.trackables()))

    def _agree(self, values) -> tuple[Any, bool]:
        """The chief's ``values`` (JSON-able) on every worker, and whether every worker had the same."""
        if self.worker.count == 1:
            return values, True
        everyone = all_gather_json(self.distribute, values)
        return everyone[0], all(v == everyone[0] for v in everyone)

    def _writer_(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._path("tensorboard"))
        return self._writer

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if not self.worker.is_chief:
            return
        with self._writer_().as_default():
            for k, v in values.items():
                if v is not None:
                    tf.summary.scalar(k, float(v), step=step)
        self._writer_().flush()

    def _save(self, epoch: int, phase: int) -> None:
        self.epoch.assign(epoch)
        self.phase.assign(phase)
        save_checkpoint(self.manager, self.checkpoint, self.worker, 2 * epoch + phase)

    def _append(self, name: str, rows: list[dict]) -> None:
        if self.worker.is_chief:
            append_jsonl(self._path(name), rows)

    def run(self) -> dict[str, Any]:
        """Runs the remaining epochs, then derives the best architecture."""
        if self.worker.is_chief:
            os.makedirs(self.model_dir, exist_ok=True)
        self._barrier()
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
                self._append("epochs.jsonl", [{"epoch": epoch, "phase": "shared", **metrics}])
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
                update = int(self.controller_updates)
                # Every worker scores the same archs on the same batches with the same shared
                # weights; the chief's controller is broadcast after the update, so a worker
                # whose rewards differed by float noise cannot drift (no gather needed here).
                scores = [self.task.reward(t, next(batches)) for t in tokens]
                scores = [(float(r), {k: float(v) for k, v in extra.items()}) for r, extra in scores]
                rewards = [r for r, _ in scores]
                rows = [
                    {
                        "epoch": epoch,
                        "update": update,
                        "sample": i,
                        "reward": reward,
                        **extra,
                        "tokens": [int(v) for v in t],
                        "arch": self.space.from_tokens(t).to_dict(),
                    }
                    for i, (t, (reward, extra)) in enumerate(zip(tokens, scores))
                ]
                metrics = self.strategy.update(decisions, tokens, rewards)
                self._broadcast_controller()
                entropy = self.strategy.entropy(decisions, tokens)
                self._append("history.jsonl", rows)
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
        means = [float(np.mean([self.task.reward(t, b)[0] for b in batches])) for t in tokens]
        means, agreed = self._agree(means)  # the chief's scores on every worker
        if not agreed:
            log.warning("the workers' scores of the derived archs differ (float noise); the chief's are used")
        scored = [
            {"reward": reward, "tokens": [int(v) for v in t], "arch": self.space.from_tokens(t).to_dict()}
            for t, reward in zip(tokens, means)
        ]
        best = max(scored, key=lambda r: r["reward"])
        arch = self.arch_for_output(self.space.from_tokens(best["tokens"]))
        if self.worker.is_chief:
            atomic_write_text(self._path("derived.jsonl"), "".join(_json(r) + "\n" for r in scored))
            arch.to_json(self._path("best_arch.json"))
            atomic_write_json(
                self._path("best.json"), {"reward": best["reward"], "searched_arch": best["arch"], "arch_file": "best_arch.json"}
            )
        summary = {
            "epochs": int(self.epoch),
            "controller_updates": int(self.controller_updates),
            "best_reward": best["reward"],
            "best_arch": self._path("best_arch.json"),
            "history": self._path("history.jsonl"),
            "trace_counts": self.task.trace_counts(),
            "replicas": int(self.distribute.num_replicas_in_sync) if self.distribute is not None else 1,
            "worker": dataclasses.asdict(self.worker),
            "workers_agree": agreed,
        }
        if self.worker.is_chief:
            atomic_write_json(self._path("summary.json"), summary)
        # No worker reads best_arch.json before the chief has written it.
        self._barrier()
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
    return float(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + np.cos(np.pi * (epoch - start) / period)))
