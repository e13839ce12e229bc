"""Training and evaluating word-level language models (children and final runs).

Truncated back-propagation through time with carried state (Zaremba et al.
2014): every split is cut into ``batch_size`` contiguous rows and read in
windows of ``bptt`` steps; the RNN state at the end of one window is the
initial state of the next (gradients stop at the window border) and is reset
to zero at the start of every epoch and of every evaluation. Perplexity is
``exp(mean negative log-likelihood per token)``.

Like :mod:`nas_tf.tasks.image.train` this is a custom loop: a child whose
loss becomes NaN stops at once with :class:`ChildDiverged`, and the validation
perplexity of every epoch feeds the reward.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from nas_tf.data.text import TextCorpus
from nas_tf.search.evaluator import ChildDiverged
from nas_tf.training.steps import PerModel, clip_all_reduced, is_distributed


@dataclasses.dataclass
class LMTrainResult:
    """Per-epoch metrics of one language-model training run."""

    train_perplexity: list[float] = dataclasses.field(default_factory=list)
    val_perplexity: list[float] = dataclasses.field(default_factory=list)
    steps: int = 0
    wall_time: float = 0.0


def _specs(model) -> tuple:
    tokens = tf.TensorSpec((None, None), tf.int32)
    states = [tf.TensorSpec((None, s), tf.float32) for s in model.state_sizes()]
    return tokens, tokens, states


def _make_eval_step(model):
    def eval_step(x, y, states):
        logits, new_states = model(x, states=states, training=False)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        return tf.reduce_sum(loss), new_states

    return tf.function(PerModel(eval_step), input_signature=_specs(model))


def evaluate_perplexity(
    model, corpus: TextCorpus, split: str = "validation", batch_size: int = 10, bptt: int = 35, eval_fn=None
) -> float:
    """Perplexity of ``model`` on a split, reading it in order with carried state.

    Args:
        model: a :class:`~nas_tf.models.LanguageModel` (or any model with the
            same call and ``initial_states``).
        corpus: the corpus.
        split: the split to read.
        batch_size: rows read in parallel.
        bptt: window length.
        eval_fn: a compiled evaluation step (made here if None).

    Returns:
        ``exp(total negative log-likelihood / tokens)``.
    """
    eval_fn = eval_fn or _make_eval_step(model)
    states = model.initial_states(batch_size)
    total, count = 0.0, 0
    for x, y in corpus.windows(split, batch_size, bptt):
        loss_sum, states = eval_fn(tf.constant(x), tf.constant(y), states)
        total += float(loss_sum)
        count += y.size
    if count == 0:
        raise ValueError(f"split {split!r} of {corpus.name!r} is empty")
    mean = total / count
    return math.exp(mean) if mean < 700 else math.inf


def train_language_model(
    model,
    corpus: TextCorpus,
    *,
    epochs: int,
    batch_size: int,
    bptt: int,
    optimizer: keras.optimizers.Optimizer,
    weight_decay: float = 0.0,
    eval_split: str | None = "validation",
    eval_batch_size: int = 10,
    steps_per_epoch: int | None = None,
    on_epoch_end: Callable[[int, LMTrainResult], None] | None = None,
    initial_epoch: int = 0,
    result: LMTrainResult | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> LMTrainResult:
    """Trains a language model with truncated BPTT and evaluates it every epoch.

    Under a ``strategy`` with several replicas (model and optimizer built in
    its scope) every window is data-parallel over its rows: ``batch_size`` is
    the rows of one replica, the split is cut into ``batch_size x replicas``
    rows (exactly as one device reading that many rows) and replica ``r``
    reads rows ``r * batch_size ...`` and carries their state; the loss is
    averaged over all the tokens of the global window, and the gradients are
    all-reduced before the optimizer's clipping (``global_clipnorm``), so a
    step equals a one-device step on the global window. Under
    ``MultiWorkerMirroredStrategy`` every worker runs this same loop and reads
    the whole split (its replicas keep their rows); evaluation runs on every
    worker on the whole split (no collectives).

    Args:
        model: a :class:`~nas_tf.models.LanguageModel`, built.
        corpus: the corpus (``"train"`` split, and ``eval_split``).
        epochs: epochs to reach (counting ``initial_epoch``).
        batch_size: rows read in parallel.
        bptt: window length of truncated back-propagation through time.
        optimizer: the optimizer (built here); clip gradients through its
            ``global_clipnorm``.
        weight_decay: L2 penalty ``weight_decay / 2 * sum(w ** 2)`` over all
            trainable weights.
        eval_split: split evaluated after every epoch (None: no evaluation).
        eval_batch_size: rows of the evaluation.
        steps_per_epoch: cap on the windows of an epoch; consecutive epochs
            then read consecutive stretches of the training split.
        on_epoch_end: called with ``(epoch, result so far)``.
        initial_epoch: epochs already done (resuming).
        result: metrics of the epochs already done, extended in place.
        strategy: the ``tf.distribute.Strategy`` the model and optimizer were
            built under (None: the default device).

    Returns:
        An :class:`LMTrainResult`.

    Raises:
        ChildDiverged: the training loss or the validation perplexity is not finite.
    """
    if epochs < 1 or batch_size < 1 or bptt < 1:
        raise ValueError(f"epochs, batch_size and bptt must be >= 1, got {epochs}, {batch_size}, {bptt}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    from nas_tf.distribute import num_replicas

    replicas = num_replicas(strategy)
    distributed = is_distributed(strategy)
    rows = batch_size * replicas
    variables = model.trainable_variables
    if strategy is not None:
        with strategy.scope():
            optimizer.build(variables)
    else:
        optimizer.build(variables)
    decay = float(weight_decay)

    def penalty():
        return 0.5 * decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])

    def train_step(x, y, states):
        with tf.GradientTape() as tape:
            logits, new_states = model(x, states=states, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            total = loss
            if decay:
                total += penalty()
        grads = tape.gradient(total, variables)
        optimizer.apply(grads, variables)
        return loss, [tf.stop_gradient(s) for s in new_states]

    def replica_step(x, y, states):
        """This replica's rows of the global window; loss averaged over the global window's tokens."""
        first = tf.distribute.get_replica_context().replica_id_in_sync_group * batch_size
        x, y = x[first : first + batch_size], y[first : first + batch_size]
        tokens = tf.cast(tf.size(y) * replicas, tf.float32)  # every replica reads as many tokens
        with tf.GradientTape() as tape:
            logits, new_states = model(x, states=states, training=True)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)) / tokens
            total = loss
            if decay:
                total += penalty() / replicas  # the replicas' gradients are summed
        grads = clip_all_reduced(optimizer, tape.gradient(total, variables))
        optimizer.apply(grads, variables)
        return loss, [tf.stop_gradient(s) for s in new_states]

    if distributed:
        sizes = model.state_sizes()

        def zero_states(n):
            # Unknown batch dimension: the states' spec is the one the step returns.
            return strategy.run(lambda: [tf.zeros(tf.stack([n, s]), dtype=model.compute_dtype) for s in sizes])

        zero_states = tf.function(zero_states)

        def initial_states():
            return zero_states(tf.constant(batch_size, tf.int32))

        def distributed_step(x, y, states):
            loss, new_states = strategy.run(replica_step, args=(x, y, states))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), new_states

        tokens_spec = tf.TensorSpec((None, None), tf.int32)
        states_spec = [tf.type_spec_from_value(s) for s in initial_states()]
        train_step = tf.function(PerModel(distributed_step), input_signature=(tokens_spec, tokens_spec, states_spec))
    else:

        def initial_states():
            return model.initial_states(batch_size)

        train_step = tf.function(PerModel(train_step), input_signature=_specs(model))
    eval_step = _make_eval_step(model)
    n_windows = corpus.num_windows("train", rows, bptt)
    if n_windows < 1:
        of = f" ({batch_size} per replica x {replicas} replicas)" if replicas > 1 else ""
        raise ValueError(f"the training split of {corpus.name!r} is too short for {rows} rows{of}")
    per_epoch = min(n_windows, steps_per_epoch) if steps_per_epoch else n_windows
    result = result if result is not None else LMTrainResult()
    start = time.time() - result.wall_time
    step = result.steps
    for epoch in range(initial_epoch, epochs):
        first = (epoch * per_epoch) % n_windows if per_epoch < n_windows else 0
        if first + per_epoch > n_windows:
            first = 0
        states = initial_states()
        total, count = 0.0, 0
        for k, (x, y) in enumerate(corpus.windows("train", rows, bptt)):
            if k < first:
                continue
            if k >= first + per_epoch:
                break
            loss, states = train_step(tf.constant(x), tf.constant(y), states)
            loss = float(loss)
            step += 1
            if not math.isfinite(loss):
                raise ChildDiverged(f"training loss became {loss} at epoch {epoch + 1}, step {step}")
            total += loss * y.size
            count += y.size
        result.train_perplexity.append(math.exp(min(total / count, 700.0)))
        if eval_split:
            ppl = evaluate_perplexity(model, corpus, eval_split, eval_batch_size, bptt, eval_step)
            if not math.isfinite(ppl):
                raise ChildDiverged(f"validation perplexity became {ppl} at epoch {epoch + 1}")
            result.val_perplexity.append(ppl)
        result.steps = step
        result.wall_time = time.time() - start
        if on_epoch_end is not None:
            on_epoch_end(epoch, result)
    return result

