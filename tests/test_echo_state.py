"""Echo state networks: the reservoir's spectral radius, its step, the ridge readout
against a least-squares reference, memory capacity, and a frozen reservoir in training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax as rj
from rnnjax import _linalg, probe
from rnnjax.train import init_state, make_train_step, mse, ridge_readout


@pytest.mark.parametrize("density", [1.0, 0.1])
def test_reservoir_has_the_asked_spectral_radius(density):
    for seed in range(3):
        cell = rj.EchoState(60, spectral_radius=0.95, density=density)
        w = np.asarray(cell.init(jax.random.key(seed), 2)["W_h"], np.float64)
        np.testing.assert_allclose(np.abs(np.linalg.eigvals(w)).max(), 0.95, rtol=1e-5)
        if density < 1:
            assert 0.05 < np.mean(w != 0) < 0.15


def test_spectral_radius_against_numpy_eigenvalues():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(4, 30, 30))
    np.testing.assert_allclose(_linalg.spectral_radius(jnp.asarray(batch, jnp.float32)),
                               np.abs(np.linalg.eigvals(batch)).max(-1), rtol=1e-5)
    rotation = 0.7 * np.array([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]])
    assert float(_linalg.spectral_radius(jnp.asarray(rotation))) == pytest.approx(0.7, 1e-6)
    assert float(_linalg.spectral_radius(jnp.triu(jnp.ones((5, 5)), 1))) == 0.0  # nilpotent


def test_step_is_the_leaky_tanh_update():
    with jax.enable_x64(True):
        cell = rj.EchoState(5, spectral_radius=0.9, leak=0.3, bias_scale=0.2)
        params = cell.init(jax.random.key(1), 2, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.key(2), (3, 7, 2), jnp.float64)
        _, ys = rj.unroll(cell, params, xs)
        p = {k: np.asarray(v) for k, v in params.items()}
        h = np.zeros((3, 5))
        for t in range(7):
            h = 0.7 * h + 0.3 * np.tanh(np.asarray(xs[:, t]) @ p["W_x"] + h @ p["W_h"] + p["b"])
            np.testing.assert_allclose(ys[:, t], h, rtol=1e-12, atol=1e-14)
    rj.check_cell(cell, 2)
    with pytest.raises(ValueError, match="leak must lie in"):
        rj.EchoState(5, leak=0.0)


def test_ridge_readout_equals_least_squares_with_lengths_and_classes():
    rng = np.random.default_rng(3)
    states = rng.normal(size=(4, 9, 6))
    targets = rng.normal(size=(4, 9, 2))
    lengths = np.array([9, 5, 0, 3])
    l2 = 0.3
    kept = np.arange(9)[None, :] < lengths[:, None]
    s, y = states[kept], targets[kept]
    # reference: the normal equations of [s 1] with the penalty on W only, in float64
    a = np.concatenate([s, np.ones((len(s), 1))], axis=1)
    penalty = l2 * np.diag([1.0] * 6 + [0.0])
    reference = np.linalg.solve(a.T @ a + penalty, a.T @ y)
    with jax.enable_x64(True):
        got = ridge_readout(jnp.asarray(states), jnp.asarray(targets), l2, lengths)
        np.testing.assert_allclose(got["W"], reference[:6], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got["b"], reference[6], rtol=1e-9, atol=1e-12)
        labels = rng.integers(0, 3, size=(4, 9))
        by_class = ridge_readout(jnp.asarray(states), jnp.asarray(labels), l2, lengths,
                                 classes=3)
        one_hot = ridge_readout(jnp.asarray(states), jnp.eye(3)[labels], l2, lengths)
        np.testing.assert_allclose(by_class["W"], one_hot["W"], rtol=1e-12)
    with pytest.raises(ValueError, match="pass classes="):
        ridge_readout(jnp.asarray(states), jnp.asarray(labels), l2)


def test_memory_capacity_of_a_linear_reservoir_is_its_size():
    """Jaeger 2002: N for a linear reservoir of N units (summed over the delays its
    memory spans); tanh units hold less."""
    with jax.enable_x64(True):
        linear = rj.EchoState(8, spectral_radius=0.8, activation="identity")
        params = linear.init(jax.random.key(0), 1, dtype=jnp.float64)
        capacity, r2 = probe.memory_capacity(linear, params, 60, l2=1e-10)
        assert abs(float(capacity) - 8) < 0.25
        assert float(r2[0]) > 0.999 and float(r2[-1]) < 0.01
        tanh = rj.EchoState(8, spectral_radius=0.8, input_scale=0.1)
        capacity_tanh, _ = probe.memory_capacity(
            tanh, tanh.init(jax.random.key(0), 1, dtype=jnp.float64), 60, l2=1e-10)
        assert float(capacity_tanh) < float(capacity) - 0.5


def test_a_frozen_reservoir_trains_only_its_readout():
    cell, head = rj.EchoState(16, spectral_radius=0.9), rj.Dense(1)
    params = {"reservoir": cell.init(jax.random.key(0), 1),
              "readout": head.init(jax.random.key(1), 16)}
    optimizer = optax.multi_transform(
        {"train": optax.adam(1e-2), "freeze": optax.set_to_zero()},
        {"reservoir": "freeze", "readout": "train"})

    def loss_fn(p, batch, key):
        xs, ys = batch
        _, hs = rj.unroll(cell, p["reservoir"], xs)
        return mse(head(p["readout"], hs[:, 3:]), ys[:, :-3]), {}

    xs = jax.random.uniform(jax.random.key(2), (8, 20, 1), minval=-1, maxval=1)
    state = init_state(params, optimizer, jax.random.key(3))
    step = jax.jit(make_train_step(loss_fn, optimizer))
    first = None
    for _ in range(30):
        state, metrics = step(state, (xs, xs))
        first = metrics["loss"] if first is None else first
    assert float(metrics["loss"]) < float(first)
    for a, b in zip(jax.tree_util.tree_leaves(state.params["reservoir"]),
                    jax.tree_util.tree_leaves(params["reservoir"])):
        np.testing.assert_array_equal(a, b)
