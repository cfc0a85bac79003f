"""`rnnjax.parallel.newton_unroll` against the sequential loop (`rj.unroll`): values and
gradients in float32 and float64 with lengths, reverse, resets and a given carry; the
diagonal (quasi-DEER) and damped (ELK) variants; exactness after T full iterations;
iterations at T = 10^4; warm starts; every error message."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, normal

import rnnjax as rj
from rnnjax import parallel

B, T, F = 3, 12, 2
#: every cell with a plain step on a float carry (the clockwork cell's counter is not)
CELLS = {
    "tanh": rj.SimpleRNN(hidden_size=4),
    "gru": rj.GRU(hidden_size=4),
    "gru_reset_after": rj.GRU(hidden_size=3, reset_after=True),
    "lstm": rj.LSTM(hidden_size=3),
    "peephole": rj.PeepholeLSTM(hidden_size=3, peephole_scale=0.5),
    "mingru": rj.MinGRU(hidden_size=3),
    "stacked": rj.Stacked([rj.GRU(hidden_size=3), rj.SimpleRNN(hidden_size=2)]),
}
LENGTHS = jnp.array([12, 5, 0])
RESETS = jnp.asarray(np.random.default_rng(3).random((B, T)) < 0.2)
OPTIONS = {
    "plain": {},
    "lengths_reverse": {"seq_lengths": LENGTHS, "reverse": True},
    "resets_carry": {"resets": RESETS, "carry": True},
    "all": {"seq_lengths": LENGTHS, "reverse": True, "resets": RESETS, "carry": True},
}


def setup(cell, options, dtype=jnp.float32, seed=0):
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype),
                                    cell.init(jax.random.key(seed), F))
    xs = normal(seed + 1, (B, T, F)).astype(dtype)
    options = dict(options)
    if options.get("carry"):
        zeros = cell.initial_carry((B,), dtype)
        leaves, treedef = jax.tree_util.tree_flatten(zeros)
        options["carry"] = treedef.unflatten(
            [0.5 * normal(seed + 2 + i, l.shape).astype(dtype) for i, l in enumerate(leaves)])
    return params, xs, options


def assert_agree(cell, params, xs, options, atol, **newton):
    """Values and gradients (params, xs) of one loss through the sequential loop and
    through the Newton unroll agree to atol; returns the Newton stats."""
    def loss(params, xs, solve):
        final, ys, *stats = solve(params, xs)
        value = jnp.sum(ys ** 2) + sum(jnp.sum(jnp.sin(f))
                                       for f in jax.tree_util.tree_leaves(final))
        return value, ((final, ys), stats)

    sequential = lambda p, xs: rj.unroll(cell, p, xs, **options)
    solved = lambda p, xs: parallel.newton_unroll(cell, p, xs, **options, **newton)
    results = [jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs, solve)
               for solve in (sequential, solved)]
    (_, (expected, _)), expected_grads = results[0]
    (_, (outputs, stats)), grads = results[1]
    assert_trees_close(outputs, expected, atol=atol)
    assert_trees_close(grads, expected_grads, atol=atol)
    return stats[0]


@pytest.mark.parametrize("name, option", [(name, "all") for name in CELLS] +
                         [("gru", "plain"), ("gru", "lengths_reverse")])
def test_values_and_gradients_match_the_sequential_loop_in_float32(name, option):
    cell = CELLS[name]
    params, xs, options = setup(cell, OPTIONS[option])
    stats = assert_agree(cell, params, xs, options, atol=1e-5)
    assert float(stats.residual) <= 1e-6 and int(stats.iterations) <= T


@pytest.mark.parametrize("name", ["tanh", "lstm"])
def test_values_and_gradients_match_to_1e10_in_float64(name):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params, xs, options = setup(cell, OPTIONS["all"], jnp.float64)
        stats = assert_agree(cell, params, xs, options, atol=1e-10)
        assert stats.residual.dtype == jnp.float64 and float(stats.residual) <= 1e-12


def test_diagonal_jacobian_reaches_the_same_answer_in_more_iterations():
    cell = CELLS["lstm"]
    with jax.enable_x64(True):
        params, xs, options = setup(cell, OPTIONS["all"], jnp.float64, seed=4)
        full = assert_agree(cell, params, xs, options, atol=1e-10)
        diagonal = assert_agree(cell, params, xs, options, atol=1e-10, jacobian="diagonal")
    assert int(diagonal.iterations) > int(full.iterations)


def test_t_full_iterations_give_the_sequential_answer_exactly():
    """Each full Newton iteration makes at least one more step exact, whatever the
    dynamics: an expansive tanh RNN (where Newton is far from its quadratic regime)
    reaches the loop's answer after T iterations, not before its tol."""
    cell = rj.SimpleRNN(hidden_size=4, recurrent_scale=3.0)
    with jax.enable_x64(True):
        params, xs, _ = setup(cell, {}, jnp.float64, seed=5)
        xs = 3.0 * xs
        expected = rj.unroll(cell, params, xs)[1]
        _, ys, stats = parallel.newton_unroll(cell, params, xs, tol=0.0, max_iter=T)
        assert int(stats.iterations) == T
        np.testing.assert_allclose(ys, expected, atol=1e-12, rtol=0)
        _, early, _ = parallel.newton_unroll(cell, params, xs, tol=0.0, max_iter=2)
        assert float(jnp.abs(early - expected)[:, :2].max()) < 1e-12   # the first 2 steps
        assert float(jnp.abs(early - expected).max()) > 1e-3            # not the rest


