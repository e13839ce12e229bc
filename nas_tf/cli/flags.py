"""absl flags shared by the scripts, and the code that turns them into objects.

Scripts stay thin: they call the ``define_*`` functions for the flag groups
they need, then the ``*_from_flags`` builders. Every flag is validated when the
command line is parsed, and the error names the flag and the bad value.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Iterable

from absl import flags

FLAGS = flags.FLAGS


# ----------------------------------------------------------------- helpers


def _int_list_validator(name: str, allow_empty: bool = False, min_value: int = 1):
    def check(values):
        if values is None:
            return True
        if not values and not allow_empty:
            raise flags.ValidationError(f"--{name} must not be empty")
        for v in values:
            try:
                iv = int(v)
            except (TypeError, ValueError):
                raise flags.ValidationError(f"--{name}: {v!r} is not an integer") from None
            if iv < min_value:
                raise flags.ValidationError(f"--{name}: {iv} must be >= {min_value}")
        if len(set(int(v) for v in values)) != len(values):
            raise flags.ValidationError(f"--{name}: values must be distinct, got {','.join(values)}")
        return True

    return check


def define_int_list(name: str, default: str, help: str, allow_empty: bool = False, min_value: int = 1) -> None:
    """A comma-separated list of integers, validated at parse time."""
    flags.DEFINE_list(name, default, help)
    flags.register_validator(name, _int_list_validator(name, allow_empty, min_value))


def _names_validator(name: str, known: Iterable[str]):
    known = tuple(known)

    def check(values):
        if not values:
            raise flags.ValidationError(f"--{name} must not be empty")
        for v in values:
            if v not in known:
                raise flags.ValidationError(f"--{name}: {v!r} is not one of {', '.join(known)}")
        if len(set(values)) != len(values):
            raise flags.ValidationError(f"--{name}: values must be distinct, got {','.join(values)}")
        return True

    return check


def int_list(name: str) -> tuple[int, ...]:
    return tuple(int(v) for v in getattr(FLAGS, name))



# ------------------------------------------------------------- flag groups


def define_run_flags(default_model_dir: str) -> None:
    """--model_dir and --seed."""
    flags.DEFINE_string("model_dir", default_model_dir, "Run directory; re-running the same command resumes it.")
    flags.DEFINE_integer("seed", 0, "Seed of the controller, the children and the data order.", lower_bound=0)


def define_search_flags(default_algorithm: str = "reinforce", algorithms: Iterable[str] = ("reinforce", "random")) -> None:
    """The multi-trial loop and the controller."""
    flags.DEFINE_integer("num_architectures", 40, "Total child architectures to train.", lower_bound=1)
    flags.DEFINE_integer("archs_per_step", 4, "Architectures per controller step (m).", lower_bound=1)
    define_controller_flags(default_algorithm, algorithms)


def define_controller_flags(default_algorithm: str = "reinforce", algorithms: Iterable[str] = ("reinforce", "random")) -> None:
    """The controller and its policy-gradient optimiser."""
    flags.DEFINE_enum("algorithm", default_algorithm, list(algorithms), "Search strategy.")
    flags.DEFINE_float("controller_lr", 6e-4, "Controller Adam learning rate (6e-4; 5e-4 with --space=nas_rnn).", lower_bound=0.0)
    flags.DEFINE_integer("controller_units", 35, "LSTM units per controller layer.", lower_bound=1)
    flags.DEFINE_integer("controller_layers", 2, "Stacked controller LSTM layers.", lower_bound=1)
    flags.DEFINE_float("controller_init_range", 0.08, "Controller weights start U(-r, r).", lower_bound=0.0)
    flags.DEFINE_float("baseline_decay", 0.95, "Decay of the reward moving-average baseline.", lower_bound=0.0, upper_bound=0.999999)
    flags.DEFINE_float("entropy_weight", 0.0, "Weight of the entropy bonus (0: off).", lower_bound=0.0)
    flags.DEFINE_float("temperature", None, "Divide controller logits by this (unset: off).", lower_bound=1e-6)
    flags.DEFINE_float("tanh_constant", None, "Squash controller logits to C*tanh(logits) (unset: off).", lower_bound=1e-6)


def define_enas_flags() -> None:
    """ENAS: the space, the supernet, the one-shot loop, the ENAS controller options, the retraining."""
    flags.DEFINE_enum("space", "micro", ["macro", "micro", "rnn"], "ENAS search space.")
    flags.DEFINE_integer("num_epochs", 20, "Search epochs (each: one shared-weights pass, then the controller steps).", lower_bound=1)
    flags.DEFINE_integer("controller_steps", 10, "Controller updates per epoch.", lower_bound=0)
    flags.DEFINE_integer("controller_aggregate", 5, "Architectures per controller update (k).", lower_bound=1)
    flags.DEFINE_integer("derive_samples", 16, "Architectures sampled at the end; the best on validation is kept.", lower_bound=1)
    flags.DEFINE_integer("derive_batches", 2, "Validation minibatches each derived architecture is scored on.", lower_bound=1)
    flags.DEFINE_float("controller_beta1", 0.0, "Controller Adam beta_1 (0 in the authors' code).", lower_bound=0.0, upper_bound=0.999)
    flags.DEFINE_float("controller_epsilon", 1e-3, "Controller Adam epsilon (1e-3 in the authors' code).", lower_bound=0.0)
    flags.DEFINE_enum("entropy_mode", "reward", ["reward", "loss"], "Entropy bonus added to the reward (ENAS) or to the loss.")
    flags.DEFINE_enum("baseline_update", "before", ["before", "after"], "Update the baseline before the advantage (ENAS code) or after.")
    flags.DEFINE_float("skip_target", 0.4, "Macro: target skip-connection probability of the KL penalty.", lower_bound=1e-6, upper_bound=0.999999)
    flags.DEFINE_float("skip_weight", 0.8, "Macro: weight of the skip KL penalty (0: off).", lower_bound=0.0)
    flags.DEFINE_integer("enas_layers", 12, "Macro: layers of the network (L).", lower_bound=1)
    flags.DEFINE_integer("enas_nodes", 5, "Micro: computed nodes per cell (B).", lower_bound=1)
    flags.DEFINE_integer("enas_cells", 1, "Micro: normal cells per stage (N).", lower_bound=1)
    flags.DEFINE_integer("enas_filters", 8, "Supernet filters (micro: F of the first stage; macro: channels).", lower_bound=2)
    flags.DEFINE_enum(
        "op_selection", "switch", ["switch", "merged", "all"],
        "How the supernet runs the chosen op: switch (only the chosen op; fastest step, ~2 min to trace), merged "
        "(micro: one separable-conv path plus the pools; half the trace time, slower steps), all (every candidate, "
        "as the authors' code).",
    )
    flags.DEFINE_integer("shared_batch_size", 64, "Shared weights: minibatch size (also of the reward batches).", lower_bound=1)
    flags.DEFINE_float("shared_lr_max", 0.05, "Shared weights: learning rate at every warm restart.", lower_bound=1e-12)
    flags.DEFINE_float("shared_lr_min", 0.0005, "Shared weights: learning rate at the end of a cosine period.", lower_bound=0.0)
    flags.DEFINE_integer("shared_lr_t0", 10, "Shared weights: first cosine period in epochs.", lower_bound=1)
    flags.DEFINE_integer("shared_lr_t_mul", 2, "Shared weights: growth of the period at every restart.", lower_bound=1)
    flags.DEFINE_float("shared_weight_decay", 1e-4, "Shared weights: L2 weight decay.", lower_bound=0.0)
    flags.DEFINE_float("shared_grad_clip", 5.0, "Shared weights: global gradient-norm clip (0: off).", lower_bound=0.0)
    flags.DEFINE_integer("shared_steps_per_epoch", 0, "Shared weights: cap on steps per pass (0: one full pass).", lower_bound=0)
    flags.DEFINE_integer("final_epochs", 10, "Retrain the derived arch from scratch for this many epochs (0: skip).", lower_bound=0)
    flags.DEFINE_integer("final_cells", 1, "Retraining (micro): normal cells per stage of the final network.", lower_bound=1)
    flags.DEFINE_integer("final_filters", 16, "Retraining (micro): F of the final network.", lower_bound=2)
    flags.DEFINE_float("final_drop_path_keep_prob", 1.0, "Retraining (micro): ScheduledDropPath keep probability.", lower_bound=1e-6, upper_bound=1.0)
    flags.DEFINE_integer("final_cutout", 0, "Retraining (images): CutOut square side (0: off).", lower_bound=0)
    flags.DEFINE_bool("final_aux_head", False, "Retraining (micro): auxiliary head after the second stage.")
    flags.DEFINE_bool("export", True, "Export the retrained model as a SavedModel.")


def define_strategy_flags() -> None:
    """--strategy, --num_gpus, --num_cpu_devices (nas_tf.distribute)."""
    from nas_tf.distribute import STRATEGIES

    flags.DEFINE_enum(
        "strategy", "auto", list(STRATEGIES),
        "tf.distribute strategy: auto (mirrored over the local GPUs when there are several, else one device), "
        "one_device, mirrored, multi_worker (cluster from TF_CONFIG or Slurm).",
    )
    flags.DEFINE_integer("num_gpus", None, "Local GPUs to use (default: all).", lower_bound=0)
    flags.DEFINE_integer(
        "num_cpu_devices", 0, "Without GPUs: split the CPU into N logical devices (mirrored over them).", lower_bound=0
    )


def distribute_strategy_from_flags():
    """The tf.distribute strategy of --strategy, --num_gpus, --num_cpu_devices."""
    from nas_tf.distribute import make_strategy

    try:
        return make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.num_cpu_devices)
    except (ValueError, RuntimeError) as e:
        fail(f"--strategy={FLAGS.strategy}: {e}")


def define_image_data_flags(default_dataset: str = "digits") -> None:
    """Which image dataset and where it lives."""
    from nas_tf.data.images import IMAGE_DATASETS

    flags.DEFINE_enum(
        "dataset",
        default_dataset,
        list(IMAGE_DATASETS),
        "Image dataset: 'digits' (embedded, no network) or 'cifar10' (tensorflow-datasets).",
    )
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory (or CIFAR-10 pickles).")
    flags.DEFINE_bool("download_data", False, "Let tensorflow-datasets download a missing dataset (needs network).")


def define_data_flags() -> None:
    """--dataset (an image or a text dataset), --data_dir, --download_data.

    The default dataset depends on what is trained (:func:`apply_defaults`):
    the embedded digits for image architectures, the embedded text for
    recurrent cells.
    """
    from nas_tf.data.images import IMAGE_DATASETS
    from nas_tf.data.text import TEXT_DATASETS

    flags.DEFINE_enum(
        "dataset",
        None,
        list(IMAGE_DATASETS) + list(TEXT_DATASETS),
        "Dataset. Images: 'digits' (embedded, no network; the default for image spaces) or 'cifar10' "
        "(tensorflow-datasets). Text: 'pydoc' (Python's own documentation, embedded, no network; the default "
        "for recurrent cells) or 'ptb' (Penn Treebank: ptb.train.txt, ptb.valid.txt, ptb.test.txt in --data_dir).",
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Data directory: tensorflow-datasets (or CIFAR-10 pickles), or the PTB text files.",
    )
    flags.DEFINE_bool("download_data", False, "Let tensorflow-datasets download a missing dataset (needs network).")


def define_child_flags() -> None:
    """How children are trained and rewarded."""
    flags.DEFINE_integer("child_epochs", 5, "Training epochs per child (default 5; 2 with --space=nas_rnn).", lower_bound=1)
    flags.DEFINE_integer("child_batch_size", 32, "Child batch size.", lower_bound=1)
    flags.DEFINE_float("child_lr", 0.1, "Child SGD learning rate (default 0.1; 20 with --space=nas_rnn).", lower_bound=1e-12)
    flags.DEFINE_float("child_momentum", 0.9, "Child SGD momentum (default 0.9; 0 with --space=nas_rnn).", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_bool("child_nesterov", True, "Nesterov momentum for children (off with --space=nas_rnn).")
    flags.DEFINE_float("child_weight_decay", 1e-4, "Child L2 weight decay (default 1e-4; 0 with --space=nas_rnn).", lower_bound=0.0)
    flags.DEFINE_enum("child_lr_schedule", "constant", ["constant", "cosine"], "Child learning-rate schedule.")
    flags.DEFINE_integer("child_steps_per_epoch", 0, "Cap on child steps per epoch (0: full passes).", lower_bound=0)
    flags.DEFINE_integer("reward_window", 5, "Reward: best validation score of the last N epochs (5; 1 with --space=nas_rnn)...", lower_bound=1)
    flags.DEFINE_float("reward_exponent", 3.0, "...raised to this power (image spaces; see --reward_c for recurrent cells).", lower_bound=0.0)
    flags.DEFINE_integer("max_child_params", 0, "Children with more parameters get reward 0 (0: no limit).", lower_bound=0)


def define_nas_cnn_flags() -> None:
    """The NAS macro-CNN space and its depth schedule."""
    define_int_list("filter_heights", "1,3,5,7", "Filter-height choices.")
    define_int_list("filter_widths", "1,3,5,7", "Filter-width choices.")
    define_int_list("num_filters", "24,36,48,64", "Number-of-filters choices.")
    flags.DEFINE_bool("predict_strides", False, "Also search stride height and width.")
    define_int_list("strides", "1,2,3", "Stride choices (with --predict_strides).")
    flags.DEFINE_bool("skip_connections", True, "Search skip connections with anchor points.")
    define_int_list("max_pool_after", "", "Layers followed by a hand-placed 2x2 max pooling.", allow_empty=True, min_value=0)
    flags.DEFINE_integer("start_depth", 3, "Layers of the first children (depth schedule).", lower_bound=1)
    flags.DEFINE_integer("depth_increment", 2, "Layers added by the depth schedule.", lower_bound=0)
    flags.DEFINE_integer("depth_increment_every", 1600, "Children between two depth increments.", lower_bound=1)
    flags.DEFINE_integer("max_depth", 0, "Depth where the schedule stops (0: no limit).", lower_bound=0)


def define_nas_rnn_flags() -> None:
    """The NAS recurrent-cell (tree) space."""
    from nas_tf.spaces.nas_rnn import ACTIVATIONS, COMBINATIONS

    flags.DEFINE_integer("rnn_base", 8, "Leaves of the cell tree (a power of two; 8 in the paper).", lower_bound=2)
    flags.register_validator(
        "rnn_base", lambda v: v is None or v & (v - 1) == 0, message="--rnn_base must be a power of two (2, 4, 8, 16, ...)"
    )
    for name, default, known in (
        ("rnn_combinations", COMBINATIONS, COMBINATIONS),
        ("rnn_activations", ACTIVATIONS, ACTIVATIONS),
    ):
        flags.DEFINE_list(name, ",".join(default), f"Choices of the tree nodes, among {', '.join(known)}.")
        flags.register_validator(name, _names_validator(name, known))


def define_lm_flags() -> None:
    """The language model that trains a recurrent cell (search children and final runs)."""
    flags.DEFINE_integer(
        "lm_units",
        None,
        "Units of every RNN layer (default: 64 for search children, 200 for final runs).",
        lower_bound=1,
    )
    flags.DEFINE_integer("lm_layers", 2, "Stacked RNN layers.", lower_bound=1)
    flags.DEFINE_integer("lm_embedding_dim", 0, "Word-vector size (0: --lm_units).", lower_bound=0)
    flags.DEFINE_bool("lm_tie_weights", True, "Tie the softmax weights to the embedding.")
    flags.DEFINE_integer("lm_bptt", 35, "Steps of truncated back-propagation through time.", lower_bound=1)
    flags.DEFINE_float(
        "lm_embedding_dropout",
        0.0,
        "Rate of whole word types dropped from the embedding.",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    flags.DEFINE_float(
        "lm_input_dropout",
        0.0,
        "Variational dropout on the embedded words.",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    flags.DEFINE_float(
        "lm_output_dropout",
        None,
        "Variational dropout on every RNN layer's output (default: 0.2 for search children, 0.3 for final runs).",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    flags.DEFINE_float(
        "lm_recurrent_dropout",
        0.0,
        "Variational dropout on the recurrent connections.",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    flags.DEFINE_float("lm_clip_norm", 0.25, "Clip the gradients to this global norm.", lower_bound=1e-9)
    flags.DEFINE_integer("lm_eval_batch_size", 10, "Rows read in parallel for validation and test.", lower_bound=1)


def define_lm_reward_flags() -> None:
    """The reward of recurrent-cell children."""
    flags.DEFINE_float("reward_c", 80.0, "Recurrent cells: reward = c / (validation perplexity)^2.", lower_bound=1e-12)


def define_ppo_flags() -> None:
    """PPO's own settings (``--algorithm=ppo``)."""
    flags.DEFINE_float("ppo_clip", 0.2, "PPO: clipping range eps of the probability ratio.", lower_bound=1e-6, upper_bound=0.999)
    flags.DEFINE_integer("ppo_epochs", 4, "PPO: optimisation epochs over each batch of architectures.", lower_bound=1)


