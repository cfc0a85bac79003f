"""Weight initialisers: Glorot for inputs, (scaled) orthogonal or identity for recurrence.

Each initialiser is `init(key, shape, dtype) -> array`. Recurrent matrices of gated
cells are `[H, G*H]` (G gates side by side); `recurrent` initialises each `[H, H]`
gate block on its own, so every block is orthogonal (or the identity), as in the
literature.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple, jnp.dtype], jax.Array]


def glorot_uniform(key, shape, dtype=jnp.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = jnp.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def orthogonal(key, shape, dtype=jnp.float32, scale: float = 1.0):
    """A random orthogonal matrix (Haar measure) times `scale` (Saxe et al., 2014)."""
    n, m = shape
    a = jax.random.normal(key, (max(n, m), min(n, m)), jnp.float32)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))  # makes the distribution uniform
    if n < m:
        q = q.T
    return (scale * q).astype(dtype)


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
        blocks = [scale * fn(k, (hidden, hidden), dtype) for k in keys]
    else:
        blocks = [fn(k, (hidden, hidden), dtype, scale=scale) for k in keys]
    return jnp.concatenate(blocks, axis=1)
