"""Parallel-in-time evaluation of nonlinear cells: `newton_unroll` (DEER, quasi-DEER,
ELK; the method is in `rnnjax.loop.newton`).

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> from rnnjax import parallel
>>> cell = rj.GRU(hidden_size=4)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> xs = jax.random.normal(jax.random.key(1), (2, 50, 3))
>>> carry, ys, stats = parallel.newton_unroll(cell, params, xs)
>>> bool(jnp.abs(ys - rj.unroll(cell, params, xs)[1]).max() < 1e-5), int(stats.iterations) < 10
(True, True)
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.loop import newton
from rnnjax.loop.newton import NewtonStats

JACOBIANS = ("full", "diagonal")
#: the default tol by dtype: a few hundred times the step's rounding at |h| ~ 1
DEFAULT_TOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 1e-6,
               jnp.dtype(jnp.bfloat16): 1e-2, jnp.dtype(jnp.float16): 1e-2}


def newton_unroll(model, params, xs, *, jacobian="full", damping=None, tol=None,
                  max_iter=100, seq_lengths=None, carry=None, reverse=False, resets=None,
                  guess=None, time_major=False):
    """Run `model` over `xs` by Newton's method on all steps at once; return
    `(final_carry, outputs, stats)`: the first two as `rj.unroll` returns them.

    Args:
      model: a cell with a step map (`cell.step`, a float carry), or a `Stacked` of them.
      params, xs, carry, seq_lengths, reverse, resets, time_major: as in `rj.unroll`
        (xs [B, T, F]; [T, B, F] with `time_major=True`).
      jacobian: "full" (DEER: each step's S x S state Jacobian; exact Newton, and
        `max_iter >= T` reaches the sequential answer) or "diagonal" (quasi-DEER: its
        diagonal only; O(T S) per iteration, more iterations).
      damping: None or 0 for Newton steps; lam > 0 for Levenberg-Marquardt steps
        (ELK): each new trajectory also pays lam |s_t - s_t^old|^2, which keeps
        iterations finite where Newton diverges (larger lam: shorter steps).
      tol: stop once max_t |s_t - F_t(s_{t-1})| <= tol (default `DEFAULT_TOL` of the
        dtype: 1e-6 for float32, 1e-12 for float64).
      max_iter: at most this many iterations (also stops at a non-finite residual).
      guess: the starting trajectory: None (zeros), or the carry after every step in
        the layout of xs (each leaf [B, T, ...]), e.g. the previous call's
        `stats.states` (a warm start between training steps).

    `stats` is a `NewtonStats`: `iterations`, the final `residual` (compare it with
    `tol`: a run that stopped at `max_iter` or diverged says so there), and `states`.
    Gradients (reverse mode) come by implicit differentiation at the solution.
    """
    _checks.sequence_model("model", model)
    _newton_model(model)
    _checks.model_params(model, params)
    layout = "[T, B, F] (time_major=True)" if time_major else "[B, T, F]"
    xs = _checks.sequence_input("xs", xs, _checks.input_shape(model, params), time_major)
    _checks.finite("xs", xs)
    _checks.finite("carry", carry)
    if not time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    steps, batch = xs.shape[0], xs.shape[1]
    lengths = None if seq_lengths is None else _checks.seq_lengths(seq_lengths, batch, steps)
    dtype = _checks.compute_dtype(params, xs)
    carry = _checks.carry_or_initial(model, carry, (batch,), dtype)
    if resets is not None:
        resets = _checks.resets(resets, (steps, batch) if time_major else (batch, steps),
                                layout)
        resets = resets if time_major else resets.T
    if jacobian not in JACOBIANS:
        raise ValueError(f"jacobian must be 'full' or 'diagonal', got {jacobian!r}")
    damping = _nonnegative("damping", 0.0 if damping is None else damping)
    tol = _nonnegative("tol", DEFAULT_TOL.get(jnp.dtype(dtype), 1e-6) if tol is None else tol)
    max_iter = _checks.positive_int("max_iter", max_iter)
    if guess is not None:
        guess = _trajectory("guess", guess, carry, steps, time_major)
    if steps == 0:
        ys = jnp.zeros((batch, 0, *_checks.output_shape(model)), dtype)
        states = jax.tree_util.tree_map(lambda c: jnp.zeros((batch, 0, *c.shape[1:]), c.dtype),
                                        carry)
        stats = NewtonStats(jnp.int32(0), jnp.zeros((), dtype), states)
        return carry, (jnp.swapaxes(ys, 0, 1) if time_major else ys), _layout(stats, time_major)
    final, ys, stats = _newton_compiled(model, params, xs, carry, lengths, resets, guess,
                                        reverse=bool(reverse), jacobian=jacobian,
                                        damping=damping, tol=tol, max_iter=max_iter)
    ys = ys if time_major else jnp.swapaxes(ys, 0, 1)
    return final, ys, _layout(stats, time_major)


@partial(jax.jit, static_argnames=("model", "reverse", "jacobian", "damping", "tol",
                                   "max_iter"))
def _newton_compiled(model, params, xs, carry, lengths, resets, guess, *, reverse, jacobian,
                     damping, tol, max_iter):
    return newton.run(model, params, xs, carry, lengths=lengths, resets=resets,
                      reverse=reverse, guess=guess, jacobian=jacobian, damping=damping,
                      tol=tol, max_iter=max_iter)


def _layout(stats, time_major):
    """Stats with the states' time axis where xs has it."""
    if time_major:
        return stats
    return stats._replace(states=jax.tree_util.tree_map(lambda s: jnp.swapaxes(s, 0, 1),
                                                        stats.states))


def _newton_model(model):
    """Check that `model` has one step map on a float carry (a cell or a Stacked of cells)."""
    if hasattr(model, "fwd") and hasattr(model, "bwd"):
        raise _checks.InputTypeError(
            "newton_unroll solves one step map forward in time, so model must be a cell or "
            "a Stacked of cells; got a Bidirectional: run each direction as a cell "
            "(model.fwd with params['fwd'], and model.bwd with params['bwd'] and "
            "reverse=True)")
    layers = getattr(model, "layers", None)
    if isinstance(layers, tuple) and any(not hasattr(layer, "step") for layer in layers):
        raise _checks.InputTypeError(
            "newton_unroll solves one step map forward in time, so model must be a cell or "
            "a Stacked of cells; got a Stacked holding Bidirectional layers")
    if not (hasattr(model, "step") and hasattr(model, "project_inputs")):
        raise _checks.InputTypeError(
            f"newton_unroll needs the cell protocol's step and project_inputs; a "
            f"{type(model).__name__} has no step map (see rj.check_cell)")


def _nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise _checks.InputTypeError(f"{name} must be a number >= 0, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _trajectory(name, guess, carry, steps, time_major):
    """Check a trajectory of carries (each leaf the carry's with a time axis) and
    return it time-major."""
    axis = 0 if time_major else 1
    expected = jax.tree_util.tree_map(
        lambda c: jax.ShapeDtypeStruct(c.shape[:axis] + (steps,) + c.shape[axis:], c.dtype),
        carry)
    _checks.same_structure(name, guess, expected)
    _checks.finite(name, guess)
    return guess if time_major else jax.tree_util.tree_map(lambda g: jnp.swapaxes(g, 0, 1),
                                                             guess)
