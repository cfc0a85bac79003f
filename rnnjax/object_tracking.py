"""Single-object tracking without learning: boxes and their overlap, normalised
cross-correlation (NCC) template matching, and a constant-velocity Kalman filter on
the boxes of an NCC detector.

A box is (top, left, bottom, right) in pixels, bottom and right exclusive: pixel row
i covers [i, i + 1), so a box of integer coordinates holds exactly the pixels
top .. bottom - 1 by left .. right - 1. Every tracker is given the target's box in
frame 0 and nothing else about it; all are pure jnp, jit-able with the template size
static, and take videos [B, T, H, W, C] with first boxes [B, 4] to boxes [B, T, 4].

- `template_match`: the crop of frame 0 around the first box (`template_size`
  pixels square) is slid over every frame; the box goes where the NCC peaks.
- `kalman_track`: the detector proposes the local maxima of the NCC map above
  `threshold` (every look-alike is one); a constant-velocity Kalman filter
  (`rnnjax.filters.constant_velocity` in 2 dimensions, on the box centre) predicts
  the centre, takes the candidate nearest to the prediction in Mahalanobis distance
  under the predicted observation covariance, and updates with it when it lies
  within `gate` standard deviations; otherwise (occlusion, a miss) it only predicts.
  The box is the filtered centre with the first box's height and width.

>>> import jax.numpy as jnp
>>> iou(jnp.array([0.0, 0, 2, 2]), jnp.array([1.0, 1, 3, 3])).item()   # 1 / 7
0.14285714...
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rnnjax import _checks, filters


# -- boxes --------------------------------------------------------------------------------
def _boxes(name: str, boxes):
    boxes = _checks.float_array(name, boxes, min_rank=1, layout="[..., 4]")
    if boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4] (top, left, bottom, right), got "
                         f"shape {tuple(boxes.shape)}")
    return boxes


def iou(a, b):
    """Intersection over union of boxes a and b [..., 4] (broadcast against each
    other) -> [...]; 0 where both are empty."""
    a, b = _boxes("a", a), _boxes("b", b)
    height = jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0])
    width = jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1])
    inter = jnp.clip(height, 0) * jnp.clip(width, 0)
    area = lambda x: jnp.clip(x[..., 2] - x[..., 0], 0) * jnp.clip(x[..., 3] - x[..., 1], 0)
    union = area(a) + area(b) - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def success_rate(ious, threshold: float = 0.5, axis=None):
    """The fraction of ious at or above `threshold` (the usual success at IoU 0.5),
    over `axis` (None: all)."""
    return jnp.mean(jnp.asarray(ious) >= threshold, axis=axis)


def centres(boxes):
    """(row, column) centres [..., 2] of boxes [..., 4]."""
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def boxes_at(centre, extent):
    """Boxes [..., 4] of height and width `extent` [..., 2] centred at `centre` [..., 2]."""
    return jnp.concatenate([centre - extent / 2, centre + extent / 2], axis=-1)


# -- templates and normalised cross-correlation ----------------------------------------------
def crop(images, centre, size: int):
    """The size x size windows [B, size, size, C] of images [B, H, W, C] whose centres
    lie nearest to centre [B, 2] (top-left corner round(centre - size / 2)); zeros
    outside the image."""
    padded = jnp.pad(images, ((0, 0), (size, size), (size, size), (0, 0)))
    corner = window_corner(centre, size) + size

    def one(image, corner):
        return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0),
                                     (size, size, image.shape[-1]))

    return jax.vmap(one)(padded, corner)


def window_corner(centre, size: int):
    """The int32 top-left corner [..., 2] of the size x size window `crop` takes
    around centre [..., 2]."""
    return jnp.round(centre - size / 2).astype(jnp.int32)


def ncc_map(image, template, eps: float = 1e-6):
    """Normalised cross-correlation of template [k, k, C] at every position of image
    [H, W, C] -> [H - k + 1, W - k + 1] (entry (i, j): the window whose top-left pixel
    is (i, j)), in [-1, 1]: the correlation coefficient of the window's pixels with
    the template's, so a window equal to a * template + b (a > 0) scores 1. A
    constant window (or template) scores 0.

    Written as sums of shifted slices (k^2 for the correlation, 2k for each box sum)
    rather than convolutions: vmapped over clips, each with its own template, a
    convolution becomes a grouped one, several times slower on a CPU."""
    k = template.shape[0]
    height, width = image.shape[0] - k + 1, image.shape[1] - k + 1
    zero_mean = template - jnp.mean(template)
    correlation = sum(image[i:i + height, j:j + width] * zero_mean[i, j]
                      for i in range(k) for j in range(k)).sum(-1)

    def box_sums(x):   # the sum over every k x k window, rows then columns
        rows = sum(x[i:i + height] for i in range(k))
        return sum(rows[:, j:j + width] for j in range(k)).sum(-1)

    total, squares = box_sums(image), box_sums(image ** 2)
    spread = jnp.sqrt(jnp.clip(squares - total ** 2 / template.size, 0)
                      * jnp.sum(zero_mean ** 2))
    return jnp.where(spread > eps, correlation / jnp.maximum(spread, eps), 0.0)


def _check_tracking_inputs(videos, first_boxes, template_size):
    videos = _checks.float_array("videos", videos, rank=5, layout="[B, T, H, W, C]")
    first_boxes = _boxes("first_boxes", first_boxes)
    if first_boxes.shape != (videos.shape[0], 4):
        raise ValueError(f"first_boxes must have shape (B, 4) = ({videos.shape[0]}, 4) (B "
                         f"from videos {_checks.spec(videos)}), got shape "
                         f"{tuple(first_boxes.shape)}")
    template_size = _checks.positive_int("template_size", template_size)
    if template_size > min(videos.shape[2:4]):
        raise ValueError(f"template_size must be at most the frame's height and width "
                         f"{tuple(videos.shape[2:4])}, got {template_size}")
    return videos, first_boxes, template_size


def templates(videos, first_boxes, template_size: int):
    """The template_size-square crops [B, k, k, C] of frame 0 around the first boxes."""
    return crop(videos[:, 0], centres(first_boxes), template_size)


def ncc_maps(videos, first_boxes, size: int):
    """NCC maps [B, T, H + k - 1, W + k - 1] of every frame (zero-padded by k - 1)
    with its clip's template: entry (i, j) is the window whose top-left pixel is
    (i - k + 1, j - k + 1); and the offset [B, 2] to add to entry (i, j) + k / 2 for
    the box centre there (the padding and the template window's rounding)."""
    template = templates(videos, first_boxes, size)
    # zeros around the frames, as `crop` pads: windows that reach past an edge count
    padded = jnp.pad(videos, ((0, 0), (0, 0), (size - 1, size - 1), (size - 1, size - 1),
                              (0, 0)))
    per_frame = jax.vmap(ncc_map, in_axes=(0, None))
    maps = jax.vmap(per_frame)(padded, template)
    centre = centres(first_boxes)
    return maps, centre - (window_corner(centre, size) + size / 2) - (size - 1)


def template_match(videos, first_boxes, template_size: int):
    """NCC template matching: boxes [B, T, 4], in each frame the first box moved to
    where the template correlates best (see the module)."""
    videos, first_boxes, template_size = _check_tracking_inputs(videos, first_boxes,
                                                                template_size)
    return _template_match(videos, first_boxes, template_size)


@functools.partial(jax.jit, static_argnums=2)
def _template_match(videos, first_boxes, size):
    maps, offset = ncc_maps(videos, first_boxes, size)
    width = maps.shape[-1]
    best = jnp.argmax(maps.reshape(*maps.shape[:2], -1), axis=-1)          # [B, T]
    corner = jnp.stack([best // width, best % width], axis=-1).astype(first_boxes.dtype)
    extent = first_boxes[:, 2:] - first_boxes[:, :2]
    return boxes_at(corner + size / 2 + offset[:, None], extent[:, None])


def candidates(ncc, threshold: float):
    """bool [..., h, w]: the local maxima (over each 3 x 3 neighbourhood) of NCC maps
    [..., h, w] at or above `threshold`: the detector's proposals."""
    pad = [(0, 0)] * (ncc.ndim - 2) + [(1, 1), (1, 1)]
    peaks = jax.lax.reduce_window(ncc, -jnp.inf, jax.lax.max, (1,) * (ncc.ndim - 2) + (3, 3),
                                  (1,) * ncc.ndim, pad)
    return (ncc >= peaks) & (ncc >= threshold)


def kalman_track(videos, first_boxes, template_size: int, *, threshold: float = 0.7,
                 gate: float = 3.0, accel_noise: float = 0.5, obs_std: float = 1.0,
                 velocity_std: float = 2.0):
    """A constant-velocity Kalman filter on the box centre, updated with the NCC
    detection nearest to its prediction (see the module).

    Arguments:
        videos: [B, T, H, W, C].
        first_boxes: [B, 4], the target's box in frame 0.
        template_size: side of the template cropped around the first box (static).
        threshold: the least NCC of a detection.
        gate: the largest Mahalanobis distance (standard deviations of the predicted
            observation) of a detection the filter accepts.
        accel_noise, obs_std: the filter's acceleration noise density and detection
            noise deviation in pixels (`filters.constant_velocity`).
        velocity_std: prior deviation of the velocity, pixels per frame (the
            position starts at the first box's centre, deviation obs_std).

    Returns (boxes [B, T, 4], detected bool [B, T]: whether frame t updated the
    filter; frame 0's box is the first box, and counts as detected).
    """
    videos, first_boxes, template_size = _check_tracking_inputs(videos, first_boxes,
                                                                template_size)
    if _checks.is_concrete(threshold) and not -1 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [-1, 1] (an NCC), got {threshold!r}")
    if _checks.is_concrete(gate) and not gate > 0:
        raise ValueError(f"gate must be positive (standard deviations), got {gate!r}")
    model = filters.constant_velocity(dims=2, dt=1.0, accel_noise=accel_noise,
                                      obs_std=obs_std, position_std=obs_std,
                                      velocity_std=velocity_std, dtype=videos.dtype)
    return _kalman_track(videos, first_boxes, model, template_size,
                         jnp.asarray(threshold, videos.dtype), jnp.asarray(gate, videos.dtype))


@functools.partial(jax.jit, static_argnums=3)
def _kalman_track(videos, first_boxes, model, size, threshold, gate):
    maps, offset = ncc_maps(videos, first_boxes, size)
    found = candidates(maps, threshold)                                     # [B, T, h, w]
    grid = jnp.stack(jnp.meshgrid(jnp.arange(maps.shape[2]), jnp.arange(maps.shape[3]),
                                  indexing="ij"), axis=-1).astype(videos.dtype) + size / 2

    def one(found, offset, first_box):
        positions = (grid + offset).reshape(-1, 2)                          # [h * w, 2]
        start = jnp.concatenate([centres(first_box), jnp.zeros(2, videos.dtype)])

        def step(state, found_t):
            mean, cov = filters.kalman_predict(model, *state)
            s = filters.innovation_covariance(model, cov)
            residual = positions - model.H @ mean                           # [h * w, 2]
            distance = jnp.sum(residual * filters.solve_spd(s, residual.T).T, axis=-1)
            distance = jnp.where(found_t.reshape(-1), distance, jnp.inf)
            nearest = jnp.argmin(distance)
            detected = distance[nearest] <= gate ** 2
            mean, cov = filters.kalman_update(model, mean, cov, positions[nearest], detected)
            return (mean, cov), (model.H @ mean, detected)

        _, (path, detected) = jax.lax.scan(step, (start, model.P0), found[1:])
        return (jnp.concatenate([centres(first_box)[None], path]),
                jnp.concatenate([jnp.ones(1, bool), detected]))

    path, detected = jax.vmap(one)(found, offset, first_boxes)
    extent = first_boxes[:, 2:] - first_boxes[:, :2]
    return boxes_at(path, extent[:, None]), detected
