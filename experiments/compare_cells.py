"""Compare every cell type on the memory tasks: which cell learns which
dependency, and what its gradient flow shows.

For every task (echo, double dependency, copy memory in the standard form and the
long copy of 40 symbols, the adding problem) and every cell type, several seeds train at
once (one compiled step, vmapped over seeds) with Adam and global-norm clipping;
the test metric is tracked against the task's no-memory baseline and its optimum,
and the gradient-flow probe (||dL/dh_k|| of the last step's loss) runs at
initialisation and after training, so that a reader sees why a cell failed.

    python -m experiments.compare_cells --quick     # two minutes on a 2-core CPU
    python -m experiments.compare_cells             # the sizes papers report (GPU)

`--quick` is sized so that every task separates the cells: four cells (tanh RNN,
IRNN, LSTM, GRU) on echo at delay 10, the double dependency, copy memory of one symbol
over 20 steps and adding over 50, 1000 steps each. The report opens with sentences
generated from the numbers (`summary`): who learned which task in every seed, who
failed, and their gradient half-lives after training.

Writes results/compare_cells/{results.json, report.md, training.png, grad_flow.png,
half_life.png}; each run (task x cell) checkpoints to its own folder, so a rerun of
the same command resumes where it stopped. The per-task studies (echo,
double_dependency, copy_memory, adding) sweep each task's difficulty.
"""

from __future__ import annotations

import math

import numpy as np

from experiments import common
from experiments import memory_studies as ms
from rnnjax.tasks.copy_memory import LONG_COPY

NAME = "compare_cells"
TASKS = ["echo", "double_dependency", "copy", "long_copy", "adding"]
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=10000, tasks=TASKS, hidden=128, batch=128, lr=1e-3, lr_decay=1.0,
                clip=1.0, echo_delay=32, dependency_length=100, copy_length=100,
                copy_symbols=10, long_copy_length=LONG_COPY["steps"],
                long_copy_symbols=LONG_COPY["copy_length"], adding_length=200,
                eval_every=250, checkpoint_every=1000, workers=1)
#: two minutes on a 2-core CPU, sized so that on every task at least one cell learns
#: and one fails: four cells, and no long copy (its 40 symbols need the full size)
QUICK = dict(cells=["tanh", "irnn", "lstm", "gru"], seeds=2, steps=1000,
             tasks=["echo", "double_dependency", "copy", "adding"], hidden=32, batch=32,
             lr=5e-3, lr_decay=0.1, echo_delay=10, dependency_length=40, copy_length=20,
             copy_symbols=1, adding_length=50, eval_every=100, checkpoint_every=1000,
             workers=2)


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--tasks", type=common.names_among(TASKS),
                        help=f"comma-separated tasks, of {','.join(TASKS)}")
    parser.add_argument("--echo-delay", dest="echo_delay", type=common.positive_int,
                        help="delay k of the echo task")
    parser.add_argument("--dependency-length", dest="dependency_length", type=common.positive_int,
                        help="sequence length of the double-dependency task")
    parser.add_argument("--copy-length", dest="copy_length", type=common.positive_int,
                        help="blank steps T of the standard copy task")
    parser.add_argument("--copy-symbols", dest="copy_symbols", type=common.positive_int,
                        help="symbols to recall in the standard copy task")
    parser.add_argument("--long-copy-length", dest="long_copy_length", type=common.positive_int,
                        help="blank steps T of the long copy")
    parser.add_argument("--long-copy-symbols", dest="long_copy_symbols",
                        type=common.positive_int, help="symbols to recall in the long copy")
    parser.add_argument("--adding-length", dest="adding_length", type=common.positive_int,
                        help="sequence length T of the adding problem")


def problems(args) -> list[ms.Problem]:
    makers = {"echo": lambda: ms.echo(args.echo_delay),
              "double_dependency": lambda: ms.double_dependency(args.dependency_length),
              "copy": lambda: ms.copy_memory(args.copy_length, args.copy_symbols),
              "long_copy": lambda: ms.copy_memory(args.long_copy_length,
                                                  args.long_copy_symbols),
              "adding": lambda: ms.adding(args.adding_length)}
    return [makers[name]() for name in args.tasks]


