"""Truncated backpropagation through time, TBPTT(k1, k2) (Williams and Peng, 1990).

Full BPTT over a long sequence keeps every step's activations for the backward pass
and lets gradients travel through all T steps, where they mostly vanish or explode.
Truncated BPTT cuts the sequence into chunks of `k1` steps (the forward stride: the
loss of one chunk per update term) and backpropagates each chunk's loss through at
most `k2` steps of history. The hidden state itself is never truncated: it is
carried exactly across the whole sequence, only its gradient is stopped.

This module writes the one general scheme; the usual cases are settings of it:

    k1 = k2 = k      the plain "detach the carry every k steps" loop
    k1 < k2          overlapping windows: each chunk sees k2 steps of gradient history
    k2 >= T          full BPTT of the summed chunk losses (any k1)

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> from rnnjax.train.tbptt import tbptt_value_and_grad
>>> cell = rj.GRU(hidden_size=4)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> xs, targets = jnp.ones((2, 12, 3)), jnp.zeros((2, 12, 4))
>>> loss_fn = lambda p, ys, t: jnp.mean((ys - t) ** 2)
>>> loss, grads, carry = tbptt_value_and_grad(cell, params, xs, targets, loss_fn, k1=4, k2=6)
>>> grads["W_h"].shape, carry.shape
((4, 12), (2, 4))
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax import _checks
from rnnjax.cells.base import Strategy
from rnnjax.loop.dispatch import run


def tbptt_value_and_grad(model, params, xs, targets, loss_fn: Callable, k1: int, k2: int,
                         carry=None, seq_lengths=None):
    """Loss and gradient of TBPTT(k1, k2); returns `(loss, grads, final_carry)`.

    The T steps are split into T / k1 chunks. Chunk j's loss,
    `loss_fn(params, ys[:, j*k1:(j+1)*k1], targets[:, j*k1:(j+1)*k1])`, is
    backpropagated through the window of the last W = min(max(k1, k2), T) steps that
    ends at the chunk's end: the window is run again from the carry at its start,
    passed through `lax.stop_gradient`, so no gradient reaches further back (a
    window that would start before step 0 starts from the initial carry at step 0).
    The carries at the window starts come from one forward pass without gradient.
    `loss` is the sum of the chunk losses and `grads` the sum of their gradients,
    all taken at the same `params` (one update's worth, as in Williams and Peng).

    Consequences: with k2 >= T (any k1) the result is exactly full BPTT of the
    summed chunk losses; with k1 <= k2 < T no gradient path is longer than k2 steps
    (an output at the chunk's end reaches back k2 steps, one at the chunk's start
    k2 - k1 + 1). With k2 < k1 the window is the chunk itself (every step of the
    chunk still gets a gradient), so paths reach up to k1 steps: TBPTT(k1, k2 < k1)
    is TBPTT(k1, k1).

    Cost: T - W steps forward without gradient, plus T / k1 windows of W steps
    with gradient, i.e. O(T/k1 * max(k1, k2)) steps; memory for activations is one
    window (chunks run in a `lax.scan` that accumulates the gradient), plus one
    carry per gcd(k1, k2) steps. One compiled program per (model, loss_fn, k1, k2,
    shapes); it can be called inside `jit`, `vmap` and `grad`.

    Args:
      model: a cell or a `Stacked` of cells (anything `rj.unroll` runs); a
        `Bidirectional` runs but reads the future within each window only, which is
        rarely what truncation means. To train a readout with the model, pass
        `SubParams(model, "rnn")` and params `{"rnn": ..., "head": ...}`.
      params: the params differentiated; passed to the model (through `SubParams`
        if used) and, whole, to `loss_fn`.
      xs: float [B, T, F].
      targets: an array [B, T, ...] or a pytree of them (e.g. `(y, weights)`); it is
        sliced along axis 1 into chunks.
      loss_fn: `loss_fn(params, ys_chunk [B, k1, H], targets_chunk) -> scalar`.
      k1: forward stride (chunk length); must divide T.
      k2: backpropagation length.
      carry: initial carry (None: `model.initial_carry((B,))`). It gets no gradient.
      seq_lengths: None or int [B] in [0, T], as in `rj.unroll`: past its length a
        sequence's carry is frozen and its outputs are zero. `loss_fn` does not see
        the lengths; mask the padded steps through `targets` (e.g. per-step weights).

    Returns:
      `(loss, grads, final_carry)`: the summed chunk losses, their gradient w.r.t.
      `params` (same structure), and the carry after the last step (after each
      sequence's own last step with `seq_lengths`), without gradient.
    """
    k1 = _checks.positive_int("k1", k1)
    k2 = _checks.positive_int("k2", k2)
    _checks.sequence_model("model", model)
    _checks.model_params(model, params)
    xs = _checks.sequence_input("xs", xs, _checks.input_shape(model, params))
    batch, steps = xs.shape[0], xs.shape[1]
    if steps == 0:
        raise ValueError("xs must have at least one time step (T >= 1), got shape "
                         f"{tuple(xs.shape)}")
    if steps % k1:
        raise ValueError(f"k1 must divide the sequence length T: got k1 = {k1}, T = {steps} "
                         f"(T % k1 = {steps % k1})")
    for leaf in jax.tree_util.tree_leaves(targets):
        shape = tuple(jnp.shape(leaf))
        if len(shape) < 2 or shape[:2] != (batch, steps):
            raise ValueError(f"targets must be [B, T, ...] = [{batch}, {steps}, ...] "
                             f"(each leaf), got shape {shape}")
    lengths = None if seq_lengths is None else _checks.seq_lengths(seq_lengths, batch, steps)
    carry = _checks.carry_or_initial(model, carry, (batch,), _checks.compute_dtype(params, xs))
    return _tbptt_jit(model, params, jnp.swapaxes(xs, 0, 1), targets, loss_fn, k1, k2,
                      carry, lengths)



def tbptt_loss(model, params, xs, targets, loss_fn: Callable, k1: int, k2: int, carry=None,
               seq_lengths=None):
    """The summed chunk losses of `tbptt_value_and_grad`, as a loss whose `jax.grad`
    with respect to `params` is the truncated gradient.

    It drops into any training step built for full BPTT (`make_train_step`, a
    `sweep_step`), so that full and truncated training differ in the loss alone.
    Arguments as in `tbptt_value_and_grad`. Only `params` gets a gradient (xs,
    targets and carry get zeros), and only reverse mode is defined.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> cell = rj.GRU(hidden_size=4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs, targets = jnp.ones((2, 12, 3)), jnp.zeros((2, 12, 4))
    >>> loss_fn = lambda p, ys, t: jnp.mean((ys - t) ** 2)
    >>> g = jax.grad(tbptt_loss, argnums=1)(cell, params, xs, targets, loss_fn, 4, 4)
    >>> _, expected, _ = tbptt_value_and_grad(cell, params, xs, targets, loss_fn, 4, 4)
    >>> bool(jnp.allclose(g["W_h"], expected["W_h"]))
    True
    """
    return _truncated(model, loss_fn, k1, k2, params, xs, targets, carry, seq_lengths)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _truncated(model, loss_fn, k1, k2, params, xs, targets, carry, seq_lengths):
    return tbptt_value_and_grad(model, params, xs, targets, loss_fn, k1, k2, carry,
                                seq_lengths)[0]


def _truncated_fwd(model, loss_fn, k1, k2, params, xs, targets, carry, seq_lengths):
    loss, grads, _ = tbptt_value_and_grad(model, params, xs, targets, loss_fn, k1, k2, carry,
                                          seq_lengths)
    return loss, (grads, xs, targets, carry, seq_lengths)


def _truncated_bwd(model, loss_fn, k1, k2, residuals, cotangent):
    grads, *others = residuals
    scaled = jax.tree_util.tree_map(lambda g: (cotangent * g).astype(g.dtype), grads)
    return (scaled, *(jax.tree_util.tree_map(_zero_cotangent, x) for x in others))


def _zero_cotangent(x):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)


_truncated.defvjp(_truncated_fwd, _truncated_bwd)

def _tbptt(model, params, xs, targets, loss_fn, k1, k2, carry, lengths):
    """The checked core: xs time-major [T, B, F], lengths int32 [B] or None."""
    steps = xs.shape[0]
    window = min(max(k1, k2), steps)
    # Every window start is a multiple of `grain`; keep one carry per grain.
    grain = steps if window == steps else math.gcd(k1, window)

    def shifted(start):
        return None if lengths is None else lengths - start

    # -- one forward pass without gradient: carries at steps 0, grain, ..., T - W ----
    blocks = (steps - window) // grain
    if blocks:
        frozen = lax.stop_gradient(params)
        xb = xs[:steps - window].reshape((blocks, grain) + xs.shape[1:])

        def advance(c, inputs):
            x_block, start = inputs
            new, _ = run(model, frozen, x_block, c, lengths=shifted(start))
            return new, c

        last, carries = lax.scan(advance, carry, (xb, jnp.arange(blocks) * grain))
        carries = jax.tree_util.tree_map(
            lambda cs, c: jnp.concatenate([cs, c[None]], axis=0), carries, last)
    else:
        carries = jax.tree_util.tree_map(lambda c: c[None], carry)
    carries = lax.stop_gradient(carries)

    # -- one window per chunk, gradients accumulated over chunks ---------------------
    def chunk(acc, j):
        grads_sum, _ = acc
        end = (j + 1) * k1
        start = jnp.maximum(end - window, 0)
        c0 = lax.stop_gradient(
            jax.tree_util.tree_map(lambda cs: cs[start // grain], carries))
        x_window = lax.dynamic_slice_in_dim(xs, start, window, axis=0)
        t_chunk = jax.tree_util.tree_map(
            lambda t: lax.dynamic_slice_in_dim(t, j * k1, k1, axis=1), targets)

        def chunk_loss(p):
            c_end, ys = run(model, p, x_window, c0, lengths=shifted(start))
            # Windows clipped at step 0 run past the chunk's end; those later steps
            # never reach the loss (nor its gradient).
            ys = lax.dynamic_slice_in_dim(ys, j * k1 - start, k1, axis=0)
            return loss_fn(p, jnp.swapaxes(ys, 0, 1), t_chunk), c_end

        (loss, c_end), grads = jax.value_and_grad(chunk_loss, has_aux=True)(params)
        grads_sum = jax.tree_util.tree_map(jnp.add, grads_sum, grads)
        return (grads_sum, lax.stop_gradient(c_end)), loss

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    # The last window always ends at step T, so its final carry is the final carry.
    (grads, final), losses = lax.scan(chunk, (zeros, carry), jnp.arange(steps // k1))
    return jnp.sum(losses), grads, final


_tbptt_jit = jax.jit(_tbptt, static_argnums=(0, 4, 5, 6))


@dataclasses.dataclass(frozen=True)
class SubParams:
    """`model` run on `params[key]`: lets `loss_fn` hold trainable params of its own.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> rnn, head = rj.LSTM(hidden_size=4), rj.Dense(features=1)
    >>> params = {"rnn": rnn.init(jax.random.key(0), 3), "head": head.init(jax.random.key(1), 4)}
    >>> loss_fn = lambda p, ys, t: jnp.mean((head(p["head"], ys) - t) ** 2)
    >>> loss, grads, _ = tbptt_value_and_grad(SubParams(rnn, "rnn"), params, jnp.ones((2, 8, 3)),
    ...                                       jnp.zeros((2, 8, 1)), loss_fn, k1=4, k2=4)
    >>> sorted(grads), grads["head"]["W"].shape
    (['head', 'rnn'], (4, 1))
    """

    model: Any
    key: Any

    @property
    def output_size(self):
        return self.model.output_size

    def input_size_of(self, params):
        return self.model.input_size_of(params[self.key])

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self.model.initial_carry(batch_shape, dtype)

    #: the loop runs `model` on its part of the params
    strategy = Strategy.COMPOSITE

    def unroll_time_major(self, params, xs, carry, *, lengths, reverse, unroll, remat,
                          key=None, resets=None):
        return run(self.model, params[self.key], xs, carry, lengths=lengths,
                   reverse=reverse, unroll=unroll, remat=remat, key=key, resets=resets)
