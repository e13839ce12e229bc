"""The NAS-Bench-201 cell space: its string, tokens, validation and size."""

import itertools
import json

import numpy as np
import pytest

import nas_tf
from nas_tf.spaces import NB201_OPS, ArchError, NB201Arch, NB201Space, make_space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_benchmark_string_round_trips_through_json():
    arch = nas_tf.load_arch(json.dumps({"space": "nb201", "cell": BEST}))
    assert isinstance(arch, NB201Arch)
    assert arch.cell == BEST
    assert json.loads(arch.to_json()) == {"space": "nb201", "cell": BEST}
    # The edges read off the string by hand: node 3 takes a skip from node 0.
    assert arch.op(3, 0) == "skip_connect"
    assert arch.op(1, 0) == arch.op(2, 1) == arch.op(3, 2) == "nor_conv_3x3"


def test_every_cell_round_trips_tokens_and_string():
    space = NB201Space()
    seen = set()
    for tokens in itertools.product(range(len(NB201_OPS)), repeat=6):
        arch = space.from_tokens(tokens)
        np.testing.assert_array_equal(space.to_tokens(arch), tokens)
        assert NB201Arch.from_string(arch.cell) == arch
        seen.add(arch.cell)
    # 5^6 distinct strings, as many as the benchmark's table has rows.
    assert len(seen) == space.decisions.size() == 15625


def test_token_order_is_the_string_order():
    space = NB201Space()
    # Token k of a decision is NB201_OPS[k]; decisions follow the string left to right.
    arch = space.from_tokens([0, 1, 2, 3, 4, 0])
    assert arch.cell == "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert [d.name for d in space.decisions] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]


@pytest.mark.parametrize(
    "cell, message",
    [
        ("|nor_conv_3x3~0|+|conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", "node 2, edge 2<-0: unknown op 'conv_3x3'"),
        ("|nor_conv_3x3~0|+|none~0|none~2|+|none~0|none~1|none~2|", "node 2, edge 2<-1: expected 'op~1', got 'none~2'"),
        ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|", "node 3: expected 3 edges"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "expected 3 nodes separated by '+', got 2"),
        ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1: expected '|op~i|...|'"),
        (7, "expected a NAS-Bench-201 cell string"),
    ],
)
def test_bad_cell_names_the_edge_and_op(cell, message):
    with pytest.raises(ArchError) as e:
        nas_tf.load_arch({"space": "nb201", "cell": cell})
    assert "field 'cell'" in str(e.value)
    assert message in str(e.value)


def test_bad_fields_and_constructor():
    with pytest.raises(ArchError, match="field 'ops'"):
        nas_tf.load_arch({"space": "nb201", "cell": BEST, "ops": []})
    with pytest.raises(ArchError, match="expected 6 ops, got 2"):
        NB201Arch(("none", "none"))
    with pytest.raises(ArchError, match="unknown op 'conv'"):
        NB201Arch(("none", "none", "none", "none", "none", "conv"))


def test_space_settings_and_named_arch():
    small = make_space("nb201", ops=["none", "nor_conv_3x3"])
    assert small.decisions.size() == 2**6
    with pytest.raises(ValueError, match="is not one of the choices"):
        small.to_tokens(NB201Arch.from_string(BEST))  # skip_connect is outside the subset
    with pytest.raises(ValueError, match="ops must be distinct names"):
        NB201Space(ops=("none", "sep_conv_3x3"))
    resnet = nas_tf.load_arch("nb201_resnet")
    # AutoDL-Projects ResNet_CODE: node 1 = conv(0), node 2 = conv(1), node 3 = skip(0) + skip(2).
    assert resnet.cell == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
