"""The adding problem (Hochreiter and Schmidhuber, 1997; Le et al., 2015)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: MSE of always predicting 1, the mean of the target (the variance of a sum of two
#: independent U(0, 1)): a model that does not use its inputs does no better.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_batch(key, batch: int, steps: int):
    """Inputs [B, T, 2] and targets [B].

    Channel 0 holds values drawn from U(0, 1); channel 1 marks exactly two steps,
    one in each half of the sequence, with 1. The target is the sum of the two
    marked values, so the model must carry the first one across up to T steps.

    >>> import jax
    >>> xs, y = adding_batch(jax.random.key(0), 4, 10)
    >>> xs.shape, y.shape, xs[..., 1].sum(axis=1).tolist()
    ((4, 10, 2), (4,), [2.0, 2.0, 2.0, 2.0])
    """
    k_v, k_a, k_b = jax.random.split(key, 3)
    values = jax.random.uniform(k_v, (batch, steps))
    half = steps // 2
    first = jax.random.randint(k_a, (batch,), 0, half)
    second = jax.random.randint(k_b, (batch,), half, steps)
    marks = (jax.nn.one_hot(first, steps) + jax.nn.one_hot(second, steps))
    target = jnp.sum(values * marks, axis=1)
    return jnp.stack([values, marks], axis=-1), target
