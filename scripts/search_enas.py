#!/usr/bin/env python3
r"""ENAS (Pham et al. 2018): one-shot search with shared weights, then retrain and export the winner.

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

from nas_tf.cli import configs, drivers  # noqa: E402
from nas_tf.cli import flags as cli  # noqa: E402

cli.define_run_flags("runs/enas_micro")
cli.define_enas_space_flags()
cli.define_one_shot_flags()
cli.define_controller_flags(algorithms=("reinforce", "ppo", "evolution", "random"), skips=True)
cli.define_ppo_flags()
cli.define_enas_controller_flags()
cli.define_shared_weights_flags()
cli.define_retrain_flags()
cli.define_cost_flags()
cli.define_data_flags()
cli.define_lm_flags()
cli.define_enas_lm_flags()
cli.define_lm_reward_flags()
cli.define_strategy_flags()
cli.set_defaults(skip_form="softmax")  # the authors' two-way softmax (macro)
configs.declare_defaults(configs.ENAS_DEFAULTS, "micro")
cli.declare_main_flags(
    ["model_dir", "space", "num_epochs", "controller_steps", "controller_aggregate", "derive_samples", "op_selection",
     "final_epochs", "dataset", "data_dir", "seed", "strategy"]
)

main = drivers.main(drivers.run_enas_search)

if __name__ == "__main__":
    drivers.start(main)
