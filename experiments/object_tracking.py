"""Single-object tracking in video: a recurrent tracker against a Kalman filter on
detections and template matching, through occlusions.

The clips are `rnnjax.tasks.tracking_clips`: a filled square (the target) among
hollow squares of the same size and brightness, all moving with smooth random
velocities and bouncing off the edges, a grey band in front of everything that the
target passes behind a third to two thirds into the clip, and pixel noise. Every
tracker is given the target's box in frame 0 and must give its box in every frame:

- RNN tracker (`rnnjax.models.BoxTracker`): a CNN codes each frame (with, by
  default, the template's NCC at each pixel as a second channel: `--extras`),
  another the template (frame 0's crop around the first box), a recurrent cell
  (`--cells`) reads
  the frame codes in order with the template's code and the first box, and a Dense
  head gives the box. Trained on fresh clips with the ground-truth box of every
  frame in its loss (mean absolute error); tested given the first box only.
- Kalman: a constant-velocity Kalman filter on the box centre
  (`rnnjax.object_tracking.kalman_track`) fed by an NCC detector (local maxima of
  the template's normalised cross-correlation above --threshold), taking the
  detection nearest to its prediction within --gate standard deviations, and only
  predicting when there is none.
- template matching: the box where the template's NCC peaks in each frame.

Scores on one fixed test set: IoU with the ground truth and success (IoU >= 0.5) per
frame, averaged over frames 1 .. T-1 and over the phases of each clip: before the
occlusion, during it (the target less than half visible) and after it; IoU against
the frame index and against the frames since the occlusion began. Target: the RNN
tracker's success rate through occlusions (during and after) above the Kalman
tracker's.

    python -m experiments.object_tracking --quick     # about two minutes on a CPU
    python -m experiments.object_tracking             # 3 seeds: ~15 min on 2 cores

The defaults come from trials at the quick size (one seed each, 300 steps): success
0.19 on the pixels alone, 0.21 with coordinate channels, 0.30 with the NCC channel,
0.26 with both; one convolution block of 16 channels (a finer grid) with the NCC
channel 0.11, and three times slower.

Writes results/object_tracking/{results.json, report.md, iou.png, tracks.png}; each
cell's run checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnnjax import object_tracking as ot
from rnnjax.models import box_tracker, param_count
from rnnjax.models.box_tracker import EXTRAS
from rnnjax.tasks import tracking_clips as tc

NAME = "object_tracking"
DEFAULTS = dict(cells=["lstm"], seeds=3, steps=1500, hidden=64, features=64,
                template_features=32, channels=[8, 16], batch=16, lr=2e-3, clip=1.0,
                eval_every=250, checkpoint_every=500, test_size=300, frames=16, size=24,
                side=5, distractors=2, band=7, noise=0.1, template_size=9, threshold=0.7,
                gate=3.0, eval_chunk=50, examples=3, extras=["ncc"])
QUICK = dict(seeds=2, steps=240, frames=12, eval_every=120, checkpoint_every=240,
             test_size=100, eval_chunk=50)
TEST_KEY = 10_000
#: the phases of a frame, in the order of `phases`
PHASES = ("before", "during", "after")
#: frames relative to the first occluded one, for the IoU-through-occlusion curve
AROUND = (-3, 12)
KALMAN, TEMPLATE = "Kalman + NCC detector", "template matching (NCC)"


def add_arguments(parser) -> None:
    num = common.positive_int
    parser.add_argument("--features", type=num, help="size of each frame's code")
    parser.add_argument("--template-features", dest="template_features", type=num,
                        help="size of the template's code")
    parser.add_argument("--channels", type=common.comma_list(num),
                        help="output channels of each convolution block, comma-separated")
    parser.add_argument("--test-size", dest="test_size", type=num, help="test clips")
    parser.add_argument("--frames", type=num, help="frames per clip")
    parser.add_argument("--size", type=num, help="frame height and width in pixels")
    parser.add_argument("--side", type=num, help="side of every object in pixels")
    parser.add_argument("--distractors", type=int, help="hollow squares besides the target")
    parser.add_argument("--band", type=num, help="width of the occluding band in pixels")
    parser.add_argument("--noise", type=float, help="standard deviation of the pixel noise")
    parser.add_argument("--template-size", dest="template_size", type=num,
                        help="side of the template cropped around the first box")
    parser.add_argument("--threshold", type=float,
                        help="the least NCC of a detection (Kalman tracker)")
    parser.add_argument("--gate", type=common.positive_float,
                        help="the Kalman tracker's gate, in standard deviations")
    parser.add_argument("--eval-chunk", dest="eval_chunk", type=num,
                        help="test clips per evaluation batch (memory)")
    parser.add_argument("--examples", type=num, help="test clips drawn in tracks.png")
    parser.add_argument("--extras", type=common.names_among(EXTRAS, allow_none=True),
                        help="channels added to each frame the RNN tracker's CNN reads, "
                        f"comma-separated among {','.join(EXTRAS)} (ncc: the template's "
                        "correlation at each pixel; coords: row and column); '' for none")


def clip_data(key, batch: int, args) -> tc.TrackingClips:
    return tc.tracking_clip_batch(key, batch, args.frames, args.size, args.side,
                                  args.distractors, band=args.band, noise=args.noise)


def build(cell: str, args):
    return box_tracker(cell, hidden=args.hidden, features=args.features,
                       template_features=args.template_features, channels=args.channels,
                       frame_size=args.size, template_size=args.template_size,
                       extras=tuple(args.extras))


def phases(visible) -> np.ndarray:
    """int [B, T] index into PHASES: before the first hidden frame, hidden, or visible
    after a hidden frame."""
    visible = np.asarray(visible, bool)
    seen_hidden = np.cumsum(~visible, axis=1) > 0
    return np.where(~visible, 1, np.where(seen_hidden, 2, 0))


def summary(ious, phase) -> dict:
    """The scores of one tracker's ious [N, T] (frame 0, given, left out): mean IoU and
    success overall and per phase, and per frame."""
    ious, phase = np.asarray(ious, np.float64)[:, 1:], phase[:, 1:]
    hit = ious >= 0.5
    out = {"iou": float(ious.mean()), "success": float(hit.mean()),
           "iou_per_frame": [float("nan")] + ious.mean(0).tolist(),
           "success_per_frame": [float("nan")] + hit.mean(0).tolist()}
    for k, name in enumerate(PHASES):
        mask = phase == k
        out[f"success_{name}"] = float(hit[mask].mean()) if mask.any() else float("nan")
        out[f"iou_{name}"] = float(ious[mask].mean()) if mask.any() else float("nan")
    through = phase >= 1
    out["success_through"] = float(hit[through].mean()) if through.any() else float("nan")
    return out


def around_occlusion(ious, visible) -> list:
    """Mean IoU at each offset of AROUND from the first hidden frame of each clip
    (clips with an occlusion; NaN where no clip has that frame)."""
    ious, visible = np.asarray(ious, np.float64), np.asarray(visible, bool)
    hidden = ~visible
    start = np.argmax(hidden, axis=1)
    rows = np.flatnonzero(hidden.any(axis=1))
    values = []
    for d in range(AROUND[0], AROUND[1] + 1):
        t = start[rows] + d
        ok = (t >= 1) & (t < ious.shape[1])
        values.append(float(ious[rows[ok], t[ok]].mean()) if ok.any() else float("nan"))
    return values


def run_rnn(cell: str, batch_fn, test, args, run_dir) -> dict:
    """Train `args.seeds` trackers with `cell` and score them on the test clips."""
    started = time.perf_counter()
    model = build(cell, args)
    first = test.boxes[:, 0]

    @jax.jit
    def chunk_boxes(params, videos, first):
        return jax.vmap(lambda p: model.boxes(p, videos, first))(params)

    def test_boxes(params):   # [seeds, N, T, 4], in chunks of clips (memory)
        step = args.eval_chunk
        return jnp.concatenate([chunk_boxes(params, test.videos[i:i + step], first[i:i + step])
                                for i in range(0, args.test_size, step)], axis=1)

    trained = common.train(
        run_dir, model.init,
        lambda params, batch, key: (model.loss(params, batch.videos, batch.boxes), {}),
        batch_fn, args, hyper={"learning_rate": args.lr}, clip=args.clip,
        evaluate=lambda p: {"test_iou": jnp.mean(ot.iou(test_boxes(p), test.boxes)[..., 1:],
                                                 axis=(1, 2))},
        eval_every=common.eval_interval(args),
        settings={"cell": cell, "hidden": args.hidden, "features": args.features,
                  "template_features": args.template_features, "channels": args.channels,
                  "batch": args.batch, "frames": args.frames, "size": args.size,
                  "side": args.side, "distractors": args.distractors, "band": args.band,
                  "noise": args.noise, "template_size": args.template_size,
                  "extras": args.extras},
        desc=f"object tracking {cell}")
    boxes = common.on_trained(test_boxes, trained)            # [seeds, N, T, 4]; NaN: diverged
    ious = np.asarray(ot.iou(boxes, test.boxes))              # NaN boxes score 0
    steps, values = common.series(trained.history, "test_iou")
    final = ious[..., 1:].mean(axis=(1, 2))
    initial = jax.tree_util.tree_map(lambda x: x[0], trained.initial)
    return {"label": f"RNN tracker ({common.cell_label(cell)})", "ious": ious,
            "params": param_count(initial), "nonfinite": trained.params is None,
            "curve": [*zip(steps, values.tolist()), (args.steps, final.tolist())],
            "example_boxes": boxes[0, :args.examples],
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def baselines(test, args) -> dict:
    """Template matching and the Kalman tracker on the test clips: ious [1, N, T] and
    the example clips' boxes."""
    first = test.boxes[:, 0]
    out = {}
    for name, track in ((TEMPLATE, lambda v, f: ot.template_match(v, f, args.template_size)),
                        (KALMAN, lambda v, f: ot.kalman_track(
                            v, f, args.template_size, threshold=args.threshold,
                            gate=args.gate)[0])):
        started = time.perf_counter()
        boxes = np.concatenate([np.asarray(track(test.videos[i:i + args.eval_chunk],
                                                 first[i:i + args.eval_chunk]))
                                for i in range(0, args.test_size, args.eval_chunk)])
        out[name] = {"label": name, "ious": np.asarray(ot.iou(boxes, test.boxes))[None],
                     "example_boxes": boxes[:args.examples],
                     "seconds": time.perf_counter() - started}
    return out


