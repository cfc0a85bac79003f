"""Next-frame predictors of videos: a recurrent model reads frames and gives, at every
step, the logits of the next frame's pixels (many to many over video).

Trained with teacher forcing (`teacher_forced`: the true frames in, the next frame's
logits out), used with a rollout (`rollout`: the first `observed` frames in, then its
own predictions, as probabilities, fed back in for `horizon` frames). Two models:

- `FramePredictor.conv(...)`: a ConvLSTM (or ConvGRU, or a `Stacked` of them) reads
  the frames themselves, [B, T, H, W, C]; a 1 x 1 convolution of its hidden map
  (an `rj.Dense` on the channels axis) gives each pixel's logit. It keeps the frame's
  geometry all the way (Shi et al., 2015, whose encoder and forecaster are separate
  stacks; here one stack first conditions on the observed frames and then forecasts).
- `FramePredictor.latent(...)`: a CNN (`rnnjax.vision.ImageEncoder`) codes each frame
  as a vector, a vector cell (an LSTM) reads the codes, and a Dense layer decodes its
  state into the logits of all H*W*C pixels at once: the frame is squeezed through a
  vector, as in the unsupervised LSTM video models of Srivastava et al. (2015).

`copy_last` is the baseline without parameters: every future frame is the last
observed one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, vision
from rnnjax.cells import make, make_conv
from rnnjax.layers import Dense, Stacked
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part


@dataclasses.dataclass(frozen=True)
class FramePredictor:
    """Frames [B, T, H, W, C] -> logits of the next frames [B, T, H, W, C].

    Params: `encoder` (the CNN's params; an empty dict for the conv model), `cell`,
    `head`.

    Arguments:
      cell: the recurrent model (a conv cell, or a vector cell for `encoder`'s codes).
      head: the Dense layer from the cell's output to the logits: on the channels of
        the hidden map (conv model: C outputs per pixel) or on the state vector
        (latent model: H*W*C outputs).
      frame_shape: one frame's (H, W, C).
      encoder: None (the cell reads the frames) or a `vision.ImageEncoder`.

    >>> import jax, jax.numpy as jnp
    >>> model = FramePredictor.conv("convlstm", 4, (8, 8, 1))
    >>> params = model.init(jax.random.key(0))
    >>> videos = jnp.zeros((2, 6, 8, 8, 1))
    >>> model.teacher_forced(params, videos).shape, model.rollout(params, videos, 3, 4).shape
    ((2, 5, 8, 8, 1), (2, 4, 8, 8, 1))
    """

    cell: Any
    head: Dense
    frame_shape: tuple[int, int, int]
    encoder: vision.ImageEncoder | None = None

    @classmethod
    def conv(cls, name: str, hidden_channels: int, frame_shape, layers: int = 1,
             **cell_options) -> FramePredictor:
        """The convolutional model: `layers` conv cells `name` ("convlstm", "convgru") of
        `hidden_channels` each, stacked when more than one, on frames of `frame_shape`."""
        frame_shape = _frame_shape(frame_shape)
        cells = [make_conv(name, hidden_channels, frame_shape[:2], **cell_options)
                 for _ in range(_checks.positive_int("layers", layers))]
        cell = cells[0] if layers == 1 else Stacked(tuple(cells))
        return cls(cell, Dense(frame_shape[2]), frame_shape)

    @classmethod
    def latent(cls, name: str, hidden: int, frame_shape, features: int = 64,
               channels: tuple[int, ...] = (8, 16), **cell_options) -> FramePredictor:
        """The CNN-encoder model: an `ImageEncoder(features, channels)` per frame, the
        vector cell `name` of `hidden` units, a Dense decoder to all pixels."""
        frame_shape = _frame_shape(frame_shape)
        return cls(make(name, hidden, **cell_options), Dense(math.prod(frame_shape)),
                   frame_shape, vision.ImageEncoder(features, tuple(channels)))

    def init(self, key):
        """Params from one key split among `encoder`, `cell` and `head`, in order."""
        encoder = self.encoder
        size = self.frame_shape[2] if encoder is None else encoder.features
        return combine(
            part("encoder", lambda k: {} if encoder is None else encoder.init(k, self.frame_shape)),
            part("cell", lambda k: self.cell.init(k, size)),
            part("head", lambda k: self.head.init(k, self.cell.output_size)))(key)

    def _inputs(self, params, frames):
        """What the cell reads of frames [B, T, H, W, C]: the frames, or their codes."""
        if self.encoder is None:
            return frames
        return self.encoder.frames(params["encoder"], frames)

    def _logits(self, params, ys):
        """The head on the cell's outputs [..., *out] -> logits [..., H, W, C]."""
        logits = self.head(params["head"], ys)
        return logits if self.encoder is None else logits.reshape(*ys.shape[:-1],
                                                                  *self.frame_shape)

    def _check(self, videos):
        videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
        if tuple(videos.shape[2:]) != self.frame_shape:
            raise ValueError(f"videos must have frames of shape (H, W, C) = "
                             f"{self.frame_shape} [B, T, H, W, C], got shape "
                             f"{tuple(videos.shape)}")
        return videos

    def teacher_forced(self, params, videos):
        """Logits [B, T-1, H, W, C] of frames 1 .. T-1, each from the true frames
        before it: the training objective's predictions."""
        videos = self._check(videos)
        _, ys = unroll(self.cell, params["cell"], self._inputs(params, videos[:, :-1]))
        return self._logits(params, ys)

    def rollout(self, params, videos, observed: int, horizon: int):
        """Probabilities [B, horizon, H, W, C] of frames observed .. observed+horizon-1:
        the model reads the first `observed` frames of videos [B, T, H, W, C], then
        its own prediction of each frame (sigmoid of the logits) in place of it."""
        videos = self._check(videos)
        observed = _checks.positive_int("observed", observed)
        horizon = _checks.positive_int("horizon", horizon)
        if observed > videos.shape[1]:
            raise ValueError(f"observed must be at most the clips' {videos.shape[1]} frames "
                             f"(videos of shape {tuple(videos.shape)}), got {observed}")
        carry, ys = unroll(self.cell, params["cell"],
                           self._inputs(params, videos[:, :observed]))

        def step(state, _):
            carry, logits = state
            frame = jax.nn.sigmoid(logits)
            carry, y = self.cell(params["cell"], carry, self._inputs(params, frame[:, None])[:, 0])
            return (carry, self._logits(params, y)), frame

        _, frames = lax.scan(step, (carry, self._logits(params, ys[:, -1])), None,
                             length=horizon)
        return jnp.swapaxes(frames, 0, 1)


def copy_last(videos, observed: int, horizon: int):
    """The baseline: frames [B, horizon, H, W, C] all equal to the last observed frame
    (frame observed - 1) of videos [B, T, H, W, C]."""
    videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
    observed = _checks.positive_int("observed", observed)
    horizon = _checks.positive_int("horizon", horizon)
    if observed > videos.shape[1]:
        raise ValueError(f"observed must be at most the clips' {videos.shape[1]} frames, "
                         f"got {observed}")
    last = videos[:, observed - 1:observed]
    return jnp.broadcast_to(last, (last.shape[0], horizon, *last.shape[2:]))


def _frame_shape(shape) -> tuple[int, int, int]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"frame_shape must be one frame's (H, W, C), three positive "
                         f"integers, got {shape!r}")
    return tuple(_checks.positive_int("frame_shape", d) for d in shape)

