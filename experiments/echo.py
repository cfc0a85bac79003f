"""Echo: how long a delay can each cell bridge? y_t = x_(t-k) for random bits.

Every cell type trains at each delay k over several seeds at once; the report gives
the accuracy on the echoed steps per cell and k (chance 1/2), the largest delay each
cell learns (accuracy >= 0.95 for most seeds), and the gradient flow. Beside them,
echo state networks (`rj.EchoState`: reservoirs drawn once and never trained, of
several sizes N and spectral radii) read the delayed bit with a ridge readout fitted
in closed form, no gradient through time at all; for each reservoir the report adds
the time to fit, its memory capacity (Jaeger 2002, at most N), and the probe's
largest Lyapunov exponent and gradient half-life.

    python -m experiments.echo --quick            # a few minutes on a CPU
    python -m experiments.echo --cells lstm,gru --delays 1,2,4,8,16,32,64,128

Writes results/echo/{results.json, report.md, training.png, grad_flow.png,
accuracy.png, memory_capacity.png}; every run (delay x cell) checkpoints to its own
folder, every reservoir's results are kept in parts/.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax as rj
from experiments import common
from experiments import memory_studies as ms
from rnnjax import probe
from rnnjax.train import ridge_readout

NAME = "echo"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, delays=[1, 2, 4, 8, 16, 32, 64, 128], scored=50, hidden=64,
                batch=64, lr=2e-3, clip=1.0, eval_every=250, checkpoint_every=1000, workers=1,
                esn_sizes=[50, 200, 800], esn_radii=[0.5, 0.9, 0.99], esn_train=1000,
                esn_l2=1e-6, esn_input_scale=1.0)
QUICK = dict(seeds=2, steps=300, cells=["tanh", "lstm", "gru"], delays=[1, 4, 16], scored=20,
             hidden=16, batch=32, lr=5e-3, eval_every=50, checkpoint_every=300, workers=2,
             esn_sizes=[50], esn_radii=[0.5, 0.9], esn_train=200)


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--delays", type=common.comma_list(common.positive_int),
                        help="delays k, comma-separated")
    parser.add_argument("--scored", type=common.positive_int,
                        help="scored steps per sequence (sequences have k + scored steps)")
    parser.add_argument("--esn-sizes", dest="esn_sizes",
                        type=common.comma_list(common.positive_int),
                        help="reservoir sizes N of the echo state networks")
    parser.add_argument("--esn-radii", dest="esn_radii",
                        type=common.comma_list(common.positive_float),
                        help="spectral radii of the reservoirs")
    parser.add_argument("--esn-train", dest="esn_train", type=common.positive_int,
                        help="training sequences the ridge readout is fitted on")
    parser.add_argument("--esn-l2", dest="esn_l2", type=common.positive_float,
                        help="ridge penalty of the readout")
    parser.add_argument("--esn-input-scale", dest="esn_input_scale",
                        type=common.positive_float,
                        help="scale of the reservoirs' input weights, U(-scale, scale)")
    parser.add_argument("--esn-only", dest="esn_only", action="store_true",
                        help="only the echo state networks: train no cell")


def reservoir(size: int, radius: float, seed: int, args) -> dict:
    """One echo state network: its accuracy at every delay (a ridge readout of the
    scored steps, fitted on `args.esn_train` sequences, tested on the trained cells'
    test set), the seconds to fit, memory capacity, largest Lyapunov exponent and
    gradient half-life."""
    cell = rj.EchoState(size, spectral_radius=radius, input_scale=args.esn_input_scale)
    params = cell.init(jax.random.key(seed), 1)
    states = jax.jit(lambda xs: rj.unroll(cell, params, xs)[1])
    accuracy, seconds = [], []
    for k in args.delays:
        problem = ms.echo(k, args.scored)
        xs, ys = problem.batch(jax.random.fold_in(jax.random.key(1), seed), args.esn_train)
        test_xs, test_ys = problem.batch(jax.random.key(10_000), ms.TEST_SIZE)
        start = time.perf_counter()
        readout = ridge_readout(states(xs)[:, k:], ys[:, k:], args.esn_l2, classes=2)
        jax.block_until_ready(readout)
        seconds.append(time.perf_counter() - start)
        guess = jnp.argmax(states(test_xs)[:, k:] @ readout["W"] + readout["b"], axis=-1)
        accuracy.append(float(jnp.mean(guess == test_ys[:, k:])))
    capacity, _ = probe.memory_capacity(cell, params, min(2 * size, 400), l2=args.esn_l2,
                                        washout=400, key=jax.random.key(seed))
    probe_xs = jax.random.bernoulli(jax.random.key(20_000), 0.5, (8, 200, 1)).astype(jnp.float32)
    lyapunov = probe.lyapunov_spectrum(cell, params, probe_xs, k=1)
    norms = probe.hidden_grad_norms(cell, params, probe_xs, lambda ys: ys[:, -1].sum())
    return {"accuracy": accuracy, "fit_seconds": seconds, "memory_capacity": float(capacity),
            "lyapunov_max": float(lyapunov[0]),
            "half_life": float(probe.decay_fit(norms).half_life)}


def reservoirs(args) -> dict:
    """Every (size, radius) reservoir over the seeds: key -> per-seed lists."""
    out = {}
    for size in args.esn_sizes:
        for radius in args.esn_radii:
            key = f"esn N={size} rho={radius}"
            config = {"delays": args.delays, "scored": args.scored, "seeds": args.seeds,
                      "train": args.esn_train, "l2": args.esn_l2,
                      "input_scale": args.esn_input_scale}
            result = common.load_part(args.out, common.folder(key), config)
            if result is None:
                runs = [reservoir(size, radius, seed, args) for seed in range(args.seeds)]
                result = {name: [r[name] for r in runs] for name in runs[0]}
                result.update(size=size, radius=radius)
                common.save_part(args.out, common.folder(key), config, result)
            out[key] = result
    return out


def reservoir_report(esn: dict, args) -> list[str]:
    rows = []
    for key, r in esn.items():
        accuracy = np.asarray(r["accuracy"])                         # [seeds, delays]
        learned = {k: list(accuracy[:, i] >= ms.ECHO_LEARNED_ACCURACY)
                   for i, k in enumerate(args.delays)}
        rows.append([key] + [f"{a:.3f}" for a in np.median(accuracy, axis=0)]
                    + [str(largest_learned(learned) or "-"),
                     f"{np.median(np.sum(r['fit_seconds'], axis=1)):.2f}",
                     f"{np.median(r['memory_capacity']):.1f}",
                     f"{np.median(r['lyapunov_max']):.3f}",
                     f"{np.median(r['half_life']):.3g}"])
    return ["## Echo state networks: a fixed reservoir and a ridge readout", "",
            f"tanh reservoirs, input weights U(-{args.esn_input_scale}, "
            f"{args.esn_input_scale}), dense recurrent weights scaled to the "
            f"spectral radius rho; a ridge readout (penalty {args.esn_l2}) of the scored steps "
            f"fitted on {args.esn_train} sequences, tested on the trained cells' test set; "
            f"median over {args.seeds} seeds. Fit: seconds to fit the readouts of every "
            f"delay (states included). MC: memory capacity over delays 0 .. min(2N, 400) - 1 "
            f"(at most N). lambda_max and half-life: the probe on 200 random bits.", "",
            common.markdown_table(["reservoir"] + [f"k={k}" for k in args.delays]
                                  + ["largest", "fit (s)", "MC", "lambda_max", "half-life"],
                                  rows), ""]


def plot_capacity(esn: dict, args) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, size in enumerate(args.esn_sizes):
        mc = [np.median(esn[f"esn N={size} rho={radius}"]["memory_capacity"])
              for radius in args.esn_radii]
        ax.plot(args.esn_radii, mc, "o-", color=f"C{i}", label=f"N = {size}")
        ax.axhline(size, color=f"C{i}", ls=":", lw=1)
    ax.set(xlabel="spectral radius", ylabel="memory capacity", yscale="log",
           title="echo state networks: memory capacity (dotted: N)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    common.save_figure(fig, args.out / "memory_capacity.png")


def largest_learned(learned: dict):
    """The largest delay at which most seeds learned (`learned`: delay -> one bool per
    seed), or None."""
    most = [k for k, seeds in learned.items() if 2 * sum(seeds) > len(seeds)]
    return max(most) if most else None


def report(results: dict, args) -> str:
    rows = [[common.cell_label(cell)]
            + [f"{np.median(results[f'echo k={k}/{cell}']['final']['accuracy']):.3f} "
               f"({ms.learned_count(results[f'echo k={k}/{cell}'])})" for k in args.delays]
            + [str(largest_learned({k: results[f"echo k={k}/{cell}"]["learned"]
                                    for k in args.delays}) or "-")]
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
        "Plots: accuracy.png (final accuracy against delay), training.png, grad_flow.png, "
        "memory_capacity.png.", ""])


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
    results = {} if args.esn_only else ms.run_all(units, args)
    esn = reservoirs(args)
    text = "\n".join(reservoir_report(esn, args))
    if results:
        ms.plot_problems(results, problems, args.cells, args.out)
        plot_accuracy(results, args)
        text = report(results, args) + "\n" + text
    else:
        text = f"# Echo: echo state networks\n\nCommand: `{common.command_line()}`\n\n" + text
    plot_capacity(esn, args)
    common.write_results(args, {"results": results, "echo_state": esn}, text)
    return results


if __name__ == "__main__":
    main()
