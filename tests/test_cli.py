"""The command lines of the scripts, in this process: flag errors, flags that do not apply, defaults, presets.

Every case parses a command line with absl and runs the script's ``main`` as
the command line does (``conftest.run_main``), without starting a new
interpreter; the end-to-end runs of the scripts are in tests/test_scripts*.py.
"""

import dataclasses
import glob
import os

import pytest
from absl import flags

import nas_tf
from conftest import REPO, run_main, script_flags
from nas_tf.cli import configs
from nas_tf.cli import flags as cli

FLAGS = flags.FLAGS

# (script, arguments, what stderr must contain, exit code): 2 = refused by the parser, 1 = by the script.
CASES = [
    # search_nas.py
    ("search_nas.py", ["--child_epochs=0"], "child_epochs", 2),
    ("search_nas.py", ["--filter_heights=3,x"], "filter_heights", 2),
    ("search_nas.py", ["--num_filters="], "num_filters", 2),
    ("search_nas.py", ["--algorithm=tabu"], "algorithm", 2),
    ("search_nas.py", ["--dataset=imagenet"], "dataset", 2),
    ("search_nas.py", ["--space=nas_rnn", "--rnn_base=6"], "--rnn_base must be a power of two", 2),
    ("search_nas.py", ["--space=nas_rnn", "--dataset=digits"], "--dataset=digits: --space=nas_rnn needs a text dataset", 1),
    ("search_nas.py", ["--dataset=pydoc"], "--dataset=pydoc: --space=nas_cnn needs a image dataset", 1),
    ("search_nas.py", ["--space=nas_rnn", "--filter_heights=3,5"],
     "--filter_heights does not apply to --space=nas_rnn; it applies to --space=nas_cnn only", 1),
    ("search_nas.py", ["--space=nas_rnn", "--start_depth=4"], "--start_depth does not apply to --space=nas_rnn", 1),
    ("search_nas.py", ["--lm_units=16"], "--lm_units does not apply to --space=nas_cnn", 1),
    ("search_nas.py", ["--reward_c=10"], "--reward_c does not apply to --space=nas_cnn", 1),
    ("search_nas.py", ["--space=nas_rnn", "--reward_exponent=2"], "--reward_exponent does not apply to --space=nas_rnn", 1),
    ("search_nas.py", ["--child_timeout=10"], "--child_timeout=10 needs --parallel_children", 1),
    ("search_nas.py", ["--benchmark=nats"], "--benchmark does not apply to --space=nas_cnn", 1),
    ("search_nas.py", ["--target_latency_ms=1", "--latency_weight=0.5"],
     "--latency_weight=0.5: the weight must be negative", 1),
    ("search_nas.py", ["--space=nas_rnn", "--target_latency_ms=1"], "--target_latency_ms does not apply to --space=nas_rnn", 1),
    ("search_enas.py", ["--space=rnn", "--target_flops=1e6"], "--target_flops does not apply to --space=rnn", 1),
    ("search_nas.py", ["--space=nb201", "--benchmark=analog_nasbench", "--child_epochs=3"],
     "--child_epochs does not apply to --benchmark=analog_nasbench (children are read from the table, not trained)", 1),
    ("search_nas.py", ["--space=nb201", "--benchmark_dir=/no/such/dir"], "--benchmark_dir=/no/such/dir: /no/such/dir", 1),
    ("search_nas.py", ["--space=nb201", "--benchmark=analog_nasbench", "--algorithm=evolution", "--sample_size=30"],
     "--sample_size=30 must be <= --population_size=20", 1),
    ("search_nas.py", ["--parallel_children=2", "--child_devices=0"],
     "--child_devices=0 names 1 group(s) but --parallel_children=2", 1),
    ("search_nas.py", ["--child_devices=0"], "--child_devices: device group '0': GPU 0 does not exist", 1),
    ("search_nas.py", ["--parallel_children=2", "--strategy=mirrored"], "--strategy=mirrored: with --parallel_children", 1),
    ("search_nas.py", ["--async_controller", "--strategy=multi_worker"], "--async_controller runs on one host", 1),
    # search_nasnet.py
    ("search_nasnet.py", ["--op_set=tiny"], "op_set", 2),
    ("search_nasnet.py", ["--combiners=add,mul"], "combiners", 2),
    ("search_nasnet.py", ["--ppo_clip=2"], "ppo_clip", 2),
    ("search_nasnet.py", ["--nasnet_cells=0"], "nasnet_cells", 2),
    ("search_nasnet.py", ["--dataset=pydoc"], "dataset", 2),
    # search_enas.py
    ("search_enas.py", ["--space=rnn", "--skip_weight=0.5"], "--skip_weight does not apply to --space=rnn", 1),
    ("search_enas.py", ["--space=micro", "--skip_target=0.5"], "--skip_target does not apply to --space=micro", 1),
    ("search_enas.py", ["--space=rnn", "--op_selection=all"], "--op_selection does not apply to --space=rnn", 1),
    ("search_enas.py", ["--space=rnn", "--enas_layers=4"], "--enas_layers does not apply to --space=rnn", 1),
    ("search_enas.py", ["--space=rnn", "--final_cells=2"], "--final_cells does not apply to --space=rnn", 1),
    ("search_enas.py", ["--space=macro", "--enas_nodes=3"], "--enas_nodes does not apply to --space=macro", 1),
    ("search_enas.py", ["--space=macro", "--final_filters=8"], "--final_filters does not apply to --space=macro", 1),
    ("search_enas.py", ["--lm_units=8"], "--lm_units does not apply to --space=micro", 1),
    ("search_enas.py", ["--space=rnn", "--dataset=digits"], "--dataset=digits: --space=rnn needs a text dataset", 1),
    ("search_enas.py", ["--space=macro", "--op_selection=merged"], "--op_selection=merged applies to --space=micro", 1),
    ("search_enas.py", ["--space=rnn", "--strategy=mirrored"], "--strategy=mirrored: --space=rnn", 1),
    ("search_enas.py", ["--controller_beta1=1"], "controller_beta1", 2),
    ("search_enas.py", ["--space=macro", "--strategy=multi_worker"], "--strategy=multi_worker", 1),
    # train_final.py
    ("train_final.py", [], "--arch", 2),
    ("train_final.py", ["--arch=no_such_arch"], "--arch: no_such_arch: no such arch file", 1),
    ("train_final.py", ["--arch=nascell", "--dataset=digits"], "needs a text dataset", 1),
    ("train_final.py", ["--arch=nascell", "--cutout=4"],
     "--cutout does not apply to a recurrent cell (--arch of space nas_rnn); it applies to image architectures only", 1),
    ("train_final.py", ["--arch=enas_macro", "--lm_units=8"], "--lm_units does not apply to an image architecture", 1),
    ("train_final.py", ["--arch=enas_macro", "--aux_head"],
     "--aux_head does not apply to an image architecture (--arch of space enas_macro); it applies to NASNet", 1),
    ("train_final.py", ["--arch=nascell", "--strategy=multi_worker"],
     "--strategy=multi_worker: strategy=multi_worker needs a cluster: set TF_CONFIG", 1),
    ("train_final.py", ["--arch=enas_micro", "--strategy=multi_worker"], "TF_CONFIG", 1),
    ("train_final.py", ["--arch=nascell", "--batch_size=100000"], "--batch_size=100000 rows: the training split", 1),
    ("train_final.py", ["--arch=nascell", "--lm_embedding_dim=8", "--lm_units=16"],
     "--lm_tie_weights needs --lm_embedding_dim (8) equal to --lm_units (16)", 1),
]


