"""Named-entity tagging: a character BiLSTM and a word BiLSTM, read by a softmax per word
or by a CRF, against a lookup table of the training entities, on names seen in
training and names never seen.

The model (Lample et al. 2016, "Neural Architectures for Named Entity Recognition"):
a character-level BiLSTM reads each word; its final forward and backward states
(read at the word's own length) are the word's vector, optionally joined with a word
embedding (`--features chars+words`; unknown words share the id `UNK`, and in training each
word is replaced by it with probability `--word-dropout`, so that id means "a word
not in the vocabulary"). A word-level BiLSTM over each sentence (within its length)
gives every word its context, and a Dense layer scores the tags. The `softmax` head
picks each word's best tag on its own (cross-entropy per word); the `crf` head scores
whole tag sequences with learned transitions (`rnnjax.crf`: trained by the negative
log-likelihood, decoded by Viterbi), so it can learn that I-PER never follows O.
The `lookup` baseline is the record of the training data: every token span tagged as
an entity in training, with its most frequent type, matched longest first.

Data: the generated news corpus of `rnnjax.tasks.entities.generated_entities`, whose
test set has two parts, sentences over the training names ("seen") and sentences
whose every entity is a name no training sentence holds ("unseen"); or, with
`--conll-dir DIR`, a CoNLL-2003-format corpus (train, validation and test files
found by their usual names in DIR; one test part). Entity-level precision, recall
and F1 (seqeval, CoNLL's exact-match rule) per part; the validation F1 during
training gives the curves.

    python -m experiments.tagging --quick      # one to two minutes on a 2-core CPU
    python -m experiments.tagging              # about half an hour on a 2-core CPU
    python -m experiments.tagging --conll-dir ~/data/conll2003 --steps 20000 --eval-every 1000

With `--conll-dir` every sentence is padded to the corpus's longest (124 words in
CoNLL-2003), which costs a CPU about ten times the work of the real words: use a GPU.

Writes results/tagging/{results.json, report.md, f1.png, training.png}; every run
(cell x head x features) checkpoints to its own folder, so a rerun resumes.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments import classify, common
from rnnjax.models import LookupTagger, Tagger, tagger
from rnnjax.models.tagger import HEADS, pack_words
from rnnjax.tasks._optional import require
from rnnjax.tasks.entities import (
    TAGS,
    TaggedArrays,
    char_vocab,
    encode_sentences,
    entity_spans,
    generated_entities,
    is_bio2,
    read_conll,
    tag_names,
)
from rnnjax.tasks.labelled import LabelledSequences
from rnnjax.tasks.vocab import WordVocab

NAME = "tagging"
FEATURES = ("chars", "chars+words")
DEFAULTS = dict(cells=["lstm"], seeds=5, steps=2000, heads=list(HEADS),
                features=list(FEATURES), train_size=2000, eval_size=500, corpus_seed=0,
                char_dim=25, char_hidden=25, word_dim=50, hidden=64, word_dropout=0.2,
                max_chars=20, batch=32, lr=3e-3, clip=5.0, eval_every=200,
                checkpoint_every=1000, conll_dir=None, examples=4)
QUICK = dict(seeds=2, steps=200, features=["chars+words"], train_size=600, eval_size=200,
             hidden=32, char_hidden=16, word_dim=32, eval_every=100, checkpoint_every=200,
             lr=5e-3)
#: the usual names of a CoNLL corpus's files, per split (the first one found is read)
CONLL_FILES = {"train": ("train.txt", "train", "eng.train"),
               "validation": ("valid.txt", "dev.txt", "valid", "dev", "eng.testa"),
               "test": ("test.txt", "test", "eng.testb")}
EVAL_CHUNK = 256     # sentences per compiled prediction call
#: what a run reports per test part and seed
METRICS = ("precision", "recall", "f1", "invalid")


def add_arguments(parser) -> None:
    parser.add_argument("--heads", type=common.names_among(HEADS),
                        help=f"among {','.join(HEADS)}")
    parser.add_argument("--features", type=common.names_among(FEATURES),
                        help=f"among {','.join(FEATURES)}")
    parser.add_argument("--train-size", dest="train_size", type=common.positive_int,
                        help="generated training sentences")
    parser.add_argument("--eval-size", dest="eval_size", type=common.positive_int,
                        help="generated test sentences per part (validation: half as many)")
    parser.add_argument("--corpus-seed", dest="corpus_seed", type=int,
                        help="seed of the generated corpus (which names are held out)")
    parser.add_argument("--char-dim", dest="char_dim", type=common.positive_int,
                        help="character embedding size")
    parser.add_argument("--char-hidden", dest="char_hidden", type=common.positive_int,
                        help="character BiLSTM units per direction")
    parser.add_argument("--word-dim", dest="word_dim", type=common.positive_int,
                        help="word embedding size")
    parser.add_argument("--word-dropout", dest="word_dropout", type=float,
                        help="probability that a training word is read as the unknown word")
    parser.add_argument("--max-chars", dest="max_chars", type=common.positive_int,
                        help="characters read per word (longer words: their first ones)")
    parser.add_argument("--conll-dir", dest="conll_dir", type=Path,
                        help="a CoNLL-2003-format corpus instead of the generated one")
    parser.add_argument("--examples", type=int, help="example sentences per test part in the "
                        "report")


# -- data ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Data:
    """The corpus encoded once, every split padded to the same shape: `train` and the
    evaluation parts ("validation/seen", "test/unseen", ...; CoNLL: "validation/all",
    "test/all") as sentences and as `TaggedArrays`."""

    sentences: dict[str, list]
    arrays: dict[str, TaggedArrays]
    words: WordVocab
    chars_size: int
    tags: tuple[str, ...]
    source: str

    def parts(self, split: str) -> list[str]:
        """The parts of "validation" or "test": ["seen", "unseen"], or ["all"]."""
        return [name.split("/")[1] for name in self.sentences if name.startswith(split + "/")]


def load_data(args) -> Data:
    """The generated corpus (or the CoNLL files of `args.conll_dir`), with the word and
    character vocabularies of its training sentences."""
    if args.conll_dir is None:
        corpus = generated_entities(args.corpus_seed, args.train_size,
                                    max(args.eval_size // 2, 1), args.eval_size)
        sentences = {"train": corpus.train,
                     **{f"validation/{p}": s for p, s in corpus.validation.items()},
                     **{f"test/{p}": s for p, s in corpus.test.items()}}
        tags, source = TAGS, f"generated (corpus seed {args.corpus_seed})"
    else:
        sentences = {"train" if split == "train" else f"{split}/all":
                     read_conll(conll_file(args.conll_dir, split)) for split in CONLL_FILES}
        tags, source = tag_names(sentences["train"]), f"CoNLL files in {args.conll_dir}"
    words = WordVocab.from_sentences([tokens for tokens, _ in sentences["train"]])
    chars = char_vocab(sentences["train"])
    everything = [s for part in sentences.values() for s in part]
    encoded = encode_sentences(everything, words, chars, tags, max_chars=args.max_chars)
    arrays, start = {}, 0
    for name, part in sentences.items():
        arrays[name] = TaggedArrays(*(a[start:start + len(part)] for a in encoded))
        start += len(part)
    return Data(sentences, arrays, words, chars.size, tags, source)


def conll_file(folder: Path, split: str) -> Path:
    """The first file of `folder` named as CONLL_FILES lists for `split`."""
    for name in CONLL_FILES[split]:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise ValueError(f"--conll-dir {folder} must hold a {split} file, one of "
                     f"{', '.join(CONLL_FILES[split])}")


def packed(arrays: TaggedArrays) -> LabelledSequences:
    """The arrays as `LabelledSequences` for `classify.epoch_batches`: per word, its
    id, its character count and its characters side by side in `xs` [N, T, 2 + L]."""
    xs = pack_words(arrays.words, arrays.word_lengths, arrays.chars)
    return LabelledSequences(xs, arrays.lengths, arrays.tags, (),
                             np.arange(len(arrays.lengths)))


def build(cell: str, head: str, features: str, data: Data, args) -> Tagger:
    """The tagger of a run: `rnnjax.models.tagger` at the flags' sizes."""
    return tagger(cell, head, chars=data.chars_size, char_dim=args.char_dim,
                  char_hidden=args.char_hidden, hidden=args.hidden, tags=len(data.tags),
                  words=data.words.size if features == "chars+words" else None,
                  word_dim=args.word_dim, word_dropout=args.word_dropout)


