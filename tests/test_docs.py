"""Every code block of README.md and docs/*.md runs as written.

* the ```python blocks of a document run in order, as a reader runs them,
  in one namespace (a later block uses what an earlier one defined) and from
  one temporary working directory (their ``runs/...`` outputs land there).
  A block preceded by ``<!-- test: slow -->`` runs in the slow suite only,
  where the document's slow blocks run in order on their own (each imports
  what it uses; the others ran in the default run);
  ``<!-- test: skip REASON -->`` says why a block cannot run here (another
  environment, a GPU).
* Every ``python scripts/NAME.py ...`` command of a ```bash block is parsed
  by its script's own flags (in this process): the script exists, every flag
  exists, every value is valid and every flag file is found.
"""

import os
import re
import shlex

import pytest
from absl import flags

from conftest import REPO, script_flags

DOCS = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md"))
FENCE = re.compile(r"(?:<!-- test: (?P<mark>[^>]*?) -->\s*\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```", re.S)


def _blocks(lang: str):
    for doc in DOCS:
        with open(os.path.join(REPO, doc), encoding="utf-8") as f:
            text = f.read()
        for match in FENCE.finditer(text):
            if match["lang"] == lang:
                line = text[: match.start("body")].count("\n") + 1
                yield doc, line, match["body"], (match["mark"] or "").strip()


def _documents():
    for doc in DOCS:
        blocks = [(line, body, mark) for d, line, body, mark in _blocks("python") if d == doc]
        if not blocks:
            continue
        yield pytest.param(doc, blocks, False, id=doc)
        if any(mark == "slow" for _, _, mark in blocks):
            yield pytest.param(doc, blocks, True, id=f"{doc}:with-slow-blocks", marks=pytest.mark.slow)


@pytest.mark.parametrize("doc, blocks, slow", list(_documents()))
def test_python_blocks_run_in_order(doc, blocks, slow, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc__"}
    ran = 0
    for line, body, mark in blocks:
        if mark.startswith("skip") or (mark == "slow") != slow:
            continue
        try:
            exec(compile(body, f"{doc}:{line}", "exec"), namespace)  # noqa: S102 - the document's own code
        except Exception as e:
            raise AssertionError(f"the python block at {doc}:{line} fails: {type(e).__name__}: {e}") from e
        ran += 1
    assert ran


def _commands():
    """``(doc:line, script, args)`` of every ``python scripts/NAME.py`` command in a bash block."""
    for doc, line, body, _mark in _blocks("bash"):
        joined = re.sub(r"\\\n\s*", " ", body)
        for n, command in enumerate(joined.splitlines()):
            command = command.split(" #")[0].strip()
            words = shlex.split(command) if command else []
            while words and re.match(r"^[A-Z_]+=", words[0]):  # environment assignments (TF_CONFIG=...)
                words = words[1:]
            if len(words) >= 2 and words[0] == "python" and words[1].startswith("scripts/"):
                yield pytest.param(os.path.basename(words[1]), words[2:], id=f"{doc}:{line + n}:{words[1]}")


@pytest.mark.parametrize("script, args", list(_commands()))
def test_script_command_parses(script, args):
    assert os.path.exists(os.path.join(REPO, "scripts", script)), script
    args = [a.replace("~", os.path.expanduser("~")) for a in args]
    saved = os.getcwd()
    os.chdir(REPO)  # flag files are relative to the repository, as in the documents
    try:
        with script_flags(script):
            argv = flags.FLAGS([script, *args])
    finally:
        os.chdir(saved)
    assert argv == [script], f"unexpected positional arguments: {argv[1:]}"
