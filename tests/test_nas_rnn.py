"""The NAS recurrent-cell space (nas_rnn) and TreeCell."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from rnn_reference import PAPER_EXAMPLE, nas_cell_step, tree_cell_step

import nas_tf
from conftest import REPO
from nas_tf.spaces import ArchError, NASRNNArch, NASRNNSpace, TreeNode, load_arch, make_space, named_archs
from nas_tf.spaces.nas_rnn import tree_children


def test_space_size_for_base_8_is_about_6e16():
    space = NASRNNSpace(base=8)
    size = space.size()
    # 15 nodes and the inject: 8 choices each; two cell indices over 15 nodes.
    assert size == 8**15 * 8 * 15 * 15 == space.size_formula()
    assert 5.5e16 < size < 6.5e16
    assert NASRNNSpace(base=2).size() == 8**3 * 8 * 3 * 3
    assert make_space("nas_rnn", base=4).size() == 8**7 * 8 * 7 * 7


def test_tree_layout():
    assert tree_children(2) == [None, None, (0, 1)]
    kids = tree_children(8)
    assert kids[8] == (0, 1) and kids[11] == (6, 7) and kids[12] == (8, 9) and kids[13] == (10, 11) and kids[14] == (12, 13)
    assert len(kids) == 15


@pytest.mark.parametrize("base", [2, 4, 8])
def test_round_trip_tokens_arch_json(base):
    space = NASRNNSpace(base=base)
    assert space.decisions.num_tokens == 2 * (2 * base - 1) + 4
    assert space.decisions.types["activation"] == ("identity", "tanh", "sigmoid", "relu")
    assert space.decisions.types["combination"] == ("add", "elem_mult")
    for tokens in space.decisions.random_tokens(np.random.default_rng(base), 40):
        arch = space.from_tokens(tokens)
        assert load_arch(arch.to_json()) == arch
        np.testing.assert_array_equal(space.to_tokens(arch), tokens)


def test_paper_worked_example_and_named_nascell():
    arch = load_arch(PAPER_EXAMPLE)
    assert isinstance(arch, NASRNNArch) and arch.root == 2
    assert arch.nodes[1] == TreeNode("elem_mult", "relu")
    assert "nascell" in named_archs()
    nas = nas_tf.load_arch("nascell")
    assert nas.base == 8 and nas.cell_output_node == 12 and nas.cell_inject_node == 8
    assert nas.cell_inject == TreeNode("add", "tanh")
    # It is a point of the base-8 space.
    space = NASRNNSpace(base=8)
    assert space.from_tokens(space.to_tokens(nas)) == nas
    # A space without elem_mult cannot express it, and says which decision fails.
    with pytest.raises(ValueError, match=r"nodes\[3\].combination.*elem_mult"):
        NASRNNSpace(base=8, combinations=("add",)).to_tokens(nas)


@pytest.mark.parametrize(
    "change, field, value",
    [
        ({"base": 6}, "base", "6"),
        ({"nodes": PAPER_EXAMPLE["nodes"][:2]}, "nodes", "3 nodes"),
        ({"nodes": [PAPER_EXAMPLE["nodes"][0], {"combination": "add", "activation": "swish"}, PAPER_EXAMPLE["nodes"][2]]},
         "nodes[1].activation", '"swish"'),
        ({"cell_inject": {"combination": "concat", "activation": "tanh"}}, "cell_inject.combination", '"concat"'),
        ({"cell_output_node": 3}, "cell_output_node", "3"),
        ({"cell_inject_node": "root"}, "cell_inject_node", '"root"'),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_bad_arch_names_field_and_value(tmp_path, change, field, value):
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({**PAPER_EXAMPLE, **change}))
    with pytest.raises(ArchError) as err:
        load_arch(str(path))
    message = str(err.value)
    assert str(path) in message and f"field '{field}'" in message and value in message


def test_bad_space_settings():
    with pytest.raises(ValueError, match="base"):
        NASRNNSpace(base=3)
    with pytest.raises(ValueError, match="activations.*swish"):
        NASRNNSpace(activations=("tanh", "swish"))


def test_space_module_imports_no_tensorflow():
    code = "import sys, nas_tf; nas_tf.load_arch('nascell'); nas_tf.make_space('nas_rnn').size(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-1000:]


def _random_weights(rng, cell, d):
    return [rng.normal(0, 0.5, tuple(w.shape)).astype(np.float32) for w in cell.weights]


@pytest.mark.parametrize("base, seed", [(2, 0), (4, 1), (8, 2), (8, 3)])
def test_tree_cell_matches_the_numpy_reference_on_random_archs(base, seed):
    from nas_tf.layers import TreeCell

    rng = np.random.default_rng(seed)
    space = NASRNNSpace(base=base)
    arch = space.from_tokens(space.decisions.random_tokens(rng, 1)[0])
    units, d, batch, steps = 5, 3, 4, 6
    cell = TreeCell(arch, units, use_bias=True)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    x = rng.normal(size=(batch, steps, d)).astype(np.float32)
    rnn(x)
    weights = _random_weights(rng, cell, d)
    cell.set_weights(weights)
    outputs, c_last, h_last = rnn(x)
    c, h = np.zeros((batch, units)), np.zeros((batch, units))
    for t in range(steps):
        h, c = tree_cell_step(arch.to_dict(), x[:, t], c, h, *weights)
        # relu/elem_mult chains can grow; compare relative to the scale.
        np.testing.assert_allclose(outputs[:, t], h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c_last, c, rtol=1e-4, atol=1e-5)


def test_paper_worked_example_equations():
    """N = 2 example of section 3.4: W1..W4 are the column blocks of kernel / recurrent_kernel."""
    from nas_tf.layers import TreeCell

    rng = np.random.default_rng(4)
    units, d = 3, 2
    cell = TreeCell(PAPER_EXAMPLE, units)
    cell.build((None, d))
    r, k = (rng.normal(size=tuple(w.shape)).astype(np.float32) for w in cell.weights)
    cell.set_weights([r, k])
    x, h, c = (rng.normal(size=(2, n)).astype(np.float32) for n in (d, units, units))
    out, (new_c, new_h) = cell(x, [c, h])
    w1, w3 = k[:, :units], k[:, units:]
    w2, w4 = r[:, :units], r[:, units:]
    a0 = np.tanh(x @ w1 + h @ w2)
    a1 = np.maximum((x @ w3) * (h @ w4), 0)
    a0 = np.maximum(a0 + c, 0)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(a0 * a1))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_c, (x @ w3) * (h @ w4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_h, out)


def test_tree_cell_with_the_nascell_arch_gives_nascell_outputs():
    """The published arch in the generic TreeCell, with NASCell's weights mapped in, is NASCell."""
    from nas_tf.layers import NASCell, TreeCell

    rng = np.random.default_rng(5)
    units, d, batch, steps = 7, 4, 3, 5
    x = rng.normal(size=(batch, steps, d)).astype(np.float32)
    nas = keras.layers.RNN(NASCell(units, use_bias=True, bias_initializer="random_normal"), return_sequences=True)
    tree = keras.layers.RNN(TreeCell("nascell", units, use_bias=True), return_sequences=True)
    expected = np.asarray(nas(x))
    tree(x)
    # NASCell weights by name -> the TreeCell's weights by name.
    by_name = {w.name: w.numpy() for w in nas.cell.weights}
    tree.cell.set_weights([by_name[w.name] for w in tree.cell.weights])
    np.testing.assert_allclose(tree(x), expected, atol=1e-6)
    # Both agree with the line-by-line transcription of the TF Addons equations.
    c, m = np.zeros((batch, units)), np.zeros((batch, units))
    for t in range(steps):
        out, (c, m) = nas_cell_step(x[:, t], c, m, by_name["recurrent_kernel"], by_name["kernel"], by_name["bias"])
        np.testing.assert_allclose(expected[:, t], out, atol=1e-5)


def test_tree_cell_serialises_and_reloads(tmp_path):
    from nas_tf.layers import TreeCell

    keras.utils.set_random_seed(1)
    arch = load_arch(PAPER_EXAMPLE)
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.RNN(TreeCell(arch, 6, projection=4, recurrent_dropout=0.1))(inputs))
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    model.save(tmp_path / "tree.keras")
    loaded = keras.models.load_model(tmp_path / "tree.keras")
    np.testing.assert_array_equal(loaded(x), model(x))
    cell = loaded.layers[-1].cell
    assert cell.arch == arch and cell.projection == 4 and cell.recurrent_dropout == 0.1
    config = TreeCell(arch, 6).get_config()
    assert config["arch"] == arch.to_dict() and TreeCell.from_config(config).arch == arch
    with pytest.raises(ValueError, match="nas_rnn arch"):
        TreeCell({"space": "nas_cnn", "layers": [{"filter_height": 1, "filter_width": 1, "num_filters": 2}]}, 4)
