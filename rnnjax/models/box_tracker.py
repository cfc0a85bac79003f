"""A recurrent single-object tracker: a CNN reads each frame, another reads the
template (frame 0's crop around the target's first box), a recurrent cell reads the
frame codes in order together with the template's code and the first box, and a
Dense head gives the target's box in every frame.

The frame CNN may also see, as extra channels of every frame (`extras`), the
template's normalised cross-correlation at each pixel ("ncc": where the frame looks
like the template, as in Siamese trackers) and each pixel's row and column scaled to
[-1, 1] ("coords": position made explicit to the convolutions, as in CoordConv).

Only the first box goes in, so the same model is trained with the ground-truth box
of every frame in its loss and tested given the first frame's box alone. The frame
CNN (`vision.ImageEncoder`) flattens its feature map before projecting it, so the
code keeps where things are in the frame.

This module uses `rnnjax.vision` (Flax convolutions); `rnnjax.models` loads it only
when `BoxTracker` or `box_tracker` is first used.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from rnnjax import _checks, object_tracking, vision
from rnnjax.cells import Cell, make
from rnnjax.layers import Dense
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part

#: the extra channels a frame may carry (see the module)
EXTRAS = ("ncc", "coords")


@dataclasses.dataclass(frozen=True)
class BoxTracker:
    """Frame CNN + template CNN -> recurrent cell -> Dense box head. Params: `frames`,
    `template`, `cell`, `head`.

    At step t the cell reads [frame code (frame_encoder.features), template code
    (template_encoder.features), first box / (H, W, H, W)]; the head's 4 outputs are
    the box's change from the first box, in units of the frame's height and width.

    Arguments:
        frame_encoder: each frame [H, W, C] -> a code.
        template_encoder: the template [k, k, C] -> a code.
        cell: the recurrent cell.
        frame_shape: (H, W, C) of the frames.
        template_size: k, the side of the template crop (`object_tracking.templates`).
        extras: names among EXTRAS, the channels added to every frame before the
            frame CNN (ncc: 1, coords: 2).
    """

    frame_encoder: vision.ImageEncoder
    template_encoder: vision.ImageEncoder
    cell: Cell
    frame_shape: tuple[int, int, int]
    template_size: int
    extras: tuple[str, ...] = ()

    def __post_init__(self):
        _checks.positive_int("template_size", self.template_size)
        object.__setattr__(self, "extras", tuple(self.extras))
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown or len(set(self.extras)) != len(self.extras):
            raise ValueError(f"extras must be distinct names among {EXTRAS}, got "
                             f"{self.extras!r}")
        if self.template_size > min(self.frame_shape[:2]):
            raise ValueError(f"template_size must be at most the frame's height and width "
                             f"{tuple(self.frame_shape[:2])}, got {self.template_size}")

    @property
    def head(self) -> Dense:
        return Dense(4)

    @property
    def input_size(self) -> int:
        """What the cell reads per step: frame code, template code, first box."""
        return self.frame_encoder.features + self.template_encoder.features + 4

    def init(self, key):
        """Params from one key split in four (frames, template, cell, head)."""
        channels = self.frame_shape[-1]
        extra = ("ncc" in self.extras) + 2 * ("coords" in self.extras)
        return combine(
            part("frames", lambda k: self.frame_encoder.init(
                k, (*self.frame_shape[:2], channels + extra))),
            part("template", lambda k: self.template_encoder.init(
                k, (self.template_size, self.template_size, channels))),
            part("cell", lambda k: self.cell.init(k, self.input_size)),
            part("head", lambda k: self.head.init(k, self.cell.hidden_size)))(key)

    def _scale(self, dtype):
        height, width = self.frame_shape[:2]
        return jnp.asarray([height, width, height, width], dtype)

    def _check(self, videos, first_boxes):
        videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
        if tuple(videos.shape[2:]) != tuple(self.frame_shape):
            raise ValueError(f"videos must be [B, T, {', '.join(map(str, self.frame_shape))}] "
                             f"(the tracker's frame_shape), got {_checks.spec(videos)}")
        first_boxes = _checks.float_array("first_boxes", first_boxes, rank=2, layout="[B, 4]")
        if first_boxes.shape != (videos.shape[0], 4):
            raise ValueError(f"first_boxes must have shape (B, 4) = ({videos.shape[0]}, 4) "
                             f"(B from videos {_checks.spec(videos)}), got "
                             f"{_checks.spec(first_boxes)}")
        return videos, first_boxes

    def boxes(self, params, videos, first_boxes):
        """Boxes [B, T, 4] (top, left, bottom, right, pixels) of the target in every
        frame of videos [B, T, H, W, C], given its box in frame 0, first_boxes [B, 4]."""
        videos, first_boxes = self._check(videos, first_boxes)
        scale = self._scale(videos.dtype)
        codes = self.frame_encoder.frames(params["frames"],
                                          self.frame_inputs(videos, first_boxes))  # [B, T, F]
        template = object_tracking.templates(videos, first_boxes, self.template_size)
        template_code = self.template_encoder(params["template"], template)    # [B, G]
        first = first_boxes / scale
        steady = jnp.concatenate([template_code, first], axis=-1)[:, None]
        inputs = jnp.concatenate(
            [codes, jnp.broadcast_to(steady, (*codes.shape[:2], steady.shape[-1]))], axis=-1)
        _, ys = unroll(self.cell, params["cell"], inputs)
        return (first[:, None] + self.head(params["head"], ys)) * scale

    def frame_inputs(self, videos, first_boxes):
        """videos [B, T, H, W, C] with the `extras` channels after C, in the order of
        EXTRAS: the NCC of the template of the window centred at each pixel (the
        window's top-left pixel at (i - k // 2, j - k // 2)), and row and column in
        [-1, 1]."""
        channels = [videos]
        height, width = videos.shape[2:4]
        if "ncc" in self.extras:
            maps, _ = object_tracking.ncc_maps(videos, first_boxes, self.template_size)
            start = self.template_size - 1 - self.template_size // 2
            channels.append(maps[:, :, start:start + height, start:start + width, None])
        if "coords" in self.extras:
            grid = jnp.stack(jnp.meshgrid(jnp.linspace(-1, 1, height), jnp.linspace(-1, 1, width),
                                          indexing="ij"), axis=-1).astype(videos.dtype)
            channels.append(jnp.broadcast_to(grid, (*videos.shape[:4], 2)))
        return jnp.concatenate(channels, axis=-1)

    def loss(self, params, videos, boxes):
        """Mean absolute error of the boxes in frames 1 .. T-1, in units of the frame's
        height and width; the model is given boxes[:, 0] [B, 4] only."""
        predicted = self.boxes(params, videos, boxes[:, 0])
        scale = self._scale(predicted.dtype)
        return jnp.mean(jnp.abs(predicted[:, 1:] - boxes[:, 1:]) / scale)


def box_tracker(cell: str, *, hidden: int, features: int, template_features: int,
                channels: tuple[int, ...], frame_size: int, template_size: int,
                frame_channels: int = 1, extras: tuple[str, ...] = ()) -> BoxTracker:
    """A `BoxTracker` over square frames of `frame_size` pixels: a cell of type `cell`
    (see `rnnjax.cells.make`) with `hidden` units; `vision.ImageEncoder(features,
    channels)` on frames and `vision.ImageEncoder(template_features, channels)` on
    templates of `template_size` pixels; `extras` (see EXTRAS) added to each frame."""
    return BoxTracker(vision.ImageEncoder(features, tuple(channels)),
                      vision.ImageEncoder(template_features, tuple(channels)),
                      make(cell, hidden), (frame_size, frame_size, frame_channels),
                      template_size, tuple(extras))
