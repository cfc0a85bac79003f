"""Sequential digits: scikit-learn's 8x8 handwritten digits read as sequences, the
small cousin of sequential MNIST (Le, Jaitly and Hinton 2015).

The 1797 images (UCI optical digits, pixels 0..16) are scaled to [0, 1] and read
row by row (8 steps of 8 pixels) or pixel by pixel (64 steps of 1 pixel), in
raster order or through a fixed random permutation of the 64 pixels (the
"permuted" task: neighbouring steps no longer hold neighbouring pixels).

The split is fixed: from every class, a fraction TEST_FRACTION of its images, drawn
with numpy's `default_rng(SPLIT_SEED)`, is the test set (450 images), the rest the
training set (1347 images).

Needs the `digits` extra: pip install 'rnnjax[digits]'.
"""

from __future__ import annotations

import numpy as np

from rnnjax import _checks
from rnnjax.tasks._optional import require
from rnnjax.tasks.labelled import LabelledSequences

#: reading -> (steps, pixels per step)
READINGS = {"rows": (8, 8), "pixels": (64, 1)}
SPLITS = ("train", "test")
TEST_FRACTION = 0.25
SPLIT_SEED = 0
PIXELS = 64
MAX_VALUE = 16.0   # the data set's pixel values are the integers 0..16


def pixel_permutation(seed: int) -> np.ndarray:
    """The fixed order [64] in which the permuted task reads the pixels (a function of
    `seed` only).

    >>> sorted(pixel_permutation(3).tolist()) == list(range(64))
    True
    """
    if not _checks.is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(seed).permutation(PIXELS)


def stratified_split(labels, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """(train indices, test indices), both sorted: round(test_fraction * n_c) of each
    class's n_c examples, drawn with `default_rng(seed)`, go to the test set."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:round(test_fraction * np.sum(labels == c))]
        for c in np.unique(labels)])
    return np.setdiff1d(np.arange(len(labels)), test), np.sort(test)


def load_digits_sequences(split: str, reading: str = "rows",
                          permutation_seed: int | None = None) -> LabelledSequences:
    """The `split` ("train" or "test") of the digits, read as `reading` ("rows":
    xs [N, 8, 8], step t is image row t; "pixels": xs [N, 64, 1], step t is pixel t in
    raster order), with the pixels first reordered by `pixel_permutation(seed)` when
    `permutation_seed` is given. Pixels are scaled to [0, 1]; every length is T;
    labels are the digits 0-9; `index` is each image's position in
    `sklearn.datasets.load_digits()`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {sorted(READINGS)}, got {reading!r}")
    digits = require("sklearn.datasets", "digits").load_digits()
    train, test = stratified_split(digits.target)
    index = train if split == "train" else test
    pixels = digits.images[index].reshape(len(index), PIXELS) / MAX_VALUE
    if permutation_seed is not None:
        pixels = pixels[:, pixel_permutation(permutation_seed)]
    steps, width = READINGS[reading]
    return LabelledSequences(pixels.reshape(len(index), steps, width).astype(np.float32),
                             np.full(len(index), steps, np.int32),
                             digits.target[index].astype(np.int32),
                             tuple(str(d) for d in range(10)), index)
