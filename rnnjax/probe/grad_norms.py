"""||dL/dh_k|| for every step k from one backward pass, as norms or as their logs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax.cells.base import step_params
from rnnjax.loop.api import unroll
from rnnjax.loop.flat import carry_codec
from rnnjax.probe.jacobians import hidden_mask


def scaled_norm(v, axis=-1):
    """||v||_2 along `axis`, computed as m ||v / m|| with m = max |v|, so that entries
    whose squares underflow (|v| < 1e-19 in float32) still give their norm."""
    m = jnp.max(jnp.abs(v), axis=axis, keepdims=True)
    safe = jnp.where((m > 0) & jnp.isfinite(m), m, 1.0)
    norm = jnp.squeeze(safe, axis) * jnp.linalg.norm(v / safe, axis=axis)
    return jnp.where(jnp.isinf(jnp.squeeze(m, axis)), jnp.inf, norm)


def log_norm(v):
    """ln ||v||_2 of a vector without under- or overflow (-inf for v = 0)."""
    m = jnp.max(jnp.abs(v))
    safe = jnp.where(m > 0, m, 1.0)
    return jnp.where(m > 0, jnp.log(safe) + jnp.log(jnp.linalg.norm(v / safe)), -jnp.inf)


def hidden_grad_norms(cell, params, xs, loss_fn, carry=None, per_example=False):
    """The norm of dL/dh_k for every step k, from ONE backward pass.

    A zero perturbation e_k is added to the hidden state after each step k inside the
    scan (h_k <- h_k + e_k, which also feeds the output y_k = h_k and every later
    step); dL/de_k at e = 0 is exactly the total derivative dL/dh_k. One reverse pass
    gives all T of them, where the naive probe needs T backward passes.

    Args:
      cell: a cell (or a `Stacked` of cells: h is the top layer's state).
      params: its params.
      xs: float [B, T, F].
      loss_fn: outputs [B, T, H] -> scalar.
      carry: initial carry, or None for zeros.
      per_example: return [B, T] (one curve per sequence) instead of the batch mean.

    Returns:
      [T] float: mean over the batch of ||dL/dh_k||_2, k = 0 .. T-1.
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    xp = jnp.swapaxes(cell.project_inputs(params, xs), 0, 1)  # [T, B, G*H]
    prepared = step_params(cell, params)

    def loss_of_perturbation(eps):
        def body(c, inputs):
            xp_t, e_t = inputs
            c, _ = cell.step(prepared, c, xp_t)
            c = cell.replace_hidden(c, cell.hidden(c) + e_t)
            return c, cell.output(params, c, xp_t)

        _, hs = lax.scan(body, carry, (xp, eps))
        return loss_fn(jnp.swapaxes(hs, 0, 1))

    zeros = jnp.zeros((xs.shape[1], *cell.hidden(carry).shape), xs.dtype)
    grads = jax.grad(loss_of_perturbation)(zeros)             # [T, B, *h]
    norms = scaled_norm(grads.reshape(*grads.shape[:2], -1))   # [T, B]: h flattened
    return norms.T if per_example else norms.mean(axis=1)


def hidden_grad_log_norms(cell, params, xs, loss_fn, carry=None, per_example=False):
    """ln ||dL/dh_k|| for every step k, exact where the norms themselves would under-
    or overflow the float type (a decay of 0.35 per step reaches e^-3500 after 10^4
    steps; float32 ends at e^-103).

    The same quantity as `hidden_grad_norms`, from one forward pass that keeps the
    states and one reverse scan of the carry's cotangent g_k = dL/dc_k = (dy_k/dc_k)^T
    dL/dy_k + J_{k+1}^T g_{k+1}, kept as a unit vector times exp(log scale) and
    renormalised at every step. Returns [T] (the log of the batch mean of the norms)
    or [B, T] with `per_example`; -inf where a gradient is exactly zero.
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    if xs.shape[1] == 0:
        raise ValueError(f"xs must have at least one step, got shape {tuple(xs.shape)}")
    xp = jnp.swapaxes(cell.project_inputs(params, xs), 0, 1)   # [T, B, K]
    prepared = step_params(cell, params)
    _, ys = lax.scan(lambda c, xp_t: cell.step(prepared, c, xp_t), carry, xp)
    dys = jax.grad(lambda ys: loss_fn(jnp.swapaxes(ys, 0, 1)))(ys)   # [T, B, H]
    example = jax.tree_util.tree_map(lambda leaf: leaf[0], carry)
    to_flat, from_flat = carry_codec(example)
    mask = hidden_mask(cell, example)

    def one_sequence(carry_b, xp_b, dy_b):
        def step(state, aux, xp_t):
            return to_flat(cell.step(prepared, from_flat(state, aux), xp_t)[0])

        def forward(state_aux, xp_t):
            new = step(*state_aux, xp_t)
            return new, new

        _, (states, auxes) = lax.scan(forward, to_flat(carry_b), xp_b)
        xp_next = jnp.concatenate([xp_b[1:], xp_b[:1]], axis=0)   # step k + 1's input

        def backward(acc, inputs):
            g_unit, log_scale = acc          # g_{k+1} = exp(log_scale) g_unit
            state, aux, xp_k, xp_k1, dy_k = inputs
            _, pull_step = jax.vjp(lambda s: step(s, aux, xp_k1)[0], state)
            _, pull_out = jax.vjp(lambda s: cell.output(params, from_flat(s, aux), xp_k),
                                  state)
            through, direct = pull_step(g_unit)[0], pull_out(dy_k)[0]
            log_through = log_scale + log_norm(through)
            log_direct = log_norm(direct)
            top = jnp.maximum(log_through, log_direct)
            top_safe = jnp.where(jnp.isfinite(top), top, 0.0)

            def unit(v, log_v):   # v * exp(log_v - top) / ||v||, without forming ||v||
                m = jnp.max(jnp.abs(v))
                scaled = v / jnp.where(m > 0, m, 1.0)
                size = jnp.linalg.norm(scaled)
                weight = jnp.exp(log_v - top_safe)
                return jnp.where(size > 0, scaled / jnp.where(size > 0, size, 1.0), 0.0) * weight

            g = unit(through, log_through) + unit(direct, log_direct)
            size = jnp.linalg.norm(g)
            g_unit = g / jnp.where(size > 0, size, 1.0)
            log_scale = jnp.where(size > 0, top_safe + jnp.log(jnp.where(size > 0, size, 1.0)),
                                  -jnp.inf)
            return (g_unit, log_scale), log_scale + log_norm(jnp.where(mask, g_unit, 0.0))

        start = (jnp.zeros_like(states[0]), jnp.asarray(-jnp.inf, states.dtype))
        _, logs = lax.scan(backward, start, (states, auxes, xp_b, xp_next, dy_b),
                           reverse=True)
        return logs

    per_sequence = jax.vmap(one_sequence, in_axes=(0, 1, 1))(carry, xp, dys)   # [B, T]
    if per_example:
        return per_sequence
    return jax.nn.logsumexp(per_sequence, axis=0) - jnp.log(per_sequence.shape[0])


def truncated_param_grad_norms(cell, params, xs, loss_fn, truncations, carry=None):
    """||dL/dparams|| (global l2 norm) with backpropagation cut k steps before the end.

    For each k in `truncations` the carry entering step T-k goes through
    `stop_gradient`, so no gradient path crosses that boundary; k = T is full BPTT.
    With a loss on the last output this is exactly truncated BPTT of length k, and
    the curve against k shows how much of the gradient the far past contributes.

    Returns [len(truncations)] floats; the batch is whatever `loss_fn` averages.
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    steps = xs.shape[1]
    ks = jnp.asarray(truncations)
    if ks.ndim != 1 or not jnp.issubdtype(ks.dtype, jnp.integer):
        raise ValueError(f"truncations must be a 1-D list of ints, got shape {ks.shape} "
                         f"and dtype {ks.dtype}")
    if _checks.is_concrete(ks) and ks.size and (int(ks.min()) < 1 or int(ks.max()) > steps):
        raise ValueError(f"truncations must lie in [1, {steps}] (T = {steps}), "
                         f"got values in [{int(ks.min())}, {int(ks.max())}]")
    xs_tm = jnp.swapaxes(xs, 0, 1)

    def loss_truncated(params, k):
        def body(c, inputs):
            x_t, t = inputs
            c = jax.tree_util.tree_map(
                lambda a: jnp.where(t == steps - k, lax.stop_gradient(a), a), c)
            return cell.step(params, c, cell.project_inputs(params, x_t))

        _, ys = lax.scan(body, carry, (xs_tm, jnp.arange(steps)))
        return loss_fn(jnp.swapaxes(ys, 0, 1))

    def norm_at(k):
        grads = jax.grad(loss_truncated)(params, k)
        return jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(grads)))

    return jax.vmap(norm_at)(ks)


