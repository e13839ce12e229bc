"""The run directory of a final training: arch file, per-epoch checkpoints, metrics.

Shared by the final training of every kind of architecture (image
classifiers: :mod:`nas_tf.tasks.image.final`; language models:
:mod:`nas_tf.tasks.text.final`). A run directory holds

* ``arch.json`` -- the architecture being trained; a directory holding the run
  of another architecture is refused;
* ``checkpoints/`` -- model, optimizer and the number of finished epochs,
  saved after every epoch;
* ``metrics.json`` -- rewritten atomically with every checkpoint, so that the
  metrics of the restored epochs are never lost on resume;
* ``.lock`` -- held by the process training there (:class:`~nas_tf.utils.io.RunLock`):
  a second one started on the same directory stops at once.

Damage is recovered or refused with one line (:class:`~nas_tf.utils.io.RunDirError`):
a newest checkpoint that is missing or cannot be read gives way to the one
before it (at least two are kept; :func:`restore_newest`, also used by the
search loops), a damaged checkpoint state file is rebuilt from the
checkpoints present, and a missing or damaged ``metrics.json`` or
``arch.json`` is named with what to do.

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

import logging
import os
import re
import weakref
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from nas_tf.distribute.cluster import all_gather_json, save_checkpoint, worker_info
from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.io import (
    RunDirError,
    atomic_write_json,
    atomic_write_text,
    read_json_file,
    remove_stale_temporaries,
    take_run_dir,
)

log = logging.getLogger("nas_tf.final")

ARCH_FILE = "arch.json"
METRICS_FILE = "metrics.json"
STATE_FILE = "checkpoint"
# Checkpoints kept, at least: when the newest cannot be read, the one before it is there.
MIN_KEEP = 2
# Locks taken by claim_run_dir, handed over to the run's EpochCheckpoints.
_CLAIMS: dict[str, Any] = {}
# Temporaries of a final training's writes that a killed run leaves behind.
_FINAL_TEMPORARIES = ("arch.json", "metrics.json", "flags.json", "saved_model", "model.keras")


# ------------------------------------------------------------ checkpoints


def checkpoint_candidates(directory: str) -> list[tuple[int, str]]:
    """``[(number, prefix)]`` of the checkpoints in ``directory``, newest first.

    Those the state file (``checkpoint``) lists and any ``ckpt-N.index``
    found beside them (a state file that is damaged, or one a kill left one
    save behind).
    """
    prefixes: dict[int, str] = {}
    try:
        state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    except (ValueError, UnicodeDecodeError, tf.errors.OpError):
        state = None
    listed = list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path] if state else []
    try:
        found = [os.path.join(directory, f[: -len(".index")]) for f in os.listdir(directory) if f.endswith(".index")]
    except OSError:
        found = []
    for prefix in listed + found:
        match = re.search(r"-(\d+)$", prefix)
        if match:
            prefixes[int(match.group(1))] = prefix
    return sorted(prefixes.items(), reverse=True)


def unreadable(prefix: str) -> str | None:
    """Why the checkpoint ``prefix`` cannot be restored (None: every tensor in it reads back).

    Reads the index and every tensor (their checksums are checked), so a
    damaged checkpoint is found before any variable is assigned from it.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 -- any failure to read is the reason
        text = " ".join(str(getattr(e, "message", e) or type(e).__name__).split())
        if "Unsuccessful TensorSliceReader" in text or "Failed to find any matching files" in text:
            text = "its files are missing"
        return text[:160]
    return None


def newest_readable(
    directory: str, accept: Callable[[int], bool] = lambda number: True
) -> tuple[str | None, int | None, list[tuple[str, str]]]:
    """The newest checkpoint of ``directory`` that reads back.

    Args:
        directory: the checkpoint directory.
        accept: which checkpoint numbers may be used.

    Returns:
        ``(prefix, number, skipped)``: ``(None, None, skipped)`` when there is
        no checkpoint to use; ``skipped`` lists ``(prefix, reason)`` of the
        newer ones that could not be read.
    """
    skipped = []
    for number, prefix in checkpoint_candidates(directory):
        if not accept(number):
            continue
        reason = unreadable(prefix)
        if reason is None:
            return prefix, number, skipped
        skipped.append((prefix, reason))
    return None, None, skipped


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, what: str = "the run") -> str | None:
    """Restores the newest readable checkpoint of ``directory`` into ``checkpoint``; returns its prefix.

    A newest checkpoint that is missing or damaged is passed over for the one
    before it (and a warning says so).

    Returns:
        The prefix restored, or None when ``directory`` holds no checkpoint.

    Raises:
        RunDirError: there are checkpoints but none can be read.
    """
    prefix, _, skipped = newest_readable(directory)
    report_skipped(skipped, prefix)
    if prefix is None:
        if skipped:
            raise no_readable_checkpoint(directory, skipped, what)
        return None
    checkpoint.restore(prefix).assert_existing_objects_matched()
    return prefix


