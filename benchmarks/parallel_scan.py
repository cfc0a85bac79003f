"""The sequential scan against the associative (parallel) scan, time against T.

For a recurrence linear in the carry (`rj.LRU`, `rj.MinGRU`, `rj.MinLSTM`) `rj.unroll`
runs `jax.lax.associative_scan`: O(log T) sequential depth and about twice the
arithmetic of the sequential loop, against T dependent iterations of an XLA while
loop, each with a fixed overhead (benchmarks/scan_overhead.py) and only the
multiply-add h = a h + b inside (`parallel_scan=False`; the coefficients and outputs
of every step are computed outside the loop in both). Measured here, per
cell, size (B, H) and T: the median time of the forward pass and of forward +
backward (the gradient of sum(outputs) w.r.t. params and inputs), for the same cell
with `parallel_scan=True` and False, their ratio, and the crossover: the smallest T
from which the parallel scan is faster at every longer T measured.

    python -m benchmarks.parallel_scan            # ~5 min on a 2-core CPU
    python -m benchmarks.parallel_scan --quick    # ~1 min

JSON lines to benchmarks/results/parallel_scan.jsonl, and a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics

import jax

import rnnjax as rj
from benchmarks.timing import block, compile_fn, device_description, fwd_bwd, interleaved

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "parallel_scan.jsonl")
INPUTS = 8
CELLS = {"lru": lambda h: rj.LRU(h), "mingru": rj.MinGRU, "minlstm": rj.MinLSTM}


def crossover(rows):
    """The smallest T from which parallel beats sequential at every longer T, or None."""
    found = None
    for row in sorted(rows, key=lambda r: -r["T"]):
        if row["speedup"] <= 1.0:
            break
        found = row["T"]
    return found


def measure(cell_name, batch, hidden, steps, mode, repeats, budget_s):
    cell = CELLS[cell_name](hidden)
    params = cell.init(jax.random.key(0), INPUTS)
    xs = jax.random.normal(jax.random.key(1), (batch, steps, INPUTS))
    calls, compile_s = {}, {}
    for path, parallel in (("sequential", False), ("parallel", True)):
        model = dataclasses.replace(cell, parallel_scan=parallel)
        fn = lambda p, xs, model=model: rj.unroll(model, p, xs)[1]
        fn = fn if mode == "fwd" else fwd_bwd(fn)
        compiled, compile_s[path] = compile_fn(fn, params, xs)
        calls[path] = lambda compiled=compiled: block(compiled(params, xs))
    times = interleaved(calls, repeats, budget_s)
    seq, par = (statistics.median(times[p]) for p in ("sequential", "parallel"))
    return dict(cell=cell_name, B=batch, H=hidden, I=INPUTS, T=steps, mode=mode,
                sequential_ms=seq * 1e3, parallel_ms=par * 1e3, speedup=seq / par,
                compile_s=compile_s, device=device_description(),
                loadavg=os.getloadavg()[0], jax=jax.__version__)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default="lru,mingru")
    ap.add_argument("--sizes", default="1x16,16x256", help="BxH pairs, comma-separated")
    ap.add_argument("--lengths", default="16,64,256,1024,4096,16384")
    ap.add_argument("--modes", default="fwd,fwd+bwd")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--budget-s", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help="lru, 1x16 and 16x256, T up to 4096")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.cells, args.lengths, args.modes, args.repeats = "lru", "16,256,4096", "fwd+bwd", 5
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    rows = []
    for cell_name in args.cells.split(","):
        for size in args.sizes.split(","):
            batch, hidden = map(int, size.split("x"))
            for mode in args.modes.split(","):
                group = []
                for steps in map(int, args.lengths.split(",")):
                    row = measure(cell_name, batch, hidden, steps, mode, args.repeats,
                                  args.budget_s)
                    group.append(row)
                    print(f"{cell_name} B={batch} H={hidden} {mode:8s} T={steps:6d}: "
                          f"sequential {row['sequential_ms']:9.3f} ms, parallel "
                          f"{row['parallel_ms']:9.3f} ms, x{row['speedup']:.2f}", flush=True)
                for row in group:
                    row["crossover_T"] = crossover(group)
                rows.extend(group)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print("\n| cell | B x H | mode | T | sequential, ms | parallel, ms | speedup | crossover T |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['cell']} | {row['B']} x {row['H']} | {row['mode']} | {row['T']} | "
              f"{row['sequential_ms']:.3f} | {row['parallel_ms']:.3f} | {row['speedup']:.2f} | "
              f"{row['crossover_T']} |")


if __name__ == "__main__":
    main()
