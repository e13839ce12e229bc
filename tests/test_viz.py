"""Pictures of archs (nas_tf.viz): every space, checked against the published cells; scripts/show_arch.py."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

import nas_tf
from conftest import call_main
from nas_tf.spaces import ArchError, ConvLayer, NASCNNArch, make_space, named_archs, space_names
from nas_tf.viz import (
    GraphvizNotFoundError,
    arch_graph,
    arch_short_form,
    plot_arch,
    register_drawer,
    render_arch,
    save_arch_pictures,
)
from nas_tf.viz.cells import parse_nb201

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SVG = "{http://www.w3.org/2000/svg}"
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"


def svg_graph(svg: bytes):
    """(node id -> its text, [(source id, target id, label, dashed)]) read back from Graphviz's SVG."""
    root = ET.fromstring(svg)
    nodes, edges = {}, []
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        text = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
        if g.get("class") == "node":
            nodes[title.text] = text
        elif g.get("class") == "edge":
            source, target = title.text.split("->")
            dashed = any(p.get("stroke-dasharray") for p in g.iter(f"{SVG}path"))
            edges.append((source, target, text, dashed))
    return nodes, edges


def drawn(arch):
    return svg_graph(render_arch(arch, "svg"))


# ------------------------------------------------------ published cells


def test_nasnet_a_is_drawn_as_published():
    """Both cells of NASNet-A against the paper's figure 4 (as the released slim code encodes it)."""
    nodes, edges = drawn("nasnet_a")
    name = {k: v.replace("block ", "block").replace(" add", "").replace("h i-1", "h_i-1").replace("h i", "h_i")
            for k, v in nodes.items()}
    normal = [("h_i", "sep_conv_5x5", "block0"), ("h_i-1", "sep_conv_3x3", "block0"),
              ("h_i-1", "sep_conv_5x5", "block1"), ("h_i-1", "sep_conv_3x3", "block1"),
              ("h_i", "avg_pool_3x3", "block2"), ("h_i-1", "identity", "block2"),
              ("h_i-1", "avg_pool_3x3", "block3"), ("h_i-1", "avg_pool_3x3", "block3"),
              ("h_i", "sep_conv_3x3", "block4"), ("h_i", "identity", "block4")]
    reduction = [("h_i", "sep_conv_5x5", "block0"), ("h_i-1", "sep_conv_7x7", "block0"),
                 ("h_i", "max_pool_3x3", "block1"), ("h_i-1", "sep_conv_7x7", "block1"),
                 ("h_i", "avg_pool_3x3", "block2"), ("h_i-1", "sep_conv_5x5", "block2"),
                 ("block1", "identity", "block3"), ("block0", "avg_pool_3x3", "block3"),
                 ("block0", "sep_conv_3x3", "block4"), ("h_i", "max_pool_3x3", "block4")]
    for cell, expected, concat in (("normal", normal, {"h_i-1", "block0", "block1", "block2", "block3", "block4"}),
                                   ("reduction", reduction, {"block1", "block2", "block3", "block4"})):
        mine = [(s, t, label, dashed) for s, t, label, dashed in edges if s.startswith(cell + "_")]
        ops = [(name[s], label, name[t]) for s, t, label, dashed in mine if not dashed]
        assert Counter(ops) == Counter(expected), cell
        output = [name[s] for s, t, _, dashed in mine if dashed and t == f"{cell}_out"]
        assert set(output) == concat and len(output) == len(concat)
        assert f"concat({len(concat)})" in nodes[f"{cell}_out"]


