"""Real search directories read back (open_run), reported (report.html in a real browser) and logged to TensorBoard.

Two tiny real searches run once for the module: a multi-trial NAS search of 4
children resumed to 6 (two processes' worth of TensorBoard events), with some
children too large to train, then its winner retrained into final/; and a
one-shot ENAS macro search of 1 epoch resumed to 2 (conftest.macro_one_shot, shared with test_enas).
"""

import glob
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from conftest import call_main
from nas_tf.controller import Reinforce, controller_for
from nas_tf.search import InProcessEvaluator, MultiTrialSearch, SearchConfig
from nas_tf.search.results import RunDirectoryError, open_run
from nas_tf.spaces import NASCNNSpace
from nas_tf.tasks import ImageChildConfig, ImageChildTrainer
from nas_tf.utils.io import atomic_write_json, read_jsonl
from nas_tf.viz import render_arch
from nas_tf.viz import tensorboard as tb
from nas_tf.viz.report import write_report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAS_SPACE = NASCNNSpace(num_layers=2)


@pytest.fixture(scope="module")
def multi_trial_run(tmp_path_factory, small_digits):
    from nas_tf.tasks import FinalImageConfig, train_final_image

    model_dir = tmp_path_factory.mktemp("multi_trial")

    def search(num):
        searcher = Reinforce(controller_for(NAS_SPACE.decisions, seed=3), seed=3)
        config = ImageChildConfig(epochs=1, batch_size=32, steps_per_epoch=3, reward_window=1, max_params=4000)
        trainer = ImageChildTrainer(small_digits, config)
        return MultiTrialSearch(NAS_SPACE, searcher, InProcessEvaluator(trainer, trainer.settings()),
                                SearchConfig(str(model_dir), num_architectures=num, archs_per_step=2, seed=5))

    search(4).run()
    search(6).run()  # resumed with a larger budget
    best = nas_tf.load_arch(str(model_dir / "best_arch.json"))
    train_final_image(best, small_digits, str(model_dir / "final"), FinalImageConfig(epochs=2, batch_size=64), export=False)
    atomic_write_json(model_dir / "flags.json", {"model_dir": str(model_dir), "num_architectures": 6, "space": "nas_cnn"})
    return model_dir


@pytest.fixture(scope="module")
def one_shot_run(macro_one_shot):
    return macro_one_shot["dir"]  # (conftest: 1 epoch, then resumed to 2)


def copy_run(src, dst, without=()):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*without))
    return dst


# ----------------------------------------------------------------- open_run


def test_open_run_multi_trial(multi_trial_run):
    run = open_run(multi_trial_run)
    rows = [json.loads(line) for line in open(multi_trial_run / "history.jsonl")]
    assert run.kind == "multi_trial" and run.finished
    assert run.history == rows and len(rows) == 6
    assert run.searcher["algorithm"] == "reinforce" and run.space["name"] == "nas_cnn"
    assert run.loop["num_architectures"] == 6 and run.flags["space"] == "nas_cnn"
    failed = [r for r in rows if r["status"] != "ok"]
    assert failed, "the fixture's max_params leaves some children untrained"
    top = run.top(10)
    rewards = [r["reward"] for r in top]
    assert rewards == sorted(rewards, reverse=True)
    assert all(r["status"] == "ok" for r in top)
    assert len({json.dumps(r["arch"], sort_keys=True) for r in top}) == len(top)
    assert sum(r["times"] for r in top) == len(rows) - len(failed)
    best = json.load(open(multi_trial_run / "best.json"))
    assert (top[0]["child"], top[0]["reward"]) == (best["child"], best["reward"])
    assert run.best_archs(1)[0].to_dict() == nas_tf.load_arch(str(multi_trial_run / "best_arch.json")).to_dict()
    assert run.running_best()[-1] == max(r["reward"] for r in rows)


