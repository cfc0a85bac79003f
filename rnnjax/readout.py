"""Closed-form linear readouts: the only trained part of an echo state network.

`ridge_readout` is public as `rnnjax.train.ridge_readout`; it lives here, apart from
the training loop, so that the probe's `memory_capacity` can use it without loading
the loop's checkpointing.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rnnjax import _checks, _linalg


def ridge_readout(states, targets, l2: float, lengths=None, *, classes: int | None = None):
    """The linear readout `{"W": [H, O], "b": [O]}` that minimises, over the steps
    kept, sum ||s W + b - y||^2 + l2 ||W||^2 (the bias is not penalised): ridge
    regression in closed form, by a QR of the stacked system (no normal equations,
    no batched LAPACK call). `rj.Dense(O)(readout, states)` applies it.

    Args:
      states: float [B, T, H] (a sequence model's outputs) or [N, H].
      targets: float [B, T, O] / [N, O] for regression, or int class labels [B, T] /
        [N] with `classes`, read as one-hot vectors (classify with the argmax).
      l2: the ridge penalty, >= 0.
      lengths: None, or int [B] for [B, T, H] states: steps past a length are left out.
      classes: the number of classes of integer targets.
    """
    states = _checks.float_array("states", states, min_rank=2, layout="[B, T, H] or [N, H]")
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        if classes is None:
            raise ValueError("targets are integer labels: pass classes=<number of classes> "
                             "(or one-hot float targets)")
        _checks.values_in_range(targets, 0, classes - 1,
                                f"targets must lie in [0, {classes - 1}], got values in ")
        targets = jnp.eye(classes, dtype=states.dtype)[targets]
    elif classes is not None:
        raise ValueError("classes is for integer targets; these are "
                         f"{targets.dtype} with shape {tuple(targets.shape)}")
    if tuple(targets.shape[:-1]) != tuple(states.shape[:-1]):
        raise ValueError(f"targets must have the leading shape of states "
                         f"{tuple(states.shape[:-1])} (one target vector per state), got "
                         f"shape {tuple(targets.shape)}")
    if not (np.ndim(l2) == 0 and float(l2) >= 0):
        raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
    weight = jnp.ones(states.shape[:-1], states.dtype)
    if lengths is not None:
        if states.ndim != 3:
            raise ValueError(f"lengths need states [B, T, H], got shape {tuple(states.shape)}")
        lengths = _checks.seq_lengths(lengths, states.shape[0], states.shape[1])
        weight = (jnp.arange(states.shape[1])[None, :] < lengths[:, None]).astype(states.dtype)
    hidden, outputs = states.shape[-1], targets.shape[-1]
    root = jnp.sqrt(weight.reshape(-1, 1))
    rows = jnp.concatenate([states.reshape(-1, hidden), jnp.ones_like(root)], axis=1) * root
    penalty = jnp.sqrt(jnp.asarray(l2, states.dtype)) * jnp.eye(hidden, hidden + 1,
                                                                dtype=states.dtype)
    system = jnp.concatenate([rows, penalty], axis=0)              # [N + H, H + 1]
    goal = jnp.concatenate([targets.reshape(-1, outputs).astype(states.dtype) * root,
                            jnp.zeros((hidden, outputs), states.dtype)], axis=0)
    q, r = _linalg.qr(system)
    solution = _linalg._inv_upper(r) @ (q.T @ goal)                # [H + 1, O]
    return {"W": solution[:hidden], "b": solution[hidden]}
