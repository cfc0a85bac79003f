"""An RNN encoder-decoder for sequence-to-sequence tasks such as translation.

The model of Cho et al. (2014), "Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation", with any rnnjax cell (a GRU
by default, as there):

- the encoder (a cell, a `Stacked`, or a `Bidirectional`) reads the embedded source
  with `seq_lengths`, so each source ends at its own length;
- the context c is the encoder's final state (for a `Bidirectional`, the forward
  state after the last word beside the backward state after the first);
- the decoder starts from h_0 = tanh(c W + b) and reads [emb(y_{t-1}), c] at every
  step: h_t = g([emb(y_{t-1}), c], h_{t-1});
- the logits of y_t are a Dense layer of [h_t, c, emb(y_{t-1})] (Cho's readout, the
  maxout layer left out).

With `attention_size` set, the context is recomputed at every step by additive
attention (Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to
Align and Translate"): from the encoder's outputs a_j (the annotations) and the
decoder's previous hidden state s = hidden(h_{t-1}),

    e_tj = v . tanh(s W_query + a_j W_key + b),   alpha_t = softmax_j(e_tj),
    c_t = sum_j alpha_tj a_j,

with e_tj = -inf for j at or past the source's length, so padding gets weight 0.
c_t then takes c's place in the decoder's input and the readout.

Token conventions belong to the caller: `target_in` is the target shifted right
behind a start token (sos, y_1, ..., y_{L-1}), and the logits at step t score y_t.
Params are a dict: `source_embed`, `target_embed` (`rj.Embedding`), `encoder`,
`bridge` (the Dense of h_0), `decoder`, `readout` (a Dense), and with attention
`attention` {`W_query` [H, A], `W_key` [C, A], `b` [A], `v` [A]}.

Training reads whole targets at once (teacher forcing); translating hands the
decoder to `rnnjax.decode`:

    model = encoder_decoder(source_vocab, target_vocab, hidden=128, attention=True)
    params = model.init(key)
    logits = model.logits(params, source, source_lengths, target_in)    # [B, L, V]
    step_fn, carry = model.decoder(params, source, source_lengths)
    tokens, scores = decode.beam_search(step_fn, carry, jnp.full(B, sos), max_len,
                                        beam_size=5, eos=eos)
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax import _checks, initializers
from rnnjax.cells import Cell, make
from rnnjax.layers import Bidirectional, Dense, Embedding, Stacked
from rnnjax.loop import unroll


class DecoderCarry(NamedTuple):
    """The decoding state `EncoderDecoder.decoder` starts `rnnjax.decode` from; every
    leaf has the batch axis B first. Without attention the fields after `context`
    are None; with attention `context` is None."""

    state: Any                      # the decoder cell's carry
    context: jax.Array | None       # [B, C]: the fixed context c (no attention)
    annotations: jax.Array | None   # [B, T, C]: the encoder's outputs (attention)
    keys: jax.Array | None          # [B, T, A]: annotations W_key + b (attention)
    source_lengths: jax.Array | None  # int32 [B] (attention)


def final_state(encoder, carry):
    """The hidden state [B, C] an encoder ends in: a cell's `hidden(carry)`; for a
    `Bidirectional`, the forward and backward final states side by side; for a
    `Stacked`, its top layer's."""
    if isinstance(encoder, Bidirectional):
        return jnp.concatenate([final_state(encoder.fwd, carry[0]),
                                final_state(encoder.bwd, carry[1])], axis=-1)
    if isinstance(encoder, Stacked):
        return final_state(encoder.layers[-1], carry[-1])
    return encoder.hidden(carry)