def predictor(model: Tagger, parts: list[TaggedArrays]):
    """For each of `parts`, `predict(params) -> tag ids [models, N, T]` for stacked
    params (a leading models axis). One compiled call serves every part: each is cut
    in chunks of the same size (EVAL_CHUNK sentences at most), padded with empty
    sentences (length 0)."""
    step = jax.jit(jax.vmap(model.predict, in_axes=(0, None, None)))
    size = min(EVAL_CHUNK, max(len(a.lengths) for a in parts))

    def predictor_of(arrays: TaggedArrays):
        n = len(arrays.lengths)
        pad = -n % size
        xs = packed(arrays).xs
        xs = np.concatenate([xs, np.zeros((pad, *xs.shape[1:]), xs.dtype)])
        lengths = np.concatenate([arrays.lengths, np.zeros(pad, np.int32)])

        def predict(params):
            chunks = [step(params, xs[i:i + size], lengths[i:i + size])
                      for i in range(0, len(xs), size)]
            return np.concatenate([np.asarray(c) for c in chunks], axis=1)[:, :n]

        return predict

    return [predictor_of(a) for a in parts]


def names_of(ids, lengths, tags: tuple[str, ...]) -> list[list[str]]:
    return [[tags[i] for i in row[:n]] for row, n in zip(np.asarray(ids), lengths)]


