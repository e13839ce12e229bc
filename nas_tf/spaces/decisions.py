"""Search spaces as lists of decisions.

A search space is described to the controller as a :class:`DecisionList`: the
ordered decisions an architecture is made of. The controller takes one LSTM
step per decision and emits the decision's tokens; the space turns the decoded
values into a typed :class:`~nas_tf.spaces.arch.Arch`. Four kinds of decision
cover the NAS, NASNet and ENAS spaces:

* :class:`Categorical` -- one of a fixed list of named choices, sampled by the
  softmax head of its ``type`` (all decisions of one type share the head and
  the embedding of the chosen value).
* :class:`Skip` -- the anchor point of Zoph & Le (2017): this step's hidden
  state becomes anchor ``anchor``, and every earlier anchor ``j`` is chosen
  independently with ``P(j) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))``.
  One 0/1 token per earlier anchor.
* :class:`Select` -- one earlier anchor chosen by a softmax over the same
  attention scores (ENAS micro and recurrent cells). One token.
* :class:`Anchor` -- a step that only records an anchor (no token).

Nothing here imports TensorFlow: spaces are plain data, fast to test, and any
strategy (REINFORCE, PPO, random search) can drive them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A choice among named values, sampled by the softmax head ``type``.

    Args:
        name: unique name of the decision inside its list, e.g.
            ``"layers[2].filter_height"``.
        type: softmax head that samples it. Decisions of one type must have
            identical ``choices``.
        choices: the values, in token order (token ``k`` means ``choices[k]``).
    """

    name: str
    type: str
    choices: tuple

    def __post_init__(self):
        if not self.choices:
            raise ValueError(f"decision {self.name!r}: choices must not be empty")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"decision {self.name!r}: choices must be distinct, got {self.choices!r}")

    @property
    def num_tokens(self) -> int:
        return 1

    @property
    def num_choices(self) -> int:
        return len(self.choices)

    def decode(self, tokens: Sequence[int]) -> Any:
        (t,) = tokens
        if not 0 <= int(t) < len(self.choices):
            raise ValueError(f"decision {self.name!r}: token {t} out of range [0, {len(self.choices)})")
        return self.choices[int(t)]

    def encode(self, value: Any) -> list[int]:
        try:
            return [self.choices.index(value)]
        except ValueError:
            raise ValueError(
                f"{self.name}: {value!r} is not one of the choices of this search space {list(self.choices)}"
            ) from None

    def count(self) -> int:
        return len(self.choices)


@dataclasses.dataclass(frozen=True)
class Skip:
    """Anchor point with set selection over the earlier anchors.

    The step's hidden state is stored as anchor ``anchor``; the value is the
    sorted tuple of chosen earlier anchors among ``0 .. num_candidates - 1``.

    Args:
        name: unique name of the decision.
        anchor: index of the anchor this step writes.
        num_candidates: how many earlier anchors can be chosen (one 0/1 token
            each, in order).
    """

    name: str
    anchor: int
    num_candidates: int

    def __post_init__(self):
        if self.num_candidates < 0 or self.num_candidates > self.anchor:
            raise ValueError(
                f"decision {self.name!r}: num_candidates must be in [0, anchor={self.anchor}], "
                f"got {self.num_candidates}"
            )

    @property
    def num_tokens(self) -> int:
        return self.num_candidates

    def decode(self, tokens: Sequence[int]) -> tuple[int, ...]:
        bits = [int(t) for t in tokens]
        if any(b not in (0, 1) for b in bits):
            raise ValueError(f"decision {self.name!r}: skip tokens must be 0 or 1, got {bits}")
        return tuple(j for j, b in enumerate(bits) if b)

    def encode(self, value: Iterable[int]) -> list[int]:
        chosen = set()
        for j in value:
            if not isinstance(j, (int, np.integer)) or isinstance(j, bool) or not 0 <= j < self.num_candidates:
                raise ValueError(f"{self.name}: input {j!r} is not an earlier index in [0, {self.num_candidates})")
            chosen.add(int(j))
        return [1 if j in chosen else 0 for j in range(self.num_candidates)]

    def count(self) -> int:
        return 2**self.num_candidates


