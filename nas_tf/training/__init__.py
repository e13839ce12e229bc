"""What every training loop shares: the SGD config, schedules, step helpers, the final-training run directory.

The training loops themselves live with their task (:mod:`nas_tf.tasks`).
"""

from nas_tf.training.optimizer import SGDConfig, cosine_restart_lr, make_sgd

__all__ = ["SGDConfig", "cosine_restart_lr", "make_sgd"]
