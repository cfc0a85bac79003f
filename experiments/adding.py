"""The adding problem as T grows: which cells carry a marked value across T steps?

Inputs are pairs (value ~ U(0, 1), marker); two steps are marked, one in each half,
and the target is the sum of their values, read from the final state (Hochreiter
and Schmidhuber 1997; Le et al. 2015). Always predicting 1 scores an MSE of 1/6.

    python -m experiments.adding --quick            # a few minutes on a CPU
    python -m experiments.adding --cells lstm,gru --lengths 200

Writes results/adding/{results.json, report.md, training.png, grad_flow.png};
every run (T x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_studies as ms

NAME = "adding"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=10000, lengths=[50, 100, 200, 400], hidden=128, batch=128, lr=1e-3,
                clip=1.0, eval_every=250, checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=400, cells=["tanh", "irnn", "lstm", "gru"], lengths=[10, 30],
             hidden=32, batch=32, lr=5e-3, eval_every=50, checkpoint_every=400, workers=2)


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--lengths", type=common.comma_list(common.positive_int),
                        help="sequence lengths T, comma-separated")


def report(results: dict, problems: list[ms.Problem], args) -> str:
    rows = []
    for problem in problems:
        for cell in args.cells:
            r = results[f"{problem.label}/{cell}"]
            ratio = np.asarray(r["final"]["mse"]) / problem.baseline
            rows.append([problem.label, r["cell_class"], common.spread(r["final"]["mse"]),
                         common.spread(ratio, 2), ms.learned_count(r),
                         ms.rate(r["grad_rate_init"]),
                         ms.half_life(r["half_life_init"]),
                         ms.rate(r["grad_rate_trained"])])
    return "\n".join([
        "# The adding problem as T grows", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps.", "",
        f"Test MSE on {ms.TEST_SIZE} held-out sequences; baseline (always predict 1) 1/6; "
        f"relative: MSE / baseline; learned: below {ms.LEARNED_FRACTION} x baseline. Every "
        "seed counts, including those that failed to learn.", "",
        common.markdown_table(["task", "cell", "MSE: median (range)", "relative", "learned",
                               "rate, init", "half-life, init", "rate, trained"], rows), "",
        ms.GRADIENT_NOTE, "", "Plots: training.png, grad_flow.png.", ""])


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=common.check_cells)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = [ms.adding(t) for t in args.lengths]
    units = [(f"{problem.label}/{cell}", problem, cell, {}) for problem in problems
             for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, problems, args.cells, args.out)
    common.write_results(args, {"results": results}, report(results, problems, args))
    return results


if __name__ == "__main__":
    main()
