"""Sentence pairs for translation: a reader of tab-separated corpora, numbers written
out in English and in French, word tokens, a word vocabulary, and the scores of
translations (exact match, token accuracy, corpus BLEU).

`read_pairs` reads the Tatoeba / manythings.org Anki format: one pair a line,
`source TAB target`, optionally more tab-separated fields (an attribution) after.

The generated task translates numbers written out by `num2words` (the extra
`rnnjax[translation]`) from English into French, which has real structure for a
translation model: reordering and vigesimal forms (ninety-seven -> quatre-vingt-dix-
sept, seventy-one -> soixante et onze), agreement (quatre-vingts, deux cents, but
quatre-vingt mille, deux cent un), "and" and commas in English with no French word
for them. `tokenize` splits words at spaces and keeps each hyphen and punctuation
mark as a token of its own, so the vocabularies are small (about 30 words each) and
the word order differs between the languages; `detokenize` inverts it on
num2words' output.

>>> tokenize("Ninety-seven thousand, one")
['ninety', '-', 'seven', 'thousand', ',', 'one']
>>> detokenize(['quatre', '-', 'vingt', '-', 'dix', '-', 'sept', 'mille'])
'quatre-vingt-dix-sept mille'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnjax import _checks
from rnnjax.tasks._optional import require
from rnnjax.tasks.vocab import EOS, PAD, SOS, SPECIALS, UNK, WordVocab  # noqa: F401

#: the reserved ids of every `WordVocab`, and the text `WordVocab.decode` gives them
SPLITS = ("train", "validation", "test")

_TOKEN = re.compile(r"[^\W_]+|\S")          # a run of letters/digits, or one other mark
_NO_SPACE_BEFORE = set(",.;:!?)-'")
_NO_SPACE_AFTER = set("(-'")


# -- reading and tokens ------------------------------------------------------------------
def read_pairs(path) -> list[tuple[str, str]]:
    """The (source, target) pairs of a tab-separated file (UTF-8): the first two
    fields of every non-blank line, stripped; later fields are ignored."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise ValueError(f"{path}: line {number} must be 'source<TAB>target[<TAB>...]' "
                             f"with both sides non-empty, got {line!r}")
        pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise ValueError(f"{path} must hold at least one pair, got none")
    return pairs


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens: runs of letters and digits, and every other
    non-space character (hyphen, comma, apostrophe, ...) as a token of its own."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens) -> str:
    """Tokens joined by spaces, except around hyphens and apostrophes and before
    closing punctuation: the inverse of `tokenize` on lower-case text written that
    way (num2words' numbers, for one)."""
    text = ""
    for i, token in enumerate(tokens):
        if i and token not in _NO_SPACE_BEFORE and tokens[i - 1] not in _NO_SPACE_AFTER:
            text += " "
        text += token
    return text


class Parallel(NamedTuple):
    """Token pairs as padded int32 arrays (`PAD` past each length), ready for an
    encoder-decoder trained by teacher forcing: the target read behind `SOS`
    (`target_in`) scores the target followed by `EOS` (`target_out`)."""

    source: np.ndarray           # [N, T]
    source_lengths: np.ndarray   # [N]
    target_in: np.ndarray        # [N, L]: SOS y_1 ... y_n
    target_out: np.ndarray       # [N, L]: y_1 ... y_n EOS
    target_lengths: np.ndarray   # [N]: n + 1, the EOS counted


def encode_pairs(token_pairs, source_vocab: WordVocab, target_vocab: WordVocab) -> Parallel:
    """`Parallel` arrays of (source tokens, target tokens) pairs; every source must
    hold at least one token."""
    token_pairs = list(token_pairs)
    if not token_pairs:
        raise ValueError("token_pairs must hold at least one pair, got none")
    empty = [i for i, (source, _) in enumerate(token_pairs) if not source]
    if empty:
        raise ValueError(f"every source must hold a token, got empty sources at {empty[:5]}")
    sources = [source_vocab.encode(s) for s, _ in token_pairs]
    targets = [target_vocab.encode(t) for _, t in token_pairs]
    source_lengths = np.asarray([len(s) for s in sources], np.int32)
    target_lengths = np.asarray([len(t) + 1 for t in targets], np.int32)
    source = np.full((len(sources), source_lengths.max()), PAD, np.int32)
    target_in = np.full((len(targets), target_lengths.max()), PAD, np.int32)
    target_out = target_in.copy()
    for n, (s, t) in enumerate(zip(sources, targets)):
        source[n, :len(s)] = s
        target_in[n, :len(t) + 1] = np.concatenate([[SOS], t])
        target_out[n, :len(t) + 1] = np.concatenate([t, [EOS]])
    return Parallel(source, source_lengths, target_in, target_out, target_lengths)


