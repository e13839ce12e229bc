"""NASNet: the cell space, the cell ops, networks and their parameter counts, drop path (PPO: test_ppo.py)."""

import collections
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import nas_tf
from conftest import REPO
from nas_tf.layers import (
    FactorizedReduction,
    ScheduledDropPath,
    SeparableConvStack,
    attach_training_progress,
    cell_op,
    drop_path_keep_prob,
)
from nas_tf.models import build_image_model, build_nasnet, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile
from nas_tf.models.nasnet import nasnet_cell
from nas_tf.spaces import NASNET_OPS, REDUCED_OPS, NASNetArch, NASNetBlock, NASNetCell, NASNetSpace
from nas_tf.tasks.image.train import train_classifier
from nas_tf.training import make_sgd

# ------------------------------------------------------------------ space


def test_decision_list_is_two_cells_of_five_decisions_per_block():
    space = NASNetSpace()
    decisions = space.decisions
    assert len(decisions) == 2 * 5 * 5 and decisions.num_tokens == 50
    names = [d.name for d in decisions]
    assert names[:5] == [
        "normal.blocks[0].inputs[0]",
        "normal.blocks[0].inputs[1]",
        "normal.blocks[0].ops[0]",
        "normal.blocks[0].ops[1]",
        "normal.blocks[0].combine",
    ]
    assert names[25].startswith("reduction.blocks[0]")
    # Block b chooses among the two cell inputs and the b earlier blocks.
    assert decisions.types["block0_input"] == (0, 1) and decisions.types["block4_input"] == (0, 1, 2, 3, 4, 5)
    assert decisions.types["op"] == NASNET_OPS and len(NASNET_OPS) == 13
    assert decisions.types["combine"] == ("add", "concat")
    reduced = NASNetSpace.with_op_set("reduced")
    assert reduced.decisions.types["op"] == REDUCED_OPS and len(REDUCED_OPS) == 8
    assert set(NASNET_OPS) - set(REDUCED_OPS) == {"conv_1x3_3x1", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3"}
    # One combiner: no combine decision.
    assert NASNetSpace(num_blocks=3, combiners=("add",)).decisions.num_tokens == 2 * 3 * 4
    with pytest.raises(ValueError, match="unknown op set .tiny."):
        NASNetSpace.with_op_set("tiny")
    with pytest.raises(ValueError, match="sep_conv_9x9"):
        NASNetSpace(ops=("identity", "sep_conv_9x9"))


def test_tokens_arch_and_json_round_trip():
    space = NASNetSpace()
    for tokens in space.decisions.random_tokens(np.random.default_rng(0), 20):
        arch = space.from_tokens(tokens)
        assert np.array_equal(space.to_tokens(arch), tokens)
        assert nas_tf.load_arch(arch.to_json()) == arch
        for cell in (arch.normal, arch.reduction):
            # Sampled cells concatenate the states no block reads.
            read = {i for block in cell.blocks for i in block.inputs}
            assert cell.concat == tuple(s for s in range(7) if s not in read)
            assert 6 in cell.concat


def test_nasnet_a_is_the_released_genotype():
    arch = nas_tf.load_arch("nasnet_a")
    assert isinstance(arch, NASNetArch) and "nasnet_a" in nas_tf.spaces.named_archs()
    normal = [(b.inputs, b.ops) for b in arch.normal.blocks]
    assert normal == [
        ((0, 1), ("sep_conv_5x5", "sep_conv_3x3")),
        ((1, 1), ("sep_conv_5x5", "sep_conv_3x3")),
        ((0, 1), ("avg_pool_3x3", "identity")),
        ((1, 1), ("avg_pool_3x3", "avg_pool_3x3")),
        ((0, 0), ("sep_conv_3x3", "identity")),
    ]
    reduction = [(b.inputs, b.ops) for b in arch.reduction.blocks]
    assert reduction == [
        ((0, 1), ("sep_conv_5x5", "sep_conv_7x7")),
        ((0, 1), ("max_pool_3x3", "sep_conv_7x7")),
        ((0, 1), ("avg_pool_3x3", "sep_conv_5x5")),
        ((3, 2), ("identity", "avg_pool_3x3")),
        ((2, 0), ("sep_conv_3x3", "max_pool_3x3")),
    ]
    assert all(b.combine == "add" for b in arch.normal.blocks + arch.reduction.blocks)
    # h_i-1 is concatenated in the normal cell (6 states), as in the released code.
    assert arch.normal.concat == (1, 2, 3, 4, 5, 6) and arch.reduction.concat == (3, 4, 5, 6)
    # Its concat does not follow the space's rule, so it is not a token vector of the space.
    with pytest.raises(ValueError, match=r"normal.concat"):
        NASNetSpace().to_tokens(arch)


@pytest.mark.parametrize(
    "change, field, value",
    [
        (lambda d: d["normal"]["blocks"][2]["ops"].__setitem__(1, "sep_conv_9x9"), "normal.blocks[2].ops[1]", '"sep_conv_9x9"'),
        (lambda d: d["reduction"]["blocks"][1]["inputs"].__setitem__(0, 3), "reduction.blocks[1].inputs[0]", "3"),
        (lambda d: d["normal"]["blocks"][0].__setitem__("combine", "mul"), "normal.blocks[0].combine", '"mul"'),
        (lambda d: d["normal"].__setitem__("concat", [1, 9]), "normal.concat[1]", "9"),
        (lambda d: d["normal"]["blocks"][0].__setitem__("inputs", [0]), "normal.blocks[0].inputs", "[0]"),
        (lambda d: d["reduction"].__setitem__("blocks", []), "reduction.blocks", "at least one block"),
        (lambda d: d["normal"]["blocks"][3].__setitem__("op", "x"), "normal.blocks[3].op", "unknown field"),
    ],
)
def test_bad_arch_json_names_field_and_value(tmp_path, change, field, value):
    data = nas_tf.load_arch("nasnet_a").to_dict()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(nas_tf.ArchError) as info:
        nas_tf.load_arch(str(path))
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and value in message


def test_space_imports_no_tensorflow():
    code = "import sys, nas_tf.spaces.nasnet as n; n.NASNetSpace().decisions; assert 'tensorflow' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# -------------------------------------------------------------------- ops


@pytest.mark.parametrize("op", NASNET_OPS)
def test_every_op_keeps_or_halves_the_size_and_outputs_f_channels(op):
    for strides, size in ((1, 8), (2, 4)):
        for channels in (12, 24):
            x = keras.Input((8, 8, channels))
            assert cell_op(op, 12, strides)(x).shape == (None, size, size, 12)
    # Odd sizes follow "same" padding.
    assert cell_op(op, 12, 2)(keras.Input((7, 7, 12))).shape == (None, 4, 4, 12)


def test_ops_are_built_as_in_the_released_code():
    x = keras.Input((8, 8, 12))
    sep = cell_op("sep_conv_5x5", 12, 2)
    sep(x)
    # Applied twice, the stride on the first only, no bias.
    assert isinstance(sep, SeparableConvStack) and len(sep.convs) == 2
    assert [c.strides for c in sep.convs] == [(2, 2), (1, 1)] and not any(c.use_bias for c in sep.convs)
    assert sep.count_params() == 2 * (25 * 12 + 12 * 12) + 2 * 4 * 12
    identity = cell_op("identity", 12)
    identity(x)
    assert identity.is_identity and identity.count_params() == 0
    strided = cell_op("identity", 12, 2)
    strided(x)
    assert not strided.is_identity and strided.count_params() == 12 * 12 + 4 * 12
    pool = cell_op("max_pool_3x3", 12)
    pool(x)
    assert pool.count_params() == 0
    calibrated = cell_op("avg_pool_3x3", 12)
    calibrated(keras.Input((8, 8, 24)))
    assert calibrated.count_params() == 24 * 12 + 4 * 12  # 1x1 conv + BN when channels differ


def test_factorized_reduction_keeps_every_pixel():
    layer = FactorizedReduction(4, 2)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    layer.build(x.shape)
    eye = np.eye(4, dtype="float32")[:, :2].reshape(1, 1, 4, 2)
    layer.conv_1.kernel.assign(eye)
    layer.conv_2.kernel.assign(np.eye(4, dtype="float32")[:, 2:].reshape(1, 1, 4, 2))
    y = layer(x, training=False).numpy() * np.sqrt(1.0 + layer.bn.epsilon)
    np.testing.assert_allclose(y[..., :2], x[:, ::2, ::2, :2], atol=1e-5)
    np.testing.assert_allclose(y[..., 2:], x[:, 1::2, 1::2, 2:], atol=1e-5)


# ------------------------------------------------------------------ cells


def _random_archs(num, seed=0, **space_settings):
    space = NASNetSpace(**space_settings)
    return [space.from_tokens(t) for t in space.decisions.random_tokens(np.random.default_rng(seed), num)]


def _expected_channels(cell: NASNetCell, filters: int) -> int:
    per_state = [filters, filters] + [2 * filters if b.combine == "concat" else filters for b in cell.blocks]
    return sum(per_state[s] for s in cell.concat)


def test_reduction_cells_halve_and_normal_cells_keep_the_size_of_random_archs():
    for arch in _random_archs(6, seed=3):
        for size in (8, 7):
            x = keras.Input((size, size, 20))
            prev = keras.Input((size, size, 36))
            normal = nasnet_cell(arch.normal, x, prev, filters=10, reduction=False)
            assert normal.shape == (None, size, size, _expected_channels(arch.normal, 10))
            reduced = nasnet_cell(arch.reduction, x, prev, filters=10, reduction=True)
            half = -(-size // 2)
            assert reduced.shape == (None, half, half, _expected_channels(arch.reduction, 10))
            # h_i-1 twice as large (the cell after a reduction) is adjusted too.
            big = keras.Input((2 * size, 2 * size, 16))
            assert nasnet_cell(arch.normal, x, big, filters=10, prev_is_larger=True).shape[1:3] == (size, size)


def test_network_of_random_cells_runs_and_every_cell_has_its_size():
    arch = next(a for a in _random_archs(10, seed=5) if len(a.normal.concat) > 1 and len(a.reduction.concat) > 1)
    model = build_nasnet(arch, (16, 16, 3), 10, num_cells=2, num_conv_filters=6, stem_multiplier=1.0)
    sizes = {l.name: l.output.shape[1] for l in model.layers if l.name.endswith("_output")}
    assert [sizes[f"normal_cell_{i}_output"] for i in range(6)] == [16, 16, 8, 8, 4, 4]
    assert [sizes[f"reduction_cell_{i}_output"] for i in range(2)] == [8, 4]
    assert model(np.zeros((2, 16, 16, 3), "float32")).shape == (2, 10)


def test_all_ops_model_saves_and_reloads(tmp_path):
    ops = list(NASNET_OPS) + ["sep_conv_3x3"] * 7
    cells = []
    for c in range(2):
        blocks = tuple(
            NASNetBlock(inputs=(b % (b + 2), (b + 1) % (b + 2)), ops=(ops[10 * c + 2 * b], ops[10 * c + 2 * b + 1]),
                        combine="concat" if b == 1 else "add")
            for b in range(5)
        )
        cells.append(NASNetCell(blocks))
    arch = NASNetArch(normal=cells[0], reduction=cells[1])
    keras.utils.set_random_seed(1)
    model = build_image_model(arch, (8, 8, 1), 10, num_cells=1, num_conv_filters=4, drop_path_keep_prob=0.7, aux_head=True)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


# ------------------------------------------------- parameter counts vs Keras


def _same_structure(ours, theirs):
    shapes = lambda m: collections.Counter(tuple(w.shape) for w in m.weights)  # noqa: E731
    assert shapes(ours) == shapes(theirs)
    cell_outputs = [l.output.shape for l in ours.layers if l.name.endswith("_output")]
    keras_cells = [l.output.shape for l in theirs.layers if "_concat_" in l.name and l.name.split("_")[0] in ("normal", "reduction")]
    assert cell_outputs == keras_cells


def test_nasnet_a_mobile_has_the_parameters_of_keras_applications():
    ours = nasnet_a_mobile()
    theirs = keras.applications.NASNetMobile(weights=None)
    assert ours.count_params() == theirs.count_params() == 5_326_716
    _same_structure(ours, theirs)
    # No top, as keras.applications: the 1056 penultimate filters.
    no_top = nasnet_a_mobile(include_top=False, pooling="avg")
    assert no_top.output_shape == (None, 1056) and no_top.count_params() == 5_326_716 - 1057 * 1000


@pytest.mark.parametrize("penultimate, cells, stem, skip", [(96, 1, 8, False), (192, 2, 16, True)])
def test_small_nasnets_have_the_weights_of_keras_nasnet_builder(penultimate, cells, stem, skip):
    """The ImageNet skeleton at small sizes against the builder behind keras.applications.NASNetMobile/Large.

    (``keras.applications`` exports only the two fixed sizes; the builder that
    takes the sizes as arguments is ``keras.src.applications.nasnet.NASNet``.)
    """
    from keras.src.applications.nasnet import NASNet

    theirs = NASNet(input_shape=(64, 64, 3), penultimate_filters=penultimate, num_blocks=cells, stem_block_filters=stem,
                    skip_reduction=skip, weights=None, classes=10)
    ours = build_nasnet(nas_tf.load_arch("nasnet_a"), (64, 64, 3), 10, num_cells=cells, penultimate_filters=penultimate,
                        skeleton="imagenet", stem_filters=stem, skip_reduction=skip, batch_norm_momentum=0.9997,
                        batch_norm_epsilon=1e-3, dropout=0.5)
    assert ours.count_params() == theirs.count_params()
    _same_structure(ours, theirs)


@pytest.mark.slow  # an 89M-parameter build on each side (the small configurations above run by default)
def test_nasnet_a_large_has_the_parameters_of_keras_applications():
    ours = nasnet_a_large()  # with drop path (keep 0.7): no parameters added
    theirs = keras.applications.NASNetLarge(weights=None)
    assert ours.count_params() == theirs.count_params() == 88_949_818
    _same_structure(ours, theirs)


def test_nasnet_a_cifar_6_at_768_has_about_3_3m_parameters():
    model = nasnet_a_cifar()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert 3.25e6 < trainable < 3.4e6  # the paper's "3.3M"
    assert model.output_shape == (None, 10)
    assert model.layers[-1].output.shape[-1] == 10 and model.get_layer("normal_cell_17_output").output.shape[-1] == 768
    with_aux = nasnet_a_cifar(aux_head=True)
    assert [tuple(o.shape) for o in with_aux.outputs] == [(None, 10), (None, 10)]


def test_builder_rejects_bad_options():
    arch = nas_tf.load_arch("nasnet_a")
    with pytest.raises(ValueError, match="penultimate_filters"):
        build_nasnet(arch, (32, 32, 3), 10, penultimate_filters=100)
    with pytest.raises(ValueError, match="skeleton"):
        build_nasnet(arch, (32, 32, 3), 10, skeleton="mnist")
    with pytest.raises(ValueError, match="drop_path_keep_prob"):
        build_nasnet(arch, (32, 32, 3), 10, drop_path_keep_prob=0.0)
    with pytest.raises(TypeError, match="nasnet arch"):
        build_nasnet(_nas_cnn_arch(), (32, 32, 3), 10)


def _nas_cnn_arch():
    from nas_tf.spaces import ConvLayer, NASCNNArch

    return NASCNNArch(layers=(ConvLayer(3, 3, 8),))


# -------------------------------------------------------------- drop path


def test_drop_path_keep_probability_schedule():
    # keep 0.6 over 20 cells (CIFAR 6 @ 768): the last cell reaches 0.6 at the end of training.
    assert drop_path_keep_prob(0.6, 19, 20, progress=0.0) == pytest.approx(1.0)
    assert drop_path_keep_prob(0.6, 19, 20, progress=0.5) == pytest.approx(0.8)
    assert drop_path_keep_prob(0.6, 19, 20, progress=1.0) == pytest.approx(0.6)
    assert drop_path_keep_prob(0.6, 19, 20, progress=3.0) == pytest.approx(0.6)
    assert drop_path_keep_prob(0.6, 9, 20, progress=1.0) == pytest.approx(0.8)
    assert drop_path_keep_prob(0.6, 0, 20, progress=0.25) == pytest.approx(1 - 0.25 * 0.02)


def test_drop_path_follows_the_training_loop_progress(digits):
    layer = ScheduledDropPath(0.5, cell_index=3, total_cells=4, name="drop")
    images = keras.Input(digits.input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same")(images)
    x = layer(x)
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(images, logits)
    progress = attach_training_progress(model)
    assert progress is not None and layer.progress is progress
    seen = []

    def record(epoch, result):
        seen.append(float(layer.keep_probability()))

    data = digits.subset("train", 128)
    train_classifier(model, data, epochs=4, batch_size=32, optimizer=make_sgd(0.01), eval_split=None, progress=progress,
                     on_epoch_end=record)
    # 4 steps per epoch, 16 in all: after epoch e the last step set progress (4e - 1) / 16.
    expected = [1.0 - (4 * e - 1) / 16 * 0.5 for e in (1, 2, 3, 4)]
    assert seen == pytest.approx(expected)
    assert float(progress.numpy()) == 1.0


def test_drop_path_drops_whole_examples_and_keeps_the_mean():
    layer = ScheduledDropPath(0.5, cell_index=0, total_cells=1, seed=3)
    x = np.ones((4000, 2, 2, 3), "float32")
    y = layer(x, training=True).numpy()
    per_example = y.reshape(4000, -1)
    assert set(np.unique(per_example)) == {0.0, 2.0}
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))  # whole examples
    assert abs(per_example.mean() - 1.0) < 0.06
    assert np.array_equal(layer(x, training=False), x)
