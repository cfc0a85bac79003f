"""Echo: repeat the input bit seen `delay` steps ago."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks


def echo_batch(key, batch: int, steps: int, delay: int):
    """Bits xs float [B, T, 1] and targets int32 [B, T] with y_t = x_(t-delay).

    The bits are i.i.d. fair coin flips. Before the sequence the input is taken to be
    0, so y_t = 0 for t < delay; a study scores only the steps t >= delay, where the
    target is a fair coin that only memory can predict (chance accuracy 1/2).

    >>> import jax
    >>> xs, ys = echo_batch(jax.random.key(0), 2, 6, 2)
    >>> bool((ys[:, 2:] == xs[:, :-2, 0]).all()), ys[:, :2].tolist()
    (True, [[0, 0], [0, 0]])
    """
    batch = _checks.positive_int("batch", batch)
    steps = _checks.positive_int("steps", steps)
    delay = _checks.positive_int("delay", delay)
    if delay >= steps:
        raise ValueError(f"delay must be smaller than steps (some target must be an echo), "
                         f"got delay = {delay}, steps = {steps}")
    bits = jax.random.bernoulli(key, 0.5, (batch, steps)).astype(jnp.int32)
    targets = jnp.pad(bits[:, :-delay], ((0, 0), (delay, 0)))
    return bits[..., None].astype(jnp.float32), targets
