"""Compare every cell type on the memory tasks: which cell learns which
dependency, and what its gradient flow shows.

For every task (echo, double dependency, copy memory in the standard form and the
long copy of 40 symbols, the adding problem) and every cell type, several seeds train at
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
from experiments import memory_studies as ms

NAME = "compare_cells"
TASKS = ["echo", "double_dependency", "copy", "long_copy", "adding"]
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=10000, tasks=TASKS, hidden=128, batch=128, lr=1e-3, clip=1.0,
                echo_delay=32, dependency_length=100, copy_length=100, adding_length=200,
                eval_every=250, checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=300, hidden=32, batch=32, lr=5e-3, echo_delay=5,
             dependency_length=40, copy_length=10, adding_length=30, eval_every=50,
             checkpoint_every=300, workers=2)


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
    parser.add_argument("--adding-length", dest="adding_length", type=common.positive_int,
                        help="sequence length T of the adding problem")


def problems(args) -> list[ms.Problem]:
    makers = {"echo": lambda: ms.echo(args.echo_delay),
              "double_dependency": lambda: ms.double_dependency(args.dependency_length),
              "copy": lambda: ms.copy_memory(args.copy_length),
              "long_copy": ms.long_copy_memory,
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


def report(results: dict, chosen: list, args) -> str:
    lines = [
        "# Cell types compared on the memory tasks", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell (initialisations; the same "
        f"batches); Adam lr {args.lr}, global-norm clip {args.clip}, batch {args.batch}, "
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
              "training, solid); each run's logged metrics in <task>/<cell>/metrics.jsonl "
              "(`rnnjax.train.plot_metrics(folder)` draws them).", ""]
    return "\n".join(lines)


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=common.check_cells)
    chosen = problems(args)
    args.out.mkdir(parents=True, exist_ok=True)
    units = [(f"{problem.label}/{cell}", problem, cell, {}) for problem in chosen
             for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, chosen, args.cells, args.out)
    common.write_results(args, {"tasks": [t.label for t in chosen],
                                "results": results}, report(results, chosen, args))
    return results


if __name__ == "__main__":
    main()