@pytest.mark.parametrize("script, args, message, code", CASES, ids=[f"{c[0][:-3]}:{' '.join(c[1])}" for c in CASES])
def test_bad_command_lines_get_one_line_naming_the_flag(tmp_path, monkeypatch, script, args, message, code):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    got, out, err = run_main(script, f"--model_dir={tmp_path / 'run'}", *args)
    assert got == code, err
    assert message in err
    assert "Traceback" not in err
    if code == 1:
        assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip()]
    assert not os.path.exists(tmp_path / "run" / "history.jsonl")


def test_a_bad_arch_file_is_named_with_its_field_and_value(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"space": "nas_cnn", "layers": [{"filter_height": 3, "filter_width": "x", "num_filters": 8}]}')
    code, _, err = run_main("train_final.py", f"--arch={bad}", f"--model_dir={tmp_path / 'm'}")
    assert code == 1
    assert "--arch" in err and "layers[0].filter_width" in err and '"x"' in err
    assert not os.path.exists(tmp_path / "m")


def test_missing_data_files_are_named(tmp_path):
    code, _, err = run_main("search_nas.py", f"--model_dir={tmp_path / 'run'}",
                            f"--flagfile={REPO}/scripts/presets/nas_ptb.flags", f"--data_dir={tmp_path}")
    assert code == 1 and "ptb.train.txt is missing" in err and "Traceback" not in err
    code, _, err = run_main("search_nas.py", f"--model_dir={tmp_path / 'run'}", "--dataset=cifar10", f"--data_dir={tmp_path}")
    assert code == 1 and "--dataset=cifar10" in err and "--data_dir" in err and "Traceback" not in err


