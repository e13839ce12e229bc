"""From flags to objects: per-space defaults, applicable flags, configs built from the dataclasses.

* **Defaults that depend on what runs** (the space searched, the kind of
  arch trained) live in tables here. :func:`declare_defaults` makes a
  script's ``--help`` show them: the flag's default becomes the value for the
  script's default choice and its help lists the other choices' values;
  :func:`apply_defaults` then sets the flags the user did not give.
* **Flags that do not apply** to the chosen space or mode are refused with
  one line naming them (:func:`refuse_inapplicable`).
* **Configs are built from their dataclasses** (:func:`config_from_flags`):
  each field (nested dataclasses included) takes the flag of its name, by a
  naming rule and a few renames, so no builder copies fields one by one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from nas_tf.cli.flags import FLAGS, FlagError, int_list

# --------------------------------------------------------------- defaults

# Defaults that depend on what is searched or trained, applied to the flags not
# given on the command line (or in a --flagfile); a missing entry keeps the
# flag's own default.
NAS_DEFAULTS = {
    "nas_cnn": {"model_dir": "runs/nas_cnn", "dataset": "digits"},
    "nb201": {"model_dir": "runs/nb201", "dataset": "digits"},
    "nas_rnn": {
        "model_dir": "runs/nas_rnn",
        "dataset": "pydoc",
        "controller_lr": 5e-4,
        "child_epochs": 2,
        "child_lr": 20.0,
        "child_momentum": 0.0,
        "child_nesterov": False,
        "child_weight_decay": 0.0,
        "reward_window": 1,
        "lm_units": 64,
        "lm_output_dropout": 0.2,
    },
}
# ENAS defaults per space (the authors' code where it is sound; sizes that fit
# the embedded data on 2 CPU cores). Presets in scripts/presets/ give the
# paper's and the official code's full settings.
_ENAS_CONTROLLER = {
    "controller_units": 64,
    "controller_layers": 1,
    "controller_init_range": 0.1,
}
ENAS_DEFAULTS = {
    "micro": {
        "model_dir": "runs/enas_micro",
        "dataset": "digits",
        **_ENAS_CONTROLLER,
        "controller_lr": 3.5e-3,
        "tanh_constant": 1.1,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
    },
    "macro": {
        "model_dir": "runs/enas_macro",
        "dataset": "digits",
        **_ENAS_CONTROLLER,
        "controller_lr": 1e-3,
        "tanh_constant": 1.5,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
        "enas_filters": 16,
        "enas_layers": 6,
    },
    "rnn": {
        "model_dir": "runs/enas_rnn",
        "dataset": "pydoc",
        **_ENAS_CONTROLLER,
        "controller_lr": 3.5e-4,
        "temperature": 5.0,
        "tanh_constant": 2.25,
        "entropy_weight": 1e-5,
        "baseline_decay": 0.999,
        "enas_nodes": 8,
        "shared_batch_size": 32,
        "shared_lr_max": 20.0,
        "shared_grad_clip": 0.25,
        "shared_weight_decay": 1e-7,
        "lm_layers": 1,
        "lm_units": 64,
        "lm_output_dropout": 0.2,
        "final_epochs": 2,
    },
}
# Final training: by the task of the arch (images, recurrent cells).
FINAL_DEFAULTS = {
    "image": {"dataset": "digits"},
    "text": {
        "dataset": "pydoc",
        "epochs": 10,
        "batch_size": 32,
        "lr": 20.0,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
        "lm_units": 200,
        "lm_output_dropout": 0.3,
    },
}


_COST_FLAGS = (
    "target_latency_ms", "latency_weight", "target_flops", "flops_weight", "target_params", "params_weight",
    "cost_constraint", "latency_backend", "latency_runs", "latency_threads",
)
_LM_FLAGS = (
    "lm_units", "lm_layers", "lm_embedding_dim", "lm_tie_weights", "lm_bptt", "lm_embedding_dropout",
    "lm_input_dropout", "lm_output_dropout", "lm_recurrent_dropout", "lm_clip_norm", "lm_eval_batch_size",
)
_NASNET_NETWORK_FLAGS = (
    "nasnet_cells", "nasnet_filters", "nasnet_skeleton", "nasnet_stem_multiplier", "nasnet_skip_reduction",
    "drop_path_keep_prob", "aux_head", "aux_weight",
)


def applies_to(groups: Mapping[tuple[str, ...], Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """``{choices: [flags]}`` -> ``{flag: choices}`` (the form :func:`refuse_inapplicable` takes)."""
    return {name: choices for choices, names in groups.items() for name in names}


# Flags that apply to some choices only; given with another, they are refused.
NAS_APPLIES = applies_to({
    ("nas_cnn",): (
        "filter_heights", "filter_widths", "num_filters", "predict_strides", "strides", "skip_connections",
        "max_pool_after", "start_depth", "depth_increment", "depth_increment_every", "max_depth", "skip_form",
    ),
    ("nas_cnn", "nb201"): ("reward_exponent", "download_data") + _COST_FLAGS,
    ("nas_rnn",): ("rnn_base", "rnn_combinations", "rnn_activations", "reward_c") + _LM_FLAGS,
    ("nb201",): ("benchmark", "benchmark_dir"),
})
# A search whose children are looked up in a table trains none of them.
_CHILD_TRAINING_FLAGS = (
    "child_epochs", "child_batch_size", "child_lr", "child_momentum", "child_nesterov", "child_weight_decay",
    "child_lr_schedule", "child_steps_per_epoch", "reward_window", "reward_exponent", "max_child_params", "dataset",
    "data_dir", "download_data", "parallel_children", "child_devices", "child_timeout", "child_retries",
    "child_threads", "num_gpus", "num_cpu_devices",
) + _COST_FLAGS
TABULAR_APPLIES = applies_to({("trained",): _CHILD_TRAINING_FLAGS})
ENAS_APPLIES = applies_to({
    ("macro",): ("enas_layers", "skip_target", "skip_weight", "skip_form"),
    ("micro", "rnn"): ("enas_nodes",),
    ("micro",): (
        "enas_cells", "final_cells", "final_filters", "final_drop_path_keep_prob", "final_aux_head", "op_tanh_reduce",
        "op_bias",
    ),
    ("macro", "micro"): (
        "enas_filters", "op_selection", "shared_lr_min", "shared_lr_t0", "shared_lr_t_mul", "final_cutout",
        "download_data", "num_cpu_devices", "num_gpus",
    ) + _COST_FLAGS,
    ("rnn",): ("reward_c", "lm_x_dropout", "distance_prior", "distance_scaled_input", "tie_activation_logits") + _LM_FLAGS,
})
FINAL_APPLIES = applies_to({
    ("image",): ("cutout", "train_on_validation", "dropout", "download_data"),
    ("text",): _LM_FLAGS,
})
NASNET_NETWORK_APPLIES = applies_to({("nasnet",): _NASNET_NETWORK_FLAGS})
# How the choices of train_final.py read in its errors.
ARCH_KINDS = {"image": "image architectures", "text": "recurrent cells", "nasnet": "NASNet architectures"}


# Each table resolved against the flags' own defaults (``{choice: {flag: value}}``).
_RESOLVED: dict[int, dict[str, dict[str, Any]]] = {}


def _resolve(table: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    if id(table) not in _RESOLVED:
        names = sorted({name for values in table.values() for name in values if name in FLAGS})
        _RESOLVED[id(table)] = {
            choice: {name: values.get(name, FLAGS[name].default) for name in names} for choice, values in table.items()
        }
    return _RESOLVED[id(table)]


def declare_defaults(
    table: Mapping[str, Mapping[str, Any]], default: str, describe: Callable[[str], str] = lambda k: f"--space={k}"
) -> None:
    """Makes ``--help`` show the defaults that will apply, per choice (call after defining the flags).

    Every flag named in ``table`` gets the value of the ``default`` choice as
    its default, and its help lists the choices where it differs; at run time
    :func:`apply_defaults` sets the values of the chosen one.

    Args:
        table: ``{choice: {flag: value}}`` (a missing entry: the flag's own default).
        default: the choice that runs when none is given.
        describe: how a choice reads in the help (``"--space=macro"``).
    """
    resolved = _resolve(table)
    for name in resolved[default]:
        shown = resolved[default][name]
        FLAGS.set_default(name, shown)
        others = [f"{describe(c)}: {_show(v[name])}" for c, v in resolved.items() if c != default and v[name] != shown]
        if others:
            FLAGS[name].help = f"{FLAGS[name].help} Default with {'; '.join(others)}."


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def apply_defaults(table: Mapping[str, Mapping[str, Any]], choice: str) -> None:
    """Sets the flags of ``choice``'s defaults in ``table`` that the user did not give."""
    for name, value in _resolve(table)[choice].items():
        if not FLAGS[name].present:
            FLAGS[name].value = value


def refuse_inapplicable(
    applies: Mapping[str, Collection[str]], choice: str, context: str, describe: Callable[[str], str] = str
) -> None:
    """Refuses flags given on the command line (or in a flag file) that do not apply to ``choice``.

    Args:
        applies: ``{flag: the choices it applies to}``.
        choice: what runs (a space, a kind of arch, ...).
        context: how the choice reads in the error (``"--space=rnn"``).
        describe: how the other choices read (``"--space=macro"``).

    Raises:
        FlagError: naming the first such flag, what runs, and where it applies.
    """
    for name, choices in applies.items():
        if name in FLAGS and FLAGS[name].present and choice not in choices:
            where = " and ".join(describe(c) for c in sorted(choices))
            raise FlagError(f"--{name} does not apply to {context}; it applies to {where} only")


# ---------------------------------------------------------------- configs

# Field names whose flag is not the prefix plus the field name.
RENAMES = {
    "learning_rate": "lr",
    "schedule": "lr_schedule",
    "min_learning_rate": "min_lr",
}


def config_from_flags(cls: type, prefix: str = "", renames: Mapping[str, str] | None = None, **fixed: Any):
    """Builds the dataclass ``cls`` from the flags, field by field, without naming the fields.

    A field ``f`` takes the flag ``prefix + (renames or RENAMES).get(f, f)``
    (nested dataclass fields recurse with the same prefix); a rename that
    starts with ``"/"`` is a whole flag name (``"/reward_window"``). A field
    whose flag is not defined keeps its dataclass default; ``fixed`` values
    win over flags.

    Example:

    >>> config_from_flags(ImageChildConfig, prefix="child_", max_params="/max_child_params")  # doctest: +SKIP
    """
    names = {**RENAMES, **(renames or {})}
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in fixed:
            values[field.name] = fixed[field.name]
            continue
        field_type = _field_class(cls, field)
        if field_type is not None:
            values[field.name] = config_from_flags(field_type, prefix, names)
            continue
        flag = flag_for(field.name, prefix, names)
        if flag in FLAGS:
            values[field.name] = FLAGS[flag].value
    unknown = set(fixed) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    try:
        return cls(**values)
    except ValueError as e:
        raise FlagError(f"{cls.__name__}: {e}") from e


def flag_for(field: str, prefix: str = "", renames: Mapping[str, str] | None = None) -> str:
    """The flag name of a config field (see :func:`config_from_flags`)."""
    name = {**RENAMES, **(renames or {})}.get(field, field)
    return name[1:] if name.startswith("/") else prefix + name


def _field_class(cls: type, field: dataclasses.Field) -> type | None:
    """The dataclass type of a nested-dataclass field (None for plain fields)."""
    import typing

    hint = typing.get_type_hints(cls).get(field.name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def resolved_flags() -> dict[str, Any]:
    """The values of nas_tf's and the script's flags (absl's own left out)."""
    names = set()
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        ours = module.startswith("nas_tf") or module == "__main__" or (
            module.endswith(".py") and os.path.abspath(module) == script
        )
        if ours:
            names.update(f.name for f in module_flags)
    return {n: FLAGS[n].value for n in sorted(names)}


def write_flags(model_dir: str, filename: str = "flags.json") -> str:
    """Writes the resolved flags (JSON) into the run directory, atomically."""
    from nas_tf.utils.io import atomic_write_json

    path = os.path.join(model_dir, filename)
    atomic_write_json(path, resolved_flags())
    return path


# --------------------------------------------------------------- builders


def require_dataset(task: str, context: str) -> str:
    """The --dataset value, which must be a dataset of ``task`` (``"image"``, ``"text"``)."""
    from nas_tf.tasks import get_task

    known = get_task(task).datasets
    if FLAGS.dataset not in known:
        raise FlagError(f"--dataset={FLAGS.dataset}: {context} needs a {task} dataset: {', '.join(known)}")
    return FLAGS.dataset


def load_data(task: str):
    """The dataset of --dataset (a dataset of ``task``), or a one-line error saying why it is missing."""
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.tasks import get_task

    try:
        return get_task(task).load_data(FLAGS.dataset, data_dir=FLAGS.data_dir, download=FLAGS.download_data)
    except DatasetUnavailableError as e:
        raise FlagError(f"--dataset={FLAGS.dataset}: {e}") from None


def searcher(space):
    """The searcher of --algorithm for ``space``: REINFORCE, PPO (where the script defines it) or random search."""
    from nas_tf.controller import PPO, RandomSearch, Reinforce, controller_for
    from nas_tf.controller.policy import enas_micro_op_options

    if FLAGS.algorithm == "random":
        return RandomSearch(seed=FLAGS.seed)
    if FLAGS.algorithm == "evolution":
        from nas_tf.controller import RegularizedEvolution

        if FLAGS.sample_size > FLAGS.population_size:
            raise FlagError(f"--sample_size={FLAGS.sample_size} must be <= --population_size={FLAGS.population_size}")
        return RegularizedEvolution(population_size=FLAGS.population_size, sample_size=FLAGS.sample_size, seed=FLAGS.seed)
    extra: dict[str, Any] = {}
    if "skip_form" in FLAGS:
        extra["skip_form"] = FLAGS.skip_form
    if "op_tanh_reduce" in FLAGS and space.name == "enas_micro" and (FLAGS.op_tanh_reduce != 1.0 or FLAGS.op_bias):
        extra.update(enas_micro_op_options(space.ops, op_tanh_reduce=FLAGS.op_tanh_reduce, op_bias=FLAGS.op_bias))
    if "distance_prior" in FLAGS:
        extra.update(
            distance_prior=FLAGS.distance_prior,
            distance_scaled_input=FLAGS.distance_scaled_input,
            tied_heads=["activation"] if FLAGS.tie_activation_logits else [],
        )
    controller = controller_for(
        space.decisions,
        lstm_units=FLAGS.controller_units,
        lstm_layers=FLAGS.controller_layers,
        init_range=FLAGS.controller_init_range,
        temperature=FLAGS.temperature,
        tanh_constant=FLAGS.tanh_constant,
        seed=FLAGS.seed,
        **extra,
    )
    options = dict(
        learning_rate=FLAGS.controller_lr,
        baseline_decay=FLAGS.baseline_decay,
        baseline_mode=FLAGS.baseline_mode,
        entropy_weight=FLAGS.entropy_weight,
        seed=FLAGS.seed,
    )
    if "controller_beta1" in FLAGS:  # the ENAS options (define_enas_controller_flags)
        options.update(
            beta_1=FLAGS.controller_beta1,
            epsilon=FLAGS.controller_epsilon,
            entropy_mode=FLAGS.entropy_mode,
            baseline_update=FLAGS.baseline_update,
            skip_target=FLAGS.skip_target,
            skip_weight=FLAGS.skip_weight,
        )
    if FLAGS.algorithm == "reinforce":
        return Reinforce(controller, **options)
    return PPO(controller, clip_epsilon=FLAGS.ppo_clip, epochs=FLAGS.ppo_epochs, **options)


def nas_cnn_space():
    """The NAS CNN space of the --filter_heights, ... flags (a size nas_tf cannot build is a FlagError)."""
    from nas_tf.spaces.nas_cnn import NASCNNSpace

    try:
        return NASCNNSpace(
            num_layers=FLAGS.start_depth,
            filter_heights=int_list("filter_heights"),
            filter_widths=int_list("filter_widths"),
            num_filters=int_list("num_filters"),
            predict_strides=FLAGS.predict_strides,
            strides=int_list("strides"),
            skip_connections=FLAGS.skip_connections,
            max_pool_after=int_list("max_pool_after"),
        )
    except ValueError as e:
        raise FlagError(f"--{str(e).replace('num_layers:', 'start_depth:', 1)}") from None


def nas_rnn_space():
    from nas_tf.spaces.nas_rnn import NASRNNSpace

    return NASRNNSpace(
        base=FLAGS.rnn_base, combinations=tuple(FLAGS.rnn_combinations), activations=tuple(FLAGS.rnn_activations)
    )


def nb201_space():
    from nas_tf.spaces import NB201Space

    return NB201Space()


def nasnet_space():
    from nas_tf.spaces.nasnet import NASNetSpace

    return NASNetSpace.with_op_set(FLAGS.op_set, num_blocks=FLAGS.num_blocks, combiners=tuple(FLAGS.combiners))


def enas_space():
    """The ENAS space of --space."""
    from nas_tf.spaces import EnasMacroSpace, EnasMicroSpace, EnasRnnSpace

    if FLAGS.space == "macro":
        return EnasMacroSpace(num_layers=FLAGS.enas_layers)
    if FLAGS.space == "micro":
        return EnasMicroSpace(num_nodes=FLAGS.enas_nodes)
    return EnasRnnSpace(num_nodes=FLAGS.enas_nodes)


def nasnet_builder_options() -> dict[str, Any]:
    """Keyword arguments of ``nas_tf.models.build_nasnet`` from the network flags."""
    return {
        "num_cells": FLAGS.nasnet_cells,
        "num_conv_filters": FLAGS.nasnet_filters,
        "skeleton": FLAGS.nasnet_skeleton,
        "stem_multiplier": FLAGS.nasnet_stem_multiplier,
        "skip_reduction": FLAGS.nasnet_skip_reduction,
        "drop_path_keep_prob": FLAGS.drop_path_keep_prob,
        "aux_head": FLAGS.aux_head,
    }


def lm_model_options() -> dict[str, Any]:
    """:class:`~nas_tf.models.LanguageModel` arguments from the --lm_* flags."""
    if FLAGS.lm_tie_weights and FLAGS.lm_embedding_dim and FLAGS.lm_embedding_dim != FLAGS.lm_units:
        raise FlagError(
            f"--lm_tie_weights needs --lm_embedding_dim ({FLAGS.lm_embedding_dim}) equal to --lm_units "
            f"({FLAGS.lm_units}); use --nolm_tie_weights or drop --lm_embedding_dim"
        )
    return {
        "units": FLAGS.lm_units,
        "num_layers": FLAGS.lm_layers,
        "embedding_dim": FLAGS.lm_embedding_dim or None,
        "tie_weights": FLAGS.lm_tie_weights,
        "embedding_dropout": FLAGS.lm_embedding_dropout,
        "input_dropout": FLAGS.lm_input_dropout,
        "output_dropout": FLAGS.lm_output_dropout,
        "recurrent_dropout": FLAGS.lm_recurrent_dropout,
    }


# Flags of the language-model trainings: the --lm_ prefix, or none.
LM_RENAMES = {"clip_norm": "/lm_clip_norm", "bptt": "/lm_bptt", "eval_batch_size": "/lm_eval_batch_size"}
# Child configs: the --child_ prefix, and these.
CHILD_RENAMES = {
    "reward_window": "/reward_window",
    "reward_exponent": "/reward_exponent",
    "reward_c": "/reward_c",
    "max_params": "/max_child_params",
    **LM_RENAMES,
}


def cost_settings() -> dict[str, Any]:
    """The ``costs`` and ``latency`` of an image child config from the --target_* flags (none defined: no costs)."""
    from nas_tf.export.latency import LatencySettings
    from nas_tf.export.objective import CostObjective

    if "target_latency_ms" not in FLAGS:
        return {}
    try:
        costs = CostObjective.from_settings(
            target_latency_ms=FLAGS.target_latency_ms, latency_weight=FLAGS.latency_weight,
            target_flops=FLAGS.target_flops, flops_weight=FLAGS.flops_weight,
            target_params=FLAGS.target_params, params_weight=FLAGS.params_weight,
            constraint=FLAGS.cost_constraint,
        )
        latency = LatencySettings(backend=FLAGS.latency_backend, runs=FLAGS.latency_runs, num_threads=FLAGS.latency_threads)
    except ValueError as e:
        raise FlagError(str(e)) from None
    return {"costs": costs, "latency": latency}


def image_child_config(**builder_options: Any):
    from nas_tf.tasks import ImageChildConfig

    return config_from_flags(ImageChildConfig, "child_", CHILD_RENAMES, builder_options=builder_options, **cost_settings())


def lm_child_config():
    from nas_tf.tasks import LMChildConfig

    return config_from_flags(LMChildConfig, "child_", CHILD_RENAMES, model_options=lm_model_options())


def search_config(start_depth: int | None = None):
    """The multi-trial loop's settings (``start_depth``: the depth schedule's first depth, None: none)."""
    from nas_tf.search import SearchConfig

    schedule = {} if start_depth else {"depth_increment": 2, "depth_increment_every": 1600, "max_depth": None}
    if start_depth and "max_depth" in FLAGS:
        schedule["max_depth"] = FLAGS.max_depth or None
    return config_from_flags(SearchConfig, start_depth=start_depth, **schedule)


def one_shot_config():
    from nas_tf.search import OneShotConfig

    return config_from_flags(OneShotConfig)


def shared_training_config():
    """How the shared weights of an image supernet are trained (the --shared_* flags)."""
    from nas_tf.tasks import SharedTrainingConfig

    return config_from_flags(SharedTrainingConfig, "shared_", {"seed": "/seed"})


def lm_shared_training_config():
    """How the shared weights of a recurrent supernet are trained (the --shared_* and --lm_* flags)."""
    from nas_tf.tasks import LMSharedTrainingConfig

    return config_from_flags(
        LMSharedTrainingConfig, "shared_",
        {"seed": "/seed", "learning_rate": "lr_max", "bptt": "/lm_bptt", "reward_c": "/reward_c"},
    )


def final_image_config(builder_options: dict[str, Any]):
    from nas_tf.tasks import FinalImageConfig

    return config_from_flags(FinalImageConfig, builder_options=builder_options)


def final_lm_config(**fixed: Any):
    from nas_tf.tasks import FinalLMConfig

    return config_from_flags(FinalLMConfig, renames=LM_RENAMES, **{"model_options": lm_model_options(), **fixed})


def enas_image_supernet(space, data):
    """The macro or micro supernet of --space for ``data`` (build it inside the strategy's scope)."""
    options = dict(filters=FLAGS.enas_filters, weight_decay=FLAGS.shared_weight_decay)
    if FLAGS.space == "micro":
        from nas_tf.models.enas_micro import EnasMicroSupernet

        return EnasMicroSupernet(space, data.num_classes, num_cells=FLAGS.enas_cells, op_selection=FLAGS.op_selection, **options)
    from nas_tf.models.enas_macro import EnasMacroSupernet

    if FLAGS.op_selection == "merged":
        raise FlagError("--op_selection=merged applies to --space=micro (the macro supernet has switch and all)")
    return EnasMacroSupernet(space, data.num_classes, op_selection=FLAGS.op_selection, **options)


def distribute_strategy():
    """The tf.distribute strategy of --strategy, --num_gpus, --num_cpu_devices."""
    from nas_tf.distribute import make_strategy

    try:
        return make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.num_cpu_devices)
    except (ValueError, RuntimeError) as e:
        raise FlagError(f"--strategy={FLAGS.strategy}: {e}") from None


# ------------------------------------------------- paths and contradictions

# Datasets nas_tf carries inside the package: they read no --data_dir.
EMBEDDED_DATASETS = ("digits", "pydoc")


def check_model_dir(flag: str = "model_dir") -> str:
    """Refuses a --model_dir that cannot hold a run, before anything is created; returns its absolute path.

    Refused, with one line naming the flag, the path and the reason: an empty
    value, a path that is a file (or lies under one), a directory this
    process cannot create or write (permissions, a read-only file system,
    ``/proc``). The check creates and removes a probe directory in the
    nearest existing ancestor, so it leaves nothing behind.

    Raises:
        FlagError: the directory cannot be used.
    """
    import tempfile

    value = FLAGS[flag].value
    if value is None or not str(value).strip():
        raise FlagError(f"--{flag} is empty: give the directory of the run")
    path = os.path.abspath(value)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        kind = "a file" if os.path.isfile(existing) else "not a directory"
        where = "is" if existing == path else f"lies under {existing}, which is"
        raise FlagError(f"--{flag}={value}: {where} {kind}, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nas_tf_probe.", dir=existing))
    except OSError as e:
        where = "cannot write in it" if existing == path else f"cannot create it in {existing}"
        raise FlagError(f"--{flag}={value}: {where} ({e.strerror})") from None
    return path


