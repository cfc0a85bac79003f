"""Clips of bouncing shapes to predict frame by frame (Moving-MNIST-style).

Each clip has `frames` grey frames of size x size pixels holding `objects` shapes
(circle, square or triangle of `radius`, drawn by `rnnjax.tasks.scenes.shape_masks`),
white (1) on black (0), where shapes overlap still 1, as Moving MNIST takes the
maximum. Each shape starts at a uniform place and moves in a straight line at a
constant velocity whose row and column components are drawn from +-`speeds` pixels
per frame, and bounces off the edges: its centre stays within [radius, size - 1 -
radius] and a component reverses where it would leave it (a reflection, so the path
is a triangle wave of time in each axis, computed in closed form).

Nothing is random after the first frame: the first frames fix every shape's place
and velocity, so the rest of the clip is predictable from them exactly, and a
model's error against the horizon measures how well it learned the motion.

Clips are a pure function of a PRNG key (jit-able, compiled once per size setting).

>>> import jax
>>> clips = jax.eval_shape(lambda: bouncing_batch(jax.random.key(0), 4))   # shapes only
>>> clips.videos.shape, clips.centres.shape, clips.velocity.shape
((4, 10, 16, 16, 1), (4, 10, 2, 2), (4, 2, 2))
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.tasks.scenes import SHAPES, shape_masks


class Bouncing(NamedTuple):
    """A batch of clips of bouncing shapes.

    videos float32 [B, frames, size, size, 1] in {0, 1}; shapes int32 [B, objects],
    indices into `rnnjax.tasks.scenes.SHAPES`; centres int32 [B, frames, objects, 2]
    the (row, column) of each shape's centre at each frame; velocity int32
    [B, objects, 2] each shape's velocity at frame 0 (pixels per frame).
    """

    videos: jax.Array
    shapes: jax.Array
    centres: jax.Array
    velocity: jax.Array


def bounce(start, velocity, steps: int, low: int, high: int):
    """Positions [..., steps] of a point that starts at `start` [...] in [low, high],
    moves by `velocity` [...] per step and reflects off low and high: the triangle
    wave low + L - |((start - low + v t) mod 2L) - L|, L = high - low."""
    span = high - low
    t = jnp.arange(steps)
    unfolded = (start - low)[..., None] + velocity[..., None] * t
    return low + span - jnp.abs(jnp.mod(unfolded, 2 * span) - span)


def bouncing_batch(key, batch: int, frames: int = 10, size: int = 16, objects: int = 2,
                   radius: int = 2, speeds: tuple[int, ...] = (1, 2)) -> Bouncing:
    """`batch` clips (see the module): shapes uniform among `SHAPES`, centres uniform
    over the frame's allowed range, each velocity component +-s with s uniform among
    `speeds` and the sign a fair coin."""
    batch = _checks.positive_int("batch", batch)
    frames = _checks.positive_int("frames", frames)
    size = _checks.positive_int("size", size)
    objects = _checks.positive_int("objects", objects)
    radius = _checks.positive_int("radius", radius)
    if size < 2 * radius + 3:
        raise ValueError(f"size must be at least 2 radius + 3 = {2 * radius + 3} so that a "
                         f"shape of radius {radius} can move, got {size}")
    speeds = _checks.positive_ints("speeds", speeds)
    return _draw(key, batch, frames, size, objects, radius, speeds)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _draw(key, batch: int, frames: int, size: int, objects: int, radius: int,
          speeds: tuple[int, ...]) -> Bouncing:
    """`bouncing_batch` after its checks, compiled once per setting."""
    k_shape, k_start, k_speed, k_sign = jax.random.split(key, 4)
    low, high = radius, size - 1 - radius
    shapes = jax.random.randint(k_shape, (batch, objects), 0, len(SHAPES))
    start = jax.random.randint(k_start, (batch, objects, 2), low, high + 1)
    speed = jnp.asarray(speeds, jnp.int32)[
        jax.random.randint(k_speed, (batch, objects, 2), 0, len(speeds))]
    velocity = jnp.where(jax.random.bernoulli(k_sign, 0.5, (batch, objects, 2)), speed, -speed)
    paths = bounce(start, velocity, frames, low, high)           # [B, n, 2, T]
    centres = jnp.transpose(paths, (0, 3, 1, 2)).astype(jnp.int32)   # [B, T, n, 2]
    masks = shape_masks(shapes[:, None, :], centres, size, radius)   # [B, T, n, S, S]
    videos = jnp.any(masks, axis=2).astype(jnp.float32)[..., None]
    return Bouncing(videos, shapes.astype(jnp.int32), centres, velocity.astype(jnp.int32))
