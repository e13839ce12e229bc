"""The flag definitions of the scripts, grouped by topic.

Scripts call the ``define_*`` functions of the groups they need; every flag is
validated when the command line is parsed, and the error names the flag and
the bad value. Each group is a topic of ``--helpfull`` (search, search space,
controller, child, shared weights, data, language model, final training,
execution); a script's ``--help`` lists its main flags
(:func:`declare_main_flags`). What the values become is
:mod:`nas_tf.cli.configs`; how a run goes is :mod:`nas_tf.cli.drivers`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from typing import Any

from absl import flags

FLAGS = flags.FLAGS

# The choices some flags offer, named here so that defining the flags (and
# --help) imports no TensorFlow; tests check them against the modules that
# own them (nas_tf.distribute.STRATEGIES, the datasets of nas_tf.tasks).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
IMAGE_DATASETS = ("digits", "cifar10")
TEXT_DATASETS = ("pydoc", "ptb")


class FlagError(ValueError):
    """A flag value (or a combination of flags) that cannot run; the message names the flags."""


# ------------------------------------------------------------------ topics


class _Topic:
    """Defines flags under one ``--helpfull`` heading (absl groups flags by module name)."""

    def __init__(self, title: str):
        self.module = f"nas_tf: {title}"

    def integer(self, name: str, default: int | None, help: str, **kwargs: Any) -> None:
        flags.DEFINE_integer(name, default, help, module_name=self.module, **kwargs)

    def float(self, name: str, default: float | None, help: str, **kwargs: Any) -> None:
        flags.DEFINE_float(name, default, help, module_name=self.module, **kwargs)

    def string(self, name: str, default: str | None, help: str, **kwargs: Any) -> None:
        flags.DEFINE_string(name, default, help, module_name=self.module, **kwargs)

    def bool(self, name: str, default: bool, help: str, **kwargs: Any) -> None:
        flags.DEFINE_bool(name, default, help, module_name=self.module, **kwargs)

    def enum(self, name: str, default: str | None, values: Iterable[str], help: str, **kwargs: Any) -> None:
        flags.DEFINE_enum(name, default, list(values), help, module_name=self.module, **kwargs)

    def list(self, name: str, default: str | None, help: str, **kwargs: Any) -> None:
        flags.DEFINE_list(name, default, help, module_name=self.module, **kwargs)

    def int_list(self, name: str, default: str, help: str, allow_empty: bool = False, min_value: int = 1) -> None:
        """A comma-separated list of distinct integers, validated at parse time."""
        self.list(name, default, help)
        flags.register_validator(name, _int_list_validator(name, allow_empty, min_value))

    def names(self, name: str, known: Iterable[str], help: str) -> None:
        """A comma-separated list of distinct names among ``known`` (all by default)."""
        known = tuple(known)
        self.list(name, ",".join(known), f"{help} Among {', '.join(known)}.")
        flags.register_validator(name, _names_validator(name, known))


SEARCH = _Topic("search")
SPACE = _Topic("search space")
CONTROLLER = _Topic("controller")
CHILD = _Topic("child")
SHARED = _Topic("shared weights")
DATA = _Topic("data")
LM = _Topic("language model")
FINAL = _Topic("final training")
EXECUTION = _Topic("execution")


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
    """The integers of a list flag."""
    return tuple(int(v) for v in getattr(FLAGS, name))


def declare_main_flags(names: Iterable[str]) -> None:
    """The flags the calling script's ``--help`` lists (``--helpfull`` lists all, by topic)."""
    module = inspect.currentframe().f_back.f_globals.get("__name__", "")
    if module == "__main__":  # absl names the main module by its path
        module = sys.argv[0]
    for name in names:
        FLAGS.register_key_flag_for_module(module, FLAGS[name])


def set_defaults(**values: Any) -> None:
    """Changes the defaults of flags defined by a shared group (a script's own defaults)."""
    for name, value in values.items():
        FLAGS.set_default(name, value)


