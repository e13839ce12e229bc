"""The NAS-Bench-201 network: parameter counts against the benchmark, cell semantics, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from nas_tf.layers import NB201Cell
from nas_tf.models import build_image_model, build_nb201, image_spaces
from nas_tf.spaces import NB201Arch

# Parameters recorded by NATS-Bench for CIFAR-10 (C = 16, N = 5): the "params"
# field (millions) of archs 0, 11 and 284 of its sample files
# (fake_torch_dir/NATS-tss-v1_0-3ffb9-simple).
RECORDED_PARAMS = {
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": 129306,
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|": 802426,
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|": 101306,
}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("cell", list(RECORDED_PARAMS), ids=["arch0", "arch11", "arch284"])
def test_parameters_equal_the_benchmark_records(cell):
    model = build_image_model(nas_tf.load_arch({"space": "nb201", "cell": cell}), (32, 32, 3), 10)
    assert _trainable(model) == RECORDED_PARAMS[cell]


def test_parameters_by_hand_for_other_sizes():
    # ResNet cell, C = 8, N = 2, 5 classes, counted by hand: every ReLU-conv-BN
    # is k*k*cin*cout + 2*cout; the reduction adds a 1x1 shortcut conv.
    arch = nas_tf.load_arch("nb201_resnet")
    model = build_nb201(arch, (16, 16, 3), 5, channels=8, cells_per_stage=2)

    def rcb(k, cin, cout):
        return k * k * cin * cout + 2 * cout

    stem = 3 * 3 * 3 * 8 + 2 * 8
    cells = sum(2 * 2 * rcb(3, c, c) for c in (8, 16, 32))  # 2 cells x 2 convs per stage
    reductions = sum(rcb(3, c, 2 * c) + rcb(3, 2 * c, 2 * c) + c * 2 * c for c in (8, 16))
    head = 2 * 32 + 32 * 5 + 5
    assert _trainable(model) == stem + cells + reductions + head


def _avg_pool_excluding_padding(x):
    """3x3 mean over the pixels inside the image (PyTorch's count_include_pad=False)."""
    n, h, w, c = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = x[:, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].mean(axis=(1, 2))
    return out


def test_cell_sums_its_edges():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 4)).astype("float32")
    # node1 = x, node2 = x + node1, node3 = x + node1 + node2 = 4x.
    cell = NB201Cell("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", 4)
    np.testing.assert_allclose(cell(x), 4 * x, rtol=1e-6)
    # node1 = pool(x), node2 = node1, node3 = node2.
    cell = NB201Cell("|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|", 4)
    np.testing.assert_allclose(cell(x), _avg_pool_excluding_padding(x), rtol=1e-5, atol=1e-6)
    # An output no path reaches is zeros (and has no weights to train).
    cell = NB201Cell("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|", 4)
    np.testing.assert_array_equal(cell(x), np.zeros_like(x))
    assert len(cell.trainable_weights) == 6  # two ReLU-conv-BN: kernel, gamma, beta each


def test_model_trains_saves_and_reloads(tmp_path):
    arch = NB201Arch.from_string("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert "nb201" in image_spaces()
    model = build_image_model(arch, (8, 8, 1), 3, channels=4, cells_per_stage=1)
    assert len(model.losses) > 0  # weight decay on the kernels
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, size=16)
    optimizer = keras.optimizers.SGD(0.05)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for _ in range(4):  # eager steps: no tracing, the test stays fast
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + sum(model.losses)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    path = tmp_path / "nb201.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)
    assert again.get_layer("stage1_cell0").cell == arch


def test_builder_and_cell_reject_bad_arguments():
    arch = nas_tf.load_arch("nb201_resnet")
    with pytest.raises(ValueError, match="channels must be a positive integer, got 0"):
        build_nb201(arch, (32, 32, 3), 10, channels=0)
    with pytest.raises(ValueError, match="cells_per_stage must be a positive integer, got 2.5"):
        build_nb201(arch, (32, 32, 3), 10, cells_per_stage=2.5)
    with pytest.raises(TypeError, match="needs an nb201 arch, got EnasMacroArch"):
        build_nb201(nas_tf.load_arch("enas_macro"), (32, 32, 3), 10)
    with pytest.raises(ValueError, match="the input has 3 channels, the cell 16"):
        NB201Cell(arch, 16)(keras.Input((8, 8, 3)))
    with pytest.raises(nas_tf.ArchError, match="unknown op 'conv'"):
        NB201Cell("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", 4)
