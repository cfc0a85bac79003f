"""Time loops with a hand-written backward pass: the machinery the loop rules share.

Autodiff of `lax.scan` accumulates the weight gradients inside the backward loop:
every step adds [I, G*H] and [H, G*H] outer products into running sums, skinny
matmuls and a full read-write of dW per step. A loop rule instead describes its
cell's loop by a `LoopRule` of three pure functions:

    forward(params, xs, carry, alive, unroll) -> (carry, ys, residuals)
    backward(params, dys, residuals, alive, dcarry, unroll) -> (dcarry_0, step_grads)
    grads(params, xs, residuals, step_grads) -> (dparams, dxs)

`backward` scans only the carry's cotangent and emits the gradients of the gate
pre-activations of every step; `grads` turns those into dW_x = X^T dA,
dW_h = H_prev^T dU, db and dX, one matmul (or sum) each over all T*B rows. The
forward computes x_t W_x inside the step: on XLA's CPU backend that ran 2x faster
than scanning over a precomputed [T, B, G*H] projection (benchmarks/NOTES.md).

`run_loop_rule(rule, params, xs, carry, alive, unroll, chunk)` wraps a rule in a
`jax.custom_vjp` (reverse mode only). xs are time-major [T, B, I]; `alive` [T, B]
bool (or None) freezes each sequence's carry past its length and zeroes its outputs,
exactly like the generic loop in `rnnjax.time_loop` (alive must be a prefix in time:
t < length). `chunk=K` rematerialises for long sequences: the forward keeps only the
carry at every K-th step; the backward walks the chunks from the end, re-runs each
chunk's forward from its saved carry, back-propagates through it and adds the
chunk's weight gradients. Memory O(T/K + K) steps instead of O(T), for one extra
forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks


class LoopRule(NamedTuple):
    """A cell's time loop, forward and hand-written backward (see the module doc)."""
    forward: Callable
    backward: Callable
    grads: Callable


@partial(jax.custom_vjp, nondiff_argnums=(0, 5, 6))
def run_loop_rule(rule, params, xs, carry, alive=None, unroll=1, chunk=None):
    """(final carry, ys [T, B, H]) of the cell whose loop `rule` describes."""
    carry_out, ys, _ = rule.forward(params, xs, carry, alive, unroll)
    return _like(carry, carry_out), ys


def _run_loop_rule_fwd(rule, params, xs, carry, alive, unroll, chunk):
    if chunk is None:
        carry_out, ys, residuals = rule.forward(params, xs, carry, alive, unroll)
        return (_like(carry, carry_out), ys), (params, xs, alive, residuals)
    xs_c, alive_c = _chunked(xs, alive, chunk)

    def run_chunk(carry, inputs):  # only the carry at the chunk's start is kept
        x_k, alive_k = inputs
        new_carry, ys, _ = rule.forward(params, x_k, carry, alive_k, unroll)
        return _like(carry, new_carry), (ys, carry)

    carry, (ys, starts) = lax.scan(run_chunk, carry, (xs_c, alive_c))
    return (carry, _unchunked(ys, xs.shape[0])), (params, xs, alive, starts)


def _run_loop_rule_bwd(rule, unroll, chunk, saved, cotangents):
    params, xs, alive, saved_states = saved
    dcarry, dys = cotangents
    dalive = None if alive is None else jnp.zeros(alive.shape, jax.dtypes.float0)
    if chunk is None:
        dcarry0, step_grads = rule.backward(params, dys, saved_states, alive, dcarry, unroll)
        dparams, dxs = rule.grads(params, xs, saved_states, step_grads)
        return _cast_like(params, dparams), dxs.astype(xs.dtype), _like(dcarry, dcarry0), dalive

    xs_c, alive_c = _chunked(xs, alive, chunk)
    dys_c, _ = _chunked(dys, None, chunk)

    def chunk_grads(acc, inputs):  # from the last chunk to the first
        dcarry, dparams = acc
        x_k, alive_k, dy_k, start = inputs
        _, _, residuals = rule.forward(params, x_k, start, alive_k, unroll)
        dcarry0, step_grads = rule.backward(params, dy_k, residuals, alive_k, dcarry, unroll)
        dcarry = _like(dcarry, dcarry0)
        chunk_dparams, dx_k = rule.grads(params, x_k, residuals, step_grads)
        return (dcarry, jax.tree_util.tree_map(jnp.add, dparams, chunk_dparams)), dx_k

    # the chunks' weight gradients add up in the dtype the steps compute in
    acc_dtype = _checks.compute_dtype(params, xs)
    zeros = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, acc_dtype), params)
    (dcarry, dparams), dxs = lax.scan(chunk_grads, (dcarry, zeros),
                                      (xs_c, alive_c, dys_c, saved_states), reverse=True)
    return (_cast_like(params, dparams), _unchunked(dxs, xs.shape[0]).astype(xs.dtype),
            dcarry, dalive)


run_loop_rule.defvjp(_run_loop_rule_fwd, _run_loop_rule_bwd)


def remat_chunk(steps):
    """Chunk length for `chunk=`: about sqrt(T), a divisor of T where one lies within
    a factor 2 of sqrt(T) (the chunks then need no padding steps, no copy of xs)."""
    root = math.isqrt(max(steps - 1, 0)) + 1
    divisors = [d for d in range(max(root // 2, 1), 2 * root + 1) if steps % d == 0]
    return min(divisors, key=lambda d: abs(d - root)) if divisors else root


def _chunked(xs, alive, chunk):
    """[T, ...] -> [ceil(T / chunk), chunk, ...]; padding steps are dead (alive False)."""
    steps, batch = xs.shape[0], xs.shape[1]
    n = -(-steps // chunk)
    pad = n * chunk - steps
    if pad and alive is None:
        alive = jnp.ones((steps, batch), bool)
    if alive is not None:
        alive = jnp.pad(alive, ((0, pad), (0, 0))).reshape(n, chunk, batch)
    xs = jnp.pad(xs, ((0, pad),) + ((0, 0),) * (xs.ndim - 1))
    return xs.reshape((n, chunk) + xs.shape[1:]), alive


def _unchunked(a, steps):
    """[n, chunk, ...] -> [steps, ...] (drops the padding steps)."""
    return a.reshape((-1,) + a.shape[2:])[:steps]


def _like(reference, tree):
    """tree's leaves in reference's structure (a rule may return a carry as a tuple)."""
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(reference),
                                        jax.tree_util.tree_leaves(tree))


def _cast_like(reference, tree):
    """Cotangents in their primals' dtypes (bfloat16 xs with float32 params compute,
    and so differentiate, in float32)."""
    return jax.tree_util.tree_map(lambda r, t: t.astype(r.dtype), reference, tree)


def keep_alive(alive_t, new, old):
    """new where the step is alive (alive_t [B] or None), else old."""
    if alive_t is None:
        return new
    return jnp.where(alive_t[:, None], new, old)


def rows(a):
    """[T, B, n] -> [T*B, n]: all steps as the rows of one matmul."""
    return a.reshape(-1, a.shape[-1])
