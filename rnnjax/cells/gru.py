"""The gated recurrent unit (Cho et al., 2014), in both of its common forms."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnnjax import initializers
from rnnjax.cells.base import Cell, StepRule, rows, split_gates


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
    """GRU; its three gates come from one matmul, in the order r, z, n (PyTorch's).

        r = sigmoid(x W_xr + h W_hr + b_r)          reset gate
        z = sigmoid(x W_xz + h W_hz + b_z)          update gate
        reset_after=False (Cho et al. 2014; the default):
            n = tanh(x W_xn + (r * h) W_hn + b_n)
        reset_after=True (PyTorch / cuDNN / flax.linen.GRUCell):
            n = tanh(x W_xn + b_n + r * (h W_hn + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Some texts write h_t = (1 - z') h_{t-1} + z' n: the same cell with z' = 1 - z
    (an update gate that opens towards the candidate), i.e. with the z block of
    `W_x`, `W_h` and `b` negated. The form here is PyTorch's and flax's.

    Params: `W_x` [I, 3H], `W_h` [H, 3H], `b` [3H]; with reset_after=True also
    `b_hn` [H] (the recurrent bias of the candidate, which r multiplies; zeros at
    init). `chrono=T_max` starts the update-gate biases at log U(1, T_max - 1)
    (the chrono initialisation, Tallec and Ollivier, 2018; see
    `initializers.chrono_bias`); otherwise all biases start at zero. The carry and
    the output are h [*batch, H].

    `use_loop_rule=True` (default): `rj.unroll` runs the loop with a hand-written
    backward pass (`loop_rule`); reverse-mode only: set
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
        return _rule(self.reset_after) if self.use_loop_rule else None

    def step(self, params, carry, xp):
        h = carry
        _, z, n, _ = _gates(params, h, xp, self.reset_after)
        h = (1.0 - z) * n + z * h
        return h, h


def _gates(params, h, a, reset_after):
    """The gates r, z, the candidate n and (reset_after) m = h W_hn + b_hn of one step,
    from a = x W_x + b [.., 3H] and the previous h."""
    w_h = params["W_h"]
    hidden = w_h.shape[0]
    a_r, a_z, a_n = split_gates(a, 3)
    if reset_after:
        u_r, u_z, u_n = split_gates(h @ w_h, 3)
        r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
        m = u_n + params["b_hn"]
        return r, z, jnp.tanh(a_n + r * m), m
    u_r, u_z = split_gates(h @ w_h[:, :2 * hidden], 2)
    r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
    return r, z, jnp.tanh(a_n + (r * h) @ w_h[:, 2 * hidden:]), None


# -- the loop rules: one step and its hand-written backward --------------------------
# With a = x W_x + b and u = h W_h (blocks r, z, n), the loop rule writes the new state
# as h_t = n + z * (h_{t-1} - n) (one multiply fewer than the step's form; the two
# agree to rounding). The backward emits dA [B, 3H], the gradient of the input-side
# pre-activations (its r and z blocks are also their recurrent-side gradients), and
# with reset_after dm [B, H], the gradient of m; the weight gradients follow as
# matmuls over all steps.

def _rule_forward(params, carry, x_t, reset_after):
    (h,) = carry
    r, z, n, m = _gates(params, h, x_t @ params["W_x"] + params["b"], reset_after)
    h_new = n + z * (h - n)
    return (h_new,), h_new, (h, r, z, n) if m is None else (h, r, z, n, m)


def _rule_weights(params):
    w_h = params["W_h"]
    hidden = w_h.shape[0]
    return w_h.T, w_h[:, :2 * hidden].T, w_h[:, 2 * hidden:].T


def _rule_backward(weights, residuals, y, dcarry, dy, reset_after):
    del y
    w_h_t, w_h_rz_t, w_h_n_t = weights
    (dh,) = dcarry
    h_prev, r, z, n = residuals[:4]
    dh_total = dh + dy
    dn_pre = dh_total * (1.0 - z) * (1.0 - n ** 2)
    dz_pre = dh_total * (h_prev - n) * z * (1.0 - z)
    if reset_after:
        m = residuals[4]
        dr_pre = dn_pre * m * r * (1.0 - r)
        dm = dn_pre * r
        du = jnp.concatenate([dr_pre, dz_pre, dm], axis=-1)
        dh_prev = dh_total * z + du @ w_h_t
        return (dh_prev,), (jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1), dm)
    dq = dn_pre @ w_h_n_t  # q = r * h_prev feeds n through W_hn
    dr_pre = dq * h_prev * r * (1.0 - r)
    du_rz = jnp.concatenate([dr_pre, dz_pre], axis=-1)
    dh_prev = dh_total * z + dq * r + du_rz @ w_h_rz_t
    return (dh_prev,), (jnp.concatenate([du_rz, dn_pre], axis=-1),)


def _rule_grads(params, xs, saved, emitted, reset_after):
    hidden = params["W_h"].shape[0]
    da = rows(emitted[0])
    h_prev = rows(saved.steps[0])
    dw_h_rz = h_prev.T @ da[:, :2 * hidden]
    dparams = {"W_x": rows(xs).T @ da, "b": da.sum(axis=0)}
    if reset_after:
        dm = rows(emitted[1])
        dparams["W_h"] = jnp.concatenate([dw_h_rz, h_prev.T @ dm], axis=1)
        dparams["b_hn"] = dm.sum(axis=0)
    else:
        q = rows(saved.steps[1]) * h_prev  # r * h_prev of every step
        dparams["W_h"] = jnp.concatenate([dw_h_rz, q.T @ da[:, 2 * hidden:]], axis=1)
    return dparams, emitted[0] @ params["W_x"].T


@functools.cache
def _rule(reset_after: bool) -> StepRule:
    """The GRU's rule for either form (cached: one object per form, a static argument
    of the compiled loop)."""
    return StepRule(functools.partial(_rule_forward, reset_after=reset_after), _rule_weights,
                    functools.partial(_rule_backward, reset_after=reset_after),
                    functools.partial(_rule_grads, reset_after=reset_after))