# -- report and plots -------------------------------------------------------------------
def scored(trackers: dict, test) -> dict:
    """Per tracker and seed, `summary` and `around_occlusion` of its test ious."""
    phase, visible = phases(test.visible), np.asarray(test.visible)
    return {name: {"per_seed": [summary(i, phase) for i in t["ious"]],
                   "around_occlusion": [around_occlusion(i, visible) for i in t["ious"]]}
            for name, t in trackers.items()}


def target_met(scores: dict, rnn_names: list[str]) -> dict:
    """Per RNN tracker, whether each seed's success through occlusions (during and
    after) is above the Kalman tracker's."""
    kalman = scores[KALMAN]["per_seed"][0]["success_through"]
    return {name: [s["success_through"] > kalman for s in scores[name]["per_seed"]]
            for name in rnn_names}


def fmt(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.3f}"


def report(trackers: dict, scores: dict, met: dict, test, args) -> str:
    phase = phases(test.visible)[:, 1:]
    counts = {name: int((phase == k).sum()) for k, name in enumerate(PHASES)}
    occluded = float((~np.asarray(test.visible)).any(axis=1).mean())
    header = ["tracker", "seed", "mean IoU", "success", "success before", "success during",
              "success after", "success during + after", "IoU during", "IoU after"]
    rows = []
    for name, t in trackers.items():
        per_seed = scores[name]["per_seed"]
        for seed, s in enumerate(per_seed):
            rows.append([t["label"] + (" (diverged)" if t.get("nonfinite") else ""),
                         seed if len(per_seed) > 1 else "-", fmt(s["iou"]), fmt(s["success"]),
                         fmt(s["success_before"]), fmt(s["success_during"]),
                         fmt(s["success_after"]), fmt(s["success_through"]),
                         fmt(s["iou_during"]), fmt(s["iou_after"])])
        if len(per_seed) > 1:
            keys = ["iou", "success", "success_before", "success_during", "success_after",
                    "success_through", "iou_during", "iou_after"]
            rows.append([t["label"], "median (range)"]
                        + [common.spread([s[k] for s in per_seed]) for k in keys])
    kalman = scores[KALMAN]["per_seed"][0]["success_through"]
    verdicts = []
    for name, flags in met.items():
        values = ", ".join(fmt(s["success_through"]) for s in scores[name]["per_seed"])
        verdicts.append(f"- {trackers[name]['label']}: success through occlusions per seed "
                        f"{values} against the Kalman tracker's {fmt(kalman)}: "
                        f"{'met' if all(flags) else 'not met'} ({sum(flags)} of "
                        f"{len(flags)} seeds above).")
    rnn = [n for n in trackers if "params" in trackers[n]]
    return "\n".join([
        "# Single-object tracking: RNN tracker vs Kalman filter on detections vs template "
        "matching", "",
        f"Command: `{common.command_line()}`", "",
        f"Clips of {args.frames} frames of {args.size} x {args.size} pixels: a filled "
        f"{args.side} x {args.side} square (the target) and {args.distractors} hollow squares "
        "of the same size and brightness move with smooth random velocities (1-2 pixels a "
        "frame across, up to 2 along, Gaussian kicks of 0.1), bouncing off the edges; a "
        f"band {args.band} pixels wide of brightness 0.5 is drawn in front of everything "
        "where the target passes between a third and two thirds into the clip; pixel noise "
        f"of deviation {args.noise}. Test: {args.test_size} fixed clips, {occluded:.0%} of "
        f"them with an occlusion; frames 1..{args.frames - 1} scored ({counts['before']} "
        f"before the occlusion, {counts['during']} during it, {counts['after']} after it). "
        "Every tracker is given the box of frame 0 only.", "",
        f"RNN tracker: a CNN (channels {args.channels}, 3 x 3 convolutions, ReLU, 2 x 2 max "
        f"pooling, the map flattened and projected to {args.features}) per frame "
        f"(extra channels: {', '.join(args.extras) or 'none'}; ncc: the template's NCC "
        "centred at each pixel, coords: row and column), another "
        f"(projected to {args.template_features}) on the {args.template_size} x "
        f"{args.template_size} template cropped around the first box, a recurrent layer "
        f"of {args.hidden} reading frame code, template code and first box, a Dense head "
        "giving the box's change from the first box. Trained on fresh clips with the true "
        f"box of every frame in the loss (mean absolute error): Adam lr {args.lr}, clip "
        f"{args.clip}, batch {args.batch}, {args.steps} steps, {args.seeds} seeds; "
        + ", ".join(f"{trackers[n]['label']}: {trackers[n]['params']:,} params, "
                    f"{trackers[n]['seconds']:.0f} s of training" for n in rnn) + ". "
        f"Kalman: constant velocity on the box centre (acceleration noise 0.5, detection "
        f"deviation 1 pixel, velocity prior deviation 2 pixels a frame), NCC detections "
        f"(local maxima >= {args.threshold}), the nearest within {args.gate} standard "
        "deviations of the prediction, else prediction alone. Template matching: the NCC "
        "peak of the template in each frame. Both keep the first box's size.", "",
        "Success: IoU >= 0.5 with the true box. Phases: during = the target less than half "
        "visible; after = visible again after that. Every seed is listed, failures "
        "included; the trackers without training have one row.", "",
        common.markdown_table(header, rows), "",
        "Target: the RNN tracker's success rate through occlusions (during + after) above "
        "the Kalman tracker's.", "", *verdicts, "",
        "Plots: iou.png (mean IoU and success against the frame index, with the fraction "
        "of clips occluded; mean IoU against frames since the occlusion began; the RNN "
        "trackers' test IoU during training: median and min-max over seeds), tracks.png "
        "(test clips: frames with the true box and each tracker's, RNN seed 0).", ""])


