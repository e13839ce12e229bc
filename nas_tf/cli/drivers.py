"""How each script's run goes: searches, retraining, final training; one-line errors.

A script defines its flags (:mod:`nas_tf.cli.flags`), declares the defaults
that depend on what it runs (:mod:`nas_tf.cli.configs`) and hands one of the
``run_*`` functions here to :func:`main`. Errors a user can fix (a bad flag,
a directory holding another search, a missing dataset) end the run with one
line on stderr naming the flag and the value, and exit status 1.

What a user may hit, and what they get (docs/reliability.md): a bad flag file
is named by :func:`parse_flags` before absl reads it; an unusable
``--model_dir``, ``--data_dir`` or ``--arch`` is refused before anything is
created; a damaged or busy run directory, a full disk and Ctrl-C or SIGTERM
end in one line (the last two exit 1 and 128 + the signal number), and the
same command resumes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from absl import flags as absl_flags

from nas_tf.cli import configs
from nas_tf.cli.flags import FLAGS, FlagError
from nas_tf.utils import interrupts
from nas_tf.utils.io import RunDirError, disk_full_reason, release_run_dirs
from nas_tf.utils.native_logs import filter_native_stderr

log = logging.getLogger("nas_tf")


# ------------------------------------------------------------ the terminal


def fail(message: str, code: int = 1) -> None:
    """Prints a one-line error (no traceback) and exits with status ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


# ------------------------------------------------------------ flag files

# How deep flag files may include flag files.
_MAX_FLAGFILE_DEPTH = 10


class FlagFileError(absl_flags.Error):
    """A --flagfile that cannot be read; the message names it and the reason."""


def _flag_files(args: list[str]) -> list[tuple[str, str]]:
    """``(as written, path)`` of every --flagfile in ``args``."""
    out = []
    for i, arg in enumerate(args):
        for prefix in ("--flagfile=", "-flagfile="):
            if arg.startswith(prefix):
                out.append((arg, arg[len(prefix):]))
        if arg in ("--flagfile", "-flagfile") and i + 1 < len(args):
            out.append((f"{arg}={args[i + 1]}", args[i + 1]))
    return out


