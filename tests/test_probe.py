"""The one-pass gradient-norm probe against analytic cases and the naive probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj
from conftest import CELLS
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
