"""The LSTM's time loop with a hand-written backward pass (`jax.custom_vjp`).

Autodiff of `lax.scan` accumulates the weight gradients inside the backward loop:
every step adds [I, 4H] and [H, 4H] outer products into running sums, skinny
matmuls and a full read-write of dW per step. Here the backward scan only carries
(dh, dc) and emits the gate gradients dz_t; after the loop dW_x = X^T dZ,
dW_h = H_prev^T dZ, db = sum dZ and dX = dZ W_x^T are one matmul (or sum) each over
all T*B rows. The forward computes x_t W_x inside the step: on XLA's CPU backend that
ran 2x faster than scanning over a precomputed [T, B, 4H] projection (see
benchmarks/NOTES.md).

`lstm_scan(w_x, w_h, b, xs, h0, c0, alive, unroll, chunk)` runs time-major xs
[T, B, I] (gate order i, f, g, o); `alive` [T, B] bool (or None) freezes each
sequence's state past its length and zeroes its outputs, exactly like the generic
loop in `rnnjax.unroll` (alive must be a prefix in time: t < length).

`chunk=K` is the rematerialising version for long sequences: the forward keeps only
the carry at every K-th step; the backward walks the chunks from the end, re-runs
each chunk's forward from its saved carry, back-propagates through it and adds the
chunk's weight gradients (one matmul each over its K*B rows). Memory O(T/K + K)
steps instead of O(T), for one extra forward pass.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax


def _forward(w_x, w_h, b, xs, h0, c0, alive, unroll):
    """Scan of the LSTM step: ((h, c), ys, residuals of every step for the backward)."""
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


def _backward(w_h, dys, residuals, alive, dh, dc, unroll):
    """Reverse scan carrying (dh, dc): ((dh_0, dc_0), dz [T, B, 4H] of every step)."""
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

    return lax.scan(body, (dh, dc), (dys, residuals, alive), reverse=True, unroll=unroll)


def _weight_grads(w_x, xs, h_prev, dz):
    """dW_x, dW_h, db, dxs from the gate gradients dz [T, B, 4H]: one matmul each."""
    rows = lambda a: a.reshape(-1, a.shape[-1])  # [T, B, n] -> [T*B, n]
    dz_rows = rows(dz)
    return rows(xs).T @ dz_rows, rows(h_prev).T @ dz_rows, dz_rows.sum(axis=0), dz @ w_x.T


@partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def lstm_scan(w_x, w_h, b, xs, h0, c0, alive=None, unroll=1, chunk=None):
    """((h_T, c_T), ys [T, B, H]) of the LSTM over time-major xs [T, B, I]."""
    (h, c), ys, _ = _forward(w_x, w_h, b, xs, h0, c0, alive, unroll)
    return (h, c), ys


def _lstm_scan_fwd(w_x, w_h, b, xs, h0, c0, alive, unroll, chunk):
    if chunk is None:
        (h, c), ys, residuals = _forward(w_x, w_h, b, xs, h0, c0, alive, unroll)
        return ((h, c), ys), (w_x, w_h, b, xs, alive, residuals)
    steps = xs.shape[0]
    xs_c, alive_c = _chunked(xs, alive, chunk)

    def run_chunk(carry, inputs):  # only the carry at the chunk's start is kept
        x_k, alive_k = inputs
        (h, c), ys, _ = _forward(w_x, w_h, b, x_k, *carry, alive_k, unroll)
        return (h, c), (ys, carry)

    (h, c), (ys, starts) = lax.scan(run_chunk, (h0, c0), (xs_c, alive_c))
    ys = ys.reshape((-1,) + ys.shape[2:])[:steps]
    return ((h, c), ys), (w_x, w_h, b, xs, alive, starts)


def _lstm_scan_bwd(unroll, chunk, saved, cotangents):
    w_x, w_h, b, xs, alive, saved_states = saved
    (dh, dc), dys = cotangents
    dalive = None if alive is None else jnp.zeros(alive.shape, jax.dtypes.float0)
    if chunk is None:
        residuals = saved_states
        (dh0, dc0), dz = _backward(w_h, dys, residuals, alive, dh, dc, unroll)
        dw_x, dw_h, db, dxs = _weight_grads(w_x, xs, residuals[0], dz)
        return dw_x, dw_h, db, dxs, dh0, dc0, dalive

    steps = xs.shape[0]
    xs_c, alive_c = _chunked(xs, alive, chunk)
    dys_c, _ = _chunked(dys, None, chunk)

    def chunk_grads(carry, inputs):  # from the last chunk to the first
        dh, dc, dw_x, dw_h, db = carry
        x_k, alive_k, dy_k, (h_k, c_k) = inputs
        _, _, residuals = _forward(w_x, w_h, b, x_k, h_k, c_k, alive_k, unroll)
        (dh, dc), dz = _backward(w_h, dy_k, residuals, alive_k, dh, dc, unroll)
        gw_x, gw_h, gb, dx_k = _weight_grads(w_x, x_k, residuals[0], dz)
        return (dh, dc, dw_x + gw_x, dw_h + gw_h, db + gb), dx_k

    zeros = jax.tree_util.tree_map(jnp.zeros_like, (w_x, w_h, b))
    (dh0, dc0, dw_x, dw_h, db), dxs = lax.scan(
        chunk_grads, (dh, dc, *zeros), (xs_c, alive_c, dys_c, saved_states), reverse=True)
    dxs = dxs.reshape((-1,) + dxs.shape[2:])[:steps]
    return dw_x, dw_h, db, dxs, dh0, dc0, dalive


def remat_chunk(steps):
    """Chunk length for `chunk=`: about sqrt(T), a divisor of T where one lies within
    a factor 2 of sqrt(T) (the chunks then need no padding steps, no copy of xs)."""
    root = math.isqrt(max(steps - 1, 0)) + 1
    divisors = [d for d in range(max(root // 2, 1), 2 * root + 1) if steps % d == 0]
    return min(divisors, key=lambda d: abs(d - root)) if divisors else root


def _chunked(xs, alive, chunk):
    """[T, ...] -> [ceil(T / chunk), chunk, ...]; padding steps are dead (alive False)."""
    steps, batch = xs.shape[0], xs.shape[1]
    n = -(-steps // chunk)
    pad = n * chunk - steps
    if pad and alive is None:
        alive = jnp.ones((steps, batch), bool)
    if alive is not None:
        alive = jnp.pad(alive, ((0, pad), (0, 0))).reshape(n, chunk, batch)
    xs = jnp.pad(xs, ((0, pad),) + ((0, 0),) * (xs.ndim - 1))
    return xs.reshape((n, chunk) + xs.shape[1:]), alive


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
