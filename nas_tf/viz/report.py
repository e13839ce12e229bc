"""The report of a search: one self-contained HTML page and its Markdown twin.

:func:`write_report` reads a run directory (:func:`nas_tf.search.results.open_run`)
and writes ``report.html`` and ``report.md`` into it:

* how the search went: the reward of every child (or controller sample) in
  the order they finished, the best reward so far, and the controller's
  moving baseline (matplotlib);
* the best architectures: pictures (Graphviz) and numbers;
* the settings (``search_config.json``, ``flags.json``);
* the final test metrics and training curves when ``final/`` exists;
* the resume history: one line per process that ran the search.

The HTML page is one file: every picture is a ``data:`` URI (SVG), no
script, no style sheet, no font or request to any network.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
from typing import Any

import numpy as np

from nas_tf.search.results import MULTI_TRIAL, SearchRun, final_numbers, open_run
from nas_tf.spaces.short_form import arch_short_form
from nas_tf.utils.io import atomic_write_text, format_json
from nas_tf.utils.report import markdown_table
from nas_tf.viz.plot import render_arch
from nas_tf.viz.render import GraphvizNotFoundError

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
img.arch { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; } .note { color: #555; font-size: 0.9em; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _time(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_svg(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


# ------------------------------------------------------------------ figures


def reward_figure(run: SearchRun):
    """The matplotlib figure of every reward, the best so far and the baseline (None without history)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    rewards = run.rewards()
    if rewards.size == 0:
        return None
    fig = Figure(figsize=(9, 4.2), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(rewards.size)
    failed = np.asarray([r.get("status", "ok") != "ok" for r in run.history])
    what = "child" if run.kind == MULTI_TRIAL else "controller sample"
    ax.scatter(x[~failed], rewards[~failed], s=16, alpha=0.8, color="tab:blue", zorder=3, label=f"reward of each {what}")
    if failed.any():
        ax.scatter(x[failed], rewards[failed], s=22, marker="x", color="tab:red", label="failed child (reward 0)")
    ax.step(x, run.running_best(), where="post", color="tab:orange", linewidth=2, label="best so far")
    baseline = run.baseline()
    if baseline is not None:
        ax.plot(baseline.x, baseline.values, color="tab:green", linewidth=1.5, marker=".",
                label=f"controller baseline ({baseline.source})")
    ax.set_xlabel("children, in the order they finished" if run.kind == MULTI_TRIAL else "controller samples, in order")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    # Below the axes: the legend hides no point.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    return fig


def final_figure(metrics: dict):
    """Training curves of the retrained model (None when ``metrics.json`` holds no per-epoch history)."""
    from matplotlib.figure import Figure

    history = metrics.get("history") or {}
    curves = {k: v for k, v in history.items() if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v)}
    if not curves:
        return None
    fig = Figure(figsize=(9, 3.6), dpi=100)
    losses = {k: v for k, v in curves.items() if "loss" in k}
    others = {k: v for k, v in curves.items() if k not in losses}
    axes = fig.subplots(1, 2 if losses and others else 1, squeeze=False)[0]
    for ax, group in zip(axes, [g for g in (losses, others) if g]):
        for name, values in group.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ pieces


def _where(row: dict) -> str:
    if "child" in row:
        return f"child {row['child']}, step {row['step']}"
    if "update" in row:
        return f"epoch {row['epoch']}, update {row['update']}, sample {row['sample']}"
    return "derived"


def _top_columns(rows: list[dict]) -> list[str]:
    keys = ["reward"]
    for key in ("val_accuracy", "val_perplexity", "params", "wall_time"):
        if any(r.get(key, (r.get("metrics") or {}).get(key)) is not None for r in rows):
            keys.append(key)
    return keys


def _value(row: dict, key: str) -> Any:
    return row.get(key, (row.get("metrics") or {}).get(key))


