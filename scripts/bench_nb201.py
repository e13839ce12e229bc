#!/usr/bin/env python3
"""Search algorithms on NAS-Bench-201: the best test accuracy found per query budget.

Drives every searcher directly against the NAS-Bench-201 table (no training,
no search-loop files): sample, look the archs up, hand ``accuracy / 100``
back as rewards. Each algorithm runs ``--seeds`` times (seeds
``--seed_offset ...``) for ``--budget`` queries; the report gives the mean and
standard deviation of the best test accuracy found after 50, 100, 200 and 500
queries, the regret to the table's optimum, every algorithm against random
search (difference and its standard error), and a plot of the curves with
95 % confidence bands. Writes the ``nb201`` section of docs/benchmarks.md and
docs/images/nb201_search.png. A report, not a test.

    python scripts/bench_nb201.py --flagfile=scripts/presets/nb201.flags   # tuned controller, ~5 minutes on 2 cores
    python scripts/bench_nb201.py --tiny --output= --plot=                   # seconds: a smoke run

Variants of an algorithm (other settings of the same searcher, e.g. another
baseline rule) join the comparison with ``--variant``::

    --variant='reinforce_lr1e-2=reinforce:learning_rate=0.01' --algorithms=random,reinforce,reinforce_lr1e-2

Tune on seeds other than the reported ones (``--seed_offset=1000``).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGORITHMS = ("random", "evolution", "reinforce", "ppo")

def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the script's flags on ``fv`` (tests use their own ``FlagValues``)."""
    on = dict(flag_values=fv)
    flags.DEFINE_integer("seeds", 100, "Runs per algorithm.", lower_bound=1, **on)
    flags.DEFINE_integer("seed_offset", 0, "First seed (reported: 0; tune on others, e.g. 1000).", lower_bound=0, **on)
    flags.DEFINE_integer("budget", 500, "Table queries per run.", lower_bound=1, **on)
    flags.DEFINE_list("algorithms", list(ALGORITHMS), "Algorithms (and --variant names) to compare.", **on)
    flags.DEFINE_multi_string("variant", [], "NAME=ALGORITHM[:key=value[;key=value...]]: other settings.", **on)
    flags.DEFINE_list("marks", ["50", "100", "200", "500"], "Query counts of the table (within the budget).", **on)
    flags.DEFINE_bool("tiny", False, "Smoke run: 2 seeds, 12 queries, marks 5 and 12.", **on)
    flags.DEFINE_enum("benchmark", "analog_nasbench", ["analog_nasbench"], "Source of the table.", **on)
    flags.DEFINE_string("benchmark_dir", None, "A NATS-tss-v1_0-3ffb9-simple directory (instead).", **on)
    # The controller flags of the search scripts (nas_tf/cli/flags.py), so presets apply as they are.
    flags.DEFINE_float("controller_lr", 6e-4, "Controller Adam learning rate.", lower_bound=0.0, **on)
    flags.DEFINE_integer("controller_units", 35, "LSTM units per controller layer.", lower_bound=1, **on)
    flags.DEFINE_integer("controller_layers", 2, "Stacked controller LSTM layers.", lower_bound=1, **on)
    flags.DEFINE_float("controller_init_range", 0.08, "Controller weights start U(-r, r).", lower_bound=0.0, **on)
    flags.DEFINE_float(
        "baseline_decay", 0.95, "Decay of the reward moving average.", lower_bound=0.0, upper_bound=0.999999, **on
    )
    flags.DEFINE_float("entropy_weight", 0.0, "Weight of the entropy bonus (0: off).", lower_bound=0.0, **on)
    flags.DEFINE_float("temperature", None, "Divide controller logits by this (unset: off).", lower_bound=1e-6, **on)
    flags.DEFINE_float("tanh_constant", None, "Logits -> C*tanh(logits) (unset: off).", lower_bound=1e-6, **on)
    flags.DEFINE_integer("archs_per_step", 4, "Archs per step (REINFORCE, PPO, random).", lower_bound=1, **on)
    flags.DEFINE_float("ppo_clip", 0.2, "PPO: clipping range of the ratio.", lower_bound=1e-6, upper_bound=0.999, **on)
    flags.DEFINE_integer("ppo_epochs", 4, "PPO: optimisation epochs per batch.", lower_bound=1, **on)
    flags.DEFINE_integer("population_size", 50, "Evolution: population P.", lower_bound=1, **on)
    flags.DEFINE_integer("sample_size", 10, "Evolution: tournament size S.", lower_bound=1, **on)
    flags.DEFINE_string("output", os.path.join(REPO, "docs", "benchmarks.md"), "Markdown to update ('': none).", **on)
    flags.DEFINE_string("plot", os.path.join(REPO, "docs", "images", "nb201_search.png"), "PNG ('': none).", **on)
    flags.DEFINE_string("section", "nb201", "Section of --output to write.", **on)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_variant(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME=ALGORITHM[:key=value;...]`` -> ``(name, algorithm, options)``; values are JSON or strings."""
    name, sep, rest = spec.partition("=")
    algorithm, _, settings = rest.partition(":")
    if not sep or not name or algorithm not in ALGORITHMS:
        raise ValueError(
            f"--variant: expected NAME=ALGORITHM[:key=value;...] with ALGORITHM in {', '.join(ALGORITHMS)}, "
            f"got {spec!r}"
        )
    options = {}
    for item in filter(None, settings.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--variant {name}: expected key=value, got {item!r}")
        options[key.strip()] = _value(value.strip())
    return name, algorithm, options


def searcher_settings(fv: flags.FlagValues) -> dict[str, tuple[dict[str, Any], int]]:
    """``{algorithm: (make_searcher options, archs per step)}`` from the flags."""
    controller = dict(
        lstm_units=fv.controller_units,
        lstm_layers=fv.controller_layers,
        init_range=fv.controller_init_range,
        temperature=fv.temperature,
        tanh_constant=fv.tanh_constant,
        learning_rate=fv.controller_lr,
        baseline_decay=fv.baseline_decay,
        entropy_weight=fv.entropy_weight,
    )
    return {
        "random": ({}, fv.archs_per_step),
        "evolution": (dict(population_size=fv.population_size, sample_size=fv.sample_size), 1),
        "reinforce": (controller, fv.archs_per_step),
        "ppo": ({**controller, "clip_epsilon": fv.ppo_clip, "epochs": fv.ppo_epochs}, fv.archs_per_step),
    }


def plan(fv: flags.FlagValues) -> dict[str, tuple[str, dict[str, Any], int]]:
    """``{name: (algorithm, options, batch)}`` of every compared searcher (flag errors name the flag)."""
    settings = searcher_settings(fv)
    variants = {}
    for spec in fv.variant:
        name, algorithm, options = parse_variant(spec)
        base, batch = settings[algorithm]
        batch = int(options.pop("archs_per_step", batch))
        variants[name] = (algorithm, {**base, **options}, batch)
    out = {}
    for name in fv.algorithms:
        if name in variants:
            out[name] = variants[name]
        elif name in ALGORITHMS:
            out[name] = (name, *settings[name])
        else:
            known = f"algorithms: {', '.join(ALGORITHMS)}; variants: {', '.join(variants) or 'none'}"
            raise ValueError(f"--algorithms: unknown {name!r} ({known})")
    if fv.sample_size > fv.population_size and any(a == "evolution" for a, _, _ in out.values()):
        raise ValueError(f"--sample_size={fv.sample_size} must be <= --population_size={fv.population_size}")
    return out


def run_algorithm(algorithm, options, batch, seeds, lookup, budget):
    """Best-so-far curves ``[len(seeds), budget]`` of one searcher, and the wall time."""
    from nas_tf.benchmarks import best_so_far, run_on_table
    from nas_tf.controller import SearcherPool

    pool = SearcherPool(algorithm, lookup.decisions, **options)
    start = time.perf_counter()
    curves = np.stack([best_so_far(run_on_table(pool.get(seed), lookup, budget, batch)) for seed in seeds])
    return curves, time.perf_counter() - start


def plot_curves(path, results, optimum, budget):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
    x = np.arange(1, budget + 1)
    lows = []
    for name, r in results.items():
        curves = r["curves"]
        mean = curves.mean(axis=0)
        se = curves.std(axis=0, ddof=1) / np.sqrt(curves.shape[0]) if curves.shape[0] > 1 else np.zeros_like(mean)
        ax.plot(x, mean, label=name, lw=1.5)
        ax.fill_between(x, mean - 1.96 * se, mean + 1.96 * se, alpha=0.25)
        lows.append(mean[min(budget, 20) - 1])
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"table optimum {optimum:.2f}")
    ax.set_xscale("log")
    ax.set_xlim(min(5, budget), budget)
    ax.set_ylim(min(lows) - 0.3, optimum + 0.15)
    ax.set_xlabel("table queries")
    ax.set_ylabel("best CIFAR-10 test accuracy found (%)")
    ax.set_title(f"NAS-Bench-201: mean of {next(iter(results.values()))['curves'].shape[0]} runs, 95% band")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def report(results, plan_, table, optimum, best_cell, seeds, budget, marks, plot_rel) -> str:
    from nas_tf.benchmarks import summarize
    from nas_tf.utils.report import machine_description, markdown_table

    rows = []
    for name, r in results.items():
        s = summarize(r["curves"], marks, optimum)
        row = [name] + [f"{s[m]['mean']:.2f} ± {s[m]['std']:.2f}" for m in marks]
        row += [f"{s[marks[-1]]['regret']:.2f}", f"{r['time']:.0f}"]
        rows.append(row)
        r["summary"] = s
    headers = ["algorithm"] + [f"best after {m}" for m in marks] + [f"regret after {marks[-1]}", "seconds"]
    lines = [
        "## NAS-Bench-201: search algorithms against the table (`scripts/bench_nb201.py`)",
        "",
        f"Table: {table.describe().get('source_kind')} {table.describe().get('version') or ''} "
        f"({len(table)} cells, CIFAR-10 test accuracy after 200 epochs; optimum {optimum:.2f} % for `{best_cell}`). "
        f"Each algorithm runs {len(seeds)} times (seeds {seeds[0]}..{seeds[-1]}), {budget} queries each; every "
        "proposal is a query (repeats included) and its reward is accuracy / 100. Best test accuracy found "
        "(%, mean ± standard deviation over the runs); regret = table optimum − mean best; "
        f"{machine_description()}; {sum(r['time'] for r in results.values()):.0f} s of searching in all.",
        "",
        markdown_table(headers, rows),
        "",
    ]
    m = marks[-1]
    if "random" in results:
        ref = results["random"]["summary"][m]
        comp = []
        for name, r in results.items():
            if name == "random":
                continue
            s = r["summary"][m]
            diff, se = s["mean"] - ref["mean"], float(np.hypot(s["se"], ref["se"]))
            comp.append([name, f"{diff:+.3f}", f"{se:.3f}", f"{diff / se:+.1f}" if se > 0 else "n/a"])
        if comp:
            lines += [
                f"Against random search after {m} queries (difference of the mean best accuracies, its standard "
                "error sqrt(se_a² + se_random²), and their ratio):",
                "",
                markdown_table(["algorithm", "difference (points)", "standard error", "ratio"], comp),
                "",
            ]
    settings = []
    for name, (algorithm, options, batch) in plan_.items():
        opts = ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)
        settings.append(f"- {name}: `{algorithm}`, {batch} arch(s) per step" + (f", {opts}" if opts else ""))
    lines += ["Settings:", "", *settings, ""]
    published = "REA 93.92 ± 0.30, REINFORCE 93.85 ± 0.37, random 93.70 ± 0.36, optimum 94.37"
    ours = ", ".join(f"{name} {r['summary'][m]['regret']:.2f}" for name, r in results.items())
    lines += [
        f"Published for reference (NAS-Bench-201 paper, CIFAR-10 test, as quoted in issue #14; not checked "
        f"against the paper text here): {published}, i.e. regrets REA 0.45, REINFORCE 0.52, random 0.67; "
        f"regrets here after {m} queries: {ours}. The published runs used the NAS-Bench-201 records and the "
        "paper's search protocol; the table here is analog-nasbench's retraining (another optimum) and the "
        "reward is the reported test accuracy itself (no proxy between what is searched and what is reported), "
        "so compare regrets, and only loosely.",
        "",
    ]
    if plot_rel:
        lines += [f"![NAS-Bench-201 search curves]({plot_rel})", ""]
    return "\n".join(lines)


def run(fv: flags.FlagValues, argv: list[str]) -> str:
    """Runs the benchmark with the parsed flags ``fv``; returns the report (``argv``: the recorded command)."""
    if fv.tiny:
        fv.seeds, fv.budget, fv.marks = 2, 12, ["5", "12"]
    try:
        marks = sorted({int(m) for m in fv.marks if 0 < int(m) <= fv.budget} | {fv.budget})
    except ValueError:
        raise app.UsageError(f"--marks must be positive integers, got {fv.marks}") from None
    try:
        plan_ = plan(fv)
    except ValueError as e:
        raise app.UsageError(str(e)) from None

    from nas_tf.benchmarks import TokenLookup, nb201

    table = nb201(benchmark_dir=fv.benchmark_dir) if fv.benchmark_dir else nb201(fv.benchmark)
    start = time.perf_counter()
    lookup = TokenLookup(table)
    optimum = lookup.optimum()
    best_cell = table.space.from_tokens(np.unravel_index(int(np.argmax(lookup.values)), lookup.dims)).cell
    seconds = time.perf_counter() - start
    print(f"table: {len(table)} cells, optimum {optimum:.3f} ({best_cell}); lookup built in {seconds:.1f}s")
    seeds = list(range(fv.seed_offset, fv.seed_offset + fv.seeds))
    results = {}
    for name, (algorithm, options, batch) in plan_.items():
        curves, seconds = run_algorithm(algorithm, options, batch, seeds, lookup, fv.budget)
        results[name] = {"curves": curves, "time": seconds}
        final = curves[:, -1]
        spread = final.std(ddof=1) if len(final) > 1 else 0.0
        print(f"{name:>20}: best after {fv.budget}: {final.mean():.3f} ± {spread:.3f} "
              f"(regret {optimum - final.mean():.3f}) in {seconds:.0f}s", flush=True)
    command = "python scripts/bench_nb201.py " + " ".join(argv[1:])
    plot_rel = None
    if fv.plot:
        plot_curves(fv.plot, results, optimum, fv.budget)
        if fv.output:
            plot_rel = os.path.relpath(os.path.abspath(fv.plot), os.path.dirname(os.path.abspath(fv.output)))
    text = report(results, plan_, table, optimum, best_cell, seeds, fv.budget, marks, plot_rel)
    print(text)
    if fv.output:
        from nas_tf.utils.report import update_section

        update_section(fv.output, fv.section, text, command=command.strip())
    return text


def main(argv):
    run(flags.FLAGS, sys.argv)


if __name__ == "__main__":
    define_flags()
    app.run(main)
