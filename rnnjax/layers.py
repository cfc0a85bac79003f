"""Combinators and feed-forward layers: Stacked, Bidirectional, Dense, Embedding.

The usual sequence shapes are plain compositions of `unroll` with these layers.

Many-to-one (classify a sequence from its last hidden state):

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> rnn, head = rj.LSTM(hidden_size=16), rj.Dense(features=3)
>>> k1, k2 = jax.random.split(jax.random.key(0))
>>> p_rnn, p_head = rnn.init(k1, input_size=4), head.init(k2, input_size=16)
>>> xs, lengths = jnp.ones((2, 9, 4)), jnp.array([9, 5])
>>> carry, _ = rj.unroll(rnn, p_rnn, xs, seq_lengths=lengths)
>>> head(p_head, carry.h).shape        # logits per sequence
(2, 3)

Many-to-many (tag every step of token sequences):

>>> emb, tagger = rj.Embedding(vocab_size=50, features=8), rj.Bidirectional(rj.GRU(6), rj.GRU(6))
>>> p_emb, p_tag = emb.init(k1), tagger.init(k2, input_size=8)
>>> tokens = jnp.zeros((2, 9), jnp.int32)
>>> _, ys = rj.unroll(tagger, p_tag, emb(p_emb, tokens), seq_lengths=lengths)
>>> head(rj.Dense(3).init(k2, 12), ys).shape   # logits per step
(2, 9, 3)

One-to-many (generate from one input, feeding each output back in):

>>> cell, out = rj.GRU(hidden_size=8), rj.Dense(features=4)
>>> p_cell, p_out = cell.init(k1, input_size=4), out.init(k2, input_size=8)
>>> def generate(x0, steps):
...     def step(state, _):
...         carry, x = state
...         carry, h = cell(p_cell, carry, x)
...         y = out(p_out, h)
...         return (carry, y), y
...     _, ys = jax.lax.scan(step, (cell.initial_carry((x0.shape[0],)), x0), None, length=steps)
...     return jnp.swapaxes(ys, 0, 1)
>>> generate(jnp.ones((2, 4)), steps=6).shape
(2, 6, 4)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax import _checks, initializers
from rnnjax.cells.base import Cell, Strategy, checked_step_input
from rnnjax.loop.dispatch import run


@dataclasses.dataclass(frozen=True)
class Stacked(Cell):
    """A deep RNN: `layers[0]` reads the input, each next layer reads the one below.

    A stack of cells is itself a cell (its step runs every layer once). A stack may
    also hold `Bidirectional` layers; it is then a sequence model for `unroll` only.
    Params and carries are tuples with one entry per layer. `dropout` is the rate
    applied to each layer's outputs before the next layer (never after the last),
    only when a `key` is passed. `time_major`, when set, is the layout `unroll` takes
    for this model when it is not told (set by `interop.from_torch`).
    """

    layers: tuple[Any, ...]
    dropout: float = 0.0
    time_major: bool | None = None
    #: the loop runs each layer in turn (`unroll_time_major`)
    strategy = Strategy.COMPOSITE

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("layers must hold at least one layer, got an empty sequence")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        object.__setattr__(self, "layers", layers)

    @property
    def hidden_size(self) -> int:
        """The top layer's hidden size (its output size when it is Bidirectional)."""
        return getattr(self.layers[-1], "hidden_size", self.output_size)

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def init(self, key, input_size, dtype=jnp.float32):
        """A tuple with each layer's params, in order: layer i's init with the output
        size of layer i-1 (`input_size` for the first) as its input size."""
        input_size = _checks.positive_int("input_size", input_size)
        params = []
        keys = jax.random.split(_checks.prng_key("key", key), len(self.layers))
        for layer, k in zip(self.layers, keys):
            params.append(layer.init(k, input_size, dtype))
            input_size = layer.output_size
        return tuple(params)

    def input_size_of(self, params):
        return self.layers[0].input_size_of(params[0])

    def input_shape_of(self, params):
        return _checks.input_shape(self.layers[0], params[0])

    @property
    def output_shape(self):
        return _checks.output_shape(self.layers[-1])

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """A tuple with each layer's initial carry."""
        batch_shape = _checks.batch_shape(batch_shape)
        return tuple(layer.initial_carry(batch_shape, dtype) for layer in self.layers)

    def hidden(self, carry):
        """The top layer's hidden state."""
        return self.layers[-1].hidden(carry[-1])

    def replace_hidden(self, carry, h):
        return (*carry[:-1], self.layers[-1].replace_hidden(carry[-1], h))

    def output(self, params, carry, xp):
        """The top layer's output (one that reads more than its state, like the LRU's,
        needs that layer's input: only for a stack of one layer)."""
        top = self.layers[-1]
        if len(self.layers) == 1:
            return top.output(params[0], carry[0], xp)
        if type(top).output is not Cell.output:
            raise ValueError(f"the output of a {type(top).__name__} on top of a Stacked "
                             f"depends on the layer's input; probe the stack without it")
        return top.hidden(carry[-1])

    def _require_cells(self):
        if not all(isinstance(layer, Cell) for layer in self.layers):
            raise ValueError("a Stacked that holds Bidirectional layers has no single step; "
                             "run it over whole sequences with rj.unroll")

    def project_inputs(self, params, x):
        self._require_cells()
        return self.layers[0].project_inputs(params[0], x)

    def step(self, params, carry, xp, key=None):
        self._require_cells()
        keys = self._dropout_keys(key)
        first, y = self.layers[0].step(params[0], carry[0], xp)
        carries = [first]
        for i, layer in enumerate(self.layers[1:], start=1):
            c, y = layer(params[i], carry[i], self._drop(y, keys[i - 1]))
            carries.append(c)
        return tuple(carries), y

    def __call__(self, params, carry, x, key=None):
        self._require_cells()
        x = checked_step_input(self, params, carry, x)
        return self.step(params, carry, self.project_inputs(params, x), key)

    def unroll_time_major(self, params, xs, carry, *, lengths, reverse, unroll, remat,
                          key=None, resets=None):
        """Layer by layer, each a loop of its own (dropout masks are per step and unit)."""
        keys = self._dropout_keys(key)
        finals, ys = [], xs
        for i, layer in enumerate(self.layers):
            if i > 0:
                ys = self._drop(ys, keys[i - 1])
            final, ys = run(layer, params[i], ys, carry[i], lengths=lengths,
                            reverse=reverse, unroll=unroll, remat=remat, resets=resets)
            finals.append(final)
        return tuple(finals), ys

    def _dropout_keys(self, key):
        if key is None or self.dropout == 0.0:
            return [None] * len(self.layers)
        return list(jax.random.split(key, len(self.layers)))

    def _drop(self, y, key):
        if key is None:
            return y
        keep = jax.random.bernoulli(key, 1.0 - self.dropout, y.shape)
        return jnp.where(keep, y / (1.0 - self.dropout), 0.0).astype(y.dtype)