def naive_hidden_grad_norms(cell, params, xs, loss_fn):
    """The reference `hidden_grad_norms`: T separate backward passes, O(T^2) work.

    For each k: run to h_k, then differentiate the rest of the computation (the later
    outputs and the loss) with respect to h_k. Returns [B, T] (per example). For
    tests and the cost benchmark only.
    """
    batch, steps = xs.shape[:2]
    carry0 = cell.initial_carry((batch,))
    norms = []
    for k in range(steps):
        carry_k, ys_head = unroll(cell, params, xs[:, :k + 1], carry=carry0)

        def loss_of_h(h_k):
            c = cell.replace_hidden(carry_k, h_k)
            y_k = cell.output(params, c, cell.project_inputs(params, xs[:, k]))
            ys_tail = unroll(cell, params, xs[:, k + 1:], carry=c)[1] if k + 1 < steps \
                else jnp.zeros((batch, 0, *y_k.shape[1:]))
            ys = jnp.concatenate([ys_head[:, :k], y_k[:, None], ys_tail], axis=1)
            return loss_fn(ys)

        g = jax.grad(loss_of_h)(cell.hidden(carry_k))
        norms.append(jnp.linalg.norm(g.reshape(batch, -1), axis=-1))
    return jnp.stack(norms, axis=1)  # [B, T]


def param_sensitivity(cell, params, xs, carry=None):
    """||d h_T / d theta||_F for each params leaf: how far the final hidden state moves
    when a parameter does (Zucchet & Orvieto 2024), mean over the batch.

    This is not a gradient through time: for an element-wise linear recurrence it
    grows without bound as |lambda| -> 1 even though ||dh_T/dh_k|| stays <= 1.
    Exact (one reverse pass per hidden unit, per sequence). Returns a pytree shaped
    like `params`, of scalars.
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)

    def final_hidden(p, xs_b, carry_b):
        final, _ = unroll(cell, p, xs_b[None],
                          jax.tree_util.tree_map(lambda c: c[None], carry_b))
        return cell.hidden(final)[0]

    def one_sequence(xs_b, carry_b):
        jac = jax.jacrev(final_hidden)(params, xs_b, carry_b)   # leaves [H, *leaf]
        return jax.tree_util.tree_map(jnp.linalg.norm, jac)

    per_sequence = jax.vmap(one_sequence)(xs, carry)
    return jax.tree_util.tree_map(lambda n: n.mean(axis=0), per_sequence)
