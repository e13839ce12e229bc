#!/usr/bin/env python3
"""NAS (Zoph & Le 2017): an LSTM controller learns to design CNNs with REINFORCE.

Defaults run a small but real search on the embedded 8x8 digits in a few
minutes on 2 CPU cores:

    python scripts/search_nas.py --model_dir=runs/nas_cnn

The paper's CIFAR-10 setting (12,800 children of 50 epochs):

    python scripts/search_nas.py --flagfile=scripts/presets/nas_cifar10.flags \
        --data_dir=~/tensorflow_datasets --model_dir=runs/nas_cifar10

Outputs in --model_dir: history.jsonl, best_arch.json, best.json,
checkpoints/, tensorboard/, flags.json, search_config.json. Re-running the same
command resumes the search.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nas_tf.cli import flags as cli  # noqa: E402

cli.define_run_flags("runs/nas_cnn")
flags.DEFINE_enum("space", "nas_cnn", ["nas_cnn"], "Search space.")
cli.define_search_flags()
cli.define_image_data_flags()
cli.define_child_flags()
cli.define_nas_cnn_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.setup_logging()
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.search import ImageChildTrainer, InProcessEvaluator, MultiTrialSearch, ResumeMismatchError

    space = cli.nas_cnn_space_from_flags()
    try:
        data = cli.image_data_from_flags()
    except DatasetUnavailableError as e:
        cli.fail(f"--dataset={FLAGS.dataset}: {e}")
    trainer = ImageChildTrainer(data, cli.child_config_from_flags())
    search = MultiTrialSearch(
        space,
        cli.strategy_from_flags(space.decisions),
        InProcessEvaluator(trainer, trainer.settings()),
        cli.search_config_from_flags(start_depth=FLAGS.start_depth),
    )
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    try:
        summary = search.run()
    except ResumeMismatchError as e:
        cli.fail(str(e))
    cli.write_flags(FLAGS.model_dir)
    print(cli.dump(summary))


if __name__ == "__main__":
    app.run(main)
