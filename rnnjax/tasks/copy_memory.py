"""The copy-memory task (Hochreiter and Schmidhuber 1997; Arjovsky, Shah and Bengio 2016)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rnnjax import _checks

BLANK, DELIMITER = 0, 9
NUM_SYMBOLS = 8       # data symbols are 1..8
NUM_CLASSES = 10      # blank, 8 symbols, delimiter (one-hot input size and logits)
COPY_LENGTH = 10

#: the long copy: 40 symbols recalled after T = 20 steps, 100 steps in all (the first 40
#: are data, the delimiter at step 60 counting from 1, the targets the inputs shifted
#: by 60): `copy_memory_batch(key, B, **LONG_COPY)`
LONG_COPY = {"steps": 20, "copy_length": 40}


def copy_memory_baseline(steps: int, copy_length: int = COPY_LENGTH) -> float:
    """Cross-entropy per step of the memoryless strategy: blanks until the delimiter,
    then a uniform guess over the 8 symbols: copy_length ln 8 / (T + 2 copy_length)
    (10 ln 8 / (T + 20) in the standard form)."""
    return copy_length * math.log(NUM_SYMBOLS) / (steps + 2 * copy_length)


def copy_memory_batch(key, batch: int, steps: int, copy_length: int = COPY_LENGTH):
    """One-hot inputs [B, L, 10] and integer targets [B, L], L = T + 2 copy_length.

    Input: `copy_length` symbols drawn from {1..8}, T-1 blanks, the delimiter, then
    `copy_length` blanks. Target: T + copy_length blanks, then the symbols, i.e. the
    input's symbols shifted by T + copy_length steps. The model must hold the symbols
    for T steps. The standard form has copy_length 10; `LONG_COPY` recalls 40
    symbols after 20 steps (the delimiter at step 60 of 100).

    >>> import jax
    >>> xs, ys = copy_memory_batch(jax.random.key(0), 2, 5)
    >>> xs.shape, ys.shape
    ((2, 25, 10), (2, 25))
    >>> bool((ys[:, -10:] == xs[:, :10].argmax(-1)).all()), int(xs[0, 14].argmax())
    (True, 9)
    """
    batch = _checks.positive_int("batch", batch)
    steps = _checks.positive_int("steps", steps)
    copy_length = _checks.positive_int("copy_length", copy_length)
    symbols = jax.random.randint(key, (batch, copy_length), 1, NUM_SYMBOLS + 1)
    blanks = lambda n: jnp.full((batch, n), BLANK, symbols.dtype)
    delimiter = jnp.full((batch, 1), DELIMITER, symbols.dtype)
    inputs = jnp.concatenate([symbols, blanks(steps - 1), delimiter, blanks(copy_length)], 1)
    targets = jnp.concatenate([blanks(steps + copy_length), symbols], axis=1)
    return jax.nn.one_hot(inputs, NUM_CLASSES), targets
