"""Greedy decoding and sampling against step-by-step Python loops and the softmax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import normal
from scipy import stats

from rnnjax import decode

VOCAB, HIDDEN = 7, 5


def rnn_step_fn(seed=0):
    """A small random language model's step, in plain jnp: h = tanh(E[token] + h W),
    logits = h U (large enough to be well separated)."""
    rng = np.random.default_rng(seed)
    embed = jnp.asarray(rng.standard_normal((VOCAB, HIDDEN)), jnp.float32)
    recurrent = jnp.asarray(rng.standard_normal((HIDDEN, HIDDEN)) / HIDDEN ** 0.5, jnp.float32)
    readout = jnp.asarray(3.0 * rng.standard_normal((HIDDEN, VOCAB)), jnp.float32)

    def step_fn(carry, tokens):
        carry = jnp.tanh(embed[tokens] + carry @ recurrent)
        return carry, carry @ readout

    return step_fn, 0.1 * normal(seed, (3, HIDDEN))


def python_greedy(step_fn, carry, start, max_len, eos=None):
    """The reference: one step at a time, argmax by NumPy, eos by hand."""
    tokens, rows = np.asarray(start), []
    finished = np.zeros(len(tokens), bool)
    for _ in range(max_len):
        carry, logits = step_fn(carry, jnp.asarray(tokens))
        chosen = np.argmax(np.asarray(logits), axis=-1)
        if eos is not None:
            chosen = np.where(finished, eos, chosen)
            finished |= chosen == eos
        rows.append(chosen)
        tokens = chosen
    return np.stack(rows, axis=1)


def test_greedy_matches_a_python_loop():
    step_fn, carry = rnn_step_fn()
    start = jnp.array([0, 3, 6])
    expected = python_greedy(step_fn, carry, start, 12)
    assert len(np.unique(expected)) > 2     # the decoding visits several tokens
    got = jax.jit(decode.greedy, static_argnums=(0, 3))(step_fn, carry, start, 12)
    assert got.shape == (3, 12) and got.dtype == jnp.int32
    np.testing.assert_array_equal(got, expected)


def counting_step_fn(vocab=8):
    """Logits that point at (previous token + 1) mod vocab; the carry counts the calls."""
    def step_fn(count, tokens):
        return count + 1, 4.0 * jax.nn.one_hot((tokens + 1) % vocab, vocab)
    return step_fn


def test_eos_ends_a_row_and_pads_it_with_eos():
    step_fn = counting_step_fn()
    start = jnp.array([0, 3, 4, 2])
    got = np.asarray(decode.greedy(step_fn, jnp.zeros(()), start, 6, eos=2))
    np.testing.assert_array_equal(got, python_greedy(step_fn, jnp.zeros(()), start, 6, eos=2))
    np.testing.assert_array_equal(got, [[1, 2, 2, 2, 2, 2],    # eos at step 1, then padding
                                        [4, 5, 6, 7, 0, 1],    # never eos: runs to max_len
                                        [5, 6, 7, 0, 1, 2],
                                        [3, 4, 5, 6, 7, 0]])
    # sampling pads the same way: every draw after a row's first eos is eos
    drawn = np.asarray(decode.sample(step_fn, jnp.zeros(()), jnp.zeros(500, jnp.int32), 8,
                                     jax.random.key(0), temperature=3.0, eos=2))
    for row in drawn:
        hits = np.flatnonzero(row == 2)
        if hits.size:
            assert np.all(row[hits[0]:] == 2)
    assert 0 < np.mean(drawn[:, -1] == 2) < 1


def test_sample_at_temperature_zero_or_near_it_is_greedy():
    step_fn, carry = rnn_step_fn(seed=1)
    start = jnp.array([1, 2, 5])
    greedy = decode.greedy(step_fn, carry, start, 10)
    sample = jax.jit(decode.sample, static_argnums=(0, 3))    # one compile, T traced
    for temperature in (0.0, 1e-4):
        sampled = sample(step_fn, carry, start, 10, jax.random.key(3), temperature)
        np.testing.assert_array_equal(sampled, greedy)
    # at temperature 1 the draws depart from the argmax path for these logits
    assert not np.array_equal(sample(step_fn, carry, start, 10, jax.random.key(3), 1.0),
                              greedy)


def test_sample_frequencies_follow_the_tempered_softmax():
    logits = jnp.array([2.0, 1.0, 0.5, 0.0, -1.0])
    temperature, rows, steps = 0.7, 4000, 5

    def step_fn(carry, tokens):
        return carry, jnp.broadcast_to(logits, (tokens.shape[0], logits.size))

    drawn = decode.sample(step_fn, (), jnp.zeros(rows, jnp.int32), steps, jax.random.key(7),
                          temperature=temperature)
    counts = np.bincount(np.asarray(drawn).ravel(), minlength=logits.size)
    p = np.exp(np.asarray(logits, np.float64) / temperature)
    p /= p.sum()
    expected = p * rows * steps
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < stats.chi2.ppf(0.999, logits.size - 1)
    # and not the untempered softmax: the statistic against it is far out
    q = np.exp(np.asarray(logits, np.float64))
    q = q / q.sum() * rows * steps
    assert np.sum((counts - q) ** 2 / q) > stats.chi2.ppf(0.999999, logits.size - 1)


def test_sample_is_reproducible_jitable_and_vmappable():
    step_fn, carry = rnn_step_fn(seed=2)
    start = jnp.array([0, 1, 2])
    sample = jax.jit(decode.sample, static_argnums=(0, 3))    # temperature traced
    keys = jax.random.split(jax.random.key(5), 4)
    many = jax.vmap(lambda k: decode.sample(step_fn, carry, start, 9, k, 1.5))(keys)
    assert many.shape == (4, 3, 9)
    for i in (1, 2):   # the same key gives the same tokens, each key its own
        np.testing.assert_array_equal(many[i], sample(step_fn, carry, start, 9, keys[i],
                                                      jnp.float32(1.5)))
    assert not np.array_equal(many[0], many[1])


def test_bad_arguments_are_named():
    step_fn, carry = rnn_step_fn()
    start = jnp.array([0, 1, 2])
    with pytest.raises(ValueError, match="start_tokens must be a rank-1 integer array"):
        decode.greedy(step_fn, carry, jnp.zeros(3), 4)
    with pytest.raises(ValueError, match=r"start_tokens must be .* shape \(3, 1\)"):
        decode.greedy(step_fn, carry, start[:, None], 4)
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        decode.greedy(step_fn, carry, start, 0)
    with pytest.raises(ValueError, match=r"eos must be None or a token id in \[0, 6\]"):
        decode.greedy(step_fn, carry, start, 4, eos=7)
    with pytest.raises(ValueError, match="temperature must be a number >= 0, got -1"):
        decode.sample(step_fn, carry, start, 4, jax.random.key(0), temperature=-1.0)
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        decode.sample(step_fn, carry, start, 4, 0)
    with pytest.raises(ValueError, match=r"logits of shape \[B, V\] = \[3, V\], got shape \(3,\)"):
        decode.greedy(lambda c, t: (c, t.astype(jnp.float32)), carry, start, 4)
    with pytest.raises(ValueError, match="step_fn must return a carry of the structure"):
        decode.greedy(lambda c, t: (c[:, :2], step_fn(c, t)[1]), carry, start, 4)
