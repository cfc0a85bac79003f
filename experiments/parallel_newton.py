"""Parallel-in-time evaluation by Newton's method: iterations against T and against
the largest Lyapunov exponent, and training a GRU through the Newton unroll.

1. Iterations to converge against T: a contractive GRU and tanh RNN (recurrent
   scale `--contractive-scale`), full (DEER) and diagonal (quasi-DEER) Jacobians, for
   each T in `--lengths`, each seed a fresh draw of weights and inputs.
2. Iterations against the probe's largest Lyapunov exponent (`probe.lyapunov_spectrum`,
   the same weights and inputs), sweeping the recurrent scale of each cell in
   `--cells` through `--scales`, at T = `--sweep-length`, inputs scaled by
   `--sweep-input-scale` (weak inputs leave the units unsaturated, so that the exponent
   crosses 0 within the sweep; Gonzalez et al. 2025: O(log T) iterations below 0,
   ill-conditioned above); full-Jacobian Newton (DEER) and Levenberg-Marquardt steps
   from `--damping` (ELK).
3. A GRU trained for `--steps` Adam steps on a running-sum regression through the
   sequential loop and through the Newton unroll, the latter warm-started from the
   previous step's trajectory: the losses step by step and the iterations taken.

    python -m experiments.parallel_newton --quick     # ~2-3 minutes on a CPU

Writes results/parallel_newton/{results.json, report.md, iterations.png}.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj
from experiments import common
from rnnjax import parallel, probe

NAME = "parallel_newton"
CELLS = {"gru": lambda h, s: rj.GRU(hidden_size=h, recurrent_scale=s),
         "tanh": lambda h, s: rj.SimpleRNN(hidden_size=h, recurrent_scale=s)}
DEFAULTS = dict(cells=["gru", "tanh"], seeds=2, steps=100, hidden=8, batch=8, lr=1e-2,
                lengths=[100, 1000, 10000, 100000], contractive_scale=0.5,
                scales=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], sweep_length=1000,
                max_iter=60, train_length=200, sweep_input_scale=0.2, sweep_hidden=16,
                damping=1.0)
QUICK = dict(seeds=1, steps=20, hidden=4, batch=4, lengths=[100, 1000, 10000], sweep_hidden=16,
             scales=[0.5, 1.0, 1.5, 2.5], sweep_length=200, max_iter=100, train_length=50)
INPUTS = 2


def add_arguments(parser):
    ints = lambda s: [int(x) for x in s.split(",") if x]
    floats = lambda s: [float(x) for x in s.split(",") if x]
    parser.add_argument("--lengths", type=ints, help="T of the iterations-against-T study")
    parser.add_argument("--contractive-scale", dest="contractive_scale",
                        type=common.positive_float,
                        help="recurrent scale of the cells in the study against T")
    parser.add_argument("--scales", type=floats, help="recurrent scales of the exponent sweep")
    parser.add_argument("--sweep-length", dest="sweep_length", type=common.positive_int,
                        help="T of the exponent sweep")
    parser.add_argument("--max-iter", dest="max_iter", type=common.positive_int,
                        help="Newton iterations at most (a run that hits it did not converge)")
    parser.add_argument("--train-length", dest="train_length", type=common.positive_int,
                        help="T of the training sequences")
    parser.add_argument("--sweep-hidden", dest="sweep_hidden", type=common.positive_int,
                        help="hidden size of the exponent sweep (chaos needs a wide tanh RNN)")
    parser.add_argument("--sweep-input-scale", dest="sweep_input_scale",
                        type=common.positive_float, help="input scale of the exponent sweep")
    parser.add_argument("--damping", type=common.positive_float,
                        help="starting Levenberg-Marquardt damping of the ELK runs in the sweep")


def check(args):
    unknown = sorted(set(args.cells) - set(CELLS))
    if unknown:
        raise ValueError(f"--cells: this study sweeps {','.join(CELLS)}, got {unknown}")


def solve(cell_name, hidden, scale, steps, seed, jacobian, max_iter, input_scale=1.0,
          damping=None):
    """One Newton unroll of a fresh cell: iterations, residual, error against the loop,
    the largest Lyapunov exponent, and the wall time (compile included)."""
    cell = CELLS[cell_name](hidden, scale)
    params = cell.init(jax.random.key(seed), INPUTS)
    xs = input_scale * jax.random.normal(jax.random.key(1000 + seed), (1, steps, INPUTS))
    start = time.perf_counter()
    _, ys, stats = parallel.newton_unroll(cell, params, xs, jacobian=jacobian,
                                          max_iter=max_iter, damping=damping)
    ys.block_until_ready()
    newton_s = time.perf_counter() - start
    reference = rj.unroll(cell, params, xs)[1]
    exponent = float(probe.lyapunov_spectrum(cell, params, xs[:, :min(steps, 2000)], k=1)[0])
    return dict(cell=cell_name, scale=scale, T=steps, seed=seed, jacobian=jacobian,
                damping=damping, input_scale=input_scale,
                iterations=int(stats.iterations), residual=float(stats.residual),
                converged=bool(stats.residual <= 1e-6),
                max_abs_error=float(jnp.abs(ys - reference).max()),
                lyapunov=exponent, newton_s=newton_s)


def against_length(args):
    rows = []
    for name in args.cells:
        for steps in args.lengths:
            for jacobian in ("full", "diagonal"):
                for seed in range(args.seeds):
                    row = solve(name, args.hidden, args.contractive_scale, steps, seed,
                                jacobian, args.max_iter)
                    rows.append(row)
                    print(f"[T] {name} T={steps} {jacobian} seed {seed}: "
                          f"{row['iterations']} iterations, residual {row['residual']:.1e}, "
                          f"lyapunov {row['lyapunov']:+.3f}", flush=True)
    return rows


def against_exponent(args):
    rows = []
    for name in args.cells:
        for scale in args.scales:
            for seed in range(args.seeds):
                for damping in (None, args.damping):
                    row = solve(name, args.sweep_hidden, scale, args.sweep_length, seed, "full",
                                args.max_iter, args.sweep_input_scale, damping)
                    rows.append(row)
                    print(f"[lyapunov] {name} scale {scale} seed {seed} damping {damping}: "
                          f"lambda_1 {row['lyapunov']:+.3f}, {row['iterations']} iterations"
                          f"{'' if row['converged'] else ' (not converged)'}", flush=True)
    return rows


def training(args):
    """Adam on y_t = tanh(running sum of x) / readout of h, both paths from the same
    init; the Newton path warm-starts from the previous step's trajectory."""
    cell = rj.GRU(hidden_size=args.hidden)
    key = jax.random.key(0)
    params = {"cell": cell.init(key, INPUTS),
              "readout": 0.1 * jax.random.normal(jax.random.fold_in(key, 1), (args.hidden, 1))}
    xs = jax.random.normal(jax.random.key(1), (args.batch, args.train_length, INPUTS))
    targets = jnp.tanh(0.3 * jnp.cumsum(xs[..., :1], axis=1))
    optimiser = optax.adam(args.lr)

    def loss_of(ys, p):
        return jnp.mean((ys @ p["readout"] - targets) ** 2)

    @jax.jit
    def sequential_step(p, state):
        loss, grads = jax.value_and_grad(
            lambda p: loss_of(rj.unroll(cell, p["cell"], xs)[1], p))(p)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(p, updates), state, loss

    @jax.jit
    def newton_step(p, state, guess):
        def loss(p):
            _, ys, stats = parallel.newton_unroll(cell, p["cell"], xs, guess=guess)
            return loss_of(ys, p), stats
        (loss, stats), grads = jax.value_and_grad(loss, has_aux=True)(p)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(p, updates), state, loss, stats

    p_seq, s_seq = params, optimiser.init(params)
    p_new, s_new = params, optimiser.init(params)
    guess = jnp.zeros((args.batch, args.train_length, args.hidden))
    history = []
    for step in range(args.steps):
        p_seq, s_seq, loss_seq = sequential_step(p_seq, s_seq)
        p_new, s_new, loss_new, stats = newton_step(p_new, s_new, guess)
        guess = stats.states
        history.append(dict(step=step, sequential=float(loss_seq), newton=float(loss_new),
                            iterations=int(stats.iterations)))
        if step % max(1, args.steps // 10) == 0 or step == args.steps - 1:
            print(f"[train] step {step}: sequential {float(loss_seq):.6f}, newton "
                  f"{float(loss_new):.6f}, {int(stats.iterations)} iterations", flush=True)
    return history


def plot(by_length, by_exponent, args):
    plt = common.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in args.cells:
        for jacobian, style in (("full", "-"), ("diagonal", "--")):
            rows = [r for r in by_length if r["cell"] == name and r["jacobian"] == jacobian]
            ts = sorted({r["T"] for r in rows})
            left.plot(ts, [np.median([r["iterations"] for r in rows if r["T"] == t]) for t in ts],
                      style, marker="o", label=f"{name} {jacobian}")
        for damped in (False, True):
            rows = [r for r in by_exponent if r["cell"] == name and bool(r["damping"]) == damped]
            right.scatter([r["lyapunov"] for r in rows],
                          [r["iterations"] if r["converged"] else args.max_iter * 1.3
                           for r in rows],
                          label=f"{name} {'ELK' if damped else 'DEER'}",
                          marker="o" if name == "gru" else "s",
                          facecolors="none" if damped else None,
                          edgecolors="C1" if damped else None)
    left.set(xscale="log", xlabel="T", ylabel="Newton iterations (median over seeds)",
             title=f"contractive cells (scale {args.contractive_scale})")
    right.axvline(0.0, color="grey", lw=0.8)
    right.set(yscale="log", xlabel="largest Lyapunov exponent (probe)",
              ylabel="iterations (not converged: drawn above max_iter)",
              title=f"T = {args.sweep_length}, max_iter {args.max_iter}")
    left.legend()
    right.legend()
    common.save_figure(fig, args.out / "iterations.png")


def report(by_length, by_exponent, history, args):
    lines = [f"# Parallel Newton unroll\n\nCommand: `{common.command_line()}`; hidden "
             f"{args.hidden}, batch 1, seeds {args.seeds} (every seed a row), max_iter "
             f"{args.max_iter}, tol 1e-6 (float32).\n",
             f"## Iterations against T (scale {args.contractive_scale})\n",
             common.markdown_table(
                 ["cell", "T", "jacobian", "seed", "iterations", "residual", "max |newton - loop|",
                  "lyapunov", "newton s (with compile)"],
                 [[r["cell"], r["T"], r["jacobian"], r["seed"], r["iterations"],
                   f"{r['residual']:.1e}", f"{r['max_abs_error']:.1e}", f"{r['lyapunov']:+.3f}",
                   f"{r['newton_s']:.2f}"] for r in by_length]),
             f"\n## Iterations against the largest Lyapunov exponent (T = {args.sweep_length},"
             f" hidden {args.sweep_hidden}, full Jacobian, inputs x {args.sweep_input_scale};"
             " damping: ELK's starting lambda, none for DEER)\n",
             common.markdown_table(
                 ["cell", "scale", "seed", "damping", "lyapunov", "iterations", "converged",
                  "residual", "max |newton - loop|"],
                 [[r["cell"], r["scale"], r["seed"], r["damping"], f"{r['lyapunov']:+.3f}",
                   r["iterations"], r["converged"], f"{r['residual']:.1e}",
                   f"{r['max_abs_error']:.1e}"] for r in by_exponent])]
    gap = max(abs(h["sequential"] - h["newton"]) for h in history)
    lines += [f"\n## Training a GRU (hidden {args.hidden}, batch {args.batch}, T "
              f"{args.train_length}, Adam lr {args.lr}, {args.steps} steps)\n",
              f"Largest |loss difference| over the steps: {gap:.2e}; Newton iterations per "
              f"step: first {history[0]['iterations']}, median "
              f"{int(np.median([h['iterations'] for h in history]))}, last "
              f"{history[-1]['iterations']} (warm-started).\n",
              common.markdown_table(["step", "sequential loss", "newton loss", "iterations"],
                                    [[h["step"], f"{h['sequential']:.6f}", f"{h['newton']:.6f}",
                                      h["iterations"]]
                                     for h in history[::max(1, len(history) // 10)]])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    by_length = against_length(args)
    by_exponent = against_exponent(args)
    history = training(args)
    plot(by_length, by_exponent, args)
    common.write_results(args, {"against_length": by_length, "against_exponent": by_exponent,
                                "training": history},
                         report(by_length, by_exponent, history, args))
    return by_length, by_exponent, history


if __name__ == "__main__":
    main()
