"""The fixed cost of one step of the time loop, apart from the step's arithmetic.

A recurrent layer over T steps runs T iterations of an XLA while loop (2T with the
backward). Each iteration costs the step's work plus a fixed overhead (loop control,
slicing the step's input, writing its outputs, launching its kernels on a GPU). For
small B*H the overhead is the whole cost. Measured here on a model so small that its
arithmetic is negligible, as the slope of time against T between two lengths:

  per-step = (time(T2) - time(T1)) / (T2 - T1)

for: `lax.scan` of a scalar-sized body (the loop floor), and `rj.unroll` of an LSTM
and a GRU (B=1, I=H=4) forward, and fwd+bwd with the fast path (the loop rule's
hand-written backward, `use_loop_rule=True`) and with autodiff of the generic scan
(`use_loop_rule=False`).

    python -m benchmarks.scan_overhead            # ~1 min on a 2-core CPU

JSON lines to benchmarks/results/scan_overhead.jsonl, and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import jax
import jax.numpy as jnp
from jax import lax

import rnnjax as rj
from benchmarks.timing import compile_fn, device_description, fwd_bwd, time_fn

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "scan_overhead.jsonl")
B, I, H = 1, 4, 4


def _loop_floor(xs):
    """The cheapest step: h <- 0.5 h + x_t, outputs h."""
    return lax.scan(lambda h, x_t: (0.5 * h + x_t, h), jnp.zeros(xs.shape[1:]), xs)[1]


def programs():
    """name -> (fn(params, xs [B, T, I]), params)."""
    out = {"lax.scan floor, fwd": (lambda p, xs: _loop_floor(jnp.swapaxes(xs, 0, 1)), {})}
    for cell_name, make in (("lstm", rj.LSTM), ("gru", rj.GRU)):
        for use_loop_rule in (True, False):
            cell = make(H, use_loop_rule=use_loop_rule)
            params = cell.init(jax.random.key(0), I)
            fwd = lambda p, xs, cell=cell: rj.unroll(cell, p, xs)[1]
            if use_loop_rule:
                out[f"{cell_name}, fwd"] = (fwd, params)
            path = "fast path" if use_loop_rule else "autodiff"
            out[f"{cell_name} {path}, fwd+bwd"] = (fwd_bwd(fwd), params)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs=2, default=(2000, 32000), metavar=("T1", "T2"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--budget-s", type=float, default=3.0)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    device = device_description()
    t1, t2 = args.lengths
    rows = []
    for name, (fn, params) in programs().items():
        medians = {}
        for steps in (t1, t2):
            xs = jax.random.normal(jax.random.key(1), (B, steps, I))
            compiled, _compile_s = compile_fn(fn, params, xs)
            medians[steps] = statistics.median(time_fn(compiled, (params, xs), args.repeats,
                                                       args.budget_s))
        per_step = (medians[t2] - medians[t1]) / (t2 - t1)
        row = dict(program=name, B=B, I=I, H=H, T1=t1, T2=t2, median_s_T1=medians[t1],
                   median_s_T2=medians[t2], per_step_us=per_step * 1e6,
                   device=device,
                   loadavg=os.getloadavg()[0], jax=jax.__version__)
        rows.append(row)
        print(f"{name:34s} per step {row['per_step_us']:7.2f} us", flush=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"\n| program (B={B}, I=H={H}) | T={t1}, ms | T={t2}, ms | per step, us |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['program']} | {row['median_s_T1'] * 1e3:.2f} | "
              f"{row['median_s_T2'] * 1e3:.2f} | {row['per_step_us']:.2f} |")


if __name__ == "__main__":
    main()
