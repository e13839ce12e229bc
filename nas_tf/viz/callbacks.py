"""The search callbacks that make a run directory something to look at.

* :class:`ArchPictures` -- ``best_arch.svg`` and ``best_arch.png`` beside
  ``best_arch.json``, rewritten whenever the best arch changes;
* :class:`TensorBoardDashboard` -- the best arch's picture (image summary) and
  JSON (text summary) whenever it changes, and every child as an HParams trial
  (its decisions as hyperparameters; reward, validation accuracy or
  perplexity, parameters, wall time as metrics).

:func:`search_callbacks` gives both; the scripts attach them to every search.
"""

from __future__ import annotations

from nas_tf.search.callbacks import SearchCallback


class ArchPictures(SearchCallback):
    """Writes ``best_arch.svg``/``.png`` whenever the best arch changes (without ``dot``: one warning, no pictures)."""

    def __init__(self, formats: tuple[str, ...] = ("svg", "png")):
        self.formats = tuple(formats)

    def on_best_arch(self, run_dir, arch, step):
        if run_dir.is_chief:
            from nas_tf.viz.plot import save_arch_pictures

            save_arch_pictures(arch, run_dir.path("best_arch"), formats=self.formats)


class TensorBoardDashboard(SearchCallback):
    """The best arch (picture and JSON) and every child (an HParams trial) in the run's ``tensorboard/``."""

    def on_search_begin(self, run_dir, space):
        if run_dir.is_chief:
            from nas_tf.viz import tensorboard as tb

            tb.write_hparams_config(run_dir.path("tensorboard"), space)

    def on_child_end(self, run_dir, row, space):
        if run_dir.is_chief:
            from nas_tf.viz import tensorboard as tb

            tb.log_child(run_dir.path("tensorboard"), row, space)

    def on_best_arch(self, run_dir, arch, step):
        if run_dir.is_chief:
            from nas_tf.viz import tensorboard as tb

            with run_dir.summary_writer().as_default():
                tb.log_arch(arch, step=step)
            run_dir.summary_writer().flush()


def search_callbacks() -> list[SearchCallback]:
    """The callbacks the scripts attach to every search: arch pictures and the TensorBoard dashboard."""
    return [ArchPictures(), TensorBoardDashboard()]
