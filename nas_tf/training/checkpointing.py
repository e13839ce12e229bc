"""The run directory of a final training: arch file, per-epoch checkpoints, metrics.

Shared by the final training of every kind of architecture (image
classifiers: :mod:`nas_tf.training.final`; language models:
:mod:`nas_tf.training.final_lm`). A run directory holds

* ``arch.json`` -- the architecture being trained; a directory holding the run
  of another architecture is refused;
* ``checkpoints/`` -- model, optimizer and the number of finished epochs,
  saved after every epoch;
* ``metrics.json`` -- rewritten atomically with every checkpoint, so that the
  metrics of the restored epochs are never lost on resume.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf

from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.utils.io import atomic_write_json

log = logging.getLogger("nas_tf.final")

ARCH_FILE = "arch.json"
METRICS_FILE = "metrics.json"


def claim_run_dir(model_dir: str, arch: Arch) -> str:
    """Creates ``model_dir`` and writes ``arch.json`` there.

    Raises:
        ValueError: ``model_dir`` holds the run of another architecture.
    """
    os.makedirs(model_dir, exist_ok=True)
    arch_path = os.path.join(model_dir, ARCH_FILE)
    if os.path.exists(arch_path) and load_arch(arch_path).to_dict() != arch.to_dict():
        raise ValueError(f"{model_dir} holds the final training of another architecture ({arch_path})")
    arch.to_json(arch_path)
    return arch_path


class EpochCheckpoints:
    """Checkpoints after every epoch, with the metrics file beside them.

    Args:
        model_dir: the run directory.
        keep: checkpoints kept.
        **trackables: what to save (``model=..., optimizer=...``).
    """

    def __init__(self, model_dir: str, keep: int = 2, **trackables: Any):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(epoch=self.epoch, **trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(model_dir, "checkpoints"), max_to_keep=keep)
        self.metrics_path = os.path.join(model_dir, METRICS_FILE)

    @property
    def epochs_done(self) -> int:
        return int(self.epoch)

    def restore(self) -> dict | None:
        """Restores the latest checkpoint; returns the metrics saved with it (None: fresh run)."""
        latest = self.manager.latest_checkpoint
        if not latest:
            return None
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        with open(self.metrics_path, "r", encoding="utf-8") as f:
            saved = json.load(f)
        log.info("resumed %s after epoch %d", latest, self.epochs_done)
        return saved

    def save(self, epochs_done: int, metrics: dict) -> None:
        """Checkpoints the state after ``epochs_done`` epochs, then writes ``metrics``."""
        self.epoch.assign(epochs_done)
        self.manager.save(checkpoint_number=epochs_done)
        atomic_write_json(self.metrics_path, metrics)
