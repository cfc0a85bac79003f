"""Activity recognition on video: CNN + RNN, 3D CNN, frame by frame, or two streams?

The clips are `rnnjax.tasks.clips`: 12 frames of 24 x 24 pixels in which a square
moves right, up, left or down (the label) while a cross wanders at random, with
pixel noise, on frames that wrap around at the edges. Every single frame has the
same distribution whatever the label, so only the motion tells the class. The ways
to classify a video that the course material compares (`rnnjax.models.VideoClassifier`):

- (a) LRCN: a CNN encodes each frame alone (the same weights for every frame), a
  recurrent cell (`--cells`, LSTM by default) reads the frame codes in order, and a
  Dense layer classifies its final state;
- (b) 3D CNN: convolutions over time and space at once (`rnnjax.vision.VideoEncoder`),
  the flattened map projected to the class scores;
- (c) frame by frame: a CNN scores each frame alone; the clip's label is the mean of
  the frames' scores, or the majority vote of the frames' labels (both reported). It
  cannot see motion, only which places the frames visit (a single frame alone is at
  chance, 0.25, by construction: see `rnnjax.tasks.clips`);
- (d) two-stream: a spatial stream as (c) and a temporal stream, a CNN on the stacked
  differences between consecutive frames (`two_stream`) or on their Horn-Schunck
  optical flow (`two_stream_flow`), trained as two networks and fused late (the mean
  of the two streams' log-probabilities).

Each is trained either on fresh clips at every step (`--train-clips 0`) or on a fixed
set of N clips in epochs (`--train-clips 250,1000,4000`: the material's "requires lots
of data", measured), several seeds at once, and scored on one fixed test set: accuracy
per seed, the steps each seed took to reach 95%, parameter count, and inference time
per clip (jitted, after compiling, `block_until_ready`, the median of repeated batches;
rough on a shared CPU).

The defaults come from trials at the quick size (8 frames of 16 x 16, one seed per
setting, two seeds each): with two convolution blocks (8, 16 channels) and pixel
noise 0.2 the LRCN stayed at chance for 400 steps on both seeds, while the 3D CNN
learned within 100; one block of 16 channels (a finer grid of positions for the
recurrent cell to compare) or noise 0.1 alone rescued one seed of two, both
together both seeds, within 200 steps. `--channels 8,16 --noise 0.2` shows the
LRCN's plateau.

    python -m experiments.activity --quick        # about two minutes on a CPU
    python -m experiments.activity --train-clips 0   # fresh clips: the earlier default
    python -m experiments.activity --cells lstm,gru --models lrcn,two_stream

Writes results/activity/{results.json, report.md, accuracy.png, data.png}; each run
(model x training-set size) checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import classify, common
from rnnjax.cells import make
from rnnjax.models import param_count, video_classifier
from rnnjax.tasks import LabelledSequences
from rnnjax.tasks import clips as cl
from rnnjax.train import accuracy, softmax_cross_entropy

NAME = "activity"
MODELS = ("lrcn", "conv3d", "frames", "two_stream", "two_stream_flow")
MODEL_TEXT = {"lrcn": "LRCN", "conv3d": "3D CNN", "frames": "frame by frame",
              "two_stream": "two-stream (differences)", "two_stream_flow": "two-stream (flow)"}
DEFAULTS = dict(cells=["lstm"], models=list(MODELS), seeds=3, steps=2000, hidden=64,
                features=64, channels=[16], batch=32, lr=2e-3, clip=1.0, eval_every=200,
                checkpoint_every=1000, test_size=1000, frames=12, size=24, noise=0.1,
                train_clips=[250, 1000, 4000], flow_iterations=50, timing_batch=256,
                timing_repeats=20)
QUICK = dict(seeds=2, steps=400, frames=8, size=16, batch=16, eval_every=50,
             checkpoint_every=400, test_size=400, train_clips=[250, 2000], flow_iterations=20,
             timing_batch=128, timing_repeats=5)
TEST_KEY, TRAIN_SET_KEY = 10_000, 20_000
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
    parser.add_argument("--train-clips", dest="train_clips",
                        type=common.comma_list(_clip_count),
                        help="training-set sizes, comma-separated: N trains on a fixed set of "
                        "N clips in epochs, 0 on fresh clips at every step")
    parser.add_argument("--flow-iterations", dest="flow_iterations", type=common.positive_int,
                        help="Horn-Schunck sweeps of the flow two-stream model")
    parser.add_argument("--timing-batch", dest="timing_batch", type=common.positive_int,
                        help="clips per timed inference batch")
    parser.add_argument("--timing-repeats", dest="timing_repeats", type=common.positive_int,
                        help="timed inference batches per model (the median is reported)")


def _clip_count(text: str) -> int:
    """A training-set size: a count of clips, or 0 for fresh clips at every step."""
    return 0 if text.strip() == "0" else common.positive_int(text)


# -- the models -----------------------------------------------------------------------
def build(kind: str, cell: str | None, args):
    """The model `kind` (one of MODELS) with the study's sizes: the LRCN's frame CNN
    gives `args.features` codes to a cell of `args.hidden`; the others end in the class
    scores."""
    return video_classifier(
        "two_stream" if kind == "two_stream_flow" else kind,
        (args.frames, args.size, args.size, 1), len(cl.DIRECTIONS), channels=args.channels,
        features=args.features, cell=make(cell, args.hidden) if kind == "lrcn" else None,
        motion="flow" if kind == "two_stream_flow" else "differences",
        flow_iterations=args.flow_iterations)


def clip_data(key, batch: int, args):
    """(videos [B, T, H, W, 1], labels [B]) of `batch` clips of the study's size."""
    clips = cl.clip_batch(key, batch, args.frames, args.size, noise=args.noise)
    return clips.videos, clips.labels


