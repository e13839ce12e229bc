"""Word-level language-modelling corpora: Penn Treebank and an embedded corpus.

Two corpora, one interface (:class:`TextCorpus`):

* ``ptb`` -- the Penn Treebank of Mikolov et al. (the standard LM benchmark of
  Zoph & Le 2017): the files ``ptb.train.txt``, ``ptb.valid.txt`` and
  ``ptb.test.txt`` (``simple-examples/data`` of Mikolov's RNNLM toolkit) in a
  directory. Every line ends with ``<eos>``; the vocabulary (10,000 words
  with ``<unk>``) is read from the training file.
* ``pydoc`` -- real English text that needs no download: the documentation
  topics that ship with Python itself (``pydoc_data.topics``, the text of
  ``help("topics")``: about 100,000 tokens). It is tokenised PTB-style
  (lower case, numbers become ``N``, punctuation runs are tokens, lines end
  with ``<eos>``), rare words become ``<unk>``, and every topic is split 80/10/10
  into train/validation/test by lines, in order. The text depends on the
  Python version (named in the corpus name), so compare perplexities on one.

Token ids are int32 arrays; :meth:`TextCorpus.windows` cuts a split into the
``[batch, bptt]`` windows of truncated back-propagation through time.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import platform
import re
from collections.abc import Iterator, Sequence

import numpy as np

from nas_tf.data.images import DatasetUnavailableError

EOS = "<eos>"
UNK = "<unk>"
PTB_FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"


@dataclasses.dataclass
class TextCorpus:
    """A tokenised corpus: a vocabulary and one id sequence per split.

    Args:
        name: corpus name.
        vocab: the words; word ``vocab[i]`` has id ``i``.
        splits: ``{"train"|"validation"|"test": int32 ids}``.
    """

    name: str
    vocab: tuple[str, ...]
    splits: dict[str, np.ndarray]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def size(self, split: str) -> int:
        return int(self._split(split).shape[0])

    def _split(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise ValueError(f"corpus {self.name!r} has no split {split!r}; splits: {sorted(self.splits)}")
        return self.splits[split]

    def subset(self, split: str, num_tokens: int) -> TextCorpus:
        """A copy whose ``split`` keeps only its first ``num_tokens`` tokens."""
        splits = dict(self.splits)
        splits[split] = self._split(split)[:num_tokens]
        return dataclasses.replace(self, splits=splits)

    def words(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab[int(i)] for i in ids]

    def num_windows(self, split: str, batch_size: int, bptt: int) -> int:
        """How many ``[batch, <= bptt]`` windows :meth:`windows` yields."""
        per_row = self.size(split) // batch_size
        return max(0, -(-(per_row - 1) // bptt))

    def windows(self, split: str, batch_size: int, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Truncated-BPTT windows of one split, in order.

        The split is cut into ``batch_size`` contiguous rows (the tail that
        does not fill a row is dropped); window ``i`` holds columns
        ``i*bptt .. i*bptt + bptt - 1`` of every row and its targets are the
        next tokens. Row ``b`` of window ``i + 1`` continues row ``b`` of
        window ``i``, so a model may carry its state from one to the next.
        The last window may be shorter.

        Yields:
            ``(inputs, targets)``, int32 arrays ``[batch_size, T]``, T <= bptt.
        """
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size}, {bptt}")
        ids = self._split(split)
        per_row = ids.shape[0] // batch_size
        if per_row < 2:
            raise ValueError(
                f"split {split!r} of {self.name!r} has {ids.shape[0]} tokens: too few for batch_size {batch_size}"
            )
        rows = ids[: per_row * batch_size].reshape(batch_size, per_row)
        for start in range(0, per_row - 1, bptt):
            stop = min(start + bptt, per_row - 1)
            yield rows[:, start:stop], rows[:, start + 1 : stop + 1]


def _build_vocab(counts: collections.Counter, min_count: int = 1, max_size: int | None = None) -> tuple[str, ...]:
    # Most frequent first, ties alphabetical: the same vocabulary on every machine.
    words = sorted((w for w, c in counts.items() if c >= min_count and w != UNK), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max_size - 1]
    return tuple(words) + (UNK,) if UNK not in words else tuple(words)


def _to_ids(tokens: Sequence[str], vocab: tuple[str, ...]) -> np.ndarray:
    index = {w: i for i, w in enumerate(vocab)}
    unk = index.get(UNK)
    out = np.empty(len(tokens), dtype=np.int32)
    for k, w in enumerate(tokens):
        i = index.get(w, unk)
        if i is None:
            raise ValueError(f"word {w!r} is not in the vocabulary and the vocabulary has no {UNK}")
        out[k] = i
    return out


