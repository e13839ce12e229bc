"""Child evaluation, rewards, and the multi-trial loop (history, resume, failures)."""

import json
import os
import shutil

import pytest
import tensorflow as tf

import nas_tf
from nas_tf.controller import RandomSearch, Reinforce, controller_for
from nas_tf.search import (
    ChildRequest,
    ChildResult,
    InProcessEvaluator,
    MultiTrialSearch,
    ResumeMismatchError,
    SearchConfig,
)
from nas_tf.spaces import ConvLayer, NASCNNArch, NASCNNSpace
from nas_tf.tasks import ImageChildConfig, ImageChildTrainer, accuracy_reward
from nas_tf.training import SGDConfig
from nas_tf.utils import read_jsonl

FAST = ImageChildConfig(epochs=2, batch_size=32, steps_per_epoch=4, reward_window=5)
ARCH = NASCNNArch(layers=(ConvLayer(3, 3, 24), ConvLayer(3, 3, 24, 2, 2, inputs=(0,)), ConvLayer(1, 1, 24, inputs=(0, 1))))


def test_accuracy_reward():
    assert accuracy_reward([0.1, 0.5, 0.4, 0.3, 0.2, 0.25], window=5, exponent=3) == pytest.approx(0.125)
    assert accuracy_reward([0.1, 0.5, 0.4, 0.3, 0.2, 0.25], window=2, exponent=1) == pytest.approx(0.25)
    assert accuracy_reward([0.6], window=5, exponent=3) == pytest.approx(0.216)
    with pytest.raises(ValueError):
        accuracy_reward([])


def test_child_trains_and_is_reproducible(digits):
    trainer = ImageChildTrainer(digits, ImageChildConfig(epochs=3, batch_size=32))
    r1 = trainer(ChildRequest(index=0, step=0, arch=ARCH, seed=11))
    r2 = trainer(ChildRequest(index=0, step=0, arch=ARCH, seed=11))
    assert r1.status == "ok" and 0 < r1.reward <= 1
    assert len(r1.metrics["val_accuracies"]) == 3
    assert r1.reward == pytest.approx(max(r1.metrics["val_accuracies"]) ** 3, abs=1e-5)
    assert r1.metrics["params"] > 0
    # Real learning: far better than chance (10 classes) after 3 epochs.
    assert r1.metrics["val_accuracy"] > 0.5
    assert r1.metrics["val_accuracies"] == pytest.approx(r2.metrics["val_accuracies"], abs=1e-6)


def test_failed_children_get_reward_zero_with_a_reason(small_digits):
    def run(config, request_arch=ARCH):
        evaluator = InProcessEvaluator(ImageChildTrainer(small_digits, config))
        return list(evaluator.evaluate([ChildRequest(0, 0, request_arch, 1)]))[0]

    too_large = run(ImageChildConfig(epochs=1, max_params=100))
    assert (too_large.status, too_large.reward) == ("too_large", 0.0)
    assert "max_params=100" in too_large.reason
    diverged = run(ImageChildConfig(epochs=2, optimizer=SGDConfig(learning_rate=1e12), steps_per_epoch=5))
    assert (diverged.status, diverged.reward) == ("diverged", 0.0)
    assert "loss became" in diverged.reason
    build_error = run(ImageChildConfig(epochs=1, builder_options={"no_such_option": 1}))
    assert (build_error.status, build_error.reward) == ("build_error", 0.0)
    assert "no_such_option" in build_error.reason


def test_out_of_memory_and_unexpected_errors_do_not_stop_evaluation():
    def train(request):
        if request.index == 0:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [1000000,1000]")
        if request.index == 1:
            raise RuntimeError("worker exploded")
        return ChildResult(index=request.index, reward=0.5)

    results = list(InProcessEvaluator(train).evaluate([ChildRequest(i, 0, ARCH, i) for i in range(3)]))
    assert [r.status for r in results] == ["out_of_memory", "error", "ok"]
    assert "OOM when allocating" in results[0].reason and results[0].reward == 0.0
    assert results[2].reward == 0.5


class Interrupt(Exception):
    pass


class InterruptingEvaluator(InProcessEvaluator):
    """Stops the process-like run after ``after`` children (a crash mid-step)."""

    def __init__(self, trainer, after):
        super().__init__(trainer, trainer.settings())
        self.after = after
        self.count = 0

    def evaluate(self, requests):
        for result in super().evaluate(requests):
            yield result
            self.count += 1
            if self.count == self.after:
                raise Interrupt()


def make_search(model_dir, data, num=6, m=2, evaluator=None, space=None, **config):
    space = space or NASCNNSpace(num_layers=2)
    searcher = Reinforce(controller_for(space.decisions, seed=3), seed=3)
    trainer = ImageChildTrainer(data, FAST)
    evaluator = evaluator or InProcessEvaluator(trainer, trainer.settings())
    config = {**SCHEDULE, **config}
    return MultiTrialSearch(
        space, searcher, evaluator, SearchConfig(str(model_dir), num_architectures=num, archs_per_step=m, seed=5, **config)
    )