def resume_lines(run: SearchRun) -> tuple[list[list[str]], str]:
    """Rows of the resume-history table and a sentence naming the files they come from."""
    sessions = run.sessions()
    unit = "children done" if run.kind == MULTI_TRIAL else "controller updates done"
    rows, previous = [], 0
    for i, s in enumerate(sessions, start=1):
        reached = s.last_step if s.last_step is not None else previous
        span = f"{previous} -> {reached}"
        if s.epochs:
            span += f" (epochs {s.epochs[0]}-{s.epochs[-1]})" if len(s.epochs) > 1 else f" (epoch {s.epochs[0]})"
        kind = "started" if i == 1 else "resumed"
        rows.append([str(i), kind, _time(s.start), _time(s.end), f"{s.host} pid {s.pid}", f"{unit}: {span}"])
        previous = reached
    source = (
        f"From the TensorBoard events files in {os.path.join(run.directory, 'tensorboard')} "
        "(one file per process that ran the search; a process that stopped before it logged a step left none)"
    )
    kept = run.checkpoints()
    if kept:
        source += "; checkpoints kept (checkpoints/checkpoint): " + ", ".join(f"{n} at {_time(t)}" for n, t in kept)
    return rows, source + "."


def _arch_svg(arch: dict) -> tuple[bytes | None, str | None]:
    try:
        return render_arch(arch, "svg"), None
    except GraphvizNotFoundError as e:
        return None, str(e)


