"""A character-level language model: an embedding, stacked recurrent layers and a Dense
layer to the logits of the next character."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from rnnjax.cells import make
from rnnjax.layers import Dense, Embedding, Stacked
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part


@dataclasses.dataclass(frozen=True)
class CharLM:
    """Embedding -> `rj.Stacked` recurrent layers -> Dense logits over the vocabulary.
    Params are `{"embed": ..., "rnn": ..., "head": ...}`.

    Arguments:
        embed: character ids -> vectors.
        rnn: the recurrent layers.
        head: Dense to the vocabulary.

    >>> import jax, jax.numpy as jnp
    >>> model = char_lm("gru", vocab_size=7, hidden=8, embed=4, layers=2)
    >>> params = model.init(jax.random.key(0))
    >>> carry, logits = model.logits(params, model.initial_carry(3), jnp.zeros((3, 5), int))
    >>> logits.shape
    (3, 5, 7)
    """

    embed: Embedding
    rnn: Stacked
    head: Dense

    def init(self, key):
        """Params from one key split in three (embed, rnn, head)."""
        return combine(part("embed", self.embed.init),
                       part("rnn", lambda k: self.rnn.init(k, self.embed.features)),
                       part("head", lambda k: self.head.init(k, self.rnn.output_size)))(key)

    def initial_carry(self, batch: int):
        """The carry of `batch` streams before their first character."""
        return self.rnn.initial_carry((batch,))

    def logits(self, params, carry, tokens):
        """Read tokens int [B, T] from `carry`: `(final carry, logits [B, T, V])`, where
        logits[:, t] scores the character after tokens[:, t]."""
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [B, T] character ids, got shape "
                             f"{tuple(tokens.shape)}")
        carry, ys = unroll(self.rnn, params["rnn"], self.embed(params["embed"], tokens),
                              carry)
        return carry, self.head(params["head"], ys)

    def step(self, params, carry, tokens):
        """One character per row, tokens [B]: `(carry, logits [B, V])`, the step
        function of `rnnjax.decode`."""
        carry, y = self.rnn(params["rnn"], carry, self.embed(params["embed"], tokens))
        return carry, self.head(params["head"], y)


def char_lm(cell: str, *, vocab_size: int, hidden: int, embed: int, layers: int) -> CharLM:
    """A `CharLM` of `layers` cells of type `cell` (see `rnnjax.cells.make`), each with
    `hidden` units, over `embed`-wide character vectors."""
    return CharLM(Embedding(vocab_size, embed),
                  Stacked([make(cell, hidden) for _ in range(layers)]),
                  Dense(vocab_size))
