"""Image captioning: a CNN reads a scene of two coloured shapes, an RNN says what is where.

The scenes are `rnnjax.tasks.scenes`: "a red circle above a blue square" and the
like, on 32 x 32 images; every image has two correct captions (the converse, "a blue
square below a red circle", is just as right). A small CNN (`rnnjax.vision`) encodes
the image into v; the recurrent decoder starts from it and then reads the caption
word by word (teacher forcing), trained by cross-entropy on the next word. How v
starts the decoder (`--condition`): `state`, h_0 = tanh(v W + b); `input`, v W' is
its first input, before the start-of-sentence token; `both`, the default (in a
trial with a smaller model, 1000 steps, it reached 0.48 exact-caption accuracy where
`state` alone reached 0.14).

At test time the decoder generates: greedy decoding and beam search
(`rnnjax.decode`), scored by exact-caption accuracy (the output is one of the two
correct captions) and corpus BLEU (sacrebleu, both captions as references), on fresh
scenes of the objects seen in training and on scenes with an object never seen in
training (a red square, a green triangle or a blue circle: colours and shapes it has
seen, in a new combination).

    python -m experiments.captioning --quick       # about 70 s on a CPU
    python -m experiments.captioning               # LSTM, 3 seeds: ~20 min on 2 cores
    python -m experiments.captioning --cells lstm,gru,tanh --condition state

Writes results/captioning/{results.json, report.md, captions.png, training.png}; each
cell's run checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnnjax import vision
from rnnjax.models import captioner, param_count
from rnnjax.models.image_captioner import CONDITIONS, Captioner
from rnnjax.tasks import scenes as sc
from rnnjax.tasks._optional import require
from rnnjax.tasks.vocab import EOS, PAD, SOS, SPECIALS

NAME = "captioning"
CONDITION_TEXT = {"state": "initial state", "input": "first input",
                  "both": "initial state and first input"}
DEFAULTS = dict(cells=["lstm"], seeds=3, steps=3000, hidden=128, embed=32, features=128,
                channels=[16, 32], condition="both", batch=64, lr=3e-3, clip=1.0,
                eval_every=250, checkpoint_every=1000, beam=5, length_penalty=1.0,
                test_size=1000, image_size=32, shown=6)
QUICK = dict(seeds=1, steps=1000, eval_every=100, checkpoint_every=1000, test_size=300,
             beam=3)
#: test-set keys, far from the training stream's fold_in(key(1), step)
TEST_KEYS = {"seen": 10_000, "unseen": 10_001}


def add_arguments(parser) -> None:
    parser.add_argument("--embed", type=common.positive_int, help="word embedding size")
    parser.add_argument("--features", type=common.positive_int, help="size of the image code v")
    parser.add_argument("--channels", type=common.comma_list(common.positive_int),
                        help="output channels of each convolution block, comma-separated")
    parser.add_argument("--condition", choices=CONDITIONS,
                        help="how v starts the decoder: its initial state, its first "
                        "input, or both")
    parser.add_argument("--beam", type=common.positive_int, help="beam size of the beam search")
    parser.add_argument("--length-penalty", dest="length_penalty", type=float,
                        help="beam search ranks by log-probability / length ** this")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="scenes in each test set (seen, unseen)")
    parser.add_argument("--image-size", dest="image_size", type=common.positive_int,
                        help="image height and width in pixels")
    parser.add_argument("--shown", type=int,
                        help="test images of each set in the figure of captions")


def build(cell: str, args) -> Captioner:
    """The captioner of a run: `rnnjax.models.captioner` at the flags' sizes."""
    return captioner(cell, vocab_size=sc.VOCAB.size, hidden=args.hidden, embed=args.embed,
                     features=args.features, channels=args.channels,
                     image_size=args.image_size, condition=args.condition,
                     start_token=SOS, end_token=EOS, max_len=sc.CAPTION_LEN)


