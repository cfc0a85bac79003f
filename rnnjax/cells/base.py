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

A cell may also have a loop rule (`loop_rule`, a `rnnjax.cells.loop_rule.LoopRule`):
its whole time loop with a hand-written backward pass, which `rj.unroll` runs instead
of scanning `step`. The LSTM, the GRU and the SimpleRNN with a named activation have
one, switched by their `use_loop_rule` field (False: autodiff of the scanned step,
which forward-mode autodiff through `rj.unroll` needs); other cells return None.

Everything `rj.unroll` needs of a model (`init`, `input_size_of`, `initial_carry`,
`output_size`, `unroll_time_major`) is the `SequenceModel` protocol. A cell meets it
by scanning its step; `Bidirectional`, and a `Stacked` that holds one, meet it
without having a step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers

Params = dict
Carry = Any


class SequenceModel(Protocol):
    """What `rj.unroll` runs: a cell, a `Stacked` or a `Bidirectional`."""

    @property
    def output_size(self) -> int: ...

    def init(self, key, input_size: int, dtype=...) -> Any: ...

    def input_size_of(self, params) -> int: ...

    def initial_carry(self, batch_shape=(), dtype=...) -> Any: ...

    def unroll_time_major(self, params, xs, carry, *, lengths, reverse, unroll, remat,
                          key, resets=None): ...


class Cell:
    """Base class of all cells; subclasses are `@dataclasses.dataclass(frozen=True)`.

    Subclasses declare `hidden_size` and, for the default `init`, `recurrent_init`
    and `recurrent_scale` as dataclass fields (the defaults below document them).
    """

    hidden_size: int
    #: the recurrent weights' init: "orthogonal", "identity", "glorot" or a callable
    #: `(key, shape, dtype)`, applied to each `[H, H]` gate block
    recurrent_init: str | Callable = "orthogonal"
    #: a factor on each recurrent gate block (rho for the orthogonal init)
    recurrent_scale: float = 1.0
    #: number of `[H]`-wide blocks side by side in `W_x`, `W_h` and `b` (gate order
    #: is documented by each cell)
    gates: ClassVar[int] = 1

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    # -- parameters -------------------------------------------------------------
    def init(self, key, input_size: int, dtype=jnp.float32) -> Params:
        """`W_x` [I, G*H] Glorot, `W_h` [H, G*H] from `recurrent_init`, `b` [G*H] zeros."""
        input_size = _checks.positive_int("input_size", input_size)
        k_x, k_h = jax.random.split(_checks.prng_key("key", key))
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

    def output(self, params: Params, carry, xp):
        """The output y of the step that produced `carry` from the projected input xp:
        the hidden state for every cell but those whose output reads more (the LRU's
        y = Re(C x) + u D). Probes that perturb the state recompute y with this."""
        return self.hidden(carry)

    # -- the step ---------------------------------------------------------------
    def project_inputs(self, params: Params, x):
        """x W_x + b for x of any leading shape [..., I] -> [..., G*H]."""
        return x @ params["W_x"] + params["b"]

    def step(self, params: Params, carry, xp):
        """One recurrent step on the projected input xp = project_inputs(params, x)."""
        raise NotImplementedError

    def __call__(self, params: Params, carry, x):
        x = checked_step_input(self, params, carry, x)
        return self.step(params, carry, self.project_inputs(params, x))

    # -- the time loop ----------------------------------------------------------
    @property
    def loop_rule(self):
        """The time loop with a hand-written backward pass, or None: `rj.unroll` then
        scans `step` (see the module doc)."""
        return None

    def unroll_time_major(self, params, xs, carry, *, lengths, reverse, unroll, remat,
                          key=None, resets=None):
        """The `SequenceModel` loop: `rnnjax.time_loop.scan_cell` (the key is unused)."""
        del key
        from rnnjax.time_loop import scan_cell  # the loop module imports the cells

        return scan_cell(self, params, xs, carry, lengths=lengths, reverse=reverse,
                         unroll=unroll, remat=remat, resets=resets)


def checked_step_input(model, params, carry, x):
    """Check one step's params, carry and input x [*batch, input_size]; return x."""
    _checks.model_params(model, params)
    x = _checks.float_array("x", x, min_rank=1, layout="[*batch, input_size]")
    _checks.feature_size("x", x, model.input_size_of(params))
    _checks.carry_or_initial(model, carry, tuple(x.shape[:-1]),
                             _checks.compute_dtype(params, x))
    return x


def split_gates(a, n: int):
    """Split the last axis into `n` equal gate blocks."""
    return jnp.split(a, n, axis=-1)
