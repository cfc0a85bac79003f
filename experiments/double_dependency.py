"""Double dependency: which cells learn a target that depends on the inputs 3 and 8
steps back, with full and with truncated backpropagation through time?

x_t are fair coin flips; y_t = 1 with probability 0.5 + 0.5 x_(t-3) - 0.25 x_(t-8).
A predictor that learns no dependency scores a cross-entropy of 0.6616 nats per
step, one that learns only the t-3 dependency 0.5192, one that learns both 0.4545
(`rnnjax.tasks.reference_cross_entropies`, exact). Truncated BPTT of length k
(`rnnjax.train.tbptt_loss`, TBPTT(k, k)) sends no gradient further back than k
steps, so with a truncation shorter than 8 no gradient teaches the cell to keep
x_(t-8); a wide enough state may still carry a trace of it that the readout learns
to decode (docs/results.md: TBPTT 5 at hidden size 16).

    python -m experiments.double_dependency --quick     # a few minutes on a CPU
    python -m experiments.double_dependency --cells lstm,gru --truncations 0,5

Writes results/double_dependency/{results.json, report.md, training.png,
grad_flow.png}; every run (truncation x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_studies as ms
from rnnjax.tasks import reference_cross_entropies

NAME = "double_dependency"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, truncations=[0, 2, 5, 10, 20], length=100, hidden=32, batch=64,
                lr=3e-3, clip=1.0, eval_every=100, checkpoint_every=1000, workers=1)
QUICK = dict(seeds=2, steps=400, cells=["tanh", "lstm", "gru"], truncations=[0, 5],
             length=40, hidden=16, eval_every=50, checkpoint_every=400, workers=2)
LEVEL_NAMES = {"none": "no dependency", "first": "only t-3", "both": "both"}


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--truncations", type=common.comma_list(int),
                        help="TBPTT lengths k, comma-separated; 0 is full BPTT")
    parser.add_argument("--length", type=common.positive_int,
                        help="sequence length T (every k must divide it)")


def label(k: int) -> str:
    return "full BPTT" if k == 0 else f"TBPTT {k}"


def reached(result: dict, level: float):
    """The first evaluated step at which the median test loss is at most `level` plus
    the tolerance, or None."""
    for step, losses in result["curve"]:
        if np.median(losses) <= level + ms.LEVEL_TOLERANCE:
            return step
    return None


def report(results: dict, args) -> str:
    levels = reference_cross_entropies()
    rows = []
    for k in args.truncations:
        for cell in args.cells:
            r = results[f"{label(k)}/{cell}"]
            losses = r["final"]["loss"]
            when = [reached(r, levels[name]) for name in ("first", "both")]
            rows.append([label(k), r["cell_class"], common.spread(losses),
                         ", ".join(ms.double_dependency_level(v) for v in losses),
                         *("-" if w is None else str(w) for w in when),
                         ms.rate(r["grad_rate_trained"])])
    table = common.markdown_table(
        ["training", "cell", "test loss: median (range)", "level per seed",
         "step at t-3 level", "step at both", "rate, trained"], rows)
    return "\n".join([
        "# Double dependency: full and truncated BPTT", "",
        f"Command: `{common.command_line()}`", "",
        f"Sequences of T = {args.length} steps, scored from step 8; hidden size "
        f"{args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, global-norm clip "
        f"{args.clip}, batch {args.batch}, {args.steps} steps; test cross-entropy (nats per "
        f"step) on {ms.TEST_SIZE} held-out sequences.", "",
        "Reference cross-entropies, computed exactly by enumeration: "
        + ", ".join(f"{LEVEL_NAMES[n]} {v:.4f}" for n, v in levels.items())
        + " (0.66, 0.51, 0.45 truncated to two decimals). Level: the "
        f"lowest reference a seed's loss is at most {ms.LEVEL_TOLERANCE} above (none, t-3, "
        "both); step: the first evaluation at which the median loss reached it (- never).",
        "", table, "", ms.GRADIENT_NOTE, "",
        "Plots: training.png (one panel per truncation, the three reference lines), "
        "grad_flow.png.", ""])


def plots(results: dict, args) -> None:
    plt = common.pyplot()
    levels = reference_cross_entropies()
    n = len(args.truncations)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], args.truncations):
        for i, cell in enumerate(args.cells):
            r = results[f"{label(k)}/{cell}"]
            common.band(ax, [s for s, _ in r["curve"]], [m for _, m in r["curve"]], f"C{i}",
                        r["cell_class"])
        for (name, value), style in zip(levels.items(), ("--", "-.", ":")):
            ax.axhline(value, color="k", ls=style, lw=1, label=f"{LEVEL_NAMES[name]} {value:.3f}")
        ax.set(title=label(k), xlabel="training step", ylim=(0.42, 0.72))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test cross-entropy (nats per step)")
    axes[0, 0].legend(fontsize=8)
    common.save_figure(fig, args.out / "training.png")

    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], args.truncations):
        ms.plot_grad_flow(ax, [results[f"{label(k)}/{c}"] for c in args.cells], label(k))
    axes[0, 0].legend(fontsize=8)
    common.save_figure(fig, args.out / "grad_flow.png")


def check(args) -> None:
    """Fail on a bad cell, size, --steps or truncation before any work."""
    common.check_cells(args)
    bad = [k for k in args.truncations if k < 0 or (k and args.length % k)]
    if bad:
        raise ValueError(f"--truncations must be 0 (full BPTT) or divide --length "
                         f"{args.length}, got {bad}")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    problem = ms.double_dependency(args.length)
    units = [(f"{label(k)}/{cell}", problem, cell, {"truncation": k or None})
             for k in args.truncations for cell in args.cells]
    results = ms.run_all(units, args)
    plots(results, args)
    common.write_results(args, {"reference_cross_entropies": reference_cross_entropies(),
                                "results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
