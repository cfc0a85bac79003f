"""The Newton unroll (`rnnjax.parallel.newton_unroll`) against the sequential loop
(`rj.unroll`), time against T.

A contractive GRU (recurrent_scale 0.5, largest Lyapunov exponent < 0: Newton
converges in a few iterations) of hidden size H on batch B, each iteration a full
(DEER) or diagonal (quasi-DEER) linearisation and an associative scan of depth
O(log T), against T dependent steps of the loop. Measured per (H, jacobian, mode)
and T: the median time of the forward pass and of forward + backward (the gradient
of sum(outputs) w.r.t. params and inputs; the Newton backward is one more
associative scan), the ratio sequential / Newton, the iterations taken, and the
crossover: the smallest T from which Newton is faster at every longer T measured.

    python -m benchmarks.parallel_newton            # T up to 10^5, H in {1,4,16,64}, B = 1
    python -m benchmarks.parallel_newton --quick    # ~2 min on a 2-core CPU

JSON lines to benchmarks/results/parallel_newton.jsonl, and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import jax

import rnnjax as rj
from benchmarks.parallel_scan import crossover
from benchmarks.timing import block, compile_fn, device_description, fwd_bwd, interleaved
from rnnjax import parallel

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "parallel_newton.jsonl")
INPUTS = 4
SCALE = 0.5


def measure(batch, hidden, steps, jacobian, mode, repeats, budget_s):
    cell = rj.GRU(hidden_size=hidden, recurrent_scale=SCALE)
    params = cell.init(jax.random.key(0), INPUTS)
    xs = jax.random.normal(jax.random.key(1), (batch, steps, INPUTS))
    newton = lambda p, xs: parallel.newton_unroll(cell, p, xs, jacobian=jacobian)[1]
    paths = {"sequential": lambda p, xs: rj.unroll(cell, p, xs)[1], "newton": newton}
    calls, compile_s = {}, {}
    for path, fn in paths.items():
        fn = fn if mode == "fwd" else fwd_bwd(fn)
        compiled, compile_s[path] = compile_fn(fn, params, xs)
        calls[path] = lambda compiled=compiled: block(compiled(params, xs))
    times = interleaved(calls, repeats, budget_s)
    stats = parallel.newton_unroll(cell, params, xs, jacobian=jacobian)[2]
    seq, new = (statistics.median(times[p]) for p in ("sequential", "newton"))
    return dict(cell="gru", scale=SCALE, B=batch, H=hidden, I=INPUTS, T=steps,
                jacobian=jacobian, mode=mode, sequential_ms=seq * 1e3, newton_ms=new * 1e3,
                speedup=seq / new, iterations=int(stats.iterations),
                residual=float(stats.residual), compile_s=compile_s,
                device=device_description(), loadavg=os.getloadavg()[0], jax=jax.__version__)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1, help="B (DEER's A100 table: 16)")
    ap.add_argument("--hidden", default="1,4,16,64", help="sizes H, comma-separated")
    ap.add_argument("--lengths", default="100,1000,10000,100000")
    ap.add_argument("--jacobians", default="full,diagonal")
    ap.add_argument("--modes", default="fwd,fwd+bwd")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=3.0)
    ap.add_argument("--max-gb", type=float, default=2.0,
                    help="skip a size whose [T, B, H, H] Jacobians alone exceed this (the "
                         "full scan holds several such arrays; the diagonal is read off "
                         "them, and the backward pass forms them in either mode)")
    ap.add_argument("--quick", action="store_true",
                    help="B=1, H in {1, 4}, T up to 10^4, fwd and fwd+bwd")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.hidden, args.lengths, args.repeats = 1, "1,4", "100,1000,10000", 3
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    rows = []
    for hidden in map(int, args.hidden.split(",")):
        for jacobian in args.jacobians.split(","):
            for mode in args.modes.split(","):
                group = []
                for steps in map(int, args.lengths.split(",")):
                    gb = steps * args.batch * hidden * hidden * 4 / 1e9
                    if gb > args.max_gb:
                        print(f"B={args.batch} H={hidden} {jacobian} T={steps}: skipped, its "
                              f"Jacobians alone take {gb:.1f} GB (--max-gb {args.max_gb})")
                        continue
                    row = measure(args.batch, hidden, steps, jacobian, mode, args.repeats,
                                  args.budget_s)
                    group.append(row)
                    print(f"B={args.batch} H={hidden} {jacobian:8s} {mode:8s} T={steps:6d}: "
                          f"sequential {row['sequential_ms']:9.2f} ms, newton "
                          f"{row['newton_ms']:9.2f} ms, x{row['speedup']:.3f} "
                          f"({row['iterations']} iterations)", flush=True)
                for row in group:
                    row["crossover_T"] = crossover(group)
                rows.extend(group)
                with open(args.out, "a") as f:
                    for row in group:
                        f.write(json.dumps(row) + "\n")
    print("\n| B x H | jacobian | mode | T | sequential, ms | newton, ms | speedup | "
          "iterations | crossover T |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['B']} x {row['H']} | {row['jacobian']} | {row['mode']} | {row['T']} | "
              f"{row['sequential_ms']:.2f} | {row['newton_ms']:.2f} | {row['speedup']:.3f} | "
              f"{row['iterations']} | {row['crossover_T']} |")


if __name__ == "__main__":
    main()
