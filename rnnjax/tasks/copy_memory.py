"""The copy-memory task (Hochreiter and Schmidhuber 1997; Arjovsky, Shah and Bengio 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

BLANK, DELIMITER = 0, 9
NUM_SYMBOLS = 8       # data symbols are 1..8
NUM_CLASSES = 10      # blank, 8 symbols, delimiter (one-hot input size and logits)
COPY_LENGTH = 10


def copy_memory_baseline(steps: int) -> float:
    """Cross-entropy per step of the memoryless strategy: blanks until the delimiter,
    then a uniform guess over the 8 symbols: 10 ln 8 / (T + 20)."""
    return COPY_LENGTH * float(jnp.log(NUM_SYMBOLS)) / (steps + 2 * COPY_LENGTH)


def copy_memory_batch(key, batch: int, steps: int):
    """One-hot inputs [B, T+20, 10] and integer targets [B, T+20].

    Input: 10 symbols drawn from {1..8}, T-1 blanks, the delimiter, 10 blanks.
    Target: T+10 blanks, then the 10 symbols. The model must hold 10 symbols for T
    steps.

    >>> import jax
    >>> xs, ys = copy_memory_batch(jax.random.key(0), 2, 5)
    >>> xs.shape, ys.shape
    ((2, 25, 10), (2, 25))
    >>> bool((ys[:, -10:] == xs[:, :10].argmax(-1)).all()), int(xs[0, 14].argmax())
    (True, 9)
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    symbols = jax.random.randint(key, (batch, COPY_LENGTH), 1, NUM_SYMBOLS + 1)
    blanks = lambda n: jnp.full((batch, n), BLANK, symbols.dtype)
    delimiter = jnp.full((batch, 1), DELIMITER, symbols.dtype)
    inputs = jnp.concatenate([symbols, blanks(steps - 1), delimiter, blanks(COPY_LENGTH)], 1)
    targets = jnp.concatenate([blanks(steps + COPY_LENGTH), symbols], axis=1)
    return jax.nn.one_hot(inputs, NUM_CLASSES), targets