def test_nascell_is_drawn_as_tf_addons_computes_it():
    """The NAS cell against tfa.rnn.NASCell's code: per level (combination, activation), inject, c_t."""
    nodes, edges = drawn("nascell")
    reference = [  # tfa NASCell: layer1 (8 leaves), layer2 (4), layer3 (2), new_m
        ("add", "sigmoid"), ("add", "relu"), ("add", "sigmoid"), ("elem_mult", "relu"),
        ("add", "tanh"), ("add", "sigmoid"), ("add", "tanh"), ("add", "sigmoid"),
        ("elem_mult", "tanh"), ("add", "tanh"), ("elem_mult", "tanh"), ("add", "sigmoid"),
        ("elem_mult", "identity"), ("add", "tanh"),
        ("elem_mult", "tanh"),
    ]
    for k, (comb, act) in enumerate(reference):
        assert nodes[f"n{k}"] == f"{k}: {comb} {act}"
    pairs = {(s, t) for s, t, _, _ in edges}
    # Leaves read x_t and h_{t-1}; each inner node its two children; c_{t-1} is added under a tanh
    # into layer2_0 (node 8), whose result feeds layer3_0 (node 12); c_t is layer3_0's pre-activation.
    assert {(i, f"n{k}") for k in range(8) for i in ("x", "h")} <= pairs
    expected_tree = {("n0", "n8"), ("n1", "n8"), ("n2", "n9"), ("n3", "n9"), ("n4", "n10"), ("n5", "n10"),
                     ("n6", "n11"), ("n7", "n11"), ("inject", "n12"), ("n9", "n12"), ("n10", "n13"),
                     ("n11", "n13"), ("n12", "n14"), ("n13", "n14"), ("n8", "inject"), ("c", "inject"),
                     ("n14", "h_t"), ("n12", "c_t")}
    assert expected_tree <= pairs and len(edges) == 16 + len(expected_tree)
    assert nodes["inject"] == "inject: add tanh"
    assert [label for s, t, label, _ in edges if t == "c_t"] == ["pre-activation"]
    assert nodes["x"] == "x t" and nodes["h"] == "h t-1" and nodes["c"] == "c t-1"


def test_enas_rnn_cell_is_drawn_from_its_arc():
    """The published ENAS PTB cell, decoded by hand from its arc (enas_lm: 0 tanh, 1 relu, 2 sigmoid, 3 identity)."""
    nodes, edges = drawn("enas_rnn")
    expected = {("n0", "n1", "sigmoid"), ("n1", "n2", "tanh"), ("n2", "n3", "relu"), ("n2", "n4", "sigmoid"),
                ("n4", "n5", "tanh"), ("n5", "n6", "tanh"), ("n3", "n7", "sigmoid"), ("n6", "n8", "sigmoid"),
                ("x", "n0", "highway"), ("h", "n0", "highway")}
    solid = {(s, t, label) for s, t, label, dashed in edges if not dashed}
    assert solid == expected
    # The corrected code's output: the mean of all eight nodes.
    assert sorted(s for s, t, _, dashed in edges if dashed and t == "h_t") == [f"n{k}" for k in range(1, 9)]
    assert "mean" in nodes["h_t"]


def test_enas_macro_published_network():
    nodes, edges = drawn("enas_macro")
    layers = [k for k in nodes if k.startswith("node") and k != "node0"]
    assert len(layers) == 24
    skips = [e for e in edges if e[3]]
    assert len(skips) == 98  # the paper's final macro network has 98 skip connections (PAPERS.md 3.9.2)
    assert len(edges) == 1 + 24 + 98 + 1
    reduced = sorted(int(k[4:]) - 1 for k, text in nodes.items() if "reduce" in text)
    assert reduced == [7, 15]
    assert "layer 23 (node 24) conv_3x3 + 10 skips" in nodes["node24"]


def test_nas_cnn_layers_strides_and_skips():
    arch = NASCNNArch(
        layers=(ConvLayer(3, 3, 24), ConvLayer(5, 3, 36, 2, 2, inputs=(0,)), ConvLayer(1, 1, 48, inputs=(0, 1))),
        max_pool_after=(1,),
    )
    nodes, edges = drawn(arch)
    assert nodes["layer1"] == "layer 1: conv 5x3 36 filters, stride 2x2 then max pool 2x2, stride 2"
    assert nodes["layer2"] == "concat of 2 inputs layer 2: conv 1x1 48 filters, stride 1x1"
    got = {(s, t, dashed) for s, t, _, dashed in edges}
    assert got == {("image", "layer0", False), ("layer0", "layer1", False), ("layer0", "layer2", True),
                   ("layer1", "layer2", False), ("layer2", "classifier", False)}