# ----------------------------------------------------------------- search


def define_run_flags(default_model_dir: str, topic: _Topic = SEARCH) -> None:
    """--model_dir and --seed."""
    topic.string("model_dir", default_model_dir, "Run directory; re-running the same command resumes it.")
    topic.integer("seed", 0, "Seed of initialisations, samples and the data order.", lower_bound=0)


def define_search_flags() -> None:
    """The multi-trial loop: how many children, how many per controller step."""
    SEARCH.integer("num_architectures", 40, "Total child architectures to train.", lower_bound=1)
    SEARCH.integer("archs_per_step", 4, "Architectures per controller step (m).", lower_bound=1)


def define_one_shot_flags() -> None:
    """The one-shot (ENAS) loop: epochs, controller steps, the derivation."""
    SEARCH.integer(
        "num_epochs", 20, "Search epochs (each: one shared-weights pass, then the controller steps).", lower_bound=1
    )
    SEARCH.integer("controller_steps", 10, "Controller updates per epoch.", lower_bound=0)
    SEARCH.integer("controller_aggregate", 5, "Architectures per controller update (k).", lower_bound=1)
    SEARCH.integer("derive_samples", 16, "Architectures sampled at the end; the best on validation is kept.", lower_bound=1)
    SEARCH.integer("derive_batches", 2, "Validation minibatches each derived architecture is scored on.", lower_bound=1)


# -------------------------------------------------------------- controller


def define_controller_flags(
    default_algorithm: str = "reinforce", algorithms: Iterable[str] = ("reinforce", "random"), skips: bool = False
) -> None:
    """The searcher, the controller and its policy-gradient optimiser (``skips``: the space has skip decisions)."""
    CONTROLLER.enum(
        "algorithm", default_algorithm, algorithms,
        "Search algorithm (the searcher): the LSTM controller learning with REINFORCE or PPO, regularized "
        "evolution, or random search.",
    )
    if "evolution" in algorithms:
        CONTROLLER.integer("population_size", 20, "Evolution: architectures in the population (P).", lower_bound=1)
        CONTROLLER.integer(
            "sample_size", 5, "Evolution: architectures drawn from the population per tournament (S <= P).", lower_bound=1
        )
    CONTROLLER.float("controller_lr", 6e-4, "Controller Adam learning rate.", lower_bound=0.0)
    CONTROLLER.integer("controller_units", 35, "LSTM units per controller layer.", lower_bound=1)
    CONTROLLER.integer("controller_layers", 2, "Stacked controller LSTM layers.", lower_bound=1)
    CONTROLLER.float("controller_init_range", 0.08, "Controller weights start U(-r, r).", lower_bound=0.0)
    CONTROLLER.float(
        "baseline_decay", 0.95, "Decay of the reward moving-average baseline.", lower_bound=0.0, upper_bound=0.999999
    )
    CONTROLLER.float("entropy_weight", 0.0, "Weight of the entropy bonus (0: off).", lower_bound=0.0)
    CONTROLLER.float("temperature", None, "Divide controller logits by this (unset: off).", lower_bound=1e-6)
    CONTROLLER.float("tanh_constant", None, "Squash controller logits to C*tanh(logits) (unset: off).", lower_bound=1e-6)
    CONTROLLER.enum(
        "baseline_mode", "per_arch", ["per_arch", "per_batch"],
        "Move the reward baseline once per architecture in sampling order (the papers, the ENAS code) or once per "
        "step from the step's mean reward.",
    )
    if skips:
        CONTROLLER.enum(
            "skip_form", "sigmoid", ["sigmoid", "softmax"],
            "P(skip) from the attention score q': sigmoid = sigmoid(q'), the NAS paper; softmax = sigmoid(2q'), the "
            "ENAS authors' two-way softmax over [-q', q'].",
        )


