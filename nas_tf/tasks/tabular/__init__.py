"""The tabular task: children "trained" by reading their recorded accuracy from a benchmark table.

A search over the NAS-Bench-201 space with ``--benchmark`` asks this task for
its children: each child's reward is its recorded test accuracy / 100
(:func:`nas_tf.benchmarks.reward_for`), read in microseconds, so a search of
hundreds of children runs in seconds with the usual history, best arch,
resume and TensorBoard. The found cell trains for real with
``scripts/train_final.py`` (the image task builds the NAS-Bench-201 network).
"""

from nas_tf.tasks.registry import Task, register_task
from nas_tf.tasks.tabular.child import TABLES, TabularChildConfig, TabularTrainer, load_table

TASK = register_task(
    Task(
        name="tabular",
        datasets=TABLES,
        load_data=load_table,
        spaces=lambda: [],  # it trains nothing: archs are looked up, and final training is the image task's
        child_trainer=TabularTrainer,
        child_config=TabularChildConfig,
    )
)

__all__ = ["TABLES", "TASK", "TabularChildConfig", "TabularTrainer", "load_table"]
