"""A cell's step on one sequence's flat float state, for the code that differentiates
the recurrence with respect to its state (the probe's Jacobians, the Newton solve).

The state of a cell is the vector of its float carry leaves (h for SimpleRNN/GRU,
(h, c) for the LSTMs, every layer's for a `Stacked`); the other leaves (a clockwork
cell's step counter) are `aux`, carried beside it untouched by differentiation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rnnjax.cells.base import step_params


def split_carry(carry_example):
    """(leaves, treedef, is_float [per leaf]) of a carry."""
    leaves, treedef = jax.tree_util.tree_flatten(carry_example)
    is_float = [jnp.issubdtype(l.dtype, jnp.floating) for l in leaves]
    return leaves, treedef, is_float


def carry_codec(carry_example):
    """`(to_flat, from_flat)` between one sequence's carry and `(state, aux)`: the
    float leaves raveled into one vector [S], and the other leaves (a clockwork
    cell's step counter) as a list."""
    leaves, treedef, is_float = split_carry(carry_example)
    _, unravel = ravel_pytree([l for l, f in zip(leaves, is_float) if f])

    def to_flat(carry):
        leaves = jax.tree_util.tree_leaves(carry)
        return (ravel_pytree([l for l, f in zip(leaves, is_float) if f])[0],
                [l for l, f in zip(leaves, is_float) if not f])

    def from_flat(state, aux):
        floats, others = iter(unravel(state)), iter(aux)
        return treedef.unflatten([next(floats) if f else next(others) for f in is_float])

    return to_flat, from_flat


def flat_step(cell, params, carry_example):
    """One step on a single sequence's flat float state:
    `step(state [S], aux, xp) -> ((state, aux), y)`, and the initial `(state, aux)`
    of `carry_example` (one sequence's carry, no batch axis)."""
    to_flat, from_flat = carry_codec(carry_example)
    prepared = step_params(cell, params)   # what the step derives from params, once

    def step(state, aux, xp):
        new, y = cell.step(prepared, from_flat(state, aux), xp)
        return to_flat(new), y

    return step, to_flat(carry_example)
