"""One dispatch from a model's declared `Strategy` to the loop that runs it.

`run` is the time-major loop of every model: a composite runs its parts itself
(each through `run` again); a cell goes to the strategy it declares, after the
bookkeeping they share: reading each sequence backwards within its length.
"""

from __future__ import annotations

from rnnjax.cells.base import Strategy
from rnnjax.loop import associative, rules, scan
from rnnjax.loop.masking import restarts_read_backwards, reverse_within_lengths
from rnnjax.loop.protocol import check_once

#: the loop of each cell strategy: run(cell, params, xs, carry, *, lengths, resets,
#: flip, unroll, remat) -> (final carry, ys), all time-major and in reading order
STRATEGIES = {
    Strategy.SCAN: scan.run,
    Strategy.LOOP_RULE: rules.run,
    Strategy.LINEAR: associative.run,
}


def run(model, params, xs, carry, *, lengths=None, reverse=False, unroll=1, remat=False,
        key=None, resets=None):
    """(final carry, ys [T, B, H]) of `model` over time-major xs [T, B, F], checked
    already (`rj.unroll` is the checked entry): lengths [B] int32 or None, resets
    [T, B] bool or None in input order, key for a `Stacked`'s dropout."""
    if model.strategy is Strategy.COMPOSITE:
        return model.unroll_time_major(params, xs, carry, lengths=lengths, reverse=reverse,
                                       unroll=unroll, remat=remat, key=key, resets=resets)
    check_once(model, xs.shape[-1])   # a user's cell inside a Stacked or Bidirectional
    loop = STRATEGIES[model.strategy]
    if resets is not None and reverse:
        resets = restarts_read_backwards(resets)
    if reverse and lengths is not None:
        xs = reverse_within_lengths(xs, lengths)
        resets = None if resets is None else reverse_within_lengths(resets, lengths)
    carry, ys = loop(model, params, xs, carry, lengths=lengths, resets=resets,
                     flip=reverse and lengths is None, unroll=unroll, remat=remat)
    if reverse and lengths is not None:
        ys = reverse_within_lengths(ys, lengths)
    return carry, ys
