"""Property: whatever an arch document holds, ``load_arch`` gives an ``ArchError`` or an arch that builds.

Hypothesis generates documents for every arch space: valid archs of each
space (from random tokens of a small space), then one field replaced by any
JSON value (null, booleans, integers of any size, floats, strings, lists,
objects), bytes flipped or cut in the file, numbers beyond every cap, deep
nesting, oversized files. For each: ``load_arch`` raises ``ArchError`` (and
nothing else), or the arch loads, its network builds with its space's
builder and a forward pass gives finite outputs. A hang would fail the
test by Hypothesis's deadline; a crash (a native abort) would end pytest.

The default run tries a few dozen documents in seconds; the slow suite
tries many more.
"""

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas_tf
from nas_tf.spaces import EnasMacroSpace, EnasMicroSpace, EnasRnnSpace, NB201Space
from nas_tf.spaces.arch import MAX_ARCH_BYTES, MAX_NESTING, ArchError, arch_types
from nas_tf.spaces.nas_cnn import MAX_FILTER_SIZE, MAX_WEIGHTS, NASCNNSpace
from nas_tf.spaces.nas_rnn import NASRNNSpace
from nas_tf.spaces.nasnet import NASNetSpace

# Small spaces of every arch type: their archs are the seeds that get damaged.
SPACES = {
    "nas_cnn": NASCNNSpace(num_layers=3, predict_strides=True, filter_heights=(1, 3), filter_widths=(1, 3),
                           num_filters=(2, 4)),
    "nasnet": NASNetSpace(num_blocks=2),
    "enas_micro": EnasMicroSpace(num_nodes=2),
    "enas_macro": EnasMacroSpace(num_layers=3),
    "nb201": NB201Space(),
    "nas_rnn": NASRNNSpace(base=2),
    "enas_rnn": EnasRnnSpace(num_nodes=2),
}


def test_every_arch_type_is_fuzzed():
    assert {s.from_tokens(s.decisions.random_tokens(np.random.default_rng(0), 1)[0]).space
            for s in SPACES.values()} == set(arch_types())


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([0, -1, 1, 2, 7, MAX_FILTER_SIZE, MAX_FILTER_SIZE + 1, 1007, 2**31, 2**63, 10**20])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["conv_3x3", "add", "tanh", "nas_cnn", "", "|none~0|"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every (path, value) in a JSON document."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(doc, path, new):
    if not path:
        return new
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return doc


@st.composite
def valid_docs(draw, space_name=None):
    name = space_name or draw(st.sampled_from(sorted(SPACES)))
    space = SPACES[name]
    seed = draw(st.integers(0, 2**32 - 1))
    tokens = space.decisions.random_tokens(np.random.default_rng(seed), 1)[0]
    return space.from_tokens(tokens).to_dict()


@st.composite
def damaged_docs(draw):
    """Text of an arch document: a valid one with one field replaced, removed or added."""
    doc = draw(valid_docs())
    paths = list(_paths(doc))
    path, _ = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    if how == "replace" or not path:
        doc = _replace(doc, path, draw(json_values))
    elif how == "delete":
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return json.dumps(doc)


@st.composite
def mangled_texts(draw):
    """Text or bytes with what json.dumps never writes: cut, flipped bytes, huge numbers, NaN, nesting."""
    text = json.dumps(draw(valid_docs()))
    kind = draw(st.sampled_from(["cut", "flip", "huge", "constant", "nest"]))
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "flip":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    digits = [m for m in range(len(text)) if text[m].isdigit() and not text[m - 1].isdigit()]
    if kind in ("huge", "constant") and digits:
        at = draw(st.sampled_from(digits))
        new = draw(st.sampled_from(["9" * 5000, "1e999", "-1e999", "NaN", "Infinity", "123456789012345678901234567890"]))
        end = at
        while end < len(text) and text[end].isdigit():
            end += 1
        return text[:at] + new + text[end:]
    depth = draw(st.integers(MAX_NESTING - 2, 5000))
    return text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"


def _build_and_run(arch):
    """The arch's network, built with its space's builder; the outputs of one forward pass."""
    import keras

    from nas_tf.models import build_image_model
    from nas_tf.models.language_model import build_language_model

    keras.utils.set_random_seed(0)
    if arch.space in ("nas_rnn", "enas_rnn"):
        model = build_language_model(11, arch, units=4, num_layers=1)
        logits, _ = model(np.arange(6, dtype=np.int32).reshape(2, 3) % 11)
        return np.asarray(logits)
    options = {"num_cells": 1, "num_conv_filters": 2} if arch.space == "nasnet" else {}
    if arch.space == "enas_macro":
        options = {"filters": 2}
    if arch.space == "nb201":
        options = {"channels": 2, "cells_per_stage": 1}
    model = build_image_model(arch, (8, 8, 1), 3, **options)
    return np.asarray(model(np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, 8, 8, 1)))


def _check(document, tmp_path=None):
    """load -> ArchError, or load -> build -> finite outputs."""
    source = document
    if tmp_path is not None:
        path = os.path.join(tmp_path, "arch.json")
        with open(path, "wb") as f:
            f.write(document if isinstance(document, bytes) else document.encode("utf-8", "surrogatepass"))
        source = path
    try:
        arch = nas_tf.load_arch(source)
    except ArchError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None
    out = _build_and_run(arch)
    assert np.all(np.isfinite(out)), arch
    return arch