def define_enas_controller_flags() -> None:
    """The options of the ENAS authors' controller."""
    CONTROLLER.float(
        "controller_beta1", 0.0, "Controller Adam beta_1 (0 in the authors' code).", lower_bound=0.0, upper_bound=0.999
    )
    CONTROLLER.float("controller_epsilon", 1e-3, "Controller Adam epsilon (1e-3 in the authors' code).", lower_bound=0.0)
    CONTROLLER.enum("entropy_mode", "reward", ["reward", "loss"], "Entropy bonus added to the reward (ENAS) or to the loss.")
    CONTROLLER.enum(
        "baseline_update", "before", ["before", "after"], "Update the baseline before the advantage (ENAS code) or after."
    )
    CONTROLLER.float(
        "skip_target", 0.4, "Macro: target skip-connection probability of the KL penalty.",
        lower_bound=1e-6, upper_bound=0.999999,
    )
    CONTROLLER.float("skip_weight", 0.8, "Macro: weight of the skip KL penalty (0: off).", lower_bound=0.0)
    CONTROLLER.float(
        "op_tanh_reduce", 1.0, "Micro: the op logits squash with tanh_constant / this (the authors' code: 2.5).",
        lower_bound=1e-6,
    )
    CONTROLLER.bool(
        "op_bias", False,
        "Micro: the op logits' learned bias starts at 10 on the separable convs, with a fixed +-0.25 on the normal "
        "cell (the authors' code).",
    )
    CONTROLLER.float(
        "distance_prior", None,
        "Rnn: subtract d^2 / this from the logit of the input node d steps back (enas_lm: 6; unset: off).",
        lower_bound=1e-6,
    )
    CONTROLLER.bool("distance_scaled_input", False, "Rnn: feed the chosen input node divided by 0.1 + d (enas_lm).")
    CONTROLLER.bool(
        "tie_activation_logits", False, "Rnn: activation logits h E^T tied to the activation embedding (enas_lm)."
    )


def define_ppo_flags() -> None:
    """PPO's own settings (``--algorithm=ppo``)."""
    CONTROLLER.float(
        "ppo_clip", 0.2, "PPO: clipping range eps of the probability ratio.", lower_bound=1e-6, upper_bound=0.999
    )
    CONTROLLER.integer("ppo_epochs", 4, "PPO: optimisation epochs over each batch of architectures.", lower_bound=1)


# ------------------------------------------------------------ search spaces


def define_benchmark_flags() -> None:
    """Tabular benchmarks: rewards read from a table instead of training (NAS-Bench-201)."""
    DATA.enum(
        "benchmark", None, ["analog_nasbench", "nats"],
        "--space=nb201: read each child's reward (test accuracy / 100) from this NAS-Bench-201 table instead of "
        "training it: analog_nasbench (the PyPI package: pip install -e \".[benchmarks]\") or nats (the "
        "NATS-tss-v1_0-3ffb9-simple files in --benchmark_dir).",
    )
    DATA.string("benchmark_dir", None, "The NATS-Bench topology directory (NATS-tss-v1_0-3ffb9-simple); implies --benchmark=nats.")


def define_nas_cnn_flags() -> None:
    """The NAS macro-CNN space and its depth schedule."""
    SPACE.int_list("filter_heights", "1,3,5,7", "NAS CNN: filter-height choices.")
    SPACE.int_list("filter_widths", "1,3,5,7", "NAS CNN: filter-width choices.")
    SPACE.int_list("num_filters", "24,36,48,64", "NAS CNN: number-of-filters choices.")
    SPACE.bool("predict_strides", False, "NAS CNN: also search stride height and width.")
    SPACE.int_list("strides", "1,2,3", "NAS CNN: stride choices (with --predict_strides).")
    SPACE.bool("skip_connections", True, "NAS CNN: search skip connections with anchor points.")
    SPACE.int_list(
        "max_pool_after", "", "NAS CNN: layers followed by a hand-placed 2x2 max pooling.", allow_empty=True, min_value=0
    )
    SPACE.integer("start_depth", 3, "NAS CNN: layers of the first children (depth schedule).", lower_bound=1)
    SPACE.integer("depth_increment", 2, "NAS CNN: layers added by the depth schedule.", lower_bound=0)
    SPACE.integer("depth_increment_every", 1600, "NAS CNN: children between two depth increments.", lower_bound=1)
    SPACE.integer("max_depth", 0, "NAS CNN: depth where the schedule stops (0: no limit).", lower_bound=0)


