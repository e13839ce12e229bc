"""ENAS recurrent search: the enas_rnn space, its cell, the supernet LM and a one-shot search."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from nas_tf.controller import Reinforce, controller_for
from nas_tf.data.text import load_pydoc_corpus
from nas_tf.layers import EnasRnnCell
from nas_tf.models import build_language_model
from nas_tf.models.enas_rnn import EnasRnnSupernetLM
from nas_tf.search import OneShotConfig, OneShotSearch
from nas_tf.spaces import ArchError, EnasRnnArch, EnasRnnSpace
from nas_tf.spaces.enas_rnn import EnasRnnNode, rnn_arch_from_arc
from nas_tf.tasks import LMSharedTrainingConfig, LMSupernetTask
from nas_tf.utils import read_jsonl

# ------------------------------------------------------------------- space


def test_space_layout_size_and_round_trip():
    space = EnasRnnSpace()
    assert space.num_nodes == 8 and space.decisions.num_tokens == 16
    assert space.size() == 40320 * 4**8  # L! * A^L
    assert [o for pair in space.token_layout() for o in pair] == list(range(16))
    rng = np.random.default_rng(0)
    for t in space.decisions.random_tokens(rng, 20):
        arch = space.from_tokens(t)
        np.testing.assert_array_equal(space.to_tokens(arch), t)
        assert nas_tf.load_arch(arch.to_json()) == arch
        assert arch.to_arc() == " ".join(map(str, t))  # tokens are the authors' arc string


def test_published_cells_from_their_arc_strings():
    arch = nas_tf.load_arch("enas_rnn")
    # PAPERS.md 3.9.3: s1<-s0 sigmoid; s2<-s1 tanh; s3<-s2 ReLU; s4<-s2 sigmoid; s5<-s4 tanh; s6<-s5 tanh;
    # s7<-s3 sigmoid; s8<-s6 sigmoid; output = mean(s1..s8).
    expected = [(0, "sigmoid"), (1, "tanh"), (2, "relu"), (2, "sigmoid"), (4, "tanh"), (5, "tanh"), (3, "sigmoid"), (6, "sigmoid")]
    assert [(n.input, n.activation) for n in arch.nodes] == expected
    assert arch.output_nodes() == tuple(range(1, 9))
    darts = nas_tf.load_arch("darts_rnn")
    assert [(n.activation, n.input) for n in darts.nodes] == [
        ("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5)
    ]
    loose = rnn_arch_from_arc("0 0 1 1 1 0", output="loose_ends")
    assert loose.output_nodes() == (2, 3)


def test_arch_errors_name_the_field():
    with pytest.raises(ArchError, match=r"nodes\[2\].input.*3"):
        nas_tf.load_arch({"space": "enas_rnn", "nodes": [{"input": 0, "activation": "tanh"}] * 2 + [{"input": 3, "activation": "tanh"}]})
    with pytest.raises(ArchError, match=r"nodes\[0\].activation.*swish"):
        nas_tf.load_arch({"space": "enas_rnn", "nodes": [{"input": 0, "activation": "swish"}]})
    with pytest.raises(ArchError, match="output"):
        nas_tf.load_arch({"space": "enas_rnn", "nodes": [{"input": 0, "activation": "tanh"}], "output": "max"})
    with pytest.raises(ValueError, match="nodes: the arch has 8 nodes, this space has 4"):
        EnasRnnSpace(num_nodes=4).to_tokens(nas_tf.load_arch("enas_rnn"))
    with pytest.raises(ValueError, match="num_nodes"):
        EnasRnnSpace(num_nodes=0)


# -------------------------------------------------------------------- cell


def _reference_cell(arch, x, h, kx, kh, nodes_w):
    """NumPy: the corrected enas_lm cell, written from PAPERS.md 3.5.3."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    acts = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "sigmoid": sig, "identity": lambda v: v}
    u = h.shape[-1]
    ht = x @ kx + h @ kh
    s = [h + sig(ht[:, u:]) * (np.tanh(ht[:, :u]) - h)]
    for k, node in enumerate(arch.nodes):
        p = s[node.input]
        ht = p @ nodes_w[k]
        s.append(p + sig(ht[:, u:]) * (acts[node.activation](ht[:, :u]) - p))
    return np.mean([s[k] for k in arch.output_nodes()], axis=0)


