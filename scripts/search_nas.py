#!/usr/bin/env python3
r"""NAS (Zoph & Le 2017): an LSTM controller learns to design networks with REINFORCE.

Two search spaces share the loop. CNNs (the default) on the embedded 8x8
digits, a small but real search in a few minutes on 2 CPU cores:

    python scripts/search_nas.py --model_dir=runs/nas_cnn

Recurrent cells (the tree space of section 3.4), each trained as a 2-layer
language model on the embedded text (Python's documentation) or on Penn
Treebank, reward c / (validation perplexity)^2:

    python scripts/search_nas.py --space=nas_rnn --model_dir=runs/nas_rnn
    python scripts/search_nas.py --space=nas_rnn --dataset=ptb --data_dir=~/ptb

The paper's CIFAR-10 setting (12,800 children of 50 epochs):

    python scripts/search_nas.py --flagfile=scripts/presets/nas_cifar10.flags \
        --data_dir=~/tensorflow_datasets --model_dir=runs/nas_cifar10

Children train one at a time here by default; --parallel_children=N trains N
at once in worker processes (one per GPU, see --child_devices), and
--strategy=multi_worker spreads a search over several hosts (docs/distributed.md).

Outputs in --model_dir: history.jsonl, best_arch.json, best.json,
checkpoints/, tensorboard/, flags.json, search_config.json. Re-running the same
command resumes the search.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nas_tf.cli import configs, drivers  # noqa: E402
from nas_tf.cli import flags as cli  # noqa: E402

cli.define_run_flags("runs/nas_cnn")
cli.SEARCH.enum(
    "space", "nas_cnn", ["nas_cnn", "nas_rnn", "nb201"],
    "Search space: CNNs on images, recurrent cells on text, or NAS-Bench-201 cells (trained on images, or read from "
    "a benchmark table with --benchmark).",
)
cli.define_search_flags()
cli.define_controller_flags(algorithms=("reinforce", "ppo", "evolution", "random"), skips=True)
cli.define_ppo_flags()
cli.define_nas_cnn_flags()
cli.define_nas_rnn_flags()
cli.define_child_flags()
cli.define_image_reward_flags()
cli.define_cost_flags()
cli.define_lm_reward_flags()
cli.define_data_flags()
cli.define_benchmark_flags()
cli.define_lm_flags()
cli.define_search_execution_flags()
configs.declare_defaults(configs.NAS_DEFAULTS, "nas_cnn")
cli.declare_main_flags(
    ["model_dir", "space", "num_architectures", "archs_per_step", "algorithm", "child_epochs", "dataset", "data_dir",
     "seed", "parallel_children"]
)

main = drivers.main(drivers.run_nas_search)

if __name__ == "__main__":
    drivers.start(main)
