#!/usr/bin/env python3
"""Draws an architecture as a picture (SVG, PNG, PDF or DOT, by the extension).

    python scripts/show_arch.py --arch=runs/nas/best_arch.json --output=best.svg
    python scripts/show_arch.py --arch=nasnet_a --output=nasnet_a.png
    python scripts/show_arch.py --arch=runs/nas --output=best.svg     # the run's best_arch.json

--arch takes an arch JSON file, a search's run directory (its best_arch.json),
the name of a published architecture (nasnet_a, enas_micro, nascell,
enas_rnn, darts_rnn, enas_macro), JSON text, or a NAS-Bench-201 cell string.
Needs the Graphviz program `dot` (apt-get install graphviz, or conda install
graphviz) for every format but .dot. Imports no TensorFlow.
"""

import os

from absl import app, flags

from nas_tf.cli.drivers import fail

# Required, checked in main (not with required=True: that would bind every parse of the global
# FLAGS in a process that imported this module, e.g. a test run).
flags.DEFINE_string("arch", None, "Arch JSON file, run directory, published arch name, or JSON text (required).")
flags.DEFINE_string("output", None, "Picture file to write: .svg, .png, .pdf, .dot or .gv (required).")
FLAGS = flags.FLAGS


def _arch_source(value: str) -> str:
    """--arch as load_arch takes it: a run directory stands for its best_arch.json."""
    if os.path.isdir(value):
        path = os.path.join(value, "best_arch.json")
        if not os.path.exists(path):
            fail(f"--arch={value}: a directory without best_arch.json (give an arch file, a run directory or a name)")
        return path
    return value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("arch", "output"):
        if not FLAGS[name].value:
            fail(f"--{name} is required (e.g. --arch=nasnet_a --output=nasnet_a.svg)")
    from nas_tf.spaces import ArchError, named_archs
    from nas_tf.viz import GraphvizNotFoundError, arch_graph
    from nas_tf.viz.render import format_of, write_graph

    try:
        format_of(FLAGS.output)
    except ValueError:
        ext = os.path.splitext(FLAGS.output)[1] or "(none)"
        fail(f"--output={FLAGS.output}: unknown picture format {ext}; use .svg, .png, .pdf, .dot or .gv")
    source = _arch_source(FLAGS.arch)
    try:
        graph = arch_graph(source)
    except ArchError as e:
        reason = str(e)
        if reason.startswith(f"{source}: "):
            reason = reason[len(source) + 2 :]
        if reason.startswith("no such arch file"):
            reason = f"no such file or published arch (published: {', '.join(named_archs())})"
        fail(f"--arch={FLAGS.arch}: {reason}")
    except UnicodeDecodeError:
        fail(f"--arch={FLAGS.arch}: not a text file (arch files are UTF-8 JSON)")
    except OSError as e:
        fail(f"--arch={FLAGS.arch}: cannot read it ({e.strerror or e})")
    try:
        path = write_graph(graph, FLAGS.output)
    except GraphvizNotFoundError as e:
        fail(str(e))
    except OSError as e:
        fail(f"--output={FLAGS.output}: cannot write it ({e.strerror or e})")
    print(path)


if __name__ == "__main__":
    app.run(main)
