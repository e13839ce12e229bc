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
a recurrent language-model supernet: :mod:`nas_tf.tasks`); the controller
side is any :class:`~nas_tf.controller.base.Searcher`. Architectures reach the task
as token vectors, which the supernets take as an int tensor, so each train or
reward step is traced once per search, never once per architecture
(``trace_counts`` in the run summary).

Run directory (``model_dir``): ``history.jsonl`` (one line per controller
sample: epoch, step, arch, reward), ``epochs.jsonl`` (per-epoch metrics),
``derived.jsonl`` and ``best_arch.json`` / ``best.json``, ``checkpoints/``
(shared weights, their optimizer, the searcher's whole state, epoch and phase
counters), ``search_config.json``, ``tensorboard/``. A checkpoint is written
after each phase; re-running the same command resumes from the last one.

Distributed search (``--strategy=mirrored`` / ``multi_worker``): the task's
``distribute_strategy`` trains the shared weights data-parallel with **one
sampled architecture per global step** (every replica runs the same arch on
its share of the global batch; see :mod:`nas_tf.tasks.image.supernet`), so
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

Damage and interrupts are handled as in the multi-trial loop
(docs/reliability.md): a newest checkpoint that cannot be read gives way to
the one before it, a history that lacks controller updates the checkpoint
counts is refused, a damaged line is named, a second process on the same
``model_dir`` stops at once, and Ctrl-C or SIGTERM never stops the loop
inside a checkpoint nor records rewards measured while interrupted.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.distribute.cluster import all_gather_json, broadcast_from_chief, float_variables, save_checkpoint, worker_info
from nas_tf.search.callbacks import CallbackList, SearchCallback
from nas_tf.search.run_dir import RunDirectory, missing_rows, ranges_text
from nas_tf.spaces.arch import Arch
from nas_tf.spaces.base import SearchSpace
from nas_tf.utils import interrupts
from nas_tf.utils.io import RunDirError
from nas_tf.utils.progress import eta, format_duration

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

    def derive_reward(self, arch: Arch, accuracy: float) -> tuple[float, dict[str, float]]:
        """The reward of a derived arch (the one written to ``best_arch.json``) from its score.

        The default is the score itself; an image task with serving-cost
        targets trades it against the costs of the arch's final network.
        """
        return accuracy, {}

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


# Fields every history row must have (a row without them is named as damaged on resume).
_ROW_FIELDS = {"epoch": int, "update": int, "reward": (int, float)}
_RESUMABLE_CHANGES = {("search", "num_epochs"), ("search", "keep_checkpoints"), ("search", "derive_samples"),
                      ("search", "derive_batches")}


