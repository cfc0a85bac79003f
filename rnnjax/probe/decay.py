"""Fitted exponents of gradient decay: rate per step, its error, half-life, explosion."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DecayFit(NamedTuple):
    rate: float        # slope of ln(norm) against distance d = T-1-k, per step
    stderr: float      # standard error of the slope (least squares)
    half_life: float   # steps for the norm to halve (inf when it does not decay)
    exploding: bool    # the norm grows: rate more than two standard errors above 0


def decay_fit(norms, distances=None, min_norm=1e-30, log=False) -> DecayFit:
    """Least-squares fit of ln(norm) = a + rate * d, with d = T-1-k the distance back
    from the last step (so `norms` [T] as returned by the probe, k = 0..T-1).

    A norm ||P_k|| = rho^(T-1-k) gives rate = ln(rho) exactly. Norms below `min_norm`
    (underflow to zero) are left out of the fit; an infinite norm (overflow) is left
    out too, and flags the fit as exploding. With `log=True`, `norms` are ln norms
    (`hidden_grad_log_norms`), where nothing under- or overflows.
    """
    norms = np.asarray(norms, np.float64)
    if norms.ndim != 1 or norms.shape[0] < 2:
        raise ValueError(f"norms must have shape [T] with T >= 2, got shape {norms.shape}")
    if distances is None:
        distances = np.arange(norms.shape[0] - 1, -1, -1, dtype=np.float64)
    distances = np.asarray(distances, np.float64)
    overflow = bool(np.any(norms == np.inf))
    with np.errstate(divide="ignore"):
        logs = norms if log else np.log(np.where(norms > min_norm, norms, 0.0))
    keep = np.isfinite(logs)
    d, y = distances[keep], logs[keep]
    if d.size < 2:
        return DecayFit(float("nan"), float("nan"), float("nan"), overflow)
    design = np.stack([np.ones_like(d), d], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    dof = max(d.size - 2, 1)
    var = residual @ residual / dof / np.sum((d - d.mean()) ** 2)
    rate, stderr = float(coef[1]), float(np.sqrt(var))
    half_life = float(np.log(2) / -rate) if rate < 0 else float("inf")
    return DecayFit(rate, stderr, half_life,
                    overflow or bool(rate > 2 * stderr and rate > 0))


def decay_rate(norms, distances=None) -> float:
    """The fitted per-step exponent of ln(norm) against distance T-1-k (see `decay_fit`).

    >>> round(decay_rate([0.9 ** d for d in range(50, -1, -1)]), 6), round(float(np.log(0.9)), 6)
    (-0.105361, -0.105361)
    """
    return decay_fit(norms, distances).rate