def test_contractive_gru_converges_within_20_iterations_at_t_10000():
    cell = rj.GRU(hidden_size=2, recurrent_scale=0.5)
    params = cell.init(jax.random.key(6), 1)
    xs = normal(7, (1, 10_000, 1))
    _, ys, stats = parallel.newton_unroll(cell, params, xs)
    assert int(stats.iterations) <= 20 and float(stats.residual) <= 1e-6
    np.testing.assert_allclose(ys, rj.unroll(cell, params, xs)[1], atol=1e-5, rtol=0)


def test_damping_never_raises_the_residual_and_converges_to_the_same_answer():
    """On an expansive tanh RNN, Newton's early iterates overshoot (the sum of squared
    residuals jumps up); Levenberg-Marquardt steps (ELK) never raise it, and reach the
    sequential answer."""
    cell = rj.SimpleRNN(hidden_size=3, recurrent_scale=1.5)
    params = cell.init(jax.random.key(8), F)
    xs = normal(9, (1, 30, F))

    def merit(states):   # sum_t |s_t - F(s_{t-1})|^2
        prev = jnp.concatenate([jnp.zeros_like(states[:, :1]), states[:, :-1]], axis=1)
        values = jax.vmap(lambda h, x: cell(params, h, x)[0], in_axes=1, out_axes=1)(prev, xs)
        return float(jnp.sum((states - values) ** 2))

    def merits(**kwargs):   # from the zero start, then after 1 and 2 iterations
        return np.array([merit(jnp.zeros((1, 30, 3)))] + [
            merit(parallel.newton_unroll(cell, params, xs, tol=0.0, max_iter=k,
                                         **kwargs)[2].states) for k in (1, 2)])

    assert np.any(np.diff(merits()) > 0)
    assert np.all(np.diff(merits(damping=1.0)) <= 0)
    expected = rj.unroll(cell, params, xs)[1]
    _, ys, damped = parallel.newton_unroll(cell, params, xs, max_iter=60, damping=1.0)
    assert float(damped.residual) <= 1e-6
    np.testing.assert_allclose(ys, expected, atol=1e-5, rtol=0)


def test_a_warm_start_from_the_solution_takes_no_iteration():
    cell = CELLS["lstm"]
    params, xs, options = setup(cell, OPTIONS["all"])
    final, ys, stats = parallel.newton_unroll(cell, params, xs, **options)
    assert stats.states.h.shape == (B, T, 3)
    # the trajectory's hidden state is the output within each length
    alive = (jnp.arange(T)[None, :] < LENGTHS[:, None])[..., None]
    np.testing.assert_allclose(jnp.where(alive, stats.states.h, 0.0), ys, atol=1e-6)
    again = parallel.newton_unroll(cell, params, xs, **options, guess=stats.states)
    assert int(again[2].iterations) == 0
    assert_trees_close(again[:2], (final, ys), atol=0.0)


def test_time_major_layout_and_an_empty_sequence():
    cell = CELLS["gru"]
    params, xs, _ = setup(cell, {})
    expected = rj.unroll(cell, params, xs)
    final, ys, stats = parallel.newton_unroll(cell, params, jnp.swapaxes(xs, 0, 1),
                                              time_major=True)
    assert_trees_close((final, jnp.swapaxes(ys, 0, 1)), expected, atol=1e-5)
    assert stats.states.shape == (T, B, 4)
    final, ys, stats = parallel.newton_unroll(cell, params, xs[:, :0])
    assert ys.shape == (B, 0, 4) and int(stats.iterations) == 0
    assert bool((final == 0).all())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"jacobian": "dense"}, ValueError, r"jacobian must be 'full' or 'diagonal', got 'dense'"),
    ({"damping": -1.0}, ValueError, r"damping must be a finite number >= 0, got -1.0"),
    ({"damping": "strong"}, TypeError, r"damping must be a number >= 0, got 'strong'"),
    ({"tol": float("nan")}, ValueError, r"tol must be a finite number >= 0, got nan"),
    ({"max_iter": 0}, ValueError, r"max_iter"),
    ({"guess": jnp.zeros((B, T + 1, 4))}, ValueError,
     r"guess must have leaf shapes \(3, 12, 4\), got \(3, 13, 4\)"),
    ({"seq_lengths": jnp.array([1, 2])}, ValueError, r"seq_lengths must have shape \(3,\)"),
    ({"resets": jnp.zeros((T, B), bool)}, ValueError, r"resets must have shape \(3, 12\)"),
    ({"carry": jnp.zeros((B, 5))}, ValueError, r"carry must have leaf shapes"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    cell = CELLS["gru"]
    params, xs, _ = setup(cell, {})
    with pytest.raises(error, match=match):
        parallel.newton_unroll(cell, params, xs, **kwargs)


def test_bad_models_and_inputs_say_what_to_do():
    cell = CELLS["gru"]
    params, xs, _ = setup(cell, {})
    with pytest.raises(ValueError, match=r"xs must .*\[B, T, F\]"):
        parallel.newton_unroll(cell, params, xs[0])
    with pytest.raises(ValueError, match=r"xs"):
        parallel.newton_unroll(cell, params, jnp.zeros((B, T, F + 1)))
    bidirectional = rj.Bidirectional(rj.GRU(hidden_size=2), rj.GRU(hidden_size=2))
    with pytest.raises(TypeError, match=r"got a Bidirectional: run each direction as a cell"):
        parallel.newton_unroll(bidirectional, bidirectional.init(jax.random.key(0), F), xs)
    clockwork = rj.ClockworkRNN(hidden_size=4, periods=(1, 2))
    with pytest.raises(TypeError, match=r"ClockworkRNN carries non-float leaves"):
        parallel.newton_unroll(clockwork, clockwork.init(jax.random.key(0), F), xs)
