"""`--long`: backpropagation through long sequences, remat=True against plain autodiff.

LSTM, B=8, I=32, H=128, fwd+bwd, for `rj.unroll(..., remat=...)` and for a reference,
`scan-in-step`: a plain `lax.scan` of the whole cell step (the input matmul inside
the step, `jax.checkpoint` on the step with remat). At the first T every program is
timed; past it only the compiled memory (compiling costs no more at larger T), and
the time of rnnjax with remat when the first T predicts at most `max_s` per call.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from jax import lax

import rnnjax as rj
from benchmarks.timing import compile_fn, fwd_bwd, memory, time_fn

B, I, H = 8, 32, 128


def scan_in_step(cell, params, xs, remat):
    """A plain `lax.scan` of `cell(params, carry, x_t)`, the input matmul inside the step
    (as flax, equinox and haiku do it), `jax.checkpoint` on the step when `remat`.
    Batch-major in and out."""
    def body(carry, x):
        return cell(params, carry, x)
    if remat:
        body = jax.checkpoint(body)
    carry = cell.initial_carry((xs.shape[0],), xs.dtype)
    return jnp.swapaxes(lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))[1], 0, 1)


IMPLEMENTATIONS = {
    "rnnjax": lambda cell, remat: (lambda p, x: rj.unroll(cell, p, x, remat=remat)[1]),
    "scan-in-step": lambda cell, remat: (lambda p, x: scan_in_step(cell, p, x, remat)),
}


def run(key, record, lengths, repeats, budget_s, max_s):
    """Time and compiled memory of each implementation with and without remat at each
    T in `lengths`; `record(**row)` writes a row and returns it. Prints a table."""
    cell = rj.LSTM(H)
    k_p, k_x = jax.random.split(jax.random.fold_in(key, 10_000))
    params = cell.init(k_p, I)
    per_step_s = {}                                    # {(impl, remat): s per time step}
    rows = []
    for steps in lengths:
        xs = jax.random.normal(k_x, (B, steps, I))
        first = steps == lengths[0]
        for impl, make in IMPLEMENTATIONS.items():
            for remat in (False, True):
                compiled, compile_s = compile_fn(fwd_bwd(make(cell, remat)), params, xs)
                mem = memory(compiled)
                predicted = None if first else per_step_s.get((impl, remat))
                predicted = None if predicted is None else predicted * steps
                timed = first or (impl == "rnnjax" and remat and predicted is not None
                                  and predicted <= max_s)
                times = time_fn(compiled, (params, xs), min(repeats, 5),
                                max(budget_s, 10.0)) if timed else []
                median = statistics.median(times) if times else None
                row = record(library=impl, cell="lstm", mode="fwd+bwd", study="long",
                             B=B, T=steps, I=I, H=H, remat=remat,
                             median_ms=None if median is None else median * 1e3,
                             min_ms=min(times) * 1e3 if times else None,
                             compile_s=compile_s, repeats=len(times),
                             predicted_s=predicted, **mem)
                if first and times:
                    per_step_s[(impl, remat)] = median / steps
                rows.append(row)
                ms = "not timed" if not times else \
                    f"median {row['median_ms']:9.1f} ms x{len(times)}"
                if not times and predicted is not None:
                    ms += f" (predicted {predicted:.1f} s)"
                print(f"  T={steps:6d} {impl:12s} remat={remat!s:5s} {ms}  "
                      f"compile {compile_s:5.2f} s  temp {_mb(mem.get('temp_bytes'))} MB",
                      flush=True)
    print_table(rows)
    return rows


def print_table(rows):
    print("\n| T | implementation | remat | median ms | temp MB | argument MB | output MB "
          "| compile s |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ms = "-" if r["median_ms"] is None else f"{r['median_ms']:.1f}"
        print(f"| {r['T']} | {r['library']} | {r['remat']} | {ms} | "
              f"{_mb(r.get('temp_bytes'))} | {_mb(r.get('argument_bytes'))} | "
              f"{_mb(r.get('output_bytes'))} | {r['compile_s']:.2f} |")
    print("temp: XLA's temp buffers of the compiled fwd+bwd program (memory_analysis); "
          "argument: params + xs; output: the gradients. scan-in-step: lax.scan of the "
          "whole cell step (input matmul inside, checkpointed with remat)")


def _mb(n):
    return "-" if n is None else f"{n / 2**20:.1f}"
