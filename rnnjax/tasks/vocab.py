"""The word vocabulary every task with words shares (tagging, translation,
captions): four special ids, then the words."""

from __future__ import annotations

import collections
import dataclasses
import functools

import numpy as np

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


def checked_ids(ids, size: int) -> np.ndarray:
    """`ids` as a rank-1 integer NumPy array with values in [0, size), or a ValueError."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a rank-1 integer array, got dtype {ids.dtype} "
                         f"with shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"ids must lie in [0, {size - 1}] (size = {size}), "
                         f"got values in [{ids.min()}, {ids.max()}]")
    return ids


@dataclasses.dataclass(frozen=True)
class WordVocab:
    """Ids of words: `PAD`, `SOS`, `EOS`, `UNK` are 0-3, then `words` in order from 4.
    Build it from the training side with `from_sentences`; words seen there fewer
    than `min_count` times, and words not seen at all, encode to `UNK`. Padding is
    `PAD` = 0, so zero-filled arrays are padded; a decoder starts from `SOS` and
    stops at `EOS`. (`rnnjax.tasks.shakespeare.CharVocab` is the character one.)"""

    words: tuple[str, ...]

    def __post_init__(self):
        words = tuple(self.words)
        if len(set(words)) != len(words) or set(words) & set(SPECIALS):
            raise ValueError(f"words must be distinct and must not hold {SPECIALS}, got "
                             f"{words!r}")
        object.__setattr__(self, "words", words)

    @classmethod
    def from_sentences(cls, sentences, min_count: int = 1) -> WordVocab:
        """From token lists: the words seen at least `min_count` times, most frequent
        first (ties in alphabetical order)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
        counts = collections.Counter(word for tokens in sentences for word in tokens)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls(tuple(kept))

    @property
    def size(self) -> int:
        """The number of ids, the four special ones included."""
        return len(SPECIALS) + len(self.words)

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words, len(SPECIALS))}

    def encode(self, tokens) -> np.ndarray:
        """int32 [len(tokens)] ids (`UNK` for a word not in the vocabulary)."""
        return np.asarray([self._ids.get(t, UNK) for t in tokens], np.int32)

    def decode(self, ids) -> list[str]:
        """The tokens of ids (an integer array-like of rank 1) up to the first `EOS`
        (not included); the other special ids give their names in `SPECIALS`."""
        ids = checked_ids(ids, self.size)
        names = SPECIALS + self.words
        tokens = []
        for i in ids.tolist():
            if i == EOS:
                break
            tokens.append(names[i])
        return tokens
