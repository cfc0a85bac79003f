"""One masked step, shared by every time loop: lengths freeze, resets restart.

A batch of sequences of different lengths runs as one array [T, B, ...]. Past its
length a sequence's carry is frozen and its output is zero (`alive` [B] is False);
where `restart` [B] is set, the step starts from the initial carry instead of the
previous one (several segments back to back in one row). Every loop in the library
applies these rules through `masked_step` (or, for the backward passes written by
hand, through `select` and `zero_where_dead`), so they mean the same everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def select(mask, on_true, on_false):
    """`on_true` where mask [B] is set, else `on_false`, leaf by leaf over any pytree
    whose leaves are [B, ...]; `mask=None` means set everywhere."""
    if mask is None:
        return on_true
    return jax.tree_util.tree_map(lambda a, b: jnp.where(_expand(mask, a.ndim), a, b),
                                  on_true, on_false)


def zero_where_dead(alive, tree):
    """`tree` with its rows past a sequence's length (alive [B] False) set to zero."""
    if alive is None:
        return tree
    return jax.tree_util.tree_map(
        lambda a: jnp.where(_expand(alive, a.ndim), a, jnp.zeros_like(a)), tree)


def masked_step(step, carry, x_t, alive=None, restart=None, initial=None):
    """One step of a loop over a batch of sequences: `(carry, y, *rest)`.

    `step(carry, x_t) -> (carry, y, *rest)` is the plain step; `alive` [B] (or None)
    keeps the previous carry and zeroes y where False; `restart` [B] (or None) starts
    the step from `initial` where set. `rest` (a loop rule's residuals) passes through.
    """
    start = carry if restart is None else select(restart, initial, carry)
    new, y, *rest = step(start, x_t)
    return (select(alive, new, carry), zero_where_dead(alive, y), *rest)


def alive_mask(lengths, steps):
    """[T, B] bool: step t of sequence b lies within its length (None: no lengths)."""
    if lengths is None:
        return None
    return jnp.arange(steps)[:, None] < lengths[None, :]


def reverse_within_lengths(x, lengths):
    """Reverse time-major x [T, B, ...] within each sequence's length; padding stays put.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(4)[:, None] * jnp.ones((4, 2), int)
    >>> reverse_within_lengths(x, jnp.array([4, 2])).T
    Array([[3, 2, 1, 0],
           [1, 0, 2, 3]], dtype=int32)
    """
    t = jnp.arange(x.shape[0])[:, None]
    index = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return x[index, jnp.arange(x.shape[1])[None, :]]


def restarts_read_backwards(resets):
    """The restart mask of a segment read backwards: resets [T, B] mark each segment's
    first step in input order; read backwards, a segment restarts after the step
    before the next one starts."""
    return jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)


def _expand(mask, ndim):
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))
