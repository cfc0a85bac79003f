"""Translation with an RNN encoder-decoder: a fixed context against additive attention.

Cho et al. (2014)'s encoder-decoder, whose decoder sees the source only through the
encoder's final state, against Bahdanau et al. (2015)'s, which attends over every
source word at every step, on a translation task whose sentences grow long.

The task: numbers written out in English, translated into French, both by num2words
(`rnnjax.tasks.pairs`), e.g. "ninety-seven billion, eighty million and seventy-one" ->
"quatre-vingt-dix-sept milliards quatre-vingts millions soixante et onze": word tokens
(hyphens and commas are tokens of their own), reordering, vigesimal forms, agreement,
sources of up to 30 tokens and targets of up to 39 below 10^12. The numbers of the
training, validation and test splits are disjoint draws from [0, --high), each number
of digits alike (`pairs.number_splits`). `--pairs FILE` trains on a tab-separated
corpus instead (the Tatoeba / Anki format: source TAB target), shuffled with
--data-seed and cut into test, validation and training pairs.

Each model is `rnnjax.seq2seq.EncoderDecoder`: an encoder of `--cells` type (both
ways with `--encoder bi`), a decoder of the same type, and for `--attention none`
Cho et al.'s fixed context, for `additive` Bahdanau et al.'s attention. Teacher
forcing, the cross-entropy over each target's tokens and its end mark, Adam and
global-norm clipping, `--seeds` models at once. The validation split is scored by
teacher forcing during training. On the test split, greedy decoding and beam search
(`--beam`, scores divided by length ** `--length-penalty`) are scored by exact match,
token accuracy (position by position against the reference and its end mark) and
sacreBLEU's corpus BLEU, overall and by source length.

    python -m experiments.translation --quick   # about two minutes on a 2-core CPU
    python -m experiments.translation           # GRU with and without attention, 3 seeds:
                                                # about 45 minutes on 2 cores (estimated)
    python -m experiments.translation --cells gru,lstm --pairs fra.txt --min-count 2

Writes results/translation/{results.json, report.md, by_length.png, training.png,
attention.png}; every model (cell x attention) checkpoints to its own folder, and a
rerun of the same command skips the finished ones.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments import classify, common
from rnnjax import decode, seq2seq
from rnnjax.tasks import pairs
from rnnjax.tasks.labelled import LabelledSequences
from rnnjax.train import accuracy, softmax_cross_entropy

NAME = "translation"
DEFAULTS = dict(cells=["gru"], seeds=3, steps=3000, attention=["none", "additive"],
                encoder="bi", hidden=128, embed=64, batch=64, lr=1e-3, clip=1.0,
                eval_every=250, checkpoint_every=500, train_size=50_000,
                validation_size=1000, test_size=2000, high=10**12, data_seed=0,
                pairs=None, min_count=1, beam=5, length_penalty=1.0, samples=8)
QUICK = dict(seeds=2, steps=400, hidden=32, embed=16, lr=1e-2, eval_every=200,
             checkpoint_every=400, train_size=4000, validation_size=300, test_size=300,
             high=10**6)
ATTENTION = ("none", "additive")
ENCODERS = ("uni", "bi")
DECODERS = ("greedy", "beam")
METRICS = ("exact_match", "token_accuracy", "bleu")
#: test rows decoded at once (the last chunk is padded), to bound memory on long corpora
DECODE_CHUNK = 512


def add_arguments(parser) -> None:
    parser.add_argument("--attention", type=common.names_among(ATTENTION),
                        help=f"comma-separated, among {','.join(ATTENTION)}")
    parser.add_argument("--encoder", choices=ENCODERS,
                        help="the encoder reads the source one way or both ways")
    parser.add_argument("--embed", type=common.positive_int, help="embedding size of a word")
    parser.add_argument("--train-size", dest="train_size", type=common.positive_int,
                        help="training pairs (with --pairs: at most this many)")
    parser.add_argument("--validation-size", dest="validation_size", type=common.positive_int,
                        help="validation pairs")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="test pairs")
    parser.add_argument("--high", type=common.positive_int, help="numbers are drawn from [0, high)")
    parser.add_argument("--data-seed", dest="data_seed", type=int,
                        help="the seed of the split (and of the draw of numbers)")
    parser.add_argument("--pairs", type=Path,
                        help="a tab-separated corpus (source TAB target) to train on "
                             "instead of the numbers")
    parser.add_argument("--min-count", dest="min_count", type=common.positive_int,
                        help="words seen fewer times in training map to unknown")
    parser.add_argument("--beam", type=common.positive_int, help="beam size of beam search")
    parser.add_argument("--length-penalty", dest="length_penalty", type=float,
                        help="beam scores are log-probabilities / length ** this")
    parser.add_argument("--samples", type=common.positive_int,
                        help="sample translations in the report")


def check(args) -> None:
    """Fail on a bad cell, setting or file before any work."""
    common.check_cells(args)
    if args.samples < 0 or args.length_penalty < 0:
        raise ValueError(f"--samples and --length-penalty must be >= 0, got "
                         f"{args.samples} and {args.length_penalty}")
    if args.pairs is not None and not args.pairs.is_file():
        raise ValueError(f"--pairs must name a file, got {args.pairs}")


# -- data --------------------------------------------------------------------------------
class Data(NamedTuple):
    source_vocab: pairs.WordVocab
    target_vocab: pairs.WordVocab
    tokens: dict       # split -> [(source tokens, target tokens)]
    arrays: dict       # split -> pairs.Parallel
    description: str


def split_pairs(args) -> dict[str, list[tuple[str, str]]]:
    """split -> (source, target) sentence pairs: numbers, or the --pairs corpus."""
    sizes = {"test": args.test_size, "validation": args.validation_size,
             "train": args.train_size}
    if args.pairs is None:
        numbers = pairs.number_splits(sizes, args.high, args.data_seed)
        return {split: pairs.number_pairs(numbers[split]) for split in pairs.SPLITS}
    corpus = pairs.read_pairs(args.pairs)
    held = args.test_size + args.validation_size
    if len(corpus) <= held:
        raise ValueError(f"--pairs {args.pairs} holds {len(corpus)} pairs, not more than "
                         f"--test-size + --validation-size = {held}")
    order = np.random.default_rng(args.data_seed).permutation(len(corpus))
    bounds = {"test": (0, args.test_size), "validation": (args.test_size, held),
              "train": (held, held + args.train_size)}
    return {split: [corpus[i] for i in order[lo:hi]] for split, (lo, hi) in bounds.items()}


def load_data(args) -> Data:
    sentences = split_pairs(args)
    tokens = {split: [(pairs.tokenize(s), pairs.tokenize(t)) for s, t in sentences[split]]
              for split in pairs.SPLITS}
    source_vocab = pairs.WordVocab.from_sentences([s for s, _ in tokens["train"]],
                                                  args.min_count)
    target_vocab = pairs.WordVocab.from_sentences([t for _, t in tokens["train"]],
                                                  args.min_count)
    arrays = {split: pairs.encode_pairs(tokens[split], source_vocab, target_vocab)
              for split in pairs.SPLITS}
    description = (f"the tab-separated corpus {args.pairs}" if args.pairs else
                   f"numbers in [0, {args.high:,}) written out by num2words, English -> "
                   "French")
    return Data(source_vocab, target_vocab, tokens, arrays, description)


def batches(train: pairs.Parallel, batch: int):
    """`batch_fn(step) -> (source, source_lengths, target_in, target_out, target_lengths)`:
    epochs of the training pairs, each in a fresh order (`classify.epoch_batches`, which
    deals row numbers here, passed as its labels)."""
    size = len(train.source)
    rows_of = classify.epoch_batches(
        LabelledSequences(train.source[:, :1], train.source_lengths,
                          np.arange(size, dtype=np.int32), (), np.arange(size)),
        min(batch, size))
    arrays = tuple(jnp.asarray(a) for a in train)

    def batch_fn(step):
        rows = rows_of(step)[2]
        return tuple(a[rows] for a in arrays)

    return batch_fn


# -- one model ---------------------------------------------------------------------------
def build(cell: str, attention: str, data: Data, args) -> seq2seq.EncoderDecoder:
    return seq2seq.encoder_decoder(
        data.source_vocab.size, data.target_vocab.size, cell=cell, hidden=args.hidden,
        embed=args.embed, bidirectional=args.encoder == "bi",
        attention=attention == "additive")


def max_decode_length(data: Data) -> int:
    """Decoding steps: the longest training target with its end mark, plus five."""
    return int(data.arrays["train"].target_lengths.max()) + 5


def translator(model: seq2seq.EncoderDecoder, max_len: int, beam: int, penalty: float):
    """`translate(params, source, lengths) -> (greedy [B, max_len], best beam [B, max_len])`
    token ids, compiled once per model."""
    @jax.jit
    def translate(params, source, lengths):
        step_fn, carry = model.decoder(params, source, lengths)
        start = jnp.full(source.shape[:1], pairs.SOS, jnp.int32)
        greedy = decode.greedy(step_fn, carry, start, max_len, eos=pairs.EOS)
        beams, _ = decode.beam_search(step_fn, carry, start, max_len, beam, eos=pairs.EOS,
                                      length_penalty=penalty)
        return greedy, beams[:, 0]

    return translate


def translate_all(translate, params, data: pairs.Parallel, vocab: pairs.WordVocab):
    """decoder name -> the translations (token lists) of every row of `data`, decoded in
    chunks of `DECODE_CHUNK` rows (the last padded with copies of the first row)."""
    size = len(data.source)
    chunk = min(DECODE_CHUNK, size)
    padded = -(-size // chunk) * chunk
    rows = np.concatenate([np.arange(size), np.zeros(padded - size, np.int64)])
    source, lengths = data.source[rows], data.source_lengths[rows]
    out = {name: [] for name in DECODERS}
    for lo in range(0, padded, chunk):
        ids = translate(params, jnp.asarray(source[lo:lo + chunk]),
                        jnp.asarray(lengths[lo:lo + chunk]))
        for name, tokens in zip(DECODERS, ids):
            out[name].extend(vocab.decode(row) for row in np.asarray(tokens))
    return {name: hyps[:size] for name, hyps in out.items()}


def length_bins(lengths) -> list[tuple[int, int]]:
    """At most about six bins of equal width (lo, hi), both ends included, that cover the
    source lengths."""
    longest = int(np.max(lengths))
    width = max(1, math.ceil(longest / 6))
    return [(lo, min(lo + width - 1, longest)) for lo in range(1, longest + 1, width)]


def scores(hypotheses, references) -> dict:
    bleu, _ = pairs.corpus_bleu(hypotheses, references)
    return {"exact_match": pairs.exact_match(hypotheses, references),
            "token_accuracy": pairs.token_accuracy(hypotheses, references), "bleu": bleu}


def score_by_length(hypotheses, references, lengths, bins) -> dict:
    """metric -> [bins] scores of the sentences whose source length lies in each bin
    (NaN for an empty bin)."""
    out = {metric: [] for metric in METRICS}
    for lo, hi in bins:
        rows = [i for i, n in enumerate(lengths) if lo <= n <= hi]
        values = (scores([hypotheses[i] for i in rows], [references[i] for i in rows])
                  if rows else dict.fromkeys(METRICS, math.nan))
        for metric in METRICS:
            out[metric].append(values[metric])
    return out


def sample_rows(lengths, count: int) -> list[int]:
    """`count` test rows spread over the source lengths (evenly spaced in length order)."""
    order = np.argsort(lengths, kind="stable")
    picks = np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int)
    return sorted({int(order[p]) for p in picks}, key=lambda i: (lengths[i], i))


def run(cell: str, attention: str, data: Data, args) -> dict:
    """Train `args.seeds` models (one compiled step, vmapped over seeds), score the
    validation split by teacher forcing during training, then decode the test split
    greedily and by beam search with every seed."""
    started = time.perf_counter()
    model = build(cell, attention, data, args)
    valid = tuple(jnp.asarray(a) for a in data.arrays["validation"])

    def teacher_forced(params, batch):
        source, source_lengths, target_in, target_out, target_lengths = batch
        logits = model.logits(params, source, source_lengths, target_in)
        return (softmax_cross_entropy(logits, target_out, target_lengths),
                accuracy(logits, target_out, target_lengths))

    def loss_fn(params, batch, key):
        return teacher_forced(params, batch)[0], {}

    validate = jax.jit(jax.vmap(lambda p: teacher_forced(p, valid)))
    trained = common.train(
        args.out / common.folder(f"{cell}/{attention}"), model.init, loss_fn,
        batches(data.arrays["train"], args.batch), args,
        hyper={"learning_rate": args.lr}, clip=args.clip,
        evaluate=lambda p: dict(zip(("validation_loss", "validation_accuracy"), validate(p))),
        eval_every=common.eval_interval(args),
        settings={"data": data.description, "sizes": [len(data.tokens[s]) for s in
                                                      pairs.SPLITS],
                  "data_seed": args.data_seed, "cell": cell, "attention": attention,
                  "encoder": args.encoder, "hidden": args.hidden, "embed": args.embed,
                  "batch": args.batch, "min_count": args.min_count},
        desc=f"{cell}, attention {attention}")

    test, references = data.arrays["test"], [t for _, t in data.tokens["test"]]
    lengths = test.source_lengths.tolist()
    bins = length_bins(lengths)
    nan = [math.nan] * args.seeds
    final = {d: {m: list(nan) for m in METRICS} for d in DECODERS}
    by_length = {d: {m: [list(nan) for _ in bins] for m in METRICS} for d in DECODERS}
    samples, alignment = [], None
    if trained.params is not None:
        translate = translator(model, max_decode_length(data), args.beam, args.length_penalty)
        shown = sample_rows(lengths, args.samples)
        for seed in range(args.seeds):
            params = jax.tree_util.tree_map(lambda x, s=seed: x[s], trained.params)
            hyps = translate_all(translate, params, test, data.target_vocab)
            for name in DECODERS:
                for metric, value in scores(hyps[name], references).items():
                    final[name][metric][seed] = value
                for metric, values in score_by_length(hyps[name], references, lengths,
                                                      bins).items():
                    for b, value in enumerate(values):
                        by_length[name][metric][b][seed] = value
            if seed == 0:
                samples = [{"source": pairs.detokenize(data.tokens["test"][i][0]),
                            "reference": pairs.detokenize(references[i]),
                            **{name: pairs.detokenize(hyps[name][i]) for name in DECODERS}}
                           for i in shown]
                if attention == "additive" and shown:
                    alignment = attention_map(model, params, data, shown[-1],
                                              hyps["beam"][shown[-1]])
    steps, values = common.series(trained.history, "validation_accuracy")
    _, final_validation = (validate(trained.params) if trained.params is not None
                           else (nan, nan))
    return {"cell": cell, "cell_class": common.cell_label(cell), "attention": attention,
            "encoder": args.encoder, "label": label(cell, attention),
            "params": int(sum(np.prod(x.shape[1:])
                              for x in jax.tree_util.tree_leaves(trained.initial))),
            "curve": [*zip(steps, values.tolist()),
                      (args.steps, np.asarray(final_validation).tolist())],
            "final": final,
            "by_length": {"bins": [f"{lo}-{hi}" if hi > lo else f"{lo}" for lo, hi in bins],
                          "count": [sum(lo <= n <= hi for n in lengths) for lo, hi in bins],
                          **by_length},
            "samples": samples, "alignment": alignment, "nonfinite": trained.params is None,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def attention_map(model, params, data: Data, row: int, translation) -> dict:
    """The attention weights of one test source while the model reads its own
    translation (behind the start token): {source, output, weights [output + 1, source]}."""
    source_tokens = data.tokens["test"][row][0]
    source = jnp.asarray(data.arrays["test"].source[row:row + 1, :len(source_tokens)])
    target_in = jnp.asarray(np.concatenate(
        [[pairs.SOS], data.target_vocab.encode(translation)]).astype(np.int32)[None])
    weights = jax.jit(model.alignments)(params, source,
                                        jnp.asarray([len(source_tokens)], jnp.int32), target_in)
    return {"source": source_tokens, "output": [*translation, pairs.SPECIALS[pairs.EOS]],
            "weights": np.asarray(weights[0]).round(4).tolist()}


def label(cell: str, attention: str) -> str:
    return f"{common.cell_label(cell)}, " + ("attention" if attention == "additive"
                                         else "fixed context")


# -- reporting ---------------------------------------------------------------------------
def median(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.median(values)) if values.size else math.nan


def plot_by_length(results: dict, out: Path) -> None:
    """by_length.png: BLEU and exact match against the source length, each model and
    decoder (median over seeds, bars min to max)."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(results.values()):
        bins = r["by_length"]["bins"]
        for d, style in zip(DECODERS, ("-o", "--s")):
            for ax, metric in zip(axes, ("bleu", "exact_match")):
                values = np.asarray(r["by_length"][d][metric], np.float64)    # [bins, seeds]
                middle = np.median(values, axis=1)
                ax.errorbar(np.arange(len(bins)), middle,
                            yerr=[middle - values.min(axis=1), values.max(axis=1) - middle],
                            fmt=style, color=f"C{i}", capsize=2, label=f"{r['label']}, {d}")
    for ax, name in zip(axes, ("BLEU", "exact match")):
        counts = next(iter(results.values()))["by_length"]
        ax.set_xticks(np.arange(len(counts["bins"])),
                      [f"{b}\n({n})" for b, n in zip(counts["bins"], counts["count"])],
                      fontsize=8)
        ax.set(xlabel="source length in tokens (test sentences)", ylabel=name,
               title=f"{name} by source length")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    common.save_figure(fig, out / "by_length.png")


