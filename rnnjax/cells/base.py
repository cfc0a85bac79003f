"""The cell protocol shared by every recurrent cell.

A cell is a frozen dataclass (static, hashable config: safe as a `jit` static
argument) with three pure methods:

    params = cell.init(key, input_size)          # a dict of arrays
    carry = cell.initial_carry(batch_shape)      # a pytree of zeros
    carry, y = cell(params, carry, x)            # one step; x is [*batch, input_size]

A step is split in two so that the time loop can hoist work out of the scan:
`project_inputs` (the input matmul and bias, valid for any leading axes, so it runs
as one matmul over all time steps) and `step` (the recurrent part, on the projected
input). `cell(params, carry, x)` is `step(params, carry, project_inputs(params, x))`.

`hidden(carry)` and `replace_hidden(carry, h)` expose the hidden state h that the
cell emits, for probes that perturb or read it.

A cell may also have a `loop_rule` (`rnnjax.cells.fused.LoopRule`): its whole time
loop with a hand-written backward pass, which `rj.unroll` then runs instead of
scanning `step` (LSTM, GRU, SimpleRNN; None for the others or with `fused=False`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers

Params = dict
Carry = Any


class Cell:
    """Base class of all cells; subclasses are `@dataclasses.dataclass(frozen=True)`."""

    hidden_size: int
    #: number of `[H]`-wide blocks side by side in `W_x`, `W_h` and `b` (gate order
    #: is documented by each cell)
    gates: ClassVar[int] = 1
    #: the fast path's time loop (see the module doc); None: `rj.unroll` scans `step`
    loop_rule: ClassVar[Any] = None

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    # -- parameters -------------------------------------------------------------
    def init(self, key, input_size: int, dtype=jnp.float32) -> Params:
        """`W_x` [I, G*H] Glorot, `W_h` [H, G*H] from `recurrent_init`, `b` [G*H] zeros."""
        input_size = _checks.positive_int("input_size", input_size)
        k_x, k_h = jax.random.split(key)
        g, h = self.gates, self.hidden_size
        return {
            "W_x": initializers.glorot_uniform(k_x, (input_size, g * h), dtype),
            "W_h": initializers.recurrent(self.recurrent_init, k_h, h, g,
                                          self.recurrent_scale, dtype),
            "b": jnp.zeros((g * h,), dtype),
        }

    def input_size_of(self, params: Params) -> int:
        return params["W_x"].shape[0]

    # -- state ------------------------------------------------------------------
    def initial_carry(self, batch_shape=(), dtype=jnp.float32) -> Carry:
        """Zeros; the carry of the plain cells is the hidden state h [*batch, H]."""
        return jnp.zeros((*tuple(batch_shape), self.hidden_size), dtype)

    def hidden(self, carry) -> jax.Array:
        return carry

    def replace_hidden(self, carry, h) -> Carry:
        return h

    # -- the step ---------------------------------------------------------------
    def project_inputs(self, params: Params, x):
        """x W_x + b for x of any leading shape [..., I] -> [..., G*H]."""
        return x @ params["W_x"] + params["b"]

    def step(self, params: Params, carry, xp):
        """One recurrent step on the projected input xp = project_inputs(params, x)."""
        raise NotImplementedError

    def __call__(self, params: Params, carry, x):
        x = _checks.float_array("x", x, min_rank=1, layout="[*batch, input_size]")
        _checks.feature_size("x", x, self.input_size_of(params))
        return self.step(params, carry, self.project_inputs(params, x))


def split_gates(a, n: int):
    """Split the last axis into `n` equal gate blocks."""
    return jnp.split(a, n, axis=-1)


def frozen(cls):
    """Decorator: a frozen, hashable dataclass (the form of every cell's config)."""
    return dataclasses.dataclass(frozen=True)(cls)