def check_data_dir(dataset: str) -> None:
    """Refuses a --data_dir that cannot be read, or given with a dataset embedded in nas_tf."""
    value = FLAGS.data_dir if "data_dir" in FLAGS else None
    if value is None:
        return
    if dataset in EMBEDDED_DATASETS:
        raise FlagError(
            f"--data_dir={value} does not apply to --dataset={dataset}, which is embedded in nas_tf (no files are "
            "read); drop --data_dir, or choose a dataset that reads it"
        )
    if not str(value).strip():
        raise FlagError("--data_dir is empty: give the data directory, or drop the flag")
    path = os.path.expanduser(value)
    if not os.path.exists(path):
        if FLAGS.download_data:
            return  # tensorflow-datasets creates it
        raise FlagError(f"--data_dir={value}: no such directory")
    if not os.path.isdir(path):
        raise FlagError(f"--data_dir={value}: is a file, not a directory")
    try:
        os.listdir(path)
    except OSError as e:
        raise FlagError(f"--data_dir={value}: cannot be read ({e.strerror})") from None


def check_search_settings(start_depth: int | None = None) -> None:
    """Refuses contradictory settings of a multi-trial search, naming the flags.

    Refused: ``--archs_per_step`` above ``--num_architectures``;
    ``--max_depth`` below ``--start_depth``; ``--max_pool_after`` positions
    that no network of the search reaches (beyond the depth of the last
    children, given the depth schedule).
    """
    if FLAGS.archs_per_step > FLAGS.num_architectures:
        raise FlagError(
            f"--archs_per_step={FLAGS.archs_per_step} is larger than --num_architectures={FLAGS.num_architectures}: "
            "a controller step never gets that many children"
        )
    if start_depth is None:
        return
    max_depth = FLAGS.max_depth or None
    if max_depth is not None and max_depth < start_depth:
        raise FlagError(f"--max_depth={max_depth} is below --start_depth={start_depth}")
    deepest = start_depth + FLAGS.depth_increment * ((FLAGS.num_architectures - 1) // FLAGS.depth_increment_every)
    if max_depth is not None:
        deepest = min(deepest, max_depth)
    beyond = [p for p in int_list("max_pool_after") if p >= deepest]
    if beyond:
        schedule = (
            f"--start_depth={start_depth}" if deepest == start_depth
            else f"--start_depth={start_depth} grown to {deepest} by the depth schedule"
        )
        raise FlagError(
            f"--max_pool_after={','.join(FLAGS.max_pool_after)}: the networks of this search have at most {deepest} "
            f"layers ({schedule}), so pooling after layer {beyond[0]} never happens (layers are numbered from 0)"
        )
    space = nas_cnn_space()
    try:
        space.with_depth(deepest)
    except ValueError as e:
        raise FlagError(f"--{e} (at the depth of the last children, {deepest} layers)") from None


def check_batch(flag: str, batch: int, data, replicas: int = 1, bptt: int | None = None) -> None:
    """Refuses a batch larger than the training split of ``data`` (images, or text windows with ``bptt``)."""
    rows = batch * replicas
    of = f" x {replicas} replicas = {rows}" if replicas > 1 else ""
    if bptt is not None and hasattr(data, "num_windows"):
        if data.num_windows("train", rows, bptt) < 1:
            raise FlagError(
                f"--{flag}={batch}{of} rows: the training split of {data.name} is too short for one window of "
                f"{bptt} steps"
            )
        return
    if hasattr(data, "size") and rows > data.size("train"):
        raise FlagError(
            f"--{flag}={batch}{of} is larger than the training split of {data.name} ({data.size('train')} examples)"
        )
