"""The loop-rule strategy: a time loop around a cell's `StepRule`, differentiated by
hand.

Autodiff of `lax.scan` accumulates the weight gradients inside the backward loop:
every step adds [I, G*H] and [H, G*H] outer products into running sums, skinny
matmuls and a full read-write of dW per step. Here the backward loop carries only
the carry's cotangent and emits each step's pre-activation gradients; the cell's
`grads` then forms dW_x = X^T dA, dW_h = H_prev^T dU, db and dX as one matmul (or
sum) each over all T*B rows. The forward computes x_t W_x inside the step: on XLA's
CPU backend that ran 2x faster than scanning over a precomputed [T, B, G*H]
projection (benchmarks/NOTES.md).

Lengths and resets follow `rnnjax.loop.masking`: a step past a length passes the
carry and its cotangent through and feeds no weight; a restarted step starts from
the initial carry, so its cotangent flows into the initial carry, not into the step
before. `chunk=K` rematerialises (`rnnjax.loop.remat`). Reverse mode only (a
`jax.custom_vjp`): forward-mode autodiff needs the generic scan.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax.loop.masking import alive_mask, masked_step, select, zero_where_dead
from rnnjax.loop.remat import chunk_length, chunked, unchunked


class Saved(NamedTuple):
    """What the forward loop keeps for the weight gradients of its steps."""
    steps: Any          # the rule's residuals of every step, stacked [T, ...]
    ys: jax.Array       # the outputs [T, B, H] (zero past a length)
    first: tuple        # the carry leaves the loop started from
    initial: tuple      # the carry leaves a restarted step starts from
    restart: Any        # [T, B] bool, or None


def run(cell, params, xs, carry, *, lengths=None, resets=None, flip=False, unroll=1,
        remat=False):
    """(final carry, ys [T, B, H]) of `cell.loop_rule` over time-major xs [T, B, I];
    `resets` [T, B] in the scan's order restart from the given carry; `flip` runs
    the steps backwards."""
    steps = xs.shape[0]
    alive = alive_mask(lengths, steps)
    if flip:
        xs, alive = xs[::-1], None if alive is None else alive[::-1]
        resets = None if resets is None else resets[::-1]
    chunk = chunk_length(steps) if remat else None
    leaves = tuple(jax.tree_util.tree_leaves(carry))
    final, ys = run_rule(cell.loop_rule, params, xs, leaves, alive, resets, unroll, chunk)
    final = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(carry), final)
    return final, ys[::-1] if flip else ys



def _forward_loop(rule, params, xs, first, alive, restart, initial, unroll):
    """The steps in order: (final carry leaves, ys, Saved)."""

    def body(carry, inputs):
        x_t, alive_t, restart_t = inputs
        carry, y, residuals = masked_step(lambda c, x: rule.forward(params, c, x), carry,
                                          x_t, alive_t, restart_t, initial)
        return carry, (y, residuals)

    final, (ys, residuals) = lax.scan(body, first, (xs, alive, restart), unroll=unroll)
    return _like(first, final), ys, Saved(residuals, ys, first, initial, restart)


def _backward_loop(rule, w, dys, saved, alive, dcarry, unroll):
    """The steps from the last: (cotangent of the first carry, of the initial carry
    (None without restarts), the rule's step gradients [T, ...])."""
    restart = saved.restart

    def body(acc, inputs):
        dcarry, dinitial = acc
        dy, residuals, y, alive_t, restart_t = inputs
        dstart, step_grads = rule.backward(w, residuals, y, dcarry, dy)
        dstart = _like(dcarry, dstart)
        if restart_t is not None:
            into_initial = restart_t if alive_t is None else restart_t & alive_t
            dinitial = _plus(dinitial, zero_where_dead(into_initial, dstart))
            dstart = zero_where_dead(~restart_t, dstart)
        # a step past its sequence's length passes the cotangent through, feeds nothing
        return (select(alive_t, dstart, dcarry), dinitial), zero_where_dead(alive_t,
                                                                            step_grads)

    dinitial = None if restart is None else jax.tree_util.tree_map(jnp.zeros_like, dcarry)
    (dfirst, dinitial), step_grads = lax.scan(
        body, (dcarry, dinitial), (dys, saved.steps, saved.ys, alive, restart),
        reverse=True, unroll=unroll)
    return dfirst, dinitial, step_grads


@partial(jax.custom_vjp, nondiff_argnums=(0, 6, 7))
def run_rule(rule, params, xs, carry, alive=None, restart=None, unroll=1, chunk=None):
    """(final carry leaves, ys [T, B, H]) of the loop around `rule`: xs [T, B, I],
    carry a tuple of leaves, alive and restart [T, B] bool or None, in loop order."""
    final, ys, _ = _forward_loop(rule, params, xs, carry, alive, restart, carry, unroll)
    return final, ys


def _run_rule_fwd(rule, params, xs, carry, alive, restart, unroll, chunk):
    if chunk is None:
        final, ys, saved = _forward_loop(rule, params, xs, carry, alive, restart, carry,
                                         unroll)
        return (final, ys), (params, xs, alive, restart, saved)
    xs_c, alive_c, restart_c = _chunks(xs, alive, restart, chunk)

    def run_chunk(first, inputs):  # only the carry at each chunk's start is kept
        x_k, alive_k, restart_k = inputs
        final, ys, _ = _forward_loop(rule, params, x_k, first, alive_k, restart_k, carry,
                                     unroll)
        return final, (ys, first)

    final, (ys, starts) = lax.scan(run_chunk, carry, (xs_c, alive_c, restart_c))
    return (final, unchunked(ys, xs.shape[0])), (params, xs, alive, restart,
                                                  (carry, starts))


def _run_rule_bwd(rule, unroll, chunk, kept, cotangents):
    params, xs, alive, restart, saved = kept
    dcarry, dys = cotangents
    w = rule.backward_weights(params)
    no_grad = tuple(None if a is None else jnp.zeros(a.shape, jax.dtypes.float0)
                    for a in (alive, restart))
    if chunk is None:
        dfirst, dinitial, step_grads = _backward_loop(rule, w, dys, saved, alive, dcarry,
                                                      unroll)
        dparams, dxs = rule.grads(params, xs, saved, step_grads)
        return (_cast_like(params, dparams), dxs.astype(xs.dtype),
                _plus(dfirst, dinitial), *no_grad)

    initial, starts = saved
    xs_c, alive_c, restart_c = _chunks(xs, alive, restart, chunk)
    dys_c = chunked(dys, chunk, 0)

    def chunk_grads(acc, inputs):  # from the last chunk to the first
        dcarry, dinitial, dparams = acc
        x_k, alive_k, restart_k, dy_k, first = inputs
        _, _, saved_k = _forward_loop(rule, params, x_k, first, alive_k, restart_k,
                                      initial, unroll)
        dcarry, dinitial_k, step_grads = _backward_loop(rule, w, dy_k, saved_k, alive_k,
                                                        dcarry, unroll)
        chunk_dparams, dx_k = rule.grads(params, x_k, saved_k, step_grads)
        dparams = jax.tree_util.tree_map(jnp.add, dparams, chunk_dparams)
        return (dcarry, _plus(dinitial, dinitial_k), dparams), dx_k

    # the chunks' weight gradients add up in the dtype the steps compute in
    acc_dtype = _checks.compute_dtype(params, xs)
    zeros = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, acc_dtype), params)
    dinitial = None if restart is None else jax.tree_util.tree_map(jnp.zeros_like, dcarry)
    (dfirst, dinitial, dparams), dxs = lax.scan(
        chunk_grads, (dcarry, dinitial, zeros), (xs_c, alive_c, restart_c, dys_c, starts),
        reverse=True)
    return (_cast_like(params, dparams), unchunked(dxs, xs.shape[0]).astype(xs.dtype),
            _plus(dfirst, dinitial), *no_grad)


run_rule.defvjp(_run_rule_fwd, _run_rule_bwd)


def _chunks(xs, alive, restart, chunk):
    """xs, alive and restart cut into chunks; padding steps are dead."""
    if xs.shape[0] % chunk and alive is None:
        alive = jnp.ones(xs.shape[:2], bool)
    return (chunked(xs, chunk, 0), chunked(alive, chunk, False),
            chunked(restart, chunk, False))


def _plus(a, b):
    """a + b leaf by leaf, where b may be None."""
    return a if b is None else jax.tree_util.tree_map(jnp.add, a, b)


def _like(reference, tree):
    """tree's leaves in reference's structure (a rule may return a list for a tuple)."""
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(reference),
                                        jax.tree_util.tree_leaves(tree))


def _cast_like(reference, tree):
    """Cotangents in their primals' dtypes (bfloat16 xs with float32 params compute,
    and so differentiate, in float32)."""
    return jax.tree_util.tree_map(lambda r, t: t.astype(r.dtype), reference, tree)

