"""A linear-chain conditional random field over per-step tag scores.

For emissions E [B, T, K] (the score of each of K tags at each step, e.g. a tagger's
logits) and transitions A [K, K] (A[i, j]: the score of tag i followed by tag j), a
tag sequence y of length n scores

    s(y) = start[y_0] + sum_{j<n} E[j, y_j] + sum_{j<n-1} A[y_j, y_{j+1}] + end[y_{n-1}]

(`start` and `end` [K] are optional keyword arguments, zero when left out), and the
CRF gives it probability exp(s(y)) / Z with Z = sum over all K^n sequences of
exp(s(y)). `log_partition` computes log Z by the forward algorithm in log space,
`viterbi` the best sequence by max-sum with backpointers; both scan over time with
`lax.scan`, so a sequence of any length costs T steps of O(B K^2).

Lengths: `lengths` [B] ints in [0, T] (None: every sequence has length T). Steps at
or past a sequence's length are ignored: their emissions and tags never reach a
result. A sequence of length 0 has one tag sequence, the empty one, of score 0 (no
start or end score either): its log Z, score and nll are 0, and Viterbi gives it
score 0. Viterbi's tags past a sequence's length are 0.

Every function is pure, jit- and vmap-able, and computes in the dtype of its float
inputs promoted together (float32 by default; float64 under `jax.enable_x64`).

>>> import jax.numpy as jnp
>>> emissions = jnp.log(jnp.array([[[1.0, 3.0], [2.0, 2.0]]]))   # B=1, T=2, K=2
>>> transitions = jnp.zeros((2, 2))
>>> float(log_partition(emissions, transitions)[0])              # log((1 + 3) * (2 + 2))
2.772...
>>> tags, score = viterbi(emissions, transitions)
>>> tags.tolist()
[[1, 0]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax import _checks

__all__ = ["log_partition", "nll", "sequence_score", "viterbi"]


def log_partition(emissions, transitions, lengths=None, *, start=None, end=None):
    """log Z [B]: the log of the summed exp-scores of every tag sequence of each
    sequence's length (forward algorithm, logsumexp at each step)."""
    emissions, transitions, lengths, start, end = _checked(emissions, transitions, lengths,
                                                           start, end)
    return _log_partition(emissions, transitions, lengths, start, end)


def sequence_score(emissions, transitions, tags, lengths=None, *, start=None, end=None):
    """s(y) [B]: the score of the tag sequences `tags` int [B, T] (values past a
    sequence's length are ignored)."""
    emissions, transitions, lengths, start, end = _checked(emissions, transitions, lengths,
                                                           start, end)
    tags = _checked_tags(tags, emissions.shape, lengths)
    return _sequence_score(emissions, transitions, tags, lengths, start, end)


def nll(emissions, transitions, tags, lengths=None, *, start=None, end=None):
    """-log p(tags) [B] = log Z - s(tags): the CRF's training loss per sequence (>= 0)."""
    emissions, transitions, lengths, start, end = _checked(emissions, transitions, lengths,
                                                           start, end)
    tags = _checked_tags(tags, emissions.shape, lengths)
    return (_log_partition(emissions, transitions, lengths, start, end)
            - _sequence_score(emissions, transitions, tags, lengths, start, end))


def viterbi(emissions, transitions, lengths=None, *, start=None, end=None):
    """The best tag sequence of each sequence and its score: (tags int32 [B, T], score
    [B]). Tags past a sequence's length are 0. Ties go to the lower tag id."""
    emissions, transitions, lengths, start, end = _checked(emissions, transitions, lengths,
                                                           start, end)
    return _viterbi(emissions, transitions, lengths, start, end)


# -- the algorithms (inputs checked; lengths an int32 [B] array) ---------------------------
@jax.jit
def _log_partition(emissions, transitions, lengths, start, end):
    steps = emissions.shape[1]
    time_major = jnp.swapaxes(emissions, 0, 1)                     # [T, B, K]

    def forward(alpha, inputs):
        t, emission = inputs
        # alpha [B, K]: log of the summed exp-scores of every prefix ending in each tag
        new = jax.nn.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        return jnp.where((t < lengths)[:, None], new, alpha), None

    alpha, _ = lax.scan(forward, start[None] + time_major[0],
                        (jnp.arange(1, steps), time_major[1:]))
    return jnp.where(lengths > 0, jax.nn.logsumexp(alpha + end[None], axis=-1), 0.0)


