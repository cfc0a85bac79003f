"""The vanilla RNN's fast path: `LoopRule`s for `rnnjax.cells.fused.fused_loop`.

Params {"W_x" [I, H], "W_h" [H, H], "b" [H]}; carry h; h_t = act(x_t W_x + h W_h + b)
for act in tanh, relu, identity, whose derivative is a function of the output
(1 - h^2, [h > 0], 1). So the only residuals are the outputs themselves: h_{t-1} of
an alive step is the previous output (alive is a prefix in time) or h_0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.fused import LoopRule, keep_alive, rows

#: activation name -> (the function, its derivative as a function of its output)
_ACTIVATIONS = {
    "tanh": (jnp.tanh, lambda y: 1.0 - y ** 2),
    "relu": (jax.nn.relu, lambda y: (y > 0).astype(y.dtype)),
    "identity": (lambda a: a, jnp.ones_like),
    "linear": (lambda a: a, jnp.ones_like),
}


def _forward(params, xs, h0, alive, unroll, activation):
    w_x, w_h, b = params["W_x"], params["W_h"], params["b"]
    act = _ACTIVATIONS[activation][0]

    def body(h, inputs):
        x_t, alive_t = inputs
        h_new = act(x_t @ w_x + h @ w_h + b)
        return keep_alive(alive_t, h_new, h), keep_alive(alive_t, h_new, jnp.zeros_like(h_new))

    h, ys = lax.scan(body, h0, (xs, alive), unroll=unroll)
    return h, ys, (h0, ys)


def _backward(params, dys, residuals, alive, dh, unroll, activation):
    w_h_t = params["W_h"].T
    derivative = _ACTIVATIONS[activation][1]
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


def loop_rule(activation):
    """The rule for a named activation, or None (any other function: the generic loop)."""
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        return None
    return _RULES[activation]


def _rule(activation):
    return LoopRule(
        lambda params, xs, h, alive, unroll: _forward(params, xs, h, alive, unroll, activation),
        lambda params, dys, res, alive, dh, unroll: _backward(params, dys, res, alive, dh,
                                                              unroll, activation),
        _grads)


_RULES = {name: _rule(name) for name in _ACTIVATIONS}
