"""The timing harness every benchmark uses: compile ahead, time calls, read compiled memory."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp

# A pause before each timed call when several calls alternate, so that the previous
# one's worker threads (XLA's and torch's OpenMP threads spin for a while after their
# work) are idle again: right after a JAX call a torch call measured ~15% slower.
PAUSE_S = 0.02


def block(x):
    """Wait for every array in x (JAX dispatch is asynchronous)."""
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), x)


def compile_fn(fn, *args):
    """Compile `fn` for `args` ahead of time: (compiled, compile seconds)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def fwd_bwd(fn):
    """The fwd+bwd program of `fn(w, xs)`: d sum(fn(w, xs)) w.r.t. (w, xs), what
    torch's `backward()` computes for a module and its input."""
    return jax.grad(lambda w, xs: jnp.sum(fn(w, xs)), argnums=(0, 1))


def memory(compiled):
    """XLA's buffer assignment of a compiled program (what it allocates, not a measured
    RSS): temp, argument, output and peak bytes; {} where the backend has none."""
    try:
        m = compiled.memory_analysis()
    except Exception:                                   # not every backend has it
        return {}
    if m is None:
        return {}
    fields = (("temp_bytes", "temp_size_in_bytes"), ("argument_bytes", "argument_size_in_bytes"),
              ("output_bytes", "output_size_in_bytes"), ("peak_bytes", "peak_memory_in_bytes"))
    values = {field: getattr(m, attr, None) for field, attr in fields}
    return {field: None if v is None else int(v) for field, v in values.items()}


def interleaved(calls, repeats, budget_s, warmups=None):
    """Time several calls against each other: `warmups[name]` warm-up calls each (1 by
    default; fewer once one takes longer than `budget_s`), then rounds in which every
    call still running is timed once, so that a change in machine load hits all of
    them alike. A call stops after `repeats` times, or after 3 once its times add up
    to `budget_s` (after 1 when a warm-up call alone took longer). {name: [s, ...]}."""
    warmups = warmups or {}
    limit = {}
    for name, call in calls.items():
        warm = 0.0
        for _ in range(warmups.get(name, 1)):
            start = time.perf_counter()
            call()
            warm = time.perf_counter() - start
            if warm > budget_s:
                break
        limit[name] = 1 if warm > budget_s else repeats
    times = {name: [] for name in calls}
    running = list(calls)
    while running:
        for name in list(running):
            if len(calls) > 1:
                time.sleep(PAUSE_S)
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
            n = len(times[name])
            if n >= limit[name] or (n >= 3 and sum(times[name]) > budget_s):
                running.remove(name)
    return times


def time_fn(compiled, args, repeats, budget_s):
    """`compiled(*args)` timed alone by `interleaved`: a warm-up call, then up to
    `repeats` calls (see there). Returns the times in seconds."""
    return interleaved({"f": lambda: block(compiled(*args))}, repeats, budget_s)["f"]


def device_description():
    """Where the timings ran, e.g. "cpu:cpu (2 cpus, x86_64)"."""
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} ({os.cpu_count()} cpus, {platform.machine()})"
