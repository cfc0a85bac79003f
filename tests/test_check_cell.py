"""`rj.check_cell`: a user's cell checked against the protocol, and `unroll` saying
what is wrong with it (directly, and inside a Stacked or Bidirectional)."""

import dataclasses
import pydoc
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, WRAPPED_MODELS

import rnnjax as rj
from rnnjax.loop import protocol


@dataclasses.dataclass(frozen=True)
class GatedUnit(rj.Cell):
    """A minimal gated unit: one forget gate f, h' = (1 - f) h + f tanh(...)."""

    hidden_size: int
    gates: ClassVar[int] = 2

    def step(self, params, h, xp):
        f_x, n_x = jnp.split(xp, 2, axis=-1)
        f_h, n_h = jnp.split(h @ params["W_h"], 2, axis=-1)
        f = jax.nn.sigmoid(f_x + f_h)
        h = (1 - f) * h + f * jnp.tanh(n_x + f * n_h)
        return h, h


@dataclasses.dataclass(frozen=True)
class OneGateDeclared(GatedUnit):
    gates: ClassVar[int] = 1             # the step splits into two blocks


@dataclasses.dataclass(frozen=True)
class CarryOnly(GatedUnit):
    def step(self, params, h, xp):
        return super().step(params, h, xp)[0]


@dataclasses.dataclass(frozen=True)
class LSTMCarryOnly(rj.LSTM):
    """Returns only the carry, which is itself a pair (h, c)."""

    def step(self, params, carry, xp):
        return super().step(params, carry, xp)[0]


@dataclasses.dataclass
class Thawed(rj.Cell):
    hidden_size: int
    gates: ClassVar[int] = 2
    step = GatedUnit.step


@dataclasses.dataclass(frozen=True)
class ListField(GatedUnit):
    sizes: list = dataclasses.field(default_factory=lambda: [1, 2])


@dataclasses.dataclass(frozen=True)
class WrongOutput(GatedUnit):
    def step(self, params, h, xp):
        h, _ = super().step(params, h, xp)
        return h, h[..., :2]


class NoProtocol:
    hidden_size = 4


@dataclasses.dataclass(frozen=True)
class NoStep(rj.Cell):
    hidden_size: int


MISTAKES = {   # the cell, and what the message must say
    "gates": (OneGateDeclared(8), r"OneGateDeclared.step\(params, carry, xp\) failed with "
              r"carry float32\[2, 8\] and xp float32\[2, 8\].*needs `gates: ClassVar\[int\] "
              r"= n`"),
    "carry_only": (CarryOnly(8), r"must return \(carry, y\), a pair; it returned only the "
                   r"carry float32\[2, 8\]"),
    "pair_carry_only": (LSTMCarryOnly(8), r"LSTMCarryOnly.step must return \(carry, y\), "
                        r"a pair; it returned only the carry"),
    "thawed": (Thawed(8), r"Thawed must be a frozen dataclass"),
    "list_field": (ListField(8), r"ListField must be hashable .*field sizes holds an "
                   r"unhashable value"),
    "output": (WrongOutput(8), r"output y must have shape \(2, 8\).*got float32\[2, 2\]"),
    "no_protocol": (NoProtocol(), r"NoProtocol lacks init, input_size_of, initial_carry, "
                    r"output_size, strategy.*subclass rj.Cell"),
    "no_step": (NoStep(8), r"NoStep must define step\(params, carry, xp\)"),
}


@pytest.mark.parametrize("model", [*CELLS.values(), *WRAPPED_MODELS.values(), rj.LRU(3),
                                   rj.MinGRU(3), rj.MinLSTM(3), GatedUnit(4),
                                   rj.Stacked([GatedUnit(4), rj.LSTM(3)]),
                                   rj.Bidirectional(GatedUnit(4), rj.GRU(2))],
                         ids=lambda m: type(m).__name__)
def test_every_cell_of_the_package_and_a_good_user_cell_pass(model):
    rj.check_cell(model, 3)
    rj.check_cell(model, 5, batch_shape=4)


@pytest.mark.parametrize("name", MISTAKES)
def test_each_mistake_is_named_in_plain_words(name):
    cell, message = MISTAKES[name]
    with pytest.raises(rj.CellProtocolError, match=message):
        rj.check_cell(cell, 3)


@pytest.mark.parametrize("name", ["gates", "carry_only", "thawed", "list_field", "output"])
def test_unroll_raises_the_same_message_alone_and_inside_composites(name):
    cell, message = MISTAKES[name]
    xs = jnp.ones((2, 4, 3))
    for model in (cell, rj.Stacked([rj.LSTM(3), cell]), rj.Bidirectional(rj.GRU(2), cell)):
        with pytest.raises(rj.CellProtocolError, match=message):
            rj.unroll(model, model.init(jax.random.key(0), 3), xs)


def test_unroll_checks_a_user_cell_once_per_input_size():
    cell = GatedUnit(5)
    params = cell.init(jax.random.key(0), 3)
    protocol._check_cached.cache_clear()
    for _ in range(3):
        _, ys = rj.unroll(cell, params, jnp.ones((2, 4, 3)))
    info = protocol._check_cached.cache_info()
    assert info.misses == 1 and info.hits >= 2   # checked once, then read from the cache
    # the checked cell computes what a plain Python loop of its step computes
    xs = jax.random.normal(jax.random.key(1), (2, 4, 3))
    _, ys = rj.unroll(cell, params, xs)
    h, expected = cell.initial_carry(2), []
    for t in range(4):
        h, y = cell(params, h, xs[:, t])
        expected.append(y)
    np.testing.assert_allclose(ys, jnp.stack(expected, axis=1), rtol=1e-6)


def test_check_cell_rejects_bad_arguments():
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        rj.check_cell(GatedUnit(4), 0)
    with pytest.raises(TypeError, match="batch_shape must be a tuple of ints"):
        rj.check_cell(GatedUnit(4), 3, batch_shape="B")


def test_help_of_composite_init_describes_its_params():
    assert "A tuple with each layer's params" in pydoc.render_doc(rj.Stacked.init)
    assert '"fwd"' in pydoc.render_doc(rj.Bidirectional.init)