@jax.jit
def _sequence_score(emissions, transitions, tags, lengths, start, end):
    steps = emissions.shape[1]
    valid = jnp.arange(steps)[None, :] < lengths[:, None]           # [B, T]
    tags = jnp.where(valid, tags, 0)
    emitted = jnp.take_along_axis(emissions, tags[..., None], axis=-1)[..., 0]
    moved = transitions[tags[:, :-1], tags[:, 1:]]                  # [B, T-1]
    last = jnp.take_along_axis(tags, jnp.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    ends = start[tags[:, 0]] + end[last]
    return (jnp.sum(jnp.where(valid, emitted, 0.0), axis=1)
            + jnp.sum(jnp.where(valid[:, 1:], moved, 0.0), axis=1)
            + jnp.where(lengths > 0, ends, 0.0))


@jax.jit
def _viterbi(emissions, transitions, lengths, start, end):
    batch, steps, tags_count = emissions.shape
    time_major = jnp.swapaxes(emissions, 0, 1)
    stay = jnp.broadcast_to(jnp.arange(tags_count, dtype=jnp.int32), (batch, tags_count))

    def forward(delta, inputs):
        t, emission = inputs
        # delta [B, K]: the best score of a prefix ending in each tag
        candidates = delta[:, :, None] + transitions[None]           # [B, from, to]
        best_from = jnp.argmax(candidates, axis=1).astype(jnp.int32)
        new = jnp.max(candidates, axis=1) + emission
        live = (t < lengths)[:, None]
        # past a length the path stays on its tag, so the backtrace passes through
        return jnp.where(live, new, delta), jnp.where(live, best_from, stay)

    delta, backpointers = lax.scan(forward, start[None] + time_major[0],
                                   (jnp.arange(1, steps), time_major[1:]))
    final = delta + end[None]
    last = jnp.argmax(final, axis=-1).astype(jnp.int32)

    def backtrace(tag, pointers):
        # tag: the best path's tag at step t+1; pointers [B, K] into step t
        return jnp.take_along_axis(pointers, tag[:, None], axis=1)[:, 0], tag

    first, later = lax.scan(backtrace, last, backpointers, reverse=True)
    tags = jnp.concatenate([first[None], later], axis=0).T          # [B, T]
    valid = jnp.arange(steps)[None, :] < lengths[:, None]
    return (jnp.where(valid, tags, 0).astype(jnp.int32),
            jnp.where(lengths > 0, jnp.max(final, axis=-1), 0.0))


# -- input checks ---------------------------------------------------------------------------
def _checked(emissions, transitions, lengths, start, end):
    emissions = _checks.float_array("emissions", emissions, rank=3, layout="[B, T, K]")
    batch, steps, tags_count = emissions.shape
    if steps == 0 or tags_count == 0:
        raise ValueError(f"emissions must have at least one step and one tag (shape "
                         f"[B, T, K] with T, K >= 1), got shape {tuple(emissions.shape)}")
    transitions = _checks.float_array("transitions", transitions, rank=2,
                                      layout="[K, K] (from, to)")
    if transitions.shape != (tags_count, tags_count):
        raise ValueError(f"transitions must have shape ({tags_count}, {tags_count}) (K = "
                         f"{tags_count} tags, from emissions {tuple(emissions.shape)}), "
                         f"got shape {tuple(transitions.shape)}")
    dtype = jnp.result_type(emissions.dtype, transitions.dtype)
    vectors = []
    for name, vector in (("start", start), ("end", end)):
        if vector is None:
            vectors.append(jnp.zeros((tags_count,), dtype))
            continue
        vector = _checks.float_array(name, vector, rank=1, layout="[K]")
        if vector.shape != (tags_count,):
            raise ValueError(f"{name} must have shape ({tags_count},) (one score per tag), "
                             f"got shape {tuple(vector.shape)}")
        dtype = jnp.result_type(dtype, vector.dtype)
        vectors.append(vector)
    start, end = (v.astype(dtype) for v in vectors)
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    else:
        lengths = _checked_lengths(lengths, batch, steps)
    return emissions.astype(dtype), transitions.astype(dtype), lengths, start, end


def _checked_lengths(lengths, batch: int, steps: int):
    shape = tuple(np.shape(lengths))
    if shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one length per sequence), "
                         f"got shape {shape}")
    dtype = lengths.dtype if hasattr(lengths, "dtype") else np.asarray(lengths).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"lengths must be an integer array, got dtype {dtype}")
    _checks.values_in_range(lengths, 0, steps,
                            f"lengths must lie in [0, {steps}] (T = {steps}), got values in ")
    return jnp.asarray(lengths, jnp.int32)


def _checked_tags(tags, emissions_shape, lengths):
    batch, steps, tags_count = emissions_shape
    shape = tuple(np.shape(tags))
    if shape != (batch, steps):
        raise ValueError(f"tags must have shape ({batch}, {steps}) ([B, T] as emissions "
                         f"{tuple(emissions_shape)}), got shape {shape}")
    dtype = tags.dtype if hasattr(tags, "dtype") else np.asarray(tags).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"tags must be an integer array, got dtype {dtype}")
    if _checks.is_concrete(tags) and _checks.is_concrete(lengths) and np.size(tags):
        valid = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
        values = np.asarray(tags)[valid]
        if values.size and (values.min() < 0 or values.max() >= tags_count):
            raise ValueError(f"tags must lie in [0, {tags_count - 1}] (K = {tags_count}) "
                             f"within each sequence's length, got values in "
                             f"[{values.min()}, {values.max()}]")
    return jnp.asarray(tags, jnp.int32)
