"""`rj.unroll`: the checked entry of the time loop.

`unroll` checks its inputs at the API edge (static shapes: free under `jit`), turns
them time-major and runs `rnnjax.loop.dispatch.run`, compiled once per model, shapes
and flags (inside an outer `jit` it is inlined).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.loop.dispatch import run
from rnnjax.loop.protocol import check_once


def unroll(model, params, xs, carry=None, *, seq_lengths=None, reverse=False,
           time_major=None, unroll=1, remat=False, key=None, resets=None):
    """Run `model` over the sequences `xs`; return `(final_carry, outputs)`.

    Args:
      model: a cell, a `Stacked` or a `Bidirectional`.
      params: the model's params (from `model.init`).
      xs: float [B, T, F], or [T, B, F] with `time_major=True`; for the convolutional
        cells (`ConvLSTM`, `ConvGRU`) feature maps [B, T, H, W, C] ([T, B, H, W, C]).
      carry: the initial carry, or None for `model.initial_carry((B,))`.
      seq_lengths: None, or int [B] in [0, T]. Past its length a sequence's carry is
        frozen (the final carry is the carry after its own last step) and its
        outputs are zero.
      reverse: process each sequence backwards within its own length; the outputs
        stay aligned with the inputs (output t is the one read after input t).
      time_major: layout of `xs` and outputs; None takes the model's own
        `time_major` attribute where it has one (see `interop.from_torch`), else False.
      unroll: steps per scan iteration (`lax.scan`'s `unroll`).
      remat: recompute in the backward pass instead of storing: each step
        (`jax.checkpoint`, memory O(T * carry) instead of O(T * activations)); the
        loop rules (LSTM, GRU, SimpleRNN) keep the carry every ~sqrt(T) steps and
        re-run each chunk (memory O(sqrt(T)) steps). About one extra forward pass of time.
      key: PRNG key for dropout in a `Stacked` (none: no dropout).
      resets: None, or bool [B, T] ([T, B] with `time_major=True`): where set, the
        carry restarts from the initial carry before that step, so one row can hold
        several independent segments (episodes) back to back. The mask marks each
        segment's first step in input order; with `reverse` each segment is read
        backwards and the carry restarts before its last step instead, so a
        `Bidirectional` sees the same segments in both directions. Every strategy
        honours them (the loop rules' hand-written backward passes included).

    Cells whose recurrence is linear in the carry (`rnnjax.cells.linear`: LRU,
    MinGRU, MinLSTM) run `jax.lax.associative_scan`, in O(log T) depth, unless
    their `parallel_scan` is False (a sequential scan: faster on a CPU); the
    semantics above are the same, and `remat` does not apply to them.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> cell = rj.GRU(hidden_size=5)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs = jnp.ones((2, 7, 3))
    >>> h, ys = rj.unroll(cell, params, xs, seq_lengths=jnp.array([7, 4]))
    >>> ys.shape, h.shape, bool((ys[1, 4:] == 0).all()), bool((h[1] == ys[1, 3]).all())
    ((2, 7, 5), (2, 5), True, True)
    """
    _checks.sequence_model("model", model)
    if np.ndim(xs) == 3 and np.shape(xs)[-1] > 0:   # else the checks of xs below say why
        check_once(model, np.shape(xs)[-1])
    _checks.model_params(model, params)
    if time_major is None:
        time_major = bool(getattr(model, "time_major", None) or False)
    layout = "[T, B, F] (time_major=True)" if time_major else "[B, T, F]"
    xs = _checks.sequence_input("xs", xs, _checks.input_shape(model, params), time_major)
    _checks.finite("xs", xs)
    _checks.finite("carry", carry)
    if not time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    steps, batch = xs.shape[0], xs.shape[1]
    lengths = None if seq_lengths is None else _checks.seq_lengths(seq_lengths, batch, steps)
    carry = _checks.carry_or_initial(model, carry, (batch,),
                                     _checks.compute_dtype(params, xs))
    _checks.positive_int("unroll", unroll)
    if resets is not None:
        resets = _checks.resets(resets, (steps, batch) if time_major else (batch, steps),
                                layout)
        resets = resets if time_major else resets.T
    try:
        carry, ys = _unroll_compiled(model, params, xs, carry, lengths, key, resets,
                                     reverse=reverse, unroll=unroll, remat=remat)
    except TypeError as e:
        if "forward-mode" in str(e) and "custom_vjp" in str(e):
            raise TypeError(_FORWARD_MODE.format(model=type(model).__name__)) from e
        raise
    return carry, (ys if time_major else jnp.swapaxes(ys, 0, 1))


_FORWARD_MODE = (
    "forward-mode autodiff (jax.jvp, jax.jacfwd, jax.hessian) cannot go through a loop "
    "rule, the hand-written backward pass that the LSTM, GRU and SimpleRNN cells run by "
    "default (here in a {model}): build those cells with use_loop_rule=False, e.g. "
    "rj.GRU(8, use_loop_rule=False), to differentiate forward; they compute the same "
    "values with a plain scan")


# Compiled once per (model, shapes, flags): an eager call of `unroll` would otherwise
# trace and compile a fresh scan every time. Inside an outer jit this is inlined.
@partial(jax.jit, static_argnames=("model", "reverse", "unroll", "remat"))
def _unroll_compiled(model, params, xs, carry, lengths, key, resets, *, reverse, unroll,
                     remat):
    return run(model, params, xs, carry, lengths=lengths, reverse=reverse, unroll=unroll,
               remat=remat, key=key, resets=resets)
