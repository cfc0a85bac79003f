"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time

import jax


def block(x):
    """Wait for every array in x (JAX dispatch is asynchronous)."""
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), x)


def compile_fn(fn, *args):
    """Compile `fn` for `args` ahead of time: (compiled, compile seconds)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def time_fn(compiled, args, repeats, budget_s):
    """A warm-up call, then up to `repeats` timed calls: stop after 3 once `budget_s`
    is spent, and time only 1 if the warm-up alone took longer. Returns the times."""
    start = time.perf_counter()
    block(compiled(*args))
    warm = time.perf_counter() - start
    times = []
    if warm > budget_s:
        repeats = 1
    for i in range(repeats):
        start = time.perf_counter()
        block(compiled(*args))
        times.append(time.perf_counter() - start)
        if i >= 2 and sum(times) > budget_s:
            break
    return times
