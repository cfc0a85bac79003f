"""Small convolutional encoders for images and videos, to feed recurrent models.

`ImageEncoder` maps images [B, H, W, C] to vectors [B, features]; `VideoEncoder`
maps videos [B, T, H, W, C] to vectors [B, features] with spatio-temporal (3D)
convolutions. Both are a few blocks of convolution ("SAME" padding), ReLU and max
pooling (non-overlapping windows), then the feature map flattened and a Dense
projection, built from Flax's convolution (`flax.linen.Conv`). The flattening keeps
where things are (a caption's "above" or "left of" needs it), which global pooling
would lose.

They follow the toolkit's pure-function style: a frozen dataclass holds the config,
`init(key, shape)` returns the params (a plain pytree of arrays: `conv_0` ...
`conv_{L-1}` with `kernel` [k_h, k_w, C_in, C_out] and `bias`, and `project` with
`kernel` [n, features] and `bias`; a video's kernels are explained in `VideoEncoder`)
for inputs of one example's `shape`, and `apply(params, x)` (or calling the encoder)
is a pure, jit-able function.

>>> import jax, jax.numpy as jnp
>>> encoder = ImageEncoder(features=10, channels=(4, 8))
>>> params = encoder.init(jax.random.key(0), (16, 16, 3))
>>> encoder.apply(params, jnp.ones((2, 16, 16, 3))).shape
(2, 10)
>>> encoder.frames(params, jnp.ones((2, 5, 16, 16, 3))).shape   # each frame alone
(2, 5, 10)
>>> video = VideoEncoder(features=4, channels=(4,))
>>> shapes = jax.eval_shape(lambda: video.init(jax.random.key(1), (6, 8, 8, 1)))
>>> shapes["project"]["kernel"].shape     # 6 steps x 4 x 4 pooled pixels x 4 channels
(384, 4)
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnjax import _checks


def max_pool(x, window: tuple[int, ...]):
    """Max over non-overlapping windows of the axes between batch and channels of
    x [B, *grid, C] ("VALID": a trailing part shorter than the window is dropped).

    The same values as `flax.linen.max_pool(x, window, strides=window)`; computed as a
    reshape and a max, whose gradient XLA runs several times faster on a CPU than the
    gradient of a reduce-window.
    """
    grid = x.shape[1:-1]
    kept = tuple(n // w for n, w in zip(grid, window))
    x = x[(slice(None), *(slice(0, k * w) for k, w in zip(kept, window)))]
    split = [x.shape[0]]
    for k, w in zip(kept, window):
        split += [k, w]
    x = x.reshape(*split, x.shape[-1])
    return jnp.max(x, axis=tuple(range(2, 2 * len(window) + 1, 2)))


def time_windows(x, length: int):
    """x [B, T, H, W, C] -> [B, T, H, W, length * C]: at step t, the frames t - (length
    - 1) // 2 ... t + length // 2 side by side along channels (zeros past either end,
    as "SAME" padding), frame t + d - (length - 1) // 2 in channels d * C ... (d + 1) * C - 1."""
    before = (length - 1) // 2
    padded = jnp.pad(x, ((0, 0), (before, length - 1 - before)) + ((0, 0),) * 3)
    steps = x.shape[1]
    return jnp.concatenate([padded[:, d:d + steps] for d in range(length)], axis=-1)


class _ConvNet(nn.Module):
    """conv -> relu -> max pool per entry of `channels`, then flatten and Dense. A
    3-entry kernel (time, height, width) convolves videos [B, T, H, W, C] as a 2D
    convolution of each step's time window (see `VideoEncoder`)."""

    channels: tuple[int, ...]
    kernel_size: tuple[int, ...]
    window: tuple[int, ...]
    features: int
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.channels):
            conv = nn.Conv(width, self.kernel_size[-2:], padding="SAME",
                           param_dtype=self.param_dtype, name=f"conv_{i}")
            if len(self.kernel_size) == 3:
                batch, steps, *grid, _ = x.shape
                windows = time_windows(x, self.kernel_size[0])
                x = conv(windows.reshape(batch * steps, *grid, windows.shape[-1]))
                x = x.reshape(batch, steps, *grid, width)
            else:
                x = conv(x)
            x = max_pool(nn.relu(x), self.window)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.features, param_dtype=self.param_dtype, name="project")(x)


