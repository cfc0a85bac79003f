"""Gradient flossing: the Lyapunov spectrum's gradient against finite differences, the
Gram-Schmidt step against NumPy's QR, the train step's schedule (flossing alone, then
added every m steps) against gradients computed by hand, and flossing pulling a chaotic
RNN's largest exponent towards zero."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import normal

import rnnjax as rj
from rnnjax import _linalg, probe
from rnnjax.train import Flossing, flossing_loss, init_state, make_train_step


def test_orthonormalize_matches_numpy_qr():
    with jax.enable_x64(True):
        a = np.random.RandomState(0).randn(7, 4)
        q, log_r = _linalg.orthonormalize(jnp.asarray(a))
        q_np, r_np = np.linalg.qr(a)
        signs = np.sign(np.diag(r_np))
        assert np.abs(np.asarray(q) - q_np * signs).max() < 1e-13
        assert np.abs(np.asarray(log_r) - np.log(np.abs(np.diag(r_np)))).max() < 1e-13


def test_flossing_loss_and_its_gradient_against_finite_differences():
    with jax.enable_x64(True):
        cell = rj.SimpleRNN(5, recurrent_scale=1.5)
        params = cell.init(jax.random.key(0), 2, jnp.float64)
        xs = jnp.asarray(normal(1, (3, 40, 2)), jnp.float64)
        spectrum = probe.lyapunov_spectrum(cell, params, xs)
        loss = jax.jit(lambda p: flossing_loss(cell, p, xs, k=2))
        assert float(loss(params)) == pytest.approx(float(jnp.mean(spectrum[:2] ** 2)),
                                                    rel=1e-12)
        grads = jax.grad(loss)(params)
        for name, index in (("W_h", (1, 3)), ("W_x", (0, 2)), ("b", (4,))):
            step = np.zeros(params[name].shape)
            step[index] = 1e-6
            plus = loss({**params, name: params[name] + step})
            minus = loss({**params, name: params[name] - step})
            assert float(grads[name][index]) == pytest.approx(float(plus - minus) / 2e-6,
                                                              rel=1e-6, abs=1e-9)


def test_lyapunov_spectrum_of_a_linear_rnn_is_log_eigenvalue_moduli():
    with jax.enable_x64(True):
        q = np.linalg.qr(np.random.RandomState(2).randn(4, 4))[0]
        moduli = np.array([1.1, 0.8, 0.5, 0.3])
        cell = rj.SimpleRNN(4, activation="identity")
        params = {**cell.init(jax.random.key(0), 1, jnp.float64),
                  "W_h": jnp.asarray(q @ np.diag(moduli) @ q.T)}
        xs = jnp.asarray(normal(3, (1, 400, 1)), jnp.float64)
        # the QR method's error is O(1/T) for a normal matrix
        assert np.abs(np.asarray(probe.lyapunov_spectrum(cell, params, xs))
                      - np.log(moduli)).max() < 0.01


def _setup():
    cell = rj.SimpleRNN(16, recurrent_scale=3.0)     # chaotic: largest exponent > 0
    params = {"cell": cell.init(jax.random.key(0), 1), "w": jnp.ones(())}
    xs = normal(4, (4, 30, 1))
    task = lambda p, b, key: (jnp.sum(p["w"] ** 2) * jnp.mean(b ** 2)
                              + jnp.mean(rj.unroll(cell, p["cell"], b)[1] ** 2), {})
    return cell, params, xs, task


def test_train_step_follows_the_schedule():
    cell, params, xs, task = _setup()
    floss = Flossing(cell, lambda p, b: (p["cell"], b), k=2, weight=0.5, every=3, before=2)
    lr = 1e-3
    step = jax.jit(make_train_step(task, optax.sgd(lr), flossing=floss))
    state = init_state(params, optax.sgd(lr), jax.random.key(1))
    task_grad = jax.jit(jax.grad(lambda q: task(q, xs, None)[0]))
    floss_grad = jax.jit(jax.grad(lambda q: flossing_loss(cell, q["cell"], xs, 2)))
    for t in range(7):
        before = state.params
        state, metrics = step(state, xs)
        moved = jax.tree_util.tree_map(lambda a, b: (a - b) / lr, before, state.params)
        if t < 2:      # flossing alone
            want = floss_grad(before)
        elif t % 3 == 0:   # task + 0.5 flossing
            want = jax.tree_util.tree_map(lambda a, b: a + 0.5 * b, task_grad(before),
                                          floss_grad(before))
        else:
            want = task_grad(before)
        for got, expected in zip(jax.tree_util.tree_leaves(moved),
                                 jax.tree_util.tree_leaves(want)):
            assert np.allclose(got, expected, rtol=1e-3, atol=1e-3), t
        assert np.isnan(metrics["flossing"]) == (t >= 2 and t % 3 != 0)
        assert float(metrics["loss"]) == pytest.approx(float(task(before, xs, None)[0]),
                                                       rel=1e-5)


def test_flossing_pulls_the_largest_exponent_towards_zero():
    cell, params, xs, task = _setup()
    start = float(probe.lyapunov_spectrum(cell, params["cell"], xs, k=1)[0])
    floss = Flossing(cell, lambda p, b: (p["cell"], b), k=1, before=60)
    optimizer = optax.adam(0.02)
    step = jax.jit(make_train_step(task, optimizer, flossing=floss))
    state = init_state(params, optimizer, jax.random.key(1))
    flossing = []
    for _ in range(60):
        state, metrics = step(state, xs)
        flossing.append(float(metrics["flossing"]))   # lambda_1 squared before the step
    # lambda_1 falls from above 0.2 to hover around 0: its square, the flossing loss,
    # ends below a fifth of where it started
    assert start > 0.2 and flossing[0] == pytest.approx(start ** 2, rel=1e-3)
    assert np.mean(flossing[-10:]) < 0.2 * flossing[0]


def test_bad_flossing_settings():
    cell = rj.SimpleRNN(3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        Flossing(cell, lambda p, b: (p, b), k=0)
    with pytest.raises(ValueError, match="every must be an int >= 0"):
        Flossing(cell, lambda p, b: (p, b), every=-1)
    with pytest.raises(ValueError, match="weight must be a number >= 0"):
        Flossing(cell, lambda p, b: (p, b), weight=-0.1)
    with pytest.raises(TypeError, match="select must be callable"):
        Flossing(cell, "cell")
    with pytest.raises(TypeError, match=r"flossing must be a rnnjax\.train\.Flossing"):
        make_train_step(lambda p, b, k: (0.0, {}), optax.sgd(1.0), flossing="yes")
    with pytest.raises(ValueError, match="k must lie in"):
        flossing_loss(cell, cell.init(jax.random.key(0), 2), jnp.ones((1, 4, 2)), k=4)