def test_nb201_cell_from_the_string_or_the_arch_dict(tmp_path):
    nodes, edges = drawn(NB201)
    expected = {("n0", "n1", "nor_conv_3x3"), ("n0", "n2", "nor_conv_3x3"), ("n1", "n2", "avg_pool_3x3"),
                ("n0", "n3", "skip_connect"), ("n2", "n3", "nor_conv_1x1")}  # the "none" edge is not drawn
    assert {(s, t, label) for s, t, label, _ in edges} == expected
    assert nodes["n0"] == "0: input" and nodes["n3"] == "3: output"
    assert drawn({"space": "nb201", "cell": NB201}) == (nodes, edges)
    text = json.dumps({"space": "nb201", "cell": NB201})
    assert drawn(text) == (nodes, edges)
    (tmp_path / "cell.json").write_text(text)
    assert drawn(str(tmp_path / "cell.json")) == (nodes, edges)
    assert arch_short_form({"space": "nb201", "cell": NB201}) == NB201
    for bad, message in (("|nor_conv_3x3~0|+|skip_connect~0|", "node 2 must read nodes 0..1"),
                         ("|nor_conv_3x3|", "expected 'op~input'"), ("nor_conv_3x3~0", "cell string")):
        with pytest.raises(ArchError, match=message):
            parse_nb201(bad)


def _expected_edges(arch) -> int:
    """Edges of a picture, counted from the arch's structure."""
    if arch.space == "nasnet":
        return sum(4 * c.num_blocks // 2 + len(c.concat) for c in (arch.normal, arch.reduction))
    if arch.space == "nas_cnn":
        return sum(max(1, len(layer.inputs)) for layer in arch.layers) + len(arch.unconsumed_layers())
    if arch.space == "enas_macro":
        return 2 + arch.num_layers + sum(len(layer.skips) for layer in arch.layers)
    if arch.space == "nas_rnn":
        return 2 * arch.base + 2 * (arch.base - 1) + 4
    if arch.space == "enas_rnn":
        return 2 + arch.num_nodes + len(arch.output_nodes())
    if arch.space == "nb201":  # one edge per op that is not "none"
        return sum(1 for part in arch.cell.replace("+", "").split("|") if part and not part.startswith("none~"))
    raise AssertionError(arch.space)


def test_random_archs_of_every_space_and_every_published_arch_draw():
    rng = np.random.default_rng(0)
    archs = [nas_tf.load_arch(n) for n in named_archs()]
    for name in space_names():
        space = make_space(name)
        archs += [space.from_tokens(t) for t in space.decisions.random_tokens(rng, 3)]
    for arch in archs:
        nodes, edges = drawn(arch)
        assert len(edges) == _expected_edges(arch), arch
        assert arch_short_form(arch)


def test_png_pdf_and_dot_files(tmp_path):
    from PIL import Image

    png = plot_arch("nasnet_a", tmp_path / "cell.png")
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in np.unique(pixels, axis=0)}
    # The three fills of the house style are painted: inputs, blocks, output.
    assert {(180, 238, 180), (173, 216, 230), (238, 232, 170)} <= colours
    assert Image.open(png).size[0] > 500
    assert open(plot_arch("nascell", tmp_path / "cell.pdf"), "rb").read(4) == b"%PDF"
    assert open(plot_arch("nascell", tmp_path / "cell.dot")).read().startswith("digraph nas_rnn")
    with pytest.raises(ValueError, match=r"cell\.jpg: unknown picture format '\.jpg'"):
        plot_arch("nascell", tmp_path / "cell.jpg")
    assert sorted(save_arch_pictures("enas_rnn", tmp_path / "best_arch")) == [
        str(tmp_path / "best_arch.png"), str(tmp_path / "best_arch.svg")]


def test_missing_dot_says_how_to_install_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    with pytest.raises(GraphvizNotFoundError) as e:
        plot_arch("nascell", tmp_path / "cell.svg")
    assert "apt-get install graphviz" in str(e.value) and "conda install graphviz" in str(e.value)
    assert not os.path.exists(tmp_path / "cell.svg")
    assert plot_arch("nascell", tmp_path / "cell.dot")  # DOT text needs no dot
    import nas_tf.viz.plot as plot

    monkeypatch.setattr(plot, "_warned_missing_dot", False)
    with caplog.at_level("WARNING", logger="nas_tf.viz"):
        assert save_arch_pictures("nascell", tmp_path / "best_arch") == []
    assert "apt-get install graphviz" in caplog.text