def define_nas_rnn_flags() -> None:
    """The NAS recurrent-cell (tree) space."""
    from nas_tf.spaces.nas_rnn import ACTIVATIONS, COMBINATIONS

    SPACE.integer("rnn_base", 8, "NAS RNN: leaves of the cell tree (a power of two; 8 in the paper).", lower_bound=2)
    flags.register_validator(
        "rnn_base", lambda v: v is None or v & (v - 1) == 0, message="--rnn_base must be a power of two (2, 4, 8, 16, ...)"
    )
    SPACE.names("rnn_combinations", COMBINATIONS, "NAS RNN: combination choices of the tree nodes.")
    SPACE.names("rnn_activations", ACTIVATIONS, "NAS RNN: activation choices of the tree nodes.")


def define_nasnet_space_flags() -> None:
    """The NASNet cell search space."""
    from nas_tf.spaces.nasnet import COMBINERS

    SPACE.integer("num_blocks", 5, "NASNet: blocks per cell (B).", lower_bound=1)
    SPACE.enum(
        "op_set", "full", ["full", "reduced"], "NASNet ops: 'full' (the paper's 13) or 'reduced' (the 8 later work kept)."
    )
    SPACE.names("combiners", COMBINERS, "NASNet: how a block combines its two results.")


def define_enas_space_flags() -> None:
    """The ENAS spaces: which one, and their sizes."""
    SPACE.enum("space", "micro", ["macro", "micro", "rnn"], "ENAS search space.")
    SPACE.integer("enas_layers", 12, "ENAS macro: layers of the network (L).", lower_bound=1)
    SPACE.integer("enas_nodes", 5, "ENAS micro and rnn: computed nodes per cell (B).", lower_bound=1)


# ------------------------------------------------------------------ child


def define_child_flags() -> None:
    """How children of a multi-trial search are trained and rewarded."""
    CHILD.integer("child_epochs", 5, "Training epochs per child.", lower_bound=1)
    CHILD.integer("child_batch_size", 32, "Child batch size.", lower_bound=1)
    CHILD.float("child_lr", 0.1, "Child SGD learning rate.", lower_bound=1e-12)
    CHILD.float("child_momentum", 0.9, "Child SGD momentum.", lower_bound=0.0, upper_bound=1.0)
    CHILD.bool("child_nesterov", True, "Nesterov momentum for children.")
    CHILD.float("child_weight_decay", 1e-4, "Child L2 weight decay.", lower_bound=0.0)
    CHILD.enum("child_lr_schedule", "constant", ["constant", "cosine"], "Child learning-rate schedule.")
    CHILD.integer("child_steps_per_epoch", 0, "Cap on child steps per epoch (0: full passes).", lower_bound=0)
    CHILD.integer("reward_window", 5, "Reward: best validation score of the last N epochs.", lower_bound=1)
    CHILD.integer("max_child_params", 0, "Children with more parameters get reward 0 (0: no limit).", lower_bound=0)


def define_image_reward_flags() -> None:
    """The reward of image children."""
    CHILD.float("reward_exponent", 3.0, "Image children: reward = (best validation accuracy)^exponent.", lower_bound=0.0)


