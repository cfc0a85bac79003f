"""Videos for single-object tracking: follow one square among look-alikes, through an
occluder.

Each clip has `frames` grey frames of size x size pixels on a black background. The
target is a filled side x side square; `distractors` hollow squares of the same size
and brightness (a one-pixel outline: similar shape, same colour) move the same way.
Every object moves with a smooth random velocity: a start velocity with a horizontal
part of `speed` (low, high) pixels per frame either way and a vertical part up to
`high` either way, then each frame a Gaussian kick of deviation `accel` per axis;
objects bounce off the frame's edges (position and velocity reflected), and are drawn
at their rounded positions. Distractors are drawn first, the target over them.

An occluder, a vertical band `band` pixels wide and of brightness `band_level`, is
drawn in front of everything. It is placed where the target passes between a third
and two thirds into the clip, and never over the target in frame 0 (when every such
place would cover frame 0, the band goes to the edge farthest from the target and a
clip may have no occlusion). The target counts as visible in a frame when at least
half of its pixels are outside the band. Every pixel then gets N(0, noise^2) noise.

Ground-truth boxes are (top, left, bottom, right) in pixels, bottom and right
exclusive: a square at corner (r, c) has the box (r, c, r + side, c + side).

Clips are a pure function of a PRNG key (jit-able with the sizes static; compiled
already, once per setting).

>>> import jax
>>> clips = jax.eval_shape(lambda: tracking_clip_batch(jax.random.key(0), 4))
>>> clips.videos.shape, clips.boxes.shape, clips.visible.shape
((4, 20, 32, 32, 1), (4, 20, 4), (4, 20))
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.tasks.clips import _flat, square_masks


class TrackingClips(NamedTuple):
    """A batch of tracking clips.

    videos float32 [B, T, size, size, 1]; boxes float32 [B, T, 4] (top, left, bottom,
    right) of the target; visible bool [B, T]: at least half the target outside the
    band; corners int32 [B, T, K, 2]: the (row, column) of every object's top-left
    pixel, object 0 the target, 1..K-1 the distractors; band int32 [B]: the band's
    first column.
    """

    videos: jax.Array
    boxes: jax.Array
    visible: jax.Array
    corners: jax.Array
    band: jax.Array


def tracking_clip_batch(key, batch: int, frames: int = 20, size: int = 32, side: int = 5,
                        distractors: int = 2, speed: tuple[float, float] = (1.0, 2.0),
                        accel: float = 0.1, band: int = 7, band_level: float = 0.5,
                        noise: float = 0.1) -> TrackingClips:
    """`batch` clips (see the module); every setting but the key is static."""
    batch = _checks.positive_int("batch", batch)
    frames = _checks.positive_int("frames", frames)
    size = _checks.positive_int("size", size)
    side = _checks.positive_int("side", side)
    band = _checks.positive_int("band", band)
    if not _checks.is_int(distractors) or distractors < 0:
        raise ValueError(f"distractors must be an integer >= 0, got {distractors!r}")
    if side < 3 or side >= size:
        raise ValueError(f"side must be at least 3 (a hollow square needs a hole) and less "
                         f"than size ({size}), got {side}")
    if band >= size - side:
        raise ValueError(f"band must be narrower than size - side = {size - side} (so that "
                         f"frame 0 can show the target beside it), got {band}")
    if frames < 3:
        raise ValueError(f"frames must be at least 3 (an occlusion between a third and two "
                         f"thirds into the clip), got {frames}")
    if (isinstance(speed, (str, bytes)) or not hasattr(speed, "__len__") or len(speed) != 2
            or not 0 < speed[0] <= speed[1]):
        raise ValueError(f"speed must be (low, high) with 0 < low <= high pixels per frame, "
                         f"got {speed!r}")
    for name, value in (("accel", accel), ("noise", noise), ("band_level", band_level)):
        if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return _draw(key, batch, frames, size, side, distractors, tuple(map(float, speed)),
                 float(accel), band, float(band_level), float(noise))


def bounce(position, velocity, high: float):
    """Positions and velocities reflected into [0, high] (one reflection per axis: a
    step is shorter than the frame)."""
    below, above = position < 0, position > high
    position = jnp.where(below, -position, jnp.where(above, 2 * high - position, position))
    return position, jnp.where(below | above, -velocity, velocity)


def _trajectories(key, batch: int, frames: int, objects: int, high: float,
                  speed: tuple[float, float], accel: float):
    """Corners int32 [B, T, K, 2] of K objects moving with kicked velocities and
    bouncing in [0, high] per axis."""
    k_start, k_speed, k_sign, k_vertical, k_kicks = jax.random.split(key, 5)
    shape = (batch, objects)
    start = _flat(jax.random.uniform, k_start, (*shape, 2), jnp.float32, 0.0, high)
    horizontal = (_flat(jax.random.uniform, k_speed, shape, jnp.float32, *speed)
                  * jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0))
    vertical = _flat(jax.random.uniform, k_vertical, shape, jnp.float32,
                     -speed[1], speed[1])
    velocity = jnp.stack([vertical, horizontal], axis=-1)
    kicks = accel * _flat(jax.random.normal, k_kicks, (frames - 1, *shape, 2))

    def step(state, kick):
        position, velocity = state
        velocity = velocity + kick
        state = bounce(position + velocity, velocity, high)
        return state, state[0]

    _, later = jax.lax.scan(step, (start, velocity), kicks)
    positions = jnp.concatenate([start[None], later], axis=0)          # [T, B, K, 2]
    return jnp.round(jnp.moveaxis(positions, 0, 1)).astype(jnp.int32)


def _place_band(key, target_columns, frames: int, size: int, side: int, band: int):
    """The band's first column [B]: centred on the target's column at a frame drawn
    among T/3 .. 2T/3 where it leaves frame 0's target uncovered."""
    low, high = frames // 3, max(frames // 3 + 1, (2 * frames) // 3 + 1)
    centres = target_columns[:, low:high] + side // 2                  # [B, n]
    lefts = jnp.clip(centres - band // 2, 0, size - band)
    first = target_columns[:, :1]
    clear = (lefts + band <= first) | (lefts >= first + side)
    choice = jax.random.categorical(key, jnp.where(clear, 0.0, -jnp.inf))
    # no clear place: the edge farthest from the target in frame 0
    farthest = jnp.where(first[:, 0] + side / 2 < size / 2, size - band, 0)
    return jnp.where(clear.any(axis=1),
                     jnp.take_along_axis(lefts, choice[:, None], axis=1)[:, 0], farthest)


def hollow_square_masks(corners, size: int, side: int):
    """bool [..., size, size]: the one-pixel outline of a side x side square at each
    corner [..., 2]."""
    return square_masks(corners, size, side) & ~square_masks(corners + 1, size, side - 2)


@functools.partial(jax.jit, static_argnums=tuple(range(1, 11)))
def _draw(key, batch, frames, size, side, distractors, speed, accel, band, band_level,
          noise) -> TrackingClips:
    """`tracking_clip_batch` after its checks, compiled once per setting."""
    k_motion, k_band, k_noise = jax.random.split(key, 3)
    corners = _trajectories(k_motion, batch, frames, 1 + distractors, float(size - side),
                            speed, accel)                              # [B, T, K, 2]
    left = _place_band(k_band, corners[:, :, 0, 1], frames, size, side, band)
    target = square_masks(corners[:, :, 0], size, side)               # [B, T, S, S]
    others = hollow_square_masks(corners[:, :, 1:], size, side).any(axis=2)
    columns = jnp.arange(size)
    in_band = (columns >= left[:, None]) & (columns < left[:, None] + band)   # [B, S]
    pixels = jnp.where(in_band[:, None, None, :], band_level,
                       (target | others).astype(jnp.float32))
    videos = pixels + noise * _flat(jax.random.normal, k_noise, pixels.shape)
    target_left = corners[:, :, 0, 1]
    covered = (jnp.minimum(target_left + side, left[:, None] + band)
               - jnp.maximum(target_left, left[:, None])).clip(0)
    top_left = corners[:, :, 0].astype(jnp.float32)
    boxes = jnp.concatenate([top_left, top_left + side], axis=-1)
    return TrackingClips(videos[..., None], boxes, 2 * covered <= side, corners,
                         left.astype(jnp.int32))