# (In this file, not test_enas.py: the tests that use the one-shot run share one worker of pytest-xdist.)
def test_one_shot_search_runs_resumes_and_derives(macro_one_shot):
    first, model_dir = macro_one_shot["first"], macro_one_shot["dir"]
    summary = first["summary"]
    assert summary["epochs"] == 1 and summary["controller_updates"] == 2
    assert summary["trace_counts"] == {"train_step": 1, "reward_step": 1}
    rows = first["history"]
    assert len(rows) == 6 and all(0.0 <= r["reward"] <= 1.0 for r in rows)
    best = nas_tf.load_arch(first["best_arch"])
    derived = first["derived"]
    assert len(derived) == 4 and best.to_dict() == max(derived, key=lambda r: r["reward"])["arch"]
    # A second run with more epochs resumes after epoch 1.
    resumed = macro_one_shot["resumed"]
    assert resumed["epochs"] == 2 and resumed["controller_updates"] == 4
    assert read_jsonl(model_dir / "history.jsonl")[:6] == rows and len(read_jsonl(model_dir / "history.jsonl")) == 12
    epochs = read_jsonl(model_dir / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [0, 1]


def test_open_run_one_shot(one_shot_run):
    run = open_run(one_shot_run)
    assert run.kind == "one_shot" and run.finished
    assert len(run.history) == 2 * 2 * 3 and len(run.epochs) == 2 and len(run.derived) == 4
    best = json.load(open(one_shot_run / "best.json"))
    # The derived archs (scored on the same batches) are the results; best_arch.json is the first.
    assert run.top(1)[0]["reward"] == best["reward"] and run.top(1)[0]["arch"] == best["searched_arch"]
    assert run.best_arch().to_dict() == nas_tf.load_arch(str(one_shot_run / "best_arch.json")).to_dict()
    assert "2/2 epochs, 4 controller updates, 12 sampled archs" in run.describe()


def test_summary_prints_like_keras_tuner(multi_trial_run, capsys):
    run = open_run(multi_trial_run)
    run.summary(k=3)
    out = capsys.readouterr().out.splitlines()
    best = json.load(open(multi_trial_run / "best.json"))
    final = json.load(open(multi_trial_run / "final" / "metrics.json"))
    assert out[:2] == ["Results summary", f"Results in {multi_trial_run}"]
    assert "Showing 3 best architectures; reward: higher is better" in out
    first = out.index("#1: " + f"child {best['child']} (step {best['step']})")
    assert out[first + 1].startswith(f"  reward {best['reward']:.6g}  val_accuracy")
    assert out[first + 2].startswith("  arch: ")
    assert out[-1].startswith(f"Retrained (final/): test_accuracy {final['test_accuracy']:.6g}")


def test_baseline_from_tensorboard_and_recomputed(multi_trial_run, one_shot_run, tmp_path):
    for src, tol in ((multi_trial_run, 1e-6), (one_shot_run, 2e-3)):
        logged = open_run(src).baseline()
        assert not logged.recomputed and logged.source == "TensorBoard controller/baseline"
        recomputed = open_run(copy_run(src, tmp_path / src.name, without=("tensorboard",))).baseline()
        assert recomputed.recomputed and "not in the run's files" in recomputed.source
        assert recomputed.x == logged.x
        # The one-shot search adds an entropy bonus to its rewards, which the files do not hold.
        assert recomputed.values == pytest.approx(logged.values, abs=tol)
    assert "without the entropy bonus" in open_run(tmp_path / one_shot_run.name).baseline().source
    # NAS (per-architecture baseline, updated after each): the first architecture has no earlier one and is
    # compared with itself; the second with the average of the first, the same value (Zoph & Le, 3.2).
    rows = open_run(multi_trial_run).history
    first_step = [r["reward"] for r in rows if r["step"] == 0]
    assert open_run(multi_trial_run).baseline().values[0] == pytest.approx(first_step[0], abs=1e-7)


def test_resume_history(multi_trial_run, one_shot_run):
    sessions = open_run(multi_trial_run).sessions()
    assert [s.last_step for s in sessions] == [4, 6]  # children done at the end of each process
    assert sessions[0].end <= sessions[1].start and all(s.pid == os.getpid() for s in sessions)
    sessions = open_run(one_shot_run).sessions()
    assert [s.last_step for s in sessions] == [2, 4] and [tuple(s.epochs) for s in sessions] == [(1,), (2,)]
    kept = open_run(one_shot_run).checkpoints()
    on_disk = glob.glob(str(one_shot_run / "checkpoints" / "*.index"))
    assert [name for name, _ in kept] == sorted(os.path.basename(p)[: -len(".index")] for p in on_disk)


def test_searcher_record_under_either_name(multi_trial_run, tmp_path):
    run_dir = copy_run(multi_trial_run, tmp_path / "renamed")
    config = json.load(open(run_dir / "search_config.json"))
    config["strategy"] = config.pop("searcher")  # how runs before the rename recorded it
    atomic_write_json(run_dir / "search_config.json", config)
    renamed = open_run(run_dir)
    assert renamed.searcher == open_run(multi_trial_run).searcher and renamed.searcher["baseline_decay"] == 0.95


def test_a_running_search_is_read_and_left_alone(multi_trial_run, tmp_path):
    run_dir = copy_run(multi_trial_run, tmp_path / "running", without=("summary.json",))
    with open(run_dir / "history.jsonl", "a") as f:
        f.write('{"child": 6, "step": 3, "rew')  # an append torn by the crash (or still in progress)
    before = (run_dir / "history.jsonl").read_bytes()
    run = open_run(run_dir)
    assert not run.finished and len(run.history) == 6 and "running or interrupted" in run.describe()
    assert (run_dir / "history.jsonl").read_bytes() == before


def test_open_run_errors(tmp_path):
    with pytest.raises(RunDirectoryError, match=f"{tmp_path / 'nope'}: no such run directory"):
        open_run(tmp_path / "nope")
    with pytest.raises(RunDirectoryError, match="not a search run directory .no search_config.json"):
        open_run(tmp_path)
    (tmp_path / "search_config.json").write_text("{")
    with pytest.raises(RunDirectoryError, match="search_config.json: not valid JSON"):
        open_run(tmp_path)


def test_load_model_is_the_retrained_winner(multi_trial_run, one_shot_run, small_digits):
    run = open_run(multi_trial_run)
    model = run.load_model()
    correct = total = 0
    for x, y in small_digits.batches("test", 256):
        correct += int(np.sum(np.argmax(model.predict(x, verbose=0), axis=-1) == y.numpy()))
        total += int(y.shape[0])
    assert correct / total == pytest.approx(run.final_metrics()["test_accuracy"], abs=1e-9)
    with pytest.raises(FileNotFoundError, match="final/model.keras: no retrained model"):
        open_run(one_shot_run).load_model()


# -------------------------------------------------------------------- report


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [(tag, v) for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    page = _Page()
    page.feed(open(path, encoding="utf-8").read())
    return page, " ".join(page.text)


def test_report_of_a_multi_trial_search(multi_trial_run, tmp_path):
    html_path, md_path = write_report(multi_trial_run, k=3, output_dir=tmp_path)
    page, text = _parse(html_path)
    assert not {"script", "link", "iframe", "object"} & set(page.tags)
    import base64

    pictures = [u for tag, u in page.urls if tag == "img"]
    assert len(page.urls) == len(pictures) == 1 + 3 + 1  # rewards, 3 archs, final training curves
    for uri in pictures:
        assert uri.startswith("data:image/svg+xml;base64,")
        ET.fromstring(base64.b64decode(uri.split(",", 1)[1]))  # a whole SVG document
    run = open_run(multi_trial_run)
    best = run.top(1)[0]
    final = run.final_metrics()
    assert f"#1: child {best['child']}, step {best['step']}" in text
    assert f"{final['test_accuracy']:.6g}" in text and "Final training" in text
    assert "started" in text and "resumed" in text and "children done: 0 -> 4" in text and "children done: 4 -> 6" in text
    assert "space.name" in text and "flags.json" in text
    md = open(md_path).read()
    assert f"| 1 | child {best['child']}, step {best['step']} | {best['reward']:.6g} |" in md
    assert "| 2 | resumed |" in md and f"| test_accuracy | {final['test_accuracy']:.6g} |" in md


def test_report_of_a_one_shot_search_with_the_baseline_recomputed(one_shot_run, tmp_path):
    run_dir = copy_run(one_shot_run, tmp_path / "run", without=("tensorboard",))
    html_path, md_path = write_report(run_dir)
    assert html_path == str(run_dir / "report.html")
    page, text = _parse(html_path)
    assert "The best derived architectures" in text and "No final/ directory" in text
    assert "The baseline is recomputed: moving average of the rewards, decay 0.95" in text
    md = open(md_path).read()
    assert "No TensorBoard events yet" not in md and "one-shot (ENAS) search of space enas_macro" in md
    text = _parse(write_report(one_shot_run, output_dir=tmp_path / "with_tb")[0])[1]
    assert "controller updates done: 0 -> 2 (epoch 1)" in text and "controller updates done: 2 -> 4 (epoch 2)" in text


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _headless(url, *args, tmp):
    user_dir = tempfile.mkdtemp(dir=tmp)
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={user_dir}",
           "--enable-logging=stderr", "--v=0", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc, console


@pytest.mark.skipif(_browser() is None, reason="needs chromium (apt-get install chromium); .ci/run installs it")
def test_report_in_a_real_browser(multi_trial_run, tmp_path):
    from PIL import Image

    # The detector sees console errors: a page with one is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script></body></html>")
    _, console = _headless(bad.as_uri(), "--dump-dom", tmp=tmp_path)
    assert any("boom" in line for line in console) and any("missing is not defined" in line for line in console)

    html_path, _ = write_report(multi_trial_run, k=2, output_dir=tmp_path)
    url = "file://" + os.path.abspath(html_path)
    proc, console = _headless(url, "--dump-dom", tmp=tmp_path)
    assert proc.returncode == 0 and console == []
    assert "Search report" in proc.stdout and proc.stdout.count("<img") == 1 + 2 + 1
    shot = tmp_path / "shot.png"
    proc, console = _headless(url, f"--screenshot={shot}", "--window-size=1100,2200", "--hide-scrollbars", tmp=tmp_path)
    assert proc.returncode == 0 and console == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2200, 1100)
    assert np.mean(np.any(pixels < 235, axis=-1)) > 0.02  # not a blank page

    def painted(rgb, tol=12):
        return int(np.sum(np.all(np.abs(pixels - np.asarray(rgb)) <= tol, axis=-1)))

    assert painted((255, 127, 14)) > 50  # matplotlib's orange: the best-so-far line of the plot
    assert painted((180, 238, 180)) > 200  # the green input nodes of the arch pictures


# ---------------------------------------------------------- scripts/report.py


def run_report(*args):
    call_main("report.py", *args)


def test_report_script(multi_trial_run, tmp_path, capsys):
    run_report(f"--model_dir={multi_trial_run}", "--top_k=2", f"--output_dir={tmp_path}")
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'report.html'}" in out and os.path.exists(tmp_path / "report.md")
    assert _parse(tmp_path / "report.html")[1].count("#2: ") == 1
    for args, line in (([f"--model_dir={tmp_path / 'nope'}"], f"error: --model_dir={tmp_path / 'nope'}: no such run directory"),
                       ([f"--model_dir={tmp_path}"], f"error: --model_dir={tmp_path}: not a search run directory"),
                       ([], "error: --model_dir is required")):
        with pytest.raises(SystemExit) as e:
            run_report(*args)
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith(line) and err.count("\n") == 1, err