def report_skipped(skipped: list[tuple[str, str]], used: str | None) -> None:
    for prefix, reason in skipped:
        then = f"resuming from the one before it, {os.path.basename(used)}" if used else "no older checkpoint"
        log.warning("checkpoint %s cannot be read (%s): %s", prefix, reason, then)


def no_readable_checkpoint(directory: str, skipped: list[tuple[str, str]], what: str) -> RunDirError:
    prefix, reason = skipped[0]
    return RunDirError(
        f"{directory}: no checkpoint can be read ({os.path.basename(prefix)}: {reason}"
        f"{f'; and {len(skipped) - 1} older' if len(skipped) > 1 else ''}), so {what} cannot resume; move "
        f"{directory} away to start over, or use another directory"
    )


def repair_state_file(directory: str) -> bool:
    """Rewrites a damaged checkpoint state file (``checkpoint``) from the checkpoints found; True if it did.

    A state file that does not parse makes TensorFlow ignore every checkpoint
    (a silent restart); it is rebuilt from the ``ckpt-N.index`` files present.
    """
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return False
    try:
        if tf.train.get_checkpoint_state(directory) is not None:
            return False
    except (ValueError, UnicodeDecodeError, tf.errors.OpError):
        pass
    found = [p for _, p in checkpoint_candidates(directory) if os.path.exists(p + ".index")]
    if not found:
        return False
    names = [os.path.basename(p) for p in reversed(found)]
    text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names)
    atomic_write_text(path, text)
    log.warning("%s was damaged: rewritten from the checkpoints there (%s)", path, ", ".join(names))
    return True


def make_manager(checkpoint: tf.train.Checkpoint, directory: str, keep: int) -> tf.train.CheckpointManager:
    """A ``CheckpointManager`` keeping ``max(keep, 2)`` checkpoints, after repairing a damaged state file."""
    repair_state_file(directory)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max(int(keep), MIN_KEEP))


# ---------------------------------------------------------- multi-worker


