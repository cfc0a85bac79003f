"""Memory capacity (Jaeger 2002): how much of its past input a reservoir's state holds."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.loop import unroll
from rnnjax.readout import ridge_readout


def memory_capacity(cell, params, max_delay: int, *, key=None, steps: int = 4000,
                    washout: int = 200, l2: float = 1e-6):
    """`(capacity, r2 [max_delay])`: the sum over delays k = 0 .. max_delay-1 of the
    squared correlation r2_k between the input u_{t-k} and its best linear readout
    from the state after step t.

    The input is one i.i.d. uniform [-1, 1] sequence of `washout + steps` steps (the
    cell's input size must be 1); the states after the washout are split in halves:
    a ridge readout (`rnnjax.train.ridge_readout`, penalty `l2`) of every delay is
    fitted on the first and r2_k measured on the second, so the estimate is not
    inflated by fitting noise. For a linear reservoir of N units the capacity is at
    most N, and N when its Krylov space is full and the delays cover its memory
    (Jaeger 2002); tanh units lose some of it to their nonlinearity.
    """
    max_delay = _checks.positive_int("max_delay", max_delay)
    steps = _checks.positive_int("steps", steps)
    washout = _checks.positive_int("washout", washout)
    if cell.input_size_of(params) != 1:
        raise ValueError(f"memory_capacity drives the cell with one scalar input: its params "
                         f"must have input size 1, got {cell.input_size_of(params)}")
    if washout < max_delay:
        raise ValueError(f"washout ({washout}) must be >= max_delay ({max_delay}), so that "
                         f"every delayed input lies inside the sequence")
    key = jax.random.key(0) if key is None else key
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
    u = jax.random.uniform(key, (washout + steps,), dtype, -1.0, 1.0)
    _, hs = unroll(cell, params, u[None, :, None])
    states = hs[0, washout:]                                            # [steps, H]
    t = jnp.arange(washout, washout + steps)
    delayed = u[t[:, None] - jnp.arange(max_delay)[None, :]]           # [steps, K]
    half = steps // 2
    readout = ridge_readout(states[:half], delayed[:half], l2)
    guess = states[half:] @ readout["W"] + readout["b"]
    target = delayed[half:]
    guess, target = guess - guess.mean(0), target - target.mean(0)
    r2 = (jnp.sum(guess * target, 0) ** 2
          / (jnp.sum(guess ** 2, 0) * jnp.sum(target ** 2, 0)))
    return jnp.sum(r2), r2
