"""The double-dependency task: a target that depends on two past inputs, at lags 3
and 8, so that what a model learns shows how far back it sees."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rnnjax import _checks

#: the lags of the two dependencies
FIRST_LAG, SECOND_LAG = 3, 8


def probability_of_one(x_first, x_second):
    """P(y_t = 1 | x_(t-3), x_(t-8)) = 0.5 + 0.5 x_(t-3) - 0.25 x_(t-8)."""
    return 0.5 + 0.5 * x_first - 0.25 * x_second


def double_dependency_batch(key, batch: int, steps: int):
    """Bits xs float [B, T, 1] and targets int32 [B, T].

    x_t are fair coin flips; y_t is 1 with probability
    `probability_of_one(x_(t-3), x_(t-8))`. Inputs before the sequence are taken to
    be 0, so the stationary statistics (`reference_cross_entropies`) hold from step
    t = 8 on; a study scores the steps t >= SECOND_LAG.

    >>> import jax
    >>> xs, ys = double_dependency_batch(jax.random.key(0), 3, 20)
    >>> xs.shape, ys.shape, str(ys.dtype)
    ((3, 20, 1), (3, 20), 'int32')
    """
    batch = _checks.positive_int("batch", batch)
    steps = _checks.positive_int("steps", steps)
    k_x, k_y = jax.random.split(key)
    bits = jax.random.bernoulli(k_x, 0.5, (batch, steps)).astype(jnp.int32)
    lagged = lambda lag: jnp.pad(bits, ((0, 0), (lag, 0)))[:, :steps]
    p = probability_of_one(lagged(FIRST_LAG), lagged(SECOND_LAG))
    targets = (jax.random.uniform(k_y, (batch, steps)) < p).astype(jnp.int32)
    return bits[..., None].astype(jnp.float32), targets


def reference_cross_entropies() -> dict[str, float]:
    """The expected cross-entropy per step, in nats, of the best predictor that uses
    no input (`none`), only x_(t-3) (`first`), or both lagged inputs (`both`).

    Each is the conditional entropy H(y | what the predictor sees), computed exactly
    by enumerating the four equally likely (x_(t-3), x_(t-8)): 0.6616, 0.5192 and
    0.4545; truncated to two decimals, 0.66, 0.51 and 0.45 (rounding would give 0.52
    for the second).
    """
    cases = [(a, b) for a in (0, 1) for b in (0, 1)]  # each with probability 1/4

    def conditional_entropy(seen) -> float:
        groups: dict = {}
        for case in cases:
            groups.setdefault(seen(case), []).append(probability_of_one(*case))
        return sum(len(ps) / len(cases) * _binary_entropy(sum(ps) / len(ps))
                   for ps in groups.values())

    return {"none": conditional_entropy(lambda case: ()),
            "first": conditional_entropy(lambda case: case[0]),
            "both": conditional_entropy(lambda case: case)}


def _binary_entropy(p: float) -> float:
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)
