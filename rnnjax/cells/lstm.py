"""LSTM (Hochreiter and Schmidhuber, 1997, with forget gate) and the peephole LSTM."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers
from rnnjax.cells.base import Cell, StepRule, rows, split_gates


class LSTMCarry(NamedTuple):
    h: jax.Array
    c: jax.Array


class _LSTMState(Cell):
    """What the LSTMs share: 4 gate blocks, the forget bias, the carry (h, c)."""

    forget_bias: float = 1.0
    chrono: float | None = None
    gates = 4

    def init(self, key, input_size, dtype=jnp.float32):
        params = super().init(key, input_size, dtype)
        h = self.hidden_size
        if self.chrono is None:
            params["b"] = params["b"].at[h:2 * h].set(self.forget_bias)
        else:  # b_f = log U(1, chrono - 1), b_i = -b_f
            b_f = initializers.chrono_bias(jax.random.fold_in(key, 7), h, self.chrono, dtype)
            params["b"] = params["b"].at[:h].set(-b_f).at[h:2 * h].set(b_f)
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        z = jnp.zeros((*_checks.batch_shape(batch_shape), self.hidden_size), dtype)
        return LSTMCarry(z, z)

    def hidden(self, carry):
        return carry.h

    def replace_hidden(self, carry, h):
        return carry._replace(h=h)


@dataclasses.dataclass(frozen=True)
class LSTM(_LSTMState):
    """The LSTM with forget gate; its four gates come from one matmul.

        [i, f, g, o] = x_t W_x + h_{t-1} W_h + b
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    Params: `W_x` [I, 4H], `W_h` [H, 4H], `b` [4H], gate blocks in the order
    i, f, g, o (PyTorch's order). `b` starts at zero except the forget block,
    which starts at `forget_bias` (Gers et al., 2000; Jozefowicz et al., 2015).
    `chrono=T_max` replaces that with the chrono initialisation (Tallec and
    Ollivier, 2018): forget biases log U(1, T_max - 1), input biases their negatives,
    for dependencies up to about T_max steps (`initializers.chrono_bias`).
    The carry is `LSTMCarry(h, c)`, each [*batch, H]; the output is h.

    `use_loop_rule=True` (default): `rj.unroll` runs the loop with a hand-written
    backward pass (`loop_rule`, faster; see benchmarks/NOTES.md). It
    supports reverse-mode only: set `use_loop_rule=False` for forward-mode autodiff
    (`jax.jvp`, `jax.jacfwd`) through `rj.unroll`. The step is plain jax either way.

    >>> import jax, rnnjax as rj
    >>> cell = rj.LSTM(hidden_size=8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params["W_h"].shape, float(params["b"][8:16].mean())
    ((8, 32), 1.0)
    """

    hidden_size: int
    forget_bias: float = 1.0
    recurrent_init: str | Callable = "orthogonal"
    recurrent_scale: float = 1.0
    use_loop_rule: bool = True
    chrono: float | None = None

    def step(self, params, carry, xp):
        h, c, _ = _update(xp + carry.h @ params["W_h"], carry.c)
        return LSTMCarry(h, c), h

    @property
    def loop_rule(self):
        return _RULE if self.use_loop_rule else None


def _update(z, c):
    """The LSTM's new (h, c) from the gate pre-activations z = [i, f, g, o] and the
    previous c, with the gate values the backward pass reads."""
    i, f, g, o = split_gates(z, 4)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c_new = f * c + i * g
    tanh_c = jnp.tanh(c_new)
    return o * tanh_c, c_new, (i, f, g, o, tanh_c)


# -- the loop rule: one step and its hand-written backward ---------------------------
# The backward carries (dh, dc) and emits dz [B, 4H], the gradient of the gate
# pre-activations, which is both dA (input side) and dU (recurrent side).

def _rule_forward(params, carry, x_t):
    h, c = carry
    h_new, c_new, gates = _update(x_t @ params["W_x"] + h @ params["W_h"] + params["b"], c)
    return (h_new, c_new), h_new, (h, c, *gates)


def _rule_backward(w_h_t, residuals, y, dcarry, dy):
    del y
    dh, dc = dcarry
    _, c_prev, i, f, g, o, tanh_c = residuals
    dh_total = dh + dy
    do = dh_total * tanh_c
    dc_total = dc + dh_total * o * (1.0 - tanh_c ** 2)
    dz = jnp.concatenate([dc_total * g * i * (1.0 - i),
                          dc_total * c_prev * f * (1.0 - f),
                          dc_total * i * (1.0 - g ** 2),
                          do * o * (1.0 - o)], axis=-1)
    return (dz @ w_h_t, dc_total * f), dz


def _rule_grads(params, xs, saved, dz):
    dz_rows = rows(dz)
    dparams = {"W_x": rows(xs).T @ dz_rows, "W_h": rows(saved.steps[0]).T @ dz_rows,
               "b": dz_rows.sum(axis=0)}
    return dparams, dz @ params["W_x"].T


_RULE = StepRule(_rule_forward, lambda params: params["W_h"].T, _rule_backward, _rule_grads)


@dataclasses.dataclass(frozen=True)
class PeepholeLSTM(_LSTMState):
    """LSTM with diagonal peephole connections from the cell state into the gates.

    The input and forget gates see the previous cell state c_{t-1}; the output gate
    sees the new cell state c_t (`output_peephole="new"`, the default: Gers,
    Schraudolph and Schmidhuber, 2002; Graves, 2013) or the previous one
    (`output_peephole="previous"`: all three gates read c_{t-1}).

        i = sigmoid(x W_xi + h_{t-1} W_hi + p_i * c_{t-1} + b_i)
        f = sigmoid(x W_xf + h_{t-1} W_hf + p_f * c_{t-1} + b_f)
        c_t = f * c_{t-1} + i * tanh(x W_xg + h_{t-1} W_hg + b_g)
        o = sigmoid(x W_xo + h_{t-1} W_ho + p_o * c_t + b_o)     (c_{t-1}: "previous")
        h_t = o * tanh(c_t)

    Params: those of `LSTM` (gate order i, f, g, o) plus the peephole vectors `p_i`,
    `p_f`, `p_o` [H], initialised U(-peephole_scale, peephole_scale) so that at
    initialisation the cell differs from a plain LSTM. It always scans its step (no
    loop rule). `forget_bias` and `chrono` as in `LSTM`.
    """

    hidden_size: int
    forget_bias: float = 1.0
    recurrent_init: str | Callable = "orthogonal"
    recurrent_scale: float = 1.0
    peephole_scale: float = 0.1
    output_peephole: str = "new"
    chrono: float | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.output_peephole not in ("new", "previous"):
            raise ValueError(f"output_peephole must be 'new' (c_t) or 'previous' (c_(t-1)), "
                             f"got {self.output_peephole!r}")

    def init(self, key, input_size, dtype=jnp.float32):
        input_size = _checks.positive_int("input_size", input_size)
        key, k_p = jax.random.split(_checks.prng_key("key", key))
        params = super().init(key, input_size, dtype)
        s, h = self.peephole_scale, self.hidden_size
        for name, k in zip(("p_i", "p_f", "p_o"), jax.random.split(k_p, 3)):
            params[name] = jax.random.uniform(k, (h,), dtype, -s, s)
        return params

    def step(self, params, carry, xp):
        i, f, g, o = split_gates(xp + carry.h @ params["W_h"], 4)
        i = jax.nn.sigmoid(i + params["p_i"] * carry.c)
        f = jax.nn.sigmoid(f + params["p_f"] * carry.c)
        c = f * carry.c + i * jnp.tanh(g)
        c_seen = c if self.output_peephole == "new" else carry.c
        h = jax.nn.sigmoid(o + params["p_o"] * c_seen) * jnp.tanh(c)
        return LSTMCarry(h, c), h
