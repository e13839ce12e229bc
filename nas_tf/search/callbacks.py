"""Callbacks of the search loops: what else happens when a search starts, a child ends, the best arch changes.

Like Keras callbacks, a :class:`SearchCallback` overrides the methods it needs;
both search loops call them on every worker of a cluster, and a callback
writes only where ``run_dir.is_chief``. The loops themselves know nothing of
pictures or dashboards: the scripts attach :func:`nas_tf.viz.search_callbacks`
(``best_arch.svg``/``.png`` beside ``best_arch.json``, the best arch and every
child in TensorBoard), and so can any Python caller::

    MultiTrialSearch(space, searcher, evaluator, config, callbacks=nas_tf.viz.search_callbacks())
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run directory imports TensorFlow; callbacks (and nas_tf.viz) need not
    from nas_tf.search.run_dir import RunDirectory
    from nas_tf.spaces.arch import Arch
    from nas_tf.spaces.base import SearchSpace


class SearchCallback:
    """Hooks of a search loop; every method is optional."""

    def on_search_begin(self, run_dir: RunDirectory, space: SearchSpace) -> None:
        """The search starts (or resumes) in ``run_dir``."""

    def on_child_end(self, run_dir: RunDirectory, row: dict[str, Any], space: SearchSpace) -> None:
        """A child has a result: ``row`` is its history row (multi-trial) or its derived-arch row (one-shot)."""

    def on_best_arch(self, run_dir: RunDirectory, arch: Arch, step: int) -> None:
        """``best_arch.json`` now holds ``arch`` (a new best): ``step`` is children done or controller updates."""

    def on_search_end(self, run_dir: RunDirectory, summary: dict[str, Any]) -> None:
        """The search has ended; ``summary`` is what it returns."""


class CallbackList(SearchCallback):
    """Calls every callback of a list in turn."""

    def __init__(self, callbacks: Iterable[SearchCallback] | None = None):
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, SearchCallback):
                raise TypeError(f"callbacks must be SearchCallback instances, got {type(c).__name__}")

    def on_search_begin(self, run_dir, space):
        for c in self.callbacks:
            c.on_search_begin(run_dir, space)

    def on_child_end(self, run_dir, row, space):
        for c in self.callbacks:
            c.on_child_end(run_dir, row, space)

    def on_best_arch(self, run_dir, arch, step):
        for c in self.callbacks:
            c.on_best_arch(run_dir, arch, step)

    def on_search_end(self, run_dir, summary):
        for c in self.callbacks:
            c.on_search_end(run_dir, summary)
