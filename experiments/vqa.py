"""Visual question answering: a CNN reads the image, an RNN reads the question, an MLP answers.

The data are `rnnjax.tasks.questions`: 24 x 24 images of 2-5 coloured shapes (7
pixels across) on a 3 x 3 grid and templated questions of five kinds, colour ("what colour is the
square ?"), shape ("what shape is the red object ?"), count ("how many circles are
there ?"), exist ("is there a blue triangle ?") and position ("is the red circle
left of the blue square ?"), answered from one vocabulary of 13 answers. Every
kind needs the image: each scene is built from its question and a balanced answer,
so the question alone gives 1/2 on yes/no, 1/4 on counts, 1/3 on colours and
0.46 on shapes.

Three models (`rnnjax.models.vqa`, after Antol et al. 2015): full, a CNN encoding v
and an LSTM (`--cells`) encoding q of the question, each through Dense and tanh,
side by side (`--fusion product` multiplies them elementwise, as Antol et al. do),
an MLP to the answers; blind, the question alone; image-only, the image alone.
Concatenation is the default because in a trial (one seed, 1500 steps, the default
sizes) it reached 0.90 test accuracy while the product stayed at the question
prior, 0.39. Beside them, the
question prior: the most frequent training answer of each question text (the best a
blind model can do on that sample). Each model is trained on fresh questions about
scenes without a red square, a green triangle or a blue circle, and scored per kind
on fresh seen scenes and on questions about those held-out pairs ("unseen").

Target (reported, met or not): the full model's median accuracy above both
baselines' on every kind of question, on seen scenes.

    python -m experiments.vqa --quick          # about 2 minutes on 2 shared cores
    python -m experiments.vqa                  # 3 seeds per model: ~15 min on 2 shared cores
    python -m experiments.vqa --cells lstm,gru --models full,blind

Writes results/vqa/{results.json, report.md, examples.png, accuracy.png}; each
model's run checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnnjax.models import param_count
from rnnjax.models.vqa import FUSIONS, INPUTS, VQA, vqa
from rnnjax.tasks import questions as qs
from rnnjax.tasks import scenes as sc
from rnnjax.train import softmax_cross_entropy

NAME = "vqa"
MODEL_TEXT = {"full": "full", "blind": "blind", "image": "image only"}
DEFAULTS = dict(cells=["lstm"], models=list(INPUTS), seeds=3, steps=3000, hidden=64,
                embed=32, features=64, channels=[8, 16], fused=64, mlp=64,
                fusion="concat", batch=64, lr=3e-3, clip=1.0, eval_every=250,
                checkpoint_every=1000, test_size=1000, image_size=24, radius=3, min_objects=2,
                max_objects=5, prior_batches=20, shown=4)
QUICK = dict(seeds=2, steps=300, hidden=32, features=32, fused=32, mlp=32, batch=32,
             eval_every=100, checkpoint_every=300, test_size=300, prior_batches=10)
#: test-set keys, far from the training stream's fold_in(key(1), step)
TEST_KEYS = {"seen": 10_000, "unseen": 10_001}
PRIOR_KEY = 2


def add_arguments(parser) -> None:
    parser.add_argument("--models", type=common.names_among(INPUTS),
                        help=f"comma-separated, among {','.join(INPUTS)}")
    parser.add_argument("--embed", type=common.positive_int, help="word embedding size")
    parser.add_argument("--features", type=common.positive_int, help="size of the image code v")
    parser.add_argument("--channels", type=common.comma_list(common.positive_int),
                        help="output channels of each convolution block, comma-separated")
    parser.add_argument("--fused", type=common.positive_int,
                        help="units of each encoding after its Dense and tanh")
    parser.add_argument("--mlp", type=common.positive_int, help="units of the MLP's hidden layer")
    parser.add_argument("--fusion", choices=FUSIONS,
                        help="how the two encodings join: elementwise product or side by side")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="questions in each test set (seen, unseen)")
    parser.add_argument("--image-size", dest="image_size", type=common.positive_int,
                        help="image height and width in pixels")
    parser.add_argument("--radius", type=common.positive_int,
                        help="objects reach this many pixels from their centre")
    parser.add_argument("--min-objects", dest="min_objects", type=common.positive_int,
                        help="fewest objects in a scene")
    parser.add_argument("--max-objects", dest="max_objects", type=common.positive_int,
                        help="most objects in a scene")
    parser.add_argument("--prior-batches", dest="prior_batches", type=common.positive_int,
                        help="training batches of --test-size questions the question prior "
                        "counts answers on")
    parser.add_argument("--shown", type=int, help="test questions of each set in the figure")


def build(inputs: str, cell: str, args) -> VQA:
    """The model of a run: `rnnjax.models.vqa` at the flags' sizes."""
    return vqa(inputs, cell, answers=len(qs.ANSWERS), vocab_size=qs.VOCAB.size,
               hidden=args.hidden, embed=args.embed, features=args.features,
               channels=args.channels, image_size=args.image_size, fused=args.fused,
               mlp=args.mlp, fusion=args.fusion)


