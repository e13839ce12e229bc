#!/usr/bin/env python3
r"""NASNet (Zoph et al. 2018): search a normal and a reduction cell with REINFORCE or PPO.

Defaults run a small but real search on the embedded 8x8 digits in about 5
minutes on 2 CPU cores (20 children of 1 normal cell per stage, 3 epochs
each):

    python scripts/search_nasnet.py --model_dir=runs/nasnet
    python scripts/search_nasnet.py --algorithm=ppo --model_dir=runs/nasnet_ppo

The paper's CIFAR-10 setting (children of N = 2 cells per stage, 20 epochs,
PPO over batches of 20 architectures) is a flag file:

    python scripts/search_nasnet.py --flagfile=scripts/presets/nasnet_cifar10.flags \
        --data_dir=~/tensorflow_datasets --model_dir=runs/nasnet_cifar10

Outputs in --model_dir: history.jsonl, best_arch.json, best.json,
checkpoints/, tensorboard/, flags.json, search_config.json. Re-running the same
command resumes the search. Retrain the winner with scripts/train_final.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nas_tf.cli import drivers  # noqa: E402
from nas_tf.cli import flags as cli  # noqa: E402

cli.define_run_flags("runs/nasnet")
cli.define_search_flags()
cli.define_controller_flags(algorithms=("reinforce", "ppo", "evolution", "random"))
cli.define_ppo_flags()
cli.define_nasnet_space_flags()
cli.define_nasnet_network_flags(num_cells=1, num_conv_filters=8)
cli.define_child_flags()
cli.define_image_reward_flags()
cli.define_cost_flags()
cli.define_data_flags(default="digits", datasets=("digits", "cifar10"))
cli.define_search_execution_flags()
# The NASNet search's own settings (paper, appendix A): a 1-layer LSTM of 100
# units, U(-0.1, 0.1) init, lr 3.5e-4, entropy weight 1e-5, baseline EMA 0.95;
# children trained with cosine decay and rewarded with their final validation
# accuracy. The search budget fits the embedded digits.
cli.set_defaults(
    num_architectures=20,
    archs_per_step=5,
    controller_lr=3.5e-4,
    controller_units=100,
    controller_layers=1,
    controller_init_range=0.1,
    entropy_weight=1e-5,
    baseline_decay=0.95,
    child_epochs=3,
    child_lr_schedule="cosine",
    reward_window=1,
    reward_exponent=1.0,
)
cli.declare_main_flags(
    ["model_dir", "num_architectures", "archs_per_step", "algorithm", "num_blocks", "op_set", "nasnet_cells",
     "nasnet_filters", "child_epochs", "dataset", "data_dir", "seed", "parallel_children"]
)

main = drivers.main(drivers.run_nasnet_search)

if __name__ == "__main__":
    drivers.start(main)
