"""flax.nnx wrappers: rnnjax models as NNX Modules, beside Flax's own layers.

`Cell(cell, input_size, rngs=rngs)` is one step, `(carry, x) -> (carry, y)`;
`RNN(model, input_size, rngs=rngs)` runs `rj.unroll` over whole sequences for any model
(a cell, `rj.Stacked`, `rj.Bidirectional`). Both hold the model's params (what
`model.init` returns, drawn from `rngs.params()`) as `.params`: the same pytree with
one `nnx.Param` per array, so `nnx.grad`, `nnx.Optimizer` and `nnx.state` see the
model's own names (`params/W_h`; `params/0/W_h` for layer 0 of a `Stacked`). Weights
move both ways: `module.get_params()` is the plain pytree for `rj.unroll`,
`module.set_params(p)` or `RNN(model, params=p)` takes one back.

Dropout of a `Stacked` is NNX's convention (as in `nnx.Dropout`): it is on when
`deterministic` is False (an attribute, a call argument that overrides it, or
`nnx.view(module, deterministic=...)`), with keys from the "dropout" stream of the
`rngs` given at construction (forked) or at call time (`nnx.Rngs`, a stream or a key);
models without dropout ignore both. The flax.linen wrappers are in `rnnjax.linen`.

A small NNX model: a 1-D convolution over time, our LSTM, a dense head per step.

>>> import jax, jax.numpy as jnp, rnnjax as rj, rnnjax.nnx as rjn
>>> from flax import nnx
>>> class Tagger(nnx.Module):
...     def __init__(self, rngs):
...         self.conv = nnx.Conv(3, 8, kernel_size=(3,), rngs=rngs)
...         self.rnn = rjn.RNN(rj.LSTM(hidden_size=16), 8, rngs=rngs)
...         self.head = nnx.Linear(16, 5, rngs=rngs)
...     def __call__(self, xs, seq_lengths=None):
...         xs = nnx.relu(self.conv(xs))                   # [B, T, 8]
...         _, ys = self.rnn(xs, seq_lengths)              # [B, T, 16]
...         return self.head(ys)                           # [B, T, 5]
>>> model = Tagger(nnx.Rngs(0))
>>> jax.tree_util.tree_map(jnp.shape, model.rnn.get_params())   # the rnnjax params
{'W_h': (16, 64), 'W_x': (8, 64), 'b': (64,)}
>>> model(jnp.ones((2, 10, 3)), jnp.array([10, 6])).shape
(2, 10, 5)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from rnnjax import _checks, cells
from rnnjax.layers import Stacked
from rnnjax.linen import _uses_dropout
from rnnjax.loop import unroll

# Compiled once per (model, input size, dtype): an eager init (as NNX modules run it)
# would otherwise dispatch its many small ops one by one. Inside an outer jit it inlines.
_init_jit = jax.jit(lambda model, key, size, dtype: model.init(key, size, dtype),
                    static_argnums=(0, 2, 3))


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


class _Wrapper(nnx.Module):
    """What `Cell` and `RNN` share: the params, the dropout flags and the dropout stream."""

    def __init__(self, model, input_size, rngs, params, param_dtype, deterministic):
        if rngs is not None and not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs must be an nnx.Rngs, got {type(rngs).__name__}")
        if params is None:
            if input_size is None or rngs is None:
                raise ValueError(f"{type(self).__name__} needs input_size and rngs (to init "
                                 f"the params), or params (from model.init or training)")
            input_size = _checks.positive_int("input_size", input_size)
            params = _init_jit(model, rngs.params(), input_size, param_dtype)
        else:
            try:
                size = model.input_size_of(params)
            except (KeyError, IndexError, TypeError, AttributeError) as err:
                raise ValueError(f"params must be the params of {model!r} (from model.init), "
                                 f"got the structure {jax.tree_util.tree_structure(params)}"
                                 ) from err
            if input_size is not None and input_size != size:
                raise ValueError(f"input_size must match params (input size {size}), "
                                 f"got {input_size}")
            _checks.same_structure("params", params, _init_jit.eval_shape(
                model, jax.random.key(0), size, param_dtype))
        # One Param per array, not one Param holding the pytree: nnx.Optimizer (flax
        # 0.12) re-nests the state of a pytree-valued Variable after its first update.
        self.params = nnx.data(jax.tree_util.tree_map(lambda a: nnx.Param(jnp.asarray(a)),
                                                      params))
        self.deterministic = deterministic
        self._has_dropout = _uses_dropout(model)
        if self._has_dropout and rngs is not None:
            self.rngs = rngs["dropout"].fork()
        else:
            self.rngs = nnx.data(None)

    def get_params(self):
        """The params as the functional API takes them: `model.init`'s pytree of arrays."""
        return jax.tree_util.tree_map(lambda v: v.get_value(), self.params,
                                      is_leaf=_is_variable)

    def set_params(self, params):
        """Load `params` (the pytree `model.init` returns) into the `nnx.Param`s in place."""
        _checks.same_structure("params", params, self.get_params())
        for var, value in zip(jax.tree_util.tree_leaves(self.params, is_leaf=_is_variable),
                              jax.tree_util.tree_leaves(params)):
            var.set_value(jnp.asarray(value))

    def set_view(self, deterministic: bool | None = None):
        """For `nnx.view(module, deterministic=...)`: dropout is off when True."""
        if deterministic is not None:
            self.deterministic = deterministic


