#!/usr/bin/env python3
"""Trains a discovered architecture from scratch, evaluates it and exports it.

    python scripts/train_final.py --arch=runs/nas_cnn/best_arch.json \
        --model_dir=runs/nas_cnn_final --epochs=20

--arch takes an arch JSON file (any image space, or a nas_rnn recurrent cell)
or the name of a published architecture (e.g. nasnet_a, nascell). Writes into
--model_dir: arch.json, checkpoints/ (re-running the same command resumes),
metrics.json (per-epoch metrics, test accuracy or perplexity, parameters),
model.keras and saved_model/ (unless --noexport).

--strategy=mirrored (--num_gpus, or --num_cpu_devices on a machine without
GPUs) trains data-parallel on one host; --strategy=multi_worker on several
hosts: run the same command on every host, each with its TF_CONFIG (or inside
a Slurm allocation, one task per host with srun). --batch_size is per replica
(global batch: --batch_size x replicas). Only the chief writes --model_dir
(which must be on a filesystem every host shares); re-running the same command
on every host resumes from the chief's last checkpoint.

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        python scripts/train_final.py --arch=best_arch.json --model_dir=/shared/final \
        --strategy=multi_worker            # index 1 on host2

NASNet cells are stacked into an N @ 24F network (--nasnet_cells,
--nasnet_filters, --nasnet_skeleton) and trained with ScheduledDropPath
(--drop_path_keep_prob) and an auxiliary head (--aux_head, --aux_weight); the
NASNet-A CIFAR-10 setting is scripts/presets/nasnet_a_cifar10_final.flags.

A recurrent cell is trained as a language model (the --lm_* flags) on text:

    python scripts/train_final.py --arch=runs/nas_rnn/best_arch.json \
        --model_dir=runs/nas_rnn_final            # embedded text (--dataset=pydoc)
    python scripts/train_final.py --arch=nascell --dataset=ptb --data_dir=~/ptb
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nas_tf.cli import flags as cli  # noqa: E402

flags.DEFINE_string("arch", None, "Arch JSON file (or a published arch name) to train.", required=True)
cli.define_run_flags("runs/final")
cli.define_data_flags()
cli.define_lm_flags()
flags.DEFINE_integer("epochs", 20, "Training epochs (recurrent cells: 10).", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size (recurrent cells: 32 rows).", lower_bound=1)
flags.DEFINE_float("lr", 0.1, "Initial SGD learning rate (recurrent cells: 20).", lower_bound=1e-12)
flags.DEFINE_float("min_lr", 0.0, "Final learning rate of the cosine schedule.", lower_bound=0.0)
flags.DEFINE_enum("lr_schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (recurrent cells: 0).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("nesterov", True, "Nesterov momentum (recurrent cells: off).")
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay (recurrent cells: 0).", lower_bound=0.0)
flags.DEFINE_integer("cutout", 0, "CutOut square side (0: off).", lower_bound=0)
flags.DEFINE_bool("train_on_validation", False, "Also train on the validation split.")
flags.DEFINE_float("dropout", 0.0, "Dropout before the classifier.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_bool("export", True, "Export a SavedModel to <model_dir>/saved_model.")
cli.define_nasnet_network_flags(num_cells=2, num_conv_filters=16)
cli.define_strategy_flags()
flags.DEFINE_float("aux_weight", 0.4, "Loss weight of the auxiliary head.", lower_bound=0.0)
FLAGS = flags.FLAGS
NASNET_FLAGS = (
    "nasnet_cells", "nasnet_filters", "nasnet_skeleton", "nasnet_stem_multiplier", "nasnet_skip_reduction",
    "drop_path_keep_prob", "aux_head", "aux_weight",
)


def train_recurrent(arch) -> None:
    """--arch is a recurrent cell: train it as a language model on text."""
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.training.final_lm import train_final_lm

    cli.apply_defaults(cli.FINAL_DEFAULTS["recurrent"])
    for name in ("cutout", "train_on_validation", "dropout") + NASNET_FLAGS:
        if FLAGS[name].present:
            cli.fail(f"--{name} applies to image architectures; --arch is a recurrent cell (use the --lm_* flags)")
    cli.require_dataset("text", f"a recurrent cell (--arch of space {arch.space})")
    strategy = cli.distribute_strategy_from_flags()  # before any TensorFlow op: it may split the CPU
    try:
        corpus = cli.text_data_from_flags()
    except DatasetUnavailableError as e:
        cli.fail(f"--dataset={FLAGS.dataset}: {e}")
    replicas = strategy.num_replicas_in_sync
    rows = FLAGS.batch_size * replicas
    if corpus.num_windows("train", rows, FLAGS.lm_bptt) < 1:
        of = f" x {replicas} replicas (--strategy={FLAGS.strategy}) = {rows} rows" if replicas > 1 else " rows"
        cli.fail(f"--batch_size={FLAGS.batch_size}{of}: the training split of {corpus.name} is too short")
    config = cli.final_lm_config_from_flags()
    try:
        metrics = train_final_lm(arch, corpus, FLAGS.model_dir, config, export=FLAGS.export, strategy=strategy)
    except ValueError as e:
        cli.fail(f"--model_dir={FLAGS.model_dir}: {e}")
    finish(strategy, metrics, ("test_perplexity", "val_perplexity", "params", "wall_time"))


def finish(strategy, metrics: dict, keys: tuple) -> None:
    """Writes flags.json (the chief) and prints the summary (every worker)."""
    from nas_tf.distribute import worker_info
    from nas_tf.training.checkpointing import write_chief_outputs

    write_chief_outputs(strategy, lambda: cli.write_flags(FLAGS.model_dir))
    info = worker_info(strategy)
    summary = {k: metrics[k] for k in keys}
    summary["replicas"] = strategy.num_replicas_in_sync
    if info.count > 1:
        summary["worker"] = info.index
        summary["workers"] = info.count
    summary["model_dir"] = os.path.abspath(FLAGS.model_dir)
    print(cli.dump(summary))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.setup_logging()
    import nas_tf
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.models import image_spaces, recurrent_spaces
    from nas_tf.training.final import FinalImageConfig, train_final_image

    try:
        arch = nas_tf.load_arch(FLAGS.arch)
    except nas_tf.ArchError as e:
        cli.fail(f"--arch: {e}")
    if arch.space in recurrent_spaces():
        return train_recurrent(arch)
    cli.apply_defaults(cli.FINAL_DEFAULTS["image"])
    strategy = cli.distribute_strategy_from_flags()  # before any TensorFlow op: it may split the CPU
    cli.require_dataset("image", f"an image architecture (--arch of space {arch.space})")
    if arch.space not in image_spaces():
        cli.fail(f"--arch: space {arch.space!r} is not an image space this script trains ({', '.join(image_spaces())})")
    try:
        data = cli.image_data_from_flags()
    except DatasetUnavailableError as e:
        cli.fail(f"--dataset={FLAGS.dataset}: {e}")
    builder_options = {"dropout": FLAGS.dropout} if FLAGS.dropout else {}
    if arch.space == "nasnet":
        builder_options.update(cli.nasnet_builder_options_from_flags())
    else:
        for name in NASNET_FLAGS:
            if FLAGS[name].present:
                cli.fail(f"--{name} applies to NASNet architectures; --arch is of space {arch.space}")
    config = FinalImageConfig(
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.lr,
        min_learning_rate=FLAGS.min_lr,
        lr_schedule=FLAGS.lr_schedule,
        momentum=FLAGS.momentum,
        nesterov=FLAGS.nesterov,
        weight_decay=FLAGS.weight_decay,
        cutout=FLAGS.cutout,
        train_on_validation=FLAGS.train_on_validation,
        seed=FLAGS.seed,
        aux_weight=FLAGS.aux_weight,
        builder_options=builder_options,
    )
    try:
        metrics = train_final_image(arch, data, FLAGS.model_dir, config, export=FLAGS.export, strategy=strategy)
    except ValueError as e:
        cli.fail(f"--model_dir={FLAGS.model_dir}: {e}")
    finish(strategy, metrics, ("test_accuracy", "val_accuracy", "params", "wall_time"))


if __name__ == "__main__":
    app.run(cli.handle_cluster_failures(main))
