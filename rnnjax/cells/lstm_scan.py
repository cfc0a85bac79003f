"""The LSTM's time loop with a hand-written backward pass (`jax.custom_vjp`).

Autodiff of `lax.scan` accumulates the weight gradients inside the backward loop:
every step adds [I, 4H] and [H, 4H] outer products into running sums, skinny
matmuls and a full read-write of dW per step. Here the backward scan only carries
(dh, dc) and emits the gate gradients dz_t; after the loop dW_x = X^T dZ,
dW_h = H_prev^T dZ, db = sum dZ and dX = dZ W_x^T are one matmul (or sum) each over
all T*B rows. The forward computes x_t W_x inside the step: on XLA's CPU backend that
ran 2x faster than scanning over a precomputed [T, B, 4H] projection (see
benchmarks/NOTES.md).

`lstm_scan(w_x, w_h, b, xs, h0, c0, alive)` runs time-major xs [T, B, I] (gate order
i, f, g, o); `alive` [T, B] bool (or None) freezes each sequence's state past its
length and zeroes its outputs, exactly like the generic loop in `rnnjax.unroll`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax


def _forward(w_x, w_h, b, xs, h0, c0, alive, unroll):
    def body(carry, inputs):
        h, c = carry
        x_t, alive_t = inputs
        i, f, g, o = jnp.split(x_t @ w_x + h @ w_h + b, 4, axis=-1)
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

    (h, c), (ys, residuals) = lax.scan(body, (h0, c0), (xs, alive), unroll=unroll)
    return (h, c), ys, residuals


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def lstm_scan(w_x, w_h, b, xs, h0, c0, alive=None, unroll=1):
    """((h_T, c_T), ys [T, B, H]) of the LSTM over time-major xs [T, B, I]."""
    (h, c), ys, _ = _forward(w_x, w_h, b, xs, h0, c0, alive, unroll)
    return (h, c), ys


def _lstm_scan_fwd(w_x, w_h, b, xs, h0, c0, alive, unroll):
    (h, c), ys, residuals = _forward(w_x, w_h, b, xs, h0, c0, alive, unroll)
    return ((h, c), ys), (w_x, w_h, xs, alive, residuals)


def _lstm_scan_bwd(unroll, saved, cotangents):
    w_x, w_h, xs, alive, residuals = saved
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
    rows = lambda a: a.reshape(-1, a.shape[-1])  # [T, B, n] -> [T*B, n]
    dz_rows = rows(dz)
    dw_x = rows(xs).T @ dz_rows                   # one matmul each, over all steps
    dw_h = rows(residuals[0]).T @ dz_rows
    dxs = dz @ w_x.T
    dalive = None if alive is None else jnp.zeros(alive.shape, jax.dtypes.float0)
    return dw_x, dw_h, dz_rows.sum(axis=0), dxs, dh0, dc0, dalive


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
