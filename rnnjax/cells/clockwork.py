"""The clockwork RNN (Koutnik, Greff, Gomez and Schmidhuber, 2014)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.cells.base import Cell
from rnnjax.cells.simple import resolve_activation


class ClockworkCarry(NamedTuple):
    h: jax.Array  # [*batch, H]
    t: jax.Array  # [*batch] int32: how many steps this sequence has taken


@dataclasses.dataclass(frozen=True)
class ClockworkRNN(Cell):
    """A simple RNN whose hidden units form modules that tick at different periods.

    The H hidden units are split into len(periods) equal modules; module m, with
    period T_m, updates at step t only when t mod T_m == 0 (t counts from 0, so every
    module updates at the first step) and otherwise keeps its value. Recurrent
    connections run only from slower modules to faster ones (and within a module):
    with the periods sorted fast to slow, W_h[j, i] (from unit j to unit i) may be
    non-zero only when T_j >= T_i: block lower-triangular in the row-vector form
    h W_h, the transpose of the paper's upper-triangular W_H. The mask is applied in
    the step, so whatever `W_h` holds, the blocks below the diagonal never act (and
    get zero gradient).

        a = act(h_{t-1} (W_h * mask) + x_t W_x + b)
        h_t[m] = a[m] if t mod T_m == 0 else h_{t-1}[m]

    Params: `W_x` [I, H], `W_h` [H, H], `b` [H]. The carry is
    `ClockworkCarry(h, t)`; the output is h.

    >>> import rnnjax as rj
    >>> rj.ClockworkRNN(hidden_size=4, periods=(1, 2, 4, 8)).recurrent_mask().astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 1]])
    """

    hidden_size: int
    periods: tuple[int, ...] = (1, 2, 4, 8)
    activation: str | Callable = "tanh"
    recurrent_init: str | Callable = "orthogonal"
    recurrent_scale: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        resolve_activation(self.activation)
        periods = tuple(self.periods)
        if not periods or any(not _checks.is_int(p) or p <= 0 for p in periods):
            raise ValueError(f"periods must be a non-empty tuple of positive integers, "
                             f"got {self.periods!r}")
        if list(periods) != sorted(periods):
            raise ValueError(f"periods must be sorted fast to slow (ascending), got {periods}")
        if self.hidden_size % len(periods):
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of the "
                             f"number of modules len(periods) = {len(periods)}")
        object.__setattr__(self, "periods", tuple(int(p) for p in periods))

    @property
    def module_size(self) -> int:
        return self.hidden_size // len(self.periods)

    def unit_periods(self) -> np.ndarray:
        """[H] the period of each hidden unit."""
        return np.repeat(np.asarray(self.periods), self.module_size)

    def recurrent_mask(self) -> np.ndarray:
        """[H, H] mask of W_h: row j (source) feeds column i (target) iff T_j >= T_i."""
        p = self.unit_periods()
        return (p[:, None] >= p[None, :]).astype(np.float32)

    def init(self, key, input_size, dtype=jnp.float32):
        params = super().init(key, input_size, dtype)
        params["W_h"] = params["W_h"] * jnp.asarray(self.recurrent_mask(), dtype)
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        batch_shape = _checks.batch_shape(batch_shape)
        return ClockworkCarry(jnp.zeros((*batch_shape, self.hidden_size), dtype),
                              jnp.zeros(batch_shape, jnp.int32))

    def hidden(self, carry):
        return carry.h

    def replace_hidden(self, carry, h):
        return carry._replace(h=h)

    def step(self, params, carry, xp):
        w_h = params["W_h"] * jnp.asarray(self.recurrent_mask(), params["W_h"].dtype)
        a = resolve_activation(self.activation)(xp + carry.h @ w_h)
        active = (carry.t[..., None] % jnp.asarray(self.unit_periods())) == 0
        h = jnp.where(active, a, carry.h)
        return ClockworkCarry(h, carry.t + 1), h
