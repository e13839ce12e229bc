"""ENAS micro: the space (NASNet-cell archs), the published cells, the supernet vs its NASNet child."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from conftest import outputs_and_input_gradient
from nas_tf.models.enas_micro import EnasMicroSupernet, build_enas_micro_child
from nas_tf.spaces.enas_micro import ENAS_MICRO_NORMAL_ARC, EnasMicroSpace, micro_arch_from_arc
from nas_tf.spaces.nasnet import NASNetArch

SPACE = EnasMicroSpace()


def test_micro_space_writes_nasnet_cells_and_round_trips():
    rng = np.random.default_rng(0)
    for tokens in SPACE.decisions.random_tokens(rng, 5):
        arch = SPACE.from_tokens(tokens)
        assert isinstance(arch, NASNetArch) and arch.space == "nasnet"
        assert all(b.combine == "add" for b in arch.normal.blocks + arch.reduction.blocks)
        assert np.array_equal(SPACE.to_tokens(arch), tokens)
        again = nas_tf.load_arch(arch.to_json())
        assert again == arch


def test_published_micro_cells_decode_from_the_arc_strings():
    arch = nas_tf.load_arch("enas_micro")
    # Arc "0 2 0 0 ...": node 2 reads the authors' node 0 (h_{i-1}, our input 1) twice: avg pool 3x3 and sep 3x3.
    assert ENAS_MICRO_NORMAL_ARC.startswith("0 2 0 0")
    assert arch.normal.blocks[0].inputs == (1, 1)
    assert arch.normal.blocks[0].ops == ("avg_pool_3x3", "sep_conv_3x3")
    assert len(arch.normal.blocks) == 5 and len(arch.reduction.blocks) == 5
    SPACE.to_tokens(arch)  # inside the space
    with pytest.raises(ValueError, match="op 7 out of range"):
        micro_arch_from_arc("0 7 0 0", "0 0 0 0")
    with pytest.raises(ValueError, match="input 3 is not an earlier node"):
        micro_arch_from_arc("3 0 0 0", "0 0 0 0")


@pytest.mark.parametrize(
    "op_selection, switch_branches",
    [pytest.param("merged", "auto", marks=pytest.mark.slow), ("switch", "auto"), ("switch", "inlined")],
)
def test_micro_supernet_equals_the_nasnet_child(op_selection, switch_branches):
    keras.utils.set_random_seed(0)
    net = EnasMicroSupernet(SPACE, 10, filters=6, num_cells=1, op_selection=op_selection, switch_branches=switch_branches)
    net.build((None, 8, 8, 1))
    if op_selection == "switch":  # 8x8 digits: "auto" runs the chosen ops as branch functions in every cell
        want = "function" if switch_branches == "auto" else switch_branches
        assert set(net.switch_branch_modes.values()) == {want}
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(3).normal(size=(4, 10)).astype(np.float32))

    forward = tf.function(
        lambda arch: outputs_and_input_gradient(net, x, weights, arch),
        input_signature=[tf.TensorSpec((SPACE.decisions.num_tokens,), tf.int32)],
    )
    archs = [nas_tf.load_arch("enas_micro")] + [SPACE.from_tokens(t) for t in SPACE.decisions.random_tokens(np.random.default_rng(2), 2)]
    # An arch whose reduction cell leaves a cell input unused: it is in the output, factorized-reduced.
    candidates = (SPACE.from_tokens(t) for t in SPACE.decisions.random_tokens(np.random.default_rng(4), 200))
    archs.append(next(a for a in candidates if {0, 1} & set(a.reduction.concat)))
    assert any("max_pool_3x3" in b.ops for a in archs for b in a.normal.blocks + a.reduction.blocks)
    outputs = []
    for arch in archs:
        child = build_enas_micro_child(arch, (8, 8, 1), 10, filters=6, num_cells=1)
        net.copy_to_child(arch, child)
        got, got_gradient = forward(SPACE.to_tokens(arch))
        want, want_gradient = outputs_and_input_gradient(child, x, weights)
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(got_gradient, want_gradient, atol=1e-4)
        outputs.append(np.asarray(got))
    # The archs compute different functions (the test could fail), all through one trace.
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
    assert forward.experimental_get_tracing_count() == 1


def test_micro_supernet_rejects_bad_options():
    with pytest.raises(ValueError, match="op_selection"):
        EnasMicroSupernet(SPACE, 10, op_selection="gather")
    with pytest.raises(ValueError, match="switch_branches must be 'auto', 'inlined' or 'function', got 'lowered'"):
        EnasMicroSupernet(SPACE, 10, switch_branches="lowered")


def test_auto_switch_branches_follow_the_cell_size_and_round_trip_through_the_config():
    """Branch functions in the cells whose states hold at most SMALL_STATE_VALUES values per image."""
    limit = EnasMicroSupernet.SMALL_STATE_VALUES
    digits = EnasMicroSupernet(SPACE, 10, filters=8, num_cells=1)
    digits.build((None, 8, 8, 1))
    assert set(digits.switch_branch_modes.values()) == {"function"}  # the default search: 8x8x8 .. 2x2x32
    cifar = EnasMicroSupernet(SPACE, 10, filters=20, num_cells=1)
    cifar.build((None, 32, 32, 3))
    assert set(cifar.switch_branch_modes.values()) == {"inlined"}  # 32x32x20 .. 8x8x80
    mixed = EnasMicroSupernet(SPACE, 10, filters=8, num_cells=1)
    mixed.build((None, 16, 16, 3))  # 16x16x8 = 2048 > limit; the 8x8x16 reduction and the cells after it are small
    assert 16 * 16 * 8 > limit >= 8 * 8 * 16
    assert mixed.switch_branch_modes["normal_cell_0"] == "inlined"
    assert mixed.switch_branch_modes["normal_cell_1"] == "function"
    unknown = EnasMicroSupernet(SPACE, 10, filters=8, num_cells=1)
    unknown.build((None, None, None, 3))
    assert set(unknown.switch_branch_modes.values()) == {"inlined"}
    again = EnasMicroSupernet.from_config(EnasMicroSupernet(SPACE, 10, switch_branches="function").get_config())
    assert again.switch_branches == "function"
    with pytest.raises(ValueError, match="filters"):
        EnasMicroSupernet(SPACE, 10, filters=1)