def plot(trackers: dict, scores: dict, test, args) -> None:
    plt = common.pyplot()
    fig, (by_frame, success, around, training) = plt.subplots(1, 4, figsize=(19, 4.2))
    frames = np.arange(args.frames)
    for i, (name, t) in enumerate(trackers.items()):
        per_seed = scores[name]["per_seed"]
        ious = np.asarray([s["iou_per_frame"] for s in per_seed]).T         # [T, seeds]
        hits = np.asarray([s["success_per_frame"] for s in per_seed]).T
        common.band(by_frame, frames[1:], ious[1:], f"C{i}", t["label"])
        common.band(success, frames[1:], hits[1:], f"C{i}", t["label"])
        offsets = np.arange(AROUND[0], AROUND[1] + 1)
        common.band(around, offsets, np.asarray(scores[name]["around_occlusion"]).T,
                    f"C{i}", t["label"])
        if "curve" in t:
            common.band(training, [s for s, _ in t["curve"]], [v for _, v in t["curve"]],
                        f"C{i}", t["label"])
    hidden = (~np.asarray(test.visible)).mean(axis=0)
    for ax in (by_frame, success):
        ax.fill_between(frames, 0, hidden, color="0.85", label="clips occluded")
        ax.set(xlabel="frame", ylim=(0, 1.02))
    by_frame.set(ylabel="mean IoU", title="IoU against time")
    success.set(ylabel="success (IoU >= 0.5)", title="success against time")
    around.axvspan(0, 1, color="0.85")
    around.set(xlabel="frames since the occlusion began", ylabel="mean IoU", ylim=(0, 1.02),
               title="through the occlusion")
    training.set(xlabel="training step", ylabel="test mean IoU", ylim=(0, 1.02),
                 title="RNN tracker, learning")
    for ax in (by_frame, success, around, training):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    common.save_figure(fig, args.out / "iou.png")
    plot_tracks(trackers, test, args)


