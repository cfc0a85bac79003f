"""Gradient flow through time for every cell type and initialisation.

For each cell type (default init), for tanh/LSTM/GRU with the recurrent weights
orthogonal scaled by rho in {0.5, 0.9, 1.0, 1.1, 1.5}, and for the IRNN:
  - ||dL/dh_k|| against the distance T-1-k (one backward pass), its fitted decay
    rate per step, half-life and explosion flag, over seeds;
  - the spectral norm of dh_{T-1}/dh_k (exact) and the Lyapunov spectrum (QR method);
  - the parameter gradient's norm against the BPTT truncation length;
and the effect of global-norm gradient clipping on an exploding RNN trained on the
adding problem.

    python -m experiments.gradient_flow --quick      # a couple of minutes on a CPU

Writes results/gradient_flow/{results.json, report.md, grad_flow_cells.png,
grad_flow_rho.png, lyapunov.png, truncation.png, clipping.png}; finished probes are
kept in parts/, the clipping runs checkpoint to clipping/<run>/checkpoints, so a
rerun of the same command resumes where it stopped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from experiments import common
from rnnjax import probe
from rnnjax.cells import make
from rnnjax.models import cell_with_head
from rnnjax.tasks import ADDING_BASELINE_MSE, adding_batch

NAME = "gradient_flow"
DEFAULTS = dict(cells=["tanh", "relu", "irnn", "lstm", "peephole", "gru", "clockwork"],
                seeds=3, steps=400, hidden=32, lengths=[64, 256], rhos=[0.5, 0.9, 1.0, 1.1, 1.5],
                rho_cells=["tanh", "lstm", "gru"], input_scales=[1.0, 0.1], clip_rho=2.0,
                clip_length=50, batch=32, lr=0.05, clip=1.0, checkpoint_every=200)
QUICK = dict(seeds=2, steps=200, hidden=16, lengths=[64, 128], rho_cells=["tanh", "lstm"])
#: the momentum of the clipping study's SGD
MOMENTUM = 0.9


def add_arguments(parser):
    parser.add_argument("--lengths", type=common.comma_list(common.positive_int),
                        help="probe sequence lengths, comma-separated")
    parser.add_argument("--rhos", type=lambda s: [float(x) for x in s.split(",")],
                        help="scales of the orthogonal recurrent init, comma-separated")
    parser.add_argument("--rho-cells", dest="rho_cells", type=lambda s: s.split(","),
                        help="cell types that get the rho variants, comma-separated")
    parser.add_argument("--input-scales", dest="input_scales",
                        type=lambda s: [float(x) for x in s.split(",")],
                        help="stds of the probe's N(0, s^2) inputs, comma-separated (driven "
                             "units saturate; weak inputs expose the recurrent dynamics)")
    parser.add_argument("--clip-rho", dest="clip_rho", type=common.positive_float,
                        help="rho of the tanh RNN that the clipping study trains")
    parser.add_argument("--clip-length", dest="clip_length", type=common.positive_int,
                        help="sequence length T of the clipping study's adding task")


def configurations(args) -> dict:
    """Name -> cell: each cell type at its default init, then the rho variants."""
    cells = {name: make(name, args.hidden) for name in args.cells}
    for name in args.rho_cells:
        for rho in args.rhos:
            cells[f"{name} rho={rho}"] = make(name, args.hidden, recurrent_scale=rho)
    return cells


def probe_all(args) -> dict:
    """input scale -> config name -> the sweep's rows and arrays."""
    results = {}
    part_config = {k: getattr(args, k) for k in ("seeds", "hidden", "lengths")}
    cells = configurations(args)
    work = [(scale, name) for scale in args.input_scales for name in cells]
    for scale, name in tqdm(work, desc="probe"):
        key = f"probe_{scale}_" + name.replace(" ", "_").replace("=", "")
        saved = common.load_part(args.out, key, part_config)
        if saved is None:
            result = probe.sweep({name: cells[name]}, args.lengths, seeds=args.seeds,
                                 input_scale=scale)
            saved = {"rows": result.rows,
                     "arrays": {str(steps): {m: a.tolist() for m, a in arrays.items()}
                                for (_, steps), arrays in result.arrays.items()}}
            common.save_part(args.out, key, part_config, saved)
        results.setdefault(str(scale), {})[name] = saved
    return results


def truncation_study(args) -> dict:
    """||dL/dparams|| against the BPTT truncation length k (loss on the last output),
    relative to full BPTT, for each cell type at its default init, mean over seeds."""
    steps = max(args.lengths)
    part_config = {k: getattr(args, k) for k in ("seeds", "hidden", "lengths", "input_scales")}
    truncations = sorted({int(k) for k in np.unique(np.geomspace(1, steps, 12).round())})
    results = {}
    for name in tqdm(args.cells, desc="truncation"):
        key = "truncation_" + name
        saved = common.load_part(args.out, key, part_config)
        if saved is None:
            cell = make(name, args.hidden)
            k_init, k_x, k_u = jax.random.split(jax.random.key(3), 3)
            xs = args.input_scales[0] * jax.random.normal(k_x, (8, steps, 4))
            u = jax.random.normal(k_u, (args.hidden,))
            loss_fn = lambda ys: jnp.mean(ys[:, -1] @ u)
            norms = jax.jit(jax.vmap(lambda key: probe.truncated_param_grad_norms(
                cell, cell.init(key, 4), xs, loss_fn, truncations)))(
                    jax.random.split(k_init, args.seeds))
            norms = np.asarray(norms)
            saved = {"truncations": truncations, "norms": norms.tolist(),
                     "relative": (norms / norms[:, -1:]).mean(axis=0).tolist()}
            common.save_part(args.out, key, part_config, saved)
        results[name] = saved
    return results


