"""The probe where float32 runs out: gradients that only vanish never read as zero,
overflow reads as exploding, and log-norms measure decay over 10^4 steps."""

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax as rj
from rnnjax import probe


def last_output_loss(ys):
    return jnp.sum(ys[:, -1])


def test_tiny_gradients_are_measured_not_rounded_to_zero():
    """tanh RNN, H = 16, T = 128: the earliest ||dL/dh_k|| are ~1e-20, whose squares
    underflow float32; the scaled norm and the log-norm match float64."""
    cell = rj.SimpleRNN(hidden_size=16)
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (3, 128, 4))
    norms = probe.hidden_grad_norms(cell, params, xs, last_output_loss)
    logs = probe.hidden_grad_log_norms(cell, params, xs, last_output_loss)
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        reference = np.asarray(probe.hidden_grad_norms(cell, params64, xs.astype(jnp.float64),
                                                       last_output_loss))
    assert reference[0] < 1e-15                  # squares below float32's smallest
    assert np.all(np.asarray(norms) > 0)
    np.testing.assert_allclose(norms, reference, rtol=1e-4)
    np.testing.assert_allclose(logs, np.log(reference), atol=1e-4)
    assert np.isfinite(probe.decay_fit(norms).rate)


def test_log_norms_follow_the_analytic_decay_over_ten_thousand_steps():
    """A linear RNN with W_h = 0.7 Q (Q orthogonal): ||dL/dh_k|| = 0.7^(T-1-k) ||dL/dh_T-1||
    exactly, down to e^-3566, where float32 norms are 0 for all but the last ~290 steps."""
    steps, rho = 10_000, 0.7
    cell = rj.SimpleRNN(hidden_size=4, activation="identity", recurrent_scale=rho)
    params = cell.init(jax.random.key(2), 2)
    xs = jax.random.normal(jax.random.key(3), (2, steps, 2))
    logs = np.asarray(probe.hidden_grad_log_norms(cell, params, xs, last_output_loss))
    distance = steps - 1 - np.arange(steps)
    # float32 rounding of W_h (singular values 0.7 to ~1e-7) accumulates over 10^4 steps
    np.testing.assert_allclose(logs - logs[-1], distance * np.log(rho), rtol=1e-4, atol=1e-3)
    fit = probe.decay_fit(logs, log=True)
    assert abs(fit.rate - np.log(rho)) < 1e-4 and not fit.exploding
    assert float(probe.hidden_grad_norms(cell, params, xs[:, -400:], last_output_loss)[0]) == 0


def test_overflow_reads_as_exploding_not_nan():
    """W_h = 1.5 Q with zero inputs: the gradient grows 1.5 per step back; by T = 400
    it overflows float32. The norms say inf (not NaN), the fit says exploding, and the
    log-norms keep the exact slope ln 1.5."""
    cell = rj.SimpleRNN(hidden_size=8, activation="identity", recurrent_scale=1.5)
    params = cell.init(jax.random.key(0), 2)
    xs = jnp.zeros((2, 400, 2))
    norms = np.asarray(probe.hidden_grad_norms(cell, params, xs, last_output_loss))
    assert not np.any(np.isnan(norms)) and np.isinf(norms[0])
    assert probe.decay_fit(norms).exploding
    logs = np.asarray(probe.hidden_grad_log_norms(cell, params, xs, last_output_loss))
    np.testing.assert_allclose(logs, logs[-1] + (399 - np.arange(400)) * np.log(1.5),
                               atol=1e-3)
    assert probe.decay_fit(logs, log=True).exploding


def test_log_norms_equal_the_one_pass_probe_for_every_kind_of_carry():
    """LSTM (h, c), GRU, a clockwork cell (an integer step in its carry) and the LRU (an
    output read through C and D)."""
    xs = jax.random.normal(jax.random.key(4), (2, 12, 3))
    for cell in (rj.LSTM(5), rj.GRU(5), rj.ClockworkRNN(6, periods=(1, 2)), rj.LRU(5)):
        params = cell.init(jax.random.key(5), 3)
        norms = probe.hidden_grad_norms(cell, params, xs, last_output_loss, per_example=True)
        logs = probe.hidden_grad_log_norms(cell, params, xs, last_output_loss,
                                           per_example=True)
        np.testing.assert_allclose(logs, np.log(np.asarray(norms)), atol=1e-4)
