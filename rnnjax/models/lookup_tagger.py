"""A baseline tagger without parameters: the record of the training entities, matched
longest span first."""

from __future__ import annotations

import dataclasses
from collections import Counter

from rnnjax.tasks.entities import entity_spans


@dataclasses.dataclass(frozen=True)
class LookupTagger:
    """The training entities as a table: token span -> its most frequent type (ties:
    the first in sorted order). Tags a sentence left to right, the longest span in the
    table first; a word in no span is O."""

    table: dict[tuple[str, ...], str]

    @classmethod
    def fit(cls, sentences) -> LookupTagger:
        """The table of `sentences`, pairs (tokens, BIO2 tags)."""
        counts: dict[tuple[str, ...], Counter] = {}
        for tokens, tags in sentences:
            for kind, first, last in entity_spans(tags):
                counts.setdefault(tuple(tokens[first:last + 1]), Counter())[kind] += 1
        return cls({span: min(c, key=lambda k: (-c[k], k)) for span, c in counts.items()})

    def tag(self, tokens) -> list[str]:
        """BIO2 tags of a sentence's tokens.

        >>> LookupTagger.fit([(("New", "York"), ("B-LOC", "I-LOC"))]).tag(["in", "New", "York"])
        ['O', 'B-LOC', 'I-LOC']
        """
        longest = max(map(len, self.table), default=0)
        tags, i = [], 0
        while i < len(tokens):
            for size in range(min(longest, len(tokens) - i), 0, -1):
                kind = self.table.get(tuple(tokens[i:i + size]))
                if kind:
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (size - 1)
                    i += size
                    break
            else:
                tags.append("O")
                i += 1
        return tags