# -------------------------------------------------------------------- HTML


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td class=\"num\">{c}</td>" if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(run: SearchRun, k: int = 5) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Search report: {e(os.path.basename(run.directory))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Search report: {e(run.directory)}</h1>",
        f"<p>{e(run.describe())}.</p>",
    ]
    best_reward = float(run.rewards().max()) if run.history else None
    if best_reward is not None:
        parts.append(f"<p>Best reward seen: <b>{best_reward:.6g}</b>.</p>")

    parts.append("<h2>How the search went</h2>")
    fig = reward_figure(run)
    if fig is None:
        parts.append("<p>No child has finished yet (history.jsonl is empty).</p>")
    else:
        parts.append(f"<img alt=\"rewards\" src=\"{_data_uri(_figure_svg(fig), 'image/svg+xml')}\">")
        baseline = run.baseline()
        if baseline is not None and baseline.recomputed:
            parts.append(f"<p class=\"note\">The baseline is {e(baseline.source)}.</p>")

    top = run.top(k) if (run.history or run.derived) else []
    heading = "The best derived architectures" if run.kind != MULTI_TRIAL and run.derived else "The best architectures"
    parts.append(f"<h2>{heading}</h2>")
    if run.kind != MULTI_TRIAL and run.derived:
        parts.append("<p class=\"note\">Sampled from the trained controller at the end and scored on the same "
                     "validation batches (derived.jsonl); best_arch.json is the first.</p>")
    missing_dot = None
    columns = _top_columns(top)
    for rank, row in enumerate(top, start=1):
        numbers = ", ".join(f"{c} {_fmt(_value(row, c))}" for c in columns)
        times = f", met {row['times']} times" if row.get("times", 1) > 1 else ""
        short = e(arch_short_form(row["arch"]))
        parts.append(f"<h3>#{rank}: {e(_where(row))}{e(times)}</h3><p>{e(numbers)}<br><code>{short}</code></p>")
        svg, missing_dot = _arch_svg(row["arch"])
        if svg is not None:
            parts.append(f"<img class=\"arch\" alt=\"architecture #{rank}\" src=\"{_data_uri(svg, 'image/svg+xml')}\">")
    if missing_dot:
        parts.append(f"<p class=\"note\">No pictures: {e(missing_dot)}.</p>")

    final = run.final_metrics()
    parts.append("<h2>Final training</h2>")
    if final is None:
        command = f"scripts/train_final.py --arch={os.path.join(run.directory, 'best_arch.json')}"
        parts.append(f"<p>No final/ directory with metrics.json: the winner was not retrained here "
                     f"(<code>{e(command)}</code> does it).</p>")
    else:
        numbers = final_numbers(final)
        parts.append(_table(["metric", "value"], [[e(k_), e(_fmt(v))] for k_, v in numbers.items()], numeric={1}))
        fig = final_figure(final)
        if fig is not None:
            parts.append(f"<img alt=\"final training curves\" src=\"{_data_uri(_figure_svg(fig), 'image/svg+xml')}\">")

    parts.append("<h2>Resume history</h2>")
    rows, source = resume_lines(run)
    if rows:
        parts.append(_table(["#", "", "first event", "last event", "process", "progress"], [[e(c) for c in r] for r in rows]))
    else:
        parts.append("<p>No TensorBoard events yet.</p>")
    parts.append(f"<p class=\"note\">{e(source)}</p>")

    parts.append("<h2>Settings</h2><p class=\"note\">search_config.json</p>")
    parts.append(_table(["setting", "value"], [[e(k_), e(_fmt(v))] for k_, v in _flatten(run.settings)]))
    if run.flags is not None:
        parts.append("<p class=\"note\">flags.json</p>")
        parts.append(_table(["flag", "value"], [[e(k_), e(_fmt(v))] for k_, v in _flatten(run.flags)]))
    command = f"tensorboard --logdir {os.path.join(run.directory, 'tensorboard')}"
    parts.append(f"<p class=\"note\">TensorBoard: <code>{e(command)}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- Markdown

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 60) -> str:
    """A one-line chart of ``values`` (resampled to at most ``width`` characters)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return ""
    if values.size > width:
        values = values[np.linspace(0, values.size - 1, width).round().astype(int)]
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return _BARS[0] * values.size
    return "".join(_BARS[int(round((v - lo) / (hi - lo) * (len(_BARS) - 1)))] for v in values)


def markdown_report(run: SearchRun, k: int = 5) -> str:
    """The report as Markdown (no pictures; they are in report.html)."""
    lines = [f"# Search report: {run.directory}", "", run.describe() + ".", ""]
    rewards = run.rewards()
    if rewards.size:
        best = run.running_best()
        lines += ["## How the search went", "", f"best so far: `{sparkline(best)}` ({best[0]:.4g} -> {best[-1]:.4g})", ""]
        baseline = run.baseline()
        if baseline is not None:
            lines += [f"baseline:    `{sparkline(baseline.values)}` ({baseline.values[0]:.4g} -> {baseline.values[-1]:.4g}; "
                      f"{baseline.source})", ""]
    top = run.top(k) if (run.history or run.derived) else []
    if top:
        columns = _top_columns(top)
        lines += ["## The best architectures", ""]
        rows = [[str(i), _where(r), *[_fmt(_value(r, c)) for c in columns], f"`{arch_short_form(r['arch'])}`"]
                for i, r in enumerate(top, start=1)]
        lines += [markdown_table(["#", "where", *columns, "arch"], rows), ""]
    final = run.final_metrics()
    lines += ["## Final training", ""]
    if final is None:
        lines += ["No final/ directory with metrics.json.", ""]
    else:
        lines += [markdown_table(["metric", "value"], [[k_, _fmt(v)] for k_, v in final_numbers(final).items()]), ""]
    rows, source = resume_lines(run)
    lines += ["## Resume history", ""]
    if rows:
        lines += [markdown_table(["#", "", "first event", "last event", "process", "progress"], rows), ""]
    lines += [source, ""]
    lines += ["## Settings", "", "```json", format_json(run.settings), "```", ""]
    if run.flags is not None:
        lines += ["flags.json:", "", "```json", format_json(run.flags), "```", ""]
    return "\n".join(lines)


def write_report(run: SearchRun | str | os.PathLike, k: int = 5, output_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """Writes ``report.html`` and ``report.md`` for a run directory.

    Args:
        run: a :class:`~nas_tf.search.results.SearchRun` or its directory.
        k: how many of the best architectures to show.
        output_dir: where to write (default: the run directory).

    Returns:
        The paths of ``report.html`` and ``report.md``.

    Example:

    >>> write_report("runs/nas")  # doctest: +SKIP
    ('runs/nas/report.html', 'runs/nas/report.md')
    """
    if not isinstance(run, SearchRun):
        run = open_run(run)
    out = os.fspath(output_dir) if output_dir is not None else run.directory
    html_path, md_path = os.path.join(out, "report.html"), os.path.join(out, "report.md")
    atomic_write_text(html_path, html_report(run, k))
    atomic_write_text(md_path, markdown_report(run, k))
    return html_path, md_path
