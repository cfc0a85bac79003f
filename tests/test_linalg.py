"""The LAPACK-free orthogonal initialiser and the CPU-safe QR / spectral norm.

The initialiser must be Haar-distributed like the QR-based draw it replaces; the
probe's QR and spectral norm must equal jax.numpy's, derivatives included.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads

from rnnjax import _linalg, initializers


# -- orthogonal initialiser -----------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (5, 5), (33, 33), (64, 64), (100, 37),
                                   (37, 100), (7, 1)])
def test_orthogonal_is_orthonormal(shape):
    q = np.asarray(initializers.orthogonal(jax.random.key(1), shape), np.float64)
    assert q.shape == shape
    gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=2e-6)


def test_orthogonal_float64_to_machine_precision():
    with jax.enable_x64():
        q = np.asarray(initializers.orthogonal(jax.random.key(2), (70, 70), jnp.float64))
    assert q.dtype == np.float64
    np.testing.assert_allclose(q.T @ q, np.eye(70), atol=1e-13)


def test_orthogonal_block_size_does_not_change_the_draw():
    # the compact WY form is an exact regrouping of the same reflections
    key = jax.random.key(3)
    ref = initializers.orthogonal(key, (45, 45), block=1)
    for block in (4, 32, 45, 64):
        np.testing.assert_allclose(initializers.orthogonal(key, (45, 45), block=block), ref,
                                   atol=2e-6)


def _numpy_haar(rng, n, count):
    """The QR-based reference draw: Q of a Gaussian matrix with diag(R) made positive."""
    q, r = np.linalg.qr(rng.standard_normal((count, n, n)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def test_orthogonal_is_haar_distributed():
    n, count = 4, 20000
    keys = jax.random.split(jax.random.key(0), count)
    qs = np.asarray(jax.jit(jax.vmap(lambda k: initializers.orthogonal(k, (n, n))))(keys),
                    np.float64)
    # Haar on O(n): both components (det +1 and -1) equally likely, E tr Q = 0,
    # E (tr Q)^2 = 1 and E vec(Q) vec(Q)^T = I / n; 5 standard errors of slack.
    se = 1 / np.sqrt(count)
    assert abs(np.mean(np.linalg.det(qs) > 0) - 0.5) < 5 * 0.5 * se
    trace = np.trace(qs, axis1=1, axis2=2)
    assert abs(trace.mean()) < 5 * se
    assert abs(np.mean(trace**2) - 1) < 5 * np.sqrt(2) * se
    flat = qs.reshape(count, -1)
    np.testing.assert_allclose(flat.T @ flat / count, np.eye(n * n) / n, atol=5 * se / 2)
    # each entry: (Q_ij + 1) / 2 ~ Beta((n-1)/2, (n-1)/2)
    entries = scipy.stats.beta((n - 1) / 2, (n - 1) / 2)
    p_values = [scipy.stats.kstest((qs[:, i, j] + 1) / 2, entries.cdf).pvalue
                for i in range(n) for j in range(n)]
    assert min(p_values) > 1e-3 / (n * n)
    # eigenvalue angles against numpy's QR-based draw (two-sample KS)
    reference = _numpy_haar(np.random.default_rng(0), n, count)
    angles = lambda q: np.abs(np.angle(np.linalg.eigvals(q))).ravel()
    assert scipy.stats.ks_2samp(angles(qs), angles(reference)).pvalue > 1e-3


def test_orthogonal_columns_of_a_tall_draw_are_uniform():
    # the first column of a Haar draw is uniform on the sphere: Q_11^2 ~ Beta(1/2, (n-1)/2)
    n, count = 9, 5000
    keys = jax.random.split(jax.random.key(4), count)
    qs = np.asarray(jax.vmap(lambda k: initializers.orthogonal(k, (n, 3)))(keys))
    for col in range(3):
        result = scipy.stats.kstest(qs[:, 0, col] ** 2, scipy.stats.beta(0.5, (n - 1) / 2).cdf)
        assert result.pvalue > 1e-3


def test_recurrent_gate_blocks_are_independent_draws():
    w = initializers.recurrent("orthogonal", jax.random.key(5), 6, 4, 1.0, jnp.float32)
    keys = jax.random.split(jax.random.key(5), 4)
    for g, k in enumerate(keys):
        np.testing.assert_allclose(w[:, 6 * g:6 * (g + 1)], initializers.orthogonal(k, (6, 6)),
                                   atol=1e-6)  # batched vs single matmuls: rounding only


# -- CPU-safe QR and spectral norm ----------------------------------------------
def _inputs(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("shape", [(5, 5), (7, 3), (2, 3, 6, 4)])
def test_qr_equals_jax_numpy(shape):
    a = _inputs(shape)
    q, r = jax.jit(_linalg.qr)(a)
    q_ref, r_ref = jnp.linalg.qr(a)
    np.testing.assert_allclose(q, q_ref, atol=1e-6)
    np.testing.assert_allclose(r, r_ref, atol=1e-6)
    if a.ndim > 2:  # the looped batch under vmap
        q_v, r_v = jax.jit(jax.vmap(_linalg.qr))(a)
        np.testing.assert_allclose(q_v, q_ref, atol=1e-6)
        np.testing.assert_allclose(r_v, r_ref, atol=1e-6)


def test_qr_rejects_wide_input():
    with pytest.raises(ValueError, match=r"m >= n.*\(3, 5\)"):
        _linalg.qr(jnp.ones((3, 5)))


def test_qr_derivatives_equal_jax_numpy():
    with jax.enable_x64():
        a = _inputs((3, 6, 4)).astype(jnp.float64)
        t1, _t2 = _inputs((2, 3, 6, 4), seed=1).astype(jnp.float64)

        def loss(qr_fn):
            def f(x):
                q, r = qr_fn(x)
                return jnp.sum(jnp.sin(q)) + jnp.sum(jnp.log(jnp.abs(
                    jnp.diagonal(r, axis1=-2, axis2=-1))))
            return f

        ours, ref = loss(_linalg.qr), loss(jnp.linalg.qr)
        np.testing.assert_allclose(jax.grad(ours)(a), jax.grad(ref)(a), atol=1e-12)
        np.testing.assert_allclose(jax.vmap(jax.grad(ours))(a), jax.vmap(jax.grad(ref))(a),
                                   atol=1e-12)

        def second(f):  # reverse over forward: d/da <grad f(a), t1>
            return jax.grad(lambda x: jax.jvp(f, (x,), (t1,))[1])(a)

        np.testing.assert_allclose(second(ours), second(ref), atol=1e-10)
        check_grads(_linalg.qr, (a[0],), order=1, modes=("fwd", "rev"))


def test_spectral_norm_and_its_gradient():
    with jax.enable_x64():
        a = _inputs((2, 3, 5, 4)).astype(jnp.float64)
        np.testing.assert_allclose(jax.jit(_linalg.spectral_norm)(a),
                                   np.linalg.norm(np.asarray(a), ord=2, axis=(-2, -1)),
                                   rtol=1e-12)
        grad = jax.grad(lambda x: jnp.sum(_linalg.spectral_norm(x) ** 2))(a)
        ref = jax.grad(lambda x: jnp.sum(jnp.linalg.norm(x, ord=2, axis=(-2, -1)) ** 2))(a)
        np.testing.assert_allclose(grad, ref, atol=1e-12)
        check_grads(_linalg.spectral_norm, (a[0],), order=1, modes=("fwd", "rev"))


def test_cpu_lowering_has_only_unbatched_lapack_calls():
    # under vmap the loop keeps every LAPACK kernel on one matrix: none waits on the pool
    a = _inputs((4, 3, 6, 6))
    text = jax.jit(jax.vmap(lambda x: (_linalg.qr(x), _linalg.spectral_norm(x)))).lower(
        a).as_text()
    calls = [line for line in text.splitlines() if "custom_call @lapack" in line]
    assert calls, "expected LAPACK custom calls on the CPU"
    for line in calls:
        operand = line.rsplit(": (", 1)[1]
        assert operand.startswith("tensor<6x6x"), line