def define_cost_flags() -> None:
    """Serving costs the reward of image children trades accuracy against (MnasNet; Vertex AI NAS)."""
    CHILD.float(
        "target_latency_ms", 0.0,
        "Latency-aware search: reward = accuracy * (latency / target) ** --latency_weight, the latency measured on "
        "the child as exported (batch 1; 0: off).", lower_bound=0.0,
    )
    CHILD.float("latency_weight", -0.07, "The exponent w of the latency factor (< 0; MnasNet: -0.07 soft, -1 hard).")
    CHILD.float("target_flops", 0.0, "FLOPs-aware search: target FLOPs of a child at batch 1 (0: off).", lower_bound=0.0)
    CHILD.float("flops_weight", -0.07, "The exponent w of the FLOPs factor (< 0).")
    CHILD.float("target_params", 0.0, "Size-aware search: target parameters of a child (0: off).", lower_bound=0.0)
    CHILD.float("params_weight", -0.07, "The exponent w of the parameters factor (< 0).")
    CHILD.enum(
        "cost_constraint", "soft", ["soft", "hard"],
        "soft: a bonus under the target and a penalty over it (MnasNet); hard: a penalty over the target only "
        "(Vertex AI NAS's hard limit).",
    )
    CHILD.enum("latency_backend", "tflite", ["tflite", "saved_model"], "What latency is measured on: the TFLite "
               "interpreter or a TensorFlow SavedModel, on this machine's CPU.")
    CHILD.integer("latency_runs", 50, "Timed runs per latency measurement (the median is kept).", lower_bound=1)
    CHILD.integer("latency_threads", 1, "Threads of the TFLite interpreter when timing.", lower_bound=1)


def define_lm_reward_flags() -> None:
    """The reward of recurrent-cell children."""
    CHILD.float(
        "reward_c", 80.0, "Recurrent cells: reward = c / (validation perplexity)^2 (ENAS: c / perplexity).",
        lower_bound=1e-12,
    )


def define_nasnet_network_flags(
    num_cells: int = 6, num_conv_filters: int = 32, drop_path_keep_prob: float = 1.0, aux_head: bool = False,
    topic: _Topic = CHILD,
) -> None:
    """How NASNet cells are stacked into a network (N @ 24F), and its training aids."""
    topic.integer("nasnet_cells", num_cells, "NASNet network: N, normal cells per stage (3 stages).", lower_bound=1)
    topic.integer(
        "nasnet_filters", num_conv_filters, "NASNet network: F, filters of the first stage's cells (N @ 24F).", lower_bound=1
    )
    topic.enum(
        "nasnet_skeleton", "cifar", ["cifar", "imagenet"],
        "NASNet network: 3x3 conv stem, or stride-2 stem + 2 reduction stem cells.",
    )
    topic.float(
        "nasnet_stem_multiplier", 3.0, "NASNet network: stem filters = multiplier x F (x 32 on ImageNet).", lower_bound=1e-6
    )
    topic.bool(
        "nasnet_skip_reduction", False, "NASNet network: the cell after a reduction reads the reduction's h_i-1 (Large)."
    )
    topic.float(
        "drop_path_keep_prob", drop_path_keep_prob, "ScheduledDropPath keep probability (1: off).",
        lower_bound=1e-3, upper_bound=1.0,
    )
    topic.bool("aux_head", aux_head, "Auxiliary classifier head after the second stage.")


# ---------------------------------------------------------- shared weights


def define_shared_weights_flags() -> None:
    """The ENAS supernet and how its shared weights are trained."""
    SHARED.integer("enas_cells", 1, "Micro supernet: normal cells per stage (N).", lower_bound=1)
    SHARED.integer("enas_filters", 8, "Image supernets: filters (micro: F of the first stage; macro: channels).", lower_bound=2)
    SHARED.enum(
        "op_selection", "switch", ["switch", "merged", "all"],
        "How an image supernet runs the chosen op: switch (only the chosen op; fastest step, longest trace), merged "
        "(micro only: one separable-conv path plus the pools; half the trace time, slower steps), all (every "
        "candidate, as the authors' code).",
    )
    SHARED.integer("shared_batch_size", 64, "Minibatch size per replica (also of the reward batches).", lower_bound=1)
    SHARED.float("shared_lr_max", 0.05, "Learning rate (images: at every warm restart).", lower_bound=1e-12)
    SHARED.float("shared_lr_min", 0.0005, "Images: learning rate at the end of a cosine period.", lower_bound=0.0)
    SHARED.integer("shared_lr_t0", 10, "Images: first cosine period in epochs.", lower_bound=1)
    SHARED.integer("shared_lr_t_mul", 2, "Images: growth of the period at every restart.", lower_bound=1)
    SHARED.float("shared_weight_decay", 1e-4, "L2 weight decay.", lower_bound=0.0)
    SHARED.float("shared_grad_clip", 5.0, "Global gradient-norm clip (0: off).", lower_bound=0.0)
    SHARED.integer("shared_steps_per_epoch", 0, "Cap on steps per pass (0: one full pass).", lower_bound=0)