@dataclasses.dataclass(frozen=True)
class Select:
    """One of ``num_candidates`` earlier anchors (softmax attention).

    The candidates are the anchors ``first_candidate .. first_candidate +
    num_candidates - 1``; the value (and token) is the position among them,
    ``0 .. num_candidates - 1``. ``first_candidate`` lets one decision list hold
    several cells whose nodes choose only among their own cell's anchors.

    Args:
        name: unique name of the decision.
        num_candidates: number of earlier anchors to choose from (at least 1).
        anchor: optional index of an anchor this step writes as well.
        first_candidate: index of the first candidate anchor.
    """

    name: str
    num_candidates: int
    anchor: int | None = None
    first_candidate: int = 0

    def __post_init__(self):
        if self.num_candidates < 1:
            raise ValueError(f"decision {self.name!r}: num_candidates must be >= 1, got {self.num_candidates}")
        if self.first_candidate < 0:
            raise ValueError(f"decision {self.name!r}: first_candidate must be >= 0, got {self.first_candidate}")

    @property
    def num_tokens(self) -> int:
        return 1

    def decode(self, tokens: Sequence[int]) -> int:
        (t,) = tokens
        if not 0 <= int(t) < self.num_candidates:
            raise ValueError(f"decision {self.name!r}: token {t} out of range [0, {self.num_candidates})")
        return int(t)

    def encode(self, value: int) -> list[int]:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < self.num_candidates:
            raise ValueError(f"{self.name}: {value!r} is not an index in [0, {self.num_candidates})")
        return [int(value)]

    def count(self) -> int:
        return self.num_candidates


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A controller step that only records its hidden state as anchor ``anchor``.

    Args:
        name: unique name of the step.
        anchor: index of the anchor it writes.
        zero_value: when a later :class:`Select` picks this anchor, feed zeros
            as the next input instead of the stored state (the ENAS micro
            controller does this for the two cell inputs); the attention key
            is computed from the state either way.
    """

    name: str
    anchor: int
    zero_value: bool = False

    @property
    def num_tokens(self) -> int:
        return 0

    def decode(self, tokens: Sequence[int]) -> None:
        return None

    def encode(self, value: Any) -> list[int]:
        return []

    def count(self) -> int:
        return 1


Decision = Union[Categorical, Skip, Select, Anchor]  # noqa: UP007  (a runtime alias: Python 3.9 reads it)


class DecisionList:
    """The ordered decisions of one architecture, and the token layout.

    Tokens are a flat integer vector: each decision owns ``num_tokens``
    consecutive entries. ``decode`` maps tokens to ``{decision name: value}``
    and ``encode`` maps back.

    Args:
        decisions: the decisions in controller order.

    Example:

    >>> dl = DecisionList([Categorical("a", "size", (1, 3)), Skip("b", anchor=1, num_candidates=1)])
    >>> dl.decode([1, 0])
    {'a': 3, 'b': ()}
    """

    def __init__(self, decisions: Sequence[Decision]):
        self.decisions: tuple[Decision, ...] = tuple(decisions)
        names = [d.name for d in self.decisions]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"decision names must be unique, repeated: {dup}")
        self.offsets: tuple[int, ...] = tuple(np.cumsum([0] + [d.num_tokens for d in self.decisions])[:-1].tolist())
        self.num_tokens: int = int(sum(d.num_tokens for d in self.decisions))
        types: dict[str, tuple] = {}
        for d in self.decisions:
            if isinstance(d, Categorical):
                if d.type in types and types[d.type] != d.choices:
                    raise ValueError(
                        f"decision {d.name!r}: type {d.type!r} already has choices {types[d.type]!r}, "
                        f"got {d.choices!r}"
                    )
                types[d.type] = d.choices
        self.types: dict[str, tuple] = types
        anchors = [d.anchor for d in self.decisions if getattr(d, "anchor", None) is not None]
        if sorted(anchors) != list(range(len(anchors))) or anchors != sorted(anchors):
            raise ValueError(f"anchors must be written in order 0, 1, 2, ...; got {anchors}")
        self.num_anchors: int = len(anchors)
        written = 0
        for d in self.decisions:
            first = getattr(d, "first_candidate", 0)
            if isinstance(d, (Skip, Select)) and first + d.num_candidates > written:
                raise ValueError(
                    f"decision {d.name!r} chooses among anchors {first}..{first + d.num_candidates - 1} "
                    f"but only {written} exist before it"
                )
            if getattr(d, "anchor", None) is not None:
                written += 1

    def __len__(self) -> int:
        return len(self.decisions)

    def __iter__(self):
        return iter(self.decisions)

    def __eq__(self, other) -> bool:
        return isinstance(other, DecisionList) and self.decisions == other.decisions

    def __hash__(self) -> int:
        return hash(self.decisions)

    def signature(self) -> Hashable:
        """A hashable key: two lists with equal signatures have equal layouts."""
        return self.decisions

    def __repr__(self) -> str:
        return f"DecisionList({len(self.decisions)} decisions, {self.num_tokens} tokens)"

    def decode(self, tokens: Sequence[int]) -> dict[str, Any]:
        """Maps a token vector to ``{decision name: value}``."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.num_tokens:
            raise ValueError(f"expected {self.num_tokens} tokens, got {tokens.shape[0]}")
        values = {}
        for d, off in zip(self.decisions, self.offsets):
            if isinstance(d, Anchor):
                continue
            values[d.name] = d.decode(tokens[off : off + d.num_tokens].tolist())
        return values

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        """Maps ``{decision name: value}`` to the token vector (int32)."""
        out: list[int] = []
        for d in self.decisions:
            if isinstance(d, Anchor):
                continue
            if d.name not in values:
                raise ValueError(f"no value for decision {d.name!r}")
            out.extend(d.encode(values[d.name]))
        return np.asarray(out, dtype=np.int32)

    def size(self) -> int:
        """Number of distinct token vectors (the size of the search space)."""
        return math.prod(d.count() for d in self.decisions)

    def random_tokens(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """Uniformly random token vectors, shape ``[num, num_tokens]`` (int32).

        Each categorical and select decision is uniform over its choices and
        each skip bit is a fair coin, so every architecture is equally likely.
        """
        out = np.zeros((num, self.num_tokens), dtype=np.int32)
        for d, off in zip(self.decisions, self.offsets):
            if isinstance(d, Categorical):
                out[:, off] = rng.integers(0, d.num_choices, size=num)
            elif isinstance(d, Select):
                out[:, off] = rng.integers(0, d.num_candidates, size=num)
            elif isinstance(d, Skip) and d.num_candidates:
                out[:, off : off + d.num_candidates] = rng.integers(0, 2, size=(num, d.num_candidates))
        return out