FAST = settings(max_examples=25, deadline=20000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True, database=None)
MANY = settings(max_examples=400, deadline=60000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True, database=None)


@FAST
@given(damaged_docs())
def test_a_damaged_field_is_an_arch_error_or_builds(text):
    _check(text)


@FAST
@given(mangled_texts())
def test_mangled_files_are_arch_errors_or_build(tmp_path_factory, data):
    _check(data, tmp_path_factory.mktemp("arch"))


@FAST
@given(json_values)
def test_any_json_document_is_an_arch_error(value):
    with pytest.raises(ArchError):
        nas_tf.load_arch(value if isinstance(value, dict) else json.dumps(value) if not isinstance(value, str) else "{" + value)


@pytest.mark.slow
@MANY
@given(st.one_of(damaged_docs(), mangled_texts()))
def test_many_damaged_documents_are_arch_errors_or_build(tmp_path_factory, data):
    _check(data, tmp_path_factory.mktemp("arch"))


@pytest.mark.parametrize("space", sorted(SPACES))
def test_valid_archs_of_every_space_load_and_build(space):
    doc = SPACES[space].from_tokens(SPACES[space].decisions.random_tokens(np.random.default_rng(1), 1)[0]).to_dict()
    assert _check(json.dumps(doc)) is not None


# --------------------------------------------------------------- the cases found by hand


def _nas_cnn(**layer):
    return {"space": "nas_cnn", "layers": [{"filter_height": 3, "filter_width": 3, "num_filters": 4, "inputs": [],
                                             **layer}]}


@pytest.mark.parametrize(
    "document, message",
    [
        ({"space": {"a": 1}}, "field 'space': expected one of"),
        ({"space": ["nas_cnn"]}, "field 'space': expected one of"),
        (_nas_cnn(filter_height=1007), f"field 'layers[0].filter_height': expected an integer <= {MAX_FILTER_SIZE}, got 1007"),
        (_nas_cnn(num_filters=10**40), "field 'layers[0].num_filters': expected an integer <= 4096"),
        (_nas_cnn(stride_height=-3), "field 'layers[0].stride_height': expected an integer >= 1, got -3"),
        (_nas_cnn(inputs={"0": 1}), "field 'layers[0].inputs': expected a list of integers"),
        ({"space": "nas_cnn", "layers": [{"filter_height": 64, "filter_width": 64, "num_filters": 4096}] * 12},
         f"nas_tf builds archs of up to {MAX_WEIGHTS:,}"),
        ({"space": "nas_cnn", "layers": [{"filter_height": 1, "filter_width": 1, "num_filters": 1}] * 300},
         "300 layers; nas_tf builds up to 256"),
        ({"space": "nas_rnn", "base": 2**40}, "field 'base': expected an integer <= 64"),
        ({"space": "enas_rnn", "nodes": [{"input": 0, "activation": "tanh"}] * 65}, "65 nodes; nas_tf builds cells of up to 64"),
        ({"space": "nb201", "cell": 7}, "field 'cell': expected a NAS-Bench-201 cell string"),
        ({"space": "nasnet", "normal": [], "reduction": {}}, "field 'normal': expected a JSON object"),
        ({1: 2, "space": "nb201"}, "unknown field"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_documents_name_the_field_and_the_value(document, message):
    with pytest.raises(ArchError) as e:
        nas_tf.load_arch(document)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"space": "nb201", "cell": "\xff"}', "not UTF-8 text (byte 0xff at line 1 column 29)"),
        (b'{"space": "nas_cnn", "layers": [{"filter_height": ' + b"9" * 5000 + b"}]}", "not valid JSON: Exceeds the limit"),
        (b'{"space": "nas_cnn", "layers": [{"filter_height": 1e999}]}', "not valid JSON: the number 1e999 is too large"),
        (b'{"space": "nas_cnn", "layers": [{"filter_height": NaN}]}', "not valid JSON: NaN is not a JSON number"),
        (b'{"space": "nb201", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested"),
        (b'{"space": "nb201", "x": ' + b"[" * 40 + b"]" * 40 + b"}", f"nested more than {MAX_NESTING} levels deep"),
        (b'{"space": "nb201", "cell": "' + b"x" * MAX_ARCH_BYTES + b'"}', f"arch files are read up to {MAX_ARCH_BYTES} bytes"),
    ],
    ids=["non-utf8", "huge-int", "1e999", "NaN", "very-deep", "deep", "oversized"],
)
def test_unreadable_files_are_named_with_the_reason(tmp_path, content, message):
    path = tmp_path / "arch.json"
    path.write_bytes(content)
    with pytest.raises(ArchError) as e:
        nas_tf.load_arch(str(path))
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)[:300]


def test_directories_and_special_files_are_arch_errors(tmp_path):
    with pytest.raises(ArchError, match=f"^{tmp_path}: is a directory, not an arch file$"):
        nas_tf.load_arch(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would wait for a writer for ever
    with pytest.raises(ArchError, match="is not a regular file"):
        nas_tf.load_arch(str(fifo))
    with pytest.raises(ArchError, match="got int"):
        nas_tf.load_arch(12)


def test_a_search_space_whose_largest_network_cannot_be_built_is_refused():
    with pytest.raises(ValueError, match="filter_heights: 1007 is larger than 64"):
        NASCNNSpace(filter_heights=(3, 1007))
    with pytest.raises(ValueError, match="num_filters: the largest network of this space"):
        NASCNNSpace(num_layers=80)
