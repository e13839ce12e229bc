#!/usr/bin/env python3
"""The README's main job, timed: ``python scripts/search_enas.py`` as a user runs it.

Runs the default ENAS micro search on the embedded digits (search, derive,
retrain, export) in a fresh interpreter, with the compiled ops and, side by
side, with their pure-TensorFlow fallbacks (``NAS_TF_DISABLE_CUSTOM_OPS=1``),
and reports the wall time of the whole command, the first shared-weights step
(tracing and graph optimisation included), and the retrained network's test
accuracy. Writes the ``main_job`` section of docs/benchmarks.md. A report,
not a test.

    python scripts/bench_main_job.py          # about 6 minutes on 2 cores
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("variants", "ops,fallback", "What to run: ops (the compiled ops), fallback (pure TensorFlow).")
flags.DEFINE_list("search_flags", [], "Extra flags of search_enas.py (none: the main job as the README runs it).")
flags.DEFINE_string("output", os.path.join(REPO, "docs", "benchmarks.md"), "Markdown file to update.")
flags.DEFINE_string("work_dir", None, "Where the runs go (default: a temporary directory).")
FLAGS = flags.FLAGS

VARIANTS = {"ops": {}, "fallback": {"NAS_TF_DISABLE_CUSTOM_OPS": "1"}}
TRACE_LINE = re.compile(r"traced the shared-weights step in (\S+)")


def seconds_of(duration: str) -> float:
    """Seconds of a duration as nas_tf prints it: ``42s``, ``3:05``, ``1:02:05``."""
    if duration.endswith("s"):
        return float(duration[:-1])
    seconds = 0.0
    for part in duration.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def run(variant: str, work_dir: str) -> dict:
    """One run of search_enas.py; returns its numbers."""
    model_dir = os.path.join(work_dir, variant)
    command = [sys.executable, os.path.join(REPO, "scripts", "search_enas.py"), f"--model_dir={model_dir}",
               *FLAGS.search_flags]
    env = {**os.environ, **VARIANTS[variant]}
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.time() - start
    if done.returncode != 0:
        raise app.UsageError(f"search_enas.py failed ({variant}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    traced = TRACE_LINE.search(done.stderr)
    final = summary.get("final") or {}
    return {
        "wall": wall,
        "first_step": seconds_of(traced.group(1)) if traced else float("nan"),
        "traces": summary["search"]["trace_counts"]["train_step"],
        "updates": summary["search"]["controller_updates"],
        "best_reward": summary["search"]["best_reward"],
        "test_accuracy": final.get("test_accuracy", float("nan")),
        "fallback_warned": "using the pure-TensorFlow fallbacks" in done.stderr,
    }


def main(argv):
    del argv
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    unknown = [v for v in FLAGS.variants if v not in VARIANTS]
    if unknown or not FLAGS.variants:
        raise app.UsageError(f"--variants: expected some of {', '.join(VARIANTS)}, got {','.join(FLAGS.variants)}")
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_main_job_")
    results = {}
    for variant in FLAGS.variants:
        print(f"running search_enas.py ({variant}) ...", flush=True)
        results[variant] = run(variant, work_dir)
    headers = ["variant", "whole command s", "first shared-weights step s", "step traces", "controller updates",
               "best reward", "test accuracy"]
    rows = [[v, r["wall"], r["first_step"], r["traces"], r["updates"], r["best_reward"], r["test_accuracy"]]
            for v, r in results.items()]
    ratio = ""
    if "ops" in results and "fallback" in results:
        ratio = (f" With the compiled ops the whole command takes "
                 f"{results['ops']['wall'] / results['fallback']['wall']:.2f}x the time it takes with the fallbacks.")
    command = "python scripts/search_enas.py" + "".join(f" {f}" for f in FLAGS.search_flags)
    text = f"""## The main job, timed (`scripts/bench_main_job.py`)

`{command}` as a user runs it (a fresh interpreter: import, search on the
embedded digits, derive, retrain, export), with nas_tf's compiled ops ("ops")
and with their pure-TensorFlow fallbacks ("fallback",
`NAS_TF_DISABLE_CUSTOM_OPS=1`), one after the other. The first shared-weights
step includes tracing and graph optimisation; every later architecture reuses
that one trace. Goals (issue #15): the whole command within 3 minutes, the
first step within 30 seconds, test accuracy at least 0.64.{ratio}

{markdown_table(headers, rows)}

Machine: {machine_description()}.
"""
    update_section(FLAGS.output, "main_job", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