# --------------------------------------------------------------- TensorBoard


def _events(directory):
    files = sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")))
    assert len(files) == 1, files
    return list(tf.compat.v1.train.summary_iterator(files[0]))


def test_children_are_hparams_trials(multi_trial_run, tmp_path):
    from tensorboard.plugins.hparams import metadata

    rows = open_run(multi_trial_run).history
    tb.write_hparams_config(tmp_path, NAS_SPACE)
    for row in rows:
        tb.log_child(tmp_path, row, NAS_SPACE)
    (experiment_event,) = [e for e in _events(tmp_path / "children") if e.summary.value]
    experiment = metadata.parse_experiment_plugin_data(experiment_event.summary.value[0].metadata.plugin_data.content)
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"status", "layers[0].filter_height", "layers[0].filter_width", "layers[0].num_filters",
                          "layers[0].inputs", "layers[1].filter_height", "layers[1].filter_width",
                          "layers[1].num_filters", "layers[1].inputs"}
    assert [v.number_value for v in infos["layers[1].filter_width"].domain_discrete.values] == [1, 3, 5, 7]
    assert {m.name.tag for m in experiment.metric_infos} == {"reward", "val_accuracy", "val_perplexity", "params", "wall_time"}
    for row in rows:
        events = _events(tmp_path / "children" / f"child_{row['child']:05d}")
        start = [v for e in events for v in e.summary.value if v.tag == "_hparams_/session_start_info"]
        info = metadata.parse_session_start_info_plugin_data(start[0].metadata.plugin_data.content)
        assert info.group_name == f"child_{row['child']:05d}"
        hparams = {k: (v.string_value if v.HasField("string_value") else v.number_value) for k, v in info.hparams.items()}
        layers = row["arch"]["layers"]
        for i, layer in enumerate(layers):
            assert hparams[f"layers[{i}].filter_height"] == layer["filter_height"]
            assert hparams[f"layers[{i}].num_filters"] == layer["num_filters"]
            assert hparams[f"layers[{i}].inputs"] == (",".join(map(str, layer["inputs"])) or "none")
        assert hparams["status"] == ("ok" if row["status"] == "ok" else "failed")
        scalars = {v.tag: float(tf.make_ndarray(v.tensor)) for e in events for v in e.summary.value
                   if v.metadata.plugin_data.plugin_name == "scalars"}
        expected = {k: row[k] for k in ("reward", "val_accuracy", "params", "wall_time") if row[k] is not None}
        assert scalars == pytest.approx(expected, rel=1e-6)


