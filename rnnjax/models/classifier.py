"""Many-to-one classification: a recurrent encoder read at each sequence's own length,
then a Dense layer to the classes.

Unrolled with `seq_lengths`, a cell's final carry is its state after each sequence's
own last step (the padding never reaches it); a bidirectional encoder joins that
forward state with the backward cell's state after reading back to the first step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rnnjax.cells import make
from rnnjax.layers import Bidirectional, Dense
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part
from rnnjax.seq2seq import final_state


@dataclasses.dataclass(frozen=True)
class Classifier:
    """`encoder` unrolled with the lengths, its final state through `head`. Params are
    `{"encoder": ..., "head": ...}`.

    Arguments:
        encoder: a cell, `rj.Stacked` or `rj.Bidirectional`.
        head: the Dense layer to the classes.
        input_size: F, the size of each input vector.
    """

    encoder: Any
    head: Dense
    input_size: int

    def init(self, key):
        """Params of the encoder and the head, from one key split in two (encoder first)."""
        return combine(
            part("encoder", lambda k: self.encoder.init(k, self.input_size)),
            part("head", lambda k: self.head.init(k, self.encoder.output_size)))(key)

    def logits(self, params, xs, lengths):
        """Class scores [B, classes] of xs [B, T, F] read up to lengths int [B] (steps
        past a sequence's length do not change its scores)."""
        carry, _ = unroll(self.encoder, params["encoder"], xs, seq_lengths=lengths)
        return self.head(params["head"], final_state(self.encoder, carry))


def classifier(cell: str, hidden: int, input_size: int, classes: int,
               bidirectional: bool = False) -> Classifier:
    """The cell type `cell` (see `rnnjax.cells.make`), both ways when `bidirectional`
    (each direction with `hidden` units), with a Dense head to `classes`."""
    encoder = make(cell, hidden)
    if bidirectional:
        encoder = Bidirectional(encoder, make(cell, hidden))
    return Classifier(encoder, Dense(classes), input_size)