def plot_tracks(trackers: dict, test, args) -> None:
    """tracks.png: per example clip, six frames spread over the clip with the true box
    (white) and each tracker's."""
    from matplotlib.patches import Rectangle
    plt = common.pyplot()
    shown = np.linspace(0, args.frames - 1, 6).round().astype(int)
    fig, axes = plt.subplots(args.examples, len(shown), squeeze=False,
                             figsize=(2.2 * len(shown), 2.3 * args.examples))
    videos, truth = np.asarray(test.videos[..., 0]), np.asarray(test.boxes)
    visible = np.asarray(test.visible)

    def draw(ax, box, color, style="-"):
        top, left, bottom, right = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                               fill=False, color=color, lw=1.3, ls=style))

    for row in range(args.examples):
        for col, t in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(videos[row, t], cmap="gray", vmin=0, vmax=1)
            draw(ax, truth[row, t], "white", "--")
            for i, tracker in enumerate(trackers.values()):
                draw(ax, tracker["example_boxes"][row, t], f"C{i}")
            ax.set_title(f"clip {row}, frame {t}" + ("" if visible[row, t] else " (hidden)"),
                         fontsize=8)
            ax.axis("off")
    handles = [plt.Line2D([], [], color="white", ls="--", label="true box")] + [
        plt.Line2D([], [], color=f"C{i}", label=t["label"])
        for i, t in enumerate(trackers.values())]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               facecolor="0.6")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(args.out / "tracks.png", dpi=110)
    plt.close(fig)