def test_best_arch_picture_and_json_in_tensorboard(tmp_path):
    import io

    from PIL import Image

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        assert tb.log_arch(nas_tf.load_arch("nasnet_a"), step=7)
    writer.close()
    values = {v.tag: (e.step, v) for e in _events(tmp_path) for v in e.summary.value}
    step, image = values["best_arch"]
    width, height, png = tf.make_ndarray(image.tensor)
    expected = Image.open(io.BytesIO(render_arch("nasnet_a", "png"))).size
    assert step == 7 and (int(width), int(height)) == expected
    assert Image.open(io.BytesIO(png)).size == expected
    step, text = values["best_arch/json"]
    body = tf.make_ndarray(text.tensor).item().decode()
    assert body.startswith("```json\n") and json.loads(body[8:-4]) == nas_tf.load_arch("nasnet_a").to_dict()


def test_final_training_curves_and_model_graph(multi_trial_run, tmp_path):
    from tensorflow.core.framework import graph_pb2

    from nas_tf.export import network_of

    model = network_of(open_run(multi_trial_run).load_model())  # the network inside the raw-pixel model
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tb.log_model_graph(model)
        for epoch, (loss, lr) in enumerate([(2.0, 0.1), (1.5, 0.05)], start=1):
            tb.log_scalars({"loss": loss, "learning_rate": lr, "val_accuracy": None}, epoch, prefix="final/")
    writer.close()
    events = _events(tmp_path)
    graph = graph_pb2.GraphDef.FromString([e.graph_def for e in events if e.graph_def][0])
    assert "Conv2D" in {n.op for n in graph.node}
    keras_json = [v for e in events for v in e.summary.value if v.tag == "keras"][0]
    assert keras_json.metadata.plugin_data.plugin_name == "graph_keras_model"
    config = json.loads(tf.make_ndarray(keras_json.tensor).item())
    assert any(layer["name"] == "layer0_conv" for layer in config["config"]["layers"])
    curves = [(e.step, v.tag, float(tf.make_ndarray(v.tensor))) for e in events for v in e.summary.value
              if v.tag.startswith("final/")]
    assert curves == [(1, "final/loss", 2.0), (1, "final/learning_rate", pytest.approx(0.1)),
                      (2, "final/loss", 1.5), (2, "final/learning_rate", pytest.approx(0.05))]


