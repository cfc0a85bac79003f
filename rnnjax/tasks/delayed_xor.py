"""Delayed XOR: the parity of two neighbouring input bits seen `delay` steps ago."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks


def delayed_xor_batch(key, batch: int, steps: int, delay: int):
    """Bits xs float [B, T, 1] and targets int32 [B, T] with
    y_t = x_(t-delay) XOR x_(t-delay-1).

    The bits are i.i.d. fair coin flips, taken to be 0 before the sequence, so the
    first delay + 1 targets read padding; a study scores the steps t >= delay + 1,
    where the target is a fair coin that needs both bits held for delay + 1 steps and
    combined nonlinearly (chance accuracy 1/2). A harder echo (`echo_batch`): no
    single remembered bit predicts it.

    >>> import jax
    >>> xs, ys = delayed_xor_batch(jax.random.key(0), 2, 8, 2)
    >>> bits = xs[..., 0].astype(int)
    >>> bool((ys[:, 3:] == bits[:, 1:-2] ^ bits[:, :-3]).all())
    True
    """
    batch = _checks.positive_int("batch", batch)
    steps = _checks.positive_int("steps", steps)
    delay = _checks.positive_int("delay", delay)
    if delay + 1 >= steps:
        raise ValueError(f"delay must be smaller than steps - 1 (some target must read two "
                         f"input bits), got delay = {delay}, steps = {steps}")
    bits = jax.random.bernoulli(key, 0.5, (batch, steps)).astype(jnp.int32)
    previous = jnp.pad(bits[:, :-1], ((0, 0), (1, 0)))
    parity = bits ^ previous
    targets = jnp.pad(parity[:, :-delay], ((0, 0), (delay, 0)))
    return bits[..., None].astype(jnp.float32), targets