def define_retrain_flags() -> None:
    """The retraining of the derived arch at the end of an ENAS search."""
    FINAL.integer("final_epochs", 10, "Retrain the derived arch from scratch for this many epochs (0: skip).", lower_bound=0)
    FINAL.integer("final_cells", 1, "Micro: normal cells per stage of the final network.", lower_bound=1)
    FINAL.integer("final_filters", 16, "Micro: F of the final network.", lower_bound=2)
    FINAL.float(
        "final_drop_path_keep_prob", 1.0, "Micro: ScheduledDropPath keep probability.", lower_bound=1e-6, upper_bound=1.0
    )
    FINAL.integer("final_cutout", 0, "Images: CutOut square side (0: off).", lower_bound=0)
    FINAL.bool("final_aux_head", False, "Micro: auxiliary head after the second stage.")
    FINAL.bool("export", True, "Export the retrained model as a SavedModel.")


def define_final_training_flags() -> None:
    """scripts/train_final.py: training an arch from scratch."""
    FINAL.string("arch", None, "Arch JSON file (or a published arch name, e.g. nasnet_a) to train.", required=True)
    FINAL.integer("epochs", 20, "Training epochs.", lower_bound=1)
    FINAL.integer("batch_size", 64, "Batch size per replica (recurrent cells: rows).", lower_bound=1)
    FINAL.float("lr", 0.1, "Initial SGD learning rate.", lower_bound=1e-12)
    FINAL.float("min_lr", 0.0, "Final learning rate of the cosine schedule.", lower_bound=0.0)
    FINAL.enum("lr_schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule.")
    FINAL.float("momentum", 0.9, "SGD momentum.", lower_bound=0.0, upper_bound=1.0)
    FINAL.bool("nesterov", True, "Nesterov momentum.")
    FINAL.float("weight_decay", 1e-4, "L2 weight decay.", lower_bound=0.0)
    FINAL.integer("cutout", 0, "Images: CutOut square side (0: off).", lower_bound=0)
    FINAL.bool("train_on_validation", False, "Images: also train on the validation split.")
    FINAL.float("dropout", 0.0, "Images: dropout before the classifier.", lower_bound=0.0, upper_bound=0.99)
    FINAL.float("aux_weight", 0.4, "NASNet: loss weight of the auxiliary head.", lower_bound=0.0)
    FINAL.bool("export", True, "Export a SavedModel to <model_dir>/saved_model.")


# ------------------------------------------------------------------- data


def define_data_flags(default: str | None = None, datasets: Iterable[str] | None = None) -> None:
    """--dataset, --data_dir, --download_data.

    Args:
        default: the default dataset (None: chosen by what is trained, see
            :mod:`nas_tf.cli.configs`).
        datasets: the dataset names offered (default: every task's).
    """
    if datasets is None:
        datasets = IMAGE_DATASETS + TEXT_DATASETS
    DATA.enum(
        "dataset", default, datasets,
        "Dataset. Images: 'digits' (embedded, no network) or 'cifar10' (tensorflow-datasets). Text: 'pydoc' "
        "(Python's own documentation, embedded, no network) or 'ptb' (Penn Treebank: ptb.train.txt, ptb.valid.txt, "
        "ptb.test.txt in --data_dir).",
    )
    DATA.string("data_dir", None, "Data directory: tensorflow-datasets (or CIFAR-10 pickles), or the PTB text files.")
    DATA.bool("download_data", False, "Let tensorflow-datasets download a missing dataset (needs network).")


