"""The linear-chain CRF against brute-force enumeration of every tag sequence (NumPy,
float64): log Z, sequence scores, nll, Viterbi's argmax and max; gradients by finite
differences and as the brute-force marginals; jit and vmap; the input checks."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnnjax import crf

K, T = 3, 5
LENGTHS = np.array([5, 3, 1, 0, 4], np.int32)


def problem(seed, with_ends, dtype=np.float32):
    rng = np.random.default_rng(seed)
    emissions = rng.standard_normal((len(LENGTHS), T, K))
    transitions = rng.standard_normal((K, K))
    ends = ({"start": rng.standard_normal(K), "end": rng.standard_normal(K)} if with_ends
            else {})
    cast = lambda a: np.asarray(a, dtype)
    return cast(emissions), cast(transitions), {k: cast(v) for k, v in ends.items()}


def brute_score(emission, transitions, path, start=None, end=None):
    """The score of one tag path (its length is the sequence's) by the definition."""
    if not path:
        return 0.0
    total = sum(emission[j, y] for j, y in enumerate(path))
    total += sum(transitions[a, b] for a, b in itertools.pairwise(path))
    if start is not None:
        total += start[path[0]] + end[path[-1]]
    return float(total)


def every_path(length):
    return list(itertools.product(range(K), repeat=length))


def brute_force(emissions, transitions, ends):
    """Per sequence: log Z, the best path and its score, and the marginals [T, K]."""
    emissions, transitions = np.float64(emissions), np.float64(transitions)
    ends = {k: np.float64(v) for k, v in ends.items()}
    out = []
    for emission, length in zip(emissions, LENGTHS):
        paths = every_path(int(length))
        scores = np.array([brute_score(emission, transitions, p, **ends) for p in paths])
        log_z = np.log(np.sum(np.exp(scores)))
        marginals = np.zeros((T, K))
        for p, s in zip(paths, scores):
            for j, y in enumerate(p):
                marginals[j, y] += np.exp(s - log_z)
        best = int(np.argmax(scores))
        out.append(dict(log_z=log_z, best=list(paths[best]), best_score=scores[best],
                        marginals=marginals))
    return out


@pytest.mark.parametrize("with_ends", [False, True])
def test_log_partition_and_viterbi_equal_brute_force(with_ends):
    emissions, transitions, ends = problem(0, with_ends)
    expected = brute_force(emissions, transitions, ends)
    log_z = crf.log_partition(emissions, transitions, LENGTHS, **ends)
    np.testing.assert_allclose(log_z, [e["log_z"] for e in expected], rtol=1e-5, atol=1e-5)
    assert log_z[3] == 0.0                                         # length 0: Z = 1
    tags, score = crf.viterbi(emissions, transitions, LENGTHS, **ends)
    assert tags.dtype == jnp.int32 and tags.shape == (len(LENGTHS), T)
    for row, length, e in zip(np.asarray(tags), LENGTHS, expected):
        assert row[:length].tolist() == e["best"]
        assert not row[length:].any()                              # 0 past the length
    np.testing.assert_allclose(score, [e["best_score"] for e in expected], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("with_ends", [False, True])
def test_every_sequence_score_and_probabilities_sum_to_one(with_ends):
    """Each sequence's every path (garbage tags past its length) scored at once:
    the scores equal the definition, nll >= 0, and exp(-nll) sums to 1."""
    emissions, transitions, ends = problem(1, with_ends)
    rng = np.random.default_rng(2)
    for b, length in enumerate(LENGTHS):
        paths = every_path(int(length))
        tags = rng.integers(0, K, (len(paths), T)).astype(np.int32)
        tags[:, :length] = np.array(paths, np.int32).reshape(len(paths), length)
        tile = lambda a: np.broadcast_to(a, (len(paths), *a.shape))
        lengths = np.full(len(paths), length, np.int32)
        score = crf.sequence_score(tile(emissions[b]), transitions, tags, lengths, **ends)
        expected = [brute_score(np.float64(emissions[b]), np.float64(transitions), p,
                                **{k: np.float64(v) for k, v in ends.items()}) for p in paths]
        np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-5)
        losses = np.asarray(crf.nll(tile(emissions[b]), transitions, tags, lengths, **ends),
                            np.float64)
        assert losses.min() >= -1e-5
        np.testing.assert_allclose(np.exp(-losses).sum(), 1.0, rtol=1e-5)


def test_steps_past_the_length_never_matter():
    emissions, transitions, ends = problem(3, True)
    changed = emissions.copy()
    for b, length in enumerate(LENGTHS):
        changed[b, length:] = 100.0 * (b + 1)
    for fn in (crf.log_partition, lambda *a, **k: crf.viterbi(*a, **k)[1]):
        np.testing.assert_array_equal(fn(emissions, transitions, LENGTHS, **ends),
                                      fn(changed, transitions, LENGTHS, **ends))
    np.testing.assert_array_equal(crf.viterbi(emissions, transitions, LENGTHS)[0],
                                  crf.viterbi(changed, transitions, LENGTHS)[0])


def test_without_lengths_every_step_counts():
    emissions, transitions, ends = problem(4, True)
    full = np.full(len(LENGTHS), T, np.int32)
    np.testing.assert_array_equal(crf.log_partition(emissions, transitions, **ends),
                                  crf.log_partition(emissions, transitions, full, **ends))
    np.testing.assert_array_equal(crf.viterbi(emissions, transitions)[0],
                                  crf.viterbi(emissions, transitions, full)[0])


def test_gradients_float64_against_finite_differences_and_marginals():
    with jax.enable_x64(True):
        emissions, transitions, ends = problem(5, True, np.float64)
        tags = np.random.default_rng(6).integers(0, K, (len(LENGTHS), T)).astype(np.int32)
        loss = lambda e, a, s, f: jnp.sum(crf.nll(e, a, tags, LENGTHS, start=s, end=f))
        assert loss(emissions, transitions, ends["start"], ends["end"]).dtype == jnp.float64
        check_grads(loss, (emissions, transitions, ends["start"], ends["end"]), order=1,
                    modes=["rev"], atol=1e-6, rtol=1e-6)
        # d log Z / d E[b, t, k] = P(y_t = k) for t < length (0 past it)
        marginals = jax.grad(lambda e: jnp.sum(crf.log_partition(e, transitions, LENGTHS,
                                                                 **ends)))(emissions)
        expected = [e["marginals"] for e in brute_force(emissions, transitions, ends)]
        np.testing.assert_allclose(marginals, np.stack(expected), atol=1e-10)


def test_jit_and_vmap_give_the_eager_numbers():
    emissions, transitions, ends = problem(7, True)
    tags = np.random.default_rng(8).integers(0, K, (len(LENGTHS), T)).astype(np.int32)
    eager = crf.nll(emissions, transitions, tags, LENGTHS, **ends)
    jitted = jax.jit(crf.nll)(emissions, transitions, tags, LENGTHS, **ends)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    # a leading models axis: each its own transitions
    many = np.stack([transitions, -transitions])
    decoded = jax.vmap(lambda a: crf.viterbi(emissions, a, LENGTHS, **ends))(many)
    for i, a in enumerate(many):
        one = crf.viterbi(emissions, a, LENGTHS, **ends)
        np.testing.assert_array_equal(decoded[0][i], one[0])
        np.testing.assert_allclose(decoded[1][i], one[1], rtol=1e-6)


def test_float32_by_default():
    emissions, transitions, _ = problem(9, False)
    assert crf.log_partition(emissions, transitions).dtype == jnp.float32
    assert crf.viterbi(emissions, transitions)[1].dtype == jnp.float32


E, A = np.zeros((2, 4, 3), np.float32), np.zeros((3, 3), np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda: crf.log_partition(E[0], A), r"emissions must have rank 3 \[B, T, K\]"),
    (lambda: crf.log_partition(E.astype(np.int32), A), "emissions must be a floating"),
    (lambda: crf.log_partition(E[:, :0], A), "at least one step"),
    (lambda: crf.log_partition(E, A[:2]), r"transitions must have shape \(3, 3\)"),
    (lambda: crf.viterbi(E, A, np.array([4, 5])), r"lengths must lie in \[0, 4\]"),
    (lambda: crf.viterbi(E, A, np.array([4])), r"lengths must have shape \(2,\)"),
    (lambda: crf.viterbi(E, A, np.array([4.0, 1.0])), "lengths must be an integer"),
    (lambda: crf.nll(E, A, np.zeros((2, 3), np.int32)), r"tags must have shape \(2, 4\)"),
    (lambda: crf.nll(E, A, np.zeros((2, 4))), "tags must be an integer"),
    (lambda: crf.nll(E, A, np.full((2, 4), 3, np.int32)), r"tags must lie in \[0, 2\]"),
    (lambda: crf.sequence_score(E, A, np.zeros((2, 4), np.int32), start=np.zeros(2)),
     r"start must have shape \(3,\)"),
    (lambda: crf.viterbi(E, A, end=np.zeros((3, 1))), r"end must have rank 1"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_tags_past_the_length_may_be_padding():
    """-1 padding past each length is allowed and ignored."""
    emissions, transitions, _ = problem(10, False)
    tags = np.where(np.arange(T)[None] < LENGTHS[:, None], 1, -1).astype(np.int32)
    np.testing.assert_array_equal(
        crf.sequence_score(emissions, transitions, tags, LENGTHS),
        crf.sequence_score(emissions, transitions, np.abs(tags), LENGTHS))
