"""The one-pass gradient-norm probe against analytic cases and the naive probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS

import rnnjax as rj
from rnnjax import probe


@pytest.mark.parametrize("name", ["tanh", "lstm", "gru", "clockwork"])
def test_one_pass_equals_naive_backward_passes(name):
    cell = CELLS[name]
    k_p, k_x, k_w = jax.random.split(jax.random.key(0), 3)
    params = cell.init(k_p, 3)
    xs = jax.random.normal(k_x, (2, 7, 3))
    w = jax.random.normal(k_w, (7, cell.hidden_size))
    loss_fn = lambda ys: jnp.sum(jnp.tanh(ys) * w)  # every step's output feeds the loss
    fast = probe.hidden_grad_norms(cell, params, xs, loss_fn, per_example=True)
    slow = probe.naive_hidden_grad_norms(cell, params, xs, loss_fn)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probe.hidden_grad_norms(cell, params, xs, loss_fn),
                               slow.mean(0), rtol=1e-5)


@pytest.mark.parametrize("rho", [0.8, 1.0, 1.25])
def test_linear_rnn_with_scaled_orthogonal_weights(rho):
    # h_k -> h_T is multiplication by W_h^(T-k) = rho^(T-k) Q^(T-k): norms are exact powers
    cell = rj.SimpleRNN(hidden_size=16, activation="identity", recurrent_scale=rho)
    params = cell.init(jax.random.key(1), 4)
    xs = jax.random.normal(jax.random.key(2), (3, 20, 4))
    norms = probe.hidden_grad_norms(cell, params, xs, lambda ys: jnp.sum(ys[:, -1, 0]))
    distance = np.arange(19, -1, -1)
    np.testing.assert_allclose(norms, norms[-1] * rho ** distance, rtol=1e-4)


def linear_rnn(rho, hidden=8, seed=1):
    cell = rj.SimpleRNN(hidden_size=hidden, activation="identity", recurrent_scale=rho)
    return cell, cell.init(jax.random.key(seed), 3)


@pytest.mark.parametrize("rho", [0.9, 1.0, 1.1])
@pytest.mark.parametrize("method", ["exact", "power"])
def test_jacobian_norms_of_scaled_orthogonal_linear_rnn(rho, method):
    # dh_{T-1}/dh_k = (rho Q^T)^(T-1-k): every singular value is rho^(T-1-k)
    cell, params = linear_rnn(rho)
    xs = jax.random.normal(jax.random.key(2), (2, 40, 3))
    norms = probe.jacobian_norms(cell, params, xs, method=method)
    np.testing.assert_allclose(norms, rho ** np.arange(39, -1, -1), rtol=2e-4)
    assert abs(probe.decay_rate(norms) - np.log(rho)) < 1e-3


@pytest.mark.parametrize("cell", [
    rj.LSTM(5),
    # the LSTM covers the gated path in the default run; these two, 5 s each, with -m slow
    pytest.param(rj.GRU(5), marks=pytest.mark.slow),
    pytest.param(rj.ClockworkRNN(6, (1, 2, 3)), marks=pytest.mark.slow),
], ids=["lstm", "gru", "clockwork"])
def test_power_iteration_matches_exact_svd_for_gated_cells(cell):
    xs = jax.random.normal(jax.random.key(3), (2, 12, 3))
    params = cell.init(jax.random.key(4), 3)
    exact = probe.jacobian_norms(cell, params, xs, method="exact")
    power = probe.jacobian_norms(cell, params, xs, method="power", iterations=200)
    np.testing.assert_allclose(power, exact, rtol=1e-3, err_msg=repr(cell))


def test_step_jacobians_against_jax_jacobian_of_one_step():
    cell = rj.LSTM(4)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (1, 3, 3))
    jacs = probe.step_jacobians(cell, params, xs)          # [B, T, 2H, 2H], state (h, c)
    carry, _ = rj.unroll(cell, params, xs[:, :1])          # state after step 0
    step = lambda h, c: tuple(cell(params, rj.LSTMCarry(h, c), xs[:, 1])[0])
    d = jax.jacobian(step, argnums=(0, 1))(carry.h, carry.c)  # d(h1, c1)/d(h0, c0)
    full = np.block([[d[0][0][0, :, 0], d[0][1][0, :, 0]], [d[1][0][0, :, 0], d[1][1][0, :, 0]]])
    np.testing.assert_allclose(jacs[0, 1], full, atol=1e-6)
    # a linear RNN's step Jacobian is W_h^T: its singular values are rho
    cell, params = linear_rnn(0.7)
    sv = jnp.linalg.svd(probe.step_jacobians(cell, params, xs), compute_uv=False)
    np.testing.assert_allclose(sv, 0.7, rtol=1e-5)


def test_lyapunov_spectrum_of_non_normal_linear_rnn():
    # W_h = V diag(lam) V^-1 with a far-from-orthogonal V: the exponents are ln|lam|,
    # although the singular values of W_h are not |lam|
    lam = np.array([1.05, 0.9, -0.8, 0.6, 0.4, -0.2])
    rng = np.random.default_rng(0)
    v = np.eye(6) + np.triu(rng.normal(0, 2.0, (6, 6)), 1)
    w = (v @ np.diag(lam) @ np.linalg.inv(v)).astype(np.float32)
    assert not np.allclose(np.linalg.svd(w, compute_uv=False), np.sort(np.abs(lam))[::-1],
                           atol=0.1)
    cell = rj.SimpleRNN(6, activation="identity")
    params = dict(cell.init(jax.random.key(0), 2), W_h=jnp.asarray(w))
    xs = jnp.zeros((1, 3000, 2))
    spectrum = probe.lyapunov_spectrum(cell, params, xs)
    np.testing.assert_allclose(spectrum, np.sort(np.log(np.abs(lam)))[::-1], atol=1e-2)
    top2 = probe.lyapunov_spectrum(cell, params, xs, k=2)
    np.testing.assert_allclose(top2, spectrum[:2], atol=1e-5)


def test_decay_fit_half_life_and_explosion():
    d = np.arange(99, -1, -1)
    fit = probe.decay_fit(0.5 ** d)
    assert abs(fit.rate - np.log(0.5)) < 1e-9 and abs(fit.half_life - 1.0) < 1e-9
    assert not fit.exploding and fit.stderr < 1e-9
    grow = probe.decay_fit(1.1 ** d * np.exp(np.random.default_rng(0).normal(0, 0.1, 100)))
    assert grow.exploding and grow.half_life == np.inf and abs(grow.rate - np.log(1.1)) < 0.01
    with pytest.raises(ValueError, match=r"norms must have shape \[T\]"):
        probe.decay_fit(np.ones((2, 3)))


def test_truncated_param_grads_equal_cutting_the_carry_by_hand():
    cell = CELLS["gru"]
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 10, 3))
    loss_fn = lambda ys: jnp.sum(ys[:, -1] ** 2)

    def by_hand(k):
        def loss(p):
            carry, _ = rj.unroll(cell, p, xs[:, :10 - k])
            carry = jax.lax.stop_gradient(carry)
            return loss_fn(rj.unroll(cell, p, xs[:, 10 - k:], carry=carry)[1])
        g = jax.grad(loss)(params)
        return jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(g)))

    ks = [1, 3, 9]
    np.testing.assert_allclose(probe.truncated_param_grad_norms(cell, params, xs, loss_fn, ks),
                               [by_hand(k) for k in ks], rtol=1e-5)
    full = jax.grad(lambda p: loss_fn(rj.unroll(cell, p, xs)[1]))(params)
    full_norm = jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(full)))
    np.testing.assert_allclose(probe.truncated_param_grad_norms(cell, params, xs, loss_fn, [10]),
                               [full_norm], rtol=1e-5)
    with pytest.raises(ValueError, match=r"truncations must lie in \[1, 10\]"):
        probe.truncated_param_grad_norms(cell, params, xs, loss_fn, [0, 11])


def test_sweep_recovers_the_analytic_rate_over_seeds():
    rho = 0.8
    cells = {"linear": rj.SimpleRNN(6, activation="identity", recurrent_scale=rho),
             "lstm": rj.LSTM(4)}
    result = probe.sweep(cells, [12, 24], seeds=3)
    assert [(r["cell"], r["T"]) for r in result.rows] == [
        ("linear", 12), ("linear", 24), ("lstm", 12), ("lstm", 24)]
    linear = result.rows[1]
    for key in ("grad_rate", "jacobian_rate", "lyapunov_max"):
        assert abs(linear[key] - np.log(rho)) < 1e-3, key
    assert linear["grad_rate_std"] < 1e-4 and linear["exploding"] == 0.0
    assert result.arrays[("lstm", 24)]["grad_norms"].shape == (3, 24)
    assert result.arrays[("lstm", 24)]["lyapunov"].shape == (3, 8)   # state (h, c)
    assert "| linear | 24 |" in result.table()


def test_probe_takes_stacked_cells_and_names_what_to_pass_for_the_rest():
    xs = jnp.ones((2, 6, 3))
    loss = lambda ys: ys[:, -1].sum()
    stack = rj.Stacked([rj.GRU(4), rj.LSTM(5)])
    norms = probe.hidden_grad_norms(stack, stack.init(jax.random.key(0), 3), xs, loss)
    assert norms.shape == (6,) and np.all(np.isfinite(norms))
    bi = rj.Bidirectional(rj.GRU(4), rj.GRU(4))
    with pytest.raises(TypeError, match=r"got a Bidirectional: probe each direction as a "
                                        r"cell: model.fwd with params\['fwd'\]"):
        probe.hidden_grad_norms(bi, bi.init(jax.random.key(0), 3), xs, loss)
    deep = rj.Stacked([bi, rj.GRU(4)])
    for measure in (lambda m, p: probe.jacobian_norms(m, p, xs),
                    lambda m, p: probe.lyapunov_spectrum(m, p, xs)):
        with pytest.raises(TypeError, match=r"a Stacked holding Bidirectional layers: .*"
                                            r"model.layers\[i\] with params\[i\]"):
            measure(deep, deep.init(jax.random.key(0), 3))


def test_sweep_seeds_count_or_list_pick_the_same_models():
    cells = {"gru": rj.GRU(4)}
    three = probe.sweep(cells, [8], seeds=3, measures=("grad",))
    picked = probe.sweep(cells, [8], seeds=[2, 0, 1], measures=("grad",))   # seed s: row s
    np.testing.assert_array_equal(picked.arrays[("gru", 8)]["grad_norms"],
                                  three.arrays[("gru", 8)]["grad_norms"][[2, 0, 1]])
    assert not np.array_equal(three.arrays[("gru", 8)]["grad_norms"][0],
                              three.arrays[("gru", 8)]["grad_norms"][1])
