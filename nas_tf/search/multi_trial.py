"""The multi-trial search loop (NAS, NASNet): sample, train children, learn.

One loop serves every space and searcher::

    while children < num_architectures:
        tokens  = searcher.sample(decisions, m)          # m = archs_per_step
        results = evaluator.evaluate(children of tokens)  # any order
        searcher.update(decisions, tokens, rewards)

The run directory (``model_dir``) holds

* ``history.jsonl`` -- one line per child: step, child index, arch JSON,
  tokens, reward, status and reason, validation accuracy, parameters, wall time;
* ``best_arch.json`` -- the best arch so far (loadable by ``nas_tf.load_arch``)
  and ``best.json`` with its reward and where it came from;
* ``checkpoints/`` -- one TensorFlow checkpoint per step with the searcher's
  whole state (controller weights, optimizer slots, baseline, RNG state) and
  the step and child counters;
* ``search_config.json`` -- space, searcher, evaluator and loop settings;
* ``pending_step.json`` -- the tokens of the step in progress;
* ``tensorboard/`` -- reward, baseline, entropy, best reward so far.

Synchronous by default: the controller learns once per step, from the rewards
of all ``m`` children, so the same seed gives the same search whatever trains
the children (one process, ``N`` parallel workers, several hosts). With
``async_controller`` the controller instead learns from every child as it
returns (the NAS paper's asynchronous replicas), and a new child is sampled at
once to keep every worker busy: see :meth:`MultiTrialSearch._run_async` for the
staleness this brings.

Under a multi-worker ``cluster`` strategy every host runs this loop with the
same settings: every host samples the same architectures (same seed, same
controller), trains its share of each step's children
(:class:`~nas_tf.search.evaluators.MultiWorkerEvaluator`), receives
everyone's results through the strategy's collectives and applies the same
controller update; the chief's controller state is then broadcast so that
float noise cannot make the replicas drift. Only the chief writes the run
directory, which must be shared by the hosts to resume. The files are kept
through :class:`~nas_tf.search.run_dir.RunDirectory`, as in the one-shot loop.

Re-running the same command resumes: the checkpoint restores the state of the
last finished step, the pending step is re-sampled (with the restored RNG, so
the same architectures), children of it already in the history are not trained
again, and the rest are. No child is lost or counted twice. Every JSON file is
written atomically; the history is appended line by line and a torn last line
is dropped on resume.

What can go wrong, and what happens (docs/reliability.md):

* a newest checkpoint that is missing or damaged gives way to the one before
  it (at least two are kept); a history that lacks children a checkpoint
  counts, or a damaged line, pending-step file or ``search_config.json``, is
  refused with one line naming it (:class:`~nas_tf.utils.io.RunDirError`);
  ``best_arch.json`` and ``best.json`` are rewritten from the history if
  they are missing or damaged;
* a child training in this process that kills it (a native abort, the
  out-of-memory killer) is recorded in ``child_in_flight.json`` before it
  trains; after two deaths in a row it gets reward 0 and the reason
  "crashed the process" (:class:`~nas_tf.search.run_dir.CrashGuard`);
* Ctrl-C and SIGTERM (:mod:`nas_tf.utils.interrupts`) stop the loop before
  the interrupted child is recorded, never inside a checkpoint;
* a second process on the same ``model_dir`` stops at once (the chief holds
  the directory's lock while the loop runs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from nas_tf.controller.base import Searcher
from nas_tf.distribute.cluster import broadcast_from_chief, float_variables, worker_info
from nas_tf.search.callbacks import CallbackList, SearchCallback
from nas_tf.search.evaluator import ChildRequest, ChildResult, Evaluator, InProcessEvaluator
from nas_tf.search.run_dir import CrashGuard, ResumeMismatchError, RunDirectory, missing_rows, ranges_text
from nas_tf.spaces.arch import ArchError, arch_from_dict, load_arch
from nas_tf.spaces.base import SearchSpace
from nas_tf.spaces.short_form import arch_short_form
from nas_tf.utils import interrupts
from nas_tf.utils.io import RunDirError
from nas_tf.utils.progress import eta, format_duration

log = logging.getLogger("nas_tf.search")

HISTORY = "history.jsonl"
PENDING = "pending_step.json"
BEST_ARCH = "best_arch.json"
BEST = "best.json"
# Fields every history row must have (a row without them is named as damaged on resume).
_ROW_FIELDS = {"child": int, "step": int, "reward": (int, float), "status": str, "tokens": list, "arch": dict}
_PENDING_ADVICE = "delete it: the step in progress is then sampled again from the last checkpoint"

__all__ = ["MultiTrialSearch", "ResumeMismatchError", "SearchConfig", "child_seed"]


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
        async_controller: update the controller on every returned child
            instead of once per step of ``archs_per_step`` children.
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
    async_controller: bool = False

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
_RESUMABLE_CHANGES = {("search", "num_architectures"), ("search", "keep_checkpoints"), ("evaluator", "evaluator")}
# Record sections that say how the search runs, not what it computes: they may
# change between a run and its resumption (more parallel workers, other GPUs).
_EXECUTION = "execution"


class MultiTrialSearch:
    """Runs (or resumes) a multi-trial architecture search.

    Args:
        space: the search space (with a depth schedule, its depth is set by
            ``config.start_depth`` and the schedule).
        searcher: REINFORCE, PPO, random search, ... (a
            :class:`~nas_tf.controller.base.Searcher`).
        evaluator: trains children and returns rewards.
        config: loop settings.
        extra_config: more JSON-able settings to record (and check on resume).
        on_result: called after every child with ``(row, search)``.
        cluster: the ``MultiWorkerMirroredStrategy`` of a multi-host search
            (None: one host). The evaluator is then wrapped so that each host
            trains its share of every step.
        callbacks: :class:`~nas_tf.search.callbacks.SearchCallback` s (e.g.
            :func:`nas_tf.viz.search_callbacks`: arch pictures, TensorBoard
            dashboard).

    Example:

    >>> search = MultiTrialSearch(space, searcher, evaluator, SearchConfig("/tmp/run"))  # doctest: +SKIP
    >>> summary = search.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        space: SearchSpace,
        searcher: Searcher,
        evaluator: Evaluator,
        config: SearchConfig,
        extra_config: dict[str, Any] | None = None,
        on_result: Callable[[dict, MultiTrialSearch], None] | None = None,
        cluster: tf.distribute.Strategy | None = None,
        callbacks: list[SearchCallback] | None = None,
    ):
        self.cluster = cluster
        self.info = worker_info(cluster)
        if self.info.count > 1:
            if config.async_controller:
                raise ValueError(
                    "async_controller: the asynchronous controller runs on one host; a multi-worker search "
                    "updates the controller synchronously (drop --async_controller or --strategy=multi_worker)"
                )
            from nas_tf.search.evaluators.cluster import MultiWorkerEvaluator

            evaluator = MultiWorkerEvaluator(evaluator, cluster)
        self.space = space
        self.searcher = searcher
        self.evaluator = evaluator
        self.config = config
        self.on_result = on_result
        self.model_dir = os.path.abspath(config.model_dir)
        self.run_dir = RunDirectory(self.model_dir, self.info, cluster)
        if isinstance(evaluator, InProcessEvaluator):
            # A child that kills this process is recorded as failed after two deaths in a row.
            evaluator = CrashGuard(evaluator, self.run_dir)
            self.evaluator = evaluator
        self.callbacks = CallbackList(callbacks)
        self._best_written: int | None = None
        self._session = {"start": time.time(), "children": 0}  # this process's pace, for the ETA
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.children_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="children_done")
        self.children_sampled = tf.Variable(0, dtype=tf.int64, trainable=False, name="children_sampled")
        counters = {"step": self.step, "children_done": self.children_done}
        if config.async_controller:
            counters["children_sampled"] = self.children_sampled
        self.checkpoint = tf.train.Checkpoint(**counters, **searcher.trackables())
        self.manager: tf.train.CheckpointManager | None = None  # the chief's, made on restore
        self.record = {
            "space": {"name": space.name, **space.config()},
            "searcher": searcher.config(),
            "evaluator": evaluator.config(),
            "search": dataclasses.asdict(config) | {"model_dir": None},
            **(extra_config or {}),
            _EXECUTION: {"workers": self.info.count, **(getattr(evaluator, "execution", dict)())},
        }
        self.history: list[dict] = []

    # ------------------------------------------------------------ bookkeeping

    def _path(self, name: str) -> str:
        return self.run_dir.path(name)

    def _restore(self) -> None:
        """Restores the newest readable checkpoint and the history it accounts for.

        Raises:
            RunDirError: the history lacks children the checkpoint counts, or
                holds children of steps no checkpoint counts (checkpoints
                deleted), or a line of it is damaged.
        """
        if self.info.is_chief:
            self.manager = self.run_dir.checkpoint_manager(self.checkpoint, self.config.keep_checkpoints)
        latest = self.run_dir.restore_checkpoint(self.checkpoint)
        done, step = int(self.children_done), int(self.step)
        rows = self.run_dir.read_rows(HISTORY, _ROW_FIELDS)
        path = self._path(HISTORY)
        if self.config.async_controller:
            # A row whose ``update`` is the checkpoint's step was written just before a
            # crash, its update not saved: it is kept and applied again on resume.
            keep = lambda r: r.get("update", -1) <= step  # noqa: E731
            applied = {r.get("update") for r in rows}
            missing = [u for u in range(step) if u not in applied]
            if missing:
                raise missing_rows(path, "controller updates", missing, step, latest)
            later = sorted({r["child"] for r in rows if r.get("update", -1) > step})
        else:
            # Rows past the checkpoint belong to the interrupted step (kept if it is
            # the pending one) -- anything else cannot be trusted and is dropped.
            keep = lambda r: r["child"] < done or r["step"] == step  # noqa: E731
            have = {r["child"] for r in rows}
            missing = [c for c in range(done) if c not in have]
            if missing:
                raise missing_rows(path, "children", missing, done, latest)
            later = sorted({r["child"] for r in rows if not keep(r)})
        if later and not self.run_dir.fell_back:
            counted = f"checkpoint {os.path.basename(latest)} counts {done}" if latest else "there is no checkpoint"
            raise RunDirError(
                f"{path} holds children {ranges_text(later)}, which no checkpoint accounts for ({counted}): "
                "checkpoints/ was deleted or replaced, so resuming would forget them; put it back, or start a new "
                "search in another directory"
            )
        # A damaged pending-step file is named now, before anything is written.
        if self.config.async_controller:
            self._pending_async()
        else:
            self._pending_tokens(step, self._space_at(done))
        self.history = self.run_dir.restore_rows(HISTORY, keep, key=lambda r: r["child"], require=_ROW_FIELDS)
        if latest and self.info.is_chief:
            log.info("resumed %s at step %d (%d children done)", latest, int(self.step), int(self.children_done))

    def _repair_best(self) -> None:
        """Rewrites ``best_arch.json`` and ``best.json`` if they are missing, damaged or behind the history (chief)."""
        best = self.best()
        if best is None or not self.info.is_chief:
            return
        try:
            on_disk = self.run_dir.read_json(BEST, expect=dict) or {}
            ok = on_disk.get("child") == best["child"] and (
                load_arch(self._path(BEST_ARCH)).to_dict() == arch_from_dict(best["arch"]).to_dict()
            )
        except (ArchError, RunDirError):
            ok = False
        if ok:
            self._best_written = best["child"]
            return
        log.warning("%s or %s is missing, damaged or behind the history: rewritten from it", BEST_ARCH, BEST)
        self._write_best()

    def _append(self, row: dict, space: SearchSpace) -> None:
        self.run_dir.append(HISTORY, [row])
        self.history.append(row)
        self.callbacks.on_child_end(self.run_dir, row, space)

    def _save(self, number: int) -> None:
        """The step's checkpoint and best arch (chief), then the controller synchronised (cluster)."""
        if self.info.is_chief:
            with interrupts.critical():  # Ctrl-C or SIGTERM waits for the checkpoint
                self.manager.save(checkpoint_number=number)
                self._write_best()
        broadcast_from_chief(self.cluster, float_variables(self.searcher.trackables()))

    def best(self) -> dict | None:
        """The history row with the highest reward (earliest on ties)."""
        ok = [r for r in self.history if r["status"] == "ok"]
        return max(ok, key=lambda r: (r["reward"], -r["child"])) if ok else None

    def _write_best(self) -> None:
        best = self.best()
        if best is None:
            return
        arch = arch_from_dict(best["arch"])
        self.run_dir.write_arch(BEST_ARCH, arch)
        self.run_dir.write_json(
            BEST,
            {k: best[k] for k in ("child", "step", "reward", "status", "metrics") if k in best}
            | {"arch_file": BEST_ARCH},
        )
        if best["child"] != self._best_written:
            self._best_written = best["child"]
            self.callbacks.on_best_arch(self.run_dir, arch, int(self.children_done))

    # ------------------------------------------------------------------ run

    def _space_at(self, children_done: int) -> SearchSpace:
        depth = self.config.depth_at(children_done)
        return self.space if depth is None else self.space.with_depth(depth)

    def _pending_tokens(self, step: int, space: SearchSpace) -> np.ndarray | None:
        pending = self.run_dir.read_json(PENDING, advice=_PENDING_ADVICE, expect=dict)
        if pending is None or pending.get("step") != step:
            return None
        try:
            tokens = np.asarray(pending["tokens"], dtype=np.int32)
            if tokens.ndim != 2:
                raise ValueError(f"expected a list of token lists, got {tokens.ndim} dimension(s)")
            for t in tokens:
                space.from_tokens(t)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            raise RunDirError(f"{self._path(PENDING)}: field 'tokens' is damaged ({e}); {_PENDING_ADVICE}") from None
        return tokens

    def run(self) -> dict[str, Any]:
        """Runs the search to ``num_architectures`` children (resuming if possible).

        Returns:
            A summary: children trained, steps, best reward and arch path.
        """
        self.run_dir.check_workers_agree(self.record, execution=[_EXECUTION])
        if self.info.is_chief:
            os.makedirs(self.model_dir, exist_ok=True)
        with self.run_dir.hold():  # one process at a time (the chief's hold covers the cluster)
            return self._run_locked()

    def _run_locked(self) -> dict[str, Any]:
        self.run_dir.check_record(self.record, _RESUMABLE_CHANGES, execution=[_EXECUTION], write=False)
        if self.info.is_chief:
            self._restore()  # may repair the history file
            self.run_dir.write_record(self.record)
        self.run_dir.barrier()
        if not self.info.is_chief:
            self._restore()  # reads what the chief restored
        self.callbacks.on_search_begin(self.run_dir, self.space)
        self._repair_best()
        cfg = self.config
        total = cfg.num_architectures
        if int(self.children_done) >= total:
            log.info("search already complete: %d children", int(self.children_done))
        if cfg.async_controller:
            self._run_async()
        else:
            self._run_sync()
        summary = self.summary()
        self.run_dir.write_json("summary.json", summary)
        self.callbacks.on_search_end(self.run_dir, summary)
        self.run_dir.barrier()
        return summary

    def _run_sync(self) -> None:
        cfg = self.config
        total = cfg.num_architectures
        start_time = time.time()
        while int(self.children_done) < total:
            step, done = int(self.step), int(self.children_done)
            space = self._space_at(done)
            decisions = space.decisions
            m = min(cfg.archs_per_step, total - done)
            tokens = self.searcher.sample(decisions, m)
            pending = self._pending_tokens(step, space)
            if pending is not None:
                if pending.shape != tokens.shape:
                    raise RunDirError(
                        f"{self._path(PENDING)}: step {step} has {pending.shape[0]} children of {pending.shape[1]} "
                        f"tokens, this search {m} of {tokens.shape[1]}; {_PENDING_ADVICE}"
                    )
                if not np.array_equal(pending, tokens):
                    log.warning("step %d: re-sampled tokens differ from the pending step; using the pending ones", step)
                tokens = pending
            else:
                self.run_dir.write_json(PENDING, {"step": step, "first_child": done, "tokens": tokens.tolist()})
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
                interrupts.check()  # a child whose training was interrupted is never recorded
                k = result.index - done
                row = self._row(step, result, archs[k], tokens[k], space)
                self._append(row, space)
                finished[result.index] = row
                self._log_child(row, total)
                if self.on_result is not None:
                    self.on_result(row, self)
            missing = [done + k for k in range(m) if done + k not in finished]
            if missing:
                raise RuntimeError(f"the evaluator returned no result for children {missing}")
            rewards = [finished[done + k]["reward"] for k in range(m)]
            metrics = self.searcher.update(decisions, tokens, rewards)
            entropy = self.searcher.entropy(decisions, tokens)
            self.step.assign(step + 1)
            self.children_done.assign(done + m)
            with interrupts.critical():
                self._save(step + 1)
                self.run_dir.remove(PENDING)
            self._log_step(step, done + m, rewards, metrics, entropy, total, start_time)

    # ------------------------------------------------- asynchronous controller

    def _sample_one(self, index: int) -> tuple[np.ndarray, SearchSpace]:
        space = self._space_at(index)
        return self.searcher.sample(space.decisions, 1)[0], space

    def _run_async(self) -> None:
        """The asynchronous controller: learn from every child as it returns.

        Up to ``evaluator.capacity`` children are in flight. Each returned child
        is one controller update (a REINFORCE step on that single child, the
        baseline its moving average), written to the history with the update
        number, checkpointed, and replaced by a newly sampled child.

        Staleness: a child sampled after update ``u`` returns at update
        ``u' >= u``, after the ``u' - u`` children that finished while it
        trained (up to ``capacity - 1`` when children take equally long). Its
        log-probability is taken under the current controller, so the update is
        off-policy by ``u' - u`` updates; every row records ``sampled_at`` and
        ``staleness``. Results arrive in the order the children finish, so two
        runs with the same seed need not give the same search (use the
        synchronous default for that).

        Resume: ``pending_step.json`` lists the children in flight; on restart
        those sampled after the checkpoint are re-sampled from the restored
        generator (so later samples follow as uninterrupted), none is trained
        twice and none lost.
        """
        cfg = self.config
        total = cfg.num_architectures
        start_time = time.time()
        finished = {r["child"]: r for r in self.history}
        in_flight: dict[int, dict] = {}
        pending = self._pending_async()
        if pending is not None:
            sampled = int(self.children_sampled)
            for entry in sorted(pending, key=lambda e: e["child"]):
                if entry["child"] >= sampled:  # sampled after the checkpoint: advance the generator past it
                    tokens, _ = self._sample_one(entry["child"])
                    if not np.array_equal(tokens, entry["tokens"]):
                        log.warning("child %d: re-sampled tokens differ from the pending ones; using the pending ones",
                                    entry["child"])
                    sampled = entry["child"] + 1
                if entry["child"] not in finished:
                    in_flight[entry["child"]] = entry
            self.children_sampled.assign(max(sampled, int(self.children_sampled)))
        interrupted = [r for r in self.history if r.get("update") == int(self.step)]
        for row in interrupted:  # its update was not checkpointed
            self._apply_async(row, total, start_time)
        if in_flight:
            log.info("resuming %d children that were in flight", len(in_flight))
        for entry in in_flight.values():
            self._submit_async(entry)
        while int(self.children_done) < total:
            while self.evaluator.in_flight() < self.evaluator.capacity and int(self.children_sampled) < total:
                index = int(self.children_sampled)
                tokens, space = self._sample_one(index)
                entry = {"child": index, "tokens": tokens.tolist(), "sampled_at": int(self.step)}
                in_flight[index] = entry
                self.children_sampled.assign(index + 1)
                self.run_dir.write_json(PENDING, {"mode": "async", "in_flight": list(in_flight.values())})
                self._submit_async(entry)
            if self.evaluator.in_flight() == 0:
                raise RuntimeError(f"no child in flight with {int(self.children_done)} of {total} children done")
            result = self.evaluator.next_result()
            interrupts.check()  # a child whose training was interrupted is never recorded
            entry = in_flight.pop(result.index)
            space = self._space_at(result.index)
            tokens = np.asarray(entry["tokens"], dtype=np.int32)
            row = self._row(int(self.step), result, space.from_tokens(tokens), tokens, space)
            row.update({"update": int(self.step), "sampled_at": entry["sampled_at"],
                        "staleness": int(self.step) - entry["sampled_at"]})
            self._append(row, space)
            self._log_child(row, total)
            if self.on_result is not None:
                self.on_result(row, self)
            self._apply_async(row, total, start_time)
            self.run_dir.write_json(PENDING, {"mode": "async", "in_flight": list(in_flight.values())})
        self.run_dir.remove(PENDING)

    def _pending_async(self) -> list[dict] | None:
        """The children in flight that ``pending_step.json`` lists (asynchronous controller)."""
        pending = self.run_dir.read_json(PENDING, advice=_PENDING_ADVICE, expect=dict)
        if pending is None:
            return None
        entries = pending.get("in_flight", [])
        fields = {"child": int, "tokens": list, "sampled_at": int}
        for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
            if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in fields.items()):
                raise RunDirError(f"{self._path(PENDING)}: field 'in_flight[{i}]' is damaged; {_PENDING_ADVICE}")
        return entries

    def _submit_async(self, entry: dict) -> None:
        space = self._space_at(entry["child"])
        arch = space.from_tokens(np.asarray(entry["tokens"], dtype=np.int32))
        index = entry["child"]
        self.evaluator.submit(ChildRequest(index=index, step=entry["sampled_at"], arch=arch,
                                           seed=child_seed(self.config.seed, index)))

    def _apply_async(self, row: dict, total: int, start_time: float) -> None:
        """One controller update from one child's reward; checkpointed."""
        space = self._space_at(row["child"])
        tokens = np.asarray([row["tokens"]], dtype=np.int32)
        metrics = self.searcher.update(space.decisions, tokens, [row["reward"]])
        entropy = self.searcher.entropy(space.decisions, tokens)
        step = int(self.step)
        self.step.assign(step + 1)
        self.children_done.assign(int(self.children_done) + 1)
        self._save(step + 1)
        self._log_step(step, int(self.children_done), [row["reward"]], metrics, entropy, total, start_time)

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
            "latency_ms": result.metrics.get("latency_ms"),
            "flops": result.metrics.get("flops"),
            "wall_time": round(float(result.wall_time), 3),
            "seed": child_seed(self.config.seed, result.index),
            "metrics": result.metrics,
            "tokens": [int(t) for t in tokens],
            "arch": arch.to_dict(),
            "time": time.time(),
        }

    def _log_child(self, row: dict, total: int) -> None:
        """One line per child, numbered as in history.jsonl (``child``, ``step``), with the pace and the arch."""
        self._session["children"] += 1
        best = self.best()
        status = "" if row["status"] == "ok" else f" FAILED ({row['status']}: {row['reason']})"
        acc, ppl = row["val_accuracy"], row["metrics"].get("val_perplexity")
        score = f" val_acc {acc:.4f}" if acc is not None else f" val_ppl {ppl:.2f}" if ppl is not None else ""
        done = len(self.history)
        pace = eta(self._session["children"], total - done, time.time() - self._session["start"])
        params = f" params {row['params']}" if row["params"] is not None else ""
        best_text = f"{best['reward']:.4g} (child {best['child']})" if best else "-"
        log.info(
            "child %d (%d/%d, %s) step %d: reward %.4g%s%s%s %.1fs | best %s | %s",
            row["child"], done, total, pace, row["step"], row["reward"], score, status, params, row["wall_time"],
            best_text, _short(row["arch"]),
        )

    def _log_step(self, step, done, rewards, metrics, entropy, total, start_time) -> None:
        best = self.best()
        best_reward = best["reward"] if best else 0.0
        if not self.info.is_chief:
            return
        self.run_dir.scalars(
            {
                "reward/mean": float(np.mean(rewards)),
                "reward/max": float(np.max(rewards)),
                "reward/best_so_far": best_reward,
                "controller/entropy": entropy,
                **{f"controller/{k}": v for k, v in metrics.items()},
            },
            done,
        )
        elapsed = time.time() - start_time
        extra = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in ("baseline", "loss"))
        log.info(
            "step %d done (%d/%d children): mean reward %.4g, best %.4g%s%s, %s in this process",
            step,
            done,
            total,
            float(np.mean(rewards)),
            best_reward,
            f", entropy {entropy:.3f}" if entropy is not None else "",
            f", {extra}" if extra else "",
            format_duration(elapsed),
        )


def _short(arch: dict, width: int = 90) -> str:
    """The arch in one short form (``nas_tf.spaces.arch_short_form``), cut to ``width`` characters."""
    text = arch_short_form(arch)
    return text if len(text) <= width else text[: width - 3] + "..."
