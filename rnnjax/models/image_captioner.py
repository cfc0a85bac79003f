"""An image captioner: a CNN encoder turns the image into a vector v, a recurrent
decoder writes the caption word by word. v conditions the decoder through its initial
state (h_0 = tanh(v W_s + b_s)), through a first input before the start of sentence
(v W_i + b_i), or both.

This module uses `rnnjax.vision` (Flax convolutions); `rnnjax.models` loads it only
when `Captioner` or `captioner` is first used.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from rnnjax import decode, vision
from rnnjax.cells import Cell, make
from rnnjax.layers import Dense, Embedding
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part
from rnnjax.train import softmax_cross_entropy

#: how the image reaches the decoder
CONDITIONS = ("state", "input", "both")


@dataclasses.dataclass(frozen=True)
class Captioner:
    """CNN encoder -> v; a recurrent decoder started from v with a word embedding and a
    Dense head over the vocabulary. Params: `encoder`, `embed`, `cell`, `head`, and
    `to_state` and/or `to_input` (Dense from v).

    Arguments:
        encoder: images [B, H, W, C] -> v [B, features].
        cell: the decoder's cell.
        embed: word ids -> vectors.
        head: Dense to the vocabulary.
        condition: one of CONDITIONS.
        image_shape: (H, W, C) of the images.
        start_token, end_token: the ids of start and end of sentence.
        max_len: the length of generated captions.
    """

    encoder: vision.ImageEncoder
    cell: Cell
    embed: Embedding
    head: Dense
    condition: str
    image_shape: tuple[int, int, int]
    start_token: int
    end_token: int
    max_len: int

    def __post_init__(self):
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")

    def _to_state(self) -> Dense:
        return Dense(self.cell.hidden_size)

    def _to_input(self) -> Dense:
        return Dense(self.embed.features)

    def init(self, key):
        """Params from one key split in six (encoder, embed, cell, head, to_state,
        to_input; a projection the condition leaves out still takes its key)."""
        features = self.encoder.features
        return combine(
            part("encoder", lambda k: self.encoder.init(k, self.image_shape)),
            part("embed", self.embed.init),
            part("cell", lambda k: self.cell.init(k, self.embed.features)),
            part("head", lambda k: self.head.init(k, self.cell.hidden_size)),
            part("to_state", (lambda k: self._to_state().init(k, features))
                 if self.condition in ("state", "both") else None),
            part("to_input", (lambda k: self._to_input().init(k, features))
                 if self.condition in ("input", "both") else None))(key)

    def start(self, params, images):
        """The decoder's carry after seeing images [B, H, W, C], before the start of
        sentence."""
        if tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"images must be [B, {', '.join(map(str, self.image_shape))}], "
                             f"got shape {tuple(images.shape)}")
        v = self.encoder(params["encoder"], images)
        carry = self.cell.initial_carry((images.shape[0],))
        if "to_state" in params:
            carry = self.cell.replace_hidden(carry,
                                             jnp.tanh(self._to_state()(params["to_state"], v)))
        if "to_input" in params:
            carry, _ = self.cell(params["cell"], carry, self._to_input()(params["to_input"], v))
        return carry

    def step(self, params, carry, tokens):
        """One word per row, tokens [B]: `(carry, logits [B, V])`, the step function of
        `rnnjax.decode`."""
        carry, y = self.cell(params["cell"], carry, self.embed(params["embed"], tokens))
        return carry, self.head(params["head"], y)

    def logits(self, params, images, captions):
        """Teacher forcing: the logits [B, L, V] of each next word of captions int [B, L]
        after reading start of sentence and captions[:, :-1]."""
        inputs = jnp.concatenate([jnp.full_like(captions[:, :1], self.start_token),
                                  captions[:, :-1]], axis=1)
        _, ys = unroll(self.cell, params["cell"], self.embed(params["embed"], inputs),
                          self.start(params, images))
        return self.head(params["head"], ys)

    def loss(self, params, images, captions, lengths):
        """Mean cross-entropy per word within lengths [B] (end of sentence included,
        padding left out)."""
        return softmax_cross_entropy(self.logits(params, images, captions), captions,
                                     lengths)

    def _decoding(self, params, images):
        """What every decoder starts from: (step function, carry, start tokens)."""
        sos = jnp.full((images.shape[0],), self.start_token, jnp.int32)
        return (lambda c, t: self.step(params, c, t)), self.start(params, images), sos

    def greedy(self, params, images):
        """Greedy captions [B, max_len]; past its end of sentence a row holds end of
        sentence."""
        return decode.greedy(*self._decoding(params, images), self.max_len,
                             eos=self.end_token)

    def beam_search(self, params, images, beam: int, length_penalty: float):
        """The best beam's captions [B, max_len], padded as `greedy`'s."""
        tokens, _ = decode.beam_search(*self._decoding(params, images), self.max_len,
                                       beam, eos=self.end_token, length_penalty=length_penalty)
        return tokens[:, 0]


def captioner(cell: str, *, vocab_size: int, hidden: int, embed: int, features: int,
              channels: tuple[int, ...], image_size: int, condition: str,
              start_token: int, end_token: int, max_len: int) -> Captioner:
    """A `Captioner` over square RGB images of `image_size` pixels: an
    `vision.ImageEncoder(features, channels)`, a decoder cell of type `cell` (see
    `rnnjax.cells.make`) with `hidden` units and `embed`-wide word vectors."""
    return Captioner(vision.ImageEncoder(features, tuple(channels)), make(cell, hidden),
                     Embedding(vocab_size, embed), Dense(vocab_size), condition,
                     (image_size, image_size, 3), start_token, end_token, max_len)