def training_data(count: int, args):
    """`batch_fn(step) -> (videos, labels)`: fresh clips at every step (count 0), or
    epochs of one fixed set of `count` clips, each epoch a fresh permutation."""
    if count == 0:
        return lambda step: clip_data(jax.random.fold_in(jax.random.key(1), step),
                                      args.batch, args)
    videos, labels = clip_data(jax.random.key(TRAIN_SET_KEY), count, args)
    fixed = LabelledSequences(videos, jnp.full((count,), args.frames, jnp.int32), labels,
                              cl.DIRECTIONS, jnp.arange(count))
    epochs = classify.epoch_batches(fixed, min(args.batch, count))

    def batch_fn(step):
        videos, _, labels = epochs(step)       # every clip has all its frames
        return videos, labels

    return batch_fn


def run(kind: str, cell: str | None, train_clips: int, test, args, run_dir: Path) -> dict:
    """Train `args.seeds` models of `kind` at once on `train_clips` clips (0: fresh
    ones) and score them on `test` (videos, labels): test accuracy every
    `args.eval_every` steps and at the end (and, frame by frame, by majority vote; for
    two streams, each stream alone), parameter count, inference seconds per clip
    (first seed)."""
    started = time.perf_counter()
    model = build(kind, cell, args)
    videos, labels = test

    def loss_fn(params, batch, key):
        return model.loss(params, *batch), {}

    @jax.jit
    def scores(params, videos, labels):
        def one(p):
            logits = model.logits(p, videos)
            out = {"accuracy": accuracy(logits, labels),
                   "loss": softmax_cross_entropy(logits, labels)}
            if model.kind == "frames":
                out["vote_accuracy"] = jnp.mean(model.vote(p, videos) == labels)
            if model.kind == "two_stream":
                for name, stream in zip(("spatial", "temporal"),
                                        model.stream_logits(p, videos)):
                    out[f"{name}_accuracy"] = accuracy(stream, labels)
            return out
        return jax.vmap(one)(params)

    trained = common.train(
        run_dir, model.init, loss_fn, training_data(train_clips, args), args,
        hyper={"learning_rate": args.lr}, clip=args.clip,
        evaluate=lambda p: {"test_accuracy": scores(p, videos, labels)["accuracy"]},
        eval_every=common.eval_interval(args),
        settings={"model": kind, "cell": cell, "hidden": args.hidden,
                  "features": args.features, "channels": args.channels,
                  "batch": args.batch, "frames": args.frames, "size": args.size,
                  "noise": args.noise, "train_clips": train_clips,
                  **({"flow_iterations": args.flow_iterations}
                     if kind == "two_stream_flow" else {})},
        desc=f"activity {kind}{f' {cell}' if cell else ''}, {clips_text(train_clips)}")
    names = list(jax.eval_shape(lambda p: scores(p, videos, labels), trained.initial))
    values = common.on_trained(
        lambda p: jnp.stack([scores(p, videos, labels)[k] for k in names]), trained)
    final = {f"test_{k}": v.tolist() for k, v in zip(names, values)}
    first = jax.tree_util.tree_map(lambda x: x[0], trained.initial if trained.params is None
                                   else trained.params)
    timing = videos[:args.timing_batch]
    steps, values = common.series(trained.history, "test_accuracy")
    curve = [*zip(steps, values.tolist()), (args.steps, final["test_accuracy"])]
    label = MODEL_TEXT[kind] + (f" ({common.cell_label(cell)})" if kind == "lrcn" else "")
    return {"model": kind, "cell": cell, "label": label, "train_clips": train_clips,
            "params": param_count(first),
            "seconds_per_clip": common.timed(model.logits, first, timing,
                                             repeats=args.timing_repeats,
                                             examples=timing.shape[0])[0],
            "timing_batch": int(timing.shape[0]), "curve": curve,
            "steps_to_learned": steps_to(curve, LEARNED),
            "final": final, "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


# -- reporting ------------------------------------------------------------------------
def clips_text(count: int) -> str:
    return "fresh clips" if count == 0 else f"{count} clips"


def steps_to(curve, level: float) -> list:
    """Per seed, the first evaluated step whose test accuracy reached `level` (None:
    never), from a run's curve [(step, [accuracy per seed]), ...]."""
    seeds = len(curve[0][1])
    return [next((step for step, values in curve if values[s] >= level), None)
            for s in range(seeds)]


def accuracies(r: dict) -> dict[str, list]:
    """A run's test accuracies per seed under each way of reading it: the clip's score,
    and (frame by frame) the vote, (two streams) each stream alone."""
    label = r["label"]
    final = r["final"]
    if r["model"] == "frames":
        return {f"{label}, mean": final["test_accuracy"],
                f"{label}, vote": final["test_vote_accuracy"]}
    out = {label: final["test_accuracy"]}
    if r["model"].startswith("two_stream"):
        out[f"{label}: spatial alone"] = final["test_spatial_accuracy"]
        out[f"{label}: temporal alone"] = final["test_temporal_accuracy"]
    return out


def plot(results: dict, args) -> None:
    """accuracy.png: for the largest training set, test accuracy against training step
    (median, band: min-max over seeds); per model (every seed, median, min-max); and
    against inference time per clip (marker area: parameter count). data.png: test
    accuracy against the number of training clips, per model."""
    plt = common.pyplot()
    fig, (curves, seeds, timing) = plt.subplots(1, 3, figsize=(15, 4.2))
    largest_set = max(args.train_clips, key=lambda n: float("inf") if n == 0 else n)
    shown = {k: r for k, r in results.items() if r["train_clips"] == largest_set}
    names = list(shown)
    largest = max(r["params"] for r in shown.values())
    for i, key in enumerate(names):
        r = shown[key]
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
    curves.set(xlabel="training step", ylabel="test accuracy",
               title=f"learning ({clips_text(largest_set)})")
    curves.legend(fontsize=7)
    seeds.set_xticks(range(len(names)), [shown[k]["label"] for k in names], rotation=20,
                     ha="right", fontsize=8)
    seeds.set(ylabel="test accuracy", title="after training, per seed")
    timing.set_xscale("log")
    timing.set(xlabel="inference ms per clip (jitted, shared CPU: rough)",
               ylabel="median test accuracy", title="accuracy, time and size")
    timing.legend(fontsize=7)
    common.save_figure(fig, args.out / "accuracy.png")

    sizes = sorted(n for n in args.train_clips if n > 0)
    if not sizes:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    lines = {}
    for r in results.values():
        if r["train_clips"] > 0:
            for name, acc in accuracies(r).items():
                lines.setdefault(name, {})[r["train_clips"]] = np.nan_to_num(
                    np.asarray(acc, np.float64))
    for i, (name, by_size) in enumerate(lines.items()):
        xs = [n for n in sizes if n in by_size]
        values = np.stack([by_size[n] for n in xs])
        style = ":" if "alone" in name else "-"
        ax.plot(xs, np.median(values, 1), style, marker="o", color=f"C{i}", label=name)
        ax.fill_between(xs, values.min(1), values.max(1), color=f"C{i}", alpha=0.12)
    ax.axhline(1 / len(cl.DIRECTIONS), color="gray", ls="--", lw=1, label="chance")
    ax.set(xscale="log", xlabel="training clips", ylabel="test accuracy", ylim=(0, 1.02),
           title="accuracy against the data (median, min-max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    common.save_figure(fig, args.out / "data.png")


def report(results: dict, args) -> str:
    def reached(r):
        steps = steps_to(r["curve"], LEARNED)
        return ", ".join("-" if s is None else str(s) for s in steps)

    lines = [
        "# Activity recognition on video: LRCN, 3D CNN, frame by frame, two-stream", "",
        f"Command: `{common.command_line()}`", "",
        f"Clips of {args.frames} frames of {args.size} x {args.size} pixels: a 5 x 5 square moves "
        f"{', '.join(cl.DIRECTIONS)} (the label, 1 or 2 pixels a frame) while a cross "
        f"wanders at random; pixel noise of deviation {args.noise}; the frame wraps "
        "around at its edges, so every single frame has the same distribution for "
        "every label. Training: a fixed set of N clips read in epochs (or fresh clips "
        f"every step); test: {args.test_size} fixed clips.", "",
        f"Models: (a) LRCN: a CNN (channels {args.channels}, 3 x 3 convolutions, ReLU, "
        f"2 x 2 max pooling, projected to {args.features}) on each frame, a recurrent "
        f"layer of {args.hidden} over the frame codes, Dense to the classes from its "
        f"final state; (b) 3D CNN: 3 x 3 x 3 convolutions with channels {args.channels}, "
        "ReLU, 1 x 2 x 2 pooling (time kept), projected to the class scores; (c) frame by "
        "frame: the same 2D CNN projected to class scores on each frame, the scores "
        "averaged over frames (mean) or each frame's label counted (vote; ties to the "
        "higher mean score); (d) two-stream: (c)'s network as the spatial stream and a "
        "second 2D CNN on the motion between consecutive frames stacked along channels "
        f"(differences, or Horn-Schunck flow with {args.flow_iterations} sweeps), each "
        "trained on its own cross-entropy, fused by averaging their log-probabilities. "
        f"Adam lr {args.lr}, clip {args.clip}, batch {args.batch}, {args.steps} steps, "
        f"{args.seeds} seeds per model.", "",
        "Test accuracy (chance 0.25) and loss, median (min-max) over seeds; every seed "
        "counts, including those that failed to learn. Steps to "
        f"{LEARNED:.0%}: the first evaluation (every {common.eval_interval(args)} steps) at "
        "which a seed's test accuracy reached it ('-': never). Inference time per clip: the "
        f"jitted model on a batch of {args.timing_batch} test clips, after compiling, "
        f"waited for with block_until_ready, the median of {args.timing_repeats} "
        "batches, divided by the batch size; measured on a CPU shared with other jobs, "
        "so the times are rough (their order of magnitude, not their ratios to a few "
        "percent). Device: " + ", ".join(str(d) for d in jax.devices()) + ".", ""]
    sizes = list(dict.fromkeys(r["train_clips"] for r in results.values()))
    if len(sizes) > 1:
        table = {}
        for r in results.values():
            for name, acc in accuracies(r).items():
                table.setdefault(name, {})[r["train_clips"]] = common.spread(acc)
        lines += ["## Accuracy against the number of training clips", "",
                  common.markdown_table(["model", *(clips_text(n) for n in sizes)],
                                        [[name, *(row.get(n, "-") for n in sizes)]
                                         for name, row in table.items()]), ""]
    for size in sizes:
        rows = []
        for r in results.values():
            if r["train_clips"] != size:
                continue
            for i, (name, acc) in enumerate(accuracies(r).items()):
                first = i == 0
                rows.append([name, common.spread(acc),
                             common.spread(r["final"]["test_loss"]) if first else "",
                             reached(r) if first else "", f"{r['params']:,}" if first else "",
                             f"{1e3 * r['seconds_per_clip']:.3g}" if first else "",
                             f"{r['seconds']:.0f}" if first else "",
                             ("yes" if r["nonfinite"] else "no") if first else ""])
        lines += [f"## {clips_text(size).capitalize()}", "", common.markdown_table(
            ["model", "test accuracy", "test loss", f"steps to {LEARNED:.0%} (per seed)",
             "params", "ms per clip", "train seconds", "diverged"], rows), ""]
    lines += [
        "A frame alone holds no information on the label here (rnnjax.tasks.clips "
        "explains why this is exact). Frame by frame, and the spatial stream alone, "
        "see a clip only as the places its frames visit, a weak trace of the axis of "
        "motion and none of its direction; the other models compare frames. The loss "
        "of a two-stream model is that of its fused scores.", "",
        "Plots: accuracy.png (for the largest training set: test accuracy against "
        "training step, median and min-max over seeds; after training, per seed; median "
        "accuracy against time per clip, marker area growing with the parameter count), "
        "data.png (test accuracy against the number of training clips).", ""]
    return "\n".join(lines)


def check(args) -> None:
    """Fail on a bad model, cell or setting before any work."""
    common.check_cells(args)
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    jax.eval_shape(lambda: clip_data(jax.random.key(0), 1, args))   # the sizes fit clips
    for kind in args.models:   # the channels fit the frames
        model = build(kind, args.cells[0], args)
        jax.eval_shape(model.init, jax.random.key(0))


def units(args) -> list[tuple[str, str, str | None, int]]:
    """(key, model, cell, training clips) of every run: per training-set size, an LRCN
    per cell and the other models once."""
    out = []
    for count in args.train_clips:
        suffix = "" if count == 0 and len(args.train_clips) == 1 else f"/{clips_text(count)}"
        for kind in args.models:
            cells = args.cells if kind == "lrcn" else [None]
            out += [(f"{kind}{f'/{cell}' if cell else ''}{suffix}", kind, cell, count)
                    for cell in cells]
    return out


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    test = clip_data(jax.random.key(TEST_KEY), args.test_size, args)
    results = {key: run(kind, cell, count, test, args, args.out / common.folder(key))
               for key, kind, cell, count in units(args)}
    plot(results, args)
    common.write_results(args, {"classes": cl.DIRECTIONS, "chance": 1 / len(cl.DIRECTIONS),
                                "results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
