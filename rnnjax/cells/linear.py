"""Recurrences linear in the carry, h_t = a_t * h_{t-1} + b_t (element-wise), with
a_t and b_t functions of the input x_t alone: the LRU (Orvieto et al. 2023), minGRU
and minLSTM (Feng et al. 2024).

Because the map h_{t-1} -> h_t is affine and its coefficients do not depend on h,
the whole sequence is the prefix composition of the pairs (a_t, b_t), which
`jax.lax.associative_scan` computes in O(log T) depth instead of T sequential
steps. `rj.unroll` does this for every `LinearRecurrence` whose `parallel_scan` is
True (the default, for accelerators) and otherwise runs a sequential scan of the
multiply-add alone, the coefficients and outputs of all steps computed outside the
loop (the faster of the two on a CPU: see benchmarks/NOTES.md); both give the same
numbers (float rounding aside), with the same `seq_lengths`, `reverse`, initial
carry and `resets` semantics as every other cell.

A subclass gives `coefficients(params, xp) -> (a, b)` (in the scan's own
representation: complex for the LRU), `emit(params, h, xp) -> y`, and converts
between the carry and that representation (`to_scan`, `from_scan`: the identity
for real cells). `step` is derived from those, so the sequential and the parallel
path share one definition of the cell.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers
from rnnjax.cells.base import Cell, Strategy, split_gates


class LinearRecurrence(Cell):
    """Base class of the cells whose recurrence is element-wise linear in the carry."""

    #: run `jax.lax.associative_scan` in `rj.unroll` (False: a sequential scan)
    parallel_scan: bool = True

    @property
    def strategy(self) -> Strategy:
        """`LINEAR`: the loop runs `rnnjax.loop.associative` on the coefficients."""
        return Strategy.LINEAR

    def coefficients(self, params, xp):
        """(a, b) with h_t = a * h_{t-1} + b, from the projected input xp [..., K]."""
        raise NotImplementedError

    def emit(self, params, h, xp):
        """The output y_t from the new state h_t (scan representation) and xp_t."""
        return h

    def to_scan(self, carry):
        return carry

    def from_scan(self, h):
        return h

    def init(self, key, input_size, dtype=jnp.float32):
        """`W_x` [I, G*H] Glorot and `b` [G*H] zeros: no recurrent weights, since no
        gate reads the carry (the LRU has its own)."""
        input_size = _checks.positive_int("input_size", input_size)
        g, h = self.gates, self.hidden_size
        key = _checks.prng_key("key", key)
        return {"W_x": initializers.glorot_uniform(key, (input_size, g * h), dtype),
                "b": jnp.zeros((g * h,), dtype)}

    def output(self, params, carry, xp):
        return self.emit(params, self.to_scan(carry), xp)

    def step(self, params, carry, xp):
        a, b = self.coefficients(params, xp)
        h = a * self.to_scan(carry) + b
        return self.from_scan(h), self.emit(params, h, xp)


def _real_like(x, params):
    return x.astype(jnp.result_type(*jax.tree_util.tree_leaves(params)))


@dataclasses.dataclass(frozen=True)
class LRU(LinearRecurrence):
    """The Linear Recurrent Unit (Orvieto et al. 2023), as a cell.

    x_t = lambda * x_{t-1} + gamma * (B u_t),  y_t = Re(C x_t) + u_t D, with a
    complex diagonal lambda = exp(-exp(nu) + i exp(theta_log)), |lambda| < 1 by
    construction, and gamma = sqrt(1 - |lambda|^2), which keeps the state's scale
    independent of how close |lambda| is to 1. At init |lambda| is uniform on the
    ring [r_min, r_max] (by area, as in the paper) and the phases on [0, max_phase].

    Params: `nu_log`, `theta_log` [N], `B_re`, `B_im` [I, N], `C_re`, `C_im` [N, H],
    `D` [I, H] (a dense skip connection, the paper's diagonal D when I = H would be
    its diagonal). N = `state_size` (default `hidden_size`). The carry is real
    [*batch, 2N], the real parts then the imaginary parts of x_t, so that probes,
    masks and checkpoints see an ordinary float state, and `hidden(carry)` is that
    state; the output is y [*batch, H] (`output(params, carry, xp)`). Read a final
    output from the outputs of `rj.unroll`, not from `hidden` of the final carry.
    """

    hidden_size: int
    state_size: int | None = None
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi
    parallel_scan: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.state_size is not None:
            _checks.positive_int("state_size", self.state_size)
        if not 0.0 <= self.r_min < self.r_max <= 1.0:
            raise ValueError(f"r_min and r_max must satisfy 0 <= r_min < r_max <= 1, got "
                             f"r_min={self.r_min}, r_max={self.r_max}")
        if not self.max_phase > 0:
            raise ValueError(f"max_phase must be > 0, got {self.max_phase}")

    @property
    def states(self) -> int:
        return self.state_size or self.hidden_size

    def init(self, key, input_size, dtype=jnp.float32):
        input_size = _checks.positive_int("input_size", input_size)
        n, h = self.states, self.hidden_size
        k_r, k_p, k_b, k_c, k_d = jax.random.split(_checks.prng_key("key", key), 5)
        u1 = jax.random.uniform(k_r, (n,), jnp.float32)
        u2 = jax.random.uniform(k_p, (n,), jnp.float32)
        radius_sq = u1 * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2
        # nu = -log|lambda| > 0, kept as log(nu); r = 1 would give nu = 0 (log -inf)
        nu = jnp.maximum(-0.5 * jnp.log(jnp.maximum(radius_sq, 1e-30)), 1e-8)
        theta = jnp.maximum(self.max_phase * u2, 1e-8)
        b = jax.random.normal(k_b, (2, input_size, n)) / math.sqrt(2 * input_size)
        c = jax.random.normal(k_c, (2, n, h)) / math.sqrt(n)
        d = jax.random.normal(k_d, (input_size, h)) / math.sqrt(input_size)
        params = {"nu_log": jnp.log(nu), "theta_log": jnp.log(theta), "B_re": b[0],
                  "B_im": b[1], "C_re": c[0], "C_im": c[1], "D": d}
        return {name: value.astype(dtype) for name, value in params.items()}

    def input_size_of(self, params):
        return params["B_re"].shape[0]

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return jnp.zeros((*_checks.batch_shape(batch_shape), 2 * self.states), dtype)

    def eigenvalues(self, params):
        """lambda [N], complex."""
        return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))

    def project_inputs(self, params, x):
        """[B u_re, B u_im, u D]: [..., 2N + H]."""
        return jnp.concatenate([x @ params["B_re"], x @ params["B_im"], x @ params["D"]],
                               axis=-1)

    def coefficients(self, params, xp):
        n = self.states
        lam = self.eigenvalues(params)
        gamma = jnp.sqrt(1.0 - jnp.abs(lam) ** 2)
        bu = xp[..., :n] + 1j * xp[..., n:2 * n]
        return jnp.broadcast_to(lam, bu.shape), gamma * bu

    def emit(self, params, h, xp):
        y = h.real @ params["C_re"] - h.imag @ params["C_im"] + xp[..., 2 * self.states:]
        return _real_like(y, params)

    def to_scan(self, carry):
        n = self.states
        return carry[..., :n] + 1j * carry[..., n:]

    def from_scan(self, h):
        return jnp.concatenate([h.real, h.imag], axis=-1)


@dataclasses.dataclass(frozen=True)
class MinGRU(LinearRecurrence):
    """minGRU (Feng et al. 2024): z_t = sigmoid(x_t W_z + b_z), h~_t = x_t W_h + b_h,
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t. No gate reads h_{t-1}, so the recurrence
    is linear in the carry. Params: `W_x` [I, 2H] (gate order z, h~), `b` [2H];
    carry and output h [*batch, H]."""

    hidden_size: int
    parallel_scan: bool = True
    gates = 2

    def coefficients(self, params, xp):
        z_pre, candidate = split_gates(xp, 2)
        z = jax.nn.sigmoid(z_pre)
        return 1.0 - z, z * candidate


@dataclasses.dataclass(frozen=True)
class MinLSTM(LinearRecurrence):
    """minLSTM (Feng et al. 2024): f_t, i_t = sigmoid(x_t W_f + b_f), sigmoid(x_t W_i
    + b_i), normalised to f' = f / (f + i), i' = i / (f + i); h~_t = x_t W_h + b_h;
    h_t = f'_t * h_{t-1} + i'_t * h~_t. Params: `W_x` [I, 3H] (gate order f, i, h~),
    `b` [3H]; carry and output h [*batch, H]."""

    hidden_size: int
    parallel_scan: bool = True
    gates = 3

    def coefficients(self, params, xp):
        f_pre, i_pre, candidate = split_gates(xp, 3)
        # f / (f + i) with f = sigmoid(p), i = sigmoid(q), computed in log space
        log_f, log_i = jax.nn.log_sigmoid(f_pre), jax.nn.log_sigmoid(i_pre)
        log_total = jnp.logaddexp(log_f, log_i)
        return jnp.exp(log_f - log_total), jnp.exp(log_i - log_total) * candidate