@dataclasses.dataclass(frozen=True)
class EncoderDecoder:
    """A source embedding, an `encoder` (cell, `Stacked` or `Bidirectional`), a
    target embedding, a `decoder_cell` and a readout, as the module describes;
    `attention_size` None is Cho et al.'s fixed context, an int A is additive
    attention with A units. `encoder_decoder` builds one from a cell name."""

    source_vocab_size: int
    target_vocab_size: int
    encoder: Any
    decoder_cell: Cell
    embed_size: int = 64
    attention_size: int | None = None

    def __post_init__(self):
        for name in ("source_vocab_size", "target_vocab_size", "embed_size"):
            _checks.positive_int(name, getattr(self, name))
        if self.attention_size is not None:
            _checks.positive_int("attention_size", self.attention_size)
        _checks.sequence_model("encoder", self.encoder)
        if not isinstance(self.decoder_cell, Cell):
            raise TypeError(f"decoder_cell must be a cell (one step at a time), got "
                            f"{type(self.decoder_cell).__name__}")

    @property
    def context_size(self) -> int:
        """C: the size of the context (the encoder's output size)."""
        return self.encoder.output_size

    @property
    def _parts(self):
        return {"source_embed": Embedding(self.source_vocab_size, self.embed_size),
                "target_embed": Embedding(self.target_vocab_size, self.embed_size),
                "bridge": Dense(self.decoder_cell.hidden_size),
                "readout": Dense(self.target_vocab_size)}

    def init(self, key, dtype=jnp.float32) -> dict:
        """The params dict of the module's layout: embeddings N(0, 1), Dense layers and
        attention Glorot with zero biases, the cells their own init."""
        parts, size = self._parts, self.context_size
        k = dict(zip(("source_embed", "target_embed", "encoder", "bridge", "decoder",
                      "readout", "attention"), jax.random.split(key, 7)))
        params = {
            "source_embed": parts["source_embed"].init(k["source_embed"], dtype),
            "target_embed": parts["target_embed"].init(k["target_embed"], dtype),
            "encoder": self.encoder.init(k["encoder"], self.embed_size, dtype),
            "bridge": parts["bridge"].init(k["bridge"], size, dtype),
            "decoder": self.decoder_cell.init(k["decoder"], self.embed_size + size, dtype),
            "readout": parts["readout"].init(
                k["readout"], self.decoder_cell.hidden_size + size + self.embed_size, dtype),
        }
        if self.attention_size is not None:
            units, k_query, k_key, k_v = self.attention_size, *jax.random.split(k["attention"], 3)
            params["attention"] = {
                "W_query": initializers.glorot_uniform(
                    k_query, (self.decoder_cell.hidden_size, units), dtype),
                "W_key": initializers.glorot_uniform(k_key, (size, units), dtype),
                "b": jnp.zeros((units,), dtype),
                "v": initializers.glorot_uniform(k_v, (units, 1), dtype)[:, 0]}
        return params

    # -- the public calls ---------------------------------------------------------
    def logits(self, params, source, source_lengths, target_in):
        """Teacher forcing: source int [B, T] read to source_lengths int [B] (each in
        [1, T]), target_in int [B, L] -> logits [B, L, V_target] (step t scores the
        token after target_in[:, t])."""
        source_lengths = self._check(source, source_lengths, target_in)
        return self._teacher_forced(params, source, source_lengths, target_in)[0]

    def alignments(self, params, source, source_lengths, target_in):
        """The attention weights of teacher forcing, [B, L, T]: row t is alpha_t, the
        weights over source positions when scoring the token after target_in[:, t]
        (zero at and past each source's length; each row sums to 1)."""
        if self.attention_size is None:
            raise ValueError("alignments needs a model with attention (attention_size "
                             "set), got attention_size=None")
        source_lengths = self._check(source, source_lengths, target_in)
        return self._teacher_forced(params, source, source_lengths, target_in)[1]

    def decoder(self, params, source, source_lengths):
        """`(step_fn, carry)` for `rnnjax.decode.greedy/sample/beam_search`: the
        encoded sources and the decoder's initial state (a `DecoderCarry`), and
        `step_fn(carry, tokens [B]) -> (carry, logits [B, V_target])`, one decoder
        step fed the previous tokens (start with the start-of-sentence id)."""
        source_lengths = self._check(source, source_lengths)
        carry = self._start(params, source, source_lengths)
        return (lambda carry, tokens: self._step(params, carry, tokens)), carry

    # -- the computation ------------------------------------------------------------
    def _start(self, params, source, source_lengths) -> DecoderCarry:
        """Encode the sources; the decoder's carry with h_0 = tanh(c W + b)."""
        xs = self._parts["source_embed"](params["source_embed"], source)
        carry, annotations = unroll(self.encoder, params["encoder"], xs,
                                       seq_lengths=source_lengths)
        context = final_state(self.encoder, carry)
        h0 = jnp.tanh(self._parts["bridge"](params["bridge"], context))
        state = self.decoder_cell.replace_hidden(
            self.decoder_cell.initial_carry((source.shape[0],), h0.dtype), h0)
        if self.attention_size is None:
            return DecoderCarry(state, context, None, None, None)
        attention = params["attention"]
        keys = annotations @ attention["W_key"] + attention["b"]
        return DecoderCarry(state, None, annotations, keys, source_lengths)

    def _attend(self, params, carry: DecoderCarry):
        """Additive attention from the decoder's hidden state: (c_t [B, C], alpha_t [B, T])."""
        attention = params["attention"]
        query = self.decoder_cell.hidden(carry.state) @ attention["W_query"]      # [B, A]
        scores = jnp.tanh(carry.keys + query[:, None, :]) @ attention["v"]       # [B, T]
        valid = jnp.arange(scores.shape[1])[None, :] < carry.source_lengths[:, None]
        weights = jax.nn.softmax(jnp.where(valid, scores, -jnp.inf), axis=-1)
        return jnp.einsum("bt,btc->bc", weights, carry.annotations), weights

    def _readout(self, params, hidden, context, embedded):
        features = jnp.concatenate([hidden, context, embedded], axis=-1)
        return self._parts["readout"](params["readout"], features)

    def _advance(self, params, carry: DecoderCarry, embedded):
        """One decoder step on the embedded previous tokens [B, E]: (carry, h_t [B, H],
        the context c_t [B, C], attention weights [B, T] or None)."""
        weights = None
        if self.attention_size is None:
            context = carry.context
        else:
            context, weights = self._attend(params, carry)
        state, hidden = self.decoder_cell(params["decoder"], carry.state,
                                          jnp.concatenate([embedded, context], axis=-1))
        return carry._replace(state=state), hidden, context, weights

    def _step(self, params, carry: DecoderCarry, tokens):
        """One decoder step fed tokens [B]: (carry, logits [B, V])."""
        embedded = self._parts["target_embed"](params["target_embed"], tokens)
        carry, hidden, context, _ = self._advance(params, carry, embedded)
        return carry, self._readout(params, hidden, context, embedded)

    def _teacher_forced(self, params, source, source_lengths, target_in):
        """(logits [B, L, V], attention weights [B, L, T] or None). Without attention
        the decoder's inputs are known in advance, so one `rj.unroll` (the cell's fast
        loop) runs it; with attention the steps are scanned. The readout runs once
        over all steps."""
        carry = self._start(params, source, source_lengths)
        embedded = self._parts["target_embed"](params["target_embed"], target_in)
        weights = None
        if self.attention_size is None:
            context = jnp.broadcast_to(carry.context[:, None, :],
                                       embedded.shape[:2] + carry.context.shape[-1:])
            _, hidden = unroll(self.decoder_cell, params["decoder"],
                                  jnp.concatenate([embedded, context], axis=-1), carry.state)
        else:
            def body(carry, embedded_t):
                carry, hidden, context, weights = self._advance(params, carry, embedded_t)
                return carry, (hidden, context, weights)

            _, outputs = lax.scan(body, carry, jnp.swapaxes(embedded, 0, 1))
            hidden, context, weights = (jnp.swapaxes(x, 0, 1) for x in outputs)
        return self._readout(params, hidden, context, embedded), weights

    # -- input checks ------------------------------------------------------------------
    def _check(self, source, source_lengths, target_in=None):
        """Check the token arrays and lengths; return the lengths as int32."""
        source = _token_array("source", source, self.source_vocab_size, "[B, T]")
        batch, steps = source.shape
        if steps == 0:
            raise ValueError(f"source must hold at least one step, got shape {source.shape}")
        lengths = _checks.seq_lengths(source_lengths, batch, steps)
        if _checks.is_concrete(lengths) and batch and int(np.min(np.asarray(lengths))) < 1:
            raise ValueError(f"source_lengths must be >= 1 (an empty source has no "
                             f"context), got {np.asarray(lengths).tolist()}")
        if target_in is not None:
            target_in = _token_array("target_in", target_in, self.target_vocab_size,
                                     "[B, L]")
            if target_in.shape[0] != batch:
                raise ValueError(f"target_in must have the batch size of source ({batch}), "
                                 f"got shape {target_in.shape}")
        return lengths


