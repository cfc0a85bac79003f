"""Parallel-in-time evaluation of a nonlinear cell by Newton's method (DEER, quasi-DEER,
ELK).

The T steps of a recurrence are one system of equations s_t = F_t(s_{t-1}) on the
flat states s_t [S] (`rnnjax.loop.flat`), F_t being the masked step of
`rnnjax.loop.masking` at input t: past a length F_t is the identity, at a reset it
restarts from the initial state s_0 (its Jacobian is 0). Newton's method linearises
every F_t at the current trajectory,

    s_t = J_t s_{t-1} + (F_t(s_{t-1}^old) - J_t s_{t-1}^old),   J_t = dF_t/ds (at s^old),

and solves that *linear* recurrence for all t at once with `jax.lax.associative_scan`
(O(log T) depth): affine maps s -> A s + b compose as (A1, b1) then (A2, b2) =
(A2 A1, A2 b1 + b2). `jacobian="full"` keeps each J_t [S, S] (DEER, Lim et al. 2024:
exact Newton; after k iterations at least the first k steps are exact, so
`max_iter >= T` reaches the sequential answer); `"diagonal"` keeps only its diagonal
(quasi-DEER, Gonzalez et al. 2024: the scan is elementwise, O(T S) memory and work,
though the diagonal is still read off each step's full Jacobian; more iterations).
`damping=lam > 0` takes Levenberg-Marquardt steps instead (ELK, Gonzalez et al. 2024):
the trajectory minimising sum_t |s_t - J_t s_{t-1} - b_t|^2 + lam |s_t - s_t^old|^2,
a Kalman smoother with unit process noise observing the old trajectory with noise
1/lam (here a sequential scan of the filter and smoother; ELK's parallel smoother is
not built). A fixed lam stalled on an expansive tanh RNN (residual stuck near 0.5),
so lam adapts as in Levenberg-Marquardt: a step that lowers
sum_t |s_t - F_t(s_{t-1})|^2 is kept and lam shrinks 3x (towards Newton, whose
convergence is quadratic near the answer); otherwise the step is dropped and lam
grows 10x. `damping` is the starting lam.

Iterations stop once the largest |s_t - F_t(s_{t-1})| is <= tol, at `max_iter`, or at
a non-finite residual (a diverging Newton). Gradients by implicit differentiation at
the solution (`jax.custom_vjp`), never through the iterations: the adjoint
a_t = g_t + J_{t+1}^T a_{t+1} is a linear recurrence backwards in time, solved by the
same associative scan with the exact (full) Jacobians in either mode, then one vjp of
all steps at once gives the params', inputs' and initial state's cotangents.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax import _linalg
from rnnjax.loop.flat import carry_codec, flat_step
from rnnjax.loop.masking import (
    alive_mask,
    masked_step,
    restarts_read_backwards,
    reverse_within_lengths,
)


class NewtonStats(NamedTuple):
    """What a Newton unroll reports beside `(carry, ys)`."""
    iterations: jax.Array   # int32 []: Newton iterations taken
    residual: jax.Array     # float []: max |s_t - F_t(s_{t-1})| of the returned trajectory
    states: Any             # the carry after every step, each leaf with a time axis
                            # (the layout of xs): a warm start (`guess`) for a later call


def reading_order(x, lengths, reverse):
    """Time-major x [T, B, ...] in the order the steps read it: unchanged, reversed
    within each length, or reversed (its own inverse: also back to input order)."""
    if not reverse:
        return x
    return x[::-1] if lengths is None else reverse_within_lengths(x, lengths)


def run(cell, params, xs, carry, *, lengths=None, resets=None, reverse=False, guess=None,
        jacobian="full", damping=None, tol=1e-6, max_iter=100):
    """`(final carry, ys [T, B, ...], NewtonStats)` of `cell` over time-major xs
    [T, B, F], checked already (`rnnjax.parallel.newton_unroll` is the checked entry):
    lengths [B] or None, resets [T, B] bool or None in input order, guess a carry
    whose leaves have a time axis first ([T, B, ...]) or None (zeros)."""
    steps, batch = xs.shape[0], xs.shape[1]
    # one sequence's carry as concrete zeros: its structure, never a traced value (the
    # custom_vjp below must not close over tracers)
    example = jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape[1:], leaf.dtype), carry)
    _, (_, aux) = flat_step(cell, params, example)
    if aux:
        raise TypeError(f"newton_unroll solves for the float carry only, and a "
                        f"{type(cell).__name__} carries non-float leaves (a step counter): "
                        f"run it with rj.unroll")
    to_flat = lambda c: flat_step(cell, params, c)[1][0]
    s0 = jax.vmap(to_flat)(carry)                                   # [B, S]
    if resets is not None and reverse:
        resets = restarts_read_backwards(resets)
    alive = alive_mask(lengths, steps)
    alive = jnp.ones((steps, batch), bool) if alive is None else alive
    restart = jnp.zeros((steps, batch), bool) if resets is None else \
        reading_order(resets, lengths, reverse)
    xp = cell.project_inputs(params, reading_order(xs, lengths, reverse))
    if guess is None:
        start = jnp.zeros((steps, *s0.shape), s0.dtype)
    else:
        start = reading_order(jax.vmap(jax.vmap(to_flat))(guess).astype(s0.dtype), lengths,
                              reverse)
    system = _System(cell, example, jacobian, damping, tol, max_iter)
    states, iterations, residual = system.solve(params, xp, s0, alive, restart,
                                                lax.stop_gradient(start))
    _, ys = system.steps(params, shifted(states, s0), xp, alive, restart, s0)
    from_flat = lambda s: carry_codec(example)[1](s, [])
    final = jax.vmap(from_flat)(states[-1])
    trajectory = jax.vmap(jax.vmap(from_flat))(reading_order(states, lengths, reverse))
    return final, reading_order(ys, lengths, reverse), NewtonStats(iterations, residual,
                                                                   trajectory)


def shifted(states, s0):
    """The state each step starts from: [s0, s_0, ..., s_{T-2}] ([T, B, S])."""
    return jnp.concatenate([s0[None], states[:-1]], axis=0)


class _System:
    """The equations s_t = F_t(s_{t-1}) of one cell, and their Newton solve."""

    def __init__(self, cell, example, jacobian, damping, tol, max_iter):
        self.cell, self.example = cell, example
        self.jacobian, self.damping, self.tol, self.max_iter = jacobian, damping, tol, max_iter
        self.solve = jax.custom_vjp(self._solve)
        self.solve.defvjp(self._solve_fwd, self._solve_bwd)

    # -- the steps ----------------------------------------------------------------
    def _one(self, params, s_prev, xp_t, alive, restart, s0):
        """The masked step of one sequence at one time: (s_t [S], y_t)."""
        step, _ = flat_step(self.cell, params, self.example)

        def plain(state, xp):
            (new, _), y = step(state, [], xp)
            return new, y

        return masked_step(plain, s_prev, xp_t, alive, restart, s0)

    def steps(self, params, prev, xp, alive, restart, s0):
        """F_t(prev_t) for every t and sequence: (states [T, B, S], ys [T, B, ...])."""
        one = jax.vmap(self._one, in_axes=(None, 0, 0, 0, 0, 0))       # over B
        return jax.vmap(one, in_axes=(None, 0, 0, 0, 0, None))(params, prev, xp, alive,
                                                                 restart, s0)

    def linearise(self, params, prev, xp, alive, restart, s0, jacobian):
        """(F_t(prev_t) [T, B, S], J_t: [T, B, S, S] full or [T, B, S] its diagonal).

        Both come from one forward-mode Jacobian per step (S jvps, vmapped): the
        diagonal of a dense cell's Jacobian has no cheaper exact form, and S jvps in
        sequence (one per diagonal entry, O(T S) memory) measured 1.5x slower for a
        GRU at H = 16 on this CPU (benchmarks/NOTES.md)."""
        def both(s_prev, xp_t, alive_t, restart_t, s0_b):
            f = lambda s: self._one(params, s, xp_t, alive_t, restart_t, s0_b)[0]
            jac = jax.jacfwd(f)(s_prev)
            return f(s_prev), jac if jacobian == "full" else jnp.diagonal(jac)

        one = jax.vmap(both, in_axes=(0, 0, 0, 0, 0))
        return jax.vmap(one, in_axes=(0, 0, 0, 0, None))(prev, xp, alive, restart, s0)

    # -- the solve ----------------------------------------------------------------
    def _solve(self, params, xp, s0, alive, restart, start):
        """(states [T, B, S], iterations, residual) from the trajectory `start`."""
        def linearised(states):
            values, jac = self.linearise(params, shifted(states, s0), xp, alive, restart, s0,
                                         self.jacobian)
            return values, jac, jnp.max(jnp.abs(states - values)), jnp.sum((states - values) ** 2)

        def more(loop):
            k, _, _, _, residual, _, _ = loop
            return (k < self.max_iter) & (residual > self.tol) & jnp.isfinite(residual)

        def iterate(loop):
            k, states, values, jac, residual, merit, damping = loop
            prev = shifted(states, s0)
            if not self.damping:
                new = _affine_solve(jac, values - _apply(jac, prev), values[0])
                return (k + 1, new, *linearised(new), damping)
            new = _damped_step(jac, values, prev, states, damping)
            tried = linearised(new)
            # Levenberg-Marquardt's rule: keep a step that lowers sum |s_t - F_t|^2 and
            # trust the linearisation more (damping / 3); else stay and damp 10x more
            better = jnp.isfinite(tried[3]) & (tried[3] < merit)
            kept = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b),
                                          (new, *tried), (states, values, jac, residual, merit))
            return (k + 1, *kept, jnp.where(better, damping / 3.0, damping * 10.0))

        start_damping = jnp.asarray(self.damping or 0.0, start.dtype)
        k, states, _, _, residual, _, _ = lax.while_loop(
            more, iterate, (jnp.int32(0), start, *linearised(start), start_damping))
        return states, k, residual

    def _solve_fwd(self, params, xp, s0, alive, restart, start):
        out = self._solve(params, xp, s0, alive, restart, start)
        return out, (params, xp, s0, alive, restart, out[0])

    def _solve_bwd(self, saved, cotangents):
        params, xp, s0, alive, restart, states = saved
        g = cotangents[0]                                               # [T, B, S]
        prev = shifted(states, s0)
        _, jac = self.linearise(params, prev, xp, alive, restart, s0, "full")
        # a_t = g_t + J_{t+1}^T a_{t+1}: read backwards, the affine recurrence
        # u_k = J_{T-k}^T u_{k-1} + g_{T-1-k}
        later = jnp.concatenate([jnp.swapaxes(jac[1:], -1, -2), jnp.zeros_like(jac[:1])])
        adjoint = _affine_solve(later[::-1], g[::-1], g[-1])[::-1]
        _, pullback = jax.vjp(
            lambda p, x, s: self.steps(p, shifted(states, s), x, alive, restart, s)[0],
            params, xp, s0)
        dparams, dxp, ds0 = pullback(adjoint)
        return dparams, dxp, ds0, None, None, None


def _apply(jac, v):
    """J v for full [..., S, S] or diagonal [..., S] Jacobians."""
    return jnp.einsum("...ij,...j->...i", jac, v) if jac.ndim == v.ndim + 1 else jac * v


def _affine_solve(jac, offsets, first):
    """s_t = J_t s_{t-1} + offsets_t for t >= 1 with s_0 = `first`: [T, B, S], by
    `jax.lax.associative_scan` (J full [T, B, S, S] or diagonal [T, B, S])."""
    full = jac.ndim == offsets.ndim + 1

    def compose(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        a = jnp.einsum("...ij,...jk->...ik", a2, a1) if full else a2 * a1
        return a, _apply(a2, b1) + b2

    offsets = offsets.at[0].set(first)
    return lax.associative_scan(compose, (jac, offsets), axis=0)[1]


def _damped_step(jac, values, prev, old, damping):
    """The Levenberg-Marquardt (ELK) step: the smoothed mean of the linearised
    dynamics s_t = J_t s_{t-1} + b_t + w_t (w ~ N(0, I); s_{-1} = s0 given) observed as
    old_t = s_t + v_t (v ~ N(0, I / damping)); a Rauch-Tung-Striebel smoother."""
    offsets = (values - _apply(jac, prev)).at[0].set(values[0])
    full = jac.ndim == values.ndim + 1
    size = values.shape[-1]
    eye = jnp.eye(size, dtype=values.dtype)
    noise = 1.0 / damping
    jac = jac.at[0].set(0.0)

    def filter_step(carry, inputs):
        mean, cov = carry
        a, b, seen = inputs
        if full:
            pred_mean = _apply(a, mean) + b
            pred_cov = jnp.einsum("...ij,...jk,...lk->...il", a, cov, a) + eye
            gain = pred_cov @ _linalg.inverse(pred_cov + noise * eye)
            new_mean = pred_mean + _apply(gain, seen - pred_mean)
            new_cov = pred_cov - gain @ pred_cov
        else:
            pred_mean, pred_cov = a * mean + b, a * a * cov + 1.0
            gain = pred_cov / (pred_cov + noise)
            new_mean, new_cov = pred_mean + gain * (seen - pred_mean), (1.0 - gain) * pred_cov
        return (new_mean, new_cov), (new_mean, new_cov, pred_mean, pred_cov)

    zero_cov = jnp.zeros(jac.shape[1:], values.dtype)
    _, (means, covs, pred_means, pred_covs) = lax.scan(
        filter_step, (jnp.zeros_like(values[0]), zero_cov), (jac, offsets, old))

    def smooth_step(later_mean, inputs):
        mean, cov, a_next, pred_mean_next, pred_cov_next = inputs
        if full:
            gain = cov @ jnp.swapaxes(a_next, -1, -2) @ _linalg.inverse(pred_cov_next)
        else:
            gain = cov * a_next / pred_cov_next
        smoothed = mean + _apply(gain, later_mean - pred_mean_next)
        return smoothed, smoothed

    _, smoothed = lax.scan(smooth_step, means[-1],
                           (means[:-1], covs[:-1], jac[1:], pred_means[1:], pred_covs[1:]),
                           reverse=True)
    return jnp.concatenate([smoothed, means[-1:]], axis=0)
