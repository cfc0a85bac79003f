"""Classifying a clip from its spectrogram: a CNN over the spectrogram as an image,
whose last convolutional layer is read column by column over time by a recurrent
cell, or averaged over time, or the cell reading the raw frames.

Spectrograms come as xs [B, T, F] (frames over time, F frequency bins or mel bands;
`rnnjax.audio.clips_to_sequences` makes them) with each clip's frame count in
lengths [B]. The CNN sees each spectrogram as a one-channel image [B, T, F, 1]
(time by frequency): blocks of a `kernel_size` x `kernel_size` convolution ("SAME"
padding), ReLU and max pooling over `pool` = (time, frequency) windows. Its last map
[B, T', F', C] is read as T' columns of F' * C features; a clip's T' = length //
pool_t ** blocks (pooling drops a trailing part shorter than a window). The input and
every map are set to zero past each clip's (pooled) length, so that a convolution
near a clip's end sees zeros there, as its own "SAME" padding: a clip's scores do not
depend on the padding that follows it, neither its length nor its values.

Three kinds (`KINDS`):
- "cnn_rnn": the columns, in order, into a cell read at each clip's pooled length;
  its final state through a Dense layer to the classes;
- "cnn_average": each column through a Dense layer of `hidden` units and ReLU, the
  mean over the clip's columns, a Dense layer to the classes (order-blind beyond the
  CNN's receptive field);
- "rnn": the raw frames [B, T, F] into the cell, read at each clip's length, then the
  Dense layer (no CNN).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.cells import make
from rnnjax.layers import Dense
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part
from rnnjax.seq2seq import final_state
from rnnjax.vision import max_pool

KINDS = ("cnn_rnn", "cnn_average", "rnn")


def _zero_past(x, lengths):
    """x [B, T, ...] with every step t >= lengths[b] set to zero."""
    valid = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
    return jnp.where(valid.reshape(*valid.shape, *(1,) * (x.ndim - 2)), x, 0.0)


class _ConvMaps(nn.Module):
    """conv -> ReLU -> max pool per entry of `channels` on x [B, T, F, C], each map
    zeroed past each clip's (pooled) length; the last map."""

    channels: tuple[int, ...]
    kernel_size: int
    pool: tuple[int, int]

    @nn.compact
    def __call__(self, x, lengths):
        x = _zero_past(x, lengths)
        for i, width in enumerate(self.channels):
            x = nn.Conv(width, (self.kernel_size,) * 2, padding="SAME", name=f"conv_{i}")(x)
            x = max_pool(nn.relu(x), self.pool)
            lengths = lengths // self.pool[0]
            x = _zero_past(x, lengths)
        return x


