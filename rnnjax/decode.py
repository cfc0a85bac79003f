"""Generating token sequences from a recurrent model, one token at a time.

Every decoder drives a step function

    step_fn(carry, tokens [B]) -> (carry, logits [B, V])

which reads the previous token of each of B sequences and scores the next one (for
a language model: embed the tokens, run one step of the cell, apply the readout).
Decoding starts from `carry` and `start_tokens` [B], the last token already known
(e.g. the last character of a prompt the carry has read, or a start-of-sentence
token), and runs a fixed `max_len` steps in one `lax.scan`, so it compiles once per
shape and runs inside `jit` (with `step_fn`, `max_len` and `beam_size` static) and
`vmap`.

What `greedy` and `sample` return is the generated tokens only, int32 [B, max_len]
(`beam_search`: [B, beam_size, max_len], with the scores): column t
is the token chosen at step t, which is fed back as the next input; the start
tokens are not included. With `eos` given, a sequence is finished at the first
step that chooses `eos`: that `eos` is kept, and every later column of that row is
`eos` too (padding). The scan still runs all `max_len` steps for every row (the
step function keeps being called on finished rows, fed `eos`), and rows that never
choose `eos` run to `max_len`. The length of row b is therefore the index of its
first `eos` plus one, or `max_len`.

>>> import jax, jax.numpy as jnp
>>> def count_up(carry, tokens):      # logits that favour the previous token + 1
...     return carry, 5.0 * jax.nn.one_hot((tokens + 1) % 6, 6)
>>> greedy(count_up, (), jnp.array([0, 3]), max_len=5, eos=5).tolist()
[[1, 2, 3, 4, 5], [4, 5, 5, 5, 5]]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks


def greedy(step_fn: Callable, carry, start_tokens, max_len: int, eos: int | None = None):
    """The most likely token at every step (argmax of the logits; the lowest id on a
    tie): int32 [B, max_len], as described in the module."""
    _check_step(step_fn, carry, start_tokens, max_len, eos)
    return _generate(step_fn, carry, start_tokens, max_len, eos, _argmax, keys=None)


def sample(step_fn: Callable, carry, start_tokens, max_len: int, key,
           temperature: float = 1.0, eos: int | None = None):
    """Tokens drawn from softmax(logits / temperature) at every step: int32
    [B, max_len], as described in the module.

    Step t draws with `jax.random.fold_in(key, t)`, one draw per row, so the same
    key gives the same tokens. `temperature` > 0 sharpens (< 1) or flattens (> 1)
    the model's distribution; 0 is `greedy`. It may be a traced scalar.
    """
    _check_step(step_fn, carry, start_tokens, max_len, eos)
    _checks.prng_key("key", key)
    if isinstance(temperature, bool) or not (isinstance(temperature, numbers.Real) or
                                             hasattr(temperature, "dtype")):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if _checks.is_concrete(temperature) and not float(temperature) >= 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    temperature = jnp.asarray(temperature, jnp.float32)

    def choose(logits, step_key):
        positive = temperature > 0
        scaled = logits / jnp.where(positive, temperature, 1.0).astype(logits.dtype)
        drawn = jax.random.categorical(step_key, scaled, axis=-1)
        return jnp.where(positive, drawn, _argmax(logits, step_key))

    keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(max_len))
    return _generate(step_fn, carry, start_tokens, max_len, eos, choose, keys)


def beam_search(step_fn: Callable, carry, start_tokens, max_len: int, beam_size: int,
                eos: int | None = None, length_penalty: float = 1.0):
    """The `beam_size` best continuations of each row, found by beam search:
    (tokens int32 [B, beam_size, max_len], scores [B, beam_size]), best first.

    A hypothesis' log-probability is the sum of its tokens' log-softmax scores up to
    and including its first `eos` (later columns are `eos` padding and cost
    nothing). Its score, used to rank hypotheses at every step and in the result,
    is that log-probability divided by length ** `length_penalty`: 0 ranks by total
    log-probability (which favours short outputs), 1 (the default) by the mean
    log-probability per token. Every unfinished hypothesis at a step has the same
    length, so the penalty only weighs finished ones against unfinished ones.

    Every leaf of `carry` must have a leading batch axis B: it is copied to B *
    beam_size rows, and `step_fn` is called on those rows, whose order is row b's
    beams at b * beam_size ... (b + 1) * beam_size - 1. With beam_size 1 this is
    `greedy`; with beam_size >= V ** max_len the search is exhaustive. Where fewer
    than beam_size distinct hypotheses exist (V ** max_len < beam_size), the extra
    beams score -inf.
    """
    vocab = _check_step(step_fn, carry, start_tokens, max_len, eos)
    _checks.positive_int("beam_size", beam_size)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) \
            or not length_penalty >= 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    batch = int(jnp.shape(start_tokens)[0])
    for leaf in jax.tree_util.tree_leaves(carry):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != batch:
            raise ValueError(f"beam_search needs every carry leaf to have a leading batch "
                             f"axis B = {batch}, got a leaf of shape {tuple(jnp.shape(leaf))}")
    beams = beam_size

    def by_beam(x):                      # [B * K, ...] -> [B, K, ...]
        return x.reshape((batch, beams) + x.shape[1:])

    def normalised(total, length):
        return total / length.astype(total.dtype) ** length_penalty

    carry = jax.tree_util.tree_map(lambda x: jnp.repeat(jnp.asarray(x), beams, axis=0), carry)
    previous = jnp.repeat(jnp.asarray(start_tokens, jnp.int32), beams)
    # Only beam 0 is alive at first, so the first step does not pick the same token K times.
    total = jnp.tile(jnp.where(jnp.arange(beams) == 0, 0.0, -jnp.inf), (batch, 1))
    length = jnp.zeros((batch, beams), jnp.int32)
    done = jnp.zeros((batch, beams), bool)
    history = jnp.zeros((batch, beams, max_len), jnp.int32)

    def body(state, t):
        carry, previous, total, length, done, history = state
        carry, logits = step_fn(carry, previous)
        logp = by_beam(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1))  # [B, K, V]
        if eos is not None:   # a finished hypothesis continues only with eos, at no cost
            finished = jnp.where(jnp.arange(vocab) == eos, 0.0, -jnp.inf)
            logp = jnp.where(done[..., None], finished, logp)
        candidate_total = total[..., None] + logp
        candidate_length = jnp.broadcast_to((length + (~done).astype(jnp.int32))[..., None],
                                            logp.shape)
        rank = normalised(candidate_total, jnp.maximum(candidate_length, 1))
        _, best = lax.top_k(rank.reshape(batch, beams * vocab), beams)      # [B, K]
        parent, token = best // vocab, (best % vocab).astype(jnp.int32)

        def pick(x):                     # x [B, K, ...] from each chosen parent
            return jnp.take_along_axis(x, parent.reshape(parent.shape + (1,) * (x.ndim - 2)),
                                       axis=1)

        def flat(x):                     # [B, K, ...] -> [B * K, ...]
            return x.reshape((batch * beams,) + x.shape[2:])

        carry = jax.tree_util.tree_map(lambda x: flat(pick(by_beam(x))), carry)
        total = jnp.take_along_axis(candidate_total.reshape(batch, -1), best, axis=1)
        length = jnp.take_along_axis(candidate_length.reshape(batch, -1), best, axis=1)
        done = pick(done) | (token == eos if eos is not None else False)
        history = pick(history).at[:, :, t].set(token)
        return (carry, flat(token), total, length, done, history), None

    state = (carry, previous, total, length, done, history)
    (_, _, total, length, _, history), _ = lax.scan(body, state, jnp.arange(max_len))
    scores = normalised(total, jnp.maximum(length, 1))
    order = jnp.argsort(-scores, axis=1, stable=True)
    return (jnp.take_along_axis(history, order[..., None], axis=1),
            jnp.take_along_axis(scores, order, axis=1))


def _argmax(logits, _key=None):
    return jnp.argmax(logits, axis=-1)


def _generate(step_fn, carry, start_tokens, max_len, eos, choose, keys):
    """The shared loop: `choose(logits [B, V], key or None) -> [B]` picks each token."""
    tokens = jnp.asarray(start_tokens, jnp.int32)
    done = jnp.zeros(tokens.shape, bool)

    def body(state, step_key):
        carry, previous, done = state
        carry, logits = step_fn(carry, previous)
        chosen = choose(logits, step_key).astype(jnp.int32)
        if eos is not None:
            chosen = jnp.where(done, jnp.int32(eos), chosen)
            done = done | (chosen == eos)
        return (carry, chosen, done), chosen

    _, generated = lax.scan(body, (carry, tokens, done), keys, length=max_len)
    return jnp.swapaxes(generated, 0, 1)


def _check_step(step_fn, carry, start_tokens, max_len, eos) -> int:
    """Check the arguments every decoder takes, and what `step_fn` returns (by
    tracing it once, without running it); returns the vocabulary size V."""
    if not callable(step_fn):
        raise ValueError(f"step_fn must be callable, got {type(step_fn).__name__}")
    _checks.positive_int("max_len", max_len)
    shape = tuple(jnp.shape(start_tokens))
    dtype = jnp.result_type(start_tokens)
    if len(shape) != 1 or not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"start_tokens must be a rank-1 integer array [B], got dtype "
                         f"{dtype} with shape {shape}")
    new_carry, logits = jax.eval_shape(step_fn, carry, jnp.asarray(start_tokens, jnp.int32))
    if len(logits.shape) != 2 or logits.shape[0] != shape[0]:
        raise ValueError(f"step_fn must return logits of shape [B, V] = [{shape[0]}, V], "
                         f"got shape {tuple(logits.shape)}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"step_fn must return floating-point logits, got {logits.dtype}")
    given = [(tuple(jnp.shape(x)), jnp.result_type(x)) for x in jax.tree_util.tree_leaves(carry)]
    returned = [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(new_carry)]
    if (jax.tree_util.tree_structure(carry) != jax.tree_util.tree_structure(new_carry)
            or given != returned):
        raise ValueError(f"step_fn must return a carry of the structure, shapes and dtypes "
                         f"it was given: given {given}, returned {returned}")
    vocab = logits.shape[1]
    if eos is not None and (isinstance(eos, bool) or not isinstance(eos, numbers.Integral)
                            or not 0 <= eos < vocab):
        raise ValueError(f"eos must be None or a token id in [0, {vocab - 1}] (V = {vocab}), "
                         f"got {eos!r}")
    return vocab