# -- scoring --------------------------------------------------------------------------
def exact_matches(tokens, references):
    """bool [B]: tokens [B, L] (decoder output: end of sentence repeated past the end)
    equal one of the references [B, R, L] (padded past their end of sentence)."""
    references = jnp.where(references == PAD, EOS, references)
    return jnp.any(jnp.all(tokens[:, None, :] == references, axis=-1), axis=1)


def named_objects(text: str) -> tuple | None:
    """The two (colour, shape) pairs a caption names, sorted, or None when it is not of
    the form "a C S <relation> a C S"."""
    words = text.split()
    if len(words) not in (sc.MAX_WORDS - 1, sc.MAX_WORDS) or words[0] != "a":
        return None
    first, second = words[1:3], words[-2:]
    if words[-3] != "a" or " ".join(words[3:-3]) not in sc.RELATIONS:
        return None
    if first[0] not in sc.COLOURS or second[0] not in sc.COLOURS \
            or first[1] not in sc.SHAPES or second[1] not in sc.SHAPES:
        return None
    return tuple(sorted([tuple(first), tuple(second)]))


def text_scores(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Of generated captions: exact accuracy, corpus BLEU (0-100, sacrebleu, every
    correct caption a reference), the fraction that name the scene's two objects (the
    relation aside), and the fraction that name a held-out object at all."""
    sacrebleu = require("sacrebleu", "translation")
    streams = [list(r) for r in zip(*references)]
    named = [named_objects(h) for h in hypotheses]
    held = set(sc.HELD_OUT)
    return {"exact": float(np.mean([h in r for h, r in zip(hypotheses, references)])),
            "bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
            "objects": float(np.mean([n == named_objects(r[0])
                                      for n, r in zip(named, references)])),
            "held_out": float(np.mean([bool(n and held & set(n)) for n in named]))}


# -- one cell -------------------------------------------------------------------------
def run(cell: str, tests: dict[str, sc.Scenes], args, run_dir: Path) -> dict:
    """Train `args.seeds` captioners of cell type `cell` at once and score them on each
    test set: greedy exact accuracy during training; at the end greedy and beam
    search, exact accuracy, BLEU and objects named; the first seed's captions of the
    first `args.shown` images of each set."""
    started = time.perf_counter()
    model = build(cell, args)
    references = {name: sc.reference_tokens(s) for name, s in tests.items()}

    def loss_fn(params, scenes, key):
        return model.loss(params, scenes.images, scenes.captions, scenes.lengths), {}

    def batch_fn(step):
        return sc.scene_batch(jax.random.fold_in(jax.random.key(1), step), args.batch,
                              "seen", args.image_size)

    @jax.jit
    def greedy_exact(params, images, references):
        def one(p):
            return {f"{name}_greedy_exact": jnp.mean(exact_matches(
                model.greedy(p, images[name]), references[name])) for name in images}
        return jax.vmap(one)(params)

    test_images = {name: s.images for name, s in tests.items()}
    generate = jax.jit(jax.vmap(lambda p, images: (
        model.greedy(p, images), model.beam_search(p, images, args.beam, args.length_penalty)),
        in_axes=(0, None)))
    trained = common.train(
        run_dir, model.init, loss_fn, batch_fn, args, hyper={"learning_rate": args.lr},
        clip=args.clip, evaluate=lambda p: greedy_exact(p, test_images, references),
        eval_every=common.eval_interval(args),
        settings={"cell": cell, "hidden": args.hidden, "embed": args.embed,
                  "features": args.features, "channels": args.channels,
                  "condition": args.condition, "batch": args.batch,
                  "image_size": args.image_size},
        desc=f"captioning {cell}")
    final, shown, curves = {}, {}, {}
    for name, scenes in tests.items():
        texts = sc.reference_texts(scenes)
        if trained.params is None:   # diverged: NaN scores, no captions
            final[name] = {f"{d}_{k}": [math.nan] * args.seeds
                           for d in ("greedy", "beam")
                           for k in ("exact", "bleu", "objects", "held_out")}
            continue
        greedy, beam = (np.asarray(a) for a in generate(trained.params, scenes.images))
        final[name] = {}
        for decoder, tokens in (("greedy", greedy), ("beam", beam)):
            per_seed = [text_scores([sc.caption_text(t) for t in rows], texts)
                        for rows in tokens]
            for key in per_seed[0]:
                final[name][f"{decoder}_{key}"] = [s[key] for s in per_seed]
        shown[name] = [{"references": texts[i], "greedy": sc.caption_text(greedy[0, i]),
                        "beam": sc.caption_text(beam[0, i])} for i in range(args.shown)]
    for name in tests:
        steps, values = common.series(trained.history, f"{name}_greedy_exact")
        curves[name] = [*zip(steps, values.tolist()),
                        (args.steps, final[name]["greedy_exact"])]
    return {"cell": cell, "cell_class": common.cell_label(cell),
            "params": param_count(trained.initial) // args.seeds, "curves": curves,
            "final": final, "shown": shown, "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


# -- reporting ------------------------------------------------------------------------
def plot_captions(results: dict, tests: dict[str, sc.Scenes], args) -> None:
    """captions.png: the first `args.shown` test images of each set, with the first
    seed's greedy and beam captions of every cell beside them (green: correct)."""
    plt = common.pyplot()
    rows = [(name, i) for name in tests for i in range(args.shown)]
    lines = 1 + 2 * len(results)
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 1.0 + 0.28 * lines * len(rows)),
                             gridspec_kw={"width_ratios": [1, 4]}, squeeze=False)
    for (name, i), (image_ax, text_ax) in zip(rows, axes):
        image_ax.imshow(np.asarray(tests[name].images[i]), interpolation="nearest")
        image_ax.set_xticks([])
        image_ax.set_yticks([])
        image_ax.set_ylabel(name, fontsize=7)
        text_ax.axis("off")
        references = sc.reference_texts(sc.Scenes(*(a[i:i + 1] for a in tests[name])))[0]
        entries = [(f"truth: {references[0]}", "black")]
        for r in results.values():
            if name not in r["shown"]:
                continue
            for decoder in ("greedy", "beam"):
                text = r["shown"][name][i][decoder]
                entries.append((f"{r['cell_class']}, {decoder}: {text}",
                                "green" if text in references else "red"))
        for j, (text, colour) in enumerate(entries):
            text_ax.text(0.0, 1.0 - j / max(lines, 1), text, color=colour, fontsize=8,
                         va="top", transform=text_ax.transAxes)
    common.save_figure(fig, args.out / "captions.png")


