"""Activity recognition on video: per-frame CNN + LSTM, 3D CNN, or averaged frame scores?

The clips are `rnnjax.tasks.clips`: 12 frames of 24 x 24 pixels in which a square
moves right, up, left or down (the label) while a cross wanders at random, with
pixel noise, on frames that wrap around at the edges. Every single frame has the
same distribution whatever the label, so only the motion tells the class. Three
ways to classify a video:

- (a) LRCN: a CNN encodes each frame alone (the same weights for every frame), a
  recurrent cell (`--cells`, LSTM by default) reads the frame codes in order, and a
  Dense layer classifies its final state;
- (b) 3D CNN: convolutions over time and space at once (`rnnjax.vision.VideoEncoder`),
  the flattened map projected to the class scores;
- (c) frame average: a CNN scores each frame alone and the scores (logits) are
  averaged over the frames; it cannot see motion, and its accuracy shows what a
  single frame is worth here (chance, 0.25, by construction).

Each is trained on fresh clips at every step (several seeds at once) and scored on
one fixed test set: accuracy per seed, the steps each seed took to reach 95%,
parameter count, and inference time per clip (jitted, after compiling,
`block_until_ready`, the median of repeated batches; rough on a shared CPU).

The defaults come from trials at the quick size (8 frames of 16 x 16, one seed per
setting, two seeds each): with two convolution blocks (8, 16 channels) and pixel
noise 0.2 the LRCN stayed at chance for 400 steps on both seeds, while the 3D CNN
learned within 100; one block of 16 channels (a finer grid of positions for the
recurrent cell to compare) or noise 0.1 alone rescued one seed of two, both
together both seeds, within 200 steps. `--channels 8,16 --noise 0.2` shows the
LRCN's plateau.

    python -m experiments.activity --quick        # about a minute on a CPU
    python -m experiments.activity                # 3 seeds per model: ~35 min on 2 cores
    python -m experiments.activity --cells lstm,gru --models lrcn

Writes results/activity/{results.json, report.md, accuracy.png}; each model's run
checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax as rj
from experiments import common
from rnnjax import vision
from rnnjax.cells import make
from rnnjax.models import param_count
from rnnjax.tasks import clips as cl
from rnnjax.train import accuracy, softmax_cross_entropy

NAME = "activity"
MODELS = ("lrcn", "conv3d", "frame_average")
MODEL_TEXT = {"lrcn": "LRCN", "conv3d": "3D CNN", "frame_average": "frame average"}
DEFAULTS = dict(cells=["lstm"], models=list(MODELS), seeds=3, steps=2000, hidden=64,
                features=64, channels=[16], batch=32, lr=2e-3, clip=1.0, eval_every=200,
                checkpoint_every=1000, test_size=1000, frames=12, size=24, noise=0.1,
                timing_batch=256, timing_repeats=20)
QUICK = dict(seeds=2, steps=400, frames=8, size=16, batch=16, eval_every=50,
             checkpoint_every=400, test_size=400, timing_batch=128, timing_repeats=5)
TEST_KEY = 10_000
#: the test accuracy at which the report counts a seed as having learned the task
LEARNED = 0.95


def add_arguments(parser) -> None:
    parser.add_argument("--models", type=common.names_among(MODELS),
                        help=f"comma-separated, among {','.join(MODELS)}")
    parser.add_argument("--features", type=common.positive_int,
                        help="size of the per-frame code the LRCN's recurrent cell reads")
    parser.add_argument("--channels", type=common.comma_list(common.positive_int),
                        help="output channels of each convolution block (2D and 3D), "
                        "comma-separated")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="test clips")
    parser.add_argument("--frames", type=common.positive_int, help="frames per clip")
    parser.add_argument("--size", type=common.positive_int, help="frame height and width in pixels")
    parser.add_argument("--noise", type=float, help="standard deviation of the pixel noise")
    parser.add_argument("--timing-batch", dest="timing_batch", type=common.positive_int,
                        help="clips per timed inference batch")
    parser.add_argument("--timing-repeats", dest="timing_repeats", type=common.positive_int,
                        help="timed inference batches per model (the median is reported)")


# -- the models -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VideoClassifier:
    """One of the three models (`kind`, see the module) on videos [B, T, H, W, C]:
    `logits(params, videos) -> [B, classes]`. Params: `cnn` (the encoder), and for
    the LRCN `cell` and `head`."""

    kind: str
    cnn: Any                       # vision.ImageEncoder or vision.VideoEncoder
    video_shape: tuple[int, ...]   # one clip's [T, H, W, C]
    cell: rj.Cell | None = None
    head: rj.Dense | None = None

    def init(self, key):
        k_cnn, k_cell, k_head = jax.random.split(key, 3)
        shape = self.video_shape if self.kind == "conv3d" else self.video_shape[1:]
        params = {"cnn": self.cnn.init(k_cnn, shape)}
        if self.kind == "lrcn":
            params["cell"] = self.cell.init(k_cell, self.cnn.features)
            params["head"] = self.head.init(k_head, self.cell.hidden_size)
        return params

    def logits(self, params, videos):
        if self.kind == "conv3d":
            return self.cnn(params["cnn"], videos)
        codes = self.cnn.frames(params["cnn"], videos)              # [B, T, F]
        if self.kind == "frame_average":
            return jnp.mean(codes, axis=1)
        carry, _ = rj.unroll(self.cell, params["cell"], codes)
        return self.head(params["head"], self.cell.hidden(carry))


def build(kind: str, cell: str | None, args) -> VideoClassifier:
    """The model `kind` with the study's sizes: the LRCN's frame CNN gives
    `args.features` codes to a cell of `args.hidden`; the other two end in the class
    scores."""
    classes, channels = len(cl.DIRECTIONS), tuple(args.channels)
    shape = (args.frames, args.size, args.size, 1)
    if kind == "lrcn":
        return VideoClassifier(kind, vision.ImageEncoder(args.features, channels), shape,
                               make(cell, args.hidden), rj.Dense(classes))
    if kind == "conv3d":
        return VideoClassifier(kind, vision.VideoEncoder(classes, channels), shape)
    return VideoClassifier(kind, vision.ImageEncoder(classes, channels), shape)


def clip_data(key, batch: int, args):
    """(videos [B, T, H, W, 1], labels [B]) of `batch` clips of the study's size."""
    clips = cl.clip_batch(key, batch, args.frames, args.size, noise=args.noise)
    return clips.videos, clips.labels


