"""Rematerialisation for the loops with a hand-written backward pass: the forward
keeps the carry only every K ~ sqrt(T) steps, and the backward re-runs each chunk
of K steps from its saved carry (memory O(T/K + K) steps, one extra forward pass).
The generic scan rematerialises each step instead (`jax.checkpoint`, in `scan`)."""

from __future__ import annotations

import math

import jax.numpy as jnp


def chunk_length(steps):
    """About sqrt(T), a divisor of T where one lies within a factor 2 of sqrt(T) (the
    chunks then need no padding steps, no copy of xs)."""
    root = math.isqrt(max(steps - 1, 0)) + 1
    divisors = [d for d in range(max(root // 2, 1), 2 * root + 1) if steps % d == 0]
    return min(divisors, key=lambda d: abs(d - root)) if divisors else root


def chunked(xs, chunk, fill=False):
    """[T, ...] -> [ceil(T / chunk), chunk, ...], padded at the end with `fill`
    (None stays None)."""
    if xs is None:
        return None
    steps = xs.shape[0]
    n = -(-steps // chunk)
    xs = jnp.pad(xs, ((0, n * chunk - steps),) + ((0, 0),) * (xs.ndim - 1),
                 constant_values=fill)
    return xs.reshape((n, chunk) + xs.shape[1:])


def unchunked(a, steps):
    """[n, chunk, ...] -> [steps, ...] (drops the padding steps)."""
    return a.reshape((-1,) + a.shape[2:])[:steps]