def plot_training(results: dict, args) -> None:
    """training.png: greedy exact accuracy on each test set against training step."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(TEST_KEYS), figsize=(5 * len(TEST_KEYS), 3.6),
                             squeeze=False)
    for ax, name in zip(axes[0], TEST_KEYS):
        for i, r in enumerate(results.values()):
            if r["curves"][name]:
                steps = [s for s, _ in r["curves"][name]]
                common.band(ax, steps, [v for _, v in r["curves"][name]], f"C{i}",
                            r["cell_class"])
        ax.set(xlabel="training step", ylabel="exact-caption accuracy (greedy)",
               title=f"{name} objects", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    common.save_figure(fig, args.out / "training.png")


def report(results: dict, args) -> str:
    rows = []
    for r in results.values():
        for name in TEST_KEYS:
            f = r["final"][name]
            rows.append([r["cell_class"], name,
                         *(common.spread(f[f"{d}_exact"]) for d in ("greedy", "beam")),
                         *(common.spread(f[f"{d}_bleu"]) for d in ("greedy", "beam")),
                         common.spread(f["beam_objects"]), common.spread(f["beam_held_out"]),
                         f"{r['params']:,}",
                         "yes" if r["nonfinite"] else "no"])
    samples = []
    for r in results.values():
        for name in TEST_KEYS:
            for s in r["shown"].get(name, [])[:3]:
                samples.append([r["cell_class"], name, s["references"][0], s["greedy"],
                                s["beam"]])
    held = ", ".join(f"{c} {s}" for c, s in sc.HELD_OUT)
    return "\n".join([
        "# Image captioning: CNN encoder, recurrent decoder", "",
        f"Command: `{common.command_line()}`", "",
        f"Scenes of two coloured shapes on {args.image_size} x {args.image_size} images "
        f"({len(sc.COLOURS)} colours x {len(sc.SHAPES)} shapes, relations "
        f"{', '.join(sc.RELATIONS)}); every training batch is {args.batch} fresh scenes "
        f"without the held-out objects ({held}). Test sets: {args.test_size} scenes of "
        "seen objects (new images, combinations seen in training) and "
        f"{args.test_size} scenes that each hold one held-out object (unseen "
        "combinations of a seen colour and a seen shape).", "",
        f"Model: CNN with channels {args.channels} (3 x 3 convolutions, ReLU, 2 x 2 max "
        f"pooling), flattened and projected to v of size {args.features}; decoder: "
        f"word embedding {args.embed}, one recurrent layer of {args.hidden}, Dense to "
        f"{sc.VOCAB.size} words; v conditions the decoder through its "
        f"{CONDITION_TEXT[args.condition]}. Teacher forcing, cross-entropy per word; "
        f"Adam lr {args.lr}, clip {args.clip}, {args.steps} steps, {args.seeds} seed(s) "
        "per cell.", "",
        f"Generation: greedy, and beam search with {args.beam} beams (length penalty "
        f"{args.length_penalty}); up to {sc.CAPTION_LEN} tokens. Exact: the caption is one "
        "of the image's two correct captions (the converse, other object first, is as "
        "right). BLEU: sacrebleu's corpus BLEU (0-100) against both. Objects: the "
        "caption names the scene's two objects, whatever the relation (beam search); "
        "names a held-out object: the caption names one of them at all (every "
        "unseen scene holds one; no seen scene does). "
        "Median (min-max) over seeds; every seed counts, including those that failed "
        "to learn. A model that ignores the image scores at most 1/"
        f"{len(sc.SEEN_IDS) * (len(sc.SEEN_IDS) - 1) * len(sc.RELATIONS) // 2} "
        "exact on seen scenes (as many equally likely scene descriptions, up to the "
        "positions, each with its two captions).", "",
        common.markdown_table(["cell", "test objects", "exact (greedy)", "exact (beam)",
                               "BLEU (greedy)", "BLEU (beam)", "objects named (beam)",
                               "names a held-out object (beam)", "params", "diverged"],
                              rows), "",
        "Samples (first seed; the figure captions.png has more):", "",
        common.markdown_table(["cell", "objects", "a correct caption", "greedy", "beam"],
                              samples), "",
        "Plots: captions.png (test images and the captions generated for them; green: "
        "correct), training.png (greedy exact accuracy during training; median, band: "
        "min-max over seeds).", ""])


def check(args) -> None:
    """Fail on a bad cell name or setting before any work."""
    common.check_cells(args)
    if not 0 <= args.shown <= args.test_size:
        raise ValueError(f"--shown must lie in [0, --test-size], got {args.shown}")
    encoder = vision.ImageEncoder(args.features, tuple(args.channels))
    jax.eval_shape(lambda: encoder.init(jax.random.key(0), (args.image_size,) * 2 + (3,)))
    jax.eval_shape(lambda: sc.scene_batch(jax.random.key(0), 1, "seen", args.image_size))


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    tests = {name: sc.scene_batch(jax.random.key(key), args.test_size, name, args.image_size)
             for name, key in TEST_KEYS.items()}
    results = {cell: run(cell, tests, args, args.out / cell) for cell in args.cells}
    plot_captions(results, tests, args)
    plot_training(results, args)
    common.write_results(args, {"vocabulary": [*SPECIALS, *sc.VOCAB.words], "held_out": sc.HELD_OUT,
                                "results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