def test_every_option_of_a_search_is_bound_to_its_flag():
    """Each config field takes the flag of its name (no field silently keeps its dataclass default)."""
    from nas_tf.search import OneShotConfig, SearchConfig
    from nas_tf.tasks import FinalImageConfig, FinalLMConfig, ImageChildConfig, LMChildConfig, LMSharedTrainingConfig, SharedTrainingConfig

    def leaves(cls, prefix, renames, fixed=()):
        out = []
        for f in dataclasses.fields(cls):
            if f.name in fixed:
                continue
            hint = configs._field_class(cls, f)
            if hint is not None:
                out += leaves(hint, prefix, renames)
            else:
                out.append((f.name, configs.flag_for(f.name, prefix, renames)))
        return out

    unbound = {  # fields with no flag on purpose: set by the code, or kept at the paper's value
        "ImageChildConfig": {"min_learning_rate", "clip_norm"},
        "LMChildConfig": {"min_learning_rate"},
        "SearchConfig": {"keep_checkpoints"},
        "OneShotConfig": {"keep_checkpoints"},
        "SharedTrainingConfig": {"momentum"},
        "LMSharedTrainingConfig": {"lr_decay", "lr_decay_start", "reward_batch_size", "reward_bptt"},
        "FinalImageConfig": {"clip_norm"},
        "FinalLMConfig": set(),
    }
    cases = [
        ("search_nas.py", ImageChildConfig, "child_", configs.CHILD_RENAMES, ("builder_options", "costs", "latency")),
        ("search_nas.py", LMChildConfig, "child_", configs.CHILD_RENAMES, ("model_options",)),
        ("search_nas.py", SearchConfig, "", None, ()),
        ("search_enas.py", OneShotConfig, "", None, ()),
        ("search_enas.py", SharedTrainingConfig, "shared_", {"seed": "/seed"}, ()),
        ("search_enas.py", LMSharedTrainingConfig, "shared_",
         {"seed": "/seed", "learning_rate": "lr_max", "bptt": "/lm_bptt", "reward_c": "/reward_c"}, ()),
        ("train_final.py", FinalImageConfig, "", None, ("builder_options",)),
        ("train_final.py", FinalLMConfig, "", configs.LM_RENAMES, ("model_options",)),
    ]
    for script, cls, prefix, renames, fixed in cases:
        with script_flags(script):
            missing = [(field, flag) for field, flag in leaves(cls, prefix, renames, fixed) if flag not in FLAGS]
            missing = [m for m in missing if m[0] not in unbound[cls.__name__]]
            assert not missing, f"{script}: {cls.__name__} fields without a flag: {missing}"


def test_configs_take_the_flag_values():
    with script_flags("search_nas.py"):
        FLAGS(["search_nas.py", "--space=nas_rnn", "--child_lr=7", "--lm_clip_norm=0.5", "--max_child_params=99",
               "--reward_c=60", "--child_lr_schedule=cosine"])
        configs.apply_defaults(configs.NAS_DEFAULTS, "nas_rnn")
        config = configs.lm_child_config()
        assert config.optimizer.learning_rate == 7 and config.optimizer.clip_norm == 0.5
        assert config.optimizer.schedule == "cosine" and config.optimizer.momentum == 0.0  # the nas_rnn default
        assert config.max_params == 99 and config.reward_c == 60 and config.epochs == 2
        assert config.model_options["units"] == 64
    with script_flags("train_final.py"):
        FLAGS(["train_final.py", "--arch=nascell", "--lr=3", "--min_lr=0.5", "--lm_bptt=20"])
        configs.apply_defaults(configs.FINAL_DEFAULTS, "text")
        config = configs.final_lm_config()
        assert (config.optimizer.learning_rate, config.optimizer.min_learning_rate, config.bptt) == (3, 0.5, 20)
        assert config.model_options["units"] == 200 and config.epochs == 10  # the recurrent-cell defaults
        with pytest.raises(cli.FlagError, match="min_learning_rate must be in"):
            FLAGS.min_lr = 5.0
            configs.final_lm_config()


@pytest.mark.parametrize(
    "script, table, default, label",
    [("search_enas.py", configs.ENAS_DEFAULTS, "micro", "--space={}".format),
     ("search_nas.py", configs.NAS_DEFAULTS, "nas_cnn", "--space={}".format),
     ("train_final.py", configs.FINAL_DEFAULTS, "image", {"text": "recurrent cells"}.get)],
)
def test_help_shows_the_defaults_that_apply(script, table, default, label):
    """--helpfull shows each flag's default for the script's default choice and names the others' values."""
    with script_flags(script):
        text = FLAGS.get_help()
        for choice, values in table.items():
            for name, value in values.items():
                if choice == default:
                    assert FLAGS[name].default == value, (name, FLAGS[name].default, value)
                elif value != table[default].get(name, FLAGS[name].default):
                    shown = "unset" if value is None else str(value)
                    assert f"{label(choice)}: {shown}" in FLAGS[name].help, (name, FLAGS[name].help)
        # The topics of --helpfull.
        topics = ("final training", "data", "execution") if script == "train_final.py" else ("search", "controller", "data")
        for topic in topics:
            assert f"nas_tf: {topic}:" in text


