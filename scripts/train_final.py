#!/usr/bin/env python3
r"""Trains a discovered architecture from scratch, evaluates it and exports it.

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

from nas_tf.cli import configs, drivers  # noqa: E402
from nas_tf.cli import flags as cli  # noqa: E402

cli.define_final_training_flags()
cli.define_run_flags("runs/final", topic=cli.FINAL)
cli.define_nasnet_network_flags(num_cells=2, num_conv_filters=16, topic=cli.FINAL)
cli.define_data_flags()
cli.define_lm_flags()
cli.define_strategy_flags()
configs.declare_defaults(configs.FINAL_DEFAULTS, "image", describe={"text": "recurrent cells"}.get)
cli.declare_main_flags(["arch", "model_dir", "epochs", "batch_size", "lr", "dataset", "data_dir", "export", "strategy"])

main = drivers.main(drivers.run_final_training)

if __name__ == "__main__":
    drivers.start(main)
