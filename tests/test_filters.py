"""rnnjax.filters against filterpy and scipy (float64), simulation statistics, the
EKF and UKF exact on linear models, and the input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from filterpy.kalman import (
    ExtendedKalmanFilter,
    KalmanFilter,
    MerweScaledSigmaPoints,
    UnscentedKalmanFilter,
)

from rnnjax import filters


def random_model(seed, n=3, m=2):
    """A LinearGaussian with random float64 matrices: F of spectral radius 0.95,
    H of full rank, Q, R, P0 positive definite."""
    rng = np.random.default_rng(seed)
    spd = lambda k: (lambda a: a @ a.T + 0.1 * np.eye(k))(rng.normal(size=(k, k)) / np.sqrt(k))
    F = rng.normal(size=(n, n))
    F *= 0.95 / np.max(np.abs(np.linalg.eigvals(F)))
    return filters.LinearGaussian(F, rng.normal(size=(m, n)), spd(n), spd(m),
                                  rng.normal(size=n), spd(n))


def observations(model, seed, steps=100):
    with jax.enable_x64():
        return np.asarray(filters.simulate(model, jax.random.key(seed), steps, 1)[1][0])


def filterpy_kalman(model, zs):
    kf = KalmanFilter(dim_x=len(model.m0), dim_z=len(model.R))
    kf.F, kf.H, kf.Q, kf.R = model.F, model.H, model.Q, model.R
    kf.x, kf.P = model.m0.copy(), model.P0.copy()
    means, covs = [], []
    for z in zs:
        kf.predict()
        kf.update(z)
        means.append(kf.x.copy())
        covs.append(kf.P.copy())
    return np.array(means), np.array(covs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kalman_filter_matches_filterpy(seed):
    model = random_model(seed)
    zs = observations(model, seed)
    want_means, want_covs = filterpy_kalman(model, zs)
    with jax.enable_x64():
        means, covs = filters.kalman_filter(model, zs)
    np.testing.assert_allclose(means, want_means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(covs, want_covs, rtol=1e-9, atol=1e-9)


def test_kalman_filter_float32_is_close_to_float64():
    model = random_model(0)
    zs = observations(model, 0)
    with jax.enable_x64():
        exact = filters.kalman_filter(model, zs)[0]
    model32 = filters.LinearGaussian(*(np.float32(a) for a in model))
    means = filters.kalman_filter(model32, np.float32(zs))[0]
    assert means.dtype == jnp.float32
    np.testing.assert_allclose(means, exact, atol=2e-4 * np.abs(exact).max())


@pytest.fixture(scope="module")
def tracks():
    """A batch of observations of the 2-d constant-velocity model (float32)."""
    model = filters.constant_velocity(dims=2, dt=0.5)
    return model, filters.simulate(model, jax.random.key(0), 12, 3)[1]


def test_a_batch_is_filtered_sequence_by_sequence(tracks):
    model, zs = tracks
    means, covs = filters.kalman_filter(model, zs)   # every filter batches alike (vmap)
    assert means.shape == (3, 12, 4) and covs.shape == (3, 12, 4, 4)
    one_means, one_covs = filters.kalman_filter(model, zs[1])
    np.testing.assert_allclose(means[1], one_means, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(covs[1], one_covs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 4])
def test_covariance_converges_to_the_riccati_solution(seed):
    model = random_model(seed)
    want = scipy.linalg.solve_discrete_are(model.F.T, model.H.T, model.Q, model.R)
    zs = observations(model, seed)
    with jax.enable_x64():
        steady = filters.steady_state(model)
        covs = np.asarray(filters.kalman_filter(model, zs)[1])
    np.testing.assert_allclose(steady.predicted, want, rtol=1e-9, atol=1e-12)
    predicted_last = model.F @ covs[-1] @ model.F.T + model.Q
    np.testing.assert_allclose(predicted_last, want, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(steady.filtered, covs[-1], rtol=1e-8, atol=1e-12)
    # the gain of the steady state: K = P H^T (H P H^T + R)^-1
    s = model.H @ want @ model.H.T + model.R
    np.testing.assert_allclose(steady.gain, want @ model.H.T @ np.linalg.inv(s), rtol=1e-8)


def test_simulated_noise_has_the_model_covariances():
    model = filters.LinearGaussian(*(np.float32(a) for a in random_model(5)))
    xs, zs = map(np.asarray, filters.simulate(model, jax.random.key(1), 20, 4000))
    assert xs.shape == (4000, 20, 3) and zs.shape == (4000, 20, 2)
    process = (xs[:, 1:] - xs[:, :-1] @ model.F.T).reshape(-1, 3)
    measurement = (zs - xs @ model.H.T).reshape(-1, 2)
    first = xs[:, 0]                      # x_1 = F x_0 + w_1 with x_0 ~ N(m0, P0)
    for sample, mean, cov in (
            (process, np.zeros(3), model.Q), (measurement, np.zeros(2), model.R),
            (first, model.F @ model.m0, model.F @ model.P0 @ model.F.T + model.Q)):
        scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))   # sd of an entry ~ scale/sqrt(N)
        np.testing.assert_array_less(np.abs(np.cov(sample.T) - cov), 6 * scale / np.sqrt(
            len(sample)) * np.sqrt(2))
        np.testing.assert_array_less(np.abs(sample.mean(0) - mean),
                                     6 * np.sqrt(np.diag(cov) / len(sample)))


def test_cholesky_of_a_singular_covariance():
    a = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 9.0]])   # rank 2
    lower = np.asarray(filters.cholesky(jnp.asarray(a)))
    assert np.all(np.isfinite(lower)) and np.allclose(np.triu(lower, 1), 0)
    np.testing.assert_allclose(lower @ lower.T, a, atol=1e-6)


@pytest.mark.parametrize("run", [filters.extended_kalman_filter,
                                 filters.unscented_kalman_filter])
def test_ekf_and_ukf_are_exact_on_a_linear_model(run):
    model = random_model(6)
    zs = observations(model, 6)
    with jax.enable_x64():
        want_means, want_covs = filters.kalman_filter(model, zs)
        means, covs = run(model, zs)
    np.testing.assert_allclose(means, want_means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(covs, want_covs, rtol=1e-9, atol=1e-9)


def test_ukf_is_exact_on_a_linear_model_for_other_sigma_points():
    model = random_model(7)
    zs = observations(model, 7)
    with jax.enable_x64():
        want = filters.kalman_filter(model, zs)[0]
        for alpha, beta, kappa in ((0.5, 0.0, 1.0), (1e-2, 2.0, 0.0), (1.0, 0.0, -1.0)):
            got = filters.unscented_kalman_filter(model, zs, alpha, beta, kappa)[0]
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7)


def pendulum_run(seed=0, steps=60):
    with jax.enable_x64():
        model = filters.pendulum(dtype=jnp.float64)
        xs, zs = filters.simulate(model, jax.random.key(seed), steps, 1)
    return model, np.asarray(xs[0]), np.asarray(zs[0])


def pendulum_numpy(model):
    """The pendulum's f, its Jacobian and h in NumPy."""
    dt, g = model.f.dt, model.f.gravity

    def f(x, *_):
        rate = x[1] - g * np.sin(x[0]) * dt
        return np.array([x[0] + rate * dt, rate])

    def jac_f(x):
        d_rate = np.array([-g * np.cos(x[0]) * dt, 1.0])
        return np.array([[1.0, 0.0], [0.0, 0.0]]) + np.outer([dt, 1.0], d_rate)

    return f, jac_f, lambda x: np.sin(x[:1])