def clipping_study(args) -> dict:
    """A tanh RNN with rho = clip_rho (chaotic, exploding gradients) trained by SGD with
    momentum on the adding problem, without and with global-norm clipping, several
    seeds at once; every step's loss and gradient norm (before clipping) is logged."""
    model = cell_with_head("tanh", args.hidden, 2, 1, recurrent_scale=args.clip_rho)

    def loss_fn(params, batch, key):
        xs, target = batch
        return jnp.mean((model.last(params, xs)[..., 0] - target) ** 2), {}

    results = {}
    for label, clip in (("no clipping", None), (f"clip {args.clip}", args.clip)):
        run_dir = args.out / "clipping" / label.replace(" ", "_")
        # a non-finite loss stops training: later steps count as non-finite for all seeds
        history = common.train(
            run_dir, model.init, loss_fn,
            lambda i: adding_batch(jax.random.fold_in(jax.random.key(7), i), args.batch,
                                   args.clip_length),
            args, hyper={"learning_rate": args.lr, "momentum": MOMENTUM}, clip=clip,
            optimizer=optax.sgd, log_every=1,
            settings={k: getattr(args, k) for k in ("hidden", "clip_rho", "clip_length",
                                                    "batch")},
            desc=f"{label:>11}").history
        pad = lambda values: np.pad(values.T, [(0, 0), (0, args.steps - len(values))],
                                    constant_values=np.nan)       # [seeds, steps]
        losses = pad(common.series(history, "loss")[1])
        norms = pad(common.series(history, "grad_norm")[1])
        results[label] = {
            "loss": losses.tolist(), "grad_norm": norms.tolist(),
            "final_loss": [float(np.mean(l[-20:])) for l in losses],
            "max_grad_norm": [float(np.nanmax(n)) for n in norms],
            "nonfinite_steps": [int(np.sum(~np.isfinite(l))) for l in losses],
            "seconds": common.train_seconds(history)}
    return results


