"""The time loop: one `lax.scan` over a cell, exact for variable-length batches.

`unroll` checks its inputs and runs the model's `unroll_time_major` (the
`SequenceModel` protocol of `rnnjax.cells.base`) compiled once per model and shapes.
A cell's is `scan_cell`: its loop rule where it has one, else a scan of its step,
with the input matmul of all steps outside the scan (inside the checkpointed step
with `remat`); `Stacked` and `Bidirectional` compose their layers' loops.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax.cells.loop_rule import remat_chunk, run_loop_rule


def unroll(model, params, xs, carry=None, *, seq_lengths=None, reverse=False,
           time_major=None, unroll=1, remat=False, key=None, resets=None):
    """Run `model` over the sequences `xs`; return `(final_carry, outputs)`.

    Args:
      model: a cell, a `Stacked` or a `Bidirectional`.
      params: the model's params (from `model.init`).
      xs: float [B, T, F], or [T, B, F] with `time_major=True`.
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
        `Bidirectional` sees the same segments in both directions. Cells with a
        hand-written loop rule run the generic scan when resets are given.

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
    _checks.model_params(model, params)
    if time_major is None:
        time_major = bool(getattr(model, "time_major", None) or False)
    layout = "[T, B, F] (time_major=True)" if time_major else "[B, T, F]"
    xs = _checks.float_array("xs", xs, rank=3, layout=layout)
    _checks.feature_size("xs", xs, model.input_size_of(params))
    if not time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    steps, batch = xs.shape[0], xs.shape[1]
    lengths = None if seq_lengths is None else _checks.seq_lengths(seq_lengths, batch, steps)
    _checks.finite("xs", xs)
    _checks.finite("carry", carry)
    carry = _checks.carry_or_initial(model, carry, (batch,),
                                     _checks.compute_dtype(params, xs))
    _checks.positive_int("unroll", unroll)
    if resets is not None:
        resets = _checks.resets(resets, (steps, batch) if time_major else (batch, steps),
                                layout)
        resets = resets if time_major else resets.T
    carry, ys = _unroll_compiled(model, params, xs, carry, lengths, key, resets,
                                 reverse=reverse, unroll=unroll, remat=remat)
    return carry, (ys if time_major else jnp.swapaxes(ys, 0, 1))


# Compiled once per (model, shapes, flags): an eager call of `unroll` would otherwise
# trace and compile a fresh scan every time. Inside an outer jit this is inlined.
@partial(jax.jit, static_argnames=("model", "reverse", "unroll", "remat"))
def _unroll_compiled(model, params, xs, carry, lengths, key, resets, *, reverse, unroll,
                     remat):
    return model.unroll_time_major(params, xs, carry, lengths=lengths, reverse=reverse,
                                   unroll=unroll, remat=remat, key=key, resets=resets)


def scan_cell(cell, params, xs, carry, *, lengths=None, reverse=False, unroll=1,
              remat=False, resets=None):
    """`lax.scan` of `cell.step` over time-major xs [T, B, F].

    A cell with a loop rule (LSTM, GRU, SimpleRNN: a hand-written backward pass, see
    `rnnjax.cells.loop_rule`) runs that loop instead (unless `resets` are given);
    with `remat` it keeps the carry every ~sqrt(T) steps. A `LinearRecurrence` runs
    `linear_scan_cell` (`remat` does not apply: its states span the sequence anyway).
    xs [T, B, F]; lengths [B] int32 or None; resets [T, B] bool or None (in input
    order, as `unroll` documents them).
    """
    steps = xs.shape[0]
    if resets is not None and reverse:
        # read backwards, a segment restarts after the step before the next one starts
        resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)
    if reverse and lengths is not None:
        xs = reverse_within_lengths(xs, lengths)
        resets = None if resets is None else reverse_within_lengths(resets, lengths)
    flip = reverse and lengths is None
    rule = cell.loop_rule
    if hasattr(cell, "parallel_scan"):
        if flip:
            xs, resets = xs[::-1], None if resets is None else resets[::-1]
        carry, ys = linear_scan_cell(cell, params, xs, carry, lengths, resets,
                                     parallel=cell.parallel_scan, unroll=unroll)
        ys = ys[::-1] if flip else ys
    elif rule is not None and resets is None:
        alive = None if lengths is None else jnp.arange(steps)[:, None] < lengths[None, :]
        chunk = remat_chunk(steps) if remat else None
        carry, ys = run_loop_rule(rule, params, xs[::-1] if flip else xs, carry, alive, unroll,
                               chunk)
        ys = ys[::-1] if flip else ys
    else:
        carry, ys = _scan_steps(cell, params, xs, carry, lengths, flip, unroll, remat, resets)
    if reverse and lengths is not None:
        ys = reverse_within_lengths(ys, lengths)
    return carry, ys