# --------------------------------------------------------- language model


def define_lm_flags() -> None:
    """The language model that trains a recurrent cell (search children, supernets and final runs)."""
    LM.integer("lm_units", 64, "Units of every RNN layer.", lower_bound=1)
    LM.integer("lm_layers", 2, "Stacked RNN layers.", lower_bound=1)
    LM.integer("lm_embedding_dim", 0, "Word-vector size (0: --lm_units).", lower_bound=0)
    LM.bool("lm_tie_weights", True, "Tie the softmax weights to the embedding.")
    LM.integer("lm_bptt", 35, "Steps of truncated back-propagation through time.", lower_bound=1)
    LM.float("lm_embedding_dropout", 0.0, "Rate of whole word types dropped from the embedding.", lower_bound=0.0, upper_bound=0.99)
    LM.float("lm_input_dropout", 0.0, "Variational dropout on the embedded words.", lower_bound=0.0, upper_bound=0.99)
    LM.float("lm_output_dropout", 0.2, "Variational dropout on every RNN layer's output.", lower_bound=0.0, upper_bound=0.99)
    LM.float("lm_recurrent_dropout", 0.0, "Variational dropout on the recurrent connections.", lower_bound=0.0, upper_bound=0.99)
    LM.float("lm_clip_norm", 0.25, "Clip the gradients to this global norm.", lower_bound=1e-9)
    LM.integer("lm_eval_batch_size", 10, "Rows read in parallel for validation and test.", lower_bound=1)


def define_enas_lm_flags() -> None:
    """The options of the ENAS recurrent supernet's language model."""
    LM.float(
        "lm_x_dropout", 0.0, "ENAS rnn supernet: dropout on x_t inside the cell, one mask per sequence (enas_lm drop_x).",
        lower_bound=0.0, upper_bound=0.99,
    )


# -------------------------------------------------------------- execution


def define_strategy_flags() -> None:
    """--strategy, --num_gpus, --num_cpu_devices (nas_tf.distribute)."""
    EXECUTION.enum(
        "strategy", "auto", STRATEGIES,
        "tf.distribute strategy: auto (mirrored over the local GPUs when there are several, else one device), "
        "one_device, mirrored, multi_worker (cluster from TF_CONFIG or Slurm).",
    )
    EXECUTION.integer("num_gpus", None, "Local GPUs to use (default: all).", lower_bound=0)
    EXECUTION.integer(
        "num_cpu_devices", 0, "Without GPUs: split the CPU into N logical devices (mirrored over them).", lower_bound=0
    )


def define_search_execution_flags() -> None:
    """How a multi-trial search trains its children: parallel workers, devices, timeouts, hosts."""
    EXECUTION.integer(
        "parallel_children", 0,
        "Train N children at once, one worker process each (0: one at a time in this process).", lower_bound=0,
    )
    EXECUTION.list(
        "child_devices", None,
        "GPUs of each child worker: 0,1,2,3 (one each) or 0+1,2+3 (two each, mirrored). Default: round robin "
        "over the local GPUs (CPU only without GPUs). Sets --parallel_children to the number of groups.",
    )
    EXECUTION.float(
        "child_timeout", 0.0,
        "Seconds a child may train before its worker is killed and it gets reward 0 (0: no limit; needs "
        "--parallel_children).", lower_bound=0.0,
    )
    EXECUTION.integer("child_retries", 1, "Times a child is retried after its worker process died.", lower_bound=0)
    EXECUTION.integer("child_threads", 0, "TensorFlow threads of each child worker (0: cores / workers).", lower_bound=0)
    EXECUTION.bool(
        "async_controller", False,
        "Update the controller on every returned child (the NAS paper's asynchronous replicas) instead of once "
        "per --archs_per_step children; one host only.",
    )
    define_strategy_flags()
