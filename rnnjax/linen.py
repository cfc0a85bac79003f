"""flax.linen wrappers: rnnjax models as Modules, beside Flax's own layers.

`Cell(cell)` is one step, `(carry, x) -> (carry, y)`; `RNN(model)` runs `rj.unroll`
over whole sequences for any model (a cell, `rj.Stacked`, `rj.Bidirectional`). In
both, the model's whole param pytree (exactly what `model.init` returns) is ONE
Flax param named "cell", so `{"params": {"cell": p}}` with `p` from `model.init`
applies the wrapper, and `variables["params"]["cell"]` is usable with the functional
API. Dropout of a `Stacked` is Flax's convention: it is on when `deterministic=False`
(a field, or a call argument that overrides it) and then draws its key from
`self.make_rng("dropout")`; models without dropout ignore `deterministic`.

A small Flax model: a 1-D convolution over time, our LSTM, a dense head per step.

>>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj, rnnjax.linen as rjl
>>> class Tagger(nn.Module):
...     @nn.compact
...     def __call__(self, xs, seq_lengths=None):
...         xs = nn.relu(nn.Conv(features=8, kernel_size=(3,))(xs))   # [B, T, 8]
...         _, ys = rjl.RNN(rj.LSTM(hidden_size=16))(xs, seq_lengths)  # [B, T, 16]
...         return nn.Dense(features=5)(ys)
>>> xs = jnp.ones((2, 10, 3))
>>> variables = Tagger().init(jax.random.key(0), xs)
>>> jax.tree_util.tree_map(jnp.shape, variables["params"]["RNN_0"])
{'cell': {'W_h': (16, 64), 'W_x': (8, 64), 'b': (64,)}}
>>> Tagger().apply(variables, xs, jnp.array([10, 6])).shape
(2, 10, 5)

`from_linen_cell` converts a trained `nn.LSTMCell`, `nn.OptimizedLSTMCell`,
`nn.GRUCell` or `nn.SimpleCell` and its params to an rnnjax cell and params.
The same wrappers for `flax.nnx` are in `rnnjax.nnx`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnjax import _checks, cells
from rnnjax.cells import GRU, LSTM, SimpleRNN
from rnnjax.layers import Bidirectional, Stacked
from rnnjax.loop import unroll


def _uses_dropout(model) -> bool:
    """True when `model` (or a layer inside it) is a `Stacked` with dropout > 0."""
    if isinstance(model, Stacked):
        return model.dropout > 0.0 or any(_uses_dropout(layer) for layer in model.layers)
    if isinstance(model, Bidirectional):
        return _uses_dropout(model.fwd) or _uses_dropout(model.bwd)
    return False


def _dropout_key(module: nn.Module, model, deterministic):
    if not _uses_dropout(model):
        return None
    if deterministic is None:
        deterministic = module.deterministic
    if deterministic is None:
        raise ValueError(f"{type(module).__name__} of a model with dropout needs "
                         f"deterministic=True or False (as a field or at call time)")
    return None if deterministic else module.make_rng("dropout")


def _model_params(module: nn.Module, model, name: str, x):
    """The "cell" param: `model.init` on first use, then checked against x's features
    (so a wrong input meets our ValueError, not Flax's shape error)."""
    if module.has_variable("params", "cell"):
        _checks.feature_size(name, x, model.input_size_of(module.get_variable("params", "cell")))
    return module.param("cell", lambda key: model.init(key, x.shape[-1], module.param_dtype))


class Cell(nn.RNNCellBase):
    """One step of an rnnjax cell as a Flax module: `(carry, x) -> (carry, y)`.

    Attributes:
      cell: an rnnjax cell (`rj.LSTM(16)`, `rj.Stacked([...])` of cells, ...).
      param_dtype: dtype of the params at init.
      deterministic: dropout of a `Stacked` is off when True (see the module doc).

    The param "cell" is `cell.init(key, x.shape[-1])`. `carry=None` starts from
    `cell.initial_carry(x.shape[:-1])`. It is an `nn.RNNCellBase`, so `nn.RNN` can
    scan it (`initialize_carry(rng, input_shape)` gives zeros); `rjl.RNN` is the
    faster loop (the input matmul runs once over all steps) and honours seq_lengths
    the rnnjax way.

    >>> import jax, jax.numpy as jnp, rnnjax as rj, rnnjax.linen as rjl
    >>> step = rjl.Cell(rj.GRU(hidden_size=4))
    >>> x = jnp.ones((2, 3))
    >>> variables = step.init(jax.random.key(0), step.initial_carry((2,)), x)
    >>> carry, y = step.apply(variables, step.initial_carry((2,)), x)
    >>> carry.shape, y.shape
    ((2, 4), (2, 4))
    """

    cell: Any
    param_dtype: Any = jnp.float32
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, carry, x, deterministic: bool | None = None):
        if not isinstance(self.cell, cells.Cell):
            raise ValueError(f"cell must be an rnnjax cell (one step), got {self.cell!r}; "
                             f"wrap sequence models such as rj.Bidirectional in rnnjax.linen.RNN")
        x = _checks.float_array("x", x, min_rank=1, layout="[*batch, input_size]")
        params = _model_params(self, self.cell, "x", x)
        if carry is None:
            carry = self.cell.initial_carry(x.shape[:-1], x.dtype)
        key = _dropout_key(self, self.cell, deterministic)
        if key is not None:
            return self.cell(params, carry, x, key)
        return self.cell(params, carry, x)

    @nn.nowrap
    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The cell's own initial carry (zeros) for `batch_shape`."""
        return self.cell.initial_carry(_checks.batch_shape(batch_shape), dtype)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        """`nn.RNNCellBase`'s form: zeros for input_shape [*batch, input_size]; rng unused."""
        del rng
        return self.cell.initial_carry(tuple(input_shape)[:-1], self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(nn.Module):
    """`rj.unroll` of any rnnjax model as a Flax module; returns `(final_carry, ys)`.

    Attributes:
      model: a cell, `rj.Stacked` or `rj.Bidirectional` (or a stack of them).
      time_major: layout of xs and ys; None (default) is `rj.unroll`'s rule: the
        model's own `time_major` attribute where it has one, else False ([B, T, F]).
      unroll, remat: as in `rj.unroll`.
      param_dtype: dtype of the params at init.
      deterministic: dropout of a `Stacked` is off when True (see the module doc).

    The param "cell" is `model.init(key, xs.shape[-1])`. `__call__(xs,
    seq_lengths=None, carry=None, reverse=False, deterministic=None)` has
    `rj.unroll`'s meaning: past its length a sequence's carry is frozen and its
    outputs are zero.

    >>> import jax, jax.numpy as jnp, rnnjax as rj, rnnjax.linen as rjl
    >>> rnn = rjl.RNN(rj.Bidirectional(rj.LSTM(4), rj.GRU(3)))
    >>> xs, lengths = jnp.ones((2, 6, 5)), jnp.array([6, 2])
    >>> variables = rnn.init(jax.random.key(0), xs)
    >>> (h_fwd, h_bwd), ys = rnn.apply(variables, xs, lengths)
    >>> ys.shape, h_fwd.c.shape, h_bwd.shape, bool((ys[1, 2:] == 0).all())
    ((2, 6, 7), (2, 4), (2, 3), True)
    """

    model: Any
    time_major: bool | None = None
    unroll: int = 1
    remat: bool = False
    param_dtype: Any = jnp.float32
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, xs, seq_lengths=None, carry=None, reverse: bool = False,
                 deterministic: bool | None = None):
        layout = "[T, B, F] (time_major=True)" if self.time_major else "[B, T, F]"
        xs = _checks.float_array("xs", xs, rank=3, layout=layout)
        params = _model_params(self, self.model, "xs", xs)
        key = _dropout_key(self, self.model, deterministic)
        return unroll(self.model, params, xs, carry=carry, seq_lengths=seq_lengths,
                         reverse=reverse, time_major=self.time_major, unroll=self.unroll,
                         remat=self.remat, key=key)

    @nn.nowrap
    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The model's own initial carry (zeros) for `batch_shape`."""
        return self.model.initial_carry(_checks.batch_shape(batch_shape), dtype)