def _tuple_of_positive(name: str, value, length: int | None = None) -> tuple[int, ...]:
    """`value` (an int or a sequence of them) as a tuple of positive ints of `length`."""
    values = (value,) * (length or 1) if isinstance(value, int) else tuple(value)
    if not values or (length is not None and len(values) != length):
        expected = f"{length} positive integers" if length else "positive integers"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    for v in values:
        _checks.positive_int(name, v)
    return tuple(int(v) for v in values)


class _Encoder:
    """What both encoders share; a subclass sets `spatial_axes` and `layout`."""

    features: int
    channels: tuple[int, ...]
    spatial_axes: int = 2
    layout: str = ""

    def _kernel(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _window(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        return self.features

    def _net(self, dtype=jnp.float32) -> _ConvNet:
        return _ConvNet(self.channels, self._kernel(), self._window(), self.features, dtype)

    def pooled_shape(self, shape) -> tuple[int, ...]:
        """The grid after the last pooling, for one example's spatial `shape` (every
        pooling keeps floor(size / window) positions along an axis)."""
        sizes = tuple(shape)
        for _ in self.channels:
            sizes = tuple(s // w for s, w in zip(sizes, self._window()))
        return sizes

    def _check_shape(self, shape) -> tuple[int, ...]:
        rank = self.spatial_axes + 1
        if (isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__")
                or len(shape) != rank):
            raise ValueError(f"shape must be one example's shape [{self.layout[4:]} "
                             f"({rank} positive integers, no batch axis), got {shape!r}")
        shape = _tuple_of_positive("shape", shape)
        pooled = self.pooled_shape(shape[:-1])
        if min(pooled) < 1:
            raise ValueError(f"shape {shape} is too small for {len(self.channels)} poolings "
                             f"of window {self._window()}: the grid would shrink to {pooled}")
        return shape

    def init(self, key, shape, dtype=jnp.float32):
        """Params for inputs whose examples have `shape` (no batch axis): kernels
        He-uniform (bound sqrt(6 / fan_in): ReLU follows them), the projection
        Glorot-uniform (bound sqrt(6 / (fan_in + fan_out)), as `rnnjax.Dense`), biases
        zero. All kernels come from one uniform draw cut into pieces: JAX compiles a
        sampler per shape drawn, which takes seconds on a CPU."""
        shape = self._check_shape(shape)
        net = self._net(dtype)
        layout = jax.eval_shape(lambda: net.init(jax.random.key(0),
                                                 jnp.zeros((1, *shape), dtype)))["params"]
        names = [f"conv_{i}" for i in range(len(self.channels))] + ["project"]
        sizes = [math.prod(layout[n]["kernel"].shape) for n in names]
        draws = jax.random.uniform(key, (sum(sizes),), dtype, -1.0, 1.0)
        params, start = {}, 0
        for name, size in zip(names, sizes):
            kernel_shape = layout[name]["kernel"].shape
            fan_in = math.prod(kernel_shape[:-1])
            fans = fan_in + kernel_shape[-1] if name == "project" else fan_in
            kernel = draws[start:start + size].reshape(kernel_shape) * math.sqrt(6.0 / fans)
            params[name] = {"kernel": kernel, "bias": jnp.zeros(kernel_shape[-1:], dtype)}
            start += size
        return params

    def _check_input(self, params, x):
        x = _checks.float_array("x", x, rank=self.spatial_axes + 2, layout=self.layout)
        channels = params["conv_0"]["kernel"].shape[-2] // math.prod(self._kernel()[:-2])
        _checks.feature_size("x", x, channels)
        pooled = self.pooled_shape(x.shape[1:-1])
        flat = math.prod(pooled) * self.channels[-1]
        expected = params["project"]["kernel"].shape[0]
        if flat != expected:
            raise ValueError(f"x of shape {tuple(x.shape)} ({self.layout}) leaves {flat} "
                             f"features after the convolutions, but the params' projection "
                             f"takes {expected}: the params were made for another "
                             f"{'frame' if self.spatial_axes == 3 else 'image'} size")
        return x

    def apply(self, params, x):
        """x [B, *spatial, C] -> [B, features]."""
        x = self._check_input(params, x)
        return self._net().apply({"params": params}, x)

    def __call__(self, params, x):
        return self.apply(params, x)


@dataclasses.dataclass(frozen=True)
class ImageEncoder(_Encoder):
    """Images [B, H, W, C] -> [B, features]: per entry of `channels` a `kernel_size`
    convolution with that many output channels, ReLU and `pool` x `pool` max pooling;
    then a Dense projection of the flattened map.

    Params hold (k*k*C_in*C_out + C_out) per convolution and (n + 1) * features for
    the projection, n = (H // pool**L) * (W // pool**L) * channels[-1].
    """

    features: int
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    pool: int = 2
    spatial_axes = 2
    layout = "[B, H, W, C]"

    def __post_init__(self):
        _checks.positive_int("features", self.features)
        object.__setattr__(self, "channels", _tuple_of_positive("channels", self.channels))
        _checks.positive_int("kernel_size", self.kernel_size)
        _checks.positive_int("pool", self.pool)

    def _kernel(self):
        return (self.kernel_size,) * 2

    def _window(self):
        return (self.pool,) * 2

    def frames(self, params, videos):
        """Each frame of videos [B, T, H, W, C] encoded alone: [B, T, features] (the
        same params for every frame: `apply` vmapped over the time axis)."""
        videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
        return jax.vmap(lambda frame: self.apply(params, frame), in_axes=1,
                        out_axes=1)(videos)


@dataclasses.dataclass(frozen=True)
class VideoEncoder(_Encoder):
    """Videos [B, T, H, W, C] -> [B, features]: per entry of `channels` a 3D convolution
    of `kernel_size` (time, height, width; "SAME" padding in all three), ReLU and max
    pooling over `pool` (time, height, width) windows; then a Dense projection of the
    flattened map.

    Each 3D convolution is computed as a 2D `flax.linen.Conv` over (height, width) of
    every step's time window of k_t frames stacked along channels (`time_windows`):
    the same function, several times faster on a CPU, where XLA's 3D convolution is
    slow. Its kernel is therefore [k_h, k_w, k_t * C_in, C_out] (`kernel_3d` gives the
    [k_t, k_h, k_w, C_in, C_out] kernel of `flax.linen.Conv` with 3D kernel_size).

    The default pool (1, 2, 2) keeps every time step and halves the image; (2, 2, 2)
    halves time too. Params hold (k_t*k_h*k_w*C_in*C_out + C_out) per convolution and
    (n + 1) * features for the projection, n the pooled grid's size times
    channels[-1].
    """

    features: int
    channels: tuple[int, ...] = (8, 16)
    kernel_size: tuple[int, int, int] = (3, 3, 3)
    pool: tuple[int, int, int] = (1, 2, 2)
    spatial_axes = 3
    layout = "[B, T, H, W, C]"

    def __post_init__(self):
        _checks.positive_int("features", self.features)
        object.__setattr__(self, "channels", _tuple_of_positive("channels", self.channels))
        object.__setattr__(self, "kernel_size",
                           _tuple_of_positive("kernel_size", self.kernel_size, 3))
        object.__setattr__(self, "pool", _tuple_of_positive("pool", self.pool, 3))

    def _kernel(self):
        return self.kernel_size

    def _window(self):
        return self.pool

    def kernel_3d(self, kernel):
        """A convolution's kernel [k_h, k_w, k_t * C_in, C_out] as the 3D kernel
        [k_t, k_h, k_w, C_in, C_out] that computes the same."""
        k_t, k_h, k_w = self.kernel_size
        c_in = kernel.shape[2] // k_t
        return jnp.transpose(kernel.reshape(k_h, k_w, k_t, c_in, -1), (2, 0, 1, 3, 4))


# -- motion between frames ------------------------------------------------------------------
def frame_differences(videos, lengths=None):
    """videos [B, T, H, W, C] -> [B, H, W, (T - 1) C]: frame t + 1 minus frame t for
    every t, stacked along channels (pair t in channels t C ... (t + 1) C - 1), the cheap
    stand-in for optical flow of a two-stream network's temporal stream. With lengths
    [B], the pairs that reach past a clip's length are zero."""
    videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
    diffs = videos[:, 1:] - videos[:, :-1]                      # [B, T - 1, H, W, C]
    return _stack_pairs(_masked_pairs(diffs, lengths))


def horn_schunck(previous, following, *, smoothness: float = 1.0, iterations: int = 50):
    """Dense optical flow from `previous` to `following` (Horn and Schunck 1981), on grey
    images [..., H, W] that wrap around at their edges (as the generated clips do).

    Brightness constancy I_y v + I_x u + I_t = 0 with a smoothness penalty weighted by
    `smoothness`^2, solved by `iterations` Jacobi sweeps from zero flow; derivatives are
    central differences averaged over the two images. Returns the flow [..., H, W, 2] in
    pixels per frame: (rows, columns), down and right positive. Pure and jit-able.
    """
    previous = jnp.asarray(previous)
    following = jnp.asarray(following)
    if previous.shape != following.shape or previous.ndim < 2:
        raise ValueError(f"previous and following must be images [..., H, W] of one shape, "
                         f"got shapes {tuple(previous.shape)} and {tuple(following.shape)}")
    if not smoothness > 0:
        raise ValueError(f"smoothness must be positive, got {smoothness}")
    iterations = _checks.positive_int("iterations", iterations)
    mean = 0.5 * (previous + following)
    d_row = 0.5 * (jnp.roll(mean, -1, axis=-2) - jnp.roll(mean, 1, axis=-2))
    d_col = 0.5 * (jnp.roll(mean, -1, axis=-1) - jnp.roll(mean, 1, axis=-1))
    d_time = following - previous
    denominator = smoothness**2 + d_row**2 + d_col**2

    def neighbours(f):          # the mean of the 4 neighbours, wrapping around
        return 0.25 * (jnp.roll(f, 1, -2) + jnp.roll(f, -1, -2) + jnp.roll(f, 1, -1)
                       + jnp.roll(f, -1, -1))

    def sweep(_, flow):
        rows, cols = neighbours(flow[0]), neighbours(flow[1])
        residual = (d_row * rows + d_col * cols + d_time) / denominator
        return jnp.stack([rows - d_row * residual, cols - d_col * residual])

    flow = jax.lax.fori_loop(0, iterations, sweep, jnp.zeros((2, *mean.shape), mean.dtype))
    return jnp.moveaxis(flow, 0, -1)


def flow_stack(videos, lengths=None, *, smoothness: float = 1.0, iterations: int = 50):
    """videos [B, T, H, W, C] -> [B, H, W, 2 (T - 1)]: the Horn-Schunck flow
    (`horn_schunck`, on the frames' mean over channels) from each frame to the next,
    stacked along channels as a two-stream network's temporal stream reads it; with
    lengths [B], the pairs that reach past a clip's length are zero."""
    videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
    grey = videos.mean(-1)
    flows = horn_schunck(grey[:, :-1], grey[:, 1:], smoothness=smoothness,
                         iterations=iterations)                   # [B, T - 1, H, W, 2]
    return _stack_pairs(_masked_pairs(flows, lengths))


def _masked_pairs(pairs, lengths):
    """pairs [B, T - 1, ...] with pair t zeroed where t + 1 >= lengths[b]."""
    if lengths is None:
        return pairs
    lengths = _checks.seq_lengths(lengths, pairs.shape[0], pairs.shape[1] + 1)
    keep = jnp.arange(pairs.shape[1])[None, :] + 1 < lengths[:, None]
    return pairs * keep.reshape(keep.shape + (1,) * (pairs.ndim - 2)).astype(pairs.dtype)


def _stack_pairs(pairs):
    """[B, P, H, W, C] -> [B, H, W, P C], pair p in channels p C ... (p + 1) C - 1."""
    batch, count, height, width, channels = pairs.shape
    return jnp.moveaxis(pairs, 1, 3).reshape(batch, height, width, count * channels)