class OneShotSearch:
    """Runs (or resumes) an ENAS-style one-shot search.

    Args:
        space: the search space.
        searcher: the controller's searcher (REINFORCE with the ENAS options).
        task: the shared-weights side.
        config: loop settings.
        arch_for_output: maps the searched arch to the arch written to
            ``best_arch.json`` (e.g. an ENAS micro arch to the NASNet-cell
            JSON the final builder reads); identity by default.
        callbacks: :class:`~nas_tf.search.callbacks.SearchCallback` s, told
            of the search's start and end, of every derived arch (as a child)
            and of the best arch (e.g. :func:`nas_tf.viz.search_callbacks`).
    """

    def __init__(
        self,
        space: SearchSpace,
        searcher: Searcher,
        task: SharedWeightsTask,
        config: OneShotConfig,
        arch_for_output: Callable[[Arch], Arch] | None = None,
        callbacks: list[SearchCallback] | None = None,
    ):
        self.space = space
        self.searcher = searcher
        self.task = task
        self.config = config
        self.arch_for_output = arch_for_output or (lambda a: a)
        self.callbacks = CallbackList(callbacks)
        self.model_dir = os.path.abspath(config.model_dir)
        self.distribute = task.distribute_strategy
        self.worker = worker_info(self.distribute)
        self.run_dir = RunDirectory(self.model_dir, self.worker, self.distribute)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.phase = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")  # 0: shared, 1: controller
        self.controller_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="controller_updates")
        self.checkpoint = tf.train.Checkpoint(
            epoch=self.epoch,
            phase=self.phase,
            controller_updates=self.controller_updates,
            **{f"searcher_{k}": v for k, v in searcher.trackables().items()},
            **{f"task_{k}": v for k, v in task.trackables().items()},
        )
        self.checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
        # Only the chief keeps the run's checkpoints (made on restore, once the directory is locked).
        self.manager: tf.train.CheckpointManager | None = None
        self.record = {
            "space": {"name": space.name, **space.config()},
            "searcher": searcher.config(),
            "task": task.config(),
            "search": dataclasses.asdict(config) | {"model_dir": None},
        }
        self.history: list[dict] = []

    def _restore(self) -> None:
        """Restores the newest readable checkpoint and the rows it accounts for.

        Raises:
            RunDirError: the history lacks controller updates the checkpoint
                counts, holds updates no checkpoint can account for
                (checkpoints deleted), or a line of it is damaged.
        """
        if self.worker.is_chief:
            self.manager = self.run_dir.checkpoint_manager(self.checkpoint, self.config.keep_checkpoints)
        latest = self.run_dir.restore_checkpoint(self.checkpoint)
        done_updates = int(self.controller_updates)
        path = self.run_dir.path("history.jsonl")
        rows = self.run_dir.read_rows("history.jsonl", _ROW_FIELDS)
        updates = {r["update"] for r in rows}
        missing = [u for u in range(done_updates) if u not in updates]
        if missing:
            raise missing_rows(path, "controller updates", missing, done_updates, latest)
        # Rows of the controller phase in progress (at most controller_steps updates) are made again;
        # rows beyond it mean the checkpoints were replaced.
        later = sorted(u for u in updates if u >= done_updates + self.config.controller_steps)
        if later and not self.run_dir.fell_back:
            counted = (f"checkpoint {os.path.basename(latest)} counts {done_updates}" if latest
                       else "there is no checkpoint")
            raise RunDirError(
                f"{path} holds controller updates {ranges_text(later)}, which no checkpoint accounts for "
                f"({counted}): checkpoints/ was deleted or replaced, so resuming would forget them; put it back, or "
                "start a new search in another directory"
            )
        self.history = self.run_dir.restore_rows(
            "history.jsonl", lambda r: r["update"] < done_updates, require=_ROW_FIELDS
        )
        if latest and self.worker.is_chief:
            log.info("resumed %s: epoch %d, phase %d", latest, int(self.epoch), int(self.phase))
        # Epoch rows of a shared phase whose checkpoint was not written (it is run again).
        done = int(self.epoch) + (1 if int(self.phase) == 1 else 0)
        epochs = self.run_dir.restore_rows("epochs.jsonl", lambda r: r["epoch"] < done, require={"epoch": int})
        lost = sorted(set(range(done)) - {r["epoch"] for r in epochs})
        if lost and self.worker.is_chief:
            log.warning("epochs.jsonl lacks the shared-weights metrics of epoch(s) %s (deleted or cut)", ranges_text(lost))
        # Every worker restored the same checkpoint; the chief's controller wins anyway.
        self._broadcast_controller()
        self.run_dir.barrier()

    def _broadcast_controller(self) -> None:
        if self.worker.count > 1:
            broadcast_from_chief(self.distribute, float_variables(self.searcher.trackables()))

    def _agree(self, values) -> tuple[Any, bool]:
        """The chief's ``values`` (JSON-able) on every worker, and whether every worker had the same."""
        if self.worker.count == 1:
            return values, True
        everyone = all_gather_json(self.distribute, values)
        return everyone[0], all(v == everyone[0] for v in everyone)

    def _save(self, epoch: int, phase: int) -> None:
        self.epoch.assign(epoch)
        self.phase.assign(phase)
        with interrupts.critical():  # Ctrl-C or SIGTERM waits for the checkpoint
            save_checkpoint(self.manager, self.checkpoint, self.worker, 2 * epoch + phase)

    def run(self) -> dict[str, Any]:
        """Runs the remaining epochs, then derives the best architecture."""
        self.run_dir.check_workers_agree(self.record)
        if self.worker.is_chief:
            os.makedirs(self.model_dir, exist_ok=True)
        with self.run_dir.hold():  # one process at a time (the chief's hold covers the cluster)
            return self._run_locked()

    def _run_locked(self) -> dict[str, Any]:
        self.run_dir.barrier()
        self.run_dir.check_record(self.record, _RESUMABLE_CHANGES, write=False)
        self._restore()
        self.run_dir.write_record(self.record)
        self.callbacks.on_search_begin(self.run_dir, self.space)
        cfg = self.config
        decisions = self.space.decisions
        start, first_epoch, traced = time.time(), int(self.epoch), False
        while int(self.epoch) < cfg.num_epochs:
            epoch = int(self.epoch)
            if int(self.phase) == 0:
                if not traced:
                    log.info("epoch %d (%d/%d): training the shared weights; the first step traces the supernet "
                             "(once per search: it may take a while) ...", epoch, epoch + 1, cfg.num_epochs)
                    traced = True
                t0 = time.time()
                metrics = self.task.train_epoch(epoch, lambda: self.searcher.sample(decisions, 1)[0])
                interrupts.check()  # an interrupted pass is never recorded
                metrics["seconds"] = time.time() - t0
                self.run_dir.append("epochs.jsonl", [{"epoch": epoch, "phase": "shared", **metrics}])
                self.run_dir.scalars({f"shared/{k}": v for k, v in metrics.items()}, epoch + 1)
                log.info(
                    "epoch %d (%d/%d) shared weights: %s",
                    epoch, epoch + 1, cfg.num_epochs, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                )
                self._save(epoch, 1)
            t0 = time.time()
            rewards_epoch = []
            batches = self.task.reward_batches(epoch)
            for _s in range(cfg.controller_steps):
                interrupts.check()
                tokens = self.searcher.sample(decisions, cfg.controller_aggregate)
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
                interrupts.check()  # rewards measured while interrupted are never recorded
                metrics = self.searcher.update(decisions, tokens, rewards)
                self._broadcast_controller()
                entropy = self.searcher.entropy(decisions, tokens)
                self.run_dir.append("history.jsonl", rows)
                self.history.extend(rows)
                self.controller_updates.assign(update + 1)
                rewards_epoch += rewards
                self.run_dir.scalars(
                    {"controller/reward": float(np.mean(rewards)), "controller/entropy": entropy,
                     **{f"controller/{k}": v for k, v in metrics.items()}},
                    update + 1,
                )
            if cfg.controller_steps:
                last = int(self.controller_updates) - 1
                log.info(
                    "epoch %d (%d/%d, %s) controller: updates %d-%d, mean reward %.4f, max %.4f (%s; %s in this process)",
                    epoch, epoch + 1, cfg.num_epochs,
                    eta(epoch + 1 - first_epoch, cfg.num_epochs - epoch - 1, time.time() - start),
                    last - cfg.controller_steps + 1, last, float(np.mean(rewards_epoch)), float(np.max(rewards_epoch)),
                    format_duration(time.time() - t0), format_duration(time.time() - start),
                )
            self._save(epoch + 1, 0)
        return self.derive()

    def derive(self) -> dict[str, Any]:
        """Samples ``derive_samples`` archs, scores them on the same batches, writes the best."""
        cfg = self.config
        decisions = self.space.decisions
        # A generator seeded by the search seed: deriving again gives the same samples.
        tokens = self.searcher.sample(decisions, cfg.derive_samples)
        batches = list(_take(self.task.reward_batches(cfg.num_epochs), cfg.derive_batches))
        means = [float(np.mean([self.task.reward(t, b)[0] for b in batches])) for t in tokens]
        means, agreed = self._agree(means)  # the chief's scores on every worker
        if not agreed:
            log.warning("the workers' scores of the derived archs differ (float noise); the chief's are used")
        rewards = [list(self.task.derive_reward(self.arch_for_output(self.space.from_tokens(t)), m))
                   for t, m in zip(tokens, means)]
        rewards, _ = self._agree(rewards)  # measured costs (latency) are the chief's too
        scored = [
            {"reward": reward, **({"score": score, **costs} if costs else {}), "tokens": [int(v) for v in t],
             "arch": self.space.from_tokens(t).to_dict()}
            for t, score, (reward, costs) in zip(tokens, means, rewards)
        ]
        best = max(scored, key=lambda r: r["reward"])
        arch = self.arch_for_output(self.space.from_tokens(best["tokens"]))
        self.run_dir.write_text("derived.jsonl", "".join(json.dumps(r) + "\n" for r in scored))
        self.run_dir.write_arch("best_arch.json", arch)
        for i, row in enumerate(scored):
            self.callbacks.on_child_end(self.run_dir, {"index": i, **row}, self.space)
        self.callbacks.on_best_arch(self.run_dir, arch, int(self.controller_updates))
        self.run_dir.write_json(
            "best.json", {"reward": best["reward"], "searched_arch": best["arch"], "arch_file": "best_arch.json"}
        )
        summary = {
            "epochs": int(self.epoch),
            "controller_updates": int(self.controller_updates),
            "best_reward": best["reward"],
            "best_arch": self.run_dir.path("best_arch.json"),
            "history": self.run_dir.path("history.jsonl"),
            "trace_counts": self.task.trace_counts(),
            "replicas": int(self.distribute.num_replicas_in_sync) if self.distribute is not None else 1,
            "worker": dataclasses.asdict(self.worker),
            "workers_agree": agreed,
        }
        self.run_dir.write_json("summary.json", summary)
        self.callbacks.on_search_end(self.run_dir, summary)
        # No worker reads best_arch.json before the chief has written it.
        self.run_dir.barrier()
        log.info("derived %d architectures: best reward %.4f -> %s", len(scored), best["reward"], summary["best_arch"])
        return summary


def _take(iterator, n):
    for _ in range(n):
        yield next(iterator)