# -- the generated task: numbers in English and French ------------------------------------
def number_pairs(numbers, source_lang: str = "en", target_lang: str = "fr"
                 ) -> list[tuple[str, str]]:
    """(num2words(n, source_lang), num2words(n, target_lang)) for every n."""
    num2words = require("num2words", "translation").num2words
    return [(num2words(int(n), lang=source_lang), num2words(int(n), lang=target_lang))
            for n in numbers]


def number_splits(sizes: dict[str, int], high: int = 10**12, seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Disjoint sets of numbers in [0, high) for the splits (split -> int64 array of
    `sizes[split]` numbers), the same for the same arguments.

    Every number of digits gets an equal share of the draw (the 1-digit numbers as
    many as the 12-digit ones, until a group is used up: its remainder goes to the
    others), so that short numbers, rare in a uniform draw, appear in every split and
    the sources' lengths spread widely. Within a group the numbers are uniform and
    distinct; all of them are shuffled and dealt to the splits in the order of
    `sizes`.
    """
    _check_count("high", high)
    sizes = dict(sizes)
    for split, size in sizes.items():
        _check_count(f"sizes[{split!r}]", size)
    total = sum(sizes.values())
    if total > high:
        raise ValueError(f"sizes must add up to at most high = {high} (the numbers are "
                         f"distinct), got {total}")
    # group d: [10^(d-1), 10^d) within [0, high); the 1-digit group starts at 0
    starts = [0] + [10**d for d in range(1, len(str(high - 1)))]
    ends = [*starts[1:], high]
    counts = _equal_shares(total, [end - start for start, end in zip(starts, ends)])
    rng = np.random.default_rng(seed)
    drawn = np.concatenate([start + rng.choice(end - start, size=count, replace=False)
                            for start, end, count in zip(starts, ends, counts)])
    drawn = rng.permutation(drawn.astype(np.int64))
    bounds = np.cumsum([0, *sizes.values()])
    return {split: drawn[lo:hi] for split, lo, hi in zip(sizes, bounds[:-1], bounds[1:])}


def _equal_shares(total: int, capacities: list[int]) -> list[int]:
    """`total` split as evenly as the capacities allow (water filling); the first
    groups take the remainder of an uneven split."""
    counts = [0] * len(capacities)
    open_groups = list(range(len(capacities)))
    left = total
    while left:
        share, extra = divmod(left, len(open_groups))
        for rank, g in enumerate(open_groups):
            take = min(share + (rank < extra), capacities[g] - counts[g])
            counts[g] += take
            left -= take
        open_groups = [g for g in open_groups if counts[g] < capacities[g]]
    return counts


def _check_count(name: str, value) -> None:
    if not _checks.is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# -- scores -------------------------------------------------------------------------------
def _check_corpus(hypotheses, references):
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"hypotheses and references must be equally many token lists (at "
                         f"least one), got {len(hypotheses)} and {len(references)}")
    return hypotheses, references


def exact_match(hypotheses, references) -> float:
    """The fraction of translations (token lists) equal to their reference."""
    hypotheses, references = _check_corpus(hypotheses, references)
    return float(np.mean([list(h) == list(r) for h, r in zip(hypotheses, references)]))


def token_accuracy(hypotheses, references) -> float:
    """Position by position against the reference with its end mark: the fraction of
    reference positions (r_1 ... r_n, EOS) where the translation (h_1 ... h_m, EOS)
    has the same token. A translation that stops early misses the rest; one that
    runs on misses the end mark."""
    hypotheses, references = _check_corpus(hypotheses, references)
    hits = total = 0
    for h, r in zip(hypotheses, references):
        h, r = [*h, SPECIALS[EOS]], [*r, SPECIALS[EOS]]
        hits += sum(a == b for a, b in zip(h, r))
        total += len(r)
    return hits / total


def corpus_bleu(hypotheses, references) -> tuple[float, str]:
    """sacreBLEU's corpus BLEU (0-100) of the detokenised translations against the
    detokenised references, with its default settings (13a tokenisation, exponential
    smoothing), and the signature that names them."""
    hypotheses, references = _check_corpus(hypotheses, references)
    metrics = require("sacrebleu.metrics", "translation")
    bleu = metrics.BLEU()
    score = bleu.corpus_score([detokenize(h) for h in hypotheses],
                              [[detokenize(r) for r in references]])
    return float(score.score), str(bleu.get_signature())