def _read_ptb_file(path: str) -> list[str]:
    tokens: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens.extend(line.split())
            tokens.append(EOS)
    return tokens


def load_ptb(data_dir: str | None) -> TextCorpus:
    """Penn Treebank from ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` in ``data_dir``.

    Args:
        data_dir: directory holding the three files (for instance
            ``simple-examples/data`` of Mikolov's archive).

    Returns:
        A :class:`TextCorpus` with the vocabulary of the training file.

    Raises:
        DatasetUnavailableError: ``data_dir`` is not given or a file is
            missing; the message names the file.
    """
    how = (
        f"Penn Treebank needs the files {', '.join(PTB_FILES.values())} in --data_dir "
        f"(they are simple-examples/data/ in {PTB_URL})"
    )
    if not data_dir:
        raise DatasetUnavailableError(f"no data directory given. {how}")
    data_dir = os.path.expanduser(data_dir)
    paths = {split: os.path.join(data_dir, name) for split, name in PTB_FILES.items()}
    for path in paths.values():
        if not os.path.isfile(path):
            raise DatasetUnavailableError(f"{path} is missing. {how}")
    tokens = {split: _read_ptb_file(path) for split, path in paths.items()}
    vocab = _build_vocab(collections.Counter(tokens["train"]))
    return TextCorpus("ptb", vocab, {split: _to_ids(t, vocab) for split, t in tokens.items()})


_TOKEN = re.compile(r"[a-z_][a-z0-9_']*|[0-9][0-9.]*|([^\sa-z0-9_])\1*")


def tokenize(line: str) -> list[str]:
    """PTB-style tokens of one line: lower-cased words, ``N`` for numbers, punctuation runs.

    Example:

    >>> tokenize("Call f(x) 3 times, see __init__...")
    ['call', 'f', '(', 'x', ')', 'N', 'times', ',', 'see', '__init__', '...']
    """
    out = []
    for match in _TOKEN.finditer(line.lower()):
        token = match.group(0)
        out.append("N" if token[0].isdigit() else token)
    return out


def _pydoc_lines() -> list[list[list[str]]]:
    """Tokenised lines of every Python documentation topic, topics in name order."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions package it apart
        raise DatasetUnavailableError(
            "the embedded corpus is the documentation that ships with Python (module pydoc_data), "
            f"which this Python lacks ({e}); install the full standard library or use --dataset=ptb"
        ) from e
    out = []
    for name in sorted(topics):
        lines = []
        for raw in topics[name].splitlines():
            if not re.search(r"[A-Za-z0-9]", raw):  # blank lines and reST underlines
                continue
            tokens = tokenize(raw)
            if tokens:
                lines.append(tokens + [EOS])
        out.append(lines)
    return out


def load_pydoc_corpus(min_count: int = 3, max_vocab: int = 10000) -> TextCorpus:
    """The embedded corpus: Python's own documentation topics (no download).

    Args:
        min_count: words seen fewer times in the training split become ``<unk>``.
        max_vocab: cap on the vocabulary size (``<unk>`` included).

    Returns:
        A :class:`TextCorpus` named ``pydoc-<python version>``.
    """
    if min_count < 1 or max_vocab < 2:
        raise ValueError(f"min_count must be >= 1 and max_vocab >= 2, got {min_count}, {max_vocab}")
    parts: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for lines in _pydoc_lines():
        n = len(lines)
        cut_valid, cut_test = round(0.8 * n), round(0.9 * n)
        for k, line in enumerate(lines):
            split = "train" if k < cut_valid else "validation" if k < cut_test else "test"
            parts[split].extend(line)
    vocab = _build_vocab(collections.Counter(parts["train"]), min_count=min_count, max_size=max_vocab)
    version = ".".join(platform.python_version_tuple()[:2])
    return TextCorpus(f"pydoc-{version}", vocab, {split: _to_ids(t, vocab) for split, t in parts.items()})


TEXT_DATASETS = ("pydoc", "ptb")


def load_text_data(name: str, data_dir: str | None = None) -> TextCorpus:
    """Loads a text corpus by name (``"pydoc"`` or ``"ptb"``)."""
    if name == "pydoc":
        return load_pydoc_corpus()
    if name == "ptb":
        return load_ptb(data_dir)
    raise ValueError(f"unknown text dataset {name!r}; known: {', '.join(TEXT_DATASETS)}")