def test_a_new_space_needs_only_a_drawer():
    from nas_tf.viz import plot as plot_module
    from nas_tf.viz.render import new_graph

    @register_drawer("test_chain")
    def draw_chain(arch):
        g = new_graph("chain")
        for a, b in zip(arch["nodes"], arch["nodes"][1:]):
            g.edge(a, b)
        return g

    try:
        nodes, edges = drawn({"space": "test_chain", "nodes": ["a", "b", "c"]})
        assert [(s, t) for s, t, _, _ in edges] == [("a", "b"), ("b", "c")]
    finally:
        del plot_module._DRAWERS["test_chain"]
    with pytest.raises(ArchError, match="field 'space'"):
        arch_graph({"space": "no_such_space"})


def test_drawing_imports_no_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from nas_tf.viz import plot_arch, arch_short_form\n"
        f"plot_arch('nasnet_a', {str(tmp_path / 'a.svg')!r})\n"
        "arch_short_form('nascell')\n"
        "bad = sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert os.path.getsize(tmp_path / "a.svg") > 1000


def test_short_forms():
    assert arch_short_form("enas_rnn") == "sigmoid(0) tanh(1) relu(2) sigmoid(2) tanh(4) tanh(5) sigmoid(3) sigmoid(6)"
    arch = NASCNNArch(layers=(ConvLayer(3, 3, 24), ConvLayer(5, 3, 36, 2, 2, inputs=(0,)), ConvLayer(1, 1, 48, inputs=())))
    assert arch_short_form(arch) == "3x3x24 5x3x36/2x2 1x1x48<image"
    assert arch_short_form("nasnet_a").startswith("N: sep5x5(0)+sep3x3(1) sep5x5(1)+sep3x3(1) avg3x3(0)+id(1)")


# ------------------------------------------------------ scripts/show_arch.py


def run_show_arch(*args):
    call_main("show_arch.py", *args)


def test_show_arch_draws_names_files_and_run_directories(tmp_path, capsys):
    run_show_arch("--arch=nasnet_a", f"--output={tmp_path / 'a.svg'}")
    assert capsys.readouterr().out.strip() == str(tmp_path / "a.svg")
    assert svg_graph(open(tmp_path / "a.svg", "rb").read()) == drawn("nasnet_a")
    run_dir = tmp_path / "run"
    nas_tf.load_arch("nascell").to_json(run_dir / "best_arch.json")
    run_show_arch(f"--arch={run_dir}", f"--output={tmp_path / 'b.png'}")
    run_show_arch(f"--arch={run_dir / 'best_arch.json'}", f"--output={tmp_path / 'b.dot'}")
    assert open(tmp_path / "b.png", "rb").read(4) == b"\x89PNG"
    run_show_arch(f"--arch={NB201}", f"--output={tmp_path / 'c.svg'}")
    assert drawn(NB201) == svg_graph(open(tmp_path / "c.svg", "rb").read())


@pytest.mark.parametrize(
    "args, line",
    [
        (["--arch=nasnet_b", "--output=x.svg"], "error: --arch=nasnet_b: no such file or published arch (published: "),
        (["--arch=nascell", "--output=x.jpg"], "error: --output=x.jpg: unknown picture format .jpg; use .svg"),
        (["--arch={binary}", "--output=x.svg"], "error: --arch={binary}: not UTF-8 text (byte 0x80 at line 1 column 1)"),
        (["--arch={empty}", "--output=x.svg"], "error: --arch={empty}: a directory without best_arch.json"),
        (["--arch={bad}", "--output=x.svg"],
         "error: --arch={bad}: field 'layers[0].num_filters': expected an integer >= 1, got 0"),
        (["--output=x.svg"], "error: --arch is required"),
    ],
)
def test_show_arch_errors_are_one_line(tmp_path, monkeypatch, capsys, args, line):
    (tmp_path / "binary.json").write_bytes(bytes(range(128, 256)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text(
        '{"space": "nas_cnn", "layers": [{"filter_height": 3, "filter_width": 3, "num_filters": 0}]}'
    )
    paths = {"binary": tmp_path / "binary.json", "empty": tmp_path / "empty", "bad": tmp_path / "bad.json"}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        run_show_arch(*[a.format(**paths) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith(line.format(**paths)) and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "x.svg")


def test_show_arch_script_smoke(tmp_path):
    """The script as a user runs it (one fresh interpreter)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "show_arch.py"), "--arch=enas_micro", f"--output={tmp_path / 'm.svg'}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert drawn("enas_micro") == svg_graph(open(tmp_path / "m.svg", "rb").read())
