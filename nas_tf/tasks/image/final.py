"""Final training of a discovered image architecture from scratch (resumable).

``train_final_image`` builds the arch with its space's builder, trains it
with SGD (cosine schedule by default), evaluates validation and test
accuracy, and writes into ``model_dir``:

* ``arch.json`` -- the trained architecture;
* ``checkpoints/`` -- model, optimizer and epoch after every epoch: re-running
  resumes from the last finished epoch;
* ``metrics.json`` -- per-epoch training and validation metrics, final test
  accuracy, parameter count (rewritten atomically after every epoch);
* ``model.keras`` -- the trained model (Keras format; loads after
  ``import nas_tf``): the raw images users hold (``data.raw_pixels``: the
  digits as float counts 0-16, CIFAR-10 as uint8 0-255) to logits, the
  dataset's preprocessing inside (layer ``preprocessing``), then the
  network (:func:`nas_tf.export.network_of` returns it: standardised images
  to logits), auxiliary heads left out;
* ``saved_model/`` -- the SavedModel export (``export=True``): signature
  ``serving_default(images)`` -> ``logits``, ``probabilities`` on the same
  raw images, loadable without nas_tf (:func:`nas_tf.export.export`).

Both are written by :func:`nas_tf.export.export`, which loads each back and
compares it with the trained model (``metrics.json``: ``exports``).

Under ``MultiWorkerMirroredStrategy`` every worker runs this same function
on its share of every global batch; only the chief writes ``model_dir``
(assumed on a filesystem all workers share), and re-running the same command
on every worker resumes from the chief's last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from typing import Any

import keras
import tensorflow as tf

from nas_tf.data.images import ImageData
from nas_tf.layers.drop_path import attach_training_progress
from nas_tf.models.registry import build_image_model
from nas_tf.spaces.arch import Arch
from nas_tf.tasks.image.train import TrainResult, evaluate_classifier, train_classifier
from nas_tf.training.checkpointing import EpochCheckpoints, claim_run_dir, write_chief_outputs
from nas_tf.training.optimizer import SGDConfig
from nas_tf.training.summaries import TrainingSummaries, learning_rate
from nas_tf.utils.io import atomic_write_json

log = logging.getLogger("nas_tf.final")


@dataclasses.dataclass(frozen=True)
class FinalImageConfig:
    """Settings of a final training run.

    Args:
        epochs: training epochs.
        batch_size: batch size.
        optimizer: SGD settings (by default lr 0.1, Nesterov momentum 0.9,
            weight decay 1e-4 on the kernels, one cosine period to
            ``min_learning_rate``).
        train_on_validation: also train on the validation split (then the
            validation accuracy is not a held-out number).
        cutout: CutOut square side (0: off).
        seed: seed of initialisation, order and augmentation.
        aux_weight: loss weight of auxiliary heads, if the model has any.
            ScheduledDropPath layers, if any, follow the training progress.
        builder_options: extra keyword arguments of the model builder.
    """

    epochs: int = 20
    batch_size: int = 64
    optimizer: SGDConfig = dataclasses.field(default_factory=lambda: SGDConfig(schedule="cosine"))
    train_on_validation: bool = False
    cutout: int = 0
    seed: int = 0
    aux_weight: float = 0.4
    builder_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")


def _build(arch: Arch, data: ImageData, config: FinalImageConfig) -> keras.Model:
    return build_image_model(
        arch, data.input_shape, data.num_classes, weight_decay=config.optimizer.weight_decay, **config.builder_options
    )


def _merged(data: ImageData, config: FinalImageConfig) -> ImageData:
    if config.cutout:
        data = data.with_augmentation(cutout=config.cutout)
    if config.train_on_validation and "validation" in data.splits:
        import numpy as np

        splits = dict(data.splits)
        x = np.concatenate([splits["train"][0], splits["validation"][0]])
        y = np.concatenate([splits["train"][1], splits["validation"][1]])
        splits["train"] = (x, y)
        data = dataclasses.replace(data, splits=splits)
    return data


def train_final_image(
    arch: Arch,
    data: ImageData,
    model_dir: str,
    config: FinalImageConfig = FinalImageConfig(),
    export: bool = True,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Trains ``arch`` from scratch on ``data`` and saves everything in ``model_dir``.

    Args:
        arch: the architecture (any image space).
        data: the dataset.
        model_dir: run directory; an interrupted run there is resumed.
        config: training settings.
        export: also export a SavedModel to ``model_dir/saved_model``.
        strategy: a ``tf.distribute.Strategy`` (:func:`nas_tf.distribute.make_strategy`);
            ``config.batch_size`` is then the per-replica batch (global
            batch: per-replica x replicas). Under ``MultiWorkerMirroredStrategy``
            every worker calls this function with the same arguments; the
            chief alone writes ``model_dir`` (checkpoints, metrics,
            ``model.keras``, ``saved_model/``), the others return the same
            metrics.

    Returns:
        The metrics written to ``metrics.json``.

    Example:

    >>> metrics = train_final_image(nas_tf.load_arch("best_arch.json"), load_digits(), "runs/final")  # doctest: +SKIP
    """
    from nas_tf.distribute import num_replicas, worker_info

    data = _merged(data, config)
    claim_run_dir(model_dir, arch, strategy)
    chief = worker_info(strategy).is_chief
    keras.utils.set_random_seed(config.seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = _build(arch, data, config)
        steps = -(-data.size("train") // (config.batch_size * num_replicas(strategy)))
        optimizer = config.optimizer.make(total_steps=steps * config.epochs)
        optimizer.build(model.trainable_variables)
    checkpoints = EpochCheckpoints(model_dir, strategy=strategy, model=model, optimizer=optimizer)
    saved = checkpoints.restore()
    result = TrainResult(**saved["history"]) if saved else TrainResult()
    params = int(model.count_params())
    base = {"arch_file": "arch.json", "params": params, "dataset": data.name, "config": dataclasses.asdict(config)}

    summaries = TrainingSummaries(model_dir, write=chief)
    if checkpoints.epochs_done == 0:
        summaries.graph(model)

    def save_epoch(e: int, r: TrainResult) -> None:
        checkpoints.save(e + 1, {**base, "epochs_done": e + 1, "history": dataclasses.asdict(r)})
        summaries.epoch(
            {"loss": r.train_loss[-1], "accuracy": r.train_accuracy[-1],
             "val_loss": r.val_loss[-1] if r.val_loss else None,
             "val_accuracy": r.val_accuracy[-1] if r.val_accuracy else None,
             "learning_rate": learning_rate(optimizer)},
            e + 1,
        )
        val = f" val_acc {r.val_accuracy[-1]:.4f}" if r.val_accuracy else ""
        log.info(
            "epoch %d/%d: loss %.4f train_acc %.4f%s (%.0fs)",
            e + 1, config.epochs, r.train_loss[-1], r.train_accuracy[-1], val, r.wall_time,
        )

    has_validation = "validation" in data.splits and not config.train_on_validation
    start = time.time()
    if checkpoints.epochs_done < config.epochs:
        result = train_classifier(
            model,
            data,
            epochs=config.epochs,
            batch_size=config.batch_size,
            optimizer=optimizer,
            seed=config.seed,
            eval_split="validation" if has_validation else None,
            aux_weight=config.aux_weight,
            progress=attach_training_progress(model),
            on_epoch_end=save_epoch,
            initial_epoch=checkpoints.epochs_done,
            result=result,
            strategy=strategy,
        )
    test_loss, test_acc = evaluate_classifier(model, data.batches("test", 256))
    metrics = {
        **base,
        "epochs_done": config.epochs,
        "history": dataclasses.asdict(result),
        "val_accuracy": result.val_accuracy[-1] if result.val_accuracy else None,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "wall_time": result.wall_time,
    }
    if export:
        metrics["saved_model"] = "saved_model"

    def write_outputs() -> None:
        saved = model
        if strategy is not None and (
            num_replicas(strategy) > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        ):
            # A plain copy (variables outside the strategy, batch norm not
            # synchronised) is saved: no distributed variables in the files,
            # no collective the other workers would have to join.
            saved = _build(arch, data, config)
            saved.set_weights(model.get_weights())
        # What is saved serves the raw images users hold: the dataset's preprocessing
        # in front of the network, auxiliary heads (training only) left out.
        from nas_tf.export import export as write_export
        from nas_tf.export import image_serving_model

        serving = image_serving_model(saved, data.raw_pixels)
        check = data.raw_images("test")[:64]
        reports = {"keras": write_export(serving, os.path.join(model_dir, "model.keras"), "keras", check_inputs=check)}
        if export:
            reports["saved_model"] = write_export(
                serving, os.path.join(model_dir, "saved_model"), "saved_model", check_inputs=check
            )
        metrics["exports"] = {k: {"max_abs_diff": r.max_abs_diff, "agreement": r.agreement} for k, r in reports.items()}
        metrics["serving"] = {"input": "images", "dtype": data.raw_pixels.dtype, "max_value": data.raw_pixels.max_value,
                              "outputs": ["logits", "probabilities"]}
        atomic_write_json(checkpoints.metrics_path, metrics)

    write_chief_outputs(strategy, write_outputs)
    if chief:
        log.info("test accuracy %.4f (%d parameters, %.0fs)", test_acc, params, time.time() - start)
    return metrics
