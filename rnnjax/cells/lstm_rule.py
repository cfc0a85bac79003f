"""The LSTM's loop rule: its `LoopRule` for `rnnjax.cells.loop_rule.run_loop_rule`.

Params {"W_x" [I, 4H], "W_h" [H, 4H], "b" [4H]}, gate order i, f, g, o; carry (h, c).
The backward carries (dh, dc) and emits dz [T, B, 4H], the gradient of the gate
pre-activations, which is both dA (input side) and dU (recurrent side).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import split_gates
from rnnjax.cells.loop_rule import LoopRule, keep_alive, rows


def _forward(params, xs, carry, alive, unroll):
    w_x, w_h, b = params["W_x"], params["W_h"], params["b"]

    def body(carry, inputs):
        h, c = carry
        x_t, alive_t = inputs
        i, f, g, o = split_gates(x_t @ w_x + h @ w_h + b, 4)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c_new = f * c + i * g
        tanh_c = jnp.tanh(c_new)
        h_new = o * tanh_c
        y = keep_alive(alive_t, h_new, jnp.zeros_like(h_new))
        carry_new = keep_alive(alive_t, h_new, h), keep_alive(alive_t, c_new, c)
        return carry_new, (y, (h, c, i, f, g, o, tanh_c))

    carry, (ys, residuals) = lax.scan(body, tuple(carry), (xs, alive), unroll=unroll)
    return carry, ys, residuals


def _backward(params, dys, residuals, alive, dcarry, unroll):
    w_h_t = params["W_h"].T

    def body(carry, inputs):
        dh, dc = carry
        dy, (_h_prev, c_prev, i, f, g, o, tanh_c), alive_t = inputs
        dh_total = dh + dy
        do = dh_total * tanh_c
        dc_total = dc + dh_total * o * (1.0 - tanh_c ** 2)
        dz = jnp.concatenate([dc_total * g * i * (1.0 - i),
                              dc_total * c_prev * f * (1.0 - f),
                              dc_total * i * (1.0 - g ** 2),
                              do * o * (1.0 - o)], axis=-1)
        # a frozen step passes (dh, dc) through untouched and feeds no weight
        dcarry = keep_alive(alive_t, dz @ w_h_t, dh), keep_alive(alive_t, dc_total * f, dc)
        return dcarry, keep_alive(alive_t, dz, jnp.zeros_like(dz))

    return lax.scan(body, tuple(dcarry), (dys, residuals, alive), reverse=True,
                    unroll=unroll)


def _grads(params, xs, residuals, dz):
    dz_rows = rows(dz)
    dparams = {"W_x": rows(xs).T @ dz_rows, "W_h": rows(residuals[0]).T @ dz_rows,
               "b": dz_rows.sum(axis=0)}
    return dparams, dz @ params["W_x"].T


@functools.cache
def loop_rule() -> LoopRule:
    """The LSTM's rule (cached: one object, a static argument of the compiled loop)."""
    return LoopRule(_forward, _backward, _grads)