def test_ekf_matches_filterpy_on_the_pendulum():
    model, _, zs = pendulum_run()
    f, jac_f, h = pendulum_numpy(model)

    class PendulumEKF(ExtendedKalmanFilter):
        def predict_x(self, u=0):
            self.x = f(self.x)

    ekf = PendulumEKF(dim_x=2, dim_z=1)
    ekf.x, ekf.P = np.array(model.m0), np.array(model.P0)
    ekf.Q, ekf.R = np.array(model.Q), np.array(model.R)
    want = []
    for z in zs:
        ekf.F = jac_f(ekf.x)
        ekf.predict()
        ekf.update(z, lambda x: np.array([[np.cos(x[0]), 0.0]]), h)
        want.append((ekf.x.copy(), ekf.P.copy()))
    with jax.enable_x64():
        means, covs = filters.extended_kalman_filter(model, zs)
    np.testing.assert_allclose(means, [m for m, _ in want], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(covs, [p for _, p in want], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alpha, beta, kappa", [(1.0, 2.0, 0.0), (0.3, 2.0, 1.0)])
def test_ukf_matches_filterpy_on_the_pendulum(alpha, beta, kappa):
    model, _, zs = pendulum_run(seed=1)
    f, _, h = pendulum_numpy(model)
    points = MerweScaledSigmaPoints(2, alpha=alpha, beta=beta, kappa=kappa)
    ukf = UnscentedKalmanFilter(dim_x=2, dim_z=1, dt=model.f.dt, hx=h, fx=f, points=points)
    ukf.x, ukf.P = np.array(model.m0), np.array(model.P0)
    ukf.Q, ukf.R = np.array(model.Q), np.array(model.R)
    want = []
    for z in zs:
        ukf.predict()
        ukf.update(z)
        want.append((ukf.x.copy(), ukf.P.copy()))
    with jax.enable_x64():
        means, covs = filters.unscented_kalman_filter(model, zs, alpha, beta, kappa)
    np.testing.assert_allclose(means, [m for m, _ in want], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(covs, [p for _, p in want], rtol=1e-8, atol=1e-10)


def test_particle_filter_approaches_the_kalman_filter(tracks):
    """On a linear model the particle means converge to the exact posterior means:
    their error is a small fraction of the posterior variance."""
    model, zs = tracks
    means, covs = filters.kalman_filter(model, zs[1])
    particle_means, particle_covs = filters.particle_filter(model, zs[1], jax.random.key(3),
                                                            50_000)
    variance = np.diagonal(np.asarray(covs), axis1=-2, axis2=-1)
    relative = np.mean((np.asarray(particle_means) - means) ** 2 / variance)
    assert relative < 0.01                       # about 1 / effective particles
    np.testing.assert_allclose(np.diagonal(particle_covs, axis1=-2, axis2=-1).mean(0),
                               variance.mean(0), rtol=0.05)


def test_constant_velocity_matrices():
    model = filters.constant_velocity(dims=1, dt=2.0, accel_noise=3.0, obs_std=0.5,
                                      position_std=2.0, velocity_std=0.1)
    np.testing.assert_allclose(model.F, [[1, 2], [0, 1]])
    np.testing.assert_allclose(model.Q, 3.0 * np.array([[8 / 3, 2], [2, 2]]), rtol=1e-6)
    np.testing.assert_allclose(model.R, [[0.25]])
    np.testing.assert_allclose(model.P0, np.diag([4.0, 0.01]), rtol=1e-6)
    two = filters.constant_velocity(dims=2, dt=2.0)
    np.testing.assert_allclose(two.F @ np.array([1.0, 2.0, 3.0, 4.0]), [7, 10, 3, 4])


def test_input_checks_name_the_argument():
    model = filters.constant_velocity(dims=2)
    zs = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match=r"H must have shape \(m, n\) = \(2, 4\)"):
        filters.kalman_filter(model._replace(H=jnp.zeros((2, 3))), zs)
    with pytest.raises(ValueError, match=r"Q must have shape \(4, 4\)"):
        filters.kalman_filter(model._replace(Q=jnp.eye(3)), zs)
    with pytest.raises(ValueError, match=r"zs must have shape \[T, 2\] or \[B, T, 2\]"):
        filters.kalman_filter(model, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="zs must be a floating-point array"):
        filters.kalman_filter(model, jnp.zeros((5, 2), jnp.int32))
    with pytest.raises(TypeError, match="model must be a LinearGaussian"):
        filters.kalman_filter(filters.pendulum(), jnp.zeros((5, 1)))
    bad = filters.NonlinearGaussian(lambda x: x[:1], jnp.sin, jnp.eye(2), jnp.eye(2),
                                    jnp.zeros(2), jnp.eye(2))
    with pytest.raises(ValueError, match=r"f must map a state \[2\] to shape \(2,\)"):
        filters.extended_kalman_filter(bad, zs)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        filters.simulate(model, jax.random.key(0), 0, 2)
    with pytest.raises(ValueError, match="dims must be 1 or 2"):
        filters.constant_velocity(dims=3)
