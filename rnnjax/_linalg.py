"""QR and spectral norms that cannot hang XLA:CPU, batched or not.

jaxlib 0.10 splits a batched LAPACK kernel (QR, SVD, eigh, LU, triangular solve,
...) over the CPU's intra-op thread pool and blocks the calling worker until the
pieces are done. Two such kernels in flight at once (two in one program, or
programs run from two Python threads) can block every worker while their pieces
wait for a free one: the program hangs for good (docs/troubleshooting.md). An
unbatched kernel runs inline and never waits on the pool.

So on the CPU these functions factorise one matrix at a time: a loop of unbatched
kernels, also under `vmap` (`jax.custom_batching.sequential_vmap`). Other backends
get the batched kernel. Both are differentiable (forward and reverse mode); their
tangents are matmuls with factors computed in the primal pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _one_matrix_at_a_time_on_cpu(fn):
    """`fn` on [..., m, n]: looped over the batch on the CPU, batched elsewhere."""
    single = jax.custom_batching.sequential_vmap(fn)

    def apply(a):
        looped = single
        for _ in range(a.ndim - 2):
            looped = jax.vmap(looped)  # each vmap becomes a sequential loop
        return lax.platform_dependent(a, cpu=looped, default=fn)

    return apply


_qr = _one_matrix_at_a_time_on_cpu(lambda a: tuple(jnp.linalg.qr(a)))
_svd = _one_matrix_at_a_time_on_cpu(lambda a: tuple(jnp.linalg.svd(a, full_matrices=False)))
_inv_upper_kernel = _one_matrix_at_a_time_on_cpu(
    lambda r: jax.scipy.linalg.solve_triangular(
        r, jnp.broadcast_to(jnp.eye(r.shape[-1], dtype=r.dtype), r.shape), lower=False))


@jax.custom_jvp
def _inv_upper(r):
    """The inverse of upper-triangular [..., n, n]."""
    return _inv_upper_kernel(r)


@_inv_upper.defjvp
def _inv_upper_jvp(primals, tangents):
    (r,), (dr,) = primals, tangents
    r_inv = _inv_upper(r)
    return r_inv, -r_inv @ jnp.triu(dr) @ r_inv


@jax.custom_jvp
def qr(a):
    """Reduced QR of real [..., m, n] with m >= n: (q [..., m, n], r [..., n, n])."""
    if a.ndim < 2 or a.shape[-2] < a.shape[-1]:
        raise ValueError(f"qr needs a [..., m, n] array with m >= n, got shape {a.shape}")
    return _qr(a)


@qr.defjvp
def _qr_jvp(primals, tangents):
    # The standard rule (as jax's own): with C = Q^T dA R^-1 and S = tril(C, -1),
    # dQ = Q (S - S^T - C) + dA R^-1 and dR = (C - S + S^T) R.
    (a,), (da,) = primals, tangents
    q, r = qr(a)
    da_rinv = da @ _inv_upper(r)
    c = jnp.swapaxes(q, -1, -2) @ da_rinv
    lower = jnp.tril(c, -1)
    skew = lower - jnp.swapaxes(lower, -1, -2)
    return (q, r), (q @ (skew - c) + da_rinv, (c - skew) @ r)


def orthonormalize(a):
    """Gram-Schmidt, applied twice per column, of real [m, n] (m >= n): (q [m, n] with
    orthonormal columns spanning a's leading ones, log |diag r| [n] of a = q r).

    Matmuls only (no LAPACK kernel), so it batches under vmap on every backend and
    differentiates by plain autodiff; twice is enough for orthogonality to rounding
    (Giraud et al. 2005) for the well-conditioned frames of the QR method.
    """
    n, tiny = a.shape[1], jnp.finfo(a.dtype).tiny

    def column(j, state):
        q, log_r = state
        v = lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        v = v - q @ (q.T @ v)          # columns j.. of q are still zero
        v = v - q @ (q.T @ v)
        norm = jnp.maximum(jnp.sqrt(jnp.sum(v * v)), tiny)  # a column of zeros: no NaN
        q = lax.dynamic_update_index_in_dim(q, v / norm, j, axis=1)
        return q, log_r.at[j].set(jnp.log(norm))

    start = (jnp.zeros_like(a), jnp.zeros(n, a.dtype))
    return lax.fori_loop(0, n, column, start)


def inverse(a):
    """The inverse of real square [..., n, n], as R^-1 Q^T of its QR: differentiable,
    and on the CPU one unbatched kernel at a time (no LU solve that can hang)."""
    if a.ndim < 2 or a.shape[-2] != a.shape[-1]:
        raise ValueError(f"inverse needs a square [..., n, n] array, got shape {a.shape}")
    q, r = qr(a)
    return _inv_upper(r) @ jnp.swapaxes(q, -1, -2)


@jax.custom_jvp
def spectral_norm(a):
    """The largest singular value of real [..., m, n]: [...]."""
    return _svd(a)[1][..., 0]


@spectral_norm.defjvp
def _spectral_norm_jvp(primals, tangents):
    # d sigma_1 = u_1^T dA v_1 (a simple top singular value)
    (a,), (da,) = primals, tangents
    u, s, vt = _svd(a)
    u1, v1 = u[..., :, 0], vt[..., 0, :]
    return s[..., 0], jnp.einsum("...i,...ij,...j->...", u1, da, v1)


def spectral_radius(a, squarings: int = 40):
    """The largest |eigenvalue| of real square [..., n, n], by Gelfand's formula.

    rho(A) = lim ||A^k||^(1/k): A is squared `squarings` times (k = 2^squarings),
    renormalised after each squaring with its log-norm kept, so that the estimate
    log rho = log ||A^k|| / k converges at rate log(C) / k, exact to rounding for
    k = 2^40. Matmuls only: no LAPACK kernel (see docs/troubleshooting.md), and the
    same on every backend. A nilpotent matrix gives 0.
    """
    a = jnp.asarray(a)
    tiny = jnp.finfo(a.dtype).tiny

    def square(state, _):
        b, log_scale = state             # A^(2^m) = exp(log_scale) * b, ||b|| = 1
        b = b @ b
        norm = jnp.sqrt(jnp.sum(b * b, axis=(-2, -1), keepdims=True))
        b = b / jnp.maximum(norm, tiny)
        return (b, 2.0 * log_scale + jnp.log(norm[..., 0, 0])), None

    norm = jnp.sqrt(jnp.sum(a * a, axis=(-2, -1), keepdims=True))
    start = (a / jnp.maximum(norm, tiny), jnp.log(norm[..., 0, 0]))
    (_, log_scale), _ = jax.lax.scan(square, start, None, length=squarings)
    return jnp.exp(log_scale / 2.0 ** squarings)