def define_nasnet_space_flags() -> None:
    """The NASNet cell search space."""
    flags.DEFINE_integer("num_blocks", 5, "NASNet: blocks per cell (B).", lower_bound=1)
    flags.DEFINE_enum(
        "op_set", "full", ["full", "reduced"], "NASNet ops: 'full' (the paper's 13) or 'reduced' (the 8 later work kept)."
    )
    from nas_tf.spaces.nasnet import COMBINERS

    flags.DEFINE_list("combiners", ",".join(COMBINERS), "NASNet: how a block combines its two results (add, concat).")
    flags.register_validator("combiners", _names_validator("combiners", COMBINERS))


def define_nasnet_network_flags(
    num_cells: int = 6, num_conv_filters: int = 32, drop_path_keep_prob: float = 1.0, aux_head: bool = False
) -> None:
    """How NASNet cells are stacked into a network (N @ 24F), and its training aids."""
    flags.DEFINE_integer("nasnet_cells", num_cells, "NASNet network: N, normal cells per stage (3 stages).", lower_bound=1)
    flags.DEFINE_integer(
        "nasnet_filters", num_conv_filters, "NASNet network: F, filters of the first stage's cells (N @ 24F).", lower_bound=1
    )
    flags.DEFINE_enum(
        "nasnet_skeleton", "cifar", ["cifar", "imagenet"], "NASNet network: 3x3 conv stem, or stride-2 stem + 2 reduction stem cells."
    )
    flags.DEFINE_float("nasnet_stem_multiplier", 3.0, "NASNet network: stem filters = multiplier x F (x 32 on ImageNet).", lower_bound=1e-6)
    flags.DEFINE_bool("nasnet_skip_reduction", False, "NASNet network: the cell after a reduction reads the reduction's h_i-1 (Large).")
    flags.DEFINE_float(
        "drop_path_keep_prob", drop_path_keep_prob, "ScheduledDropPath keep probability (1: off).", lower_bound=1e-3, upper_bound=1.0
    )
    flags.DEFINE_bool("aux_head", aux_head, "Auxiliary classifier head after the second stage.")