def draw(key, batch: int, split: str, args) -> qs.Questions:
    return qs.question_batch(key, batch, split, args.image_size, args.radius,
                             min_objects=args.min_objects, max_objects=args.max_objects)


# -- scoring --------------------------------------------------------------------------
def per_kind(correct, kinds) -> dict:
    """{"all": accuracy, kind: accuracy, ...} [seeds] of correct bool [seeds, N] with
    kinds [N] (indices into KINDS); NaN for a kind absent from the set."""
    correct, kinds = np.asarray(correct, np.float64), np.asarray(kinds)
    out = {"all": correct.mean(axis=1).tolist()}
    for i, kind in enumerate(qs.KINDS):
        chosen = correct[:, kinds == i]
        out[kind] = (chosen.mean(axis=1) if chosen.shape[1] else
                     np.full(len(correct), np.nan)).tolist()
    return out


def question_prior(train: list[qs.Questions]):
    """The most frequent answer of each question text in `train` (and of each kind,
    for a text never seen there): `predict(questions) -> answers [N]`."""
    by_text = collections.defaultdict(collections.Counter)
    by_kind = collections.defaultdict(collections.Counter)
    for batch in train:
        for tokens, kind, answer in zip(np.asarray(batch.questions), np.asarray(batch.kinds),
                                        np.asarray(batch.answers)):
            by_text[tokens.tobytes()][int(answer)] += 1
            by_kind[int(kind)][int(answer)] += 1
    best = lambda counter: counter.most_common(1)[0][0]
    text_answer = {text: best(c) for text, c in by_text.items()}
    kind_answer = {kind: best(c) for kind, c in by_kind.items()}

    def predict(questions: qs.Questions) -> np.ndarray:
        return np.asarray([text_answer.get(t.tobytes(), kind_answer[int(k)]) for t, k in
                           zip(np.asarray(questions.questions), np.asarray(questions.kinds))])
    return predict


