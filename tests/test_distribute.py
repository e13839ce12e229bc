"""tf.distribute: strategies from flags, data-parallel training equal to one device, synchronised batch norm."""

import json

import pytest

from conftest import run_main

ARCH = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": []},
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": [0]},
    ],
}


def _summary(stdout):
    return json.loads(stdout[stdout.index("{") :])


def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH))
    common = [f"--arch={arch}", "--epochs=2", "--lr=0.05", "--noexport"]
    code, one, err = run_main(
        "train_final.py", *common, f"--model_dir={tmp_path / 'one'}", "--strategy=one_device", "--batch_size=64"
    )
    assert code == 0, err[-3000:]
    code, two, err = run_main(
        "train_final.py", *common, f"--model_dir={tmp_path / 'two'}", "--strategy=mirrored", "--num_cpu_devices=2",
        "--batch_size=32",  # per replica: the same global batch of 64
    )
    assert code == 0, err[-3000:]
    assert _summary(one)["replicas"] == 1 and _summary(two)["replicas"] == 2
    losses = []
    for run in ("one", "two"):
        with open(tmp_path / run / "metrics.json") as f:
            losses.append(json.load(f)["history"]["train_loss"])
    # Same examples, same seed: the same training up to float summation order (measured: ~1e-7).
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-4)
    assert losses[0][1] < losses[0][0]


def test_batch_norm_statistics_agree_on_both_replicas():
    import keras
    import numpy as np

    from nas_tf.data import load_digits
    from nas_tf.distribute import make_strategy
    from nas_tf.tasks.image.train import train_classifier
    from nas_tf.training import make_sgd

    strategy = make_strategy("mirrored", num_cpu_devices=2)  # the session's 2 logical CPU devices
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        opt = make_sgd(0.05, 0.9, True)
    train_classifier(model, load_digits(), epochs=1, batch_size=16, optimizer=opt, steps_per_epoch=5, eval_split=None,
                     strategy=strategy)
    bn = model.get_layer("bn")
    means = [np.asarray(v) for v in strategy.experimental_local_results(bn.moving_mean.value)]
    assert bn.synchronized and len(means) == 2
    assert float(np.abs(means[0]).max()) > 1e-3  # the statistics were updated...
    assert float(np.abs(means[0] - means[1]).max()) < 1e-6  # ...identically on both replicas (per-replica batches differ)


def test_strategy_errors_name_the_problem(tmp_path, monkeypatch):
    from nas_tf.distribute import make_strategy

    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("parameter_server")
    with pytest.raises(ValueError, match="num_gpus=3, but this machine has 0 GPU"):
        make_strategy("mirrored", num_gpus=3)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ValueError, match="needs a cluster: set TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multi_worker")
    assert make_strategy("one_device").num_replicas_in_sync == 1