# -- weights from flax.linen's own cells --------------------------------------------


def _concat(params, names, leaf):
    return jnp.concatenate([params[n][leaf] for n in names], axis=-1)


def from_linen_cell(linen_cell, params):
    """`(cell, cell_params)` equal to a flax.linen cell with params `params`.

    `params` is the cell's own param dict (`variables["params"]` of the cell, or the
    sub-dict of a larger model). Supported: `nn.LSTMCell` and `nn.OptimizedLSTMCell`
    -> `rj.LSTM` (gates i, f, g, o in both; flax's bias is on the recurrent dense
    layers), `nn.GRUCell` -> `rj.GRU(reset_after=True)` (flax's `hn` bias becomes
    `b_hn`), `nn.SimpleCell` (residual=False) -> `rj.SimpleRNN`. The gate and
    activation functions must be flax's defaults (SimpleCell: any). Carries differ
    in order: flax's LSTM carry is `(c, h)`, ours `rj.LSTMCarry(h, c)`.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj, rnnjax.linen as rjl
    >>> lin = nn.GRUCell(features=4)
    >>> x = jnp.ones((2, 3))
    >>> h0 = lin.initialize_carry(jax.random.key(0), x.shape)
    >>> variables = lin.init(jax.random.key(1), h0, x)
    >>> cell, p = rjl.from_linen_cell(lin, variables["params"])
    >>> cell.reset_after, sorted(p)
    (True, ['W_h', 'W_x', 'b', 'b_hn'])
    >>> bool(jnp.allclose(lin.apply(variables, h0, x)[1], cell(p, h0, x)[1], atol=1e-6))
    True
    """
    params = dict(params)
    hidden = getattr(linen_cell, "features", None)

    def need_default(attr, fn):
        if getattr(linen_cell, attr) is not fn:
            raise ValueError(f"{type(linen_cell).__name__} with a non-default {attr} "
                             f"({getattr(linen_cell, attr)!r}) has no rnnjax counterpart")

    if isinstance(linen_cell, (nn.LSTMCell, nn.OptimizedLSTMCell)):
        need_default("gate_fn", jax.nn.sigmoid)
        need_default("activation_fn", jnp.tanh)
        gates = "ifgo"
        return LSTM(hidden), {
            "W_x": _concat(params, [f"i{g}" for g in gates], "kernel"),
            "W_h": _concat(params, [f"h{g}" for g in gates], "kernel"),
            "b": _concat(params, [f"h{g}" for g in gates], "bias"),
        }
    if isinstance(linen_cell, nn.GRUCell):
        need_default("gate_fn", jax.nn.sigmoid)
        need_default("activation_fn", jnp.tanh)
        return GRU(hidden, reset_after=True), {
            "W_x": _concat(params, ["ir", "iz", "in"], "kernel"),
            "W_h": _concat(params, ["hr", "hz", "hn"], "kernel"),
            "b": _concat(params, ["ir", "iz", "in"], "bias"),
            "b_hn": params["hn"]["bias"],
        }
    if isinstance(linen_cell, nn.SimpleCell):
        if linen_cell.residual:
            raise ValueError("nn.SimpleCell with residual=True has no rnnjax counterpart")
        named = {jnp.tanh: "tanh", jax.nn.relu: "relu"}
        activation = named.get(linen_cell.activation_fn, linen_cell.activation_fn)
        return SimpleRNN(hidden, activation=activation), {
            "W_x": params["i"]["kernel"],
            "W_h": params["h"]["kernel"],
            "b": params["i"]["bias"],
        }
    raise ValueError(f"from_linen_cell supports nn.LSTMCell, nn.OptimizedLSTMCell, "
                     f"nn.GRUCell and nn.SimpleCell, got {type(linen_cell).__name__}")


__all__ = ["RNN", "Cell", "from_linen_cell"]
