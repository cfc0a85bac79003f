"""The main job: compare the cell types on gradient flow and on the adding problem.

For each cell type:
  1. gradient flow: ||dL/dh_k|| for every step k of a long sequence (one backward
     pass, `rnnjax.probe.hidden_grad_norms`), at initialisation and after training,
     as a function of the distance T-1-k to the loss;
  2. training: the adding problem (the sum of two marked values up to T steps
     apart), several seeds trained at once with `vmap`, Adam with global-norm
     clipping; test MSE against the baseline of always predicting the mean (1/6).

    python -m experiments.compare_cells --quick          # a few minutes on a CPU
    python -m experiments.compare_cells --cells lstm,gru --seeds 5 --steps 5000

Writes results/compare_cells/{results.json, report.md, grad_flow.png, training.png}.
A finished cell is kept in parts/, so a rerun of the same command skips it.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import rnnjax as rj
from experiments import common
from rnnjax import probe
from rnnjax.cells import make
from rnnjax.tasks import ADDING_BASELINE_MSE, adding_batch
from rnnjax.train import init_state, make_train_step

NAME = "compare_cells"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, hidden=64, length=100, probe_length=300, batch=64, lr=2e-3,
                clip=1.0, eval_every=100)
QUICK = dict(seeds=2, steps=800, hidden=32, length=40, probe_length=150, eval_every=50)
#: a run "learned" the task when its test MSE is below this fraction of the baseline
LEARNED = 0.1
DISTANCES = (10, 50, 100)


def add_arguments(parser):
    parser.add_argument("--hidden", type=int, help="hidden size")
    parser.add_argument("--length", type=int, help="sequence length T of the adding task")
    parser.add_argument("--probe-length", dest="probe_length", type=int,
                        help="sequence length of the gradient-flow probe")
    parser.add_argument("--lr", type=float, help="Adam learning rate")


def build(name: str, hidden: int):
    cell, head = make(name, hidden), rj.Dense(1)

    def init(key):
        k_cell, k_head = jax.random.split(key)
        return {"cell": cell.init(k_cell, 2), "head": head.init(k_head, hidden)}

    def predict_from_hidden(params, h):
        return head(params["head"], h)[..., 0]

    def loss(params, xs, target):
        carry, _ = rj.unroll(cell, params["cell"], xs)
        return jnp.mean((predict_from_hidden(params, cell.hidden(carry)) - target) ** 2)

    def grad_flow(params, xs, target):
        # the loss reads only the last output, so dL/dh_k is the signal sent back
        # through T-1-k steps of the recurrence
        loss_fn = lambda ys: jnp.mean((predict_from_hidden(params, ys[:, -1]) - target) ** 2)
        return probe.hidden_grad_norms(cell, params["cell"], xs, loss_fn)

    return init, loss, grad_flow


def run_cell(name: str, args) -> dict:
    init, loss, grad_flow = build(name, args.hidden)
    every = eval_interval(args)
    optimizer = optax.adam(args.lr)
    step = make_train_step(lambda params, batch, key: (loss(params, *batch), {}), optimizer,
                           clip_norm=args.clip)
    seed_keys = jax.random.split(jax.random.key(0), args.seeds)
    state = jax.vmap(lambda k: init_state(init(k), optimizer, k))(seed_keys)
    test_xs, test_y = adding_batch(jax.random.key(10_000), 1000, args.length)
    probe_xs, probe_y = adding_batch(jax.random.key(20_000), 32, args.probe_length)

    def train_chunk(state, key):
        def one_step(state, k):
            return step(state, adding_batch(k, args.batch, args.length))[0], None

        state, _ = jax.lax.scan(one_step, state, jax.random.split(key, every))
        return state, loss(state.params, test_xs, test_y)

    train_chunk = jax.jit(jax.vmap(train_chunk))
    flow = jax.jit(jax.vmap(grad_flow, in_axes=(0, None, None)))
    test_loss = jax.jit(jax.vmap(loss, in_axes=(0, None, None)))

    start = time.time()
    flow_init = np.asarray(flow(state.params, probe_xs, probe_y))
    curve = [(0, np.asarray(test_loss(state.params, test_xs, test_y)).tolist())]
    data_keys = jax.random.split(jax.random.key(1), args.seeds)
    for chunk in tqdm(range(args.steps // every), desc=f"{name:>9}", leave=False):
        keys = jax.vmap(lambda k: jax.random.fold_in(k, chunk))(data_keys)
        state, test = train_chunk(state, keys)
        curve.append(((chunk + 1) * every, np.asarray(test).tolist()))
    flow_trained = np.asarray(flow(state.params, probe_xs, probe_y))
    final = curve[-1][1]
    return {
        "grad_norms_init": flow_init.tolist(),       # [seeds, T], k = 0 .. T-1
        "grad_norms_trained": flow_trained.tolist(),
        "test_mse_curve": curve,                     # [(step, [mse per seed])]
        "final_test_mse": final,
        "learned": [bool(m < LEARNED * ADDING_BASELINE_MSE) for m in final],
        "nonfinite": [bool(not np.isfinite(m)) for m in final],
        "seconds": time.time() - start,
    }


def eval_interval(args) -> int:
    """Steps between test evaluations; the training steps run in chunks of this size."""
    every = min(args.eval_every, args.steps)
    if args.steps <= 0 or args.steps % every:
        raise ValueError(f"--steps must be a positive multiple of {every} (the evaluation "
                         f"interval), got {args.steps}")
    return every


def relative_norm(norms, distance):
    """Mean over seeds of log10(||dL/dh_{T-1-d}|| / ||dL/dh_{T-1}||)."""
    norms = np.asarray(norms)
    if distance >= norms.shape[1]:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.log10(norms[:, -1 - distance] / norms[:, -1])))


def plots(results: dict, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for (title, key), ax in zip([("at initialisation", "grad_norms_init"),
                                 ("after training", "grad_norms_trained")], axes):
        for i, (name, r) in enumerate(results.items()):
            norms = np.asarray(r[key])
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.log10(norms / norms[:, -1:])[:, ::-1]  # by distance T-1-k
            ax.plot(np.nanmean(rel, axis=0), color=f"C{i}", label=name)
        ax.set_title(f"gradient flow {title}")
        ax.set_xlabel("distance T-1-k (steps back from the loss)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 ||dL/dh_k|| / ||dL/dh_(T-1)||  (mean over seeds)")
    axes[0].legend()
    common.save_figure(fig, args.out / "grad_flow.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, r) in enumerate(results.items()):
        steps = [s for s, _ in r["test_mse_curve"]]
        mse = np.asarray([m for _, m in r["test_mse_curve"]])
        ax.plot(steps, np.median(mse, axis=1), color=f"C{i}", label=name)
        ax.fill_between(steps, mse.min(axis=1), mse.max(axis=1), color=f"C{i}", alpha=0.15)
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
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps.", "",
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
    config = common.config_of(args)
    for name in args.cells:
        make(name, args.hidden)  # fail on a bad name or size before any work
    eval_interval(args)
    args.out.mkdir(parents=True, exist_ok=True)
    part_config = {k: v for k, v in config.items() if k not in ("cells", "out", "quick")}
    results = {}
    for name in tqdm(args.cells, desc="cells"):
        results[name] = common.load_part(args.out, name, part_config)
        if results[name] is None:
            results[name] = run_cell(name, args)
            common.save_part(args.out, name, part_config, results[name])
    plots(results, args)
    common.write_results(args, {"baseline_mse": ADDING_BASELINE_MSE, "results": results},
                         report(results, args))
    return results


if __name__ == "__main__":
    main()
