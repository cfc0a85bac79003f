"""The vanilla RNN's loop rules: `LoopRule`s for `rnnjax.cells.loop_rule.run_loop_rule`.

Params {"W_x" [I, H], "W_h" [H, H], "b" [H]}; carry h; h_t = act(x_t W_x + h W_h + b)
for an elementwise act whose derivative is a function of its output (tanh: 1 - h^2,
relu: [h > 0], identity: 1; the table is `rnnjax.cells.simple.OUTPUT_DERIVATIVES`).
So the only residuals are the outputs themselves: h_{t-1} of an alive step is the
previous output (alive is a prefix in time) or h_0.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
from jax import lax

from rnnjax.cells.loop_rule import LoopRule, keep_alive, rows


def _forward(params, xs, h0, alive, unroll, act):
    w_x, w_h, b = params["W_x"], params["W_h"], params["b"]

    def body(h, inputs):
        x_t, alive_t = inputs
        h_new = act(x_t @ w_x + h @ w_h + b)
        return keep_alive(alive_t, h_new, h), keep_alive(alive_t, h_new, jnp.zeros_like(h_new))

    h, ys = lax.scan(body, h0, (xs, alive), unroll=unroll)
    return h, ys, (h0, ys)


def _backward(params, dys, residuals, alive, dh, unroll, derivative):
    w_h_t = params["W_h"].T
    _, ys = residuals

    def body(dh, inputs):
        dy, y, alive_t = inputs
        dz = (dh + dy) * derivative(y)
        return keep_alive(alive_t, dz @ w_h_t, dh), keep_alive(alive_t, dz, jnp.zeros_like(dz))

    return lax.scan(body, dh, (dys, ys, alive), reverse=True, unroll=unroll)


def _grads(params, xs, residuals, dz):
    h0, ys = residuals
    h_prev = jnp.concatenate([h0[None], ys[:-1]], axis=0)  # dead steps have dz = 0
    dz_rows = rows(dz)
    dparams = {"W_x": rows(xs).T @ dz_rows, "W_h": rows(h_prev).T @ dz_rows,
               "b": dz_rows.sum(axis=0)}
    return dparams, dz @ params["W_x"].T


@functools.cache
def loop_rule(act, derivative) -> LoopRule:
    """The rule for activation `act` with d act / d a = derivative(act(a)) (cached: one
    object per activation, a static argument of the compiled loop)."""
    return LoopRule(functools.partial(_forward, act=act),
                    functools.partial(_backward, derivative=derivative), _grads)
