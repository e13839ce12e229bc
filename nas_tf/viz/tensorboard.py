"""TensorBoard as the dashboard of a search: arch pictures, children as HParams trials, model graphs.

Functions the search loops and final training call, besides the scalars they
already log:

* :func:`log_arch` -- the picture of an arch as an image summary and its JSON
  as a text summary (the best arch, whenever it changes);
* :func:`write_hparams_config` once, then :func:`log_child` per child -- each
  child an HParams trial: its decisions as hyperparameters; reward,
  validation accuracy (or perplexity), parameters and wall time as metrics, so
  TensorBoard's HParams dashboard sorts and filters the children;
* :func:`log_scalars` and :func:`log_model_graph` for final training: the
  training curves and the model's graph (op graph and Keras conceptual graph).

Layout under a search's ``tensorboard/`` directory::

    tensorboard/                     the loop's scalars, best_arch image and text
    tensorboard/children/            the HParams experiment (hparams, metrics)
    tensorboard/children/child_00012 one run per child (its hparams and metrics)

Example::

    from nas_tf.viz import tensorboard as tb

    tb.write_hparams_config(tb_dir, space)              # once, at the start
    tb.log_child(tb_dir, row, space)                    # after every child
    with writer.as_default():
        tb.log_arch(best_arch, step=children_done)      # when the best changes

This module imports TensorFlow (the rest of :mod:`nas_tf.viz` does not).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from nas_tf.spaces.arch import Arch, load_arch
from nas_tf.spaces.base import SearchSpace
from nas_tf.spaces.decisions import Anchor, Categorical, Select, Skip
from nas_tf.viz.plot import render_arch
from nas_tf.viz.render import GraphvizNotFoundError

log = logging.getLogger("nas_tf.viz")

#: Subdirectory (of a search's tensorboard/ directory) that holds the HParams experiment and one run per child.
CHILDREN_DIR = "children"

#: The metrics of a child trial: (tag, display name, description).
CHILD_METRICS: tuple[tuple[str, str, str], ...] = (
    ("reward", "reward", "the reward the controller learned from"),
    ("val_accuracy", "validation accuracy", "validation accuracy of the child (image tasks)"),
    ("val_perplexity", "validation perplexity", "validation perplexity of the child (language models)"),
    ("params", "parameters", "trainable and non-trainable parameters of the child"),
    ("wall_time", "wall time (s)", "seconds spent training and evaluating the child"),
)


# ------------------------------------------------------------- arch pictures


def log_arch(arch: Arch | dict, step: int, name: str = "best_arch") -> bool:
    """Writes ``arch`` as an image summary (its picture) and a text summary (its JSON).

    Call it under a default writer (``with writer.as_default():``). Without
    Graphviz's ``dot`` the picture is left out (one warning) and the text is
    still written.

    Args:
        arch: the arch (typed or its JSON dict).
        step: the summary step (children done, or controller updates).
        name: tag prefix: ``name`` (image) and ``name/json`` (text).

    Returns:
        Whether the picture was written.
    """
    arch = load_arch(arch)
    text = json.dumps(arch.to_dict(), indent=2)
    # TensorBoard's text dashboard renders Markdown: a fenced block keeps the JSON as it is.
    tf.summary.text(f"{name}/json", f"```json\n{text}\n```", step=step)
    try:
        png = render_arch(arch, "png")
    except GraphvizNotFoundError as e:
        log.warning("no picture of %s in TensorBoard: %s", name, e)
        return False
    image = tf.io.decode_png(png, channels=3)
    tf.summary.image(name, image[tf.newaxis], step=step, description=f"the {name.replace('_', ' ')} ({arch.space})")
    return True


# ---------------------------------------------------------- HParams trials


def _hparam_value(value: Any) -> str | int | float | bool:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else "none"
    return json.dumps(value)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def arch_hparams(arch: Arch | dict, space: SearchSpace | None = None) -> dict[str, str | int | float | bool]:
    """The decisions of ``arch`` as HParams values (str, int, float or bool).

    With ``space``, one hparam per decision of the space's decision list,
    named as the decision (``layers[1].filter_height``, ``normal.blocks[0].ops[1]``);
    a skip decision's value is the list of chosen inputs (``"0,2"``, or
    ``"none"``). Without ``space`` (or for an arch outside it) the fields of
    the arch's JSON, flattened to the same kind of names.

    Example:

    >>> from nas_tf.spaces import NASCNNSpace, ConvLayer, NASCNNArch  # doctest: +SKIP
    >>> arch_hparams(NASCNNArch((ConvLayer(3, 5, 24),)), NASCNNSpace(num_layers=1))  # doctest: +SKIP
    {'layers[0].filter_height': 3, 'layers[0].filter_width': 5, 'layers[0].num_filters': 24}
    """
    arch = load_arch(arch)
    if space is not None:
        try:
            values = space.to_values(arch)
        except ValueError:
            values = None
        if values is not None:
            return {name: _hparam_value(v) for name, v in values.items()}
    data = arch.to_dict()
    data.pop("space", None)
    return {k: _hparam_value(v) for k, v in _flatten(data).items()}


def _domain(decision) -> hp.Discrete | hp.IntInterval | None:
    if isinstance(decision, Categorical):
        kinds = {type(c) for c in decision.choices}
        if kinds <= {int} or kinds <= {float, int} or kinds <= {str} or kinds <= {bool}:
            return hp.Discrete(list(decision.choices))
        return None
    if isinstance(decision, Select):
        return hp.IntInterval(0, decision.num_candidates - 1)
    return None  # a skip set: free text


def write_hparams_config(
    logdir: str | os.PathLike,
    space: SearchSpace | None = None,
    metrics: Sequence[tuple[str, str, str]] = CHILD_METRICS,
) -> str:
    """Declares the HParams experiment of a search: its hyperparameters (the decisions) and metrics.

    Optional (TensorBoard infers an experiment from the trials), but with it
    the dashboard offers each decision's choices as filters and names the
    metrics. Writes into ``logdir/children``; call once per search.

    Args:
        logdir: the search's TensorBoard directory.
        space: the search space (its decision list gives the hparams and their domains).
        metrics: ``(tag, display name, description)`` of each metric.

    Returns:
        The directory written.
    """
    directory = os.path.join(os.fspath(logdir), CHILDREN_DIR)
    hparams = [hp.HParam("status", hp.Discrete(["ok", "failed"]), description="ok, or why the child failed")]
    if space is not None:
        for d in space.decisions:
            if isinstance(d, Anchor):
                continue
            kind = "skip connections (chosen inputs)" if isinstance(d, Skip) else "decision"
            hparams.append(hp.HParam(d.name, _domain(d), description=kind))
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default():
        hp.hparams_config(
            hparams=hparams,
            metrics=[hp.Metric(tag, display_name=display, description=text) for tag, display, text in metrics],
        )
    writer.close()
    return directory


def log_trial(
    logdir: str | os.PathLike,
    trial_id: str,
    arch: Arch | dict,
    metrics: Mapping[str, float | int | None],
    space: SearchSpace | None = None,
    status: str = "ok",
    step: int = 0,
) -> str:
    """Writes one HParams trial: ``arch``'s decisions as hparams, ``metrics`` as scalars.

    Args:
        logdir: the search's TensorBoard directory (the trial goes to
            ``logdir/children/<trial_id>``).
        trial_id: the trial's name, e.g. ``"child_00012"``.
        arch: the arch.
        metrics: metric tag -> value (None values are left out).
        space: the search space (names the hparams as its decisions).
        status: ``"ok"`` or anything else for a failed child (shown as ``failed``).
        step: the step of the metric scalars.

    Returns:
        The trial's directory.
    """
    directory = os.path.join(os.fspath(logdir), CHILDREN_DIR, trial_id)
    hparams: dict[str, Any] = {"status": "ok" if status == "ok" else "failed", **arch_hparams(arch, space)}
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default():
        hp.hparams(hparams, trial_id=trial_id)
        for tag, value in metrics.items():
            if value is not None:
                tf.summary.scalar(tag, float(value), step=step)
    writer.close()
    return directory


def log_child(logdir: str | os.PathLike, row: Mapping[str, Any], space: SearchSpace | None = None) -> str:
    """Writes a history row as an HParams trial (see :func:`log_trial`).

    Args:
        logdir: the search's TensorBoard directory.
        row: a multi-trial history row (``child``, ``arch``, ``reward``,
            ``status``, ``val_accuracy``, ``params``, ``wall_time``,
            ``metrics``), or a one-shot row (``update``, ``sample`` or
            ``index``; ``arch``, ``reward``).
        space: the search space.

    Returns:
        The trial's directory.
    """
    if "child" in row:
        trial_id, step = f"child_{int(row['child']):05d}", int(row["child"])
    elif "update" in row:
        trial_id, step = f"update_{int(row['update']):05d}_sample_{int(row.get('sample', 0)):02d}", int(row["update"])
    elif "index" in row:
        trial_id, step = f"derived_{int(row['index']):03d}", int(row["index"])
    else:
        raise ValueError(f"a history row needs 'child', 'update' or 'index' to name its trial, got keys {sorted(row)}")
    extra = row.get("metrics") or {}
    metrics = {tag: row.get(tag, extra.get(tag)) for tag, _, _ in CHILD_METRICS}
    return log_trial(logdir, trial_id, row["arch"], metrics, space, status=row.get("status", "ok"), step=step)


# ----------------------------------------------------------- final training

# The curves and the graph of a training run live with the training loops.
from nas_tf.training.summaries import log_model_graph, log_scalars  # noqa: E402,F401