# Defaults that depend on what is searched or trained, applied to the flags
# not given on the command line (or in a --flagfile).
SEARCH_DEFAULTS = {
    "nas_cnn": {"model_dir": "runs/nas_cnn", "dataset": "digits"},
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
ENAS_DEFAULTS = {
    "micro": {
        "model_dir": "runs/enas_micro",
        "dataset": "digits",
        "controller_lr": 3.5e-3,
        "controller_units": 64,
        "controller_layers": 1,
        "controller_init_range": 0.1,
        "tanh_constant": 1.1,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
    },
    "macro": {
        "model_dir": "runs/enas_macro",
        "dataset": "digits",
        "controller_lr": 1e-3,
        "controller_units": 64,
        "controller_layers": 1,
        "controller_init_range": 0.1,
        "tanh_constant": 1.5,
        "entropy_weight": 1e-4,
        "baseline_decay": 0.99,
        "enas_filters": 16,
        "enas_layers": 6,
    },
    "rnn": {
        "model_dir": "runs/enas_rnn",
        "dataset": "pydoc",
        "controller_lr": 3.5e-4,
        "controller_units": 64,
        "controller_layers": 1,
        "controller_init_range": 0.1,
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
FINAL_DEFAULTS = {
    "image": {"dataset": "digits"},
    "recurrent": {
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


def apply_defaults(defaults: dict[str, Any]) -> None:
    """Sets the flags in ``defaults`` that the user did not give (defined flags only)."""
    for name, value in defaults.items():
        if name in FLAGS and not FLAGS[name].present:
            FLAGS[name].value = value


def require_dataset(kind: str, context: str) -> str:
    """The --dataset value; fails with a clear message if it is not an ``"image"``/``"text"`` dataset."""
    from nas_tf.data.images import IMAGE_DATASETS
    from nas_tf.data.text import TEXT_DATASETS

    known = IMAGE_DATASETS if kind == "image" else TEXT_DATASETS
    if FLAGS.dataset not in known:
        fail(f"--dataset={FLAGS.dataset}: {context} needs a {kind} dataset: {', '.join(known)}")
    return FLAGS.dataset


# ---------------------------------------------------------------- builders


def setup_logging() -> None:
    """Progress lines of the library (logger ``nas_tf``) on stderr."""
    logger = logging.getLogger("nas_tf")
    if not any(getattr(h, "_nas_tf", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._nas_tf = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # TensorFlow's own INFO lines (checkpoint sharding, ...) are noise here.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)


def nas_cnn_space_from_flags():
    from nas_tf.spaces.nas_cnn import NASCNNSpace

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


def strategy_from_flags(decisions):
    """REINFORCE / random search (and PPO where the script defines it)."""
    from nas_tf.controller import RandomSearch, Reinforce, controller_for

    if FLAGS.algorithm == "random":
        return RandomSearch(seed=FLAGS.seed)
    controller = controller_for(
        decisions,
        lstm_units=FLAGS.controller_units,
        lstm_layers=FLAGS.controller_layers,
        init_range=FLAGS.controller_init_range,
        temperature=FLAGS.temperature,
        tanh_constant=FLAGS.tanh_constant,
        seed=FLAGS.seed,
    )
    kwargs = dict(
        learning_rate=FLAGS.controller_lr,
        baseline_decay=FLAGS.baseline_decay,
        entropy_weight=FLAGS.entropy_weight,
        seed=FLAGS.seed,
    )
    if "controller_beta1" in FLAGS:  # the ENAS options (define_enas_flags)
        kwargs.update(
            beta_1=FLAGS.controller_beta1,
            epsilon=FLAGS.controller_epsilon,
            entropy_mode=FLAGS.entropy_mode,
            baseline_update=FLAGS.baseline_update,
            skip_target=FLAGS.skip_target,
            skip_weight=FLAGS.skip_weight,
        )
    if FLAGS.algorithm == "reinforce":
        return Reinforce(controller, **kwargs)
    from nas_tf.controller import ppo  # defined with the NASNet search

    return ppo.PPO(controller, **kwargs, **ppo.options_from_flags(FLAGS))


def nasnet_space_from_flags():
    from nas_tf.spaces.nasnet import NASNetSpace

    return NASNetSpace.with_op_set(FLAGS.op_set, num_blocks=FLAGS.num_blocks, combiners=tuple(FLAGS.combiners))


def nasnet_builder_options_from_flags() -> dict[str, Any]:
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


def set_defaults(**values: Any) -> None:
    """Changes the defaults of flags defined by a shared group (a script's own defaults)."""
    for name, value in values.items():
        FLAGS.set_default(name, value)


def image_data_from_flags():
    from nas_tf.data.images import load_image_data

    return load_image_data(FLAGS.dataset or "digits", data_dir=FLAGS.data_dir, download=FLAGS.download_data)


def text_data_from_flags():
    from nas_tf.data.text import load_text_data

    return load_text_data(FLAGS.dataset or "pydoc", data_dir=FLAGS.data_dir)


def nas_rnn_space_from_flags():
    from nas_tf.spaces.nas_rnn import NASRNNSpace

    return NASRNNSpace(
        base=FLAGS.rnn_base,
        combinations=tuple(FLAGS.rnn_combinations),
        activations=tuple(FLAGS.rnn_activations),
    )


def lm_model_options_from_flags() -> dict[str, Any]:
    """:class:`~nas_tf.models.LanguageModel` arguments from the --lm_* flags."""
    if FLAGS.lm_tie_weights and FLAGS.lm_embedding_dim and FLAGS.lm_embedding_dim != FLAGS.lm_units:
        fail(
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


def final_lm_config_from_flags():
    """The final language-model training of scripts/train_final.py (its flags and the --lm_* flags)."""
    from nas_tf.training.final_lm import FinalLMConfig

    return FinalLMConfig(
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        bptt=FLAGS.lm_bptt,
        learning_rate=FLAGS.lr,
        momentum=FLAGS.momentum,
        nesterov=FLAGS.nesterov,
        lr_schedule=FLAGS.lr_schedule,
        min_learning_rate=FLAGS.min_lr,
        clip_norm=FLAGS.lm_clip_norm,
        weight_decay=FLAGS.weight_decay,
        eval_batch_size=FLAGS.lm_eval_batch_size,
        seed=FLAGS.seed,
        model_options=lm_model_options_from_flags(),
    )


def lm_child_config_from_flags():
    from nas_tf.search.lm_child import LMChildConfig

    return LMChildConfig(
        epochs=FLAGS.child_epochs,
        batch_size=FLAGS.child_batch_size,
        bptt=FLAGS.lm_bptt,
        learning_rate=FLAGS.child_lr,
        momentum=FLAGS.child_momentum,
        nesterov=FLAGS.child_nesterov,
        clip_norm=FLAGS.lm_clip_norm,
        weight_decay=FLAGS.child_weight_decay,
        lr_schedule=FLAGS.child_lr_schedule,
        reward_c=FLAGS.reward_c,
        reward_window=FLAGS.reward_window,
        max_params=FLAGS.max_child_params,
        steps_per_epoch=FLAGS.child_steps_per_epoch,
        eval_batch_size=FLAGS.lm_eval_batch_size,
        model_options=lm_model_options_from_flags(),
    )


def child_config_from_flags(**builder_options: Any):
    from nas_tf.search.image_child import ImageChildConfig

    return ImageChildConfig(
        epochs=FLAGS.child_epochs,
        batch_size=FLAGS.child_batch_size,
        learning_rate=FLAGS.child_lr,
        momentum=FLAGS.child_momentum,
        nesterov=FLAGS.child_nesterov,
        weight_decay=FLAGS.child_weight_decay,
        lr_schedule=FLAGS.child_lr_schedule,
        reward_window=FLAGS.reward_window,
        reward_exponent=FLAGS.reward_exponent,
        max_params=FLAGS.max_child_params,
        steps_per_epoch=FLAGS.child_steps_per_epoch,
        builder_options=builder_options,
    )


def enas_space_from_flags():
    """The ENAS space named by --space."""
    if FLAGS.space == "micro":
        from nas_tf.spaces.enas_micro import EnasMicroSpace

        return EnasMicroSpace(num_nodes=FLAGS.enas_nodes)
    if FLAGS.space == "macro":
        from nas_tf.spaces.enas_macro import EnasMacroSpace

        return EnasMacroSpace(num_layers=FLAGS.enas_layers)
    raise ValueError(f"--space={FLAGS.space}: not an image space")


def enas_image_supernet_from_flags(space, data):
    """The macro or micro supernet for ``space`` and ``data``."""
    options = dict(filters=FLAGS.enas_filters, weight_decay=FLAGS.shared_weight_decay)
    if FLAGS.space == "micro":
        from nas_tf.models.enas_micro import EnasMicroSupernet

        return EnasMicroSupernet(space, data.num_classes, num_cells=FLAGS.enas_cells, op_selection=FLAGS.op_selection, **options)
    from nas_tf.models.enas_macro import EnasMacroSupernet

    if FLAGS.op_selection == "merged":
        fail("--op_selection=merged applies to --space=micro (the macro supernet has switch and all)")
    return EnasMacroSupernet(space, data.num_classes, op_selection=FLAGS.op_selection, **options)


def shared_training_config_from_flags():
    from nas_tf.search.image_supernet import SharedTrainingConfig

    return SharedTrainingConfig(
        batch_size=FLAGS.shared_batch_size,
        lr_max=FLAGS.shared_lr_max,
        lr_min=FLAGS.shared_lr_min,
        lr_t0=FLAGS.shared_lr_t0,
        lr_t_mul=FLAGS.shared_lr_t_mul,
        grad_clip=FLAGS.shared_grad_clip,
        steps_per_epoch=FLAGS.shared_steps_per_epoch,
        seed=FLAGS.seed,
    )


def one_shot_config_from_flags():
    from nas_tf.search.one_shot import OneShotConfig

    return OneShotConfig(
        model_dir=FLAGS.model_dir,
        num_epochs=FLAGS.num_epochs,
        controller_steps=FLAGS.controller_steps,
        controller_aggregate=FLAGS.controller_aggregate,
        derive_samples=FLAGS.derive_samples,
        derive_batches=FLAGS.derive_batches,
        seed=FLAGS.seed,
    )


def search_config_from_flags(start_depth: int | None = None):
    from nas_tf.search.multi_trial import SearchConfig

    return SearchConfig(
        model_dir=FLAGS.model_dir,
        num_architectures=FLAGS.num_architectures,
        archs_per_step=FLAGS.archs_per_step,
        seed=FLAGS.seed,
        start_depth=start_depth,
        depth_increment=FLAGS.depth_increment if start_depth else 2,
        depth_increment_every=FLAGS.depth_increment_every if start_depth else 1600,
        max_depth=(FLAGS.max_depth or None) if start_depth else None,
        async_controller=FLAGS.async_controller if "async_controller" in FLAGS else False,
    )


def resolved_flags(modules: Iterable[str] | None = None) -> dict[str, Any]:
    """Flag values defined by the script and by this module (absl's own left out)."""
    names = set()
    wanted = set(modules or ()) | {__name__, sys.argv[0], "__main__"}
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module in wanted or module.endswith(".py") and os.path.abspath(module) == os.path.abspath(sys.argv[0]):
            names.update(f.name for f in module_flags)
    return {n: FLAGS[n].value for n in sorted(names)}


def write_flags(model_dir: str, filename: str = "flags.json") -> str:
    """Writes the resolved flags (JSON) into the run directory, atomically."""
    from nas_tf.utils.io import atomic_write_json

    path = os.path.join(model_dir, filename)
    atomic_write_json(path, resolved_flags())
    return path


def fail(message: str) -> None:
    """Prints a one-line error (no traceback) and exits with status 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2)


# ------------------------------------------- multi-trial search execution


def define_search_execution_flags() -> None:
    """How a multi-trial search trains its children: parallel workers, devices, timeouts, hosts."""
    flags.DEFINE_integer(
        "parallel_children", 0,
        "Train N children at once, one worker process each (0: one at a time in this process).", lower_bound=0,
    )
    flags.DEFINE_list(
        "child_devices", None,
        "GPUs of each child worker: 0,1,2,3 (one each) or 0+1,2+3 (two each, mirrored). Default: round robin "
        "over the local GPUs (CPU only without GPUs). Sets --parallel_children to the number of groups.",
    )
    flags.DEFINE_float(
        "child_timeout", 0.0,
        "Seconds a child may train before its worker is killed and it gets reward 0 (0: no limit; needs "
        "--parallel_children).", lower_bound=0.0,
    )
    flags.DEFINE_integer("child_retries", 1, "Times a child is retried after its worker process died.", lower_bound=0)
    flags.DEFINE_integer("child_threads", 0, "TensorFlow threads of each child worker (0: cores / workers).", lower_bound=0)
    flags.DEFINE_bool(
        "async_controller", False,
        "Update the controller on every returned child (the NAS paper's asynchronous replicas) instead of once "
        "per --archs_per_step children; one host only.",
    )
    define_strategy_flags()


def search_evaluator_from_flags(spec):
    """The evaluator and the cluster strategy (None on one host) of a multi-trial search.

    ``spec`` is the :class:`~nas_tf.search.child.TrainerSpec` of the children.
    With ``--parallel_children`` the children train in worker processes on
    their ``--child_devices`` (this process hides its GPUs from itself);
    otherwise here, under ``--strategy`` (mirrored: each child data-parallel).
    ``--strategy=multi_worker`` makes this host one of the search's replicas.
    Must run before TensorFlow executes any op.
    """
    import tensorflow as tf

    from nas_tf.data import DatasetUnavailableError
    from nas_tf.distribute import num_replicas
    from nas_tf.search import InProcessEvaluator
    from nas_tf.search.parallel import ParallelEvaluator, parse_device_groups

    groups = FLAGS.child_devices
    parallel = FLAGS.parallel_children
    if groups and parallel and len(groups) != parallel:
        fail(f"--child_devices={','.join(groups)} names {len(groups)} group(s) but --parallel_children={parallel}")
    parallel = parallel or (len(groups) if groups else 0)
    if FLAGS.child_timeout and not parallel:
        fail(f"--child_timeout={FLAGS.child_timeout:g} needs --parallel_children >= 1 (a child training in the "
             "search process cannot be stopped)")
    if FLAGS.async_controller and FLAGS.strategy == "multi_worker":
        fail("--async_controller runs on one host; --strategy=multi_worker updates the controller synchronously")
    cluster, child_strategy, device_groups = None, None, None
    if parallel:
        if FLAGS.strategy not in ("auto", "multi_worker") or FLAGS.num_cpu_devices or FLAGS.num_gpus is not None:
            fail(f"--strategy={FLAGS.strategy}: with --parallel_children each worker trains on its --child_devices "
                 "group (mirrored when a group has several GPUs); use --strategy=auto (or multi_worker) and "
                 "--child_devices instead of --num_gpus/--num_cpu_devices")
        try:
            device_groups = parse_device_groups(groups, parallel, len(tf.config.list_physical_devices("GPU")))
        except ValueError as e:
            fail(f"--child_devices: {e}")
        tf.config.set_visible_devices([], "GPU")  # the workers own the GPUs
    strategy = distribute_strategy_from_flags()
    if FLAGS.strategy == "multi_worker":
        cluster = strategy
    elif num_replicas(strategy) > 1:
        child_strategy = strategy
    try:
        trainer = spec.build(strategy=child_strategy)
    except DatasetUnavailableError as e:
        fail(f"--dataset={spec.dataset}: {e}")
    except ValueError as e:
        fail(f"--strategy={FLAGS.strategy}: {e}")
    if parallel:
        evaluator = ParallelEvaluator(
            spec, parallel, device_groups, child_timeout=FLAGS.child_timeout, retries=FLAGS.child_retries,
            threads_per_worker=FLAGS.child_threads, settings=trainer.settings(),
        )
    else:
        evaluator = InProcessEvaluator(trainer, trainer.settings())
    return evaluator, cluster


def run_multi_trial_search(space, spec, start_depth: int | None = None) -> None:
    """Builds and runs (or resumes) the multi-trial search of a script; prints the summary."""
    from nas_tf.distribute import worker_info
    from nas_tf.search import MultiTrialSearch, ResumeMismatchError
    from nas_tf.search.parallel import WorkerStartError

    evaluator, cluster = search_evaluator_from_flags(spec)
    try:
        search = MultiTrialSearch(
            space,
            strategy_from_flags(space.decisions),
            evaluator,
            search_config_from_flags(start_depth=start_depth),
            cluster=cluster,
        )
        chief = worker_info(cluster).is_chief
        if chief:
            os.makedirs(FLAGS.model_dir, exist_ok=True)
        try:
            summary = search.run()
        except ResumeMismatchError as e:
            fail(str(e))
        except WorkerStartError as e:
            fail(f"--parallel_children={FLAGS.parallel_children or len(FLAGS.child_devices or [])}: {e}")
        if chief:
            write_flags(FLAGS.model_dir)
        print(dump(summary))
    finally:
        evaluator.close()


def handle_cluster_failures(main):
    """Wraps a script's ``main``: when another worker of a ``--strategy=multi_worker``
    run stops, this worker's collective fails; say so in one line, and how to resume."""
    import functools

    @functools.wraps(main)
    def wrapped(argv):
        import tensorflow as tf

        try:
            return main(argv)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
            if "strategy" not in FLAGS or FLAGS.strategy != "multi_worker":
                raise
            detail = " ".join(str(e.message if hasattr(e, "message") else e).split())
            hint = detail[detail.find("The following tasks"):][:200] if "The following tasks" in detail else detail[:200]
            fail(
                f"--strategy=multi_worker: another worker of the cluster stopped ({hint}); re-run the same command "
                "on every host to resume from the last checkpoint"
            )

    return wrapped
