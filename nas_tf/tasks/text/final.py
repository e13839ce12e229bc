"""Final training of a discovered recurrent cell as a language model (resumable).

``train_final_lm`` builds a :class:`~nas_tf.models.LanguageModel` of the cell
(any recurrent arch: ``nas_rnn`` realised by :class:`~nas_tf.layers.TreeCell`,
``enas_rnn`` by :class:`~nas_tf.layers.EnasRnnCell`), trains it with SGD and
gradient clipping by truncated BPTT, reports validation and test perplexity,
and writes into ``model_dir`` (the same layout as the image path,
:mod:`nas_tf.tasks.image.final`):

* ``arch.json`` -- the trained cell;
* ``checkpoints/`` -- model, optimizer and epoch after every epoch: re-running
  resumes from the last finished epoch;
* ``metrics.json`` -- per-epoch train and validation perplexity, test
  perplexity, parameter count (rewritten atomically after every epoch);
* ``model.keras`` -- the trained model (Keras format; loads after
  ``import nas_tf``): int32 token ids to logits and states;
* ``vocab.txt`` -- the vocabulary: line ``i`` is the word of id ``i``;
* ``saved_model/`` -- the SavedModel export (``export=True``), loadable
  without nas_tf: the signature ``serving_default(tokens)`` -> ``logits``,
  ``probabilities``; ``serve_with_state(tokens, *states)`` to carry the
  recurrent states across calls; ``serve(tokens)``; the vocabulary in
  ``assets.extra/vocab.txt``.

Both are written by :func:`nas_tf.export.export`, which loads each back and
compares it with the trained model (``metrics.json``: ``exports``).

Under a ``tf.distribute`` strategy of several replicas the language model is
trained data-parallel over the rows of every window
(:func:`~nas_tf.tasks.text.train.train_language_model`); under
``MultiWorkerMirroredStrategy`` only the chief writes ``model_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from typing import Any

import keras
import tensorflow as tf

from nas_tf.data.text import TextCorpus
from nas_tf.models.language_model import FINAL_MODEL_OPTIONS, build_language_model
from nas_tf.spaces.arch import Arch
from nas_tf.tasks.text.child import lm_sgd
from nas_tf.tasks.text.train import LMTrainResult, evaluate_perplexity, train_language_model
from nas_tf.training.checkpointing import EpochCheckpoints, claim_run_dir, write_chief_outputs
from nas_tf.training.optimizer import SGDConfig
from nas_tf.training.summaries import TrainingSummaries, learning_rate
from nas_tf.utils.io import atomic_write_json

log = logging.getLogger("nas_tf.final")


@dataclasses.dataclass(frozen=True)
class FinalLMConfig:
    """Settings of the final training of a recurrent cell.

    Args:
        epochs: training epochs.
        batch_size: rows read in parallel.
        bptt: steps of truncated back-propagation through time.
        optimizer: SGD settings (by default lr 20, no momentum, clipping at
            global norm 0.25, one cosine period to ``min_learning_rate``).
        eval_batch_size: rows read in parallel for validation and test.
        seed: seed of initialisation and dropout.
        model_options: :class:`~nas_tf.models.LanguageModel` arguments
            (``units``, ``num_layers``, ``tie_weights``, dropouts, ...).
    """

    epochs: int = 10
    batch_size: int = 32
    bptt: int = 35
    optimizer: SGDConfig = dataclasses.field(default_factory=lambda: lm_sgd(schedule="cosine"))
    eval_batch_size: int = 10
    seed: int = 0
    model_options: dict[str, Any] = dataclasses.field(
        default_factory=lambda: dict(FINAL_MODEL_OPTIONS)
    )

    def __post_init__(self):
        for name in ("epochs", "batch_size", "bptt", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def train_final_lm(
    arch: Arch,
    corpus: TextCorpus,
    model_dir: str,
    config: FinalLMConfig = FinalLMConfig(),
    export: bool = True,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Trains the language model of a recurrent cell from scratch and saves everything in ``model_dir``.

    Args:
        arch: the cell (an arch of a recurrent space, e.g. ``nas_tf.load_arch("nascell")``).
        corpus: the text.
        model_dir: run directory; an interrupted run there is resumed.
        config: training settings.
        export: also export a SavedModel to ``model_dir/saved_model``.
        strategy: a ``tf.distribute.Strategy`` (:func:`nas_tf.distribute.make_strategy`);
            ``config.batch_size`` is then the rows of one replica (global rows:
            per-replica x replicas). Under ``MultiWorkerMirroredStrategy``
            every worker calls this function with the same arguments and the
            chief alone writes ``model_dir``.

    Returns:
        The metrics written to ``metrics.json``.

    Example:

    >>> metrics = train_final_lm(nas_tf.load_arch("best_arch.json"), load_pydoc_corpus(), "runs/lm")  # doctest: +SKIP
    >>> metrics["test_perplexity"]  # doctest: +SKIP
    """
    from nas_tf.models.language_model import recurrent_spaces

    if arch.space not in recurrent_spaces():
        raise ValueError(f"train_final_lm trains recurrent cells ({', '.join(recurrent_spaces())}), got space {arch.space!r}")
    from nas_tf.distribute import num_replicas, worker_info

    claim_run_dir(model_dir, arch, strategy)
    chief = worker_info(strategy).is_chief
    replicas = num_replicas(strategy)
    rows = config.batch_size * replicas
    keras.utils.set_random_seed(config.seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_language_model(corpus.vocab_size, arch, seed=config.seed, **config.model_options)
        steps = corpus.num_windows("train", rows, config.bptt)
        optimizer = config.optimizer.make(total_steps=max(1, steps * config.epochs))
        optimizer.build(model.trainable_variables)
    checkpoints = EpochCheckpoints(model_dir, strategy=strategy, model=model, optimizer=optimizer)
    params = int(model.count_params())
    base = {
        "arch_file": "arch.json",
        "params": params,
        "dataset": corpus.name,
        "vocab_size": corpus.vocab_size,
        "config": dataclasses.asdict(config),
    }
    latest = checkpoints.latest()
    saved = None
    if latest[0]:
        previous = latest[1]
        if (previous.get("dataset"), previous.get("vocab_size")) != (corpus.name, corpus.vocab_size):
            raise ValueError(
                f"{model_dir} holds a run on dataset {previous.get('dataset')!r} "
                f"(vocabulary {previous.get('vocab_size')}), not {corpus.name!r} ({corpus.vocab_size})"
            )
        saved = checkpoints.restore(latest)
    result = LMTrainResult(**saved["history"]) if saved else LMTrainResult()

    summaries = TrainingSummaries(model_dir, write=chief)
    if checkpoints.epochs_done == 0:
        summaries.graph(model, tf.TensorSpec((None, None), tf.int32))

    def save_epoch(e: int, r: LMTrainResult) -> None:
        checkpoints.save(e + 1, {**base, "epochs_done": e + 1, "history": dataclasses.asdict(r)})
        summaries.epoch(
            {"perplexity": r.train_perplexity[-1], "val_perplexity": r.val_perplexity[-1] if r.val_perplexity else None,
             "learning_rate": learning_rate(optimizer)},
            e + 1,
        )
        log.info(
            "epoch %d/%d: train_ppl %.2f val_ppl %.2f (%.0fs)",
            e + 1, config.epochs, r.train_perplexity[-1], r.val_perplexity[-1], r.wall_time,
        )

    start = time.time()
    if checkpoints.epochs_done < config.epochs:
        result = train_language_model(
            model,
            corpus,
            epochs=config.epochs,
            batch_size=config.batch_size,
            bptt=config.bptt,
            optimizer=optimizer,
            weight_decay=config.optimizer.weight_decay,
            eval_batch_size=config.eval_batch_size,
            on_epoch_end=save_epoch,
            initial_epoch=checkpoints.epochs_done,
            result=result,
            strategy=strategy,
        )
    test_ppl = evaluate_perplexity(model, corpus, "test", config.eval_batch_size, config.bptt)
    metrics = {
        **base,
        "epochs_done": config.epochs,
        "history": dataclasses.asdict(result),
        "val_perplexity": result.val_perplexity[-1] if result.val_perplexity else None,
        "test_perplexity": test_ppl if math.isfinite(test_ppl) else None,
        "wall_time": result.wall_time,
    }
    if export:
        metrics["saved_model"] = "saved_model"

    def write_outputs() -> None:
        saved_model = model
        if strategy is not None and (replicas > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)):
            # A plain copy (variables outside the strategy) is saved: no
            # distributed variables in the files, no collective to join.
            saved_model = build_language_model(corpus.vocab_size, arch, seed=config.seed, **config.model_options)
            saved_model.set_weights(model.get_weights())
        from nas_tf.export import export as write_export
        from nas_tf.export.exporter import token_rows

        # model.keras with vocab.txt beside it; the SavedModel ships the vocabulary too.
        check = token_rows(corpus)
        vocab = corpus.vocab
        reports = {"keras": write_export(saved_model, os.path.join(model_dir, "model.keras"), "keras", vocab=vocab,
                                         check_inputs=check)}
        if export:
            reports["saved_model"] = write_export(
                saved_model, os.path.join(model_dir, "saved_model"), "saved_model", vocab=vocab, check_inputs=check
            )
        metrics["exports"] = {k: {"max_abs_diff": r.max_abs_diff} for k, r in reports.items()}
        metrics["serving"] = {"input": "tokens", "dtype": "int32", "vocabulary": "vocab.txt",
                              "outputs": ["logits", "probabilities"]}
        atomic_write_json(checkpoints.metrics_path, metrics)

    write_chief_outputs(strategy, write_outputs)
    if chief:
        log.info("test perplexity %.2f (%d parameters, %.0fs)", test_ppl, params, time.time() - start)
    return metrics
