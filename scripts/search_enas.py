#!/usr/bin/env python3
"""ENAS (Pham et al. 2018): one-shot search with shared weights, then retrain and export the winner.

With no flags it runs the project's main job: a micro (cell) search on the
embedded 8x8 digits, derives the best cells, retrains them from scratch
briefly, exports a SavedModel, and prints where everything is (about 5
minutes on 2 CPU cores):

    python scripts/search_enas.py

    python scripts/search_enas.py --space=macro            # whole-network search
    python scripts/search_enas.py --space=rnn              # recurrent cell, embedded text

The paper's and the authors' code's full settings are flag files:

    python scripts/search_enas.py --flagfile=scripts/presets/enas_micro_cifar10.flags \
        --data_dir=~/tensorflow_datasets
    python scripts/search_enas.py --flagfile=scripts/presets/enas_macro_cifar10.flags ...
    python scripts/search_enas.py --flagfile=scripts/presets/enas_rnn_ptb.flags --data_dir=~/ptb

Every epoch trains the shared weights for one pass over the training split (a
new sampled architecture per minibatch), then takes --controller_steps
controller updates of --controller_aggregate architectures each, rewarded by
validation accuracy (images) or c / validation perplexity (text). At the end
--derive_samples architectures are scored and the best is written.

Data-parallel shared weights (macro and micro spaces; docs/distributed.md):

    python scripts/search_enas.py --strategy=mirrored                       # all local GPUs
    python scripts/search_enas.py --strategy=mirrored --num_cpu_devices=2   # no GPU: 2 logical CPUs
    TF_CONFIG=... python scripts/search_enas.py --strategy=multi_worker     # the same command on every host

--shared_batch_size is per replica (a global step reads it times the
replicas) and every global step trains one sampled architecture on all
replicas. Under multi_worker only the chief writes --model_dir, which must be
on a filesystem every worker sees; re-running the same command on every
worker resumes the cluster. The retrain after the search runs under the
same strategy (only the chief writes final/). --space=rnn trains on one
device.

Outputs in --model_dir: history.jsonl (every sampled arch and its reward),
epochs.jsonl, derived.jsonl, best_arch.json (the arch file train_final.py and
the builders read), best.json, summary.json, checkpoints/ (after every phase:
re-running the same command resumes), tensorboard/, flags.json, and final/
(the retrained model: metrics.json, model.keras, saved_model/).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nas_tf.cli import flags as cli  # noqa: E402

cli.define_run_flags("runs/enas_micro")
cli.define_controller_flags(algorithms=("reinforce", "random"))
cli.define_enas_flags()
cli.define_data_flags()
cli.define_lm_flags()
cli.define_lm_reward_flags()
cli.define_strategy_flags()
FLAGS = flags.FLAGS


def _distribute_strategy():
    """The tf.distribute strategy of the shared weights (made before any TensorFlow op: it may split the CPU)."""
    if FLAGS.space == "rnn":
        if FLAGS.strategy in ("mirrored", "multi_worker"):
            cli.fail(
                f"--strategy={FLAGS.strategy}: --space=rnn trains its shared weights on one device (the recurrent "
                "supernet is not data-parallel yet); use --strategy=one_device (or auto), or --space=macro|micro"
            )
        if FLAGS.strategy == "auto" and (FLAGS.num_cpu_devices > 1 or FLAGS.num_gpus not in (None, 0, 1)):
            cli.fail(
                "--num_cpu_devices/--num_gpus: --space=rnn trains its shared weights on one device; "
                "drop them or use --space=macro|micro"
            )
        FLAGS.strategy = "one_device"  # auto never spreads the recurrent supernet over several GPUs
    return cli.distribute_strategy_from_flags()


def _image_search(strategy):
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.search.image_supernet import ImageSupernetTask

    cli.require_dataset("image", f"--space={FLAGS.space}")
    try:
        data = cli.image_data_from_flags()
    except DatasetUnavailableError as e:
        cli.fail(f"--dataset={FLAGS.dataset}: {e}")
    space = cli.enas_space_from_flags()
    with strategy.scope():  # the shared weights (and their optimizer, in the task) are distributed variables
        supernet = cli.enas_image_supernet_from_flags(space, data)
    task = ImageSupernetTask(supernet, data, cli.shared_training_config_from_flags(), strategy=strategy)
    return space, task, data


def _rnn_search():
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.models.enas_rnn import EnasRnnSupernetLM
    from nas_tf.search.lm_supernet import LMSharedTrainingConfig, LMSupernetTask
    from nas_tf.spaces.enas_rnn import EnasRnnSpace

    cli.require_dataset("text", "--space=rnn")
    try:
        corpus = cli.text_data_from_flags()
    except DatasetUnavailableError as e:
        cli.fail(f"--dataset={FLAGS.dataset}: {e}")
    space = EnasRnnSpace(num_nodes=FLAGS.enas_nodes)
    supernet = EnasRnnSupernetLM(space, corpus.vocab_size, **cli.lm_model_options_from_flags())
    config = LMSharedTrainingConfig(
        batch_size=FLAGS.shared_batch_size,
        bptt=FLAGS.lm_bptt,
        learning_rate=FLAGS.shared_lr_max,
        grad_clip=FLAGS.shared_grad_clip,
        weight_decay=FLAGS.shared_weight_decay,
        steps_per_epoch=FLAGS.shared_steps_per_epoch,
        reward_c=FLAGS.reward_c,
        seed=FLAGS.seed,
    )
    return space, LMSupernetTask(supernet, corpus, config), corpus


def _retrain(arch, data, model_dir, strategy):
    """Trains the derived arch from scratch (--final_epochs) and exports it (images: under ``strategy``)."""
    if FLAGS.space == "rnn":
        from nas_tf.training.final_lm import FinalLMConfig, train_final_lm

        config = FinalLMConfig(
            epochs=FLAGS.final_epochs,
            bptt=FLAGS.lm_bptt,
            clip_norm=FLAGS.lm_clip_norm,
            eval_batch_size=FLAGS.lm_eval_batch_size,
            seed=FLAGS.seed,
            model_options=cli.lm_model_options_from_flags(),
        )
        return train_final_lm(arch, data, model_dir, config, export=FLAGS.export)
    from nas_tf.training.final import FinalImageConfig, train_final_image

    options = {}
    if FLAGS.space == "micro":
        # ENAS final networks: NASNet stacking of the cells, stem 3F, drop path.
        options = dict(
            num_cells=FLAGS.final_cells,
            num_conv_filters=FLAGS.final_filters,
            skeleton="cifar",
            stem_multiplier=3.0,
            adjust_first_prev=True,
            drop_path_keep_prob=FLAGS.final_drop_path_keep_prob,
            aux_head=FLAGS.final_aux_head,
        )
    config = FinalImageConfig(epochs=FLAGS.final_epochs, cutout=FLAGS.final_cutout, seed=FLAGS.seed, builder_options=options)
    return train_final_image(arch, data, model_dir, config, export=FLAGS.export, strategy=strategy)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.apply_defaults(cli.ENAS_DEFAULTS[FLAGS.space])
    if FLAGS.space != "macro" and FLAGS["skip_weight"].present:
        cli.fail(f"--skip_weight applies to --space=macro (the skip-connection penalty), not --space={FLAGS.space}")
    cli.setup_logging()
    distribute = _distribute_strategy()
    import keras

    import nas_tf
    from nas_tf.distribute import barrier, worker_info
    from nas_tf.search.multi_trial import ResumeMismatchError
    from nas_tf.search.one_shot import OneShotSearch

    worker = worker_info(distribute)
    keras.utils.set_random_seed(FLAGS.seed)  # the shared weights' initial values (the same on every worker)
    space, task, data = _rnn_search() if FLAGS.space == "rnn" else _image_search(distribute)
    # The controller: a plain (non-distributed) model outside the strategy's scope, the same seed on every worker.
    strategy = cli.strategy_from_flags(space.decisions)
    search = OneShotSearch(space, strategy, task, cli.one_shot_config_from_flags())
    if worker.is_chief:
        os.makedirs(FLAGS.model_dir, exist_ok=True)
    try:
        summary = search.run()
    except ResumeMismatchError as e:
        cli.fail(str(e))
    except FloatingPointError as e:
        cli.fail(f"{e}: lower --shared_lr_max or --shared_grad_clip")
    if worker.is_chief:
        cli.write_flags(FLAGS.model_dir)
    result = {"search": summary}
    if FLAGS.final_epochs:
        # Under multi_worker every worker retrains (the chief alone writes final/); best_arch.json
        # is on the shared filesystem and the search ended with a barrier after writing it.
        final_dir = os.path.join(os.path.abspath(FLAGS.model_dir), "final")
        metrics = _retrain(nas_tf.load_arch(summary["best_arch"]), data, final_dir, distribute)
        keys = ("test_perplexity", "val_perplexity") if FLAGS.space == "rnn" else ("test_accuracy", "val_accuracy")
        result["final"] = {k: metrics[k] for k in keys + ("params", "wall_time")}
        result["final"]["model_dir"] = final_dir
        if FLAGS.export:
            result["final"]["saved_model"] = os.path.join(final_dir, "saved_model")
    barrier(distribute)  # flags.json is written before any worker reports
    print(cli.dump(result))


if __name__ == "__main__":
    app.run(cli.handle_cluster_failures(main))
