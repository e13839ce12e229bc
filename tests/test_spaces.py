"""Search spaces as data: decision lists, token <-> arch <-> JSON, validation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nas_tf
from nas_tf.spaces import (
    Anchor,
    ArchError,
    Categorical,
    ConvLayer,
    DecisionList,
    NASCNNArch,
    NASCNNSpace,
    Select,
    Skip,
    load_arch,
    make_space,
)

SPACES = [
    NASCNNSpace(num_layers=1),
    NASCNNSpace(num_layers=5),
    NASCNNSpace(num_layers=6, predict_strides=True, max_pool_after=(1, 3)),
    NASCNNSpace(num_layers=4, skip_connections=False, filter_heights=(3,), num_filters=(8, 16)),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: f"L{s.num_layers}-strides{s.predict_strides}-skip{s.skip_connections}")
def test_round_trip_tokens_arch_json(space):
    rng = np.random.default_rng(0)
    tokens = space.decisions.random_tokens(rng, 50)
    for t in tokens:
        arch = space.from_tokens(t)
        np.testing.assert_array_equal(space.to_tokens(arch), t)
        again = load_arch(arch.to_json())
        assert again == arch
        assert json.loads(arch.to_json())["space"] == "nas_cnn"
        np.testing.assert_array_equal(space.to_tokens(again), t)


def test_token_layout_of_nas_cnn():
    space = NASCNNSpace(num_layers=3, predict_strides=True)
    # 5 categorical tokens per layer, then 0, 1, 2 skip bits.
    assert space.decisions.num_tokens == 3 * 5 + 0 + 1 + 2
    assert space.decisions.types == {
        "filter_height": (1, 3, 5, 7),
        "filter_width": (1, 3, 5, 7),
        "num_filters": (24, 36, 48, 64),
        "stride_height": (1, 2, 3),
        "stride_width": (1, 2, 3),
    }
    # Size: (4*4*4*3*3)^3 * 2^(0+1+2)
    assert space.decisions.size() == (4 * 4 * 4 * 3 * 3) ** 3 * 2**3


def test_decoded_values_follow_the_token_order():
    space = NASCNNSpace(num_layers=2)
    # layer 0: fh=3 (1), fw=7 (3), nf=24 (0); layer 1: fh=1, fw=1, nf=64, inputs={0}
    arch = space.from_tokens([1, 3, 0, 0, 0, 3, 1])
    assert arch.layers[0] == ConvLayer(3, 7, 24, inputs=())
    assert arch.layers[1] == ConvLayer(1, 1, 64, inputs=(0,))
    arch = space.from_tokens([1, 3, 0, 0, 0, 3, 0])
    assert arch.layers[1].inputs == ()  # no input: reads the image


def test_value_sets_are_configurable_and_validated():
    space = make_space("nas_cnn", num_layers=2, filter_heights=[3, 5], num_filters=[16])
    assert space.decisions.types["filter_height"] == (3, 5)
    assert space.decisions.types["num_filters"] == (16,)
    with pytest.raises(ValueError, match="filter_heights"):
        NASCNNSpace(filter_heights=(3, 0))
    with pytest.raises(ValueError, match="num_filters"):
        NASCNNSpace(num_filters=())
    with pytest.raises(ValueError, match="num_layers"):
        NASCNNSpace(num_layers=0)
    with pytest.raises(ValueError, match="unknown search space"):
        make_space("nope")
    with pytest.raises(ValueError, match="no setting"):
        make_space("nas_cnn", depth=3)


def test_arch_outside_the_space_is_rejected_by_name():
    space = NASCNNSpace(num_layers=1, filter_heights=(3, 5))
    arch = NASCNNArch(layers=(ConvLayer(7, 3, 24),))
    with pytest.raises(ValueError, match=r"layers\[0\].filter_height: 7 is not one of"):
        space.to_tokens(arch)
    with pytest.raises(ValueError, match="strides are not searched"):
        NASCNNSpace(num_layers=1).to_tokens(NASCNNArch(layers=(ConvLayer(3, 3, 24, 2, 1),)))
    with pytest.raises(ValueError, match="2 layers"):
        space.to_tokens(NASCNNArch(layers=(ConvLayer(3, 3, 24), ConvLayer(3, 3, 24))))


def test_depth_schedule_changes_only_the_depth():
    space = NASCNNSpace(num_layers=3, predict_strides=True)
    deeper = space.with_depth(5)
    assert deeper.num_layers == 5 and deeper.predict_strides
    assert deeper.decisions.types == space.decisions.types


GOOD = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": []},
        {"filter_height": 5, "filter_width": 1, "num_filters": 36, "stride_height": 2, "inputs": [0]},
        {"filter_height": 1, "filter_width": 1, "num_filters": 48},
    ],
    "max_pool_after": [0],
}


def test_load_arch_accepts_text_dict_and_path(tmp_path):
    arch = load_arch(json.dumps(GOOD))
    assert arch.layers[1].stride_height == 2 and arch.layers[1].stride_width == 1
    assert arch.layers[2].inputs == (1,)  # omitted inputs: the previous layer
    assert arch.max_pool_after == (0,)
    assert load_arch(dict(GOOD)) == arch
    path = tmp_path / "a.json"
    arch.to_json(path)
    assert load_arch(str(path)) == arch
    assert nas_tf.load_arch(path) == arch


def _bad(**changes):
    data = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        target = data
        keys = dotted.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        last = keys[-1]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    "data, field, value",
    [
        (_bad(layers__1__filter_height="five"), "layers[1].filter_height", '"five"'),
        (_bad(layers__0__num_filters=0), "layers[0].num_filters", "0"),
        (_bad(layers__1__inputs=[1]), "layers[1].inputs[0]", "1"),
        (_bad(layers__2__inputs=[0, 0]), "layers[2].inputs", "[0, 0]"),
        (_bad(layers__0__filter_width=KeyError), "layers[0].filter_width", "missing"),
        (_bad(layers__0__filtr_height=3), "layers[0].filtr_height", "unknown field"),
        (_bad(max_pool_after=[7]), "max_pool_after[0]", "7"),
        (_bad(space="nas_cnm"), "space", '"nas_cnm"'),
        (_bad(layers=[]), "layers", "at least one layer"),
        (_bad(layers=5), "layers", "5"),
        (_bad(layers__0__stride_width=True), "layers[0].stride_width", "true"),
    ],
)
def test_bad_arch_names_field_and_value(tmp_path, data, field, value):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError) as info:
        load_arch(str(path))
    message = str(info.value)
    assert str(path) in message
    assert f"'{field}'" in message
    assert value in message


def test_bad_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"space": "nas_cnn", "layers": [')
    with pytest.raises(ArchError, match="broken.json: not valid JSON"):
        load_arch(str(path))
    with pytest.raises(ArchError, match="no such arch file"):
        load_arch(str(tmp_path / "nope.json"))


def test_arch_constructor_validates():
    with pytest.raises(ArchError, match=r"layers\[1\].inputs\[0\]"):
        NASCNNArch(layers=(ConvLayer(3, 3, 8), ConvLayer(3, 3, 8, inputs=(3,))))


def test_unconsumed_layers_rule():
    arch = NASCNNArch(
        layers=(ConvLayer(3, 3, 8), ConvLayer(3, 3, 8, inputs=(0,)), ConvLayer(3, 3, 8, inputs=()), ConvLayer(3, 3, 8, inputs=(2,)))
    )
    # Layer 1 is read by nobody, layer 3 is the last.
    assert arch.unconsumed_layers() == [1, 3]


def test_decision_list_generic_kinds():
    dl = DecisionList(
        [
            Anchor("in0", anchor=0),
            Anchor("in1", anchor=1),
            Select("node2.input", num_candidates=2),
            Categorical("node2.op", "op", ("conv", "pool", "identity")),
            Skip("node2.skips", anchor=2, num_candidates=2),
            Select("node3.input", num_candidates=3, anchor=3),
        ]
    )
    assert dl.num_tokens == 1 + 1 + 2 + 1
    assert dl.num_anchors == 4
    values = dl.decode([1, 2, 1, 0, 2])
    assert values == {"node2.input": 1, "node2.op": "identity", "node2.skips": (0,), "node3.input": 2}
    np.testing.assert_array_equal(dl.encode(values), [1, 2, 1, 0, 2])
    assert dl.size() == 2 * 3 * 4 * 3
    with pytest.raises(ValueError, match="unique"):
        DecisionList([Categorical("a", "t", (1,)), Categorical("a", "t", (1,))])
    with pytest.raises(ValueError, match="already has choices"):
        DecisionList([Categorical("a", "t", (1, 2)), Categorical("b", "t", (1, 3))])
    with pytest.raises(ValueError, match="only 0 exist"):
        DecisionList([Select("s", num_candidates=1)])
    with pytest.raises(ValueError, match="in order"):
        DecisionList([Anchor("a", anchor=1)])
    with pytest.raises(ValueError, match="not one of"):
        dl.encode({**values, "node2.op": "sep"})
    with pytest.raises(ValueError, match="expected 5 tokens"):
        dl.decode([0, 1])


def test_random_tokens_cover_all_choices():
    dl = NASCNNSpace(num_layers=3).decisions
    tokens = dl.random_tokens(np.random.default_rng(1), 2000)
    assert tokens.dtype == np.int32
    for d, off in zip(dl.decisions, dl.offsets):
        if isinstance(d, Categorical):
            assert set(tokens[:, off]) == set(range(d.num_choices))
    skip_cols = [off + k for d, off in zip(dl.decisions, dl.offsets) if isinstance(d, Skip) for k in range(d.num_tokens)]
    assert len(skip_cols) == 3
    assert 0.45 < tokens[:, skip_cols].mean() < 0.55


def test_spaces_import_no_tensorflow():
    code = "import sys, nas_tf, nas_tf.spaces; nas_tf.load_arch('" + json.dumps(GOOD) + "'); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
