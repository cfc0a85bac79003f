"""Convolutional recurrent cells: the ConvLSTM (Shi et al., 2015) and its GRU analogue.

Where the LSTM and the GRU multiply vectors by matrices, these convolve feature maps
with kernels: the input x_t [*batch, H, W, C_in] and the carry [*batch, H, W, C] are
maps of one fixed spatial size, and every gate is a "SAME" convolution of the input
plus one of the previous hidden map, so a unit sees its neighbourhood of
`kernel_size` x `kernel_size` positions in both, and motion is learned locally and
shared across the frame.

The spatial size is part of the config (`spatial_shape`), because the carry's shape
must be known before any input is seen (`initial_carry(batch_shape)`); the
`input_size` of `init(key, input_size)` is the number of input channels C_in, and the
`output_size` is `hidden_channels`, so a `Stacked` passes channels from layer to
layer as it passes sizes between vector cells. `input_shape_of(params)` and
`output_shape` give the whole per-step shapes, (H, W, C_in) and (H, W, C), which
`rj.unroll`, the step and `rj.check_cell` check inputs and outputs against.

Params are plain dicts named as the vector cells name theirs, gate blocks side by side
along the output channels in the same order: `W_x` [k, k, C_in, G*C], `W_h`
[k, k, C, G*C], `b` [G*C]. With a 1 x 1 kernel a cell is the matching vector cell
applied at every position: `W_x[0, 0]` is the LSTM's `W_x`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.cells.base import Cell, split_gates
from rnnjax.cells.lstm import LSTMCarry, _update


def conv2d(x, kernel):
    """The "SAME" 2D convolution (a cross-correlation, as in `flax.linen.Conv` and
    `lax.conv_general_dilated`) of maps x [..., H, W, C_in] with kernel
    [k_h, k_w, C_in, C_out] -> [..., H, W, C_out]: zero padding, stride 1, any number
    of leading axes.

    Computed as one matmul of the k_h * k_w shifted copies of x side by side along
    channels (im2col) with the kernel flattened: the same values as
    `lax.conv_general_dilated`, and on a CPU its gradient inside a scan runs some 30
    times faster (the convolution's backward is slow on XLA:CPU at these sizes).
    """
    k_h, k_w, c_in, c_out = kernel.shape
    height, width = x.shape[-3], x.shape[-2]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(k_h // 2, k_h // 2),
                                                    (k_w // 2, k_w // 2), (0, 0)])
    patches = jnp.concatenate([padded[..., a:a + height, b:b + width, :]
                               for a in range(k_h) for b in range(k_w)], axis=-1)
    return patches @ kernel.reshape(k_h * k_w * c_in, c_out)


class _ConvCell(Cell):
    """What the convolutional cells share: config checks, params, the map carry."""

    hidden_channels: int
    spatial_shape: tuple[int, int]
    kernel_size: int = 3
    gates: ClassVar[int] = 1

    def __post_init__(self):
        _checks.positive_int("hidden_channels", self.hidden_channels)
        shape = self.spatial_shape
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
            raise ValueError(f"spatial_shape must be the map's (height, width), two positive "
                             f"integers, got {shape!r}")
        shape = tuple(_checks.positive_int("spatial_shape", d) for d in shape)
        object.__setattr__(self, "spatial_shape", shape)
        k = _checks.positive_int("kernel_size", self.kernel_size)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (\"SAME\" padding centres the kernel), "
                             f"got {k}")

    @property
    def hidden_size(self) -> int:
        """The channels of the hidden map (what `Stacked` and the studies read)."""
        return self.hidden_channels

    @property
    def output_size(self) -> int:
        return self.hidden_channels

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (*self.spatial_shape, self.hidden_channels)

    def init(self, key, input_size: int, dtype=jnp.float32):
        """`W_x` [k, k, C_in, G*C] and `W_h` [k, k, C, G*C] Glorot-uniform with the fans
        of one gate (k*k*C_in + k*k*C, the receptive field times the channels), `b`
        [G*C] zeros. `input_size` is C_in, the channels of the input maps."""
        c_in = _checks.positive_int("input_size", input_size)
        k_x, k_h = jax.random.split(_checks.prng_key("key", key))
        k, c, g = self.kernel_size, self.hidden_channels, self.gates
        limit = math.sqrt(6.0 / (k * k * (c_in + c)))
        uniform = lambda key, shape: jax.random.uniform(key, shape, dtype, -limit, limit)
        return {"W_x": uniform(k_x, (k, k, c_in, g * c)),
                "W_h": uniform(k_h, (k, k, c, g * c)),
                "b": jnp.zeros((g * c,), dtype)}

    def input_size_of(self, params) -> int:
        return params["W_x"].shape[2]

    def input_shape_of(self, params) -> tuple[int, ...]:
        return (*self.spatial_shape, self.input_size_of(params))

    def _zeros(self, batch_shape, dtype):
        shape = (*_checks.batch_shape(batch_shape), *self.spatial_shape, self.hidden_channels)
        return jnp.zeros(shape, dtype)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero maps [*batch, H, W, C]."""
        return self._zeros(batch_shape, dtype)

    def project_inputs(self, params, x):
        """conv(x, W_x) + b for maps x [..., H, W, C_in] -> [..., H, W, G*C]: one
        convolution over all leading axes (all time steps at once in the scan)."""
        return conv2d(x, params["W_x"]) + params["b"]


@dataclasses.dataclass(frozen=True)
class ConvLSTM(_ConvCell):
    """The convolutional LSTM (Shi et al., 2015), without its peephole terms (as
    Keras' ConvLSTM2D): the LSTM's gates as convolutions (* below).

        [i, f, g, o] = W_x * x_t + W_h * h_{t-1} + b
        c_t = sigmoid(f) . c_{t-1} + sigmoid(i) . tanh(g)
        h_t = sigmoid(o) . tanh(c_t)

    Arguments:
      hidden_channels: C, the channels of the hidden and cell maps.
      spatial_shape: (H, W) of the input and hidden maps.
      kernel_size: k, odd: every convolution is k x k with "SAME" padding.
      forget_bias: the start of the forget block of `b` (the others start at zero).

    Params: `W_x` [k, k, C_in, 4C], `W_h` [k, k, C, 4C], `b` [4C], gate blocks along
    the last axis in the order i, f, g, o (`rj.LSTM`'s). The carry is
    `LSTMCarry(h, c)`, each [*batch, H, W, C]; the output is h. Inputs are maps
    [*batch, H, W, C_in] (sequences [B, T, H, W, C_in] for `rj.unroll`).

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> cell = rj.ConvLSTM(hidden_channels=4, spatial_shape=(8, 8), kernel_size=3)
    >>> params = cell.init(jax.random.key(0), input_size=1)
    >>> params["W_x"].shape, params["W_h"].shape
    ((3, 3, 1, 16), (3, 3, 4, 16))
    >>> carry, ys = rj.unroll(cell, params, jnp.ones((2, 5, 8, 8, 1)))
    >>> ys.shape, carry.c.shape
    ((2, 5, 8, 8, 4), (2, 8, 8, 4))
    """

    hidden_channels: int
    spatial_shape: tuple[int, int]
    kernel_size: int = 3
    forget_bias: float = 1.0
    gates: ClassVar[int] = 4

    def init(self, key, input_size, dtype=jnp.float32):
        params = super().init(key, input_size, dtype)
        c = self.hidden_channels
        params["b"] = params["b"].at[c:2 * c].set(self.forget_bias)
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """`LSTMCarry(h, c)` of zero maps [*batch, H, W, C]."""
        z = self._zeros(batch_shape, dtype)
        return LSTMCarry(z, z)

    def hidden(self, carry):
        return carry.h

    def replace_hidden(self, carry, h):
        return carry._replace(h=h)

    def step(self, params, carry, xp):
        h, c, _ = _update(xp + conv2d(carry.h, params["W_h"]), carry.c)
        return LSTMCarry(h, c), h


@dataclasses.dataclass(frozen=True)
class ConvGRU(_ConvCell):
    """The GRU with convolutions for its matmuls (Ballas et al., 2016, use this form),
    in the form of `rj.GRU`'s default (reset before the recurrent convolution):

        r = sigmoid(W_xr * x_t + W_hr * h_{t-1} + b_r)
        z = sigmoid(W_xz * x_t + W_hz * h_{t-1} + b_z)
        n = tanh(W_xn * x_t + W_hn * (r . h_{t-1}) + b_n)
        h_t = (1 - z) . n + z . h_{t-1}

    Arguments: `hidden_channels`, `spatial_shape`, `kernel_size` as in `ConvLSTM`.

    Params: `W_x` [k, k, C_in, 3C], `W_h` [k, k, C, 3C], `b` [3C] (zeros at init),
    gate blocks in the order r, z, n (`rj.GRU`'s). The carry and the output are
    h [*batch, H, W, C].
    """

    hidden_channels: int
    spatial_shape: tuple[int, int]
    kernel_size: int = 3
    gates: ClassVar[int] = 3

    def step(self, params, carry, xp):
        h, c = carry, self.hidden_channels
        a_r, a_z, a_n = split_gates(xp, 3)
        w_h = params["W_h"]
        u_r, u_z = split_gates(conv2d(h, w_h[..., :2 * c]), 2)
        r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
        n = jnp.tanh(a_n + conv2d(r * h, w_h[..., 2 * c:]))
        h = (1.0 - z) * n + z * h
        return h, h


#: the convolutional cell types by name (apart from `CELL_TYPES`: they need the
#: spatial shape of their maps, and the vector studies' `--cells` cannot give one)
CONV_CELL_TYPES = {"convlstm": ConvLSTM, "convgru": ConvGRU}


def make_conv(name: str, hidden_channels: int, spatial_shape, **options) -> _ConvCell:
    """The convolutional cell called `name` (a key of `CONV_CELL_TYPES`), e.g.
    `make_conv("convlstm", 16, (16, 16), kernel_size=5)`."""
    if name not in CONV_CELL_TYPES:
        raise ValueError(f"convolutional cell name must be one of {sorted(CONV_CELL_TYPES)}, "
                         f"got {name!r}")
    return CONV_CELL_TYPES[name](hidden_channels, spatial_shape, **options)