def test_cell_matches_the_numpy_reference():
    rng = np.random.default_rng(0)
    for arch in (nas_tf.load_arch("enas_rnn"), rnn_arch_from_arc("0 3 0 1 2 2 1 0", output="loose_ends")):
        cell = EnasRnnCell(arch, units=6)
        x = rng.normal(size=(3, 5)).astype(np.float32)
        h = rng.normal(size=(3, 6)).astype(np.float32)
        out, (state,) = cell(x, [h])
        want = _reference_cell(arch, x, h, cell.kernel.numpy(), cell.recurrent_kernel.numpy(),
                               [w.numpy() for w in cell.node_kernels])
        np.testing.assert_allclose(out, want, atol=1e-5)
        np.testing.assert_allclose(state, out)
    again = EnasRnnCell.from_config(cell.get_config())
    assert again.arch == cell.arch and again.units == 6


# ---------------------------------------------------------------- supernet

VOCAB = 50


@pytest.mark.parametrize("output,per_activation,selection", [("mean", True, "switch"), ("loose_ends", False, "all")])
def test_supernet_equals_the_standalone_child(output, per_activation, selection):
    space = EnasRnnSpace(num_nodes=8, output=output)
    keras.utils.set_random_seed(0)
    lm = EnasRnnSupernetLM(space, VOCAB, units=12, tie_weights=True, weights_per_activation=per_activation,
                           activation_selection=selection)
    lm.build()
    forward = tf.function(
        lambda x, arch: lm(x, arch, training=False)[0],
        input_signature=[tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((16,), tf.int32)],
    )
    x = np.random.default_rng(1).integers(0, VOCAB, size=(4, 7)).astype(np.int32)
    archs = [space.from_tokens(t) for t in space.decisions.random_tokens(np.random.default_rng(2), 3)]
    if output == "mean":
        archs.append(nas_tf.load_arch("enas_rnn"))
    outs = []
    for arch in archs:
        child = lm.build_child(arch)
        assert isinstance(child.rnns[0].cell, EnasRnnCell) and child.count_params() < lm.count_params()
        got = forward(x, space.to_tokens(arch)).numpy()
        np.testing.assert_allclose(got, child(x)[0], atol=1e-5)
        outs.append(got)
    # Different archs compute different functions (the comparison can fail).
    assert not np.allclose(outs[0], outs[1], atol=1e-4)
    assert forward.experimental_get_tracing_count() == 1
    # The weights another arch selects do not give arch 0's function.
    wrong = lm.build_child(archs[0], copy_weights=False)
    lm.copy_to_child(archs[1], wrong)
    assert not np.allclose(forward(x, space.to_tokens(archs[0])), wrong(x)[0], atol=1e-4)


def test_supernet_rejects_a_call_without_arch_and_a_foreign_arch():
    space = EnasRnnSpace(num_nodes=3)
    lm = EnasRnnSupernetLM(space, VOCAB, units=8)
    lm.build()
    with pytest.raises(RuntimeError, match="no arch was selected"):
        lm.rnns[0](np.zeros((1, 2, 8), np.float32))
    with pytest.raises(ValueError, match="this space has 3"):
        lm.build_child(nas_tf.load_arch("enas_rnn"))


# ------------------------------------------------------------- search task


@pytest.fixture(scope="module")
def corpus():
    return load_pydoc_corpus().subset("train", 6000)


SMALL = EnasRnnSpace(num_nodes=4)


def _task(corpus, **cfg):
    keras.utils.set_random_seed(0)
    lm = EnasRnnSupernetLM(SMALL, corpus.vocab_size, units=16, tie_weights=True, output_dropout=0.1)
    config = LMSharedTrainingConfig(batch_size=8, bptt=12, steps_per_epoch=6, reward_batch_size=4, **cfg)
    return LMSupernetTask(lm, corpus, config)


