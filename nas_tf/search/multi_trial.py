"""The multi-trial search loop (NAS, NASNet): sample, train children, learn.

One loop serves every space and strategy::

    while children < num_architectures:
        tokens  = strategy.sample(decisions, m)          # m = archs_per_step
        results = evaluator.evaluate(children of tokens)  # any order
        strategy.update(decisions, tokens, rewards)

The run directory (``model_dir``) holds

* ``history.jsonl`` -- one line per child: step, child index, arch JSON,
  tokens, reward, status and reason, validation accuracy, parameters, wall time;
* ``best_arch.json`` -- the best arch so far (loadable by ``nas_tf.load_arch``)
  and ``best.json`` with its reward and where it came from;
* ``checkpoints/`` -- one TensorFlow checkpoint per step with the strategy's
  whole state (controller weights, optimizer slots, baseline, RNG state) and
  the step and child counters;
* ``search_config.json`` -- space, strategy, evaluator and loop settings;
* ``pending_step.json`` -- the tokens of the step in progress;
* ``tensorboard/`` -- reward, baseline, entropy, best reward so far.

Re-running the same command resumes: the checkpoint restores the state of the
last finished step, the pending step is re-sampled (with the restored RNG, so
the same architectures), children of it already in the history are not trained
again, and the rest are. No child is lost or counted twice. Every JSON file is
written atomically; the history is appended line by line and a torn last line
is dropped on resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import SearchStrategy
from nas_tf.search.evaluator import ChildRequest, ChildResult, Evaluator
from nas_tf.spaces.base import SearchSpace
from nas_tf.spaces.arch import arch_from_dict
from nas_tf.utils.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

log = logging.getLogger("nas_tf.search")

HISTORY = "history.jsonl"
PENDING = "pending_step.json"
CONFIG = "search_config.json"
BEST_ARCH = "best_arch.json"
BEST = "best.json"


class ResumeMismatchError(ValueError):
    """The run directory holds a search with different settings."""


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Settings of the multi-trial loop.

    Args:
        model_dir: run directory (created; an existing run there is resumed).
        num_architectures: total children to train.
        archs_per_step: children per controller step (m).
        seed: seed of the children (child ``i`` gets a seed derived from
            ``seed`` and ``i``).
        start_depth: with a depth schedule, the first depth (None: the
            space's own depth, no schedule).
        depth_increment: layers added by the schedule.
        depth_increment_every: children between two increments.
        max_depth: the schedule stops growing here (None: no limit).
        keep_checkpoints: checkpoints kept.
    """

    model_dir: str
    num_architectures: int = 40
    archs_per_step: int = 4
    seed: int = 0
    start_depth: int | None = None
    depth_increment: int = 2
    depth_increment_every: int = 1600
    max_depth: int | None = None
    keep_checkpoints: int = 2

    def __post_init__(self):
        if self.num_architectures < 1:
            raise ValueError(f"num_architectures must be >= 1, got {self.num_architectures}")
        if self.archs_per_step < 1:
            raise ValueError(f"archs_per_step must be >= 1, got {self.archs_per_step}")
        if self.start_depth is not None and self.start_depth < 1:
            raise ValueError(f"start_depth must be >= 1, got {self.start_depth}")
        if self.depth_increment < 0 or self.depth_increment_every < 1:
            raise ValueError("depth_increment must be >= 0 and depth_increment_every >= 1")

    def depth_at(self, children_done: int) -> int | None:
        """The depth of the children sampled after ``children_done`` children."""
        if self.start_depth is None:
            return None
        depth = self.start_depth + self.depth_increment * (children_done // self.depth_increment_every)
        return min(depth, self.max_depth) if self.max_depth else depth


def child_seed(seed: int, index: int) -> int:
    """The seed of child ``index``: depends on the search seed and the index only."""
    return int((seed * 1_000_003 + index * 7_919 + 12_345) % (2**31 - 1))


# Settings that may change between a run and its resumption.
_RESUMABLE_CHANGES = {("search", "num_architectures"), ("search", "keep_checkpoints")}


def _diff(old: Any, new: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), path + (k,))
        return out
    return [] if old == new else [(path, old, new)]


