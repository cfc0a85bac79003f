"""Frame prediction: a ConvLSTM, a CNN + LSTM with a Dense decoder, or the last frame?

The clips are `rnnjax.tasks.bouncing` (Moving-MNIST-style): grey frames of size x
size pixels in which a few shapes move in straight lines and bounce off the edges.
The first `--observed` frames are shown, the rest are to be predicted. Three
predictors (`rnnjax.models.frame_predictor`):

- conv: a convolutional recurrent cell (`--conv-cells`, ConvLSTM by default; Shi et
  al., 2015) reads the frames themselves and a 1 x 1 convolution of its hidden map
  gives the next frame's pixel logits;
- latent: a CNN codes each frame as a vector, a vector cell (`--cells`, LSTM by
  default) reads the codes, and a Dense layer decodes its state into all pixels
  (after Srivastava et al., 2015);
- copy_last: every future frame is the last observed one (no parameters).

The trained models learn next-frame prediction with teacher forcing (the true frames
in, the binary cross-entropy of the next frame's pixels out, on fresh clips every
step, several seeds at once); at test they read the observed frames and then roll
out, their own predictions (probabilities) fed back in. Measured per step of the
horizon on a fixed test set: mean squared error of the pixel probabilities, binary
cross-entropy per pixel (probabilities clipped to [1e-6, 1 - 1e-6]: the copy's 0/1
frames are otherwise infinitely wrong), and the fraction of pixels wrong at a 0.5
threshold; per model, parameters and rollout time per clip.

    python -m experiments.frame_prediction --quick     # about 2 minutes on a 2-core CPU
    python -m experiments.frame_prediction             # 3 seeds, 600 steps: docs/results.md
    python -m experiments.frame_prediction --conv-cells convlstm,convgru --models conv

Writes results/frame_prediction/{results.json, report.md, horizon.png, frames.png};
each trained model checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from rnnjax.cells import CONV_CELL_TYPES
from rnnjax.models import FramePredictor, copy_last, param_count
from rnnjax.tasks import bouncing

NAME = "frame_prediction"
MODELS = ("conv", "latent", "copy_last")
DEFAULTS = dict(cells=["lstm"], conv_cells=["convlstm"], models=list(MODELS), seeds=3,
                steps=600, hidden=128, conv_hidden=12, conv_layers=1, kernel_size=3,
                features=64, channels=[8, 16], batch=8, lr=2e-3, clip=1.0, eval_every=100,
                checkpoint_every=200, test_size=128, frames=12, observed=6, size=16,
                objects=2, radius=2, timing_batch=64, timing_repeats=5)
QUICK = dict(seeds=2, steps=150, hidden=64, conv_hidden=8, features=32, frames=10,
             observed=5, eval_every=50, checkpoint_every=150, test_size=64, timing_batch=32,
             timing_repeats=3)
TEST_KEY = 10_000
#: probabilities are clipped to [EPS, 1 - EPS] for the cross-entropy
EPS = 1e-6
METRICS = ("mse", "bce", "pixel_error")


def add_arguments(parser) -> None:
    parser.add_argument("--models", type=common.names_among(MODELS),
                        help=f"comma-separated, among {','.join(MODELS)}")
    parser.add_argument("--conv-cells", dest="conv_cells",
                        type=common.names_among(tuple(CONV_CELL_TYPES)),
                        help=f"the conv model's cells, among {','.join(CONV_CELL_TYPES)}")
    parser.add_argument("--conv-hidden", dest="conv_hidden", type=common.positive_int,
                        help="hidden channels of each convolutional recurrent layer")
    parser.add_argument("--conv-layers", dest="conv_layers", type=common.positive_int,
                        help="stacked convolutional recurrent layers")
    parser.add_argument("--kernel-size", dest="kernel_size", type=common.positive_int,
                        help="k of the k x k convolutions of the conv cells (odd)")
    parser.add_argument("--features", type=common.positive_int,
                        help="size of the latent model's per-frame code")
    parser.add_argument("--channels", type=common.comma_list(common.positive_int),
                        help="the latent model's CNN: output channels of each block")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="test clips")
    parser.add_argument("--frames", type=common.positive_int, help="frames per clip")
    parser.add_argument("--observed", type=common.positive_int,
                        help="frames shown before the rollout (the rest are predicted)")
    parser.add_argument("--size", type=common.positive_int, help="frame height and width")
    parser.add_argument("--objects", type=common.positive_int, help="shapes per clip")
    parser.add_argument("--radius", type=common.positive_int, help="radius of each shape")
    parser.add_argument("--timing-batch", dest="timing_batch", type=common.positive_int,
                        help="clips per timed rollout batch")
    parser.add_argument("--timing-repeats", dest="timing_repeats", type=common.positive_int,
                        help="timed rollout batches per model (the median is reported)")


def build(kind: str, cell: str, args) -> FramePredictor:
    """The trained model `kind` ("conv" or "latent") with its cell `cell`."""
    frame = (args.size, args.size, 1)
    if kind == "conv":
        return FramePredictor.conv(cell, args.conv_hidden, frame, layers=args.conv_layers,
                                   kernel_size=args.kernel_size)
    return FramePredictor.latent(cell, args.hidden, frame, features=args.features,
                                 channels=tuple(args.channels))


def clip_data(key, batch: int, args):
    """Videos [B, frames, size, size, 1] of the study's clips."""
    return bouncing.bouncing_batch(key, batch, args.frames, args.size, args.objects,
                                   args.radius).videos