def test_reading_and_reporting_import_no_tensorflow(multi_trial_run, tmp_path):
    """results.py and the report need no TensorFlow (nas_tf/search/__init__.py, which imports the loops,
    is bypassed here: the package is stood in for by its bare path)."""
    code = (
        "import sys, types\n"
        "import nas_tf\n"
        "package = types.ModuleType('nas_tf.search')\n"
        f"package.__path__ = [{os.path.join(REPO, 'nas_tf', 'search')!r}]\n"
        "sys.modules['nas_tf.search'] = package\n"
        "from nas_tf.search.results import open_run\n"
        "from nas_tf.viz.report import write_report\n"
        f"run = open_run({str(multi_trial_run)!r})\n"
        "run.summary(); run.baseline(); run.sessions(); run.best_archs(2)\n"
        f"write_report(run, output_dir={str(tmp_path)!r})\n"
        "bad = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert os.path.getsize(tmp_path / "report.html") > 10_000


def test_open_run_exports_the_retrained_winner(multi_trial_run, one_shot_run, tmp_path):
    run = open_run(multi_trial_run)
    report = run.export("keras", str(tmp_path / "winner.keras"), data_dir=None)
    assert report.path == str(tmp_path / "winner.keras") and os.path.getsize(report.path) == report.size_bytes
    assert report.checked_on > 0 and report.max_abs_diff < 1e-4 and report.agreement == 1.0
    served = keras.saving.load_model(report.path)
    images = np.random.default_rng(0).integers(0, 17, size=(3, 8, 8, 1)).astype("float32")
    assert served(images).shape == (3, 10)  # raw pixels in, logits out
    with pytest.raises(FileNotFoundError, match="no retrained model to export"):
        open_run(one_shot_run).export("keras", str(tmp_path / "none.keras"))
