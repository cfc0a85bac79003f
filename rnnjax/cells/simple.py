"""The vanilla (Elman) RNN and its identity-initialised ReLU form, the IRNN."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnnjax.cells import simple_rule
from rnnjax.cells.base import Cell

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "identity": lambda a: a,
               "linear": lambda a: a}
#: the named activations' derivatives as functions of their outputs (the loop rule's)
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
    with a hand-written backward pass (`rnnjax.cells.simple_rule`); reverse-mode
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
        return simple_rule.loop_rule(ACTIVATIONS[self.activation],
                                      OUTPUT_DERIVATIVES[self.activation])

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