def _scan_steps(cell, params, xs, carry, lengths, reverse, unroll, remat, resets=None):
    """The generic loop. Without remat the input matmul of all steps runs outside the
    scan; with remat it runs inside the checkpointed step, so that only the carries
    (not a [T, B, G*H] projection and its cotangent) span the sequence. `resets`
    [T, B] (in the scan's order) restart the carry from the given one."""
    initial = carry

    def body(carry, inputs):
        x_t, t, reset_t = inputs
        start = carry if reset_t is None else jax.tree_util.tree_map(
            lambda first, c: jnp.where(_expand(reset_t, c.ndim), first, c), initial, carry)
        xp_t = cell.project_inputs(params, x_t) if remat else x_t
        new_carry, y = cell.step(params, start, xp_t)
        if lengths is not None:
            alive = t < lengths
            new_carry = jax.tree_util.tree_map(
                lambda new, old: jnp.where(_expand(alive, new.ndim), new, old),
                new_carry, carry)
            y = jnp.where(_expand(alive, y.ndim), y, jnp.zeros_like(y))
        return new_carry, y

    if remat:
        body = jax.checkpoint(body)
    else:
        xs = cell.project_inputs(params, xs)  # one matmul over all steps
    return lax.scan(body, carry, (xs, jnp.arange(xs.shape[0]), resets), unroll=unroll,
                    reverse=reverse)


def linear_scan_cell(cell, params, xs, carry, lengths=None, resets=None, *,
                     parallel=True, unroll=1):
    """A `LinearRecurrence` over time-major xs [T, B, F]: the coefficients (a_t, b_t)
    of every step at once, then the prefix h_t = a_t h_{t-1} + b_t by
    `jax.lax.associative_scan` (`parallel`: O(log T) depth, about twice the
    arithmetic) or by a `lax.scan` whose body is that one multiply-add (a sequential
    scan of `cell.step` would project, build the coefficients and emit inside the
    loop: several times slower), then the outputs of every step at once.

    Each step is the affine map h -> a_t h + b_t; two steps compose as (a1, b1) then
    (a2, b2) = (a1 a2, a2 b1 + b2). A reset step ignores its predecessor: it becomes
    (0, a_t h_0 + b_t); a step past a sequence's length is the identity (1, 0); and the
    initial carry h_0 is folded into the first step, so the prefix compositions' b
    are the states h_t themselves. Forward order only (`scan_cell` flips for reverse).
    """
    xp = cell.project_inputs(params, xs)
    a, b = cell.coefficients(params, xp)                    # [T, B, N]
    h0 = cell.to_scan(carry)                                 # [B, N]
    a, b = jnp.broadcast_arrays(a, b)
    if resets is not None:
        restart = resets[..., None]
        b = jnp.where(restart, a * h0 + b, b)
        a = jnp.where(restart, jnp.zeros_like(a), a)
    if lengths is not None:
        alive = (jnp.arange(xs.shape[0])[:, None] < lengths[None, :])[..., None]
        a = jnp.where(alive, a, jnp.ones_like(a))
        b = jnp.where(alive, b, jnp.zeros_like(b))
    if xs.shape[0]:
        b = b.at[0].set(a[0] * h0 + b[0])

    def compose(first, second):
        a1, b1 = first
        a2, b2 = second
        return a1 * a2, a2 * b1 + b2

    if parallel:
        _, h = lax.associative_scan(compose, (a, b), axis=0)
    else:
        def body(h, step):
            h = step[0] * h + step[1]
            return h, h
        _, h = lax.scan(body, jnp.zeros(b.shape[1:], b.dtype), (a, b), unroll=unroll)
    ys = cell.emit(params, h, xp)
    if lengths is not None:
        ys = jnp.where(alive, ys, jnp.zeros_like(ys))
    final = cell.from_scan(h[-1]) if xs.shape[0] else carry
    return final.astype(carry.dtype), ys


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


def _expand(mask, ndim):
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))
