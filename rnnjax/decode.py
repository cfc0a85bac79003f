"""Generating token sequences from a recurrent model, one token at a time.

Every decoder drives a step function

    step_fn(carry, tokens [B]) -> (carry, logits [B, V])

which reads the previous token of each of B sequences and scores the next one (for
a language model: embed the tokens, run one step of the cell, apply the readout).
Decoding starts from `carry` and `start_tokens` [B], the last token already known
(e.g. the last character of a prompt the carry has read), and runs a fixed
`max_len` steps in one `lax.scan`, so it compiles once per shape and runs inside
`jit` (with `step_fn` and `max_len` static) and `vmap`.

What the decoders return is the generated tokens only, int32 [B, max_len]: column t
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
    if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                            or key.shape == (2,))):
        raise ValueError(f"key must be a PRNG key (jax.random.key), got {key!r}")
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
