"""Copy memory: which cell types can hold 10 symbols across T blank steps?

The task of Arjovsky, Shah and Bengio (2016): read 10 symbols from 8 classes, wait
T steps, then recall them after a delimiter. The memoryless strategy scores a
cross-entropy of 10 ln 8 / (T + 20) per step; a model that remembers scores ~0.

Every cell type trains over several seeds at once (one compiled step, vmapped over
seeds) with Adam and global-norm clipping; each cell's run checkpoints to
DIR/<cell>/checkpoints and resumes from there when the same command runs again.

    python -m experiments.copy_memory --quick          # a minute or two on a CPU
    python -m experiments.copy_memory --cells lstm,gru --seeds 5 --steps 5000 --length 200
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import common
from rnnjax.cells import make
from rnnjax.tasks.copy_memory import (
    COPY_LENGTH,
    NUM_CLASSES,
    copy_memory_baseline,
    copy_memory_batch,
)
from rnnjax.train import accuracy, plot_metrics, softmax_cross_entropy

NAME = "copy_memory"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=3,
                steps=3000, hidden=64, length=100, batch=64, lr=1e-3, clip=1.0,
                checkpoint_every=500)
QUICK = dict(seeds=2, steps=1000, hidden=32, length=10, lr=5e-3, checkpoint_every=250)
#: a run "learned" when its test loss is below this fraction of the baseline
LEARNED = 0.1


def add_arguments(parser):
    parser.add_argument("--length", type=int, help="T, the blank steps between read and recall")


def recall_metrics(logits, targets):
    """Loss over all steps, and the accuracy on the 10 recalled symbols."""
    return (softmax_cross_entropy(logits, targets),
            accuracy(logits[:, -COPY_LENGTH:], targets[:, -COPY_LENGTH:]))


def train_cell(name: str, args) -> dict:
    model = common.readout(name, args.hidden, NUM_CLASSES, NUM_CLASSES)

    def loss_fn(params, batch, key):
        loss, recall = recall_metrics(model.outputs(params, batch[0]), batch[1])
        return loss, {"recall_accuracy": recall}

    test_xs, test_y = copy_memory_batch(jax.random.key(10_000), 1000, args.length)
    # the recall part of the loss only: dL/dh_k is then the signal sent back in time
    recall_loss = lambda logits: softmax_cross_entropy(logits[:, -COPY_LENGTH:],
                                                       test_y[:64, -COPY_LENGTH:])
    flow = jax.jit(jax.vmap(lambda params: model.grad_flow(params, test_xs[:64], recall_loss)))
    run = common.train(
        args.out / name, model.init, loss_fn,
        lambda i: copy_memory_batch(jax.random.fold_in(jax.random.key(1), i), args.batch,
                                    args.length),
        args, hyper={"learning_rate": args.lr}, clip=args.clip,
        settings={k: getattr(args, k) for k in ("hidden", "length", "batch")},
        desc=f"{name:>9}")
    plot_metrics(args.out / name, keys=("loss", "recall_accuracy", "grad_norm"))

    loss, recall = common.on_trained(jax.jit(jax.vmap(
        lambda p: jnp.stack(recall_metrics(model.outputs(p, test_xs), test_y), axis=-1))),
        run).T
    baseline = copy_memory_baseline(args.length)
    return {"grid": run.grid, "test_loss": np.asarray(loss).tolist(),
            "recall_accuracy": np.asarray(recall).tolist(),
            "learned": [bool(l < LEARNED * baseline) for l in np.asarray(loss)],
            "grad_norms_init": np.asarray(flow(run.initial)).tolist(),    # [seeds, T + 20]
            "grad_norms_trained": common.on_trained(flow, run).tolist(),
            "history": run.history}


def plots(results: dict, args) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, r) in enumerate(results.items()):
        for ax, key in zip(axes, ("loss", "recall_accuracy")):
            common.band(ax, *common.series(r["history"], key), f"C{i}", name)
    axes[0].axhline(copy_memory_baseline(args.length), color="k", ls="--", lw=1,
                    label="memoryless baseline")
    axes[0].set(yscale="log", xlabel="step", ylabel="training cross-entropy per step",
                title=f"copy memory, T = {args.length}")
    axes[1].axhline(1 / 8, color="k", ls="--", lw=1, label="chance (1/8)")
    axes[1].set(xlabel="step", ylabel="accuracy on the 10 recalled symbols",
                title="recall (median, band: min-max over seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    common.save_figure(fig, args.out / "training.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, title in zip(axes, ("grad_norms_init", "grad_norms_trained"),
                              ("at initialisation", "after training")):
        for i, (name, r) in enumerate(results.items()):
            with np.errstate(divide="ignore"):
                ax.plot(np.log10(np.asarray(r[key])).mean(axis=0), color=f"C{i}", label=name)
        ax.axvline(COPY_LENGTH - 0.5, color="k", ls=":", lw=1)
        ax.set(xlabel="step k (symbols are read at k < 10)", title=f"||dL/dh_k|| {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 ||dL/dh_k|| (mean over seeds)")
    axes[0].legend()
    common.save_figure(fig, args.out / "grad_flow.png")


def report(results: dict, args) -> str:
    baseline = copy_memory_baseline(args.length)
    def reach(norms):  # how much of the last step's gradient reaches the symbols' steps
        norms = np.asarray(norms)
        with np.errstate(divide="ignore"):
            return float(np.mean(np.log10(norms[:, COPY_LENGTH - 1] / norms[:, -1])))

    rows = [[name, f"{np.median(r['test_loss']):.4g}",
             " ".join(f"{x:.3g}" for x in r["test_loss"]),
             " ".join(f"{x:.2f}" for x in r["recall_accuracy"]),
             f"{sum(r['learned'])}/{len(r['learned'])}",
             f"{reach(r['grad_norms_init']):.2f}", f"{reach(r['grad_norms_trained']):.2f}"]
            for name, r in results.items()]
    return "\n".join([
        f"# Copy memory, T = {args.length}", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps.", "",
        f"Test cross-entropy per step on 1000 held-out sequences; memoryless baseline "
        f"10 ln 8 / (T + 20) = {baseline:.4f}; 'learned' = below {LEARNED} x baseline; "
        "recall = accuracy on the 10 recalled symbols (chance 0.125). Every seed is "
        "listed, including those that failed to learn. Plots: training.png, and "
        "<cell>/curves.png for each run's loss, recall and gradient norm.", "",
        "Gradient flow of the recall loss (grad_flow.png): log10 of ||dL/dh_k|| at the "
        "last symbol read (k = 9) relative to the last step, before and after training.", "",
        common.markdown_table(["cell", "median loss", "loss per seed", "recall per seed",
                               "learned", "log10 reach, init", "log10 reach, trained"],
                              rows), ""])


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments)
    for name in args.cells:
        make(name, args.hidden)  # fail on a bad name before any work
    args.out.mkdir(parents=True, exist_ok=True)
    results = {name: train_cell(name, args) for name in tqdm(args.cells, desc="cells")}
    plots(results, args)
    common.write_results(
        args, {"baseline": copy_memory_baseline(args.length),
               "results": {n: {k: v for k, v in r.items() if k != "history"}
                           for n, r in results.items()}},
        report(results, args))
    return results


if __name__ == "__main__":
    main()
