"""The gated recurrent unit (Cho et al., 2014), in both of its common forms."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnnjax import initializers
from rnnjax.cells import gru_rule
from rnnjax.cells.base import Cell, split_gates


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
    """GRU; its three gates come from one matmul, in the order r, z, n (PyTorch's).

        r = sigmoid(x W_xr + h W_hr + b_r)          reset gate
        z = sigmoid(x W_xz + h W_hz + b_z)          update gate
        reset_after=False (Cho et al., the lectures' form; the default):
            n = tanh(x W_xn + (r * h) W_hn + b_n)
        reset_after=True (PyTorch / cuDNN / flax.linen.GRUCell):
            n = tanh(x W_xn + b_n + r * (h W_hn + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    The lectures write h_t = (1 - z') h_{t-1} + z' n: the same cell with z' = 1 - z
    (an update gate that opens towards the candidate), i.e. with the z block of
    `W_x`, `W_h` and `b` negated. The form here is PyTorch's and flax's.

    Params: `W_x` [I, 3H], `W_h` [H, 3H], `b` [3H]; with reset_after=True also
    `b_hn` [H] (the recurrent bias of the candidate, which r multiplies; zeros at
    init). `chrono=T_max` starts the update-gate biases at log U(1, T_max - 1)
    (the chrono initialisation, Tallec and Ollivier, 2018; see
    `initializers.chrono_bias`); otherwise all biases start at zero. The carry and
    the output are h [*batch, H].

    `use_loop_rule=True` (default): `rj.unroll` runs the loop with a hand-written
    backward pass (`rnnjax.cells.gru_rule`); reverse-mode only: set
    `use_loop_rule=False` for forward-mode autodiff through `rj.unroll`.
    """

    hidden_size: int
    reset_after: bool = False
    recurrent_init: str | Callable = "orthogonal"
    recurrent_scale: float = 1.0
    use_loop_rule: bool = True
    chrono: float | None = None
    gates = 3

    def init(self, key, input_size, dtype=jnp.float32):
        params = super().init(key, input_size, dtype)
        if self.chrono is not None:  # the keep gate z: b_z = log U(1, chrono - 1)
            h = self.hidden_size
            b_z = initializers.chrono_bias(jax.random.fold_in(key, 7), h, self.chrono, dtype)
            params["b"] = params["b"].at[h:2 * h].set(b_z)
        if self.reset_after:
            params["b_hn"] = jnp.zeros((self.hidden_size,), dtype)
        return params

    @property
    def loop_rule(self):
        return gru_rule.loop_rule(self.reset_after) if self.use_loop_rule else None

    def step(self, params, carry, xp):
        h = carry
        x_r, x_z, x_n = split_gates(xp, 3)
        w_h = params["W_h"]
        hidden = self.hidden_size
        if self.reset_after:
            h_r, h_z, h_n = split_gates(h @ w_h, 3)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * (h_n + params["b_hn"]))
        else:
            h_r, h_z = split_gates(h @ w_h[:, :2 * hidden], 2)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + (r * h) @ w_h[:, 2 * hidden:])
        h = (1.0 - z) * n + z * h
        return h, h
