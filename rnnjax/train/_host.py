"""Reading device values on the host, shared by the training loop, its checkpoints and
its logs."""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils


def to_host(tree):
    """`tree` as NumPy arrays. An array sharded over several processes' devices is
    gathered from all of them: a collective, which every process reaches at the same
    point of `fit`."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))
    return jax.tree_util.tree_map(get, tree)


def step_of(state) -> int:
    """Updates done: `state.step`, or its max over a leading seeds axis."""
    return int(np.max(to_host(state.step)))
