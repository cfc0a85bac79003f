"""Copy memory: which cell types can hold symbols across T blank steps, as T grows?

The standard task (Arjovsky, Shah and Bengio 2016): read 10 symbols from 8 classes,
wait T steps, recall them after a delimiter; the memoryless strategy scores a
cross-entropy of 10 ln 8 / (T + 20) per step. And the long copy
(`rnnjax.tasks.copy_memory.LONG_COPY`): 40 symbols recalled after T = 20 steps, 100
steps in all, the delimiter at step 60, targets the data shifted by 60 (memoryless
40 ln 8 / 100). Every cell type trains over several seeds at once;
the report gives the loss relative to the baseline per cell and T, the recall
accuracy, and the gradient flow before and after training.

    python -m experiments.copy_memory --quick          # a few minutes on a CPU
    python -m experiments.copy_memory --cells lstm,gru --lengths 100 --chrono 150

Writes results/copy_memory/{results.json, report.md, training.png, grad_flow.png};
every run (form x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_studies as ms

NAME = "copy_memory"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=10000, lengths=[50, 100, 200, 500], long_copy=1, chrono=0.0,
                hidden=128, batch=128, lr=1e-3, clip=1.0, eval_every=250,
                checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=400, cells=["tanh", "lstm", "gru"], lengths=[5, 10],
             long_copy=0, hidden=32, batch=32, lr=5e-3, eval_every=50,
             checkpoint_every=400, workers=2)
#: the cells that take a `chrono` option
CHRONO_CELLS = ("lstm", "peephole", "gru")


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--lengths", type=common.comma_list(common.positive_int),
                        help="blank steps T of the standard form, comma-separated")
    parser.add_argument("--long-copy", dest="long_copy", type=int, choices=(0, 1),
                        help="1: also run the long copy (40 symbols after 20 steps)")
    parser.add_argument("--chrono", type=float,
                        help="chrono initialisation T_max of the LSTMs and the GRU (0: off)")


def forms(args) -> list[ms.Problem]:
    problems = [ms.copy_memory(t) for t in args.lengths]
    return problems + ([ms.long_copy_memory()] if args.long_copy else [])


def options(cell: str, args) -> dict:
    chrono = args.chrono and cell in CHRONO_CELLS
    return {"cell_options": {"chrono": args.chrono}} if chrono else {}


def report(results: dict, problems: list[ms.Problem], args) -> str:
    rows = []
    for problem in problems:
        for cell in args.cells:
            r = results[f"{problem.label}/{cell}"]
            ratio = np.asarray(r["final"]["loss"]) / problem.baseline
            rows.append([problem.label, r["cell_class"], f"{problem.baseline:.4f}",
                         common.spread(r["final"]["loss"]), common.spread(ratio, 2),
                         common.spread(r["final"]["recall"], 2), ms.learned_count(r),
                         ms.rate(r["grad_rate_init"]),
                         ms.rate(r["grad_rate_trained"])])
    chrono = (f"; chrono initialisation T_max = {args.chrono} for "
              f"{', '.join(c for c in args.cells if c in CHRONO_CELLS)}" if args.chrono else "")
    return "\n".join([
        "# Copy memory as the delay grows", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps{chrono}.", "",
        f"Test cross-entropy per step on {ms.TEST_SIZE} held-out sequences; baseline: the "
        "memoryless strategy, copy_length ln 8 / (T + 2 copy_length); relative: loss / "
        f"baseline; learned: below {ms.LEARNED_FRACTION} x baseline; recall: accuracy on "
        "the recalled symbols (chance 0.125). Every seed counts, including those that "
        "failed to learn.", "",
        common.markdown_table(["task", "cell", "baseline", "loss: median (range)",
                               "relative", "recall", "learned", "rate, init",
                               "rate, trained"], rows), "",
        ms.GRADIENT_NOTE, "",
        "Plots: training.png (test loss per form), grad_flow.png.", ""])


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=common.check_cells)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = forms(args)
    units = [(f"{problem.label}/{cell}", problem, cell, options(cell, args))
             for problem in problems for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, problems, args.cells, args.out)
    common.write_results(args, {"baselines": {t.label: t.baseline for t in problems},
                                "results": results}, report(results, problems, args))
    return results


if __name__ == "__main__":
    main()
