"""Labelled sequences: the container the classification loaders return, with padding
and channel standardisation that leave the padding alone."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LabelledSequences(NamedTuple):
    """Sequences with one class label each, batch-major and zero-padded.

    `xs` float32 [N, T, F] is zero past each sequence's length; `lengths` int32 [N];
    `labels` int32 [N] are 0-based indices into `classes` (the class names);
    `index` int [N] is each sequence's position in the data set it was read from.
    """

    xs: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    index: np.ndarray


def pad(sequences) -> tuple[np.ndarray, np.ndarray]:
    """Arrays [T_i, F] -> (float32 [N, max T_i, F] zero-padded, int32 lengths [N]).

    >>> xs, lengths = pad([np.ones((2, 3)), np.ones((4, 3))])
    >>> xs.shape, lengths.tolist(), bool(xs[0, 2:].any())
    ((2, 4, 3), [2, 4], False)
    """
    sequences = [np.asarray(s, np.float32) for s in sequences]
    if not sequences:
        raise ValueError("sequences must hold at least one sequence, got none")
    features = {s.shape[1:] for s in sequences}
    if any(s.ndim != 2 for s in sequences) or len(features) != 1:
        raise ValueError(f"sequences must all have shape [T_i, F] with the same F, got "
                         f"shapes {sorted({s.shape for s in sequences})}")
    lengths = np.asarray([len(s) for s in sequences], np.int32)
    xs = np.zeros((len(sequences), lengths.max(), *features.pop()), np.float32)
    for row, s in zip(xs, sequences):
        row[:len(s)] = s
    return xs, lengths


def valid_steps(lengths, steps: int) -> np.ndarray:
    """bool [N, T]: True where t < lengths[n]."""
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def channel_stats(data: LabelledSequences) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation [F] of each channel over the valid steps only (the
    padding would pull both towards zero); a constant channel gets deviation 1."""
    values = data.xs[valid_steps(data.lengths, data.xs.shape[1])]   # [steps, F]
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0).astype(np.float32)


def standardise(data: LabelledSequences, mean, std) -> LabelledSequences:
    """`data` with each channel shifted by `mean` and divided by `std` (for example the
    training set's `channel_stats`) on its valid steps; the padding stays zero.

    >>> data = LabelledSequences(np.array([[[1.0], [3.0]], [[5.0], [0.0]]], np.float32),
    ...                          np.array([2, 1], np.int32), np.zeros(2, np.int32), ("a",),
    ...                          np.arange(2))
    >>> print(standardise(data, *channel_stats(data)).xs[..., 0].round(3))
    [[-1.225  0.   ]
     [ 1.225  0.   ]]
    """
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    features = data.xs.shape[-1]
    if mean.shape != (features,) or std.shape != (features,):
        raise ValueError(f"mean and std must have shape ({features},) (one per channel), "
                         f"got {mean.shape} and {std.shape}")
    valid = valid_steps(data.lengths, data.xs.shape[1])[..., None]
    xs = np.where(valid, (data.xs - mean) / std, 0.0).astype(np.float32)
    return data._replace(xs=xs)
