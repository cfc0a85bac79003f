"""Greedy decoding and sampling against step-by-step Python loops and the softmax."""

import itertools

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


def brute_force(step_fn, carry, start, max_len, eos, length_penalty):
    """Every token string of length max_len for row 0 (eos-padded ones only, when eos
    is given), scored by running the model on it: (strings, scores), best first."""
    strings, scores = [], []
    for string in itertools.product(range(VOCAB), repeat=max_len):
        string = np.array(string)
        ends = np.flatnonzero(string == eos) if eos is not None else []
        length = ends[0] + 1 if len(ends) else max_len
        if np.any(string[length:] != eos):
            continue
        state, previous, total = carry[:1], jnp.asarray(start[:1]), 0.0
        for token in string[:length]:
            state, logits = step_fn(state, previous)
            row = np.asarray(logits[0], np.float64)
            total += row[token] - np.log(np.sum(np.exp(row - row.max()))) - row.max()
            previous = jnp.array([token])
        strings.append(string)
        scores.append(total / length ** length_penalty)
    order = np.argsort(-np.array(scores), kind="stable")
    return np.array(strings)[order], np.array(scores)[order]


@pytest.mark.parametrize("eos, length_penalty", [(None, 0.0), (2, 0.0), (2, 1.0)])
def test_exhaustive_beam_search_equals_brute_force(eos, length_penalty):
    """With a beam as wide as the number of prefixes nothing is pruned, so the beams
    are the brute-force ranking of every (eos-padded) string."""
    step_fn, carry = rnn_step_fn(1)
    start, max_len = jnp.array([4, 1, 0]), 3
    strings, scores = brute_force(step_fn, carry, start, max_len, eos, length_penalty)
    beams = VOCAB ** max_len
    tokens, got = decode.beam_search(step_fn, carry, start, max_len, beams, eos=eos,
                                     length_penalty=length_penalty)
    assert tokens.shape == (3, beams, max_len) and got.shape == (3, beams)
    found = len(strings)
    np.testing.assert_allclose(got[0, :found], scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tokens[0, :10], strings[:10])
    assert np.all(np.isneginf(got[0, found:]))        # only when eos prunes strings


def test_beam_of_one_is_greedy_and_a_wider_beam_finds_better_strings():
    step_fn, carry = rnn_step_fn(7)
    start = jnp.array([0, 3, 6])
    search = jax.jit(decode.beam_search, static_argnums=(0, 3, 4), static_argnames="eos")
    tokens, _ = search(step_fn, carry, start, 8, 1, eos=5)
    np.testing.assert_array_equal(tokens[:, 0], decode.greedy(step_fn, carry, start, 8, eos=5))
    greedy_score, wide_score = (search(step_fn, carry, start, 8, k, eos=5)[1][:, 0]
                                for k in (1, 8))
    assert np.all(wide_score >= greedy_score - 1e-6)  # (not a theorem; true for this model)
    assert np.any(wide_score > greedy_score + 1e-2)


def test_length_penalty_favours_longer_outputs():
    """A model that prefers stopping now but is very sure once it goes on: the raw sum
    picks the short output, the per-token mean the long one."""
    def step_fn(count, tokens):
        first = jnp.log(jnp.array([0.6, 0.4, 1e-9]))        # eos=0 is likelier at first
        later = jnp.log(jnp.array([1e-3, 1e-9, 0.999]))      # then token 2, almost surely
        logits = jnp.where((count == 0)[:, None], first, later)
        return count + 1, logits
    carry = jnp.zeros(1, jnp.int32)
    start = jnp.zeros(1, jnp.int32)
    short, _ = decode.beam_search(step_fn, carry, start, 4, 3, eos=0, length_penalty=0.0)
    long, _ = decode.beam_search(step_fn, carry, start, 4, 3, eos=0, length_penalty=1.0)
    assert short[0, 0].tolist() == [0, 0, 0, 0]
    assert long[0, 0].tolist() == [1, 2, 2, 2]


def test_beam_search_rejects_bad_arguments():
    step_fn, carry = rnn_step_fn()
    start = jnp.array([0, 3, 6])
    with pytest.raises(ValueError, match="beam_size"):
        decode.beam_search(step_fn, carry, start, 4, 0)
    with pytest.raises(ValueError, match="length_penalty"):
        decode.beam_search(step_fn, carry, start, 4, 2, length_penalty=-1.0)
    with pytest.raises(ValueError, match="leading batch axis"):
        decode.beam_search(lambda c, t: (c, jnp.zeros((3, VOCAB))), jnp.zeros(5), start, 4, 2)
