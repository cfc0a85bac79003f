"""Video classifiers: the ways to model a clip that the activity study compares.

- `lrcn`: a CNN encodes each frame alone (the same weights for every frame), a recurrent
  cell reads the frame codes in order, a Dense layer classifies its state at each clip's
  length (Donahue et al. 2015);
- `conv3d`: convolutions over time and space at once (`vision.VideoEncoder`), the map
  projected to the class scores;
- `frames`: frame by frame: a CNN scores each frame alone, and the clip's score is the
  mean of its frames' scores (`logits`) or the majority vote of their labels (`vote`);
- `two_stream` (Simonyan and Zisserman 2014): a spatial stream scores the frames as
  `frames` does, a temporal stream scores the motion between frames stacked along
  channels (frame differences, or Horn-Schunck optical flow); the streams are trained
  as two networks (the loss is the sum of theirs) and fused late: the clip's
  log-probabilities are the mean of the two streams'.

Videos are [B, T, H, W, C]; lengths [B] (or None: every clip T frames) leave the frames
past a clip's length out of every model but `conv3d`, which reads all T.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax import vision
from rnnjax.cells import Cell
from rnnjax.layers import Dense
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part
from rnnjax.train.losses import softmax_cross_entropy, step_mask

KINDS = ("lrcn", "conv3d", "frames", "two_stream")
MOTIONS = ("differences", "flow")


@dataclasses.dataclass(frozen=True)
class VideoClassifier:
    """One of the `KINDS` on videos of one clip's `video_shape` [T, H, W, C].

    Params: `cnn` (the frame CNN, the 3D CNN, or the spatial stream), then `cell` and
    `head` (lrcn) or `motion` (two_stream, the temporal stream's CNN). Build one with
    `video_classifier`."""

    kind: str
    cnn: Any                               # vision.ImageEncoder or vision.VideoEncoder
    video_shape: tuple[int, ...]
    cell: Cell | None = None               # lrcn
    head: Dense | None = None              # lrcn
    motion_cnn: Any = None                 # two_stream: vision.ImageEncoder
    motion: str = "differences"            # two_stream: what its temporal stream reads
    flow_iterations: int = 50

    def init(self, key):
        frame = self.video_shape[1:]
        cnn_shape = self.video_shape if self.kind == "conv3d" else tuple(frame)
        motion_shape = (*frame[:2], self.motion_channels)
        given = lambda component, init: None if component is None else init
        return combine(
            part("cnn", lambda k: self.cnn.init(k, cnn_shape)),
            part("cell", given(self.cell, lambda k: self.cell.init(k, self.cnn.features))),
            part("head", given(self.head, lambda k: self.head.init(k, self.cell.hidden_size))),
            part("motion", given(self.motion_cnn,
                                 lambda k: self.motion_cnn.init(k, motion_shape))),
        )(key)

    @property
    def motion_channels(self) -> int:
        """Channels of the temporal stream's input: one motion field per pair of frames."""
        steps, _, _, channels = self.video_shape
        return (steps - 1) * (2 if self.motion == "flow" else channels)

    def motion_input(self, videos, lengths=None):
        """The temporal stream's input [B, H, W, motion_channels]."""
        if self.motion == "flow":
            return vision.flow_stack(videos, lengths, iterations=self.flow_iterations)
        return vision.frame_differences(videos, lengths)

    def frame_logits(self, params, videos):
        """Each frame's class scores alone [B, T, classes] (frames, two_stream)."""
        return self.cnn.frames(params["cnn"], videos)

    def stream_logits(self, params, videos, lengths=None):
        """The two streams' scores (spatial, temporal), each [B, classes]."""
        spatial = _frame_mean(self.frame_logits(params, videos), lengths)
        return spatial, self.motion_cnn(params["motion"], self.motion_input(videos, lengths))

    def logits(self, params, videos, lengths=None):
        """The clip's class scores [B, classes] (two_stream: fused log-probabilities)."""
        if self.kind == "conv3d":
            return self.cnn(params["cnn"], videos)
        if self.kind == "frames":
            return _frame_mean(self.frame_logits(params, videos), lengths)
        if self.kind == "two_stream":
            spatial, temporal = self.stream_logits(params, videos, lengths)
            return 0.5 * (jax.nn.log_softmax(spatial) + jax.nn.log_softmax(temporal))
        codes = self.cnn.frames(params["cnn"], videos)              # [B, T, F]
        carry, _ = unroll(self.cell, params["cell"], codes, seq_lengths=lengths)
        return self.head(params["head"], self.cell.hidden(carry))

    def loss(self, params, videos, labels, lengths=None):
        """Mean cross-entropy of the clip's scores; two_stream: the sum of the two
        streams' own (trained as two networks, fused only in `logits`)."""
        if self.kind == "two_stream":
            spatial, temporal = self.stream_logits(params, videos, lengths)
            return (softmax_cross_entropy(spatial, labels)
                    + softmax_cross_entropy(temporal, labels))
        return softmax_cross_entropy(self.logits(params, videos, lengths), labels)

    def vote(self, params, videos, lengths=None):
        """The majority vote of the frames' own labels [B] (frames): each frame votes
        for its most likely class; ties go to the class of higher mean score."""
        frame_logits = self.frame_logits(params, videos)
        classes = frame_logits.shape[-1]
        votes = jax.nn.one_hot(jnp.argmax(frame_logits, -1), classes)   # [B, T, classes]
        counts = _frame_sum(votes, lengths)
        tie_break = jax.nn.softmax(_frame_mean(frame_logits, lengths)) * 0.5
        return jnp.argmax(counts + tie_break, axis=-1)


def _frame_mask(per_frame, lengths):
    """[B, T, 1]: 1 for the frames of per_frame [B, T, K] within each clip's length."""
    return step_mask(lengths, per_frame.shape[1], per_frame.dtype)[..., None]


def _frame_sum(per_frame, lengths):
    """Sum of per_frame [B, T, K] over each clip's frames (all T without lengths)."""
    if lengths is None:
        return per_frame.sum(axis=1)
    return (per_frame * _frame_mask(per_frame, lengths)).sum(1)


def _frame_mean(per_frame, lengths):
    """Mean of per_frame [B, T, K] over each clip's frames (all T without lengths)."""
    if lengths is None:
        return per_frame.mean(axis=1)
    counted = _frame_mask(per_frame, lengths).sum(1)
    return _frame_sum(per_frame, lengths) / jnp.maximum(counted, 1.0)


def video_classifier(kind: str, video_shape, classes: int, *, channels=(16,), features: int = 64,
                     cell: Cell | None = None, motion: str = "differences",
                     flow_iterations: int = 50) -> VideoClassifier:
    """The model `kind` (one of `KINDS`) for clips of `video_shape` [T, H, W, C] and
    `classes` classes: CNNs of `channels` (one convolution block per entry); the lrcn's
    frame CNN gives `features` codes to `cell`, which it needs; two_stream reads
    `motion` ('differences' or 'flow') in its temporal stream."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    video_shape, channels = tuple(video_shape), tuple(channels)
    if len(video_shape) != 4:
        raise ValueError(f"video_shape must be one clip's [T, H, W, C], got {video_shape}")
    if kind == "lrcn":
        if cell is None:
            raise ValueError("kind 'lrcn' needs a cell")
        return VideoClassifier(kind, vision.ImageEncoder(features, channels), video_shape,
                               cell, Dense(classes))
    if kind == "conv3d":
        return VideoClassifier(kind, vision.VideoEncoder(classes, channels), video_shape)
    if kind == "two_stream" and video_shape[0] < 2:
        raise ValueError(f"kind 'two_stream' needs at least 2 frames, got video_shape "
                         f"{video_shape}")
    frames = vision.ImageEncoder(classes, channels)
    if kind == "frames":
        return VideoClassifier(kind, frames, video_shape)
    return VideoClassifier(kind, frames, video_shape, motion_cnn=vision.ImageEncoder(
        classes, channels), motion=motion, flow_iterations=flow_iterations)