def _dropout_key(module, deterministic, rngs):
    """The key for a `Stacked`'s dropout, or None when it is off (see the module doc)."""
    if not module._has_dropout:
        return None
    if deterministic is None:
        deterministic = module.deterministic
    if deterministic is None:
        raise ValueError(f"{type(module).__name__} of a model with dropout needs "
                         f"deterministic=True or False (as an attribute, at call time or "
                         f"with nnx.view)")
    if deterministic:
        return None
    if rngs is None:
        rngs = module.rngs
    if rngs is None:
        raise ValueError(f"{type(module).__name__} with deterministic=False needs rngs for "
                         f"dropout (nnx.Rngs at construction, or rngs= at call time)")
    if isinstance(rngs, nnx.Rngs):
        return rngs["dropout"]()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(f"rngs must be an nnx.Rngs, an nnx.RngStream or a PRNG key, "
                    f"got {type(rngs).__name__}")


class Cell(_Wrapper, nnx.RNNCellBase):
    """One step of an rnnjax cell as an NNX module: `(carry, x) -> (carry, y)`.

    Args:
      cell: an rnnjax cell (`rj.LSTM(16)`, `rj.Stacked([...])` of cells, ...).
      input_size: I, the features of x [*batch, I]; may be left out with `params`.
      rngs: `nnx.Rngs`: "params" draws the init, "dropout" (forked) the dropout keys.
      params: the cell's params (the pytree `cell.init` returns) instead of an init.
      param_dtype: dtype of the params at init.
      deterministic: dropout of a `Stacked` is off when True (see the module doc).

    `__call__(carry, x, deterministic=None, rngs=None)` takes x [*batch, I]; `carry=None`
    starts from `cell.initial_carry(x.shape[:-1])`. It is an `nnx.RNNCellBase`, so
    `nnx.RNN` can scan it (`initialize_carry` gives zeros); `rjn.RNN` is the faster loop
    (the input matmul runs once over all steps) and honours seq_lengths the rnnjax way.

    >>> import jax, jax.numpy as jnp, rnnjax as rj, rnnjax.nnx as rjn
    >>> from flax import nnx
    >>> step = rjn.Cell(rj.GRU(hidden_size=4), 3, rngs=nnx.Rngs(0))
    >>> carry, y = step(None, jnp.ones((2, 3)))                    # x [B, I]
    >>> carry, y = step(carry, jnp.ones((2, 3)))
    >>> carry.shape, y.shape
    ((2, 4), (2, 4))
    """

    def __init__(self, cell, input_size: int | None = None, *, rngs: nnx.Rngs | None = None,
                 params=None, param_dtype: Any = jnp.float32,
                 deterministic: bool | None = None):
        if not isinstance(cell, cells.Cell) or (isinstance(cell, Stacked) and not all(
                isinstance(layer, cells.Cell) for layer in cell.layers)):
            raise TypeError(f"cell must be an rnnjax cell (one step), got {cell!r}; wrap "
                            f"sequence models such as rj.Bidirectional in rnnjax.nnx.RNN")
        self.cell = cell
        super().__init__(cell, input_size, rngs, params, param_dtype, deterministic)

    def __call__(self, carry, x, deterministic: bool | None = None, rngs=None):
        x = _checks.float_array("x", x, min_rank=1, layout="[*batch, input_size]")
        if carry is None:
            carry = self.cell.initial_carry(x.shape[:-1], x.dtype)
        key = _dropout_key(self, deterministic, rngs)
        if key is not None:
            return self.cell(self.get_params(), carry, x, key)
        return self.cell(self.get_params(), carry, x)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The cell's own initial carry (zeros) for `batch_shape`."""
        return self.cell.initial_carry(_checks.batch_shape(batch_shape), dtype)

    def initialize_carry(self, input_shape, rngs=None, carry_init=None):
        """`nnx.RNNCellBase`'s form: zeros for input_shape [*batch, I]; rngs unused."""
        del rngs
        if carry_init is not None:
            raise ValueError("carry_init is not supported: rnnjax carries start at zeros "
                             "(pass the carry to the call instead)")
        dtype = jax.tree_util.tree_leaves(self.get_params())[0].dtype
        return self.cell.initial_carry(tuple(input_shape)[:-1], dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(_Wrapper):
    """`rj.unroll` of any rnnjax model as an NNX module; returns `(final_carry, ys)`.

    Args:
      model: a cell, `rj.Stacked` or `rj.Bidirectional` (or a stack of them).
      input_size: F, the features of xs; may be left out with `params`.
      rngs: `nnx.Rngs`: "params" draws the init, "dropout" (forked) the dropout keys.
      params: the model's params (the pytree `model.init` returns) instead of an init.
      time_major: layout of xs and ys; None (default) is `rj.unroll`'s rule: the
        model's own `time_major` attribute where it has one, else False ([B, T, F]).
      unroll, remat: as in `rj.unroll`.
      param_dtype: dtype of the params at init.
      deterministic: dropout of a `Stacked` is off when True (see the module doc).

    `__call__(xs, seq_lengths=None, carry=None, reverse=False, deterministic=None,
    rngs=None)` has `rj.unroll`'s meaning: xs [B, T, F], seq_lengths int [B], carry
    the initial carry (None: zeros); past its length a sequence's carry is frozen and
    its outputs are zero.

    >>> import jax, jax.numpy as jnp, rnnjax as rj, rnnjax.nnx as rjn
    >>> from flax import nnx
    >>> model = rj.Bidirectional(rj.LSTM(4), rj.GRU(3))
    >>> rnn = rjn.RNN(model, 5, rngs=nnx.Rngs(0))
    >>> xs, lengths = jnp.ones((2, 6, 5)), jnp.array([6, 2])
    >>> (h_fwd, h_bwd), ys = rnn(xs, lengths)
    >>> ys.shape, h_fwd.c.shape, h_bwd.shape, bool((ys[1, 2:] == 0).all())
    ((2, 6, 7), (2, 4), (2, 3), True)
    >>> _, ys_f = rj.unroll(model, rnn.get_params(), xs, seq_lengths=lengths)
    >>> bool((ys_f == ys).all())
    True
    """

    def __init__(self, model, input_size: int | None = None, *,
                 rngs: nnx.Rngs | None = None, params=None, time_major: bool | None = None,
                 unroll: int = 1, remat: bool = False, param_dtype: Any = jnp.float32,
                 deterministic: bool | None = None):
        if not all(hasattr(model, a) for a in ("init", "initial_carry", "input_size_of")):
            raise TypeError(f"model must be an rnnjax model (a cell, rj.Stacked or "
                            f"rj.Bidirectional), got {model!r}")
        self.model = model
        self.time_major = time_major
        self.unroll = unroll
        self.remat = remat
        super().__init__(model, input_size, rngs, params, param_dtype, deterministic)

    def __call__(self, xs, seq_lengths=None, carry=None, reverse: bool = False,
                 deterministic: bool | None = None, rngs=None):
        key = _dropout_key(self, deterministic, rngs)
        return unroll(self.model, self.get_params(), xs, carry=carry,
                         seq_lengths=seq_lengths, reverse=reverse, time_major=self.time_major,
                         unroll=self.unroll, remat=self.remat, key=key)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The model's own initial carry (zeros) for `batch_shape`."""
        return self.model.initial_carry(_checks.batch_shape(batch_shape), dtype)


__all__ = ["RNN", "Cell"]
