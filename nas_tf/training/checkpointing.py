"""The run directory of a final training: arch file, per-epoch checkpoints, metrics.

Shared by the final training of every kind of architecture (image
classifiers: :mod:`nas_tf.tasks.image.final`; language models:
:mod:`nas_tf.tasks.text.final`). A run directory holds

* ``arch.json`` -- the architecture being trained; a directory holding the run
  of another architecture is refused;
* ``checkpoints/`` -- model, optimizer and the number of finished epochs,
  saved after every epoch;
* ``metrics.json`` -- rewritten atomically with every checkpoint, so that the
  metrics of the restored epochs are never lost on resume.

Under ``MultiWorkerMirroredStrategy`` every worker runs the same code and
``model_dir`` is on a filesystem they share. Only the chief writes there. The
chief's decisions (the run directory is acceptable, which checkpoint to
resume, the metrics saved with it) are sent to every worker through the
strategy's collectives (:func:`nas_tf.distribute.all_gather_json`), so all
workers raise the same error or resume the same epoch. TensorFlow needs every
worker to take part in saving distributed variables: the chief saves into
``model_dir/checkpoints`` and every other worker into a temporary directory of
its own, deleted right after (TensorFlow's documented multi-worker pattern).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import tensorflow as tf

from nas_tf.distribute.cluster import all_gather_json, save_checkpoint, worker_info
from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.io import atomic_write_json

log = logging.getLogger("nas_tf.final")

ARCH_FILE = "arch.json"
METRICS_FILE = "metrics.json"


def chief_decides(strategy: tf.distribute.Strategy | None, decide: Callable[[], Any]) -> Any:
    """Runs ``decide()`` on the chief only and returns its JSON-able result on every worker.

    If ``decide`` raises on the chief, the chief re-raises its exception and
    every other worker raises one with the chief's message (a ``ValueError``
    stays a ``ValueError``, anything else becomes a ``RuntimeError``), so no
    worker is left waiting in a collective. Without a multi-worker strategy
    this is just ``decide()``.

    Args:
        strategy: the run's strategy (or None).
        decide: the chief's computation; returns a JSON-able value.

    Returns:
        The chief's value.
    """
    info = worker_info(strategy)
    if info.count == 1:
        return decide()
    failure: BaseException | None = None
    error = value = None
    if info.is_chief:
        try:
            value = decide()
        except Exception as e:  # noqa: BLE001 -- reported to every worker, then re-raised
            failure = e
            error = ["ValueError" if isinstance(e, ValueError) else "RuntimeError", f"{type(e).__name__}: {e}"]
    error, value = all_gather_json(strategy, [error, value])[0]
    if failure is not None:
        raise failure
    if error is not None:
        kind, message = error
        raise (ValueError if kind == "ValueError" else RuntimeError)(f"on the chief: {message}")
    return value


def write_chief_outputs(strategy: tf.distribute.Strategy | None, write: Callable[[], None]) -> None:
    """Runs ``write()`` (files of the run directory) on the chief; the other workers wait for it.

    The wait is a collective, so a non-chief worker neither exits while the
    chief still writes nor hangs if the chief fails: it raises the chief's
    error (:func:`chief_decides`).
    """

    def run() -> bool:
        write()
        return True

    chief_decides(strategy, run)


def claim_run_dir(model_dir: str, arch: Arch, strategy: tf.distribute.Strategy | None = None) -> str:
    """Creates ``model_dir`` and writes ``arch.json`` there (the chief only, under a multi-worker strategy).

    Args:
        model_dir: the run directory.
        arch: the architecture trained there.
        strategy: the run's strategy; under ``MultiWorkerMirroredStrategy``
            only the chief writes and every worker gets its verdict.

    Returns:
        The path of ``arch.json``.

    Raises:
        ValueError: ``model_dir`` holds the run of another architecture.
    """
    arch_path = os.path.join(model_dir, ARCH_FILE)

    def claim() -> str:
        os.makedirs(model_dir, exist_ok=True)
        if os.path.exists(arch_path) and load_arch(arch_path).to_dict() != arch.to_dict():
            raise ValueError(f"{model_dir} holds the final training of another architecture ({arch_path})")
        arch.to_json(arch_path)
        return arch_path

    return chief_decides(strategy, claim)


class EpochCheckpoints:
    """Checkpoints after every epoch, with the metrics file beside them.

    Args:
        model_dir: the run directory.
        keep: checkpoints kept.
        strategy: the run's strategy. Under ``MultiWorkerMirroredStrategy``
            the chief saves into ``model_dir/checkpoints`` and writes the
            metrics; the other workers save into a temporary directory they
            delete at once (TensorFlow needs every worker to save); every
            worker restores the chief's latest checkpoint.
        **trackables: what to save (``model=..., optimizer=...``).
    """

    def __init__(
        self, model_dir: str, keep: int = 2, strategy: tf.distribute.Strategy | None = None, **trackables: Any
    ):
        self.strategy = strategy
        self.worker = worker_info(strategy)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(epoch=self.epoch, **trackables)
        self.directory = os.path.join(model_dir, "checkpoints")
        self.keep = keep
        # Only the chief keeps (and prunes) checkpoints in the run directory.
        self.manager = None
        if self.worker.is_chief:
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=keep)
        self.metrics_path = os.path.join(model_dir, METRICS_FILE)

    @property
    def epochs_done(self) -> int:
        return int(self.epoch)

    def latest(self) -> tuple[str | None, dict | None]:
        """The chief's latest checkpoint and the metrics saved with it ((None, None): a fresh run).

        Every worker gets the chief's answer.

        Raises:
            ValueError: a checkpoint exists but its metrics file cannot be read.
        """

        def look() -> list:
            path = self.manager.latest_checkpoint
            if not path:
                return [None, None]
            try:
                with open(self.metrics_path, "r", encoding="utf-8") as f:
                    return [path, json.load(f)]
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path} has no readable {METRICS_FILE} beside it: {e}") from e

        path, metrics = chief_decides(self.strategy, look)
        return path, metrics

    def restore(self, latest: tuple[str | None, dict | None] | None = None) -> dict | None:
        """Restores the latest checkpoint; returns the metrics saved with it (None: fresh run).

        Args:
            latest: the result of :meth:`latest`, if already asked for.
        """
        path, saved = latest if latest is not None else self.latest()
        if not path:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        log.info("resumed %s after epoch %d", path, self.epochs_done)
        return saved

    def save(self, epochs_done: int, metrics: dict) -> None:
        """Checkpoints the state after ``epochs_done`` epochs, then writes ``metrics`` (the chief)."""
        self.epoch.assign(epochs_done)
        save_checkpoint(self.manager, self.checkpoint, self.worker, epochs_done)
        if self.worker.is_chief:
            atomic_write_json(self.metrics_path, metrics)