def overview(results: dict, chosen: list, args) -> str:
    """One row per task, one column per cell: median metric and seeds learned."""
    rows = []
    for problem in chosen:
        row = [problem.label, problem.metric, f"{problem.baseline:.4g}",
               f"{problem.optimum:.4g}"]
        for cell in args.cells:
            r = results[f"{problem.label}/{cell}"]
            row.append(f"{np.median(r['final'][problem.metric]):.3g} ({ms.learned_count(r)})")
        rows.append(row)
    header = (["task", "metric", "no memory", "optimum"]
              + [common.cell_label(c) for c in args.cells])
    return common.markdown_table(header, rows)


# -- the summary: sentences generated from results.json ----------------------------------
def _names(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _half_life(values) -> float:
    """The median over seeds of half-lives (inf: no decay)."""
    return float(np.median(np.asarray(values, np.float64)))


def _steps(value: float) -> str:
    return "no decay" if not math.isfinite(value) else f"{value:.3g} steps"


def summary(saved: dict) -> list[str]:
    """The report's opening, generated from the numbers in results.json (`saved`): a
    paragraph on whether every task separated the cells and which cell learned the
    most, then per task who learned it in every seed, who failed in every seed, and
    the gradient half-lives after training (median over seeds) of both groups."""
    tasks = saved["tasks"]
    runs = {t: [r for r in saved["results"].values() if r["task"] == t] for t in tasks}
    all_seeds = lambda r: all(r["learned"])
    no_seed = lambda r: not any(r["learned"])
    who = lambda group: _names([r["cell_class"] for r in group])
    life = lambda r: _half_life(r["half_life_trained"])
    lives = lambda group: _names([f"{r['cell_class']} {_steps(life(r))}" for r in group])

    unsplit = [t for t in tasks
               if not (any(map(all_seeds, runs[t])) and any(map(no_seed, runs[t])))]
    opening = ("Every task separated the cells: on each, at least one cell learned in "
               "every seed and at least one failed in every seed." if not unsplit else
               f"Not every task separated the cells: on {_names(unsplit)}, no cell learned "
               "in every seed while another failed in every seed.")
    cells = list(dict.fromkeys(r["cell_class"] for t in tasks for r in runs[t]))
    wins = {c: sum(all_seeds(r) for t in tasks for r in runs[t] if r["cell_class"] == c)
            for c in cells}
    most = max(wins.values())
    count = "every task" if most == len(tasks) else f"{most} of the {len(tasks)} tasks"
    opening += (f" {_names([c for c in cells if wins[c] == most])} learned {count} in every "
                "seed, the most of any cell.")
    lines = [opening, ""]
    for task in tasks:
        span = runs[task][0]["span"]
        good = [r for r in runs[task] if all_seeds(r)]
        bad = [r for r in runs[task] if no_seed(r)]
        parts = [f"learned by {who(good)} in every seed" if good
                 else "learned by no cell in every seed"]
        parts += [f"failed by {who(bad)} in every seed"] if bad else []
        parts += [f"learned by {r['cell_class']} in {sum(r['learned'])} of "
                  f"{len(r['learned'])} seeds" for r in runs[task] if r not in good + bad]
        text = f"- **{task}** (an input needed up to {span} steps later): {'; '.join(parts)}."
        if good and bad:
            text += (f" Gradient half-life after training: {lives(good)} where learned; "
                     f"{lives(bad)} where failed.")
            shortest = min(map(life, good))
            for r in bad:
                if life(r) < min(shortest, span):
                    text += (f" {r['cell_class']}'s gradient from {span} steps back is "
                             f"{2.0 ** (-span / life(r)):.1g} of the last step's.")
            long_failures = [r for r in bad if life(r) >= shortest]
            text += (" Every cell that learned kept a longer half-life than every cell that "
                     "failed." if not long_failures else
                     f" {who(long_failures)} failed with a half-life as long as a learner's: "
                     "a slow decay was not enough.")
        lines.append(text)
    return lines


def report(results: dict, chosen: list, args) -> str:
    saved = {"tasks": [p.label for p in chosen], "results": results}
    decay = (f" (cosine decay to {args.lr_decay} x over the steps)"
             if args.lr_decay != 1 else "")
    lines = [
        "# Cell types compared on the memory tasks", "",
        "## What this run shows", "",
        *summary(saved), "",
        "(Written by the study from the numbers in results.json: the tables below hold "
        "them; half_life.png draws each seed's half-life after training against its test "
        "metric.)", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell (initialisations; the same "
        f"batches); Adam lr {args.lr}{decay}, global-norm clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps; test metrics on {ms.TEST_SIZE} held-out sequences.", "",
        "## Overview", "",
        "Median test metric over seeds (seeds that learned / seeds). `no memory`: what a "
        "model that ignores the past scores; `optimum`: the best possible (expected).", "",
        overview(results, chosen, args), "",
        ms.GRADIENT_NOTE, "",
    ]
    for problem in chosen:
        rows = [ms.detail_row(results[f"{problem.label}/{cell}"]) for cell in args.cells]
        lines += [f"## {problem.label}", "",
                  f"Test {problem.metric}; no memory {problem.baseline:.4g}, optimum "
                  f"{problem.optimum:.4g}; learned: {problem.criterion()}. Every seed counts, "
                  "including those that failed to learn.", "",
                  common.markdown_table(ms.DETAIL_HEADER, rows), ""]
    lines += ["Plots: training.png (test metric per task; median, band: min-max over seeds), "
              "grad_flow.png (gradient flow per task at initialisation, dashed, and after "
              "training, solid), half_life.png (per task, each seed's gradient half-life "
              "after training against its test metric; filled: learned); each run's logged "
              "metrics in <task>/<cell>/metrics.jsonl (`rnnjax.train.plot_metrics(folder)` "
              "draws them).", ""]
    return "\n".join(lines)


def plot_half_lives(results: dict, chosen: list, cells: list[str], path) -> None:
    """One panel per task: each seed's gradient half-life after training (x, log; no
    decay at the right edge) against its final test metric (y), a colour per cell,
    filled where the seed learned; the learned level (dashed) and the task's span
    (dotted)."""
    plt = common.pyplot()
    finite = [h for r in results.values() for h in r["half_life_trained"] if math.isfinite(h)]
    edge = 10 ** math.ceil(math.log10(max(finite + [10.0]) * 3))   # where 'no decay' sits
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.5 * len(chosen), 4), squeeze=False)
    for ax, problem in zip(axes[0], chosen):
        for i, cell in enumerate(cells):
            r = results[f"{problem.label}/{cell}"]
            x = np.minimum(np.asarray(r["half_life_trained"], np.float64), edge)
            y = np.asarray(r["final"][problem.metric], np.float64)
            learned = np.asarray(r["learned"])
            label = r["cell_class"]   # once per cell, on the filled marks where any
            ax.scatter(x[learned], y[learned], color=f"C{i}",
                       label=label if learned.any() else None)
            ax.scatter(x[~learned], y[~learned], facecolors="none", edgecolors=f"C{i}",
                       label=None if learned.any() else label)
        ax.axhline(problem.threshold, color="k", ls="--", lw=1, label="learned level")
        ax.axvline(problem.span, color="k", ls=":", lw=1, label="task span")
        ax.set_xscale("log")
        ax.set_xlim(right=edge * 1.5)
        ticks = [t for t in ax.get_xticks() if t < edge / 2] + [edge]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks[:-1]] + ["no decay"])
        ax.set_xlim(right=edge * 1.5)
        if not problem.higher_is_better and problem.optimum == 0:
            ax.set_yscale("log")
        ax.set(xlabel="gradient half-life after training (steps)",
               ylabel=f"test {problem.metric}", title=problem.label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, title="filled: learned", title_fontsize=8)
    common.save_figure(fig, path)


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=common.check_cells)
    chosen = problems(args)
    args.out.mkdir(parents=True, exist_ok=True)
    units = [(f"{problem.label}/{cell}", problem, cell, {}) for problem in chosen
             for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, chosen, args.cells, args.out)
    plot_half_lives(results, chosen, args.cells, args.out / "half_life.png")
    common.write_results(args, {"tasks": [t.label for t in chosen],
                                "results": results}, report(results, chosen, args))
    return results


if __name__ == "__main__":
    main()