def check(args) -> None:
    """Fail on a bad cell or setting before any work."""
    common.check_cells(args)
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    if args.distractors < 0:
        raise ValueError(f"--distractors must be >= 0, got {args.distractors}")
    if not -1 <= args.threshold <= 1:
        raise ValueError(f"--threshold must lie in [-1, 1] (an NCC), got {args.threshold}")
    if args.examples > args.test_size:
        raise ValueError(f"--examples must be at most --test-size ({args.test_size}), got "
                         f"{args.examples}")
    jax.eval_shape(lambda: clip_data(jax.random.key(0), 1, args))   # the sizes fit clips
    jax.eval_shape(build(args.cells[0], args).init, jax.random.key(0))


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    test = clip_data(jax.random.key(TEST_KEY), args.test_size, args)

    def batch_fn(step):
        return clip_data(jax.random.fold_in(jax.random.key(1), step), args.batch, args)

    trackers = {f"rnn/{cell}": run_rnn(cell, batch_fn, test, args,
                                       args.out / common.folder(f"rnn/{cell}"))
                for cell in args.cells}
    trackers.update(baselines(test, args))
    scores = scored(trackers, test)
    met = target_met(scores, [f"rnn/{cell}" for cell in args.cells])
    plot(trackers, scores, test, args)
    results = {name: {k: v for k, v in t.items() if k not in ("ious", "example_boxes")}
               | {"scores": scores[name]} for name, t in trackers.items()}
    common.write_results(args, {"phases": PHASES, "around_occlusion_offsets": list(
        range(AROUND[0], AROUND[1] + 1)), "target_met": met, "results": results},
        report(trackers, scores, met, test, args))
    return {"results": results, "target_met": met}


if __name__ == "__main__":
    main()