# -- one model ------------------------------------------------------------------------
def run(inputs: str, cell: str | None, batch_fn, tests: dict[str, qs.Questions], args,
        run_dir: Path) -> dict:
    """Train `args.seeds` models of `inputs` at once and score them on each test set:
    overall accuracy during training; at the end accuracy per kind per seed and the
    first seed's answers to the first `args.shown` questions of each set."""
    started = time.perf_counter()
    model = build(inputs, cell or args.cells[0], args)

    def logits(params, q):
        return model.logits(params, q.images, q.questions, q.lengths)

    def loss_fn(params, q, key):
        return softmax_cross_entropy(logits(params, q), q.answers), {}

    @jax.jit
    def predictions(params, tests):
        """Each model's answers [models, N] to each test set: one compiled program
        for the evaluations during training and the scores at the end."""
        return {name: jax.vmap(lambda p, q=q: jnp.argmax(logits(p, q), axis=-1))(params)
                for name, q in tests.items()}

    truth = {name: np.asarray(q.answers) for name, q in tests.items()}

    def overall(params):
        return {f"{name}_accuracy": np.mean(np.asarray(answers) == truth[name], axis=1)
                for name, answers in predictions(params, tests).items()}

    trained = common.train(
        run_dir, model.init, loss_fn, batch_fn, args, hyper={"learning_rate": args.lr},
        clip=args.clip, evaluate=overall,
        eval_every=common.eval_interval(args),
        settings={"inputs": inputs, "cell": cell, "hidden": args.hidden,
                  "embed": args.embed, "features": args.features,
                  "channels": args.channels, "fused": args.fused, "mlp": args.mlp,
                  "fusion": args.fusion, "batch": args.batch, "image_size": args.image_size,
                  "radius": args.radius,
                  "objects": [args.min_objects, args.max_objects]},
        desc=f"vqa {inputs}{f' {cell}' if cell else ''}")
    final, shown, curves = {}, {}, {}
    for name, q in tests.items():
        answers = common.on_trained(lambda p, name=name: predictions(p, tests)[name], trained)
        correct = answers == truth[name][None]
        final[name] = per_kind(correct, q.kinds)
        if trained.params is None:   # diverged: NaN scores, no answers
            final[name] = {k: [float("nan")] * args.seeds for k in final[name]}
        shown[name] = [qs.answer_text(a) if trained.params is not None else "-"
                       for a in answers[0, :args.shown]]
        steps, values = common.series(trained.history, f"{name}_accuracy")
        curves[name] = [*zip(steps, values.tolist()), (args.steps, final[name]["all"])]
    label = MODEL_TEXT[inputs] + (f" ({common.cell_label(cell)})" if cell else "")
    return {"inputs": inputs, "cell": cell, "label": label,
            "params": param_count(trained.initial) // args.seeds, "final": final,
            "curves": curves, "shown": shown, "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def units(args) -> list[tuple[str, str, str | None]]:
    """(key, inputs, cell) of every run: the full and blind models per cell (they read
    the question with it), the image-only model once."""
    out = []
    for inputs in args.models:
        if inputs == "image":
            out.append(("image", inputs, None))
        else:
            out += [(f"{inputs}/{cell}", inputs, cell) for cell in args.cells]
    return out


def target(results: dict, split: str = "seen") -> dict:
    """Per cell, per kind: whether the full model's median accuracy on `split` is above
    the median of the blind model with that cell and of the image-only model; None
    where a model is missing."""
    median = lambda r, kind: float(np.median(r["final"][split][kind]))
    out = {}
    for r in results.values():
        if r["inputs"] != "full":
            continue
        rivals = [results.get(f"blind/{r['cell']}"), results.get("image")]
        if None in rivals:
            out[r["cell"]] = None
            continue
        out[r["cell"]] = {kind: bool(median(r, kind) > max(median(b, kind) for b in rivals))
                          for kind in qs.KINDS}
    return out


# -- reporting ------------------------------------------------------------------------
def plot_examples(results: dict, tests: dict[str, qs.Questions], args) -> None:
    """examples.png: the first `args.shown` test questions of each set, their images,
    the true answer and each model's (first seed; green: right)."""
    plt = common.pyplot()
    rows = [(name, i) for name in tests for i in range(args.shown)]
    if not rows:
        return
    lines = 2 + len(results)
    fig, axes = plt.subplots(len(rows), 2, figsize=(8, 0.4 + 0.24 * max(lines, 6) * len(rows)),
                             gridspec_kw={"width_ratios": [1, 3]}, squeeze=False)
    for (name, i), (image_ax, text_ax) in zip(rows, axes):
        q = tests[name]
        image_ax.imshow(np.asarray(q.images[i]), interpolation="nearest")
        image_ax.set_xticks([])
        image_ax.set_yticks([])
        image_ax.set_ylabel(name, fontsize=7)
        text_ax.axis("off")
        truth = qs.answer_text(q.answers[i])
        entries = [(qs.question_text(q.questions[i]), "black"), (f"truth: {truth}", "black")]
        entries += [(f"{r['label']}: {r['shown'][name][i]}",
                     "green" if r["shown"][name][i] == truth else "red")
                    for r in results.values()]
        for j, (text, colour) in enumerate(entries):
            text_ax.text(0.0, 1.0 - j / max(lines, 6), text, color=colour, fontsize=8,
                         va="top", transform=text_ax.transAxes)
    common.save_figure(fig, args.out / "examples.png")


def plot_accuracy(results: dict, prior: dict, args) -> None:
    """accuracy.png: accuracy per kind of question on each test set (bars: median over
    seeds, whiskers: min-max; the question prior as a black tick), and overall test
    accuracy against training step."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(TEST_KEYS) + 1, figsize=(6 * len(TEST_KEYS) + 5, 4))
    kinds = ["all", *qs.KINDS]
    width = 0.8 / max(len(results), 1)
    for ax, name in zip(axes, TEST_KEYS):
        for i, r in enumerate(results.values()):
            values = np.asarray([r["final"][name][k] for k in kinds], np.float64)
            median = np.median(values, axis=1)
            x = np.arange(len(kinds)) + (i - (len(results) - 1) / 2) * width
            ax.bar(x, median, width, color=f"C{i}", label=r["label"])
            ax.vlines(x, values.min(axis=1), values.max(axis=1), color="k", lw=1)
        ax.plot(np.arange(len(kinds)), [prior[name][k] for k in kinds], "k_", ms=20, mew=2,
                label="question prior")
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set(ylabel="test accuracy", title=f"{name} pairs", ylim=(0, 1.02))
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    curves = axes[-1]
    for i, r in enumerate(results.values()):
        points = r["curves"]["seen"]
        common.band(curves, [s for s, _ in points], [v for _, v in points], f"C{i}", r["label"])
    curves.set(xlabel="training step", ylabel="accuracy, seen test set", ylim=(0, 1.02),
               title="learning")
    curves.grid(alpha=0.3)
    common.save_figure(fig, args.out / "accuracy.png")


def report(results: dict, prior: dict, met: dict, args) -> str:
    kinds = ["all", *qs.KINDS]
    rows = [["question prior (lookup)", name, *(f"{prior[name][k]:.3g}" for k in kinds), "0",
             "no"] for name in TEST_KEYS]
    seeds = []
    for r in results.values():
        for name in TEST_KEYS:
            f = r["final"][name]
            rows.append([r["label"], name, *(common.spread(f[k]) for k in kinds),
                         f"{r['params']:,}", "yes" if r["nonfinite"] else "no"])
            for s in range(args.seeds):
                seeds.append([r["label"], name, s, *(f"{f[k][s]:.3f}" for k in kinds)])
    verdicts = []
    for cell, kinds_met in met.items():
        if kinds_met is None:
            verdicts.append(f"- {common.cell_label(cell)}: not decided (a baseline was not run)")
            continue
        missed = [k for k, ok in kinds_met.items() if not ok]
        verdicts.append(f"- {common.cell_label(cell)}: " + (
            "**met** on every kind" if not missed else
            f"**not met**: not ahead on {', '.join(missed)}"))
    held = ", ".join(f"{c} {s}" for c, s in sc.HELD_OUT)
    return "\n".join([
        "# Visual question answering: CNN + RNN, blind and image-only baselines", "",
        f"Command: `{common.command_line()}`", "",
        f"Scenes of {args.min_objects}-{args.max_objects} objects ({len(sc.COLOURS)} colours "
        f"x {len(sc.SHAPES)} shapes, one per cell of a {qs.GRID} x {qs.GRID} grid) on "
        f"{args.image_size} x {args.image_size} images, with a question of one of the "
        f"kinds {', '.join(qs.KINDS)} (equally often) and one of {len(qs.ANSWERS)} answers. "
        f"Every training batch is {args.batch} fresh questions about scenes without the "
        f"held-out pairs ({held}). Test sets: {args.test_size} questions about seen "
        f"pairs; {args.test_size} questions each about a held-out pair (unseen).", "",
        f"Models: full: a CNN with channels {args.channels} (3 x 3 convolutions, ReLU, "
        f"2 x 2 max pooling) projected to v of {args.features}; word embedding "
        f"{args.embed}, one recurrent layer of {args.hidden} whose state at the question's "
        f"length is q; v and q each through Dense to {args.fused} and tanh, joined by "
        f"{'elementwise product' if args.fusion == 'product' else 'concatenation'}, then "
        f"Dense {args.mlp}, ReLU, Dense to the answers. Blind: the question's branch "
        "alone; image only: the image's branch alone. Question prior: the most frequent "
        f"answer of each question text among {args.prior_batches * args.test_size} "
        "training questions (of its kind for a text never seen there). Cross-entropy; "
        f"Adam lr {args.lr}, clip {args.clip}, {args.steps} steps, {args.seeds} seed(s) "
        "per model.", "",
        "Test accuracy overall and per kind, median (min-max) over seeds; every seed "
        "counts, including those that failed to learn.", "",
        common.markdown_table(["model", "test pairs", *kinds, "params", "diverged"], rows), "",
        "Target: the full model's median accuracy above both baselines' (blind and "
        "image only) on every kind of question (all of them need the image), on seen "
        "pairs:", "", *verdicts, "",
        "Every seed:", "",
        common.markdown_table(["model", "test pairs", "seed", *kinds], seeds), "",
        "Plots: examples.png (test images, their questions and every model's answer, "
        "first seed; green: right), accuracy.png (accuracy per kind on each test set, "
        "bars at the median, whiskers min-max over seeds, the question prior as a black "
        "tick; accuracy on the seen test set during training).", ""])


def check(args) -> None:
    """Fail on a bad model, cell or setting before any work."""
    common.check_cells(args)
    if not 0 <= args.shown <= args.test_size:
        raise ValueError(f"--shown must lie in [0, --test-size], got {args.shown}")
    low, high = qs.OBJECT_RANGE
    if not low <= args.min_objects <= args.max_objects <= high:
        raise ValueError(f"--min-objects and --max-objects must satisfy {low} <= "
                         f"--min-objects <= --max-objects <= {high}, got {args.min_objects} "
                         f"and {args.max_objects}")
    jax.eval_shape(lambda: draw(jax.random.key(0), 1, "seen", args))   # the size fits
    for inputs in args.models:   # the channels fit the image
        jax.eval_shape(build(inputs, args.cells[0], args).init, jax.random.key(0))


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    tests = {name: draw(jax.random.key(key), args.test_size, name, args)
             for name, key in TEST_KEYS.items()}
    predict = question_prior([draw(jax.random.fold_in(jax.random.key(PRIOR_KEY), i),
                                   args.test_size, "seen", args)
                              for i in range(args.prior_batches)])
    prior = {name: {k: v[0] for k, v in per_kind(
        predict(q)[None] == np.asarray(q.answers)[None], q.kinds).items()}
        for name, q in tests.items()}

    def batch_fn(step):   # one function for every model: compiled once
        return draw(jax.random.fold_in(jax.random.key(1), step), args.batch, "seen", args)

    results = {key: run(inputs, cell, batch_fn, tests, args, args.out / common.folder(key))
               for key, inputs, cell in units(args)}
    met = target(results)
    plot_examples(results, tests, args)
    plot_accuracy(results, prior, args)
    common.write_results(args, {"kinds": qs.KINDS, "answers": qs.ANSWERS,
                                "held_out": sc.HELD_OUT, "question_prior": prior,
                                "target_met": met, "results": results},
                         report(results, prior, met, args))
    return results


if __name__ == "__main__":
    main()
