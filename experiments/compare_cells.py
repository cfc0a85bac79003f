"""Compare the cell types on gradient flow and on the adding problem.

For each cell type:
  1. gradient flow: ||dL/dh_k|| for every step k of a long sequence (one backward
     pass, `rnnjax.probe.hidden_grad_norms`), at initialisation and after training,
     as a function of the distance T-1-k to the loss;
  2. training: the adding problem (the sum of two marked values up to T steps
     apart), several seeds trained at once in one compiled step, Adam with
     global-norm clipping; test MSE every few steps against the baseline of always
     predicting 1 (MSE 1/6).

    python -m experiments.compare_cells --quick          # a few minutes on a CPU
    python -m experiments.compare_cells --cells lstm,gru --seeds 5 --steps 5000

Writes results/compare_cells/{results.json, report.md, grad_flow.png, training.png};
each cell's run checkpoints to <cell>/checkpoints (and logs <cell>/metrics.jsonl and
<cell>/curves.png), so a rerun of the same command resumes where it stopped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import common
from rnnjax.cells import make
from rnnjax.tasks import ADDING_BASELINE_MSE, adding_batch
from rnnjax.train import plot_metrics

NAME = "compare_cells"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, hidden=64, length=100, probe_length=300, batch=64, lr=2e-3,
                clip=1.0, eval_every=100, checkpoint_every=500)
QUICK = dict(seeds=2, steps=800, hidden=32, length=40, probe_length=150, eval_every=50,
             checkpoint_every=400)
#: a run "learned" the task when its test MSE is below this fraction of the baseline
LEARNED = 0.1
DISTANCES = (10, 50, 100)


def add_arguments(parser):
    parser.add_argument("--length", type=int, help="sequence length T of the adding task")
    parser.add_argument("--probe-length", dest="probe_length", type=int,
                        help="sequence length of the gradient-flow probe")
    parser.add_argument("--eval-every", dest="eval_every", type=int,
                        help="training steps between two test evaluations")


def run_cell(name: str, args) -> dict:
    model = common.readout(name, args.hidden, 2, 1)
    mse = lambda params, xs, target: jnp.mean((model.last(params, xs)[..., 0] - target) ** 2)
    test_xs, test_y = adding_batch(jax.random.key(10_000), 1000, args.length)
    probe_xs, probe_y = adding_batch(jax.random.key(20_000), 32, args.probe_length)
    # the loss reads only the last output, so dL/dh_k is the signal sent back through
    # T-1-k steps of the recurrence
    flow = jax.jit(jax.vmap(lambda params: model.grad_flow(
        params, probe_xs, lambda out: jnp.mean((out[:, -1, 0] - probe_y) ** 2))))
    test_mse = jax.jit(jax.vmap(lambda params: mse(params, test_xs, test_y)))

    run = common.train(
        args.out / name, model.init, lambda params, batch, key: (mse(params, *batch), {}),
        lambda i: adding_batch(jax.random.fold_in(jax.random.key(1), i), args.batch,
                               args.length),
        args, hyper={"learning_rate": args.lr}, clip=args.clip,
        evaluate=lambda params: {"test_mse": test_mse(params)}, eval_every=eval_interval(args),
        settings={k: getattr(args, k) for k in ("hidden", "length", "batch")},
        desc=f"{name:>9}")
    plot_metrics(args.out / name, keys=("loss", "test_mse", "grad_norm"))
    steps, mse_at = common.series(run.history, "test_mse")
    final = common.on_trained(test_mse, run).tolist()
    return {
        "grad_norms_init": np.asarray(flow(run.initial)).tolist(),     # [seeds, T], k = 0 .. T-1
        "grad_norms_trained": common.on_trained(flow, run).tolist(),
        "test_mse_curve": [*zip(steps, mse_at.tolist()), (args.steps, final)],  # (step, [seeds])
        "final_test_mse": final,
        "learned": [bool(m < LEARNED * ADDING_BASELINE_MSE) for m in final],
        "nonfinite": [bool(not np.isfinite(m)) for m in final],
        "seconds": common.train_seconds(run.history),
    }


def eval_interval(args) -> int:
    """Steps between test evaluations; --steps must be a multiple of it."""
    every = min(args.eval_every, args.steps)
    if args.steps <= 0 or args.steps % every:
        raise ValueError(f"--steps must be a positive multiple of {every} (the evaluation "
                         f"interval), got {args.steps}")
    return every


def relative_norm(norms, distance):
    """Mean over seeds of log10(||dL/dh_{T-1-d}|| / ||dL/dh_{T-1}||)."""
    relative = common.log10_relative(norms)
    return float(np.mean(relative[:, distance])) if distance < relative.shape[1] else float("nan")


def plots(results: dict, args) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for (title, key), ax in zip([("at initialisation", "grad_norms_init"),
                                 ("after training", "grad_norms_trained")], axes):
        for i, (name, r) in enumerate(results.items()):
            ax.plot(np.nanmean(common.log10_relative(r[key]), axis=0), color=f"C{i}",
                    label=name)
        ax.set_title(f"gradient flow {title}")
        ax.set_xlabel("distance T-1-k (steps back from the loss)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 ||dL/dh_k|| / ||dL/dh_(T-1)||  (mean over seeds)")
    axes[0].legend()
    common.save_figure(fig, args.out / "grad_flow.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, r) in enumerate(results.items()):
        common.band(ax, [s for s, _ in r["test_mse_curve"]],
                    [m for _, m in r["test_mse_curve"]], f"C{i}", name)
    ax.axhline(ADDING_BASELINE_MSE, color="k", ls="--", lw=1, label="baseline (predict 1)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("test MSE (median, band: min-max over seeds)")
    ax.set_title(f"adding problem, T = {args.length}")
    ax.legend()
    ax.grid(alpha=0.3)
    common.save_figure(fig, args.out / "training.png")


def report(results: dict, args) -> str:
    flow_rows, train_rows = [], []
    for name, r in results.items():
        flow_rows.append([name] + [f"{relative_norm(r['grad_norms_init'], d):.2f}"
                                   for d in DISTANCES]
                         + [f"{relative_norm(r['grad_norms_trained'], d):.2f}" for d in DISTANCES])
        final = np.asarray(r["final_test_mse"])
        train_rows.append([name, f"{np.median(final):.4g}",
                           " ".join(f"{m:.3g}" for m in final),
                           f"{sum(r['learned'])}/{len(final)}", f"{r['seconds']:.0f}"])
    head = ([f"init d={d}" for d in DISTANCES] + [f"trained d={d}" for d in DISTANCES])
    return "\n".join([
        "# Cell types compared: gradient flow and the adding problem", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds (initialisations, the same batches) "
        f"per cell; Adam lr {args.lr}, global-norm clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps, test MSE every {eval_interval(args)} steps.", "",
        f"## Gradient flow (probe length T = {args.probe_length})", "",
        "log10 of ||dL/dh_k|| relative to the last step, d = T-1-k steps back from the "
        "loss (mean over seeds; -3.00 means a thousand times smaller). Plot: grad_flow.png.",
        "",
        common.markdown_table(["cell"] + head, flow_rows), "",
        f"## Adding problem (T = {args.length})", "",
        f"Test MSE on 1000 held-out sequences; baseline (always predict 1) = "
        f"{ADDING_BASELINE_MSE:.4f}; 'learned' = below {LEARNED} x baseline. Every seed is "
        "listed, including the ones that failed to learn. Plot: training.png.", "",
        common.markdown_table(["cell", "median MSE", "MSE per seed", "learned", "seconds"],
                              train_rows), ""])


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments)
    for name in args.cells:
        make(name, args.hidden)  # fail on a bad name or size before any work
    eval_interval(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {name: run_cell(name, args) for name in tqdm(args.cells, desc="cells")}
    plots(results, args)
    common.write_results(args, {"baseline_mse": ADDING_BASELINE_MSE, "results": results},
                         report(results, args))
    return results


if __name__ == "__main__":
    main()
