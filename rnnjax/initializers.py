"""Weight initialisers: Glorot for inputs, (scaled) orthogonal or identity for recurrence.

Each initialiser is `init(key, shape, dtype) -> array`. Recurrent matrices of gated
cells are `[H, G*H]` (G gates side by side); `recurrent` initialises each `[H, H]`
gate block on its own, so every block is orthogonal (or the identity), as in the
literature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

Initializer = Callable[[jax.Array, tuple, jnp.dtype], jax.Array]


def glorot_uniform(key, shape, dtype=jnp.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = jnp.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


@functools.partial(jax.jit, static_argnames=("shape", "dtype", "block"))
def orthogonal(key, shape, dtype=jnp.float32, scale: float = 1.0, block: int = 32):
    """A random orthogonal matrix (Haar measure) times `scale` (Saxe et al., 2014).

    For `shape = (n, m)` with n != m the rows (n < m) or columns (n > m) are
    orthonormal, uniform on that Stiefel manifold.

    Drawn as a product of Householder reflections of independent Gaussian vectors
    (Stewart, 1980), the distribution that QR of a Gaussian matrix with the signs
    of diag(R) fixed gives, but from matmuls alone: no LAPACK kernel, so it is safe
    under `vmap` on XLA:CPU (see docs/troubleshooting.md) and gives the same numbers
    on every backend. Reflector k maps e_k to a uniform unit vector in the last
    n-k+1 coordinates; `block` reflectors at a time are applied as one
    `I - U T U^T` (compact WY form), so the cost is about 4 n^2 min(n, m) flops of
    matmul. Computed in float32, or float64 when `dtype` is float64.
    """
    n, m = shape
    rows, cols = max(n, m), min(n, m)
    work = jnp.promote_types(dtype, jnp.float32)
    # Column k holds the Gaussian vector v_k in rows k..rows-1 (zeros above).
    v = jnp.tril(jax.random.normal(key, (rows, cols), work))
    v = v / jnp.linalg.norm(v, axis=0)
    head = jnp.diagonal(v)  # the first entry of each unit vector
    sign = jnp.where(head >= 0, 1.0, -1.0).astype(work)
    # H_k = I - beta_k u_k u_k^T with u_k = e_k + sign_k v_k sends e_k to -sign_k v_k,
    # and D = diag(-sign) turns that into +v_k: column k of Q = H_1 ... H_cols D is
    # H_1 ... H_{k-1} v_k, a uniform unit vector orthogonal to the columns before it.
    u = v * sign + jnp.eye(rows, cols, dtype=work)
    beta = 1.0 / (1.0 + jnp.abs(head))  # 2 / (u_k . u_k)
    block = min(block, cols)
    panels = -(-cols // block)
    pad = panels * block - cols  # padded reflectors have beta = 0: the identity
    u = jnp.pad(u, ((0, 0), (0, pad))).reshape(rows, panels, block).transpose(1, 0, 2)
    beta = jnp.pad(beta, (0, pad)).reshape(panels, block)
    t = jax.vmap(_wy_factor)(u, beta)

    def apply_panel(q, panel):  # q <- (I - U T U^T) q
        u_p, t_p = panel
        return q - u_p @ (t_p @ (u_p.T @ q)), None

    q, _ = lax.scan(apply_panel, jnp.eye(rows, cols, dtype=work) * -sign, (u, t),
                    reverse=True)
    if n < m:
        q = q.T
    return (scale * q).astype(dtype)


def _wy_factor(u, beta):
    """The upper-triangular T with H_1 ... H_b = I - U T U^T, H_k = I - beta_k u_k u_k^T.

    Column k of T is (-beta_k T[:k, :k] U[:, :k]^T u_k, beta_k) (Schreiber and Van
    Loan, 1989).
    """
    size = beta.shape[0]
    gram = u.T @ u
    index = jnp.arange(size)

    def add_column(k, t):
        column = -beta[k] * (t @ jnp.where(index < k, gram[:, k], 0.0))
        return t.at[:, k].set(jnp.where(index == k, beta[k], column))

    return lax.fori_loop(0, size, add_column, jnp.zeros((size, size), u.dtype))


def identity(key, shape, dtype=jnp.float32, scale: float = 1.0):
    """`scale` times the identity (IRNN, Le et al., 2015). The key is unused."""
    del key
    return scale * jnp.eye(*shape, dtype=dtype)


RECURRENT_INITS = {"orthogonal": orthogonal, "identity": identity, "glorot": glorot_uniform}


def recurrent(kind, key, hidden: int, gates: int, scale: float, dtype):
    """`[H, gates*H]`: each gate block drawn on its own from `kind` and scaled.

    `kind` is "orthogonal", "identity", "glorot" or a callable `(key, shape, dtype)`.
    """
    if callable(kind):
        return kind(key, (hidden, gates * hidden), dtype)
    if kind not in RECURRENT_INITS:
        raise ValueError(f"recurrent_init must be one of {sorted(RECURRENT_INITS)} or a "
                         f"callable, got {kind!r}")
    keys = jax.random.split(key, gates)
    fn = RECURRENT_INITS[kind]
    if kind == "glorot":
        draw = lambda k: scale * fn(k, (hidden, hidden), dtype)
    else:
        draw = lambda k: fn(k, (hidden, hidden), dtype, scale=scale)
    blocks = jax.vmap(draw)(keys)  # [gates, H, H], one batched draw
    return blocks.transpose(1, 0, 2).reshape(hidden, gates * hidden)


def chrono_bias(key, hidden: int, max_delay: float, dtype=jnp.float32):
    """log(U(1, max_delay - 1)) [hidden]: the chrono initialisation of a gate bias
    (Tallec and Ollivier, 2018).

    A keep gate (an LSTM's forget gate, a GRU's update gate z) with bias b holds its
    memory for about 1 + e^b steps at initialisation, so these biases spread the
    units' time constants uniformly over 2 .. `max_delay`, the longest dependency
    the task is expected to need, instead of giving every unit the same short one.
    """
    if not max_delay > 2:
        raise ValueError(f"chrono max_delay must be > 2 (steps), got {max_delay}")
    return jnp.log(jax.random.uniform(key, (hidden,), dtype, 1.0, max_delay - 1.0))
