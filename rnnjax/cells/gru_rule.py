"""The GRU's loop rules: `LoopRule`s for `rnnjax.cells.loop_rule.run_loop_rule`.

Params {"W_x" [I, 3H], "W_h" [H, 3H], "b" [3H]} (+ "b_hn" [H] with reset_after),
gate order r, z, n; carry h. With a = x W_x + b and u = h W_h (blocks r, z, n):

    reset_after:  n = tanh(a_n + r * m),           m = u_n + b_hn
    reset before: n = tanh(a_n + (r * h) W_hn)
    h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)

The backward emits dA [T, B, 3H], the gradient of the input-side pre-activations
(r and z blocks are also their recurrent-side gradients), and with reset_after dm
[T, B, H], the gradient of m; the weight gradients follow as matmuls over all steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import split_gates
from rnnjax.cells.loop_rule import LoopRule, keep_alive, rows


def _forward(params, xs, h, alive, unroll, reset_after):
    w_x, w_h, b = params["W_x"], params["W_h"], params["b"]
    hidden = w_h.shape[0]
    w_h_rz, w_h_n = w_h[:, :2 * hidden], w_h[:, 2 * hidden:]

    def body(h, inputs):
        x_t, alive_t = inputs
        a_r, a_z, a_n = split_gates(x_t @ w_x + b, 3)
        if reset_after:
            u_r, u_z, u_n = split_gates(h @ w_h, 3)
            r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
            m = u_n + params["b_hn"]
            n = jnp.tanh(a_n + r * m)
            saved = (h, r, z, n, m)
        else:
            u_r, u_z = split_gates(h @ w_h_rz, 2)
            r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
            n = jnp.tanh(a_n + (r * h) @ w_h_n)
            saved = (h, r, z, n)
        h_new = n + z * (h - n)
        y = keep_alive(alive_t, h_new, jnp.zeros_like(h_new))
        return keep_alive(alive_t, h_new, h), (y, saved)

    h, (ys, residuals) = lax.scan(body, h, (xs, alive), unroll=unroll)
    return h, ys, residuals


def _backward(params, dys, residuals, alive, dh, unroll, reset_after):
    w_h = params["W_h"]
    hidden = w_h.shape[0]
    w_h_t, w_h_rz_t, w_h_n_t = w_h.T, w_h[:, :2 * hidden].T, w_h[:, 2 * hidden:].T

    def body(dh, inputs):
        dy, saved, alive_t = inputs
        h_prev, r, z, n = saved[:4]
        dh_total = dh + dy
        dn_pre = dh_total * (1.0 - z) * (1.0 - n ** 2)
        dz_pre = dh_total * (h_prev - n) * z * (1.0 - z)
        if reset_after:
            m = saved[4]
            dr_pre = dn_pre * m * r * (1.0 - r)
            dm = dn_pre * r
            du = jnp.concatenate([dr_pre, dz_pre, dm], axis=-1)
            dh_prev = dh_total * z + du @ w_h_t
            emitted = (jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1), dm)
        else:
            dq = dn_pre @ w_h_n_t  # q = r * h_prev feeds n through W_hn
            dr_pre = dq * h_prev * r * (1.0 - r)
            du_rz = jnp.concatenate([dr_pre, dz_pre], axis=-1)
            dh_prev = dh_total * z + dq * r + du_rz @ w_h_rz_t
            emitted = (jnp.concatenate([du_rz, dn_pre], axis=-1),)
        # a frozen step passes dh through untouched and feeds no weight
        emitted = tuple(keep_alive(alive_t, e, jnp.zeros_like(e)) for e in emitted)
        return keep_alive(alive_t, dh_prev, dh), emitted

    return lax.scan(body, dh, (dys, residuals, alive), reverse=True, unroll=unroll)


def _grads(params, xs, residuals, emitted, reset_after):
    hidden = params["W_h"].shape[0]
    da = rows(emitted[0])
    h_prev = rows(residuals[0])
    dw_h_rz = h_prev.T @ da[:, :2 * hidden]
    dparams = {"W_x": rows(xs).T @ da, "b": da.sum(axis=0)}
    if reset_after:
        dm = rows(emitted[1])
        dparams["W_h"] = jnp.concatenate([dw_h_rz, h_prev.T @ dm], axis=1)
        dparams["b_hn"] = dm.sum(axis=0)
    else:
        q = rows(residuals[1]) * h_prev  # r * h_prev of every step
        dparams["W_h"] = jnp.concatenate([dw_h_rz, q.T @ da[:, 2 * hidden:]], axis=1)
    return dparams, emitted[0] @ params["W_x"].T


@functools.cache
def loop_rule(reset_after: bool) -> LoopRule:
    """The GRU's rule for either form (cached: one object per form)."""
    return LoopRule(functools.partial(_forward, reset_after=reset_after),
                    functools.partial(_backward, reset_after=reset_after),
                    functools.partial(_grads, reset_after=reset_after))
