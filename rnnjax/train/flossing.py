"""Gradient flossing (Engelken 2023): keep the forward dynamics near the edge of chaos
by pushing the k largest Lyapunov exponents towards zero, so that gradients through
time neither vanish nor explode.

The exponents come from the probe's QR method (`probe.lyapunov_spectrum`), which is
differentiable; `flossing_loss` is the mean of their squares. `Flossing` tells
`make_train_step` when to use it: alone for the first `before` steps (flossing before
training), then added with `weight` every `every` steps (flossing during training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax.probe.jacobians import lyapunov_spectrum


def flossing_loss(cell, params, xs, k: int = 1, carry=None):
    """The mean of the squares of the k largest Lyapunov exponents of `cell` driven by
    xs [B, T, I] (per step, natural log; mean over the batch): a scalar, differentiable
    with respect to params (and xs)."""
    k = _checks.positive_int("k", k)
    return jnp.mean(lyapunov_spectrum(cell, params, xs, k=k, carry=carry) ** 2)


@dataclasses.dataclass(frozen=True)
class Flossing:
    """When and how `make_train_step` flosses.

    `select(params, batch) -> (cell params, xs [B, T, I])` picks the recurrent cell's
    params out of the model's and the inputs that drive it (e.g. `lambda p, b:
    (p["cell"], b[0])`). Steps 0 .. `before`-1 follow the flossing loss alone (the task
    loss is still computed and reported); later steps add `weight` times the flossing
    loss every `every` steps (`every=0`: never). The train step's metrics gain
    `flossing`: the flossing loss where it was used, NaN elsewhere.
    """

    cell: Any
    select: Callable
    k: int = 1
    weight: float = 1.0
    every: int = 1
    before: int = 0

    def __post_init__(self):
        _checks.positive_int("k", self.k)
        if not callable(self.select):
            raise _checks.InputTypeError(f"select must be callable, got "
                                         f"{type(self.select).__name__}")
        for name in ("every", "before"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if not (isinstance(self.weight, (int, float)) and self.weight >= 0):
            raise ValueError(f"weight must be a number >= 0, got {self.weight!r}")

    def coefficients(self, step):
        """(task weight, flossing weight) at train step `step` (int32 scalar)."""
        before = step < self.before
        during = (self.every > 0) & (step % max(self.every, 1) == 0) & (self.weight > 0)
        task = jnp.where(before, 0.0, 1.0)
        floss = jnp.where(before, 1.0, jnp.where(during, self.weight, 0.0))
        return task, floss

    def loss(self, params, batch):
        cell_params, xs = self.select(params, batch)
        return flossing_loss(self.cell, cell_params, xs, self.k)

    def value_and_grad(self, loss_fn, params, batch, key, step):
        """((task loss, aux + {"flossing"}), grads) of the step's combined objective."""
        (loss, aux), task_grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        task_weight, floss_weight = self.coefficients(step)

        def flossed(params):
            value, grads = jax.value_and_grad(self.loss)(params, batch)
            return value, grads

        def skipped(params):
            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            return jnp.full((), jnp.nan, loss.dtype), zeros

        value, floss_grads = lax.cond(floss_weight > 0, flossed, skipped, params)
        grads = jax.tree_util.tree_map(
            lambda g, f: (task_weight * g + floss_weight * f).astype(g.dtype),
            task_grads, floss_grads)
        return (loss, {**aux, "flossing": value.astype(loss.dtype)}), grads