def horizon_errors(predicted, truth):
    """{metric: [horizon]} of predictions and true frames [B, horizon, H, W, 1], each
    the mean over clips and pixels at every step of the horizon."""
    axes = (0, 2, 3, 4)
    p = jnp.clip(predicted, EPS, 1 - EPS)
    bce = -(truth * jnp.log(p) + (1 - truth) * jnp.log1p(-p))
    return {"mse": jnp.mean((predicted - truth) ** 2, axis=axes),
            "bce": jnp.mean(bce, axis=axes),
            "pixel_error": jnp.mean((predicted > 0.5) != (truth > 0.5), axis=axes)}


def run(kind: str, cell: str, batch_fn, test, args, run_dir: Path) -> dict:
    """Train `args.seeds` models of `kind` at once with teacher forcing and score their
    rollouts on `test` [N, frames, H, W, 1]: the horizon errors per seed, the mean
    rollout MSE every `args.eval_every` steps, parameters, rollout time per clip."""
    started = time.perf_counter()
    model = build(kind, cell, args)
    horizon = args.frames - args.observed
    truth = test[:, args.observed:]

    def loss_fn(params, videos, key):
        logits = model.teacher_forced(params, videos)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, videos[:, 1:])), {}

    @jax.jit
    def scores(params):
        return jax.vmap(lambda p: horizon_errors(
            model.rollout(p, test, args.observed, horizon), truth))(params)

    trained = common.train(
        run_dir, model.init, loss_fn, batch_fn, args, hyper={"learning_rate": args.lr},
        clip=args.clip, evaluate=lambda p: {"test_mse": scores(p)["mse"].mean(axis=1)},
        eval_every=common.eval_interval(args),
        settings={"model": kind, "cell": cell, "hidden": args.hidden,
                  "conv_hidden": args.conv_hidden, "conv_layers": args.conv_layers,
                  "kernel_size": args.kernel_size, "features": args.features,
                  "channels": args.channels, "batch": args.batch, "frames": args.frames,
                  "size": args.size, "objects": args.objects, "radius": args.radius},
        desc=f"frame prediction {kind} {cell}")
    values = common.on_trained(lambda p: jnp.stack([scores(p)[m] for m in METRICS]), trained)
    first = jax.tree_util.tree_map(lambda x: x[0], trained.initial if trained.params is None
                                   else trained.params)
    steps, curve = common.series(trained.history, "test_mse")
    seconds, frames = common.timed(lambda v: model.rollout(first, v, args.observed, horizon),
                                   test[:args.timing_batch], repeats=args.timing_repeats,
                                   examples=len(test[:args.timing_batch]))
    return {"model": kind, "cell": cell, "label": label(kind, cell),
            "params": param_count(first), "seconds_per_clip": seconds,
            "horizon": {m: values[i].tolist() for i, m in enumerate(METRICS)},
            "curve": [*zip(steps, curve.tolist()),
                      (args.steps, values[0].mean(axis=1).tolist())],
            "samples": frames[:2].tolist(), "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def baseline(test, args) -> dict:
    """The copy of the last observed frame, scored like the trained models (one
    'seed': it is deterministic)."""
    horizon = args.frames - args.observed
    errors = horizon_errors(copy_last(test, args.observed, horizon), test[:, args.observed:])
    seconds, frames = common.timed(lambda v: copy_last(v, args.observed, horizon),
                                   test[:args.timing_batch], repeats=args.timing_repeats,
                                   examples=len(test[:args.timing_batch]))
    return {"model": "copy_last", "cell": None, "label": label("copy_last", None),
            "params": 0, "seconds_per_clip": seconds,
            "horizon": {m: [np.asarray(errors[m]).tolist()] for m in METRICS},
            "curve": [], "samples": frames[:2].tolist(),
            "nonfinite": False, "seconds": 0.0, "wall_seconds": 0.0}


def label(kind: str, cell: str | None) -> str:
    if kind == "conv":
        return type(CONV_CELL_TYPES[cell](1, (1, 1))).__name__
    if kind == "latent":
        return f"CNN + {common.cell_label(cell)} + Dense"
    return "copy last frame"


# -- reporting ------------------------------------------------------------------------
def plot(results: dict, test, args) -> None:
    """horizon.png: each metric against the step of the horizon (median over seeds,
    band min-max); frames.png: a test clip's last observed frame and the frames to
    predict, the truth above each model's rollout (first seed)."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8))
    steps = np.arange(1, args.frames - args.observed + 1)
    titles = {"mse": "mean squared error", "bce": "cross-entropy per pixel (nats)",
              "pixel_error": "pixels wrong at 0.5"}
    for i, r in enumerate(results.values()):
        for ax, metric in zip(axes, METRICS):
            common.band(ax, steps, np.asarray(r["horizon"][metric], np.float64).T, f"C{i}",
                        r["label"])
    axes[0].axhline(constant_mse(test, args), color="gray", ls="--", lw=1,
                    label="constant frame at the mean density")
    for ax, metric in zip(axes, METRICS):
        ax.set(xlabel="frames after the last observed one", title=titles[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    common.save_figure(fig, args.out / "horizon.png")

    clip = np.asarray(test[0, args.observed - 1:, :, :, 0])
    rows = [("truth", clip)] + [
        (r["label"], np.concatenate([clip[:1], np.asarray(r["samples"])[0, :, :, :, 0]]))
        for r in results.values()]
    fig, grid = plt.subplots(len(rows), len(clip), figsize=(1.1 * len(clip), 1.2 * len(rows)),
                             squeeze=False)
    for row, (name, frames) in zip(grid, rows):
        for t, ax in enumerate(row):
            ax.imshow(frames[t], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(name, fontsize=6, rotation=0, ha="right", va="center")
        row[0].set_title("last seen", fontsize=7)
        for t in range(1, len(row)):
            row[t].set_title(f"+{t}", fontsize=7)
    common.save_figure(fig, args.out / "frames.png")


def constant_mse(test, args) -> float:
    """The MSE of predicting every pixel as the mean density rho of the observed frames
    (a frame's pixels are 0 or 1): rho (1 - rho), the level of a model that predicts
    the pixels' marginal and nothing of where the shapes are."""
    rho = float(np.mean(np.asarray(test[:, :args.observed])))
    return rho * (1 - rho)


def beats_copy(results: dict) -> dict:
    """Per trained model: whether every seed's rollout MSE is below the copy's at every
    step of the horizon (None without the copy)."""
    copy = results.get("copy_last")
    if copy is None:
        return {}
    floor = np.asarray(copy["horizon"]["mse"][0])
    return {key: bool((np.asarray(r["horizon"]["mse"]) < floor).all())
            for key, r in results.items() if key != "copy_last"}


def report(results: dict, args, level: float) -> str:
    """report.md; `level` is `constant_mse` of the test clips."""
    horizon = args.frames - args.observed
    mean_over = lambda r, m: np.asarray(r["horizon"][m], np.float64).mean(axis=1)
    rows = [[r["label"], common.spread(np.asarray(r["horizon"]["mse"])[:, 0]),
             common.spread(np.asarray(r["horizon"]["mse"])[:, -1]),
             common.spread(mean_over(r, "mse")), common.spread(mean_over(r, "bce")),
             common.spread(mean_over(r, "pixel_error")), f"{r['params']:,}",
             f"{1e3 * r['seconds_per_clip']:.3g}", f"{r['seconds']:.0f}",
             "yes" if r["nonfinite"] else "no"] for r in results.values()]
    seed_rows = [[r["label"], s, *(f"{v:.4f}" for v in mse), f"{np.mean(mse):.4f}"]
                 for r in results.values()
                 for s, mse in enumerate(np.asarray(r["horizon"]["mse"], np.float64))]
    beaten = beats_copy(results)
    verdict = [f"- {results[k]['label']}: {'yes' if v else 'no'}" for k, v in beaten.items()]
    below = [f"- {r['label']}: "
             + ", ".join(f"+{h + 1}" for h in range(horizon)
                         if np.median(np.asarray(r["horizon"]["mse"])[:, h]) < level)
             for r in results.values() if r["model"] != "copy_last"]
    return "\n".join([
        "# Frame prediction: ConvLSTM, CNN + LSTM + Dense, copy of the last frame", "",
        f"Command: `{common.command_line()}`", "",
        f"Clips (rnnjax.tasks.bouncing) of {args.frames} frames of {args.size} x {args.size} "
        f"pixels, {args.objects} shapes of radius {args.radius} bouncing off the edges at "
        f"1 or 2 pixels a frame per axis; the first {args.observed} frames observed, the "
        f"next {horizon} predicted by a rollout that feeds each predicted frame back in. "
        f"Training: teacher forcing, binary cross-entropy of the next frame's pixels, "
        f"fresh clips every step, Adam lr {args.lr}, clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps, {args.seeds} seeds per model; test: {args.test_size} fixed "
        "clips.", "",
        f"Models: conv: {args.conv_layers} x {args.conv_hidden}-channel "
        f"{', '.join(args.conv_cells)} ({args.kernel_size} x {args.kernel_size} kernels) "
        f"and a 1 x 1 convolution to the pixel logits; latent: a CNN (channels "
        f"{args.channels}, 3 x 3, ReLU, 2 x 2 pooling, projected to {args.features}) per "
        f"frame, a recurrent layer of {args.hidden}, a Dense decoder to all "
        f"{args.size * args.size} pixels; copy: the last observed frame.", "",
        "Errors of the rollout, median (min-max) over seeds (every seed counts, "
        "diverged ones as NaN): MSE of the pixel probabilities at the first and the "
        "last predicted frame and averaged over the horizon; cross-entropy per pixel "
        f"(probabilities clipped to [{EPS:g}, 1 - {EPS:g}]) and pixels wrong at a 0.5 "
        "threshold, averaged over the horizon. Rollout time per clip: jitted, on "
        f"{args.timing_batch} clips, after compiling, the median of "
        f"{args.timing_repeats} batches over the batch size, on a CPU shared with other "
        "jobs (rough). Device: " + ", ".join(str(d) for d in jax.devices()) + ".", "",
        common.markdown_table(["model", "MSE +1", f"MSE +{horizon}", "MSE mean",
                               "BCE mean", "pixels wrong", "params", "ms per clip",
                               "train seconds", "diverged"], rows), "",
        "Rollout MSE per seed at every step of the horizon (+1 ... "
        f"+{horizon}) and its mean:", "",
        common.markdown_table(["model", "seed", *(f"+{h}" for h in range(1, horizon + 1)),
                               "mean"], seed_rows), "",
        "Below the copy's MSE at every step of the horizon, on every seed:", "",
        *(verdict or ["- (no copy baseline in this run)"]), "",
        "A constant frame at the mean pixel density rho of the observed frames has MSE "
        f"rho (1 - rho) = {level:.4f}: the level of a prediction that knows how much of "
        "a frame is lit but not where. Steps of the horizon at which a model's median "
        "MSE is below it:", "", *(below or ["- (no trained model in this run)"]), "",
        "Plots: horizon.png (each error against the step of the horizon, median and "
        "min-max over seeds), frames.png (a test clip: the last observed frame and the "
        "true future above each model's rollout, first seed).", ""])


def check(args) -> None:
    """Fail on a bad setting before any work."""
    common.check_cells(args)
    if args.observed >= args.frames:
        raise ValueError(f"--observed must be less than --frames ({args.frames}), so that "
                         f"some frames are predicted, got {args.observed}")
    if args.kernel_size % 2 == 0:
        raise ValueError(f"--kernel-size must be odd, got {args.kernel_size}")
    jax.eval_shape(lambda: clip_data(jax.random.key(0), 1, args))   # the sizes fit clips
    for kind in ("conv", "latent"):
        if kind in args.models:
            cell = args.conv_cells[0] if kind == "conv" else args.cells[0]
            jax.eval_shape(build(kind, cell, args).init, jax.random.key(0))


def units(args) -> list[tuple[str, str, str | None]]:
    """(key, model, cell) of every run: a conv model per conv cell, a latent model per
    cell, the copy once."""
    out = []
    for kind in args.models:
        if kind == "conv":
            out += [(f"conv/{cell}", kind, cell) for cell in args.conv_cells]
        elif kind == "latent":
            out += [(f"latent/{cell}", kind, cell) for cell in args.cells]
        else:
            out.append((kind, kind, None))
    return out


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    test = clip_data(jax.random.key(TEST_KEY), args.test_size, args)

    def batch_fn(step):   # one function for every model: compiled once
        return clip_data(jax.random.fold_in(jax.random.key(1), step), args.batch, args)

    results = {key: (baseline(test, args) if kind == "copy_last" else
                     run(kind, cell, batch_fn, test, args, args.out / common.folder(key)))
               for key, kind, cell in units(args)}
    plot(results, test, args)
    level = constant_mse(test, args)
    common.write_results(args, {"horizon": args.frames - args.observed,
                                "beats_copy": beats_copy(results),
                                "constant_frame_mse": level, "results": results},
                         report(results, args, level))
    return results


if __name__ == "__main__":
    main()
