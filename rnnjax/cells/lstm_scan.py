"""The LSTM's time loop with a hand-written backward pass (`jax.custom_vjp`).

Autodiff of `lax.scan` accumulates the recurrent weight gradient inside the
backward loop: every step adds an [H, 4H] outer product h_{t-1}^T dz_t into a
running sum, a small matmul and a full read-write of dW_h per step. Here the
backward scan only carries (dh, dc) and emits the gate gradients dz_t; after the
loop, dW_h = sum_t h_{t-1}^T dz_t is ONE matmul of [H, T*B] by [T*B, 4H]. The
gradient of the projected inputs is dz itself, so the input matmul's gradient (done
by autodiff outside, over all steps) is one matmul too.

`lstm_scan(w_h, xp, h0, c0, alive)` runs time-major xp [T, B, 4H] (x W_x + b, gate
order i, f, g, o); `alive` [T, B] bool (or None) freezes each sequence's state past
its length and zeroes its outputs, exactly like the generic loop in `rnnjax.unroll`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax


def _forward(w_h, xp, h0, c0, alive, unroll):
    def body(carry, inputs):
        h, c = carry
        xp_t, alive_t = inputs
        i, f, g, o = jnp.split(xp_t + h @ w_h, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c_new = f * c + i * g
        tanh_c = jnp.tanh(c_new)
        h_new = o * tanh_c
        y = h_new
        if alive_t is not None:
            keep = alive_t[:, None]
            h_new, c_new = jnp.where(keep, h_new, h), jnp.where(keep, c_new, c)
            y = jnp.where(keep, y, jnp.zeros_like(y))
        return (h_new, c_new), (y, (h, c, i, f, g, o, tanh_c))

    (h, c), (ys, residuals) = lax.scan(body, (h0, c0), (xp, alive), unroll=unroll)
    return (h, c), ys, residuals


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def lstm_scan(w_h, xp, h0, c0, alive=None, unroll=1):
    """((h_T, c_T), ys [T, B, H]) of the LSTM recurrence on projected inputs."""
    (h, c), ys, _ = _forward(w_h, xp, h0, c0, alive, unroll)
    return (h, c), ys


def _lstm_scan_fwd(w_h, xp, h0, c0, alive, unroll):
    (h, c), ys, residuals = _forward(w_h, xp, h0, c0, alive, unroll)
    return ((h, c), ys), (w_h, alive, residuals)


def _lstm_scan_bwd(unroll, saved, cotangents):
    w_h, alive, residuals = saved
    (dh_final, dc_final), dys = cotangents
    w_h_t = w_h.T

    def body(carry, inputs):
        dh, dc = carry
        dy, (h_prev, c_prev, i, f, g, o, tanh_c), alive_t = inputs
        dh_total = dh + dy
        do = dh_total * tanh_c
        dc_total = dc + dh_total * o * (1.0 - tanh_c ** 2)
        dz = jnp.concatenate([dc_total * g * i * (1.0 - i),
                              dc_total * c_prev * f * (1.0 - f),
                              dc_total * i * (1.0 - g ** 2),
                              do * o * (1.0 - o)], axis=-1)
        dh_prev, dc_prev = dz @ w_h_t, dc_total * f
        if alive_t is not None:  # a frozen step passes (dh, dc) through untouched
            keep = alive_t[:, None]
            dz = jnp.where(keep, dz, jnp.zeros_like(dz))
            dh_prev, dc_prev = jnp.where(keep, dh_prev, dh), jnp.where(keep, dc_prev, dc)
        return (dh_prev, dc_prev), dz

    (dh0, dc0), dz = lax.scan(body, (dh_final, dc_final), (dys, residuals, alive),
                              reverse=True, unroll=unroll)
    h_prev = residuals[0]
    hidden = h_prev.shape[-1]
    dw_h = h_prev.reshape(-1, hidden).T @ dz.reshape(-1, dz.shape[-1])  # one matmul
    dalive = None if alive is None else jnp.zeros(alive.shape, jax.dtypes.float0)
    return dw_h, dz, dh0, dc0, dalive


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