def check_flag_files(argv: list[str], _depth: int = 0) -> None:
    """Refuses a --flagfile that is missing, not a file, unreadable or not UTF-8, naming it and the line.

    Flag files named inside flag files are checked too. absl would report
    some of these with its own wording and raise others as tracebacks.

    Raises:
        FlagFileError: (an absl flags error) naming the flag file and the reason.
    """
    for written, path in _flag_files(argv[1:] if _depth == 0 else argv):
        if not path:
            raise FlagFileError(f"{written}: empty; give a flag file")
        full = os.path.expanduser(path)
        if not os.path.exists(full):
            raise FlagFileError(f"{written}: no such file")
        if os.path.isdir(full):
            raise FlagFileError(f"{written}: is a directory, not a flag file")
        try:
            with open(full, "rb") as f:
                data = f.read()
        except OSError as e:
            raise FlagFileError(f"{written}: cannot be read ({e.strerror})") from None
        lines = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append(raw.decode("utf-8").strip())
            except UnicodeDecodeError as e:
                raise FlagFileError(
                    f"{written}: line {number} is not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                ) from None
        if _depth >= _MAX_FLAGFILE_DEPTH and _flag_files(lines):
            raise FlagFileError(f"{written}: flag files nest more than {_MAX_FLAGFILE_DEPTH} deep (a cycle?)")
        check_flag_files(lines, _depth + 1)


def parse_flags(argv: list[str]) -> list[str]:
    """Parses a script's command line (flag files checked first); returns the remaining arguments.

    Raises:
        absl.flags.Error: a bad flag or flag file (the message names it).
    """
    check_flag_files(argv)
    return FLAGS(argv)


def _parse_flags_with_usage(argv: list[str]) -> list[str]:
    """:func:`parse_flags` for ``app.run``: a bad flag is absl's one-line message and exit status 1."""
    from absl import app

    try:
        check_flag_files(argv)
    except absl_flags.Error as e:
        print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(1)
    return app.parse_flags_with_usage(argv)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (tests and callers may redirect it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging() -> None:
    """Progress lines of the library (logger ``nas_tf``) on stderr."""
    logger = logging.getLogger("nas_tf")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # TensorFlow's own INFO lines (checkpoint sharding, ...) are noise here.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)


def start(main_function: Callable[[list[str]], None]) -> None:
    """Runs a script's ``main`` from the command line (``if __name__ == "__main__": drivers.start(main)``).

    TensorFlow's start-up notices, which say nothing to a user, are filtered
    from stderr first (:mod:`nas_tf.utils.native_logs`; ``NAS_TF_TF_LOGS=all``
    keeps them).
    """
    from absl import app

    filter_native_stderr()
    app.run(main_function, flags_parser=_parse_flags_with_usage)


def report_outputs(model_dir: str, outputs: list[tuple[str, str]], next_steps: list[str]) -> None:
    """Says where everything a run wrote is, and what to run next (on stderr, after the JSON summary)."""
    model_dir = os.path.abspath(model_dir)
    width = max(len(name) for name, _ in outputs)
    lines = [f"Outputs in {model_dir}:"]
    lines += [f"  {name.ljust(width)}  {what}" for name, what in outputs if os.path.exists(os.path.join(model_dir, name.split()[0]))]
    lines += ["Next:"] + [f"  {step}" for step in next_steps]
    print("\n".join(lines), file=sys.stderr)


def _search_outputs(model_dir: str, final: bool) -> None:
    tb = os.path.join(os.path.abspath(model_dir), "tensorboard")
    outputs = [
        ("history.jsonl", "every sampled architecture and its reward"),
        ("best_arch.json", "the best architecture (best_arch.svg, best_arch.png: its picture)"),
        ("summary.json", "this summary"),
        ("tensorboard/", f"rewards, the controller, the best arch, every child (tensorboard --logdir {tb})"),
        ("checkpoints/", "the searcher's state: the same command resumes"),
        ("final/model.keras", "the retrained network (Keras)"),
        ("final/saved_model/", "the retrained network (SavedModel, serves without nas_tf)"),
    ]
    steps = [f"python scripts/report.py --model_dir={model_dir}    # report.html: rewards, the best archs"]
    if not final:
        steps.append(
            f"python scripts/train_final.py --arch={os.path.join(model_dir, 'best_arch.json')} "
            f"--model_dir={os.path.join(model_dir, 'final')}    # retrain the best arch from scratch"
        )
    report_outputs(model_dir, outputs, steps)


def main(run: Callable[[], Any]) -> Callable[[list[str]], None]:
    """The absl ``main`` of a script that calls ``run()``.

    Extra positional arguments are refused; :class:`~nas_tf.cli.flags.FlagError`
    and the other errors a user can fix end in one line (:func:`fail`); when
    another worker of a ``--strategy=multi_worker`` run stops, this worker says
    so in one line, with how to resume. So do a damaged or busy run directory
    (:class:`~nas_tf.utils.io.RunDirError`), a full disk, and Ctrl-C or
    SIGTERM (exit status 128 + the signal number), which stop the run at a
    clean point (:mod:`nas_tf.utils.interrupts`). The run-directory locks
    this process took are released at the end.
    """
    from absl import app

    @functools.wraps(run)
    def wrapped(argv: list[str]) -> None:
        import tensorflow as tf

        from nas_tf.search import ResumeMismatchError

        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        try:
            with interrupts.handle_interrupts():
                run()
        except (FlagError, ResumeMismatchError) as e:
            fail(str(e))
        except RunDirError as e:
            fail(str(e))
        except KeyboardInterrupt as e:
            name = e.signal if isinstance(e, interrupts.Interrupted) else "SIGINT"
            code = e.exit_code if isinstance(e, interrupts.Interrupted) else 130
            fail(f"stopped by {name} ({'Ctrl-C' if name == 'SIGINT' else 'kill'}): the run stopped at a clean point; "
                 "re-run the same command to resume", code)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
            if "strategy" not in FLAGS or FLAGS.strategy != "multi_worker":
                raise
            detail = " ".join(str(getattr(e, "message", e)).split())
            hint = detail[detail.find("The following tasks"):][:200] if "The following tasks" in detail else detail[:200]
            fail(
                f"--strategy=multi_worker: another worker of the cluster stopped ({hint}); re-run the same command "
                "on every host to resume from the last checkpoint"
            )
        except Exception as e:
            reason = disk_full_reason(e)
            if reason is None:
                raise
            where = f" of --model_dir={FLAGS.model_dir}" if "model_dir" in FLAGS else ""
            fail(f"{reason} on the file system{where}; free some space and re-run the same command to resume "
                 "(nothing written so far is lost)")
        finally:
            release_run_dirs()

    return wrapped


# ------------------------------------------------------ multi-trial search


def search_evaluator(spec):
    """The evaluator and the cluster strategy (None on one host) of a multi-trial search.

    ``spec`` is the :class:`~nas_tf.tasks.TrainerSpec` of the children.
    With ``--parallel_children`` the children train in worker processes on
    their ``--child_devices`` (this process hides its GPUs from itself);
    otherwise here, under ``--strategy`` (mirrored: each child data-parallel).
    ``--strategy=multi_worker`` makes this host one of the search's replicas.
    Must run before TensorFlow executes any op.
    """
    import tensorflow as tf

    from nas_tf.benchmarks import BenchmarkError
    from nas_tf.data import DatasetUnavailableError
    from nas_tf.distribute import num_replicas
    from nas_tf.search import InProcessEvaluator
    from nas_tf.search.evaluators import ParallelEvaluator, parse_device_groups

    groups = FLAGS.child_devices
    parallel = FLAGS.parallel_children
    if groups and parallel and len(groups) != parallel:
        raise FlagError(f"--child_devices={','.join(groups)} names {len(groups)} group(s) but --parallel_children={parallel}")
    parallel = parallel or (len(groups) if groups else 0)
    if FLAGS.child_timeout and not parallel:
        raise FlagError(
            f"--child_timeout={FLAGS.child_timeout:g} needs --parallel_children >= 1 (a child training in the "
            "search process cannot be stopped)"
        )
    if FLAGS.async_controller and FLAGS.strategy == "multi_worker":
        raise FlagError("--async_controller runs on one host; --strategy=multi_worker updates the controller synchronously")
    cluster, child_strategy, device_groups = None, None, None
    if parallel:
        if FLAGS.strategy not in ("auto", "multi_worker") or FLAGS.num_cpu_devices or FLAGS.num_gpus is not None:
            raise FlagError(
                f"--strategy={FLAGS.strategy}: with --parallel_children each worker trains on its --child_devices "
                "group (mirrored when a group has several GPUs); use --strategy=auto (or multi_worker) and "
                "--child_devices instead of --num_gpus/--num_cpu_devices"
            )
        try:
            device_groups = parse_device_groups(groups, parallel, len(tf.config.list_physical_devices("GPU")))
        except ValueError as e:
            raise FlagError(f"--child_devices: {e}") from None
        tf.config.set_visible_devices([], "GPU")  # the workers own the GPUs
    strategy = configs.distribute_strategy()
    if FLAGS.strategy == "multi_worker":
        cluster = strategy
    elif num_replicas(strategy) > 1:
        child_strategy = strategy
    try:
        trainer = spec.build(strategy=child_strategy)
    except DatasetUnavailableError as e:
        raise FlagError(f"--dataset={spec.dataset}: {e}") from None
    except BenchmarkError as e:
        flag = "--benchmark_dir" if FLAGS.benchmark_dir else "--benchmark"
        raise FlagError(f"{flag}={FLAGS.benchmark_dir or FLAGS.benchmark}: {e}") from None
    except ValueError as e:
        raise FlagError(f"--strategy={FLAGS.strategy}: {e}") from None
    _check_child_batch(trainer, num_replicas(child_strategy) if child_strategy is not None else 1)
    if parallel:
        evaluator = ParallelEvaluator(
            spec, parallel, device_groups, child_timeout=FLAGS.child_timeout, retries=FLAGS.child_retries,
            threads_per_worker=FLAGS.child_threads, settings=trainer.settings(),
        )
    else:
        evaluator = InProcessEvaluator(trainer, trainer.settings())
    return evaluator, cluster


def _check_child_batch(trainer, replicas: int) -> None:
    """Refuses --child_batch_size larger than the training split the children read."""
    config = getattr(trainer, "config", None)
    batch = getattr(config, "batch_size", None)
    if batch is None:
        return  # children looked up in a table
    if getattr(trainer, "corpus", None) is not None:
        configs.check_batch("child_batch_size", batch, trainer.corpus, replicas, bptt=config.bptt)
    elif getattr(trainer, "data", None) is not None:
        configs.check_batch("child_batch_size", batch, trainer.data, replicas)


def run_multi_trial_search(space, spec, start_depth: int | None = None) -> dict:
    """Builds and runs (or resumes) a multi-trial search; prints and returns the summary."""
    from nas_tf.distribute import worker_info
    from nas_tf.search import MultiTrialSearch
    from nas_tf.search.evaluators import WorkerStartError
    from nas_tf.viz.callbacks import search_callbacks

    config = configs.search_config(start_depth=start_depth)
    evaluator, cluster = search_evaluator(spec)  # before any TensorFlow op: the strategy may need it
    try:
        searcher = configs.searcher(space)
        search = MultiTrialSearch(space, searcher, evaluator, config, cluster=cluster, callbacks=search_callbacks())
        chief = worker_info(cluster).is_chief
        try:
            summary = search.run()
        except WorkerStartError as e:
            raise FlagError(f"--parallel_children={FLAGS.parallel_children or len(FLAGS.child_devices or [])}: {e}") from None
        if chief:
            configs.write_flags(FLAGS.model_dir)
        print(dump(summary))
        if chief:
            _search_outputs(FLAGS.model_dir, final=False)
        return summary
    finally:
        evaluator.close()


def run_nas_search() -> dict:
    """scripts/search_nas.py: the NAS CNN, recurrent-cell or NAS-Bench-201 search."""
    from nas_tf.tasks import TabularChildConfig, TrainerSpec

    setup_logging()
    configs.apply_defaults(configs.NAS_DEFAULTS, FLAGS.space)
    configs.refuse_inapplicable(configs.NAS_APPLIES, FLAGS.space, f"--space={FLAGS.space}", "--space={}".format)
    configs.check_model_dir()
    configs.check_search_settings(FLAGS.start_depth if FLAGS.space == "nas_cnn" else None)
    if FLAGS.space == "nb201" and (FLAGS.benchmark or FLAGS.benchmark_dir):
        table = "nats" if FLAGS.benchmark_dir else FLAGS.benchmark
        if FLAGS.benchmark_dir and FLAGS.benchmark == "analog_nasbench":
            raise FlagError("--benchmark_dir is the NATS-Bench directory: use it with --benchmark=nats (or alone)")
        configs.refuse_inapplicable(
            configs.TABULAR_APPLIES, "table", f"--benchmark={table} (children are read from the table, not trained)",
            lambda _: "searches that train their children",
        )
        spec = TrainerSpec("tabular", table, TabularChildConfig(), data_dir=FLAGS.benchmark_dir)
        return run_multi_trial_search(configs.nb201_space(), spec)
    recurrent = FLAGS.space == "nas_rnn"
    task = "text" if recurrent else "image"
    dataset = configs.require_dataset(task, f"--space={FLAGS.space}")
    configs.check_data_dir(dataset)
    if recurrent:
        space, start_depth, config = configs.nas_rnn_space(), None, configs.lm_child_config()
    elif FLAGS.space == "nb201":
        space, start_depth, config = configs.nb201_space(), None, configs.image_child_config()
    else:
        space, start_depth, config = configs.nas_cnn_space(), FLAGS.start_depth, configs.image_child_config()
    spec = TrainerSpec(task, dataset, config, data_dir=FLAGS.data_dir, download=FLAGS.download_data)
    return run_multi_trial_search(space, spec, start_depth=start_depth)


def run_nasnet_search() -> dict:
    """scripts/search_nasnet.py: the NASNet cell search."""
    from nas_tf.tasks import TrainerSpec

    setup_logging()
    configs.check_model_dir()
    configs.check_search_settings()
    dataset = configs.require_dataset("image", "a NASNet search")
    configs.check_data_dir(dataset)
    config = configs.image_child_config(**configs.nasnet_builder_options())
    spec = TrainerSpec("image", dataset, config, data_dir=FLAGS.data_dir, download=FLAGS.download_data)
    return run_multi_trial_search(configs.nasnet_space(), spec)


# -------------------------------------------------------- one-shot (ENAS)


def _enas_distribute_strategy():
    """The tf.distribute strategy of the shared weights (made before any TensorFlow op: it may split the CPU)."""
    if FLAGS.space == "rnn":
        if FLAGS.strategy in ("mirrored", "multi_worker"):
            raise FlagError(
                f"--strategy={FLAGS.strategy}: --space=rnn trains its shared weights on one device (the recurrent "
                "supernet is not data-parallel yet); use --strategy=one_device (or auto), or --space=macro|micro"
            )
        if FLAGS.strategy == "auto" and (FLAGS.num_cpu_devices > 1 or FLAGS.num_gpus not in (None, 0, 1)):
            raise FlagError(
                "--num_cpu_devices/--num_gpus: --space=rnn trains its shared weights on one device; "
                "drop them or use --space=macro|micro"
            )
        FLAGS.strategy = "one_device"  # auto never spreads the recurrent supernet over several GPUs
    return configs.distribute_strategy()


def _enas_task(space, strategy):
    """The shared-weights task of --space and its data."""
    if FLAGS.space == "rnn":
        from nas_tf.models.enas_rnn import EnasRnnSupernetLM
        from nas_tf.tasks import LMSupernetTask

        corpus = configs.load_data("text")
        configs.check_batch("shared_batch_size", FLAGS.shared_batch_size, corpus, bptt=FLAGS.lm_bptt)
        supernet = EnasRnnSupernetLM(space, corpus.vocab_size, x_dropout=FLAGS.lm_x_dropout, **configs.lm_model_options())
        return LMSupernetTask(supernet, corpus, configs.lm_shared_training_config()), corpus
    from nas_tf.tasks import ImageSupernetTask

    data = configs.load_data("image")
    configs.check_batch("shared_batch_size", FLAGS.shared_batch_size, data, strategy.num_replicas_in_sync)
    with strategy.scope():  # the shared weights (and their optimizer, in the task) are distributed variables
        supernet = configs.enas_image_supernet(space, data)
    costs = {}
    settings = configs.cost_settings()
    if settings and settings["costs"].active:  # latency-aware derivation: the final network's serving costs
        from nas_tf.export.cost import CostAwareReward, CostMeter
        from nas_tf.models import build_image_model

        options = _enas_final_options()
        meter = CostMeter(raw=data.raw_pixels, latency=settings["latency"],
                          context={"dataset": data.name, "input_shape": list(data.input_shape), "builder_options": options})
        costs = dict(
            cost_reward=CostAwareReward(settings["costs"], meter),
            final_builder=lambda arch: build_image_model(arch, data.input_shape, data.num_classes, **options),
        )
    return ImageSupernetTask(supernet, data, configs.shared_training_config(), strategy=strategy, **costs), data


def _enas_final_options() -> dict[str, Any]:
    """Builder options of the final network of a derived arch (micro: NASNet stacking of the cells, stem 3F)."""
    if FLAGS.space != "micro":
        return {}
    return dict(
        num_cells=FLAGS.final_cells,
        num_conv_filters=FLAGS.final_filters,
        skeleton="cifar",
        stem_multiplier=3.0,
        adjust_first_prev=True,
        drop_path_keep_prob=FLAGS.final_drop_path_keep_prob,
        aux_head=FLAGS.final_aux_head,
    )


def _enas_retrain(arch, data, model_dir: str, strategy) -> dict:
    """Trains the derived arch from scratch (--final_epochs) and exports it (images: under ``strategy``)."""
    from nas_tf.tasks import FinalImageConfig, task_for_space

    task = task_for_space(arch.space)
    if task.name == "text":
        config = configs.final_lm_config(epochs=FLAGS.final_epochs)
        return task.train_final(arch, data, model_dir, config, export=FLAGS.export)
    config = FinalImageConfig(
        epochs=FLAGS.final_epochs, cutout=FLAGS.final_cutout, seed=FLAGS.seed, builder_options=_enas_final_options()
    )
    return task.train_final(arch, data, model_dir, config, export=FLAGS.export, strategy=strategy)


def run_enas_search() -> dict:
    """scripts/search_enas.py: the ENAS search, then the retraining and export of the derived arch."""
    configs.apply_defaults(configs.ENAS_DEFAULTS, FLAGS.space)
    configs.refuse_inapplicable(configs.ENAS_APPLIES, FLAGS.space, f"--space={FLAGS.space}", "--space={}".format)
    dataset = configs.require_dataset("text" if FLAGS.space == "rnn" else "image", f"--space={FLAGS.space}")
    configs.check_model_dir()
    configs.check_data_dir(dataset)
    setup_logging()
    distribute = _enas_distribute_strategy()
    import keras

    import nas_tf
    from nas_tf.distribute import barrier, worker_info
    from nas_tf.search import OneShotSearch

    worker = worker_info(distribute)
    keras.utils.set_random_seed(FLAGS.seed)  # the shared weights' initial values (the same on every worker)
    space = configs.enas_space()
    task, data = _enas_task(space, distribute)
    # The controller: a plain (non-distributed) model outside the strategy's scope, the same seed on every worker.
    from nas_tf.viz.callbacks import search_callbacks

    search = OneShotSearch(space, configs.searcher(space), task, configs.one_shot_config(), callbacks=search_callbacks())
    try:
        summary = search.run()
    except FloatingPointError as e:
        raise FlagError(f"{e}: lower --shared_lr_max or --shared_grad_clip") from None
    if worker.is_chief:
        configs.write_flags(FLAGS.model_dir)
    result = {"search": summary}
    if FLAGS.final_epochs:
        # Under multi_worker every worker retrains (the chief alone writes final/); best_arch.json
        # is on the shared filesystem and the search ended with a barrier after writing it.
        final_dir = os.path.join(os.path.abspath(FLAGS.model_dir), "final")
        arch = nas_tf.load_arch(summary["best_arch"])
        metrics = _enas_retrain(arch, data, final_dir, distribute)
        from nas_tf.tasks import task_for_space

        keys = task_for_space(arch.space).metrics
        result["final"] = {k: metrics[k] for k in keys + ("params", "wall_time")}
        result["final"]["model_dir"] = final_dir
        if FLAGS.export:
            result["final"]["saved_model"] = os.path.join(final_dir, "saved_model")
    barrier(distribute)  # flags.json is written before any worker reports
    print(dump(result))
    if worker.is_chief:
        _search_outputs(FLAGS.model_dir, final=bool(FLAGS.final_epochs))
    return result


# ---------------------------------------------------------- final training


def run_final_training() -> dict:
    """scripts/train_final.py: trains the arch of --arch from scratch, evaluates and exports it.

    The arch's task (image classification, language modelling) comes from
    the task registry by the arch's space, and its builder from the task.
    """
    import nas_tf
    from nas_tf.distribute import worker_info
    from nas_tf.tasks import task_for_space
    from nas_tf.training.checkpointing import write_chief_outputs

    setup_logging()
    try:
        arch = nas_tf.load_arch(FLAGS.arch)
    except nas_tf.ArchError as e:
        raise FlagError(f"--arch: {e}") from None
    configs.check_model_dir()
    try:
        task = task_for_space(arch.space)
    except ValueError as e:
        raise FlagError(f"--arch={FLAGS.arch}: {e}") from None
    configs.apply_defaults(configs.FINAL_DEFAULTS, task.name)
    what = "a recurrent cell" if task.name == "text" else "an image architecture"
    context = f"{what} (--arch of space {arch.space})"
    configs.refuse_inapplicable(configs.FINAL_APPLIES, task.name, context, configs.ARCH_KINDS.get)
    configs.refuse_inapplicable(configs.NASNET_NETWORK_APPLIES, arch.space, context, configs.ARCH_KINDS.get)
    configs.check_data_dir(configs.require_dataset(task.name, context))
    strategy = configs.distribute_strategy()  # before any TensorFlow op: it may split the CPU
    data = configs.load_data(task.name)
    if task.name == "text":
        replicas = strategy.num_replicas_in_sync
        rows = FLAGS.batch_size * replicas
        if data.num_windows("train", rows, FLAGS.lm_bptt) < 1:
            of = f" x {replicas} replicas (--strategy={FLAGS.strategy}) = {rows} rows" if replicas > 1 else " rows"
            raise FlagError(f"--batch_size={FLAGS.batch_size}{of}: the training split of {data.name} is too short")
        config = configs.final_lm_config()
    else:
        configs.check_batch("batch_size", FLAGS.batch_size, data, strategy.num_replicas_in_sync)
        options = {"dropout": FLAGS.dropout} if FLAGS.dropout else {}
        if arch.space == "nasnet":
            options.update(configs.nasnet_builder_options())
        config = configs.final_image_config(options)
    try:
        metrics = task.train_final(arch, data, FLAGS.model_dir, config, export=FLAGS.export, strategy=strategy)
    except RunDirError:
        raise
    except ValueError as e:
        # A directory that holds another run (another dataset, ...) is a --model_dir problem; other errors are not.
        if not str(e).startswith((FLAGS.model_dir, os.path.abspath(FLAGS.model_dir), "on the chief: ")):
            raise
        raise FlagError(f"--model_dir={FLAGS.model_dir}: {e}") from None
    write_chief_outputs(strategy, lambda: configs.write_flags(FLAGS.model_dir))
    info = worker_info(strategy)
    summary = {k: metrics[k] for k in task.metrics + ("params", "wall_time")}
    summary["replicas"] = strategy.num_replicas_in_sync
    if info.count > 1:
        summary["worker"] = info.index
        summary["workers"] = info.count
    summary["model_dir"] = os.path.abspath(FLAGS.model_dir)
    print(dump(summary))
    if info.is_chief:
        tb = os.path.join(summary["model_dir"], "tensorboard")
        report_outputs(FLAGS.model_dir, [
            ("metrics.json", "per-epoch metrics, test metrics, parameters"),
            ("model.keras", "the trained network (Keras: keras.saving.load_model after import nas_tf)"),
            ("saved_model/", "the SavedModel (serves without nas_tf: tf.saved_model.load)"),
            ("tensorboard/", f"training curves and the model graph (tensorboard --logdir {tb})"),
            ("checkpoints/", "the training state: the same command resumes"),
        ], [f"python -c \"import tensorflow as tf; m = tf.saved_model.load('{os.path.join(summary['model_dir'], 'saved_model')}')\""])
    return summary