def test_train_and_reward_steps_trace_once_and_learn(corpus):
    task = _task(corpus)
    rng = np.random.default_rng(0)
    archs = iter(SMALL.decisions.random_tokens(rng, 100))
    first = task.train_epoch(0, lambda: next(archs))
    later = [task.train_epoch(e, lambda: next(archs)) for e in range(1, 4)]
    assert first["steps"] == 6 and later[-1]["perplexity"] < first["perplexity"] < 1.2 * corpus.vocab_size
    batches = task.reward_batches(0)
    rewards = [task.reward(t, next(batches)) for t in SMALL.decisions.random_tokens(rng, 8)]
    assert all(0 < r < 80 and np.isclose(r, 80 / m["val_perplexity"]) for r, m in rewards)
    # 24 training archs and 8 rewarded archs: one trace each.
    assert task.trace_counts() == {"train_step": 1, "reward_step": 1}
    # Reward windows are deterministic per epoch.
    a, b = task.reward_batches(3), task.reward_batches(3)
    np.testing.assert_array_equal(next(a)[0], next(b)[0])
    assert task.learning_rate(0) == 20.0 and task.learning_rate(15) == pytest.approx(20.0 * 0.96)


def _search(model_dir, corpus, epochs):
    task = _task(corpus)
    strategy = Reinforce(
        controller_for(SMALL.decisions, seed=0, lstm_layers=1, lstm_units=16, temperature=5.0, tanh_constant=2.5),
        seed=0, learning_rate=5e-4, entropy_mode="reward", entropy_weight=1e-4, baseline_update="before",
        baseline_decay=0.99, beta_1=0.0, epsilon=1e-3,
    )
    config = OneShotConfig(str(model_dir), num_epochs=epochs, controller_steps=2, controller_aggregate=3, derive_samples=4)
    return OneShotSearch(SMALL, strategy, task, config)


def test_one_shot_search_runs_resumes_and_writes_a_buildable_cell(tmp_path, corpus):
    summary = _search(tmp_path, corpus, epochs=1).run()
    assert summary["epochs"] == 1 and summary["controller_updates"] == 2
    assert summary["trace_counts"] == {"train_step": 1, "reward_step": 1}
    rows = read_jsonl(tmp_path / "history.jsonl")
    assert len(rows) == 6 and all(0 < r["reward"] < 80 for r in rows)
    resumed = _search(tmp_path, corpus, epochs=2).run()
    assert resumed["epochs"] == 2 and resumed["controller_updates"] == 4
    assert [e["epoch"] for e in read_jsonl(tmp_path / "epochs.jsonl")] == [0, 1]
    best = nas_tf.load_arch(str(tmp_path / "best_arch.json"))
    derived = read_jsonl(tmp_path / "derived.jsonl")
    assert isinstance(best, EnasRnnArch) and best.to_dict() == max(derived, key=lambda r: r["reward"])["arch"]
    assert json.loads((tmp_path / "best_arch.json").read_text())["space"] == "enas_rnn"
    model = build_language_model(corpus.vocab_size, best, units=16, num_layers=1, tie_weights=True)
    logits, _ = model(np.zeros((2, 3), np.int32))
    assert logits.shape == (2, 3, corpus.vocab_size) and isinstance(best.nodes[0], EnasRnnNode)


@pytest.mark.slow
def test_bench_script_writes_its_section(tmp_path):
    from conftest import run_main

    out = tmp_path / "bench.md"
    code, _, err = run_main("bench_enas_rnn.py", "--units=8", "--vocab_size=40", "--batch_size=4", "--bptt=5", "--archs=1",
                            "--steps=1", f"--output={out}")
    assert code == 0, err[-2000:]
    text = out.read_text()
    assert "<!-- begin enas_rnn -->" in text and "published enas_rnn" in text and "traces for all 2 cells: 1." in text


def test_train_final_trains_and_exports_an_enas_rnn_cell(tmp_path):
    from conftest import run_main

    model_dir = tmp_path / "final"
    code, out, err = run_main("train_final.py", "--arch=enas_rnn", f"--model_dir={model_dir}", "--lm_units=16",
                              "--lm_layers=1", "--batch_size=16", "--epochs=1")
    assert code == 0, err[-3000:]
    summary = json.loads(out[out.index("{") :])
    assert 1 < summary["test_perplexity"] < 2000 and (model_dir / "saved_model").is_dir()
    assert nas_tf.load_arch(str(model_dir / "arch.json")) == nas_tf.load_arch("enas_rnn")
    restored = keras.saving.load_model(model_dir / "model.keras")
    assert isinstance(restored.rnns[0].cell, EnasRnnCell)
