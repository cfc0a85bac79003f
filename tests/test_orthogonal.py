"""OrthogonalRNN (expRNN, scoRNN): the matrix exponential and Cayley transform against
SciPy and NumPy in float64, orthogonality at init and after optimiser steps, the step
against a NumPy reference, the loop's options, and the probe's analytic cases."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from helpers import normal
from jax.test_util import check_grads

import rnnjax as rj
from rnnjax import probe
from rnnjax.cells.orthogonal import block_skew_init, cayley, expm, modrelu, skew

PARAMETRIZATIONS = ["exp", "cayley"]


def orthogonality_error(w):
    w = np.asarray(w, np.float64)
    return np.abs(w.T @ w - np.eye(w.shape[0])).max()


@pytest.mark.parametrize("scale", [0.01, 1.0, 7.0, 60.0])
def test_expm_matches_scipy_in_float64(scale):
    with jax.enable_x64(True):
        a = np.random.RandomState(0).randn(9, 9) * scale / 3
        for matrix in (a, np.asarray(skew(a))):   # a general and a skew-symmetric one
            want = scipy.linalg.expm(matrix)
            got = np.asarray(expm(jnp.asarray(matrix)))
            assert np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


def test_cayley_transform_and_skew_part_against_numpy():
    with jax.enable_x64(True):
        a = np.random.RandomState(1).randn(6, 6)
        s = np.asarray(skew(a))
        assert np.allclose(s, np.triu(a, 1) - np.triu(a, 1).T, atol=0) and np.allclose(s, -s.T)
        want = np.linalg.solve(np.eye(6) + s, np.eye(6) - s)
        assert np.abs(np.asarray(cayley(jnp.asarray(s))) - want).max() < 1e-13
        assert orthogonality_error(cayley(jnp.asarray(s))) < 1e-13


def test_modrelu_against_its_formula():
    z, b = np.array([-2.0, -0.3, 0.0, 0.2, 1.5]), np.array([0.1, -0.5, 0.3, -0.5, -1.0])
    want = np.sign(z) * np.maximum(np.abs(z) + b, 0.0)
    assert np.allclose(np.asarray(modrelu(jnp.asarray(z), jnp.asarray(b))), want, atol=1e-7)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_recurrent_matrix_stays_orthogonal_through_training(parametrization):
    cell = rj.OrthogonalRNN(10, parametrization=parametrization)
    params = cell.init(jax.random.key(0), 3)
    assert orthogonality_error(cell.recurrent_matrix(params)) < 2e-6
    xs = normal(1, (4, 12, 3))
    loss = lambda p: jnp.sum(rj.unroll(cell, p, xs)[1] ** 2)
    optimizer = optax.adam(0.3)   # large steps move A far from its init

    @jax.jit
    def update(params, state):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        return params, state, cell.recurrent_matrix(params)

    state, a0 = optimizer.init(params), params["A"]
    for _ in range(5):
        params, state, w = update(params, state)
        assert orthogonality_error(w) < 2e-6
    assert np.abs(np.asarray(params["A"] - a0)).max() > 0.5
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        assert orthogonality_error(cell.recurrent_matrix(p64)) < 1e-13


def test_initialisations_are_rotations_by_the_drawn_angles():
    with jax.enable_x64(True):
        a = block_skew_init(jax.random.key(3), 7, "henaff", jnp.float64)
        s = np.asarray(a)[np.arange(0, 6, 2), np.arange(1, 7, 2)]
        assert np.all(np.abs(s) <= np.pi) and np.allclose(np.asarray(a), -np.asarray(a).T)
        w = np.asarray(expm(a))
        for i, angle in enumerate(s):   # each 2x2 block rotates by its angle
            block = w[2 * i:2 * i + 2, 2 * i:2 * i + 2]
            assert np.allclose(block, [[np.cos(angle), np.sin(angle)],
                                       [-np.sin(angle), np.cos(angle)]], atol=1e-12)
        assert w[6, 6] == pytest.approx(1.0, abs=1e-14)   # odd H: the last unit alone
        c = np.asarray(block_skew_init(jax.random.key(3), 6, "cayley", jnp.float64))
        values = c[np.arange(0, 6, 2), np.arange(1, 6, 2)]
        # s = -sqrt((1 - cos t) / (1 + cos t)) = -tan(t / 2), t in [0, pi/2]
        assert np.all(values <= 0) and np.all(values >= -np.tan(np.pi / 4) - 1e-12)


def test_cayley_signs_d():
    cell = rj.OrthogonalRNN(6, parametrization="cayley", negatives=2)
    params = {**cell.init(jax.random.key(0), 2), "A": jnp.zeros((6, 6))}
    assert np.array_equal(np.asarray(cell.recurrent_matrix(params)),
                          np.diag([-1.0, -1, 1, 1, 1, 1]))
    half = rj.OrthogonalRNN(6, parametrization="cayley")   # default: half the units
    assert np.trace(np.asarray(half.recurrent_matrix(params))) == 0.0


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
@pytest.mark.parametrize("activation", ["modrelu", "tanh"])
def test_unroll_matches_a_numpy_reference_in_float64(parametrization, activation):
    with jax.enable_x64(True):
        cell = rj.OrthogonalRNN(5, parametrization=parametrization, activation=activation)
        params = cell.init(jax.random.key(2), 3, jnp.float64)
        params = {**params, "b": jnp.linspace(-0.3, 0.2, 5)}
        xs = np.asarray(normal(4, (2, 9, 3)), np.float64)
        a = np.triu(np.asarray(params["A"]), 1)
        a = a - a.T
        if parametrization == "exp":
            w = scipy.linalg.expm(a)
        else:
            w = np.linalg.solve(np.eye(5) + a, np.eye(5) - a) * np.array([-1, -1, 1, 1, 1.0])
        w_x, b = np.asarray(params["W_x"]), np.asarray(params["b"])
        h, want = np.zeros((2, 5)), []
        for t in range(9):
            z = xs[:, t] @ w_x + h @ w
            h = (np.sign(z) * np.maximum(np.abs(z) + b, 0) if activation == "modrelu"
                 else np.tanh(z + b))
            want.append(h)
        _, ys = rj.unroll(cell, params, jnp.asarray(xs))
        assert np.abs(np.asarray(ys) - np.stack(want, 1)).max() < 1e-12
        # one step at a time (W derived inside the step) gives the same numbers
        carry = cell.initial_carry(2, jnp.float64)
        for t in range(9):
            carry, y = cell(params, carry, jnp.asarray(xs[:, t]))
        assert np.abs(np.asarray(y) - want[-1]).max() < 1e-12


def test_lengths_reverse_resets_and_composites():
    cell = rj.OrthogonalRNN(4)
    params = cell.init(jax.random.key(0), 2)
    xs = normal(5, (2, 7, 2))
    lengths = jnp.array([7, 3])
    resets = jnp.zeros((2, 7), bool).at[:, 4].set(True)
    _, ys = rj.unroll(cell, params, xs, seq_lengths=lengths, reverse=True)
    _, alone = rj.unroll(cell, params, xs[1:, :3], reverse=True)
    assert np.allclose(ys[1, :3], alone[0], atol=1e-6) and np.all(ys[1, 3:] == 0)
    _, with_reset = rj.unroll(cell, params, xs, resets=resets)
    _, second = rj.unroll(cell, params, xs[:, 4:])
    assert np.allclose(with_reset[:, 4:], second, atol=1e-6)
    stacked = rj.Stacked([cell, rj.OrthogonalRNN(3, parametrization="cayley")])
    sp = stacked.init(jax.random.key(1), 2)
    _, ys = rj.unroll(stacked, sp, xs)
    _, first = rj.unroll(cell, sp[0], xs)
    _, second = rj.unroll(stacked.layers[1], sp[1], first)
    assert np.allclose(ys, second, atol=1e-6)


def test_gradients_against_finite_differences():
    with jax.enable_x64(True):
        for parametrization in PARAMETRIZATIONS:
            cell = rj.OrthogonalRNN(4, parametrization=parametrization, activation="tanh")
            params = cell.init(jax.random.key(0), 2, jnp.float64)
            xs = jnp.asarray(normal(6, (2, 6, 2)), jnp.float64)
            loss = lambda p: jnp.sum(rj.unroll(cell, p, xs)[1][:, -1] ** 2)
            check_grads(loss, (params,), order=1, modes=["rev"], eps=1e-6,
                                      atol=1e-7, rtol=1e-7)


def test_probe_sees_an_isometry_in_the_linear_orthogonal_rnn():
    # h_t = h_{t-1} W + x_t W_x + b with W orthogonal: every Lyapunov exponent is 0 and
    # ||dL/dh_k|| of the last step's loss is the same at every distance
    with jax.enable_x64(True):
        for parametrization in PARAMETRIZATIONS:
            cell = rj.OrthogonalRNN(6, parametrization=parametrization, activation="identity")
            params = cell.init(jax.random.key(1), 2, jnp.float64)
            xs = jnp.asarray(normal(7, (3, 30, 2)), jnp.float64)
            assert np.abs(np.asarray(probe.lyapunov_spectrum(cell, params, xs))).max() < 1e-13
            norms = np.asarray(probe.hidden_grad_norms(
                cell, params, xs, lambda ys: jnp.sum(ys[:, -1] ** 2)))
            assert np.abs(norms[:-1] / norms[-2] - 1).max() < 1e-12


def test_cell_names_and_bad_configs():
    from rnnjax.cells import make
    assert make("scornn", 4).parametrization == "cayley" and make("exprnn", 4).scheme == "henaff"
    assert make("scornn", 4).scheme == "cayley"
    with pytest.raises(ValueError, match="parametrization must be one of"):
        rj.OrthogonalRNN(4, parametrization="svd")
    with pytest.raises(ValueError, match="init_scheme must be one of"):
        rj.OrthogonalRNN(4, init_scheme="glorot")
    with pytest.raises(ValueError, match="activation must be 'modrelu'"):
        rj.OrthogonalRNN(4, activation="sigmoid")
    with pytest.raises(ValueError, match=r"negatives must be an int in \[0, hidden_size=4\]"):
        rj.OrthogonalRNN(4, parametrization="cayley", negatives=5)
    with pytest.raises(ValueError, match="hidden_size"):
        rj.OrthogonalRNN(0)
