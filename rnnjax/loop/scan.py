"""The generic strategy: a `lax.scan` of the cell's step.

Without remat the input matmul of all steps runs once outside the loop; with remat
it runs inside the checkpointed step, so that only the carries (not a [T, B, G*H]
projection and its cotangent) span the sequence.
"""

from __future__ import annotations

import jax
from jax import lax

from rnnjax.cells.base import step_params
from rnnjax.loop.masking import alive_mask, masked_step


def run(cell, params, xs, carry, *, lengths=None, resets=None, flip=False, unroll=1,
        remat=False):
    """(final carry, ys [T, B, H]) of `cell` over time-major xs [T, B, F]; `resets`
    [T, B] in the scan's order restart from the given carry; `flip` scans backwards."""
    initial = carry
    prepared = step_params(cell, params)   # what the step derives from params, once

    def body(carry, inputs):
        x_t, alive_t, restart_t = inputs
        xp_t = cell.project_inputs(params, x_t) if remat else x_t
        carry, y = masked_step(lambda c, xp: cell.step(prepared, c, xp), carry, xp_t,
                               alive_t, restart_t, initial)
        return carry, y

    if remat:
        body = jax.checkpoint(body)
    else:
        xs = cell.project_inputs(params, xs)  # one matmul over all steps
    return lax.scan(body, carry, (xs, alive_mask(lengths, xs.shape[0]), resets),
                    unroll=unroll, reverse=flip)

