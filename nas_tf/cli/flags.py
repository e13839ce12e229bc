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
    flags.DEFINE_enum("algorithm", default_algorithm, list(algorithms), "Search strategy.")
    flags.DEFINE_float("controller_lr", 6e-4, "Controller Adam learning rate.", lower_bound=0.0)
    flags.DEFINE_integer("controller_units", 35, "LSTM units per controller layer.", lower_bound=1)
    flags.DEFINE_integer("controller_layers", 2, "Stacked controller LSTM layers.", lower_bound=1)
    flags.DEFINE_float("controller_init_range", 0.08, "Controller weights start U(-r, r).", lower_bound=0.0)
    flags.DEFINE_float("baseline_decay", 0.95, "Decay of the reward moving-average baseline.", lower_bound=0.0, upper_bound=0.999999)
    flags.DEFINE_float("entropy_weight", 0.0, "Weight of the entropy bonus (0: off).", lower_bound=0.0)
    flags.DEFINE_float("temperature", None, "Divide controller logits by this (unset: off).", lower_bound=1e-6)
    flags.DEFINE_float("tanh_constant", None, "Squash controller logits to C*tanh(logits) (unset: off).", lower_bound=1e-6)


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


def define_child_flags() -> None:
    """How children are trained and rewarded."""
    flags.DEFINE_integer("child_epochs", 5, "Training epochs per child.", lower_bound=1)
    flags.DEFINE_integer("child_batch_size", 32, "Child batch size.", lower_bound=1)
    flags.DEFINE_float("child_lr", 0.1, "Child SGD learning rate.", lower_bound=1e-12)
    flags.DEFINE_float("child_momentum", 0.9, "Child SGD momentum.", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_bool("child_nesterov", True, "Nesterov momentum for children.")
    flags.DEFINE_float("child_weight_decay", 1e-4, "Child L2 weight decay.", lower_bound=0.0)
    flags.DEFINE_enum("child_lr_schedule", "constant", ["constant", "cosine"], "Child learning-rate schedule.")
    flags.DEFINE_integer("child_steps_per_epoch", 0, "Cap on child steps per epoch (0: full passes).", lower_bound=0)
    flags.DEFINE_integer("reward_window", 5, "Reward: best validation accuracy of the last N epochs...", lower_bound=1)
    flags.DEFINE_float("reward_exponent", 3.0, "...raised to this power.", lower_bound=0.0)
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
    if FLAGS.algorithm == "reinforce":
        return Reinforce(controller, **kwargs)
    from nas_tf.controller import ppo  # defined with the NASNet search

    return ppo.PPO(controller, **kwargs, **ppo.options_from_flags(FLAGS))


def image_data_from_flags():
    from nas_tf.data.images import load_image_data

    return load_image_data(FLAGS.dataset, data_dir=FLAGS.data_dir, download=FLAGS.download_data)


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
