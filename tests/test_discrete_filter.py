"""The discrete-state filter against brute-force enumeration of every state path, its
lengths and checks, and sampling against the model's own matrices."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import filters


def random_model(seed, states=3, actions=2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return filters.DiscreteStateModel(
        rng.dirichlet(np.ones(states)).astype(dtype),
        rng.dirichlet(np.ones(actions), size=states).astype(dtype),
        rng.dirichlet(np.ones(states), size=(actions, states)).astype(dtype))


def brute_force_posteriors(model, actions):
    """p(s_t | a_1..a_t) [T, S] by summing the joint probability of every state path
    s_1..s_t, for each t (float64, no recursion shared with the filter)."""
    initial, emission, transition = (np.asarray(m, np.float64) for m in model)
    states = len(initial)
    out = []
    for t in range(1, len(actions) + 1):
        marginal = np.zeros(states)
        for path in itertools.product(range(states), repeat=t):
            p = initial[path[0]] * emission[path[0], actions[0]]
            for k in range(1, t):
                p *= (transition[actions[k - 1], path[k - 1], path[k]]
                      * emission[path[k], actions[k]])
            marginal[path[-1]] += p
        out.append(marginal / marginal.sum())
    return np.stack(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filter_equals_brute_force_enumeration_of_state_paths(seed):
    model = random_model(seed, states=3, actions=3)
    actions = np.random.default_rng(10 + seed).integers(0, 3, size=(4, 6))
    with jax.enable_x64(True):
        log_probs = filters.discrete_filter(model, jnp.asarray(actions))
        assert log_probs.dtype == jnp.float64 and log_probs.shape == (4, 6, 3)
        for b in range(4):
            np.testing.assert_allclose(np.exp(log_probs[b]),
                                       brute_force_posteriors(model, actions[b]),
                                       rtol=1e-12, atol=1e-14)


def test_float32_filter_matches_float64_and_sums_to_one():
    model64 = random_model(3, states=4, actions=3)
    actions = jax.random.randint(jax.random.key(0), (8, 200), 0, 3)
    probs = np.exp(filters.discrete_filter(
        filters.DiscreteStateModel(*(m.astype(np.float32) for m in model64)), actions))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    with jax.enable_x64(True):
        exact = np.exp(filters.discrete_filter(model64, np.asarray(actions)))
    np.testing.assert_allclose(probs, exact, atol=2e-5)


def test_deterministic_model_tracks_the_state_exactly():
    # a 3-cycle that only the first action reveals: afterwards the filter knows the state
    cycle = np.roll(np.eye(3), 1, axis=1)
    model = filters.DiscreteStateModel(np.full(3, 1 / 3), np.eye(3), np.stack([cycle] * 3))
    probs = np.exp(filters.discrete_filter(model, jnp.array([[2, 0, 1, 2, 0]])))
    np.testing.assert_allclose(probs[0], np.eye(3)[[2, 0, 1, 2, 0]], atol=1e-7)
    # an impossible action (state 1 cannot emit 0) leaves no posterior: NaN, as documented
    assert np.isnan(np.asarray(filters.discrete_filter(model, jnp.array([2, 0, 0])))[2]).all()


def test_lengths_cut_each_sequence_and_later_rows_repeat_the_last():
    model = random_model(4, states=3, actions=2, dtype=np.float32)
    actions = jax.random.randint(jax.random.key(1), (3, 7), 0, 2)
    lengths = jnp.array([7, 4, 0])
    padded = actions.at[1, 4:].set(-5)              # never read past the length
    log_probs = filters.discrete_filter(model, padded, lengths)
    alone = filters.discrete_filter(model, actions[1, :4])
    np.testing.assert_allclose(log_probs[1, :4], alone, rtol=1e-6)
    np.testing.assert_allclose(log_probs[1, 4:], np.broadcast_to(alone[-1], (3, 3)), rtol=1e-6)
    np.testing.assert_allclose(log_probs[0], filters.discrete_filter(model, actions[0]),
                               rtol=1e-6)
    np.testing.assert_allclose(np.exp(log_probs[2]), np.broadcast_to(model.initial, (7, 3)),
                               rtol=1e-6)


def test_filter_is_jit_and_vmap_able():
    model = random_model(5, dtype=np.float32)
    actions = jax.random.randint(jax.random.key(2), (2, 5, 9), 0, 2)
    fn = jax.jit(jax.vmap(lambda a: filters.discrete_filter(model, a)))
    out = fn(actions)
    np.testing.assert_allclose(out[1], filters.discrete_filter(model, actions[1]), rtol=1e-6)


def test_sampling_frequencies_match_the_model():
    model = random_model(6, states=3, actions=2, dtype=np.float32)
    states, actions = filters.simulate(model, jax.random.key(3), 40, 4000)
    assert states.shape == actions.shape == (4000, 40) and states.dtype == jnp.int32
    states, actions = np.asarray(states), np.asarray(actions)

    def close(counts, probs):
        """Observed counts [..., K] against probabilities [..., K]: within 5 standard
        errors of a multinomial in every cell."""
        n = counts.sum(-1, keepdims=True)
        sigma = np.sqrt(n * probs * (1 - probs)) + 1e-9
        assert (np.abs(counts - n * probs) <= 5 * sigma + 1).all(), (counts / n, probs)

    close(np.bincount(states[:, 0], minlength=3), np.asarray(model.initial))
    emitted = np.zeros((3, 2))
    np.add.at(emitted, (states.ravel(), actions.ravel()), 1)
    close(emitted, np.asarray(model.emission))
    moved = np.zeros((2, 3, 3))
    np.add.at(moved, (actions[:, :-1].ravel(), states[:, :-1].ravel(), states[:, 1:].ravel()), 1)
    close(moved, np.asarray(model.transition))
    # the sampled sequences are the model's: the filter's posterior is calibrated on them
    probs = np.exp(np.asarray(filters.discrete_filter(model, actions[:500])))
    predicted = probs.reshape(-1, 3).mean(0)
    observed = np.bincount(states[:500].ravel(), minlength=3) / states[:500].size
    np.testing.assert_allclose(predicted, observed, atol=0.01)


def test_bad_models_and_actions_are_named():
    model = random_model(7, dtype=np.float32)
    with pytest.raises(ValueError, match="emission must have shape"):
        filters.discrete_filter(model._replace(emission=model.emission[:2]), jnp.zeros((1, 3), int))
    with pytest.raises(ValueError, match=r"transition must have shape \[A, S, S\] = \(2, 3, 3\)"):
        filters.discrete_filter(model._replace(transition=model.transition[:1]),
                                jnp.zeros((1, 3), int))
    bad_row = model.emission.copy()
    bad_row[1] = 0.3
    with pytest.raises(ValueError, match="emission must sum to 1 along its last axis, but row 1"):
        filters.discrete_filter(model._replace(emission=bad_row), jnp.zeros((1, 3), int))
    with pytest.raises(ValueError, match="initial must hold probabilities"):
        filters.discrete_filter(model._replace(initial=np.array([1.5, -0.5, 0.0], np.float32)),
                                jnp.zeros((1, 3), int))
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 1\] \(A = 2\).*\[0, 2\]"):
        filters.discrete_filter(model, jnp.array([[0, 1, 2]]))
    with pytest.raises(TypeError, match="actions must be an integer array"):
        filters.discrete_filter(model, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, 3\]"):
        filters.discrete_filter(model, jnp.zeros((1, 3), int), lengths=jnp.array([4]))
    with pytest.raises(TypeError, match="DiscreteStateModel"):
        filters.discrete_filter(tuple(model), jnp.zeros((1, 3), int))