# The depth schedule of every search here: depth 1 for 4 children, then 2.
SCHEDULE = dict(start_depth=1, depth_increment=1, depth_increment_every=4, max_depth=2)


def history(model_dir):
    return read_jsonl(os.path.join(model_dir, "history.jsonl"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_digits):
    """One uninterrupted search of 6 children (the reference the other tests compare with)."""
    model_dir = tmp_path_factory.mktemp("reference")
    summary = make_search(model_dir, small_digits).run()
    return model_dir, summary


def _copy(reference_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(reference_dir, target)
    return target


def test_the_reference_search(reference):
    model_dir, summary = reference
    assert summary["children"] == 6 and summary["steps"] == 3 and summary["failed_children"] == 0
    rows = history(model_dir)
    assert [r["child"] for r in rows] == list(range(6)) and [r["step"] for r in rows] == [0, 0, 1, 1, 2, 2]
    # The depth schedule: 1 layer for the first 4 children, then 2 (max_depth).
    assert [r["depth"] for r in rows] == [1, 1, 1, 1, 2, 2]
    assert [len(r["arch"]["layers"]) for r in rows] == [1, 1, 1, 1, 2, 2]


def test_resume_after_a_crash_and_a_torn_line_gives_the_uninterrupted_history(tmp_path, small_digits, reference):
    # Crash after 3 children: in the middle of step 1 (children 2 and 3)...
    broken_dir = tmp_path / "broken"
    trainer = ImageChildTrainer(small_digits, FAST)
    with pytest.raises(Interrupt):
        make_search(broken_dir, small_digits, evaluator=InterruptingEvaluator(trainer, 3)).run()
    assert len(history(broken_dir)) == 3
    assert os.path.exists(broken_dir / "pending_step.json")
    # ...in the middle of writing the fourth row.
    with open(broken_dir / "history.jsonl", "a") as f:
        f.write('{"child": 3, "step": 1, "rew')
    resumed = make_search(broken_dir, small_digits).run()
    rows = history(broken_dir)
    assert resumed["children"] == 6 and len(rows) == 6
    assert sorted(r["child"] for r in rows) == list(range(6))
    for a, b in zip(sorted(rows, key=lambda r: r["child"]), history(reference[0])):
        assert a["arch"] == b["arch"] and a["tokens"] == b["tokens"] and a["seed"] == b["seed"]
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-4)
    assert not os.path.exists(broken_dir / "pending_step.json")
    # Re-running a finished search trains nothing more.
    again = make_search(broken_dir, small_digits).run()
    assert again["children"] == 6 and len(history(broken_dir)) == 6


def test_outputs_best_arch_and_tensorboard(reference):
    model_dir = reference[0]
    rows = history(model_dir)
    for key in ("child", "step", "arch", "reward", "val_accuracy", "params", "wall_time", "status", "tokens"):
        assert key in rows[0]
    best = max(rows, key=lambda r: r["reward"])
    best_arch = nas_tf.load_arch(str(model_dir / "best_arch.json"))
    assert best_arch.to_dict() == best["arch"]
    with open(model_dir / "best.json") as f:
        assert json.load(f)["reward"] == best["reward"]
    with open(model_dir / "search_config.json") as f:
        record = json.load(f)
    assert record["searcher"]["algorithm"] == "reinforce" and record["search"]["num_architectures"] == 6
    events = os.listdir(model_dir / "tensorboard")
    assert events and events[0].startswith("events.out.tfevents")
    tags = set()
    for e in tf.compat.v1.train.summary_iterator(str(model_dir / "tensorboard" / events[0])):
        tags.update(v.tag for v in e.summary.value)
    assert {"reward/mean", "reward/best_so_far", "controller/baseline", "controller/entropy"} <= tags


def test_resume_with_other_settings_is_refused_and_a_larger_budget_extends(tmp_path, small_digits, reference):
    model_dir = _copy(reference[0], tmp_path)
    with pytest.raises(ResumeMismatchError, match="space.num_filters"):
        make_search(model_dir, small_digits, space=NASCNNSpace(num_layers=2, num_filters=(8, 16))).run()
    with pytest.raises(ResumeMismatchError, match="search.archs_per_step: was 2, now 3"):
        make_search(model_dir, small_digits, m=3).run()
    assert history(model_dir) == history(reference[0])  # nothing written by a refused run
    # Asking for more children extends the search.
    summary = make_search(model_dir, small_digits, num=8).run()
    assert summary["children"] == 8
    rows = history(model_dir)
    assert [r["child"] for r in rows] == list(range(8)) and rows[:6] == history(reference[0])


def test_random_search_runs_through_the_same_loop(tmp_path, small_digits):
    space = NASCNNSpace(num_layers=1)
    trainer = ImageChildTrainer(small_digits, FAST)
    search = MultiTrialSearch(
        space, RandomSearch(seed=1), InProcessEvaluator(trainer), SearchConfig(str(tmp_path), num_architectures=3, archs_per_step=2)
    )
    summary = search.run()
    assert summary["children"] == 3 and summary["steps"] == 2
