"""The vanilla (Elman) RNN and its identity-initialised ReLU form, the IRNN."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnnjax.cells.base import Cell, StepRule, rows

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "identity": lambda a: a,
               "linear": lambda a: a}
#: the named activations' derivatives as functions of their outputs (the loop rule's:
#: its only residuals are the outputs themselves)
OUTPUT_DERIVATIVES = {"tanh": lambda y: 1.0 - y ** 2,
                      "relu": lambda y: (y > 0).astype(y.dtype),
                      "identity": jnp.ones_like, "linear": jnp.ones_like}


def resolve_activation(activation) -> Callable:
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or a callable, "
                         f"got {activation!r}")
    return ACTIVATIONS[activation]


@dataclasses.dataclass(frozen=True)
class SimpleRNN(Cell):
    """h_t = act(h_{t-1} W_h + x_t W_x + b), in the row-vector form.

    Params: `W_x` [I, H], `W_h` [H, H], `b` [H]. The carry is h [*batch, H] and the
    output is h. `activation` is "tanh", "relu", "identity" (a linear RNN, the
    probe's analytic reference) or any jax function. `recurrent_init` is
    "orthogonal" (default), "identity" or "glorot" (or a callable), scaled by
    `recurrent_scale`: `recurrent_scale=rho` with the orthogonal init gives W_h
    with every singular value equal to rho.

    `use_loop_rule=True` (default): for a named activation `rj.unroll` runs the loop
    with a hand-written backward pass (`loop_rule`); reverse-mode
    only: set `use_loop_rule=False` for forward-mode autodiff through `rj.unroll`.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> cell = rj.SimpleRNN(hidden_size=4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> {k: v.shape for k, v in params.items()}
    {'W_x': (3, 4), 'W_h': (4, 4), 'b': (4,)}
    >>> h, y = cell(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> y.shape
    (2, 4)
    """

    hidden_size: int
    activation: str | Callable = "tanh"
    recurrent_init: str | Callable = "orthogonal"
    recurrent_scale: float = 1.0
    use_loop_rule: bool = True

    def __post_init__(self):
        super().__post_init__()
        resolve_activation(self.activation)

    @property
    def loop_rule(self):
        if not self.use_loop_rule or not isinstance(self.activation, str):
            return None  # a custom activation function: the generic loop
        return _rule(self.activation)

    def step(self, params, carry, xp):
        h = resolve_activation(self.activation)(xp + carry @ params["W_h"])
        return h, h


@dataclasses.dataclass(frozen=True)
class IRNN(SimpleRNN):
    """ReLU RNN with W_h = `recurrent_scale` * I and zero bias (Le, Jaitly and Hinton, 2015)."""

    hidden_size: int
    activation: str | Callable = "relu"
    recurrent_init: str | Callable = "identity"
    recurrent_scale: float = 1.0


# -- the loop rule: one step and its hand-written backward ---------------------------
# h_t = act(x_t W_x + h W_h + b) for an elementwise act whose derivative is a function
# of its output, so the only residuals are the outputs: h_{t-1} of a step is the
# previous output, the loop's first carry, or the initial carry where it restarts.

def _rule_forward(params, carry, x_t, act):
    (h,) = carry
    h_new = act(x_t @ params["W_x"] + h @ params["W_h"] + params["b"])
    return (h_new,), h_new, ()


def _rule_backward(w_h_t, residuals, y, dcarry, dy, derivative):
    del residuals
    dz = (dcarry[0] + dy) * derivative(y)
    return (dz @ w_h_t,), dz


def _rule_grads(params, xs, saved, dz):
    (first,), (initial,) = saved.first, saved.initial
    h_prev = jnp.concatenate([first[None], saved.ys[:-1]], axis=0)  # dead steps: dz = 0
    if saved.restart is not None:
        h_prev = jnp.where(saved.restart[..., None], initial[None], h_prev)
    dz_rows = rows(dz)
    dparams = {"W_x": rows(xs).T @ dz_rows, "W_h": rows(h_prev).T @ dz_rows,
               "b": dz_rows.sum(axis=0)}
    return dparams, dz @ params["W_x"].T


@functools.cache
def _rule(activation: str) -> StepRule:
    """The rule of a named activation (cached: one object per activation, a static
    argument of the compiled loop)."""
    return StepRule(functools.partial(_rule_forward, act=ACTIVATIONS[activation]),
                    lambda params: params["W_h"].T,
                    functools.partial(_rule_backward,
                                      derivative=OUTPUT_DERIVATIVES[activation]),
                    _rule_grads)
