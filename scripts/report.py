#!/usr/bin/env python3
"""Writes the report of a search: report.html (one self-contained page) and report.md.

    python scripts/report.py --model_dir=runs/nas
    python scripts/report.py --model_dir=runs/enas --top_k=10

--model_dir is a search's run directory, finished or still running (the
report reads it and writes only report.html and report.md there, or into
--output_dir). The page shows the reward of every child with the best so far
and the controller's baseline, the best architectures with their pictures
and numbers, the final test metrics when final/ exists, the resume history
and the settings; it loads nothing from any network.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nas_tf.cli.drivers import fail  # noqa: E402

# Required, checked in main (required=True would bind every parse of the global FLAGS in the process).
flags.DEFINE_string("model_dir", None, "The search's run directory (required).")
flags.DEFINE_integer("top_k", 5, "How many of the best architectures to show.", lower_bound=1)
flags.DEFINE_string("output_dir", None, "Where to write report.html and report.md (default: --model_dir).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir:
        fail("--model_dir is required: the search's run directory")
    from nas_tf.search.results import RunDirectoryError, open_run
    from nas_tf.viz.report import write_report

    try:
        run = open_run(FLAGS.model_dir)
    except RunDirectoryError as e:
        reason = str(e)
        prefix = os.path.abspath(FLAGS.model_dir) + ": "
        fail(f"--model_dir={FLAGS.model_dir}: {reason[len(prefix):] if reason.startswith(prefix) else reason}")
    try:
        html_path, md_path = write_report(run, k=FLAGS.top_k, output_dir=FLAGS.output_dir)
    except OSError as e:
        fail(f"--output_dir={FLAGS.output_dir or FLAGS.model_dir}: cannot write the report ({e.strerror or e})")
    print(f"{run.describe()}\nreport: {html_path}\nmarkdown: {md_path}")


if __name__ == "__main__":
    app.run(main)
