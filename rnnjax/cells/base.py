"""The cell protocol shared by every recurrent cell.

A cell is a frozen dataclass (static, hashable config: safe as a `jit` static
argument) with three pure methods:

    params = cell.init(key, input_size)          # a dict of arrays
    carry = cell.initial_carry(batch_shape)      # a pytree of zeros; (B,) or B
    carry, y = cell(params, carry, x)            # one step; x is [*batch, input_size]

A step is split in two so that the time loop can hoist work out of the scan:
`project_inputs` (the input matmul and bias, valid for any leading axes, so it runs
as one matmul over all time steps) and `step` (the recurrent part, on the projected
input). `cell(params, carry, x)` is `step(params, carry, project_inputs(params, x))`.

`hidden(carry)` and `replace_hidden(carry, h)` expose the hidden state h that the
cell emits, for probes that perturb or read it.

A cell holds its math only; it never imports the time loop. It declares how the loop
may run it with `strategy` (a `Strategy`), and `rnnjax.loop` acts on that declaration:
`SCAN` (a `lax.scan` of `step`, the default), `LOOP_RULE` (the cell also gives a
`StepRule`, `loop_rule`: its step with a hand-written backward pass; the LSTM, the GRU
and the SimpleRNN with a named activation, switched by their `use_loop_rule` field),
`LINEAR` (a recurrence linear in the carry, `rnnjax.cells.linear`: an associative
scan) and `COMPOSITE` (a model made of other models that runs them itself through
`rnnjax.loop.run`: `Stacked`, `Bidirectional`).

Everything `rj.unroll` needs of a model (`init`, `input_size_of`, `initial_carry`,
`output_size`, `strategy`; `unroll_time_major` for a composite) is the
`SequenceModel` protocol. `rj.check_cell` checks a cell against it (and a cell's
`step`, `project_inputs` and `hidden`), saying what is wrong in plain words.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers

Params = dict
Carry = Any


class Strategy(enum.Enum):
    """How the time loop (`rnnjax.loop`) runs a model: each model declares one."""

    #: `lax.scan` of `cell.step`, the input matmul of all steps outside the loop
    SCAN = "scan"
    #: the cell's `StepRule`: a loop whose backward pass is written by hand
    LOOP_RULE = "loop_rule"
    #: h_t = a_t h_{t-1} + b_t: `jax.lax.associative_scan` (`rnnjax.cells.linear`)
    LINEAR = "linear"
    #: a model of models that runs its parts itself (`model.unroll_time_major`)
    COMPOSITE = "composite"


class StepRule(NamedTuple):
    """One cell step with a hand-written backward pass; `rnnjax.loop.rules` runs the
    time loop around it (masking, resets, remat) and differentiates it by hand.

    forward(params, carry, x_t) -> (carry, y, residuals): one step from the raw input
        x_t [B, I]; carry and the returned carry are tuples of the carry's leaves.
    backward_weights(params) -> w: what `backward` reads of the params, prepared once
        outside the loop (transposes).
    backward(w, residuals, y, dcarry, dy) -> (dcarry_start, step_grads): one step's
        cotangents: of the carry it started from, and of its pre-activations.
    grads(params, xs, saved, step_grads) -> (dparams, dxs): the weight and input
        gradients of all steps at once (one matmul over all T*B rows each); `saved`
        is a `rnnjax.loop.rules.Saved`.
    """

    forward: Callable
    backward_weights: Callable
    backward: Callable
    grads: Callable


class SequenceModel(Protocol):
    """What `rj.unroll` runs: a cell, a `Stacked` or a `Bidirectional`."""

    @property
    def output_size(self) -> int: ...

    @property
    def strategy(self) -> Strategy: ...

    def init(self, key, input_size: int, dtype=...) -> Any: ...

    def input_size_of(self, params) -> int: ...

    def initial_carry(self, batch_shape=(), dtype=...) -> Any: ...

    # a model whose strategy is COMPOSITE also has
    # unroll_time_major(params, xs, carry, *, lengths, reverse, unroll, remat, key, resets)


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

    def input_shape_of(self, params: Params) -> tuple[int, ...]:
        """One step's input shape without batch axes: (input_size,) for a cell that
        reads vectors, (H, W, C_in) for the convolutional cells."""
        return (self.input_size_of(params),)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """One step's output shape without batch axes: (output_size,), or (H, W, C)."""
        return (self.output_size,)

    # -- state ------------------------------------------------------------------
    def initial_carry(self, batch_shape=(), dtype=jnp.float32) -> Carry:
        """Zeros; the carry of the plain cells is the hidden state h [*batch, H].
        `batch_shape` is a tuple, or an int B for (B,)."""
        return jnp.zeros((*_checks.batch_shape(batch_shape), self.hidden_size), dtype)

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

    def step_params(self, params: Params) -> Params:
        """The params as `step` reads them, derived once per unroll outside the time
        loop: unchanged here; `OrthogonalRNN` adds its W_h = expm(A). `step` must
        also accept the params as they are (a single step derives what it needs)."""
        return params

    def __call__(self, params: Params, carry, x):
        x = checked_step_input(self, params, carry, x)
        return self.step(params, carry, self.project_inputs(params, x))

    # -- what the time loop may do with it --------------------------------------
    @property
    def loop_rule(self) -> StepRule | None:
        """The step with a hand-written backward pass, or None (see the module doc)."""
        return None

    @property
    def strategy(self) -> Strategy:
        """`LOOP_RULE` when the cell gives a `loop_rule`, else `SCAN`."""
        return Strategy.SCAN if self.loop_rule is None else Strategy.LOOP_RULE


def step_params(cell, params: Params) -> Params:
    """`cell.step_params(params)`, or params as they are for a cell without the hook
    (one written outside the package)."""
    prepare = getattr(cell, "step_params", None)
    return params if prepare is None else prepare(params)


def checked_step_input(model, params, carry, x):
    """Check one step's params, carry and input x [*batch, input_size] (a map
    [*batch, H, W, C] for the convolutional cells); return x."""
    _checks.model_params(model, params)
    shape = _checks.input_shape(model, params)
    x = _checks.step_input("x", x, shape)
    _checks.carry_or_initial(model, carry, tuple(x.shape[:x.ndim - len(shape)]),
                             _checks.compute_dtype(params, x))
    return x


def split_gates(a, n: int):
    """Split the last axis into `n` equal gate blocks."""
    return jnp.split(a, n, axis=-1)


def rows(a):
    """[T, B, n] -> [T*B, n]: all steps as the rows of one matmul (the loop rules'
    weight gradients)."""
    return a.reshape(-1, a.shape[-1])