def chief_decides(strategy: tf.distribute.Strategy | None, decide: Callable[[], Any]) -> Any:
    """Runs ``decide()`` on the chief only and returns its JSON-able result on every worker.

    If ``decide`` raises on the chief, the chief re-raises its exception and
    every other worker raises one with the chief's message (a
    :class:`~nas_tf.utils.io.RunDirError` or ``ValueError`` keeps its class,
    anything else becomes a ``RuntimeError``), so no
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
            kind = "RunDirError" if isinstance(e, RunDirError) else "ValueError" if isinstance(e, ValueError) else "RuntimeError"
            error = [kind, f"{type(e).__name__}: {e}"]
    error, value = all_gather_json(strategy, [error, value])[0]
    if failure is not None:
        raise failure
    if error is not None:
        kind, message = error
        raise {"RunDirError": RunDirError, "ValueError": ValueError}.get(kind, RuntimeError)(f"on the chief: {message}")
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
    """Creates ``model_dir``, takes its lock and writes ``arch.json`` there (the chief only, under a multi-worker strategy).

    The chief holds the directory's lock (:func:`nas_tf.utils.io.take_run_dir`)
    until the process ends or :func:`nas_tf.utils.io.release_run_dirs`, so a
    second training started on the same directory stops at once; the
    temporaries a killed run left (a half-written export) are removed.

    Args:
        model_dir: the run directory.
        arch: the architecture trained there.
        strategy: the run's strategy; under ``MultiWorkerMirroredStrategy``
            only the chief writes and every worker gets its verdict.

    Returns:
        The path of ``arch.json``.

    Raises:
        RunDirError: ``model_dir`` holds the run of another architecture, its
            ``arch.json`` is damaged, or another process runs there.
    """
    arch_path = os.path.join(model_dir, ARCH_FILE)

    def claim() -> str:
        lock = take_run_dir(model_dir)
        if os.path.abspath(model_dir) in _CLAIMS:
            lock.release()  # claimed again before its checkpoints were made: one hold is enough
        _CLAIMS[os.path.abspath(model_dir)] = lock
        for name in remove_stale_temporaries(model_dir, _FINAL_TEMPORARIES):
            log.info("removed %s, left by an interrupted run", os.path.join(model_dir, name))
        old = os.path.join(model_dir, "saved_model.old")
        if os.path.isdir(old) and os.path.isdir(os.path.join(model_dir, "saved_model")):
            import shutil

            shutil.rmtree(old, ignore_errors=True)  # an interrupted export's copy of the previous one
        if os.path.exists(arch_path):
            from nas_tf.spaces.arch import ArchError

            try:
                previous = load_arch(arch_path).to_dict()
            except ArchError as e:
                raise RunDirError(
                    f"{e}; {model_dir} is the final training of the arch in {ARCH_FILE}: put it back, or use another "
                    "directory"
                ) from None
            if previous != arch.to_dict():
                raise RunDirError(
                    f"{model_dir} holds the final training of another architecture ({arch_path}); use another "
                    "directory, or train that arch"
                )
        arch.to_json(arch_path)
        return arch_path

    return chief_decides(strategy, claim)


class EpochCheckpoints:
    """Checkpoints after every epoch, with the metrics file beside them.

    ``metrics.json`` is written after each checkpoint; on resume the
    checkpoint of the epoch the metrics record is restored (a kill between
    the two writes leaves the metrics one epoch behind: that epoch is trained
    again), and a newest checkpoint that cannot be read is passed over for the
    one before it (at least two are kept), the metrics cut back to its epoch.

    Args:
        model_dir: the run directory.
        keep: checkpoints kept (at least 2).
        strategy: the run's strategy. Under ``MultiWorkerMirroredStrategy``
            the chief saves into ``model_dir/checkpoints`` and writes the
            metrics; the other workers save into a temporary directory they
            delete at once (TensorFlow needs every worker to save); every
            worker restores the chief's choice of checkpoint.
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
        self.keep = max(int(keep), MIN_KEEP)
        # Only the chief keeps (and prunes) checkpoints in the run directory; it holds the
        # directory's lock (taken by claim_run_dir) until this object is gone.
        self.manager = None
        if self.worker.is_chief:
            lock = _CLAIMS.pop(os.path.abspath(model_dir), None) or take_run_dir(model_dir)
            weakref.finalize(self, lock.release)
            self.manager = make_manager(self.checkpoint, self.directory, self.keep)
        self.metrics_path = os.path.join(model_dir, METRICS_FILE)

    @property
    def epochs_done(self) -> int:
        return int(self.epoch)

    def latest(self) -> tuple[str | None, dict | None]:
        """The chief's checkpoint to resume from and the metrics saved with it ((None, None): a fresh run).

        Every worker gets the chief's answer.

        Raises:
            RunDirError: the metrics file is missing or damaged while
                checkpoints exist, metrics exist without any checkpoint, or no
                checkpoint can be read.
        """

        def look() -> list:
            candidates = checkpoint_candidates(self.directory)
            advice = f"put it back, or move {os.path.dirname(self.metrics_path)} away to train from scratch"
            metrics = read_json_file(self.metrics_path, advice=advice, expect=dict)
            if not candidates:
                if metrics and metrics.get("epochs_done"):
                    raise RunDirError(
                        f"{self.metrics_path} records {metrics['epochs_done']} trained epochs but {self.directory} "
                        f"holds no checkpoint: the training cannot resume; {advice}"
                    )
                return [None, None]
            if metrics is None:
                raise RunDirError(f"{self.metrics_path} is missing beside the checkpoints in {self.directory}; {advice}")
            done = metrics.get("epochs_done")
            if isinstance(done, bool) or not isinstance(done, int) or not isinstance(metrics.get("history"), dict):
                raise RunDirError(f"{self.metrics_path}: field 'epochs_done' or 'history' is damaged; {advice}")
            prefix, number, skipped = newest_readable(self.directory, accept=lambda n: n <= done)
            report_skipped(skipped, prefix)
            if prefix is None:
                if skipped:
                    raise no_readable_checkpoint(self.directory, skipped, "the training")
                raise RunDirError(
                    f"{self.metrics_path} records {done} epochs but {self.directory} holds only later checkpoints; "
                    f"{advice}"
                )
            if number < done:
                metrics = _cut_metrics(metrics, number)
                log.warning("%s: the metrics of epochs %d-%d are dropped with their checkpoint (trained again)",
                            self.metrics_path, number + 1, done)
            return [prefix, metrics]

        path, metrics = chief_decides(self.strategy, look)
        return path, metrics

    def restore(self, latest: tuple[str | None, dict | None] | None = None) -> dict | None:
        """Restores the checkpoint :meth:`latest` chose; returns the metrics saved with it (None: fresh run).

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
        from nas_tf.utils.interrupts import critical

        self.epoch.assign(epochs_done)
        with critical():  # a checkpoint and its metrics, or neither
            save_checkpoint(self.manager, self.checkpoint, self.worker, epochs_done)
            if self.worker.is_chief:
                atomic_write_json(self.metrics_path, metrics)


def _cut_metrics(metrics: dict, epochs: int) -> dict:
    """``metrics`` as they were after ``epochs`` epochs (per-epoch lists cut, the step count in proportion)."""
    done = metrics["epochs_done"]
    history = dict(metrics["history"])
    for key, value in history.items():
        if isinstance(value, list) and len(value) >= done:
            history[key] = value[:epochs] if len(value) == done else value[: len(value) * epochs // max(done, 1)]
    if isinstance(history.get("steps"), int) and done:
        history["steps"] = history["steps"] * epochs // done
    return {**metrics, "epochs_done": epochs, "history": history}