class MultiTrialSearch:
    """Runs (or resumes) a multi-trial architecture search.

    Args:
        space: the search space (with a depth schedule, its depth is set by
            ``config.start_depth`` and the schedule).
        strategy: REINFORCE, PPO, random search, ...
        evaluator: trains children and returns rewards.
        config: loop settings.
        extra_config: more JSON-able settings to record (and check on resume).
        on_result: called after every child with ``(row, search)``.

    Example:

    >>> search = MultiTrialSearch(space, strategy, evaluator, SearchConfig("/tmp/run"))  # doctest: +SKIP
    >>> summary = search.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: SearchStrategy,
        evaluator: Evaluator,
        config: SearchConfig,
        extra_config: dict[str, Any] | None = None,
        on_result: Callable[[dict, "MultiTrialSearch"], None] | None = None,
    ):
        self.space = space
        self.strategy = strategy
        self.evaluator = evaluator
        self.config = config
        self.on_result = on_result
        self.model_dir = os.path.abspath(config.model_dir)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.children_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="children_done")
        self.checkpoint = tf.train.Checkpoint(step=self.step, children_done=self.children_done, **strategy.trackables())
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.model_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
        )
        self.record = {
            "space": {"name": space.name, **space.config()},
            "strategy": strategy.config(),
            "evaluator": evaluator.config(),
            "search": dataclasses.asdict(config) | {"model_dir": None},
            **(extra_config or {}),
        }
        self.history: list[dict] = []
        self._writer = None

    # ------------------------------------------------------------ bookkeeping

    def _path(self, name: str) -> str:
        return os.path.join(self.model_dir, name)

    def _check_config(self) -> None:
        path = self._path(CONFIG)
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
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            log.info("resumed %s at step %d (%d children done)", latest, int(self.step), int(self.children_done))
        done = int(self.children_done)
        rows = read_jsonl(self._path(HISTORY))
        # Rows past the checkpoint belong to the interrupted step (kept if it is
        # the pending one) -- anything else cannot be trusted and is dropped.
        kept = [r for r in rows if r["child"] < done or r["step"] == int(self.step)]
        if len(kept) != len(rows):
            log.warning("dropping %d history rows written after the last checkpoint", len(rows) - len(kept))
        seen, unique = set(), []
        for r in kept:
            if r["child"] not in seen:
                seen.add(r["child"])
                unique.append(r)
        if len(unique) != len(rows):
            atomic_write_text(self._path(HISTORY), "".join(json.dumps(r) + "\n" for r in unique))
        self.history = unique

    def _summary_writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._path("tensorboard"))
        return self._writer

    def best(self) -> dict | None:
        """The history row with the highest reward (earliest on ties)."""
        ok = [r for r in self.history if r["status"] == "ok"]
        return max(ok, key=lambda r: (r["reward"], -r["child"])) if ok else None

    def _write_best(self) -> None:
        best = self.best()
        if best is None:
            return
        arch = arch_from_dict(best["arch"])
        arch.to_json(self._path(BEST_ARCH))
        atomic_write_json(
            self._path(BEST),
            {k: best[k] for k in ("child", "step", "reward", "status", "metrics") if k in best}
            | {"arch_file": BEST_ARCH},
        )

    # ------------------------------------------------------------------ run

    def _space_at(self, children_done: int) -> SearchSpace:
        depth = self.config.depth_at(children_done)
        return self.space if depth is None else self.space.with_depth(depth)

    def _pending_tokens(self, step: int) -> np.ndarray | None:
        path = self._path(PENDING)
        if not os.path.exists(path):
            return None
        with open(path, "r", encoding="utf-8") as f:
            pending = json.load(f)
        if pending.get("step") != step:
            return None
        return np.asarray(pending["tokens"], dtype=np.int32)

    def run(self) -> dict[str, Any]:
        """Runs the search to ``num_architectures`` children (resuming if possible).

        Returns:
            A summary: children trained, steps, best reward and arch path.
        """
        os.makedirs(self.model_dir, exist_ok=True)
        self._check_config()
        self._restore()
        cfg = self.config
        total = cfg.num_architectures
        start_time = time.time()
        if int(self.children_done) >= total:
            log.info("search already complete: %d children", int(self.children_done))
        while int(self.children_done) < total:
            step, done = int(self.step), int(self.children_done)
            space = self._space_at(done)
            decisions = space.decisions
            m = min(cfg.archs_per_step, total - done)
            tokens = self.strategy.sample(decisions, m)
            pending = self._pending_tokens(step)
            if pending is not None:
                if pending.shape != tokens.shape or not np.array_equal(pending, tokens):
                    log.warning("step %d: re-sampled tokens differ from the pending step; using the pending ones", step)
                tokens = pending
            else:
                atomic_write_json(self._path(PENDING), {"step": step, "first_child": done, "tokens": tokens.tolist()})
            archs = [space.from_tokens(t) for t in tokens]
            finished = {r["child"]: r for r in self.history if r["step"] == step}
            requests = [
                ChildRequest(index=done + k, step=step, arch=arch, seed=child_seed(cfg.seed, done + k))
                for k, arch in enumerate(archs)
                if done + k not in finished
            ]
            if finished:
                log.info("step %d: %d of %d children already trained before the restart", step, len(finished), m)
            for result in self.evaluator.evaluate(requests):
                k = result.index - done
                row = self._row(step, result, archs[k], tokens[k], space)
                append_jsonl(self._path(HISTORY), [row])
                self.history.append(row)
                finished[result.index] = row
                self._log_child(row, total)
                if self.on_result is not None:
                    self.on_result(row, self)
            missing = [done + k for k in range(m) if done + k not in finished]
            if missing:
                raise RuntimeError(f"the evaluator returned no result for children {missing}")
            rewards = [finished[done + k]["reward"] for k in range(m)]
            metrics = self.strategy.update(decisions, tokens, rewards)
            entropy = self.strategy.entropy(decisions, tokens)
            self.step.assign(step + 1)
            self.children_done.assign(done + m)
            self.manager.save(checkpoint_number=step + 1)
            if os.path.exists(self._path(PENDING)):
                os.remove(self._path(PENDING))
            self._write_best()
            self._log_step(step, done + m, rewards, metrics, entropy, total, start_time)
        summary = self.summary()
        atomic_write_json(self._path("summary.json"), summary)
        return summary

    def summary(self) -> dict[str, Any]:
        best = self.best()
        return {
            "children": len(self.history),
            "steps": int(self.step),
            "failed_children": sum(1 for r in self.history if r["status"] != "ok"),
            "best_reward": best["reward"] if best else None,
            "best_child": best["child"] if best else None,
            "best_arch": self._path(BEST_ARCH) if best else None,
            "history": self._path(HISTORY),
        }

    def _row(self, step: int, result: ChildResult, arch, tokens, space) -> dict:
        return {
            "child": result.index,
            "step": step,
            "depth": getattr(space, "num_layers", None),
            "reward": float(result.reward),
            "status": result.status,
            "reason": result.reason,
            "val_accuracy": result.metrics.get("val_accuracy"),
            "params": result.metrics.get("params"),
            "wall_time": round(float(result.wall_time), 3),
            "seed": child_seed(self.config.seed, result.index),
            "metrics": result.metrics,
            "tokens": [int(t) for t in tokens],
            "arch": arch.to_dict(),
            "time": time.time(),
        }

    def _log_child(self, row: dict, total: int) -> None:
        best = self.best()
        status = "" if row["status"] == "ok" else f" FAILED ({row['status']}: {row['reason']})"
        acc, ppl = row["val_accuracy"], row["metrics"].get("val_perplexity")
        score = f" val_acc {acc:.4f}" if acc is not None else f" val_ppl {ppl:.2f}" if ppl is not None else ""
        log.info(
            "child %d/%d step %d: reward %.4g%s%s params %s %.1fs | best %.4g",
            row["child"] + 1,
            total,
            row["step"],
            row["reward"],
            score,
            status,
            row["params"],
            row["wall_time"],
            best["reward"] if best else 0.0,
        )

    def _log_step(self, step, done, rewards, metrics, entropy, total, start_time) -> None:
        best = self.best()
        best_reward = best["reward"] if best else 0.0
        with self._summary_writer().as_default():
            tf.summary.scalar("reward/mean", float(np.mean(rewards)), step=done)
            tf.summary.scalar("reward/max", float(np.max(rewards)), step=done)
            tf.summary.scalar("reward/best_so_far", best_reward, step=done)
            if entropy is not None:
                tf.summary.scalar("controller/entropy", entropy, step=done)
            for k, v in metrics.items():
                tf.summary.scalar(f"controller/{k}", v, step=done)
        self._summary_writer().flush()
        elapsed = time.time() - start_time
        extra = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in ("baseline", "loss"))
        log.info(
            "step %d done: %d/%d children, mean reward %.4g, best %.4g%s%s, %.0fs",
            step + 1,
            done,
            total,
            float(np.mean(rewards)),
            best_reward,
            f", entropy {entropy:.3f}" if entropy is not None else "",
            f", {extra}" if extra else "",
            elapsed,
        )
