"""The train state and a jit-compiled train step from any optax optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnjax import _checks


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly: a pytree, so it checkpoints whole."""
    params: Any
    opt_state: Any
    step: jax.Array   # int32 scalar: updates done (also the data position)
    key: jax.Array    # PRNG key for dropout and the like; data keys derive from `step`


def init_state(params, optimizer: optax.GradientTransformation, key) -> TrainState:
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                    clip_norm: float | None = None, flossing=None):
    """`step(state, batch) -> (state, metrics)`, pure and jit-able (and vmap-able).

    loss_fn(params, batch, key) -> (loss, aux metrics dict). Gradients are clipped to
    global norm `clip_norm` when given; `metrics` always holds `loss`, `grad_norm`
    (before clipping) and `clipped` (1.0 when the clip acted), plus loss_fn's aux.
    `flossing`, a `rnnjax.train.Flossing`, adds gradient flossing: the gradient of the
    k largest Lyapunov exponents' squares, alone before training or added during it
    (metric `flossing`).
    """
    if not callable(loss_fn):
        raise _checks.InputTypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise _checks.InputTypeError(f"optimizer must be an optax.GradientTransformation, "
                                     f"got {type(optimizer).__name__}")
    if clip_norm is not None and _checks.is_concrete(clip_norm) and not (
            np.ndim(clip_norm) == 0 and np.isreal(clip_norm) and float(clip_norm) > 0):
        raise ValueError(f"clip_norm must be a positive number or None, got {clip_norm!r}")

    if flossing is not None and not hasattr(flossing, "value_and_grad"):
        raise _checks.InputTypeError(f"flossing must be a rnnjax.train.Flossing or None, got "
                                     f"{type(flossing).__name__}")

    def step(state: TrainState, batch):
        key, sub = jax.random.split(state.key)
        if flossing is None:
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, sub)
        else:
            (loss, aux), grads = flossing.value_and_grad(loss_fn, state.params, batch, sub,
                                                         state.step)
        grad_norm = optax.tree.norm(grads)
        clipped = jnp.zeros((), grad_norm.dtype)
        if clip_norm is not None:
            scale = jnp.minimum(1.0, clip_norm / jnp.maximum(grad_norm, 1e-30))
            grads = jax.tree_util.tree_map(lambda g: g * scale.astype(g.dtype), grads)
            clipped = (grad_norm > clip_norm).astype(grad_norm.dtype)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": grad_norm, "clipped": clipped, **aux}
        return TrainState(params, opt_state, state.step + 1, key), metrics

    return step