def seconds_per_clip(model: VideoClassifier, params, videos, repeats: int) -> float:
    """Inference time per clip: the jitted logits on `videos`, compiled first, the
    median of `repeats` timed calls (each waited for) divided by the batch size."""
    logits = jax.jit(model.logits)
    jax.block_until_ready(logits(params, videos))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(logits(params, videos))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / videos.shape[0]


def run(kind: str, cell: str | None, batch_fn, test, args, run_dir: Path) -> dict:
    """Train `args.seeds` models of `kind` at once on `batch_fn(step)` and score them on
    `test` (videos, labels): test accuracy every `args.eval_every` steps and at the
    end, parameter count, inference seconds per clip (first seed)."""
    started = time.perf_counter()
    model = build(kind, cell, args)
    videos, labels = test

    def loss_fn(params, batch, key):
        return softmax_cross_entropy(model.logits(params, batch[0]), batch[1]), {}

    @jax.jit
    def scores(params, videos, labels):
        def one(p):
            logits = model.logits(p, videos)
            return {"accuracy": accuracy(logits, labels),
                    "loss": softmax_cross_entropy(logits, labels)}
        return jax.vmap(one)(params)

    trained = common.train(
        run_dir, model.init, loss_fn, batch_fn, args, hyper={"learning_rate": args.lr},
        clip=args.clip,
        evaluate=lambda p: {"test_accuracy": scores(p, videos, labels)["accuracy"]},
        eval_every=common.eval_interval(args),
        settings={"model": kind, "cell": cell, "hidden": args.hidden,
                  "features": args.features, "channels": args.channels,
                  "batch": args.batch, "frames": args.frames, "size": args.size,
                  "noise": args.noise},
        desc=f"activity {kind}{f' {cell}' if cell else ''}")
    values = common.on_trained(
        lambda p: jnp.stack([scores(p, videos, labels)[k] for k in ("accuracy", "loss")]),
        trained)
    final = {"test_accuracy": values[0].tolist(), "test_loss": values[1].tolist()}
    first = jax.tree_util.tree_map(lambda x: x[0], trained.initial if trained.params is None
                                   else trained.params)
    timing = videos[:args.timing_batch]
    steps, values = common.series(trained.history, "test_accuracy")
    curve = [*zip(steps, values.tolist()), (args.steps, final["test_accuracy"])]
    label = MODEL_TEXT[kind] + (f" ({common.cell_label(cell)})" if kind == "lrcn" else "")
    return {"model": kind, "cell": cell, "label": label,
            "params": param_count(first),
            "seconds_per_clip": seconds_per_clip(model, first, timing, args.timing_repeats),
            "timing_batch": int(timing.shape[0]), "curve": curve,
            "steps_to_learned": steps_to(curve, LEARNED),
            "final": final, "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


# -- reporting ------------------------------------------------------------------------
def steps_to(curve, level: float) -> list:
    """Per seed, the first evaluated step whose test accuracy reached `level` (None:
    never), from a run's curve [(step, [accuracy per seed]), ...]."""
    seeds = len(curve[0][1])
    return [next((step for step, values in curve if values[s] >= level), None)
            for s in range(seeds)]


def plot(results: dict, args) -> None:
    """accuracy.png: test accuracy against training step (median, band: min-max over
    seeds); per model (every seed, median, min-max); and against inference time per
    clip (marker area: parameter count)."""
    plt = common.pyplot()
    fig, (curves, seeds, timing) = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(results)
    largest = max(r["params"] for r in results.values())
    for i, key in enumerate(names):
        r = results[key]
        common.band(curves, [s for s, _ in r["curve"]], [v for _, v in r["curve"]],
                    f"C{i}", r["label"])
        acc = np.nan_to_num(np.asarray(r["final"]["test_accuracy"], np.float64))
        seeds.vlines(i, acc.min(), acc.max(), color=f"C{i}", lw=2)
        seeds.plot(i, np.median(acc), "o", color=f"C{i}")
        seeds.plot(np.full(acc.shape, i), acc, ".", color="k", ms=3)
        timing.scatter(1e3 * r["seconds_per_clip"], np.median(acc),
                       s=30 + 300 * r["params"] / largest, color=f"C{i}", alpha=0.7,
                       label=f"{r['label']}, {r['params']:,} params")
    for ax in (curves, seeds, timing):
        ax.axhline(1 / len(cl.DIRECTIONS), color="gray", ls="--", lw=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    curves.set(xlabel="training step", ylabel="test accuracy", title="learning")
    curves.legend(fontsize=7)
    seeds.set_xticks(range(len(names)), [results[k]["label"] for k in names], rotation=20,
                     ha="right", fontsize=8)
    seeds.set(ylabel="test accuracy", title="after training, per seed")
    timing.set_xscale("log")
    timing.set(xlabel="inference ms per clip (jitted, shared CPU: rough)",
               ylabel="median test accuracy", title="accuracy, time and size")
    timing.legend(fontsize=7)
    common.save_figure(fig, args.out / "accuracy.png")


def report(results: dict, args) -> str:
    def reached(r):
        steps = steps_to(r["curve"], LEARNED)
        return ", ".join("-" if s is None else str(s) for s in steps)

    rows = [[r["label"], common.spread(r["final"]["test_accuracy"]),
             common.spread(r["final"]["test_loss"]), reached(r), f"{r['params']:,}",
             f"{1e3 * r['seconds_per_clip']:.3g}", f"{r['seconds']:.0f}",
             "yes" if r["nonfinite"] else "no"] for r in results.values()]
    return "\n".join([
        "# Activity recognition on video: LRCN, 3D CNN, frame average", "",
        f"Command: `{common.command_line()}`", "",
        f"Clips of {args.frames} frames of {args.size} x {args.size} pixels: a 5 x 5 square moves "
        f"{', '.join(cl.DIRECTIONS)} (the label, 1 or 2 pixels a frame) while a cross "
        f"wanders at random; pixel noise of deviation {args.noise}; the frame wraps "
        "around at its edges, so every single frame has the same distribution for "
        "every label. Training: fresh clips every step; test: "
        f"{args.test_size} fixed clips.", "",
        f"Models: (a) LRCN: a CNN (channels {args.channels}, 3 x 3 convolutions, ReLU, "
        f"2 x 2 max pooling, projected to {args.features}) on each frame, a recurrent "
        f"layer of {args.hidden} over the frame codes, Dense to the classes from its "
        f"final state; (b) 3D CNN: 3 x 3 x 3 convolutions with channels {args.channels}, "
        "ReLU, 1 x 2 x 2 pooling (time kept), projected to the class scores; (c) frame "
        "average: the same 2D CNN projected to class scores on each frame, the scores "
        f"averaged over frames. Adam lr {args.lr}, clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps, {args.seeds} seeds per model.", "",
        "Test accuracy (chance 0.25) and loss, median (min-max) over seeds; every seed "
        "counts, including those that failed to learn. Steps to "
        f"{LEARNED:.0%}: the first evaluation (every {common.eval_interval(args)} steps) at "
        "which a seed's test accuracy reached it ('-': never). Inference time per clip: the "
        f"jitted model on a batch of {args.timing_batch} test clips, after compiling, "
        f"waited for with block_until_ready, the median of {args.timing_repeats} "
        "batches, divided by the batch size; measured on a CPU shared with other jobs, "
        "so the times are rough (their order of magnitude, not their ratios to a few "
        "percent). Device: " + ", ".join(str(d) for d in jax.devices()) + ".", "",
        common.markdown_table(["model", "test accuracy", "test loss",
                               f"steps to {LEARNED:.0%} (per seed)", "params", "ms per clip",
                               "train seconds", "diverged"], rows), "",
        "The frame average sees each frame alone, and a frame alone holds no "
        "information on the label here (rnnjax.tasks.clips explains why this is "
        "exact): its accuracy can only be chance, whatever its training; the other "
        "two must compare frames.", "",
        "Plot: accuracy.png (test accuracy against training step, median and min-max "
        "over seeds; after training, per seed; median accuracy against time per clip, "
        "marker area growing with the parameter count).", ""])


def check(args) -> None:
    """Fail on a bad model, cell or setting before any work."""
    common.check_cells(args)
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    jax.eval_shape(lambda: clip_data(jax.random.key(0), 1, args))   # the sizes fit clips
    for kind in args.models:   # the channels fit the frames
        model = build(kind, args.cells[0], args)
        jax.eval_shape(model.init, jax.random.key(0))


def units(args) -> list[tuple[str, str, str | None]]:
    """(key, model, cell) of every run: an LRCN per cell, the others once."""
    out = []
    for kind in args.models:
        if kind == "lrcn":
            out += [(f"lrcn/{cell}", kind, cell) for cell in args.cells]
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

    results = {key: run(kind, cell, batch_fn, test, args, args.out / common.folder(key))
               for key, kind, cell in units(args)}
    plot(results, args)
    common.write_results(args, {"classes": cl.DIRECTIONS, "chance": 1 / len(cl.DIRECTIONS),
                                "results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
