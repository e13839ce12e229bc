"""The search-space interface shared by every space."""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, ClassVar

import numpy as np

from nas_tf.spaces.arch import Arch
from nas_tf.spaces.decisions import DecisionList


class SearchSpace(abc.ABC):
    """A search space: its decision list and the map between tokens and archs.

    Subclasses are frozen dataclasses whose fields are the space's settings
    (value sets, depth, ...). They implement :meth:`build_decisions`,
    :meth:`from_values` and :meth:`to_values`; tokens <-> values is generic
    (:class:`~nas_tf.spaces.decisions.DecisionList`).
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def build_decisions(self) -> DecisionList:
        """Returns the decision list of one architecture of this space."""

    @abc.abstractmethod
    def from_values(self, values: dict[str, Any]) -> Arch:
        """Builds the arch from ``{decision name: value}``."""

    @abc.abstractmethod
    def to_values(self, arch: Arch) -> dict[str, Any]:
        """The decision values of ``arch``; fails if the arch is outside the space."""

    @functools.cached_property
    def decisions(self) -> DecisionList:
        """The (cached) decision list."""
        return self.build_decisions()

    def from_tokens(self, tokens) -> Arch:
        """Decodes one token vector into a typed arch."""
        return self.from_values(self.decisions.decode(np.asarray(tokens)))

    def to_tokens(self, arch: Arch) -> np.ndarray:
        """Encodes an arch of this space as its token vector."""
        return self.decisions.encode(self.to_values(arch))

    def with_depth(self, depth: int) -> SearchSpace:
        """The same space with another depth (for depth schedules)."""
        raise NotImplementedError(f"search space {self.name!r} has no depth to schedule")

    def config(self) -> dict[str, Any]:
        """The space's settings as a JSON-able dict (``make_space(name, **config)`` rebuilds it)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


_SPACES: dict[str, type[SearchSpace]] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: makes the space available to :func:`make_space` by ``cls.name``."""
    _SPACES[cls.name] = cls
    return cls


def space_names() -> list[str]:
    import nas_tf.spaces  # noqa: F401  (registers the built-in spaces)

    return sorted(_SPACES)


def make_space(name: str, **config: Any) -> SearchSpace:
    """Builds a registered search space by name with the given settings."""
    import nas_tf.spaces  # noqa: F401

    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(_SPACES))}")
    cls = _SPACES[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"search space {name!r} has no setting(s) {unknown}; settings: {sorted(fields)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return cls(**kwargs)