def test_cost_targets_reach_the_child_config():
    with script_flags("search_nas.py"):
        FLAGS(["search_nas.py", "--target_latency_ms=0.5", "--latency_weight=-1", "--cost_constraint=hard",
               "--target_params=20000", "--latency_runs=7"])
        config = configs.image_child_config()
    assert config.costs.constraint == "hard" and config.latency.runs == 7
    assert [(t.metric, t.target, t.weight) for t in config.costs.targets] == [("latency_ms", 0.5, -1.0),
                                                                               ("params", 20000.0, -0.07)]
    with script_flags("search_nas.py"):
        FLAGS(["search_nas.py"])
        assert not configs.image_child_config().costs.active  # no target: the accuracy alone


def test_enas_rnn_runs_with_the_rnn_defaults_unless_given():
    with script_flags("search_enas.py"):
        FLAGS(["search_enas.py", "--space=rnn", "--controller_lr=0.01"])
        configs.apply_defaults(configs.ENAS_DEFAULTS, "rnn")
        assert FLAGS.controller_lr == 0.01  # given
        assert FLAGS.temperature == 5.0 and FLAGS.baseline_decay == 0.999 and FLAGS.model_dir == "runs/enas_rnn"


def test_main_flags_are_in_the_short_help():
    with script_flags("search_enas.py"):
        short = FLAGS.module_help("script_search_enas")
    for name in ("--model_dir", "--space", "--num_epochs", "--op_selection", "--final_epochs"):
        assert name in short
    assert "--shared_lr_t_mul" not in short


PRESETS = sorted(glob.glob(os.path.join(REPO, "scripts", "presets", "*.flags")))


def _preset_script(path):
    name = os.path.basename(path)
    if name.endswith("_final.flags"):
        return "train_final.py"
    if name.startswith("enas"):
        return "search_enas.py"
    if name.startswith("nasnet"):
        return "search_nasnet.py"
    return "search_nas.py"


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_every_preset_parses_and_resolves(preset, tmp_path):
    """Each flag file is accepted by its script and builds the configs and the searcher of its run."""
    script = _preset_script(preset)
    with script_flags(script):
        FLAGS([script, f"--flagfile={preset}", f"--model_dir={tmp_path}"] + (["--arch=nasnet_a"] if script == "train_final.py" else []))
        if script == "search_enas.py":
            configs.apply_defaults(configs.ENAS_DEFAULTS, FLAGS.space)
            configs.refuse_inapplicable(configs.ENAS_APPLIES, FLAGS.space, FLAGS.space)
            space = configs.enas_space()
            configs.searcher(space)
            configs.one_shot_config()
            (configs.lm_shared_training_config if FLAGS.space == "rnn" else configs.shared_training_config)()
        elif script == "search_nas.py":
            configs.apply_defaults(configs.NAS_DEFAULTS, FLAGS.space)
            configs.refuse_inapplicable(configs.NAS_APPLIES, FLAGS.space, FLAGS.space)
            rnn = FLAGS.space == "nas_rnn"
            space = configs.nas_rnn_space() if rnn else configs.nas_cnn_space()
            configs.searcher(space)
            configs.lm_child_config() if rnn else configs.image_child_config()
            configs.search_config(start_depth=None if rnn else FLAGS.start_depth)
        elif script == "search_nasnet.py":
            space = configs.nasnet_space()
            configs.searcher(space)
            configs.image_child_config(**configs.nasnet_builder_options())
        else:
            configs.apply_defaults(configs.FINAL_DEFAULTS, "image")
            configs.refuse_inapplicable(configs.FINAL_APPLIES, "image", "image")
            configs.final_image_config(configs.nasnet_builder_options())


def test_flag_choices_match_the_library():
    from nas_tf.distribute import STRATEGIES
    from nas_tf.tasks import get_task

    assert cli.STRATEGIES == tuple(STRATEGIES)
    assert cli.IMAGE_DATASETS == tuple(get_task("image").datasets)
    assert cli.TEXT_DATASETS == tuple(get_task("text").datasets)


def test_resume_with_changed_flags_is_refused(tmp_path):
    """A second run in the same directory with other settings stops with the list of differences."""
    tiny = ["--num_architectures=1", "--archs_per_step=1", "--child_epochs=1", "--child_steps_per_epoch=1",
            "--start_depth=1", "--child_batch_size=8"]
    code, _, err = run_main("search_nas.py", f"--model_dir={tmp_path}", *tiny)
    assert code == 0, err
    code, _, err = run_main("search_nas.py", f"--model_dir={tmp_path}", *tiny, "--num_filters=8,16")
    assert code == 1 and "num_filters" in err and "other settings" in err
    assert nas_tf.load_arch(str(tmp_path / "best_arch.json")).space == "nas_cnn"
