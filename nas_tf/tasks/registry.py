"""The registry of child tasks: what a kind of child is trained on, and how.

A *task* is one kind of child training (image classification, language
modelling, a tabular benchmark, ...). Each task folder of :mod:`nas_tf.tasks`
fills this registry with one :class:`Task` when it is imported; the search
scripts, :class:`~nas_tf.tasks.TrainerSpec` (and so the worker processes of a
parallel search) and final training find a task here by its name, by the
space of an arch, or by a dataset name, never by a string switch.

A new kind of child task is a folder of its own that calls
:func:`register_task`; neither the search loops nor the controller change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["Task", "get_task", "register_task", "task_for_dataset", "task_for_space", "task_names"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One kind of child task.

    Args:
        name: the task's name (``"image"``, ``"text"``).
        datasets: the dataset names it reads, the default first.
        load_data: ``(dataset, data_dir=None, download=False) -> data`` (the
            data has ``subset(split, n)``).
        spaces: ``() -> [space names]``: the arch spaces whose archs it trains.
        child_trainer: ``(data, config, strategy=None) -> ChildTrainer``.
        child_config: the dataclass of its child-training settings.
        train_final: ``(arch, data, model_dir, config, export=True,
            strategy=None) -> metrics``: trains an arch from scratch, writes
            the model and its exports (None: the task has no final training).
        final_config: the dataclass of ``train_final``'s settings.
        metrics: the names of the final metrics a summary reports, the main
            one first (``("test_accuracy", "val_accuracy")``).
    """

    name: str
    datasets: tuple[str, ...]
    load_data: Callable[..., Any]
    spaces: Callable[[], list[str]]
    child_trainer: Callable[..., Any]
    child_config: type
    train_final: Callable[..., dict] | None = None
    final_config: type | None = None
    metrics: tuple[str, ...] = ()


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Adds ``task`` to the registry (a task of the same name is replaced)."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a nas_tf.tasks.Task, got {type(task).__name__}")
    _TASKS[task.name] = task
    return task


def task_names() -> list[str]:
    """The registered task names."""
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        ValueError: no task of that name (the message lists the known ones).
    """
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown child task {name!r}; known tasks: {', '.join(task_names())}") from None


def task_for_space(space: str) -> Task:
    """The task that trains archs of ``space`` (e.g. ``"nasnet"`` -> the image task).

    Raises:
        ValueError: no task trains that space (the message lists the spaces that can be trained).
    """
    for task in _TASKS.values():
        if space in task.spaces():
            return task
    known = sorted(s for t in _TASKS.values() for s in t.spaces())
    raise ValueError(f"no child task trains archs of space {space!r}; trainable spaces: {', '.join(known)}")


def task_for_dataset(dataset: str) -> Task:
    """The task that reads ``dataset``.

    Raises:
        ValueError: no task reads it (the message lists the known datasets).
    """
    for task in _TASKS.values():
        if dataset in task.datasets:
            return task
    known = [d for t in _TASKS.values() for d in t.datasets]
    raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(known)}")
