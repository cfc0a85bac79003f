"""Compare every cell type on the lectures' memory tasks: which cell learns which
dependency, and what its gradient flow shows.

For every task (echo, double dependency, copy memory in the standard and the
lectures' form, the adding problem) and every cell type, several seeds train at
once (one compiled step, vmapped over seeds) with Adam and global-norm clipping;
the test metric is tracked against the task's no-memory baseline and its optimum,
and the gradient-flow probe (||dL/dh_k|| of the last step's loss) runs at
initialisation and after training, so that a reader sees why a cell failed.

    python -m experiments.compare_cells --quick     # a few minutes on a CPU
    python -m experiments.compare_cells             # the sizes papers report (GPU)

Writes results/compare_cells/{results.json, report.md, training.png,
grad_flow.png}; each run (task x cell) checkpoints to its own folder, so a rerun of
the same command resumes where it stopped. The per-task studies (echo,
double_dependency, copy_memory, adding) sweep each task's difficulty.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_tasks as mt

NAME = "compare_cells"
TASKS = ["echo", "double_dependency", "copy", "lectures_copy", "adding"]
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=10000, tasks=TASKS, hidden=128, batch=128, lr=1e-3, clip=1.0,
                echo_delay=32, dependency_length=100, copy_length=100, adding_length=200,
                eval_every=250, checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=300, hidden=32, batch=32, lr=5e-3, echo_delay=5,
             dependency_length=40, copy_length=10, adding_length=30, eval_every=50,
             checkpoint_every=300, workers=2)


def add_arguments(parser):
    mt.add_arguments(parser)
    parser.add_argument("--tasks", type=lambda s: s.split(","),
                        help=f"comma-separated tasks, of {','.join(TASKS)}")
    parser.add_argument("--echo-delay", dest="echo_delay", type=int,
                        help="delay k of the echo task")
    parser.add_argument("--dependency-length", dest="dependency_length", type=int,
                        help="sequence length of the double-dependency task")
    parser.add_argument("--copy-length", dest="copy_length", type=int,
                        help="blank steps T of the standard copy task")
    parser.add_argument("--adding-length", dest="adding_length", type=int,
                        help="sequence length T of the adding problem")


def tasks(args) -> list[mt.Task]:
    makers = {"echo": lambda: mt.echo(args.echo_delay),
              "double_dependency": lambda: mt.double_dependency(args.dependency_length),
              "copy": lambda: mt.copy_memory(args.copy_length),
              "lectures_copy": mt.lectures_copy_memory,
              "adding": lambda: mt.adding(args.adding_length)}
    unknown = sorted(set(args.tasks) - set(makers))
    if unknown:
        raise ValueError(f"--tasks must be among {TASKS}, got {unknown}")
    return [makers[name]() for name in args.tasks]


def overview(results: dict, chosen: list, args) -> str:
    """One row per task, one column per cell: median metric and seeds learned."""
    rows = []
    for task in chosen:
        row = [task.label, task.metric, f"{task.baseline:.4g}", f"{task.optimum:.4g}"]
        for cell in args.cells:
            r = results[f"{task.label}/{cell}"]
            row.append(f"{np.median(r['final'][task.metric]):.3g} ({mt.learned_count(r)})")
        rows.append(row)
    header = ["task", "metric", "no memory", "optimum"] + [mt.cell_label(c) for c in args.cells]
    return common.markdown_table(header, rows)


def report(results: dict, chosen: list, args) -> str:
    lines = [
        "# Cell types compared on the memory tasks", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell (initialisations; the same "
        f"batches); Adam lr {args.lr}, global-norm clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps; test metrics on {mt.TEST_SIZE} held-out sequences.", "",
        "## Overview", "",
        "Median test metric over seeds (seeds that learned / seeds). `no memory`: what a "
        "model that ignores the past scores; `optimum`: the best possible (expected).", "",
        overview(results, chosen, args), "",
        mt.GRADIENT_NOTE, "",
    ]
    for task in chosen:
        rows = [mt.detail_row(results[f"{task.label}/{cell}"]) for cell in args.cells]
        lines += [f"## {task.label}", "",
                  f"Test {task.metric}; no memory {task.baseline:.4g}, optimum "
                  f"{task.optimum:.4g}; learned: {task.criterion()}. Every seed counts, "
                  "including those that failed to learn.", "",
                  common.markdown_table(mt.DETAIL_HEADER, rows), ""]
    lines += ["Plots: training.png (test metric per task; median, band: min-max over seeds), "
              "grad_flow.png (gradient flow per task at initialisation, dashed, and after "
              "training, solid); each run's logged metrics in <task>/<cell>/metrics.jsonl "
              "(`rnnjax.train.plot_metrics(folder)` draws them).", ""]
    return "\n".join(lines)


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments)
    mt.check_cells(args)
    chosen = tasks(args)
    args.out.mkdir(parents=True, exist_ok=True)
    units = [(f"{task.label}/{cell}", task, cell, {}) for task in chosen
             for cell in args.cells]
    results = mt.run_all(units, args)
    mt.plot_tasks(results, chosen, args.cells, args.out)
    common.write_results(args, {"tasks": [t.label for t in chosen],
                                "results": results}, report(results, chosen, args))
    return results


if __name__ == "__main__":
    main()