def _token_array(name: str, ids, vocab_size: int, layout: str):
    """Check a rank-2 integer array of token ids in [0, vocab_size) (the values only
    when they are concrete)."""
    ids = ids if hasattr(ids, "dtype") else np.asarray(ids)
    if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"{name} must be a rank-2 integer array {layout} of token ids, "
                         f"got dtype {ids.dtype} with shape {tuple(ids.shape)}")
    _checks.values_in_range(ids, 0, vocab_size - 1, f"{name} must hold token ids in "
                                                     f"[0, {vocab_size - 1}], got values in ")
    return ids


def encoder_decoder(source_vocab_size: int, target_vocab_size: int, *, cell: str = "gru",
                    hidden: int = 256, embed: int = 64, bidirectional: bool = False,
                    attention: bool = False, **cell_options) -> EncoderDecoder:
    """An `EncoderDecoder` of the cell type `cell` (a name of `rnnjax.cells.make`):
    an encoder of `hidden` units (each way when `bidirectional`), a decoder of
    `hidden` units, embeddings of `embed` features, and additive attention with
    `hidden` units when `attention`."""
    encoder = make(cell, hidden, **cell_options)
    if bidirectional:
        encoder = Bidirectional(encoder, make(cell, hidden, **cell_options))
    return EncoderDecoder(source_vocab_size, target_vocab_size, encoder,
                          make(cell, hidden, **cell_options), embed,
                          hidden if attention else None)