def plot_training(results: dict, out: Path) -> None:
    """training.png: validation token accuracy (teacher forcing) against step."""
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(results.values()):
        curve = [(s, v) for s, v in r["curve"] if np.all(np.isfinite(v))]
        if curve:
            common.band(ax, [s for s, _ in curve], [v for _, v in curve], f"C{i}", r["label"])
    ax.set(xlabel="training step", ylabel="validation token accuracy (teacher forcing)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    common.save_figure(fig, out / "training.png")


def plot_attention(results: dict, out: Path) -> list[str]:
    """attention.png: each attention model's weights over one test source (seed 0);
    returns the labels of the models shown."""
    shown = [r for r in results.values() if r["alignment"]]
    if not shown:
        return []
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 5), squeeze=False)
    for ax, r in zip(axes[0], shown):
        a = r["alignment"]
        ax.imshow(np.asarray(a["weights"]), cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(np.arange(len(a["source"])), a["source"], rotation=90, fontsize=8)
        ax.set_yticks(np.arange(len(a["output"])), a["output"], fontsize=8)
        ax.set(xlabel="source", ylabel="translation (beam search)", title=r["label"])
    common.save_figure(fig, out / "attention.png")
    return [r["label"] for r in shown]


def report(results: dict, data: Data, signature: str, attention_shown: list[str],
           args) -> str:
    sizes = ", ".join(f"{split} {len(data.tokens[split]):,}" for split in pairs.SPLITS)
    one_word = int(np.sum(data.arrays["train"].source_lengths == 1))
    rows = []
    for r in results.values():
        for d in DECODERS:
            rows.append([r["label"], d, *(common.spread(r["final"][d][m], 3) for m in METRICS),
                         f"{r['params']:,}", "yes" if r["nonfinite"] else "no",
                         f"{r['seconds']:.0f}"])
    first = next(iter(results.values()))["by_length"]
    length_rows = []
    for r in results.values():
        for d in DECODERS:
            cells = [f"{median(em) * 100:.0f}% / {median(bleu):.1f}" for em, bleu in
                     zip(r["by_length"][d]["exact_match"], r["by_length"][d]["bleu"])]
            length_rows.append([r["label"], d, *cells])
    lines = [
        "# Translation with an RNN encoder-decoder", "",
        f"Command: `{common.command_line()}`", "",
        f"Data: {data.description}; pairs {sizes} (disjoint). Word tokens (hyphens and "
        f"punctuation are tokens of their own), vocabularies of {data.source_vocab.size} "
        f"source and {data.target_vocab.size} target ids (pad, start, end and unknown "
        "included; " + (f"words seen fewer than {args.min_count} times in training are "
                        "unknown)." if args.min_count > 1 else "every training word kept).")
        + f" {one_word} training sources are a single word" + (
            " (few numbers are: zero to twenty and the tens)." if args.pairs is None else "."),
        "",
        f"Models: `rnnjax.seq2seq.EncoderDecoder`, {args.hidden} units per recurrent layer, "
        f"the encoder reading {'both ways' if args.encoder == 'bi' else 'one way'}, "
        f"embeddings of {args.embed}; fixed context (Cho et al. 2014) or additive attention "
        f"(Bahdanau et al. 2015). Teacher forcing, cross-entropy over the target tokens and "
        f"the end mark; Adam lr {args.lr}, global-norm clip {args.clip}, batch {args.batch}, "
        f"{args.steps} steps; {args.seeds} seed{'s' if args.seeds > 1 else ''} per model.", "",
        f"Test split, median (min-max) over seeds, every seed counted. Greedy decoding and "
        f"beam search (beam {args.beam}, log-probability / length ** {args.length_penalty}), "
        f"at most {max_decode_length(data)} tokens. Exact match: the whole translation "
        f"right; token accuracy: position by position against the reference and its end "
        f"mark (a uniform guess scores 1/{data.target_vocab.size} = "
        f"{1 / data.target_vocab.size:.3f}); BLEU: sacreBLEU corpus BLEU on the "
        f"detokenised text, `{signature}` (its 13a tokenisation keeps a hyphenated word "
        "such as quatre-vingt-dix-sept whole).", "",
        common.markdown_table(["model", "decoder", "exact match", "token accuracy", "BLEU",
                               "params", "diverged", "train seconds"], rows), "",
        "## By source length", "",
        "Exact match / BLEU (medians over seeds) of the test sentences by source length in "
        "tokens (sentences per bin in brackets). Plot: by_length.png. BLEU counts n-grams "
        "of up to four words, so on sentences of fewer words it stays near 0 even when "
        "every translation is exact: read exact match for the shortest bins.", "",
        common.markdown_table(
            ["model", "decoder", *(f"{b} ({n})" for b, n in zip(first["bins"],
                                                               first["count"]))],
            length_rows), "",
        "Validation token accuracy by teacher forcing during training: training.png.", ""]
    if attention_shown:
        lines += [f"Attention weights over one test source while the model reads its own "
                  f"beam translation (seed 0): attention.png ({', '.join(attention_shown)}).",
                  ""]
    lines += ["## Sample translations", "",
              "Test sentences spread over the source lengths; the first seed's models.", ""]
    for r in results.values():
        lines += [f"### {r['label']}", ""]
        if not r["samples"]:
            lines += ["(diverged: no translations)", ""]
            continue
        lines += [common.markdown_table(
            ["source", "reference", "greedy", "beam"],
            [[_cell(s["source"]), _cell(s["reference"]), _marked(s["greedy"], s["reference"]),
              _marked(s["beam"], s["reference"])] for s in r["samples"]]), ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a markdown table cell (a '|' in a user's corpus would split it)."""
    return text.replace("|", "\\|")


def _marked(translation: str, reference: str) -> str:
    """A wrong translation in bold."""
    return _cell(translation) if translation == reference else f"**{_cell(translation)}**"


# -- the study ---------------------------------------------------------------------------
def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    data = load_data(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for cell in args.cells:
        for attention in args.attention:
            key = f"{cell}/{attention}"
            config = {**common.config_of(args), "cells": None, "attention": None,
                      "out": None, "quick": None}
            results[key] = common.load_part(args.out, key, config)
            if results[key] is None:
                results[key] = run(cell, attention, data, args)
                common.save_part(args.out, key, config, results[key])
    _, signature = pairs.corpus_bleu([["a"]], [["a"]])
    plot_by_length(results, args.out)
    plot_training(results, args.out)
    shown = plot_attention(results, args.out)
    payload = {"data": {"description": data.description,
                        "sizes": {s: len(data.tokens[s]) for s in pairs.SPLITS},
                        "source_vocab": list(data.source_vocab.words),
                        "target_vocab": list(data.target_vocab.words),
                        "max_decode_length": max_decode_length(data),
                        "uniform_token_accuracy": 1 / data.target_vocab.size},
               "bleu_signature": signature, "results": results}
    common.write_results(args, payload, report(results, data, signature, shown, args))
    return results


if __name__ == "__main__":
    main()