def invalid_fraction(predicted: list[list[str]]) -> float:
    """The fraction of sentences whose tags are not valid BIO2 (an I-X that continues no
    X entity): a softmax can emit them, Viterbi only when the CRF learned to allow them."""
    return sum(not is_bio2(tags) for tags in predicted) / max(len(predicted), 1)


def scores(gold: list, predicted: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval's default, conlleval's rule)."""
    metrics = require("seqeval.metrics", "tagging")
    truth = [list(tags) for _, tags in gold]
    with warnings.catch_warnings():                 # no predicted entity: F1 0, no warning
        warnings.simplefilter("ignore")
        return {"precision": float(metrics.precision_score(truth, predicted)),
                "recall": float(metrics.recall_score(truth, predicted)),
                "f1": float(metrics.f1_score(truth, predicted))}


# -- the baselines ------------------------------------------------------------------------
def chance_tags(sentences, train, seed: int = 0) -> list[list[str]]:
    """Tags drawn independently per word from the training tag frequencies."""
    counts = Counter(t for _, tags in train for t in tags)
    names = sorted(counts)
    p = np.array([counts[t] for t in names], np.float64)
    rng = np.random.default_rng(seed)
    return [list(rng.choice(names, len(tokens), p=p / p.sum())) for tokens, _ in sentences]


# -- runs ---------------------------------------------------------------------------------
def run(cell: str, head: str, features: str, data: Data, args, run_dir: Path) -> dict:
    """Train `args.seeds` taggers; validation F1 per part along the way; at the end
    precision, recall and F1 per test part and seed, and seed 0's tags of the test."""
    started = time.perf_counter()
    model = build(cell, head, features, data, args)
    train = packed(data.arrays["train"])
    evaluated = [f"validation/{p}" for p in data.parts("validation")]
    evaluated += [f"test/{p}" for p in data.parts("test")]
    predictors = dict(zip(evaluated, predictor(model, [data.arrays[e] for e in evaluated])))
    validation = {p: predictors[f"validation/{p}"] for p in data.parts("validation")}

    def evaluate(params):
        out = {}
        for part, predict in validation.items():
            arrays = data.arrays[f"validation/{part}"]
            ids = predict(params)
            out[f"validation_{part}_f1"] = [
                scores(data.sentences[f"validation/{part}"],
                       names_of(ids[m], arrays.lengths, data.tags))["f1"]
                for m in range(args.seeds)]
        return out

    trained = common.train(
        run_dir, model.init, model.loss,
        classify.epoch_batches(train, min(args.batch, len(train.lengths))), args,
        hyper={"learning_rate": args.lr}, clip=args.clip, evaluate=evaluate,
        eval_every=common.eval_interval(args),
        settings={"data": data.source, "cell": cell, "head": head, "features": features,
                  **{k: getattr(args, k) for k in ("train_size", "eval_size", "corpus_seed",
                                                   "char_dim", "char_hidden", "word_dim",
                                                   "hidden", "word_dropout", "max_chars",
                                                   "batch")}},
        desc=f"{cell} {head} {features}")
    final, predicted = {}, {}
    for part in data.parts("test"):
        name = f"test/{part}"
        arrays = data.arrays[name]
        if trained.params is None:                                   # diverged
            final[part] = {m: [math.nan] * args.seeds for m in METRICS}
            continue
        ids = predictors[name](trained.params)
        tags = [names_of(ids[m], arrays.lengths, data.tags) for m in range(args.seeds)]
        per_seed = [{**scores(data.sentences[name], t), "invalid": invalid_fraction(t)}
                    for t in tags]
        final[part] = {m: [s[m] for s in per_seed] for m in METRICS}
        predicted[part] = tags[0][:args.examples]
    curves = {}
    for part in data.parts("validation"):
        steps, values = common.series(trained.history, f"validation_{part}_f1")
        curves[part] = [*zip(steps, values.tolist())]
        if trained.params is not None:
            curves[part].append((args.steps, evaluate(trained.params)[f"validation_{part}_f1"]))
    steps, losses = common.series(trained.history, "loss")
    return {"cell": cell, "head": head, "features": features, "final": final,
            "curves": curves, "loss": [*zip(steps, losses.tolist())],
            "nonfinite": trained.params is None, "predicted_seed0": predicted,
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def baselines(data: Data, examples: int) -> dict:
    """The lookup table and chance, per test part (one number each: no seeds), and the
    lookup's tags of the first `examples` test sentences of each part."""
    lookup = LookupTagger.fit(data.sentences["train"])
    out = {"lookup": {}, "chance": {}, "lookup_entries": len(lookup.table)}
    predicted = {}
    for part in data.parts("test"):
        gold = data.sentences[f"test/{part}"]
        predicted[part] = [lookup.tag(tokens) for tokens, _ in gold]
        out["lookup"][part] = scores(gold, predicted[part])
        out["chance"][part] = scores(gold, chance_tags(gold, data.sentences["train"]))
    out["lookup_predicted"] = {part: tags[:examples] for part, tags in predicted.items()}
    return out


# -- report -------------------------------------------------------------------------------
def label(result: dict) -> str:
    return f"{result['head']} ({result['features']}, {common.cell_label(result['cell'])})"


def bracketed(tokens, tags) -> str:
    """A sentence with its entities in brackets: '[Jordan Smith]PER visited [Lima]LOC'."""
    words = list(tokens)
    for kind, first, last in entity_spans(tags):
        words[first] = "[" + words[first]
        words[last] = words[last] + "]" + kind
    return " ".join(words)


def example_rows(data: Data, results: dict, base: dict, part: str, count: int) -> list[str]:
    gold = data.sentences[f"test/{part}"]
    lines = []
    for i in range(min(count, len(gold))):
        tokens, tags = gold[i]
        lines += [f"- gold: {bracketed(tokens, tags)}",
                  f"  - lookup: {bracketed(tokens, base['lookup_predicted'][part][i])}"]
        for result in results.values():
            if part in result["predicted_seed0"]:
                lines.append(f"  - {label(result)}: "
                             f"{bracketed(tokens, result['predicted_seed0'][part][i])}")
    return lines


def report(data: Data, results: dict, base: dict, args) -> str:
    parts = data.parts("test")
    header = ["model", *(f"{p} {m}" for p in parts for m in ("F1", "precision", "recall")),
              "diverged", "wall seconds"]
    rows = []
    for result in results.values():
        rows.append([label(result),
                     *(common.spread(result["final"][p][m]) for p in parts
                       for m in ("f1", "precision", "recall")),
                     "yes" if result["nonfinite"] else "no", f"{result['wall_seconds']:.0f}"])
    for name in ("lookup", "chance"):
        rows.append([name, *(f"{base[name][p][m]:.3g}" for p in parts
                             for m in ("f1", "precision", "recall")), "-", "-"])
    invalid = [[label(r), *(common.spread(r["final"][p]["invalid"]) for p in parts)]
               for r in results.values()]
    counts = ", ".join(f"{name} {len(s)}" for name, s in data.sentences.items())
    examples = []
    for part in parts:
        examples += [f"### Test part: {part}", "",
                     *example_rows(data, results, base, part, args.examples), ""]
    return "\n".join([
        "# Named-entity tagging: softmax vs CRF vs a lookup table", "",
        f"Command: `{common.command_line()}`", "",
        f"Data: {data.source}; sentences: {counts}. Tags: {', '.join(data.tags)}. "
        f"Vocabulary: {data.words.size} word ids (4 special, unknown words share one), "
        f"{data.chars_size} characters.",
        "",
        f"Character embedding {args.char_dim}, character BiLSTM {args.char_hidden} units per "
        f"direction (final states at each word's length), word embedding {args.word_dim} "
        f"(word dropout {args.word_dropout}) where 'chars+words', word BiLSTM {args.hidden} "
        f"per direction; Adam lr {args.lr}, global-norm clip {args.clip}, batch "
        f"{args.batch}, {args.steps} steps, {args.seeds} seeds.", "",
        "Entity-level scores on the test parts (seqeval, exact span and type), median "
        "(min-max) over seeds; every seed counts, including any that failed to learn. "
        + ("seen: sentences whose every entity training holds (with its type); unseen: "
           "every entity a name no training sentence holds. " if "unseen" in parts else "")
        + "The lookup tags every span it saw as an entity in "
        f"training ({base['lookup_entries']} spans) with its most frequent type, longest "
        "first; chance draws each tag from the training frequencies.", "",
        common.markdown_table(header, rows), "",
        "Test sentences whose predicted tags are not valid BIO2 (an I-X that continues no "
        "X entity; seqeval then reads it as the start of one):", "",
        common.markdown_table(["model", *(f"{p} invalid" for p in parts)], invalid), "",
        "## Examples (seed 0; [entity]TYPE)", "", *examples,
        "Plots: f1.png (test F1 per model and part), training.png (validation F1 and "
        "training loss).", ""])


def plot(data: Data, results: dict, base: dict, args) -> None:
    plt = common.pyplot()
    parts = data.parts("test")
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * (len(results) + 1)), 4.2))
    names = ["lookup", *(label(r) for r in results.values())]
    width = 0.8 / len(parts)
    for j, part in enumerate(parts):
        values = [np.array([base["lookup"][part]["f1"]])]
        values += [np.nan_to_num(np.asarray(r["final"][part]["f1"], np.float64))
                   for r in results.values()]
        x = np.arange(len(names)) + (j - (len(parts) - 1) / 2) * width
        medians = np.array([np.median(v) for v in values])
        ax.bar(x, medians, width, color=f"C{j}", label=f"test {part}",
               yerr=[medians - [v.min() for v in values], [v.max() for v in values] - medians],
               capsize=3)
        for xi, m in zip(x, medians):
            ax.text(xi, m + 0.01, f"{m:.2f}", ha="center", va="bottom", fontsize=7)
        ax.axhline(base["chance"][part]["f1"], color=f"C{j}", ls=":", lw=1)
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="entity F1 (median, min-max over seeds)", ylim=(0, 1.1),
           title="Test F1 (dotted: chance)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    common.save_figure(fig, args.out / "f1.png")

    valid_parts = data.parts("validation")
    fig, axes = plt.subplots(1, len(valid_parts) + 1, figsize=(5 * (len(valid_parts) + 1), 3.8))
    for i, result in enumerate(results.values()):
        for ax, part in zip(axes, valid_parts):
            steps = [s for s, _ in result["curves"][part]]
            values = np.asarray([v for _, v in result["curves"][part]], np.float64)
            if len(steps):
                common.band(ax, steps, values, f"C{i}", label(result))
            ax.set(xlabel="step", ylabel="validation F1", title=f"validation {part}")
        steps = [s for s, _ in result["loss"]]
        if steps:
            common.band(axes[-1], steps, np.asarray([v for _, v in result["loss"]]), f"C{i}",
                        label(result))
    axes[-1].set(xlabel="step", ylabel="training loss per word", yscale="log",
                 title="training loss")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    common.save_figure(fig, args.out / "training.png")


def check(args) -> None:
    """Fail on a bad head, feature set, cell, size or --steps before any work."""
    common.check_cells(args)
    if not 0.0 <= args.word_dropout < 1.0:
        raise ValueError(f"--word-dropout must lie in [0, 1), got {args.word_dropout}")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(args)
    base = baselines(data, args.examples)
    results: dict[str, Any] = {}
    for cell in args.cells:
        for head in args.heads:
            for features in args.features:
                key = f"{cell}/{head}/{features}"
                results[key] = run(cell, head, features, data, args,
                                   args.out / common.folder(key))
    plot(data, results, base, args)
    common.write_results(args, {"data": data.source, "tags": list(data.tags),
                                "sizes": {k: len(v) for k, v in data.sentences.items()},
                                "results": results, "baselines": base},
                         report(data, results, base, args))
    return results


if __name__ == "__main__":
    main()
