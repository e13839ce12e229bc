"""Word-level language modelling: corpora, the model, truncated BPTT training, LM children."""

import keras
import numpy as np
import pytest
from rnn_reference import PAPER_EXAMPLE

import nas_tf
from nas_tf.data import DatasetUnavailableError
from nas_tf.data.text import load_ptb, load_pydoc_corpus, tokenize
from nas_tf.models import LanguageModel, build_language_model
from nas_tf.search import ChildRequest, InProcessEvaluator
from nas_tf.tasks import LMChildConfig, LMChildTrainer, perplexity_reward
from nas_tf.tasks.text.train import evaluate_perplexity, train_language_model
from nas_tf.training import make_sgd


@pytest.fixture(scope="module")
def corpus():
    return load_pydoc_corpus()


def test_embedded_corpus_is_real_text(corpus):
    assert corpus.name.startswith("pydoc-")
    assert corpus.size("train") > 60000 and corpus.size("validation") > 5000 and corpus.size("test") > 5000
    assert 1000 < corpus.vocab_size <= 10000 and corpus.vocab[-1] == "<unk>" and corpus.vocab[0] == "<eos>"
    text = " ".join(corpus.words(corpus.splits["train"][:400]))
    assert "the assert statement" in text.replace('"', "").replace("  ", " ")
    unk = corpus.vocab.index("<unk>")
    assert (corpus.splits["validation"] == unk).mean() < 0.1
    # Deterministic: the same ids on every load.
    again = load_pydoc_corpus()
    assert again.vocab == corpus.vocab and all(np.array_equal(again.splits[s], corpus.splits[s]) for s in corpus.splits)
    assert tokenize("In 3.11, x = f(2)...") == ["in", "N", ",", "x", "=", "f", "(", "N", ")", "..."]


def test_windows_carry_on_from_one_another(corpus):
    small = corpus.subset("train", 1000)
    windows = list(small.windows("train", 4, 35))
    assert len(windows) == small.num_windows("train", 4, 35) == -(-249 // 35)
    rows = small.splits["train"][:1000].reshape(4, 250)
    x = np.concatenate([w[0] for w in windows], axis=1)
    y = np.concatenate([w[1] for w in windows], axis=1)
    np.testing.assert_array_equal(x, rows[:, :-1])
    np.testing.assert_array_equal(y, rows[:, 1:])
    assert windows[0][0].shape == (4, 35) and windows[-1][0].shape == (4, 249 - 35 * 7)


def _write_ptb(directory, skip=None):
    text = {
        "ptb.train.txt": " the cat sat on the mat \n the dog sat on the log \n",
        "ptb.valid.txt": " the cat sat on the log \n",
        "ptb.test.txt": " a dog sat on the mat \n",
    }
    for name, content in text.items():
        if name != skip:
            (directory / name).write_text(content)


def test_penn_treebank_files(tmp_path):
    _write_ptb(tmp_path)
    ptb = load_ptb(str(tmp_path))
    assert ptb.name == "ptb" and ptb.vocab[:2] == ("the", "<eos>") and "<unk>" in ptb.vocab
    assert ptb.words(ptb.splits["train"][:7]) == ["the", "cat", "sat", "on", "the", "mat", "<eos>"]
    assert ptb.words(ptb.splits["test"][:2]) == ["<unk>", "dog"]  # "a" is not in the training vocabulary
    for missing in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        d = tmp_path / missing.split(".")[1]
        d.mkdir()
        _write_ptb(d, skip=missing)
        with pytest.raises(DatasetUnavailableError, match=missing.replace(".", r"\.")):
            load_ptb(str(d))
    with pytest.raises(DatasetUnavailableError, match="--data_dir"):
        load_ptb(None)


def test_state_carried_across_windows_equals_one_long_pass():
    keras.utils.set_random_seed(0)
    arch = nas_tf.load_arch("nascell")
    model = build_language_model(50, arch, units=8, num_layers=2, tie_weights=True)
    tokens = np.random.default_rng(0).integers(0, 50, (3, 12)).astype(np.int32)
    full, full_states = model(tokens)
    first, states = model(tokens[:, :5])
    second, last_states = model(tokens[:, 5:], states=states)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-5)
    for a, b in zip(last_states, full_states):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert model.state_sizes() == [8, 8, 8, 8]


