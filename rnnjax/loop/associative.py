"""The linear strategy: recurrences h_t = a_t * h_{t-1} + b_t (element-wise), with
(a_t, b_t) from the input alone (`rnnjax.cells.linear.LinearRecurrence`).

The coefficients of every step are computed at once, then the prefix by
`jax.lax.associative_scan` (the cell's `parallel_scan`: O(log T) depth, about twice
the arithmetic) or by a `lax.scan` whose body is that one multiply-add (faster on a
CPU; a scan of `cell.step` would project, build the coefficients and emit inside the
loop: several times slower), then the outputs of every step at once.

Each step is the affine map h -> a_t h + b_t; two steps compose as (a1, b1) then
(a2, b2) = (a1 a2, a2 b1 + b2). The masks of `rnnjax.loop.masking` fold into the
pairs: a restarted step ignores its predecessor, (0, a_t h_0 + b_t); a step past a
sequence's length is the identity (1, 0); and the initial carry h_0 is folded into
the first step, so the prefix compositions' b are the states h_t themselves.
`remat` does not apply: the states span the sequence anyway.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from rnnjax.loop.masking import alive_mask, zero_where_dead


def run(cell, params, xs, carry, *, lengths=None, resets=None, flip=False, unroll=1,
        remat=False):
    """(final carry, ys [T, B, H]) of a `LinearRecurrence` over time-major xs [T, B, F];
    `resets` [T, B] in the scan's order; `flip` runs the steps backwards."""
    del remat
    alive = alive_mask(lengths, xs.shape[0])
    if flip:
        xs, resets = xs[::-1], None if resets is None else resets[::-1]
        alive = None if alive is None else alive[::-1]
    xp = cell.project_inputs(params, xs)
    a, b = cell.coefficients(params, xp)                    # [T, B, N]
    h0 = cell.to_scan(carry)                                 # [B, N]
    a, b = jnp.broadcast_arrays(a, b)
    if resets is not None:
        restart = resets[..., None]
        b = jnp.where(restart, a * h0 + b, b)
        a = jnp.where(restart, jnp.zeros_like(a), a)
    if alive is not None:
        a = jnp.where(alive[..., None], a, jnp.ones_like(a))
        b = jnp.where(alive[..., None], b, jnp.zeros_like(b))
    if xs.shape[0]:
        b = b.at[0].set(a[0] * h0 + b[0])

    def compose(first, second):
        a1, b1 = first
        a2, b2 = second
        return a1 * a2, a2 * b1 + b2

    if cell.parallel_scan:
        _, h = lax.associative_scan(compose, (a, b), axis=0)
    else:
        def body(h, step):
            h = step[0] * h + step[1]
            return h, h
        _, h = lax.scan(body, jnp.zeros(b.shape[1:], b.dtype), (a, b), unroll=unroll)
    ys = zero_where_dead(alive, cell.emit(params, h, xp))
    final = cell.from_scan(h[-1]) if xs.shape[0] else carry
    return final.astype(carry.dtype), ys[::-1] if flip else ys