@dataclasses.dataclass(frozen=True)
class SpectrogramClassifier:
    """One of `KINDS` (see the module) on spectrograms xs [B, T, F]:
    `logits(params, xs, lengths) -> [B, classes]`.

    Params: `cnn` (`conv_0` ... with `kernel` [k, k, C_in, C_out] and `bias`; not for
    "rnn"), `cell` ("cnn_rnn", "rnn"), `frame` (the per-column Dense of "cnn_average"),
    `head`.

    Arguments:
        kind: one of KINDS.
        bins: F, the frequency bins (or mel bands) of a frame.
        classes: the number of classes.
        cell: the recurrent cell ("cnn_rnn", "rnn"), or None.
        channels: output channels of each convolution block.
        kernel_size: the convolutions' height and width.
        pool: max-pooling window (time, frequency) after each convolution.
        hidden: units of the per-column Dense layer of "cnn_average".
    """

    kind: str
    bins: int
    classes: int
    cell: Any = None
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    pool: tuple[int, int] = (2, 2)
    hidden: int = 64

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.cell is None) != (self.kind == "cnn_average"):
            wants = "takes no" if self.cell is not None else "needs a"
            raise ValueError(f"kind {self.kind!r} {wants} cell, got cell={self.cell!r}")
        for name in ("bins", "classes", "kernel_size", "hidden"):
            _checks.positive_int(name, getattr(self, name))
        channels, pool = tuple(self.channels), tuple(self.pool)
        if not channels or len(pool) != 2:
            raise ValueError(f"channels must be one or more positive integers and pool two, "
                             f"got channels {self.channels!r}, pool {self.pool!r}")
        for v in (*channels, *pool):
            _checks.positive_int("channels and pool", v)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "pool", pool)
        if self.kind != "rnn" and self.pooled_bins < 1:
            raise ValueError(f"bins = {self.bins} is too few for {len(channels)} poolings of "
                             f"{pool[1]} along frequency")

    @property
    def pooled_bins(self) -> int:
        """F': the frequency positions of the last convolutional map."""
        return self.bins // self.pool[1] ** len(self.channels)

    @property
    def column_size(self) -> int:
        """F' * C: the features of one column of the last map (what the cell reads)."""
        return self.pooled_bins * self.channels[-1]

    def pooled_lengths(self, lengths):
        """Each clip's column count: lengths // pool_t ** blocks."""
        return lengths // self.pool[0] ** len(self.channels)

    def _net(self) -> _ConvMaps:
        return _ConvMaps(self.channels, self.kernel_size, self.pool)

    def _init_cnn(self, key):
        """He-uniform kernels (bound sqrt(6 / fan_in)), zero biases, from one uniform
        draw cut into pieces (one sampler to compile, whatever the layer shapes)."""
        layout = jax.eval_shape(lambda: self._net().init(
            jax.random.key(0), jnp.zeros((1, 4 * self.pool[0] ** len(self.channels),
                                          self.bins, 1)), jnp.ones((1,), jnp.int32)))["params"]
        shapes = [layout[f"conv_{i}"]["kernel"].shape for i in range(len(self.channels))]
        draws = jax.random.uniform(key, (sum(math.prod(s) for s in shapes),), minval=-1.0,
                                   maxval=1.0)
        params, start = {}, 0
        for i, shape in enumerate(shapes):
            size = math.prod(shape)
            bound = math.sqrt(6.0 / math.prod(shape[:-1]))
            kernel = draws[start:start + size].reshape(shape) * bound
            params[f"conv_{i}"] = {"kernel": kernel, "bias": jnp.zeros(shape[-1:])}
            start += size
        return params

    def init(self, key):
        """Params of the parts, from one key split among cnn, cell, frame, head (in
        that order; a part the kind lacks keeps its key)."""
        reads = self.bins if self.kind == "rnn" else self.column_size
        encoded = self.hidden if self.kind == "cnn_average" else getattr(
            self.cell, "output_size", None)
        return combine(
            part("cnn", None if self.kind == "rnn" else self._init_cnn),
            part("cell", None if self.cell is None else lambda k: self.cell.init(k, reads)),
            part("frame", None if self.kind != "cnn_average"
                 else lambda k: Dense(self.hidden).init(k, self.column_size)),
            part("head", lambda k: Dense(self.classes).init(k, encoded)))(key)

    def columns(self, params, xs, lengths):
        """The last convolutional map of xs [B, T, F] (clips of lengths [B] frames) as
        columns [B, T', F' * C], zero past each clip's `pooled_lengths`."""
        maps = self._net().apply({"params": params["cnn"]}, xs[..., None], lengths)
        return maps.reshape(*maps.shape[:2], -1)

    def logits(self, params, xs, lengths):
        """Class scores [B, classes] of spectrograms xs [B, T, F] whose clips have
        lengths int [B] frames."""
        xs = _checks.float_array("xs", xs, rank=3, layout="[B, T, F]")
        _checks.feature_size("xs", xs, self.bins)
        lengths = _checks.seq_lengths(lengths, xs.shape[0], xs.shape[1])
        if self.kind == "rnn":
            carry, _ = unroll(self.cell, params["cell"], xs, seq_lengths=lengths)
            return Dense(self.classes)(params["head"], final_state(self.cell, carry))
        cols, steps = self.columns(params, xs, lengths), self.pooled_lengths(lengths)
        if self.kind == "cnn_rnn":
            carry, _ = unroll(self.cell, params["cell"], cols, seq_lengths=steps)
            return Dense(self.classes)(params["head"], final_state(self.cell, carry))
        hidden = jax.nn.relu(Dense(self.hidden)(params["frame"], cols))   # [B, T', hidden]
        valid = jnp.arange(cols.shape[1])[None, :] < steps[:, None]
        mean = (jnp.sum(jnp.where(valid[..., None], hidden, 0.0), axis=1)
                / jnp.maximum(steps, 1)[:, None].astype(hidden.dtype))
        return Dense(self.classes)(params["head"], mean)


def spectrogram_classifier(kind: str, bins: int, classes: int, cell: str | None = None,
                           hidden: int = 64, **options) -> SpectrogramClassifier:
    """A `SpectrogramClassifier` of `kind` whose cell is the type `cell` (a name of
    `rnnjax.cells.make`) of `hidden` units ("cnn_average": `hidden` is its per-column
    layer, and `cell` is ignored); `options` are its other fields (channels, pool...)."""
    model_cell = None if kind == "cnn_average" else make(cell, hidden)
    return SpectrogramClassifier(kind, bins, classes, model_cell, hidden=hidden, **options)