@dataclasses.dataclass(frozen=True)
class Bidirectional:
    """Runs `fwd` forward and `bwd` backward over each sequence (within its length).

    `merge` is "concat" (outputs [..., H_fwd + H_bwd]) or "sum". Params are
    `{"fwd": ..., "bwd": ...}`; the carry is `(fwd_carry, bwd_carry)`. The backward
    direction's final carry is its state after reading each sequence's first step.
    Use with `rj.unroll` (it is a sequence model, not a step cell).
    """

    fwd: Any
    bwd: Any
    merge: str = "concat"
    #: the loop runs both directions (`unroll_time_major`)
    strategy = Strategy.COMPOSITE

    def __post_init__(self):
        if self.merge not in ("concat", "sum"):
            raise ValueError(f"merge must be 'concat' or 'sum', got {self.merge!r}")
        if self.merge == "sum" and self.fwd.output_size != self.bwd.output_size:
            raise ValueError(f"merge='sum' needs equal output sizes, got fwd "
                             f"{self.fwd.output_size} and bwd {self.bwd.output_size}")

    @property
    def output_size(self) -> int:
        if self.merge == "sum":
            return self.fwd.output_size
        return self.fwd.output_size + self.bwd.output_size

    def init(self, key, input_size, dtype=jnp.float32):
        """`{"fwd": fwd.init(...), "bwd": bwd.init(...)}`, both reading `input_size`."""
        k_f, k_b = jax.random.split(_checks.prng_key("key", key))
        return {"fwd": self.fwd.init(k_f, input_size, dtype),
                "bwd": self.bwd.init(k_b, input_size, dtype)}

    def input_size_of(self, params):
        return self.fwd.input_size_of(params["fwd"])

    def input_shape_of(self, params):
        return _checks.input_shape(self.fwd, params["fwd"])

    @property
    def output_shape(self):
        """The directions' outputs joined along their last axis (channels for maps)."""
        return (*_checks.output_shape(self.fwd)[:-1], self.output_size)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        batch_shape = _checks.batch_shape(batch_shape)
        return (self.fwd.initial_carry(batch_shape, dtype),
                self.bwd.initial_carry(batch_shape, dtype))

    def unroll_time_major(self, params, xs, carry, *, lengths, reverse, unroll, remat,
                          key=None, resets=None):
        k_f, k_b = (None, None) if key is None else jax.random.split(key)
        options = dict(lengths=lengths, unroll=unroll, remat=remat, resets=resets)
        c_f, y_f = run(self.fwd, params["fwd"], xs, carry[0], reverse=reverse, key=k_f,
                       **options)
        c_b, y_b = run(self.bwd, params["bwd"], xs, carry[1], reverse=not reverse, key=k_b,
                       **options)
        ys = y_f + y_b if self.merge == "sum" else jnp.concatenate([y_f, y_b], axis=-1)
        return (c_f, c_b), ys


