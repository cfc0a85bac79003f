"""Echo: how long a delay can each cell bridge? y_t = x_(t-k) for random bits.

Every cell type trains at each delay k over several seeds at once; the report gives
the accuracy on the echoed steps per cell and k (chance 1/2), the largest delay each
cell learns (accuracy >= 0.95 for most seeds), and the gradient flow.

    python -m experiments.echo --quick            # a few minutes on a CPU
    python -m experiments.echo --cells lstm,gru --delays 1,2,4,8,16,32,64,128

Writes results/echo/{results.json, report.md, training.png, grad_flow.png,
accuracy.png}; every run (delay x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_studies as ms

NAME = "echo"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, delays=[1, 2, 4, 8, 16, 32, 64, 128], scored=50, hidden=64,
                batch=64, lr=2e-3, clip=1.0, eval_every=250, checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=300, cells=["tanh", "lstm", "gru"], delays=[1, 4, 16], scored=20,
             hidden=16, batch=32, lr=5e-3, eval_every=50, checkpoint_every=300, workers=2)


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--delays", type=common.comma_list(common.positive_int),
                        help="delays k, comma-separated")
    parser.add_argument("--scored", type=common.positive_int,
                        help="scored steps per sequence (sequences have k + scored steps)")


def largest_learned(results: dict, cell: str, delays: list[int]):
    """The largest delay at which most seeds learned, or None."""
    learned = [k for k in delays if 2 * sum(results[f"echo k={k}/{cell}"]["learned"])
               > len(results[f"echo k={k}/{cell}"]["learned"])]
    return max(learned) if learned else None


def report(results: dict, args) -> str:
    rows = [[common.cell_label(cell)]
            + [f"{np.median(results[f'echo k={k}/{cell}']['final']['accuracy']):.3f} "
               f"({ms.learned_count(results[f'echo k={k}/{cell}'])})" for k in args.delays]
            + [str(largest_learned(results, cell, args.delays) or "-")]
            for cell in args.cells]
    rates = [[common.cell_label(cell)]
             + [ms.rate(results[f"echo k={k}/{cell}"]["grad_rate_trained"])
                for k in args.delays] for cell in args.cells]
    return "\n".join([
        "# Echo: the largest delay each cell bridges", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps; sequences of "
        f"k + {args.scored} steps.", "",
        f"Test accuracy on the echoed steps (t >= k) of {ms.TEST_SIZE} held-out sequences, "
        f"median over seeds (seeds learned / seeds; learned: accuracy >= "
        f"{ms.ECHO_LEARNED_ACCURACY}); chance is 0.5. Largest: the largest delay most seeds "
        "learned.", "",
        common.markdown_table(["cell"] + [f"k={k}" for k in args.delays] + ["largest"], rows),
        "", "Fitted gradient decay rate per step after training (" + ms.GRADIENT_NOTE + ")",
        "", common.markdown_table(["cell"] + [f"k={k}" for k in args.delays], rates), "",
        "Plots: accuracy.png (final accuracy against delay), training.png, grad_flow.png.",
        ""])


def plot_accuracy(results: dict, args) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, cell in enumerate(args.cells):
        acc = np.asarray([results[f"echo k={k}/{cell}"]["final"]["accuracy"]
                          for k in args.delays])
        ax.plot(args.delays, np.median(acc, axis=1), "o-", color=f"C{i}",
                label=common.cell_label(cell))
        ax.fill_between(args.delays, acc.min(axis=1), acc.max(axis=1), color=f"C{i}", alpha=0.15)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set(xscale="log", xlabel="delay k", ylabel="test accuracy on echoed steps",
           title="echo")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    common.save_figure(fig, args.out / "accuracy.png")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=common.check_cells)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = [ms.echo(k, args.scored) for k in args.delays]
    units = [(f"{problem.label}/{cell}", problem, cell, {}) for problem in problems
             for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, problems, args.cells, args.out)
    plot_accuracy(results, args)
    common.write_results(args, {"results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
