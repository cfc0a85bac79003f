"""State estimation in state-space models with Gaussian noise: the Kalman filter, its
steady state, the extended (EKF) and unscented (UKF) Kalman filters, a bootstrap
particle filter, and simulation.

A model has a state x_t [n] and an observation z_t [m]:

    x_0 ~ N(m0, P0),   x_t = f(x_{t-1}) + w_t,   z_t = h(x_t) + v_t,   t = 1 .. T,

with w_t ~ N(0, Q) and v_t ~ N(0, R). `LinearGaussian` has f(x) = F x and h(x) = H x;
`NonlinearGaussian` takes any jax functions f and h of one state vector. Every filter
starts from the prior of x_0 and, at each step, predicts x_t, then updates with z_t:
its outputs at step t estimate x_t from z_1 .. z_t (`means [T, n]`, `covs [T, n, n]`).

Every filter scans the steps with `lax.scan` and takes `zs` as [T, m] or a batch
[B, T, m] (vmapped; the outputs gain the leading B axis). They are pure and jit-able.
The small matrix factorisations they need (Cholesky, triangular solves) are written
with jnp array operations rather than LAPACK calls: the matrices are tiny, the code
is differentiable, and a vmapped filter issues no batched LAPACK kernel, which can
hang XLA:CPU (docs/troubleshooting.md).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks


class LinearGaussian(NamedTuple):
    """x_t = F x_{t-1} + w, z_t = H x_t + v, w ~ N(0, Q), v ~ N(0, R); x_0 ~ N(m0, P0).

    F [n, n], H [m, n], Q [n, n], R [m, m], m0 [n], P0 [n, n]. A pytree of arrays.
    """

    F: jax.Array
    H: jax.Array
    Q: jax.Array
    R: jax.Array
    m0: jax.Array
    P0: jax.Array

    def transition(self, x):
        """f(x) = F x for one state x [n]."""
        return self.F @ x

    def observe(self, x):
        """h(x) = H x for one state x [n]."""
        return self.H @ x


@dataclasses.dataclass(frozen=True)
class NonlinearGaussian:
    """x_t = f(x_{t-1}) + w, z_t = h(x_t) + v, w ~ N(0, Q), v ~ N(0, R); x_0 ~ N(m0, P0).

    `f` maps one state [n] to [n] and `h` one state to an observation [m] (jax
    functions, differentiable for the EKF). A pytree: Q, R, m0, P0 are its leaves,
    f and h static (hashable) fields.
    """

    f: Callable
    h: Callable
    Q: jax.Array
    R: jax.Array
    m0: jax.Array
    P0: jax.Array

    def transition(self, x):
        return self.f(x)

    def observe(self, x):
        return self.h(x)


jax.tree_util.register_dataclass(NonlinearGaussian, data_fields=["Q", "R", "m0", "P0"],
                                 meta_fields=["f", "h"])


# -- models -------------------------------------------------------------------------------
def constant_velocity(dims: int = 1, dt: float = 1.0, accel_noise: float = 1.0,
                      obs_std: float = 1.0, position_std: float = 1.0,
                      velocity_std: float = 1.0, dtype=jnp.float32) -> LinearGaussian:
    """A point moving at a nearly constant velocity in `dims` (1 or 2) dimensions, its
    position observed with noise.

    State [positions (dims), velocities (dims)]; observation: the positions plus
    N(0, obs_std^2) noise. The acceleration is white noise of spectral density
    `accel_noise` (the discretised Wiener-velocity model: Q = q [[dt^3/3, dt^2/2],
    [dt^2/2, dt]] per axis). Prior: zero mean, standard deviations `position_std`,
    `velocity_std`.

    >>> model = constant_velocity(dims=2, dt=0.5)
    >>> model.F.shape, model.H.shape, model.H[1].tolist()
    ((4, 4), (2, 4), [0.0, 1.0, 0.0, 0.0])
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    for name, value in (("dt", dt), ("accel_noise", accel_noise), ("obs_std", obs_std),
                        ("position_std", position_std), ("velocity_std", velocity_std)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    eye = jnp.eye(dims, dtype=dtype)
    per_axis = lambda a: jnp.kron(jnp.asarray(a, dtype), eye)
    return LinearGaussian(
        F=per_axis([[1.0, dt], [0.0, 1.0]]),
        H=per_axis([[1.0, 0.0]])[:dims],
        Q=accel_noise * per_axis([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]),
        R=obs_std**2 * eye,
        m0=jnp.zeros(2 * dims, dtype),
        P0=jnp.diag(jnp.asarray([position_std**2] * dims + [velocity_std**2] * dims, dtype)))


@dataclasses.dataclass(frozen=True)
class PendulumStep:
    """One step of a frictionless pendulum, state [angle, angular velocity]: symplectic
    Euler (velocity first), which keeps the energy bounded over long runs."""

    dt: float
    gravity: float

    def __call__(self, x):
        rate = x[1] - self.gravity * jnp.sin(x[0]) * self.dt
        return jnp.stack([x[0] + rate * self.dt, rate])


def horizontal_position(x):
    """sin(angle): the horizontal position of a pendulum of unit length."""
    return jnp.sin(x[:1])


def pendulum(dt: float = 0.05, gravity: float = 9.81, accel_noise: float = 0.1,
             obs_std: float = 0.3, angle_std: float = 1.0, rate_std: float = 0.5,
             dtype=jnp.float32) -> NonlinearGaussian:
    """A pendulum whose horizontal position sin(angle) is observed with noise
    (Sarkka, Bayesian Filtering and Smoothing, 2013, the pendulum example).

    sin hides whether the angle is a or pi - a, and its slope vanishes at +-pi/2, where
    the EKF's linearisation sees no information: the posterior is non-Gaussian and
    the EKF and UKF fall short of the optimum. Angular acceleration noise of spectral
    density `accel_noise`; prior: zero mean, standard deviations `angle_std`, `rate_std`.

    >>> model = pendulum()
    >>> model.observe(jnp.array([jnp.pi / 2, 0.0])).tolist()
    [1.0]
    """
    for name, value in (("dt", dt), ("gravity", gravity), ("accel_noise", accel_noise),
                        ("obs_std", obs_std), ("angle_std", angle_std), ("rate_std", rate_std)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    q = accel_noise * jnp.asarray([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]], dtype)
    return NonlinearGaussian(
        f=PendulumStep(float(dt), float(gravity)), h=horizontal_position, Q=q,
        R=jnp.full((1, 1), obs_std**2, dtype), m0=jnp.zeros(2, dtype),
        P0=jnp.diag(jnp.asarray([angle_std**2, rate_std**2], dtype)))


# -- input checks ---------------------------------------------------------------------------
def sizes(model) -> tuple[int, int]:
    """(n, m): the state and observation sizes of a model, its shapes checked."""
    m0 = _checks.float_array("m0", model.m0, rank=1, layout="[n]")
    n = m0.shape[0]
    _square("P0", model.P0, n, "n = len(m0)")
    _square("Q", model.Q, n, "n = len(m0)")
    R = _checks.float_array("R", model.R, rank=2, layout="[m, m]")
    m = R.shape[0]
    _square("R", R, m, "m = R.shape[0]")
    if isinstance(model, LinearGaussian):
        _square("F", model.F, n, "n = len(m0)")
        H = _checks.float_array("H", model.H, rank=2, layout="[m, n]")
        if H.shape != (m, n):
            raise ValueError(f"H must have shape (m, n) = ({m}, {n}) (m from R, n from m0), "
                             f"got shape {H.shape}")
    else:
        state = jax.ShapeDtypeStruct((n,), m0.dtype)
        for name, fn, want in (("f", model.f, (n,)), ("h", model.h, (m,))):
            got = jax.eval_shape(fn, state).shape
            if got != want:
                raise ValueError(f"{name} must map a state [{n}] to shape {want}, got {got}")
    return n, m


def _square(name, a, size, where):
    a = _checks.float_array(name, a, rank=2, layout="[k, k]")
    if a.shape != (size, size):
        raise ValueError(f"{name} must have shape ({size}, {size}) ({where}), "
                         f"got shape {a.shape}")


def _observations(zs, m):
    zs = _checks.float_array("zs", zs, layout="[T, m] or [B, T, m]")
    if zs.ndim not in (2, 3) or zs.shape[-1] != m:
        raise ValueError(f"zs must have shape [T, {m}] or [B, T, {m}] (m = R.shape[0]), "
                         f"got shape {tuple(zs.shape)}")
    return zs


def _batched(filter_one, zs):
    """filter_one on zs [T, m], vmapped over the leading axis of zs [B, T, m]."""
    return filter_one(zs) if zs.ndim == 2 else jax.vmap(filter_one)(zs)


# -- small dense linear algebra without LAPACK ------------------------------------------
@jax.jit
def cholesky(a):
    """Lower-triangular L with L L^T = a, for a symmetric positive semidefinite a [k, k]:
    a zero (or rounded-negative) pivot gives a zero column, so a singular PSD matrix
    (a noise covariance with a noiseless component) has a factor too."""
    k = a.shape[-1]
    columns = []
    for j in range(k):
        lj = jnp.stack([c[j] for c in columns], -1) if columns else jnp.zeros((0,), a.dtype)
        lower = jnp.stack(columns, -1) if columns else jnp.zeros((k, 0), a.dtype)
        residual = a[:, j] - lower @ lj
        pivot = jnp.sqrt(jnp.maximum(residual[j], 0.0))
        safe = jnp.where(pivot > 0, pivot, 1.0)
        column = jnp.where((jnp.arange(k) >= j) & (pivot > 0), residual / safe, 0.0)
        columns.append(column.at[j].set(pivot))
    return jnp.stack(columns, -1)


def _forward_substitution(lower, b):
    """X with lower @ X = b, for lower-triangular lower [k, k] and b [k, r]."""
    rows = []
    for i in range(lower.shape[0]):
        done = jnp.stack(rows) if rows else jnp.zeros((0, b.shape[1]), b.dtype)
        rows.append((b[i] - lower[i, :i] @ done) / lower[i, i])
    return jnp.stack(rows)


@jax.jit
def solve_spd(a, b):
    """X with a X = b, for symmetric positive definite a [k, k] and b [k, r]."""
    lower = cholesky(a)
    y = _forward_substitution(lower, b)
    return _forward_substitution(lower[::-1, ::-1].T, y[::-1])[::-1]   # L^T x = y


def _symmetric(a):
    return (a + a.T) / 2


# -- Kalman filters ---------------------------------------------------------------------------
def _correct(mean, cov, z, z_pred, s, cross):
    """Condition N(mean, cov) on the observation z, given the predicted observation's
    mean z_pred and covariance s, and the state-observation cross-covariance [n, m]."""
    gain = solve_spd(s, cross.T).T
    return mean + gain @ (z - z_pred), _symmetric(cov - gain @ s @ gain.T)


def kalman_predict(model: LinearGaussian, mean, cov):
    """One prediction step of the Kalman filter: N(mean [n], cov [n, n]) of x_{t-1}
    -> N(F mean, F cov F^T + Q) of x_t."""
    return model.F @ mean, model.F @ cov @ model.F.T + model.Q


def innovation_covariance(model: LinearGaussian, cov):
    """S = H cov H^T + R [m, m]: the covariance of the predicted observation."""
    return model.H @ cov @ model.H.T + model.R


def kalman_update(model: LinearGaussian, mean, cov, z, observed=True):
    """One update step of the Kalman filter: N(mean, cov) conditioned on z [m]. Where
    `observed` (a bool scalar, possibly traced) is False, no observation came (a
    detector found nothing): mean and cov pass through unchanged."""
    updated = _correct(mean, cov, z, model.H @ mean, innovation_covariance(model, cov),
                       cov @ model.H.T)
    return jax.tree_util.tree_map(lambda new, old: jnp.where(observed, new, old),
                                  updated, (mean, cov))


def _linear_step(F, H, Q, R):
    model = LinearGaussian(F, H, Q, R, None, None)

    def step(state, z):
        mean, cov = kalman_update(model, *kalman_predict(model, *state), z)
        return (mean, cov), (mean, cov)

    return step


def _run(step, model, zs):
    """Scan `step((mean, cov), z)` from the prior over zs ([T, m] or [B, T, m])."""
    dtype = jnp.result_type(model.m0, model.P0, zs)
    prior = (jnp.asarray(model.m0, dtype), jnp.asarray(model.P0, dtype))
    return _batched(lambda z: lax.scan(step, prior, z.astype(dtype))[1], zs)


def kalman_filter(model: LinearGaussian, zs):
    """The Kalman filter: the exact posterior N(means[t], covs[t]) of x_t given z_1..z_t.

    zs [T, m] -> (means [T, n], covs [T, n, n]); a batch zs [B, T, m] gives
    [B, T, n] and [B, T, n, n].
    """
    _, m = _linear_sizes(model)
    return _kalman_filter(model, _observations(zs, m))


def _linear_sizes(model):
    if not isinstance(model, LinearGaussian):
        raise TypeError(f"model must be a LinearGaussian, got {type(model).__name__} "
                        "(use extended_kalman_filter or unscented_kalman_filter)")
    return sizes(model)


@jax.jit
def _kalman_filter(model, zs):
    return _run(_linear_step(model.F, model.H, model.Q, model.R), model, zs)


class SteadyState(NamedTuple):
    """The Kalman filter's limit: the predicted covariance (the DARE's solution), the
    filtered covariance and the gain [n, m]."""
    predicted: jax.Array
    filtered: jax.Array
    gain: jax.Array


def steady_state(model: LinearGaussian, max_iter: int = 100_000,
                 rtol: float | None = None) -> SteadyState:
    """The covariance the Kalman filter converges to, by running its recursion until
    the filtered covariance changes by at most rtol (default 16 eps of the dtype)
    relative to its largest entry, or for max_iter steps.

    For a detectable and stabilisable model the predicted covariance P solves the
    discrete algebraic Riccati equation
    P = F P F^T - F P H^T (H P H^T + R)^-1 H P F^T + Q.
    """
    _linear_sizes(model)
    rtol = 16 * float(jnp.finfo(jnp.result_type(model.P0)).eps) if rtol is None else rtol
    return _steady_state(model, max_iter, rtol)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _steady_state(model, max_iter, rtol):
    n, m = model.H.shape[1], model.H.shape[0]
    dtype = jnp.result_type(model.P0)
    step = _linear_step(model.F, model.H, model.Q, model.R)
    zero = jnp.zeros(m, dtype)

    def advance(state):
        i, cov, _ = state
        (_, new), _ = step((jnp.zeros(n, dtype), cov), zero)
        return i + 1, new, jnp.max(jnp.abs(new - cov)) > rtol * jnp.max(jnp.abs(new))

    _, filtered, _ = lax.while_loop(lambda s: (s[0] < max_iter) & s[2], advance,
                                    (0, jnp.asarray(model.P0, dtype), True))
    predicted = model.F @ filtered @ model.F.T + model.Q
    s = model.H @ predicted @ model.H.T + model.R
    gain = solve_spd(s, model.H @ predicted).T
    return SteadyState(predicted, filtered, gain)


def extended_kalman_filter(model, zs):
    """The EKF: a Kalman filter on the first-order Taylor expansions of f and h about
    the current estimate (Jacobians by jax.jacfwd).

    zs [T, m] or [B, T, m] -> (means, covs) shaped as for `kalman_filter`. Exact on a
    LinearGaussian.
    """
    _, m = sizes(model)
    return _extended_kalman_filter(model, _observations(zs, m))


@jax.jit
def _extended_kalman_filter(model, zs):
    def step(state, z):
        mean, cov = state
        jac_f = jax.jacfwd(model.transition)(mean)
        mean, cov = model.transition(mean), jac_f @ cov @ jac_f.T + model.Q
        jac_h = jax.jacfwd(model.observe)(mean)
        mean, cov = _correct(mean, cov, z, model.observe(mean),
                             jac_h @ cov @ jac_h.T + model.R, cov @ jac_h.T)
        return (mean, cov), (mean, cov)

    return _run(step, model, zs)


def _sigma_points(mean, cov, spread):
    """The 2n + 1 sigma points [2n+1, n]: the mean, then mean +- spread L[:, i]."""
    scaled = spread * cholesky(cov)
    return jnp.concatenate([mean[None], mean + scaled.T, mean - scaled.T])


def _unscented_weights(n, alpha, beta, kappa, dtype):
    """The mean and covariance weights of the scaled unscented transform, and the spread."""
    c = jnp.asarray(alpha**2 * (n + kappa), dtype)
    rest = jnp.full(2 * n, 1 / (2 * c), dtype)
    mean_w = jnp.concatenate([jnp.stack([1 - n / c]), rest])
    cov_w = mean_w.at[0].add(1 - alpha**2 + beta)
    return mean_w, cov_w, jnp.sqrt(c)


def unscented_kalman_filter(model, zs, alpha: float = 1.0, beta: float = 2.0,
                            kappa: float = 0.0):
    """The UKF (Julier and Uhlmann 1997; the scaled sigma points of van der Merwe 2004):
    2n + 1 sigma points of the current estimate, passed through f, give the predicted
    moments (plus Q); new sigma points of the prediction, passed through h, give the
    observation's moments (plus R) and the cross-covariance of the update.

    zs [T, m] or [B, T, m] -> (means, covs) shaped as for `kalman_filter`. Exact on a
    LinearGaussian for any alpha, beta, kappa with alpha^2 (n + kappa) > 0.
    """
    n, m = sizes(model)
    if not alpha**2 * (n + kappa) > 0:
        raise ValueError(f"alpha^2 (n + kappa) must be positive, got alpha={alpha}, "
                         f"kappa={kappa}, n={n}")
    return _unscented_kalman_filter(model, _observations(zs, m), alpha, beta, kappa)


@jax.jit
def _unscented_kalman_filter(model, zs, alpha, beta, kappa):
    n = model.m0.shape[0]
    dtype = jnp.result_type(model.m0, model.P0, zs)
    mean_w, cov_w, spread = _unscented_weights(n, alpha, beta, kappa, dtype)

    def moments(fn, mean, cov):
        """The sigma points, their images under fn, the images' weighted mean and covariance."""
        points = _sigma_points(mean, cov, spread)
        images = jax.vmap(fn)(points)
        centre = mean_w @ images
        return points, images, centre, (cov_w[:, None] * (images - centre)).T @ (images - centre)

    def step(state, z):
        _, _, mean, cov = moments(model.transition, *state)
        cov = cov + model.Q
        points, images, z_pred, s = moments(model.observe, mean, cov)
        cross = (cov_w[:, None] * (points - mean)).T @ (images - z_pred)
        mean, cov = _correct(mean, cov, z, z_pred, s + model.R, cross)
        return (mean, cov), (mean, cov)

    return _run(step, model, zs)


def particle_filter(model, zs, key, particles: int = 1000):
    """The bootstrap particle filter (Gordon et al. 1993) with systematic resampling
    at every step: as particles grow, its means approach the exact posterior means of
    any model, linear or not.

    zs [T, m] or [B, T, m] -> (means, covs) shaped as for `kalman_filter` (the
    weighted particle mean and covariance of x_t given z_1..z_t); `key` draws the
    particles (one stream per sequence of a batch).
    """
    _, m = sizes(model)
    return _particle_filter(model, _observations(zs, m), key,
                            _checks.positive_int("particles", particles))


@functools.partial(jax.jit, static_argnums=3)
def _particle_filter(model, zs, key, particles):
    n = model.m0.shape[0]
    dtype = jnp.result_type(model.m0, model.P0, zs)
    noise_factor, prior_factor = cholesky(model.Q), cholesky(model.P0)
    obs_factor = cholesky(model.R)

    def filter_one(key, zs):
        k_prior, k_steps = jax.random.split(key)
        eps = jax.random.normal(k_prior, (particles, n), dtype)
        cloud = model.m0 + eps @ prior_factor.T

        def step(cloud, inputs):
            z, k = inputs
            k_noise, k_pick = jax.random.split(k)
            noise = jax.random.normal(k_noise, (particles, n), dtype) @ noise_factor.T
            cloud = jax.vmap(model.transition)(cloud) + noise
            residual = z - jax.vmap(model.observe)(cloud)                  # [P, m]
            white = _forward_substitution(obs_factor, residual.T)           # [m, P]
            log_w = -0.5 * jnp.sum(white**2, axis=0)
            w = jax.nn.softmax(log_w)
            mean = w @ cloud
            centred = cloud - mean
            cov = (w[:, None] * centred).T @ centred
            positions = (jnp.arange(particles) + jax.random.uniform(k_pick, (), dtype))
            picks = jnp.searchsorted(jnp.cumsum(w), positions / particles)
            return cloud[jnp.minimum(picks, particles - 1)], (mean, cov)

        steps = jax.random.split(k_steps, zs.shape[0])
        return lax.scan(step, cloud, (zs.astype(dtype), steps))[1]

    if zs.ndim == 2:
        return filter_one(key, zs)
    return jax.vmap(filter_one)(jax.random.split(key, zs.shape[0]), zs)


# -- simulation ---------------------------------------------------------------------------
def simulate_gaussian(model, key, steps: int, batch: int):
    """`batch` independent sequences of the model: states xs [batch, steps, n] (x_1 ..
    x_T) and observations zs [batch, steps, m]; x_0 is drawn from the prior and not
    returned. Works for LinearGaussian and NonlinearGaussian alike."""
    sizes(model)
    return _simulate(model, key, _checks.positive_int("steps", steps),
                     _checks.positive_int("batch", batch))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _simulate(model, key, steps, batch):
    n, m = model.m0.shape[0], model.R.shape[0]
    dtype = jnp.result_type(model.m0, model.P0)
    factors = cholesky(model.P0), cholesky(model.Q), cholesky(model.R)

    def one(key):
        k0, kw, kv = jax.random.split(key, 3)
        x0 = model.m0 + factors[0] @ jax.random.normal(k0, (n,), dtype)
        noise = (jax.random.normal(kw, (steps, n), dtype) @ factors[1].T,
                 jax.random.normal(kv, (steps, m), dtype) @ factors[2].T)

        def step(x, noise_t):
            w, v = noise_t
            x = model.transition(x) + w
            return x, (x, model.observe(x) + v)

        return lax.scan(step, x0, noise)[1]

    return jax.vmap(one)(jax.random.split(key, batch))
