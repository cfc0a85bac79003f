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