@dataclasses.dataclass(frozen=True)
class Dense:
    """y = x W + b. Params: `W` [I, features] (Glorot), `b` [features] (zeros)."""

    features: int

    def __post_init__(self):
        _checks.positive_int("features", self.features)

    def init(self, key, input_size, dtype=jnp.float32):
        input_size = _checks.positive_int("input_size", input_size)
        key = _checks.prng_key("key", key)
        return {"W": initializers.glorot_uniform(key, (input_size, self.features), dtype),
                "b": jnp.zeros((self.features,), dtype)}

    def input_size_of(self, params):
        return params["W"].shape[0]

    def __call__(self, params, x):
        _checks.model_params(self, params)
        x = _checks.float_array("x", x, min_rank=1, layout="[..., input_size]")
        _checks.feature_size("x", x, self.input_size_of(params))
        return x @ params["W"] + params["b"]


@dataclasses.dataclass(frozen=True)
class Embedding:
    """Token ids [...] -> vectors [..., features]. Params: `E` [vocab_size, features] ~ N(0, 1)."""

    vocab_size: int
    features: int

    def __post_init__(self):
        _checks.positive_int("vocab_size", self.vocab_size)
        _checks.positive_int("features", self.features)

    def init(self, key, dtype=jnp.float32):
        key = _checks.prng_key("key", key)
        return {"E": jax.random.normal(key, (self.vocab_size, self.features), dtype)}

    def __call__(self, params, ids):
        _checks.model_params(self, params)
        ids = jnp.asarray(ids) if not hasattr(ids, "dtype") else ids
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise _checks.InputTypeError(f"ids must be an integer array, got dtype "
                                         f"{ids.dtype} with shape {tuple(ids.shape)}")
        _checks.values_in_range(ids, 0, self.vocab_size - 1,
                                f"ids must lie in [0, {self.vocab_size - 1}] (vocab_size = "
                                f"{self.vocab_size}), got values in ")
        return jnp.take(params["E"], ids, axis=0)
