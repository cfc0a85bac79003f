"""Losses over padded sequences: each averages over the valid steps only."""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax


def step_mask(lengths, steps: int, dtype=jnp.float32):
    """[B, T] 1.0 where t < lengths[b] (all ones when lengths is None)."""
    if lengths is None:
        return None
    return (jnp.arange(steps)[None, :] < jnp.asarray(lengths)[:, None]).astype(dtype)


def _mask_like(lengths, targets, dtype=jnp.float32):
    """`step_mask` for targets [B, T, ...]; None without lengths (targets of any shape)."""
    return None if lengths is None else step_mask(lengths, targets.shape[1], dtype)


def masked_mean(values, mask=None):
    """Mean of values [B, T, ...] over the steps where mask [B, T] is 1."""
    if mask is None:
        return jnp.mean(values)
    mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    weight = jnp.broadcast_to(mask, values.shape)
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def softmax_cross_entropy(logits, labels, lengths=None):
    """Mean cross-entropy of logits [B, T, C] against int labels [B, T] over valid steps
    (logits [..., C] against labels [...] of any shape without lengths).

    >>> import jax.numpy as jnp
    >>> logits = jnp.log(jnp.array([[[0.5, 0.5], [0.9, 0.1]]]))   # B=1, T=2, C=2
    >>> float(softmax_cross_entropy(logits, jnp.array([[0, 0]]), lengths=jnp.array([1])))
    0.6931...
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return masked_mean(losses, _mask_like(lengths, labels, losses.dtype))


def accuracy(logits, labels, lengths=None):
    """Fraction of valid steps whose argmax matches the label (shapes as for
    `softmax_cross_entropy`)."""
    hits = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return masked_mean(hits, _mask_like(lengths, labels))


def mse(predictions, targets, lengths=None):
    """Mean squared error over valid steps ([B, T, ...] with lengths, or any shape without)."""
    sq = (predictions - targets) ** 2
    return masked_mean(sq, _mask_like(lengths, targets, sq.dtype))


def bits_per_char(nats):
    """Mean nats per character (a mean cross-entropy in natural log) as bits per
    character, the unit character-level language models report: nats / ln 2.

    >>> round(float(bits_per_char(math.log(4.0))), 6)     # uniform over 4 characters
    2.0
    """
    return jnp.asarray(nats) / math.log(2.0)
