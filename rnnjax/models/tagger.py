"""A sequence tagger (Lample et al. 2016, "Neural Architectures for Named Entity
Recognition"): a character BiLSTM reads each word, its final forward and backward
states (read at the word's own length) are the word's vector, optionally joined with a
word embedding; a word-level bidirectional encoder gives every word its context and a
Dense layer scores the tags. The `softmax` head picks each word's best tag on its own
(cross-entropy per word); the `crf` head scores whole tag sequences with learned
transitions (`rnnjax.crf`: trained by the negative log-likelihood, decoded by Viterbi).

The input of a sentence packs, per word, its id, its character count and its
characters side by side: xs int [B, T, 2 + L] (L: the longest word's characters).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import crf
from rnnjax.cells import make
from rnnjax.layers import Bidirectional, Dense, Embedding
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, fixed, part
from rnnjax.seq2seq import final_state
from rnnjax.tasks.vocab import UNK
from rnnjax.train import softmax_cross_entropy

HEADS = ("softmax", "crf")


@dataclasses.dataclass(frozen=True)
class Tagger:
    """Character encoder (+ word embedding) -> word encoder -> Dense tag scores, read by a
    softmax or a CRF. Params: `chars`, `char_rnn`, `context`, `head`, and `words` (with
    a word embedding) and `crf` (`transitions` [K, K], `start`, `end` [K], zeros at
    first).

    Arguments:
        char_embedding: character ids -> vectors.
        char_rnn: the `rj.Bidirectional` over each word's characters.
        word_embedding: word ids -> vectors, or None for character features only.
        context: the `rj.Bidirectional` over each sentence's word vectors.
        head: Dense to the K tags.
        use_crf: score with a CRF (True) or a softmax per word (False).
        word_dropout: in training, the probability that a word id becomes `unknown`.
        unknown: the word id of a word not in the vocabulary.
    """

    char_embedding: Embedding
    char_rnn: Bidirectional
    word_embedding: Embedding | None
    context: Bidirectional
    head: Dense
    use_crf: bool
    word_dropout: float = 0.0
    unknown: int = UNK

    def __post_init__(self):
        if not 0.0 <= self.word_dropout < 1.0:
            raise ValueError(f"word_dropout must lie in [0, 1), got {self.word_dropout}")

    @property
    def tag_count(self) -> int:
        return self.head.features

    def init(self, key):
        """Params from one key split in five (chars, char_rnn, context, head, words; the
        word embedding's key is split off even without word features); CRF zeros."""
        word_size = self.char_rnn.output_size + (self.word_embedding.features
                                                 if self.word_embedding else 0)
        k = self.tag_count
        zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
        return combine(
            part("chars", self.char_embedding.init),
            part("char_rnn", lambda key: self.char_rnn.init(key, self.char_embedding.features)),
            part("context", lambda key: self.context.init(key, word_size)),
            part("head", lambda key: self.head.init(key, self.context.output_size)),
            part("words", self.word_embedding.init if self.word_embedding else None),
            fixed("crf", (lambda: {"transitions": zeros(k, k), "start": zeros(k),
                                   "end": zeros(k)}) if self.use_crf else None))(key)

    def emissions(self, params, xs, lengths, key=None):
        """Tag scores [B, T, K] of xs int [B, T, 2 + L] (see the module) within lengths
        [B]; `key` drops words to the unknown id (training only)."""
        xs = jnp.asarray(xs)
        if xs.ndim != 3 or xs.shape[-1] < 3 or not jnp.issubdtype(xs.dtype, jnp.integer):
            raise ValueError(f"xs must be an integer array [B, T, 2 + L] (word id, "
                             f"character count, characters), got {xs.dtype} "
                             f"{tuple(xs.shape)}")
        words, word_lengths, chars = xs[..., 0], xs[..., 1], xs[..., 2:]
        batch, steps, width = chars.shape
        letters = self.char_embedding(params["chars"], chars.reshape(batch * steps, width))
        carry, _ = unroll(self.char_rnn, params["char_rnn"], letters,
                             seq_lengths=word_lengths.reshape(-1))
        vectors = final_state(self.char_rnn, carry).reshape(batch, steps, -1)
        if self.word_embedding:
            if key is not None and self.word_dropout > 0:
                words = jnp.where(jax.random.bernoulli(key, self.word_dropout, words.shape),
                                  self.unknown, words)
            vectors = jnp.concatenate([vectors, self.word_embedding(params["words"], words)],
                                      axis=-1)
        _, ys = unroll(self.context, params["context"], vectors, seq_lengths=lengths)
        return self.head(params["head"], ys)

    def loss(self, params, batch, key):
        """`(loss, {})` of batch (xs, lengths, tags [B, T]): the mean per word of the
        cross-entropy (softmax) or of the CRF's nll summed over the batch."""
        xs, lengths, tags = batch
        scores = self.emissions(params, xs, lengths, key)
        if not self.use_crf:
            return softmax_cross_entropy(scores, tags, lengths), {}
        losses = crf.nll(scores, params["crf"]["transitions"], tags, lengths,
                         start=params["crf"]["start"], end=params["crf"]["end"])
        return jnp.sum(losses) / jnp.maximum(jnp.sum(lengths), 1), {}

    def predict(self, params, xs, lengths):
        """Tag ids [B, T] (0 past each length): argmax per word, or Viterbi."""
        scores = self.emissions(params, xs, lengths)
        if not self.use_crf:
            valid = jnp.arange(scores.shape[1])[None] < lengths[:, None]
            return jnp.where(valid, jnp.argmax(scores, axis=-1), 0).astype(jnp.int32)
        return crf.viterbi(scores, params["crf"]["transitions"], lengths,
                           start=params["crf"]["start"], end=params["crf"]["end"])[0]


def pack_words(words, word_lengths, chars) -> np.ndarray:
    """The input of `Tagger`: word ids [N, T], character counts [N, T] and character ids
    [N, T, L] side by side, int [N, T, 2 + L].

    >>> pack_words(np.ones((1, 2), int), np.full((1, 2), 3), np.zeros((1, 2, 4), int)).shape
    (1, 2, 6)
    """
    return np.concatenate([np.asarray(words)[..., None], np.asarray(word_lengths)[..., None],
                           np.asarray(chars)], axis=-1)


def tagger(cell: str, head: str, *, chars: int, char_dim: int, char_hidden: int,
           words: int | None, word_dim: int, hidden: int, tags: int,
           word_dropout: float = 0.0, unknown: int = UNK) -> Tagger:
    """A `Tagger` whose encoders are two cells of type `cell` (see `rnnjax.cells.make`)
    each: `chars` and `words` are the vocabulary sizes (`words` None: character
    features only), `head` one of HEADS."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    both = lambda size: Bidirectional(make(cell, size), make(cell, size))
    return Tagger(Embedding(chars, char_dim), both(char_hidden),
                  Embedding(words, word_dim) if words is not None else None,
                  both(hidden), Dense(tags), head == "crf", word_dropout, unknown)