def plots(probes: dict, truncation: dict, clipping: dict, args) -> None:
    plt = common.pyplot()
    longest = str(max(args.lengths))
    scales = list(probes)

    def curve(scale, name):
        norms = probes[scale][name]["arrays"][longest]["grad_norms"]
        return np.nanmean(common.log10_relative(norms), axis=0)

    def panels(rows, cols, width, height):
        return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)

    fig, axes = panels(1, len(scales), 6, 4.5)
    for ax, scale in zip(axes[0], scales):
        for i, name in enumerate(args.cells):
            ax.plot(curve(scale, name), color=f"C{i}", label=name)
        ax.set(xlabel="distance T-1-k", title=f"inputs N(0, {scale}^2), T = {longest}")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("log10 ||dL/dh_k|| / ||dL/dh_(T-1)||")
    axes[0, 0].legend()
    fig.suptitle("gradient flow at initialisation (mean over seeds)")
    common.save_figure(fig, args.out / "grad_flow_cells.png")

    fig, axes = panels(len(scales), len(args.rho_cells), 5, 3.8)
    for row, scale in enumerate(scales):
        for ax, cell in zip(axes[row], args.rho_cells):
            for i, rho in enumerate(args.rhos):
                ax.plot(curve(scale, f"{cell} rho={rho}"),
                        color=plt.cm.viridis(i / len(args.rhos)), label=f"rho = {rho}")
            ax.set(title=f"{cell}, W_h = rho * orthogonal, inputs N(0, {scale}^2)",
                   xlabel="distance T-1-k")
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel("log10 relative ||dL/dh_k||")
    axes[0, 0].legend()
    common.save_figure(fig, args.out / "grad_flow_rho.png")

    fig, axes = panels(1, len(scales), 6, 4.5)
    for ax, scale in zip(axes[0], scales):
        for i, name in enumerate(args.cells):
            spectrum = np.asarray(probes[scale][name]["arrays"][longest]["lyapunov"]).mean(0)
            ax.plot(np.arange(1, spectrum.size + 1), spectrum, "o-", ms=3, color=f"C{i}",
                    label=name)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="index i", title=f"Lyapunov spectra, inputs N(0, {scale}^2), T = {longest}")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Lyapunov exponent (ln, per step)")
    axes[0, 0].legend()
    common.save_figure(fig, args.out / "lyapunov.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, r) in enumerate(truncation.items()):
        ax.plot(r["truncations"], r["relative"], "o-", ms=3, color=f"C{i}", label=name)
    ax.set(xscale="log", xlabel="BPTT truncation length k (steps)",
           ylabel="||dL/dparams|| truncated / full BPTT",
           title=f"how much gradient the far past carries (T = {longest}, "
                 f"inputs N(0, {args.input_scales[0]}^2))")
    ax.grid(alpha=0.3)
    ax.legend()
    common.save_figure(fig, args.out / "truncation.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (label, r) in enumerate(clipping.items()):
        for j, (loss, norm) in enumerate(zip(r["loss"], r["grad_norm"])):
            axes[0].plot(loss, color=f"C{i}", alpha=0.6, label=label if j == 0 else None)
            axes[1].plot(norm, color=f"C{i}", alpha=0.6, label=label if j == 0 else None)
    axes[0].axhline(ADDING_BASELINE_MSE, color="k", ls="--", lw=1, label="baseline")
    axes[0].set(yscale="log", xlabel="step", ylabel="training MSE",
                title=f"tanh RNN, rho = {args.clip_rho}, adding T = {args.clip_length}")
    axes[1].set(yscale="log", xlabel="step", ylabel="global gradient norm (before clipping)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    common.save_figure(fig, args.out / "clipping.png")


def report(probes: dict, truncation: dict, clipping: dict, args) -> str:
    header = ["cell / init", "T", "rate", "half-life", "exploding", "log10 ratio",
              "jacobian rate", "lambda_max"]
    tables = []
    for scale, by_name in probes.items():
        rows = [[name, row["T"], f"{row['grad_rate']:.4f} ± {row['grad_rate_std']:.4f}",
                 f"{row['grad_half_life']:.3g}", f"{row['exploding']:.2f}",
                 f"{row['grad_log10_ratio']:.2f}", f"{row['jacobian_rate']:.4f}",
                 f"{row['lyapunov_max']:.4f} ± {row['lyapunov_max_std']:.4f}"]
                for name, r in by_name.items() for row in r["rows"]]
        tables += [f"## Inputs N(0, {scale}^2)", "", common.markdown_table(header, rows), ""]
    clip_rows = [[label, " ".join(f"{x:.3g}" for x in r["final_loss"]),
                  " ".join(f"{x:.3g}" for x in r["max_grad_norm"]),
                  " ".join(str(x) for x in r["nonfinite_steps"])]
                 for label, r in clipping.items()]
    return "\n".join([
        "# Gradient flow through time", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds (initialisations) per row; inputs "
        "N(0, s^2) with s per section; loss = h_(T-1) . u for a fixed unit vector u, so "
        "dL/dh_k is the signal sent back T-1-k steps.", "",
        "- rate: fitted slope of ln ||dL/dh_k|| per step back (mean ± std over seeds); "
        "half-life: steps for the gradient to halve (inf: no decay); exploding: fraction "
        "of seeds whose norms grow significantly;",
        "- log10 ratio: log10 ||dL/dh_0|| / ||dL/dh_(T-1)||;",
        "- jacobian rate: the same fit for the spectral norm of dh_(T-1)/dh_k (exact);",
        "- lambda_max: largest Lyapunov exponent (QR method, ln per step). Negative: "
        "perturbations (and gradients) die out; positive: chaos, exploding gradients; "
        "-inf: the product of step Jacobians is exactly singular over the window (ReLU "
        "units switched off at some step kill every direction).", "",
        "Plots: grad_flow_cells.png, grad_flow_rho.png, lyapunov.png.", "",
        *tables,
        "## Truncated BPTT: the far past's share of the parameter gradient", "",
        f"||dL/dparams|| with backpropagation cut k steps before the end, relative to full "
        f"BPTT (T = {max(args.lengths)}, inputs N(0, {args.input_scales[0]}^2), mean over "
        "seeds). A ratio near 1 at small k: the far past contributes little. Plot: "
        "truncation.png.", "",
        common.markdown_table(["cell"] + [f"k={k}" for k in next(iter(truncation.values()))[
            "truncations"]], [[name] + [f"{v:.3g}" for v in r["relative"]]
                              for name, r in truncation.items()]), "",
        f"## Gradient clipping on an exploding RNN (tanh, rho = {args.clip_rho})", "",
        f"SGD (lr {args.lr}, momentum {MOMENTUM}), adding problem T = {args.clip_length}, "
        f"{args.steps} steps, batch {args.batch} (the same batches for every seed); baseline "
        f"MSE {ADDING_BASELINE_MSE:.4f}. Per seed: final training MSE (mean of the last 20 "
        "steps), the largest gradient norm seen, and the steps whose loss was not finite "
        "(training stops at the first one, of any seed). Plot: clipping.png.", "",
        common.markdown_table(["training", "final MSE per seed", "max grad norm per seed",
                               "non-finite steps"], clip_rows), ""])


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=configurations)
    args.out.mkdir(parents=True, exist_ok=True)
    probes = probe_all(args)
    truncation = truncation_study(args)
    clipping = clipping_study(args)
    plots(probes, truncation, clipping, args)
    common.write_results(args, {"probe": probes, "truncation": truncation,
                                "clipping": clipping},
                         report(probes, truncation, clipping, args))
    return probes, truncation, clipping


if __name__ == "__main__":
    main()
