"""Pictures of architectures, reports of searches, TensorBoard summaries.

* :func:`plot_arch` / :func:`arch_graph` / :func:`render_arch`: any arch of
  any space as a Graphviz picture (SVG, PNG, PDF, DOT); no TensorFlow.
* :func:`arch_short_form`: one line naming an arch (for logs and tables;
  it lives in :mod:`nas_tf.spaces.short_form`, which the search loops use too).
* :mod:`nas_tf.viz.report`: the HTML / Markdown report of a run directory.
* :mod:`nas_tf.viz.tensorboard`: the best arch as an image, every child as an
  HParams trial, model graphs (imports TensorFlow; import it explicitly).
* :func:`search_callbacks`: the search callbacks that write ``best_arch.svg``
  and ``.png`` and fill TensorBoard (the scripts attach them to every search).
"""

from nas_tf.spaces.short_form import arch_short_form
from nas_tf.viz.callbacks import ArchPictures, TensorBoardDashboard, search_callbacks
from nas_tf.viz.plot import (
    arch_graph,
    drawable_spaces,
    plot_arch,
    register_drawer,
    render_arch,
    save_arch_pictures,
)
from nas_tf.viz.render import GraphvizNotFoundError

__all__ = [
    "ArchPictures",
    "GraphvizNotFoundError",
    "TensorBoardDashboard",
    "arch_graph",
    "arch_short_form",
    "drawable_spaces",
    "plot_arch",
    "register_drawer",
    "render_arch",
    "save_arch_pictures",
    "search_callbacks",
]