def test_tied_weights_share_the_embedding():
    tied = build_language_model(300, "lstm", units=16, tie_weights=True)
    untied = build_language_model(300, "lstm", units=16, tie_weights=False)
    assert untied.count_params() - tied.count_params() == 16 * 300  # the softmax kernel
    assert not any("softmax/kernel" in w.path for w in tied.weights)
    with pytest.raises(ValueError, match="tie_weights.*embedding_dim"):
        LanguageModel(300, "lstm", units=16, embedding_dim=8, tie_weights=True)
    with pytest.raises(ValueError, match="cell.*transformer"):
        LanguageModel(300, "transformer")


def test_variational_dropout_masks_are_shared_across_time():
    model = build_language_model(40, "gru", units=6, input_dropout=0.5, output_dropout=0.5, embedding_dropout=0.3, seed=3)
    ones = np.ones((4, 9, 6), np.float32)
    dropped = np.asarray(model.input_drop(ones, training=True))
    assert (dropped == 0).any()
    np.testing.assert_array_equal(dropped, np.repeat(dropped[:, :1], 9, axis=1))
    tokens = np.arange(36).reshape(4, 9) % 40
    inference = model(tokens)[0]
    np.testing.assert_array_equal(inference, model(tokens)[0])
    assert not np.allclose(model(tokens, training=True)[0], inference)


def test_language_model_trains_on_the_embedded_corpus(corpus):
    """A short real run: validation perplexity falls far below the untrained (uniform) level."""
    keras.utils.set_random_seed(1)
    model = build_language_model(corpus.vocab_size, nas_tf.load_arch("nascell"), units=32, tie_weights=True, output_dropout=0.1)
    before = evaluate_perplexity(model, corpus, "validation", 10, 35)
    assert 0.7 * corpus.vocab_size < before < 1.3 * corpus.vocab_size
    seen = []
    result = train_language_model(
        model, corpus, epochs=2, batch_size=32, bptt=35, optimizer=make_sgd(20.0, 0.0, False, clip_norm=0.25),
        steps_per_epoch=35, on_epoch_end=lambda e, r: seen.append(e),
    )
    assert seen == [0, 1] and result.steps == 70
    assert result.val_perplexity[1] < result.val_perplexity[0] < before / 3
    assert result.val_perplexity[1] < 0.2 * corpus.vocab_size
    assert np.isclose(result.val_perplexity[1], evaluate_perplexity(model, corpus, "validation", 10, 35), rtol=1e-4)


def test_perplexity_reward():
    assert perplexity_reward([100.0, 80.0]) == pytest.approx(80 / 80**2)
    assert perplexity_reward([50.0, 80.0, 90.0], c=1.0, window=2) == pytest.approx(1 / 80**2)
    with pytest.raises(ValueError):
        perplexity_reward([])


def test_lm_child_trainer_rewards_and_limits(corpus):
    small = corpus.subset("train", 12000)
    arch = nas_tf.load_arch(PAPER_EXAMPLE)
    config = LMChildConfig(epochs=1, steps_per_epoch=5, model_options={"units": 16, "num_layers": 2, "tie_weights": True})
    trainer = LMChildTrainer(small, config)
    result = trainer(ChildRequest(index=0, step=0, arch=arch, seed=3))
    assert result.status == "ok", result.reason
    ppl = result.metrics["val_perplexity"]
    assert result.reward == pytest.approx(80.0 / ppl**2, rel=1e-3) and result.metrics["params"] > 0
    assert trainer.settings()["dataset"] == small.name and trainer.settings()["reward_c"] == 80.0
    too_big = LMChildTrainer(small, LMChildConfig(max_params=1000, model_options={"units": 16}))
    (failed,) = InProcessEvaluator(too_big).evaluate([ChildRequest(index=1, step=0, arch=arch, seed=0)])
    assert failed.status == "too_large" and failed.reward == 0.0 and "max_params=1000" in failed.reason
