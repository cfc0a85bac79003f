"""Short videos to classify by motion: which way does the square move?

Each clip has `frames` grey frames of size x size pixels. A filled square (the
target) moves in a straight line, right, up, left or down (the label), at a speed of
`speeds` pixels per frame drawn per clip; a cross of the same size (the distractor)
wanders at random, each frame a step of up to `wander` pixels along each axis; and
every pixel gets Gaussian noise. The frame wraps around at its edges (a torus: what
leaves on the right comes back on the left).

A single frame tells nothing about the label, and that is exact, not approximate:
the target starts at a uniformly random place, and on a torus start + t * velocity
is then uniform at every frame t whatever the velocity; the distractor's place is
uniform at every frame the same way, independently, and the noise is independent
of everything. So frame t has one distribution for every label; only how the frames
follow each other carries the label. A classifier of one frame is at chance. A sum of
per-frame scores is not quite: it sees the path only through which places the frames
visit (a vertical mover stays in its column, a horizontal one sweeps the rows), a weak
trace of the axis of motion; to tell the direction a model must compare frames.

Clips are a pure function of a PRNG key (jit-able with the sizes static; compiled
already, once per size and motion setting).

>>> import jax
>>> clips = jax.eval_shape(lambda: clip_batch(jax.random.key(0), 4))   # shapes only
>>> clips.videos.shape, clips.labels.shape, clips.target.shape
((4, 12, 24, 24, 1), (4,), (4, 12, 2))
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks

DIRECTIONS = ("right", "up", "left", "down")
#: (row, column) step of each direction per pixel of speed; rows grow downwards
VELOCITY = np.array([[0, 1], [-1, 0], [0, -1], [1, 0]], np.int32)


class Clips(NamedTuple):
    """A batch of labelled clips.

    videos float32 [B, frames, size, size, 1]; labels int32 [B], indices into
    DIRECTIONS; target and distractor int32 [B, frames, 2]: the (row, column) of the
    top-left corner of each object's side x side box, in [0, size); speeds int32 [B].
    """

    videos: jax.Array
    labels: jax.Array
    target: jax.Array
    distractor: jax.Array
    speeds: jax.Array


def _box_offsets(corners, size: int):
    """Each pixel's (row, column) offset [..., size] from the corner [..., 2], on the
    torus."""
    pixels = jnp.arange(size)
    return (pixels - corners[..., 0, None]) % size, (pixels - corners[..., 1, None]) % size


def square_masks(corners, size: int, side: int):
    """bool [..., size, size]: a filled side x side square at each corner [..., 2]."""
    rows, cols = _box_offsets(corners, size)
    return (rows < side)[..., :, None] & (cols < side)[..., None, :]


def cross_masks(corners, size: int, side: int):
    """bool [..., size, size]: a cross (a plus sign) in the side x side box at each
    corner [..., 2], its bars one pixel wide through the box's middle."""
    rows, cols = _box_offsets(corners, size)
    middle = side // 2
    horizontal = (rows == middle)[..., :, None] & (cols < side)[..., None, :]
    vertical = (rows < side)[..., :, None] & (cols == middle)[..., None, :]
    return horizontal | vertical


def clip_batch(key, batch: int, frames: int = 12, size: int = 24, side: int = 5,
               speeds: tuple[int, ...] = (1, 2), wander: int = 2,
               noise: float = 0.1) -> Clips:
    """`batch` clips (see the module): the label and the speed drawn uniformly, both
    objects' starts uniformly over the frame, the distractor's steps uniformly in
    [-wander, wander] per axis, the noise N(0, noise**2) per pixel."""
    batch = _checks.positive_int("batch", batch)
    frames = _checks.positive_int("frames", frames)
    size = _checks.positive_int("size", size)
    side = _checks.positive_int("side", side)
    if side % 2 == 0 or side >= size:
        raise ValueError(f"side must be odd and less than size ({size}) so that the cross "
                         f"has a middle, got {side}")
    speeds = _checks.positive_ints("speeds", speeds)
    if not _checks.is_int(wander) or wander < 0:
        raise ValueError(f"wander must be an integer >= 0, got {wander!r}")
    if _checks.is_concrete(noise) and not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    return _draw(key, batch, frames, size, side, speeds, wander, noise)


def _flat(sampler, key, shape, *args):
    """`sampler(key, shape, *args)` drawn flat and reshaped: the same numbers (JAX's
    threefry counts through the flattened shape), and XLA compiles a flat draw several
    times faster on a CPU than one of rank 3 or 4."""
    return sampler(key, (math.prod(shape),), *args).reshape(shape)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _draw(key, batch: int, frames: int, size: int, side: int, speeds: tuple[int, ...],
          wander: int, noise) -> Clips:
    """`clip_batch` after its checks, compiled once per shape and motion setting."""
    k_label, k_speed, k_target, k_start, k_steps, k_noise = jax.random.split(key, 6)
    labels = jax.random.randint(k_label, (batch,), 0, len(DIRECTIONS))
    speed = jnp.asarray(speeds, jnp.int32)[jax.random.randint(k_speed, (batch,), 0,
                                                               len(speeds))]
    t = jnp.arange(frames)
    velocity = jnp.asarray(VELOCITY)[labels] * speed[:, None]                   # [B, 2]
    start = _flat(jax.random.randint, k_target, (batch, 1, 2), 0, size)
    target = (start + t[None, :, None] * velocity[:, None, :]) % size
    steps = _flat(jax.random.randint, k_steps, (batch, frames, 2), -wander, wander + 1)
    steps = steps.at[:, 0].set(0)                        # frame 0 is the uniform start
    origin = _flat(jax.random.randint, k_start, (batch, 1, 2), 0, size)
    distractor = (origin + jnp.cumsum(steps, axis=1)) % size
    drawn = square_masks(target, size, side) | cross_masks(distractor, size, side)
    videos = drawn.astype(jnp.float32) + noise * _flat(jax.random.normal, k_noise, drawn.shape)
    return Clips(videos[..., None], labels.astype(jnp.int32), target.astype(jnp.int32),
                 distractor.astype(jnp.int32), speed)
