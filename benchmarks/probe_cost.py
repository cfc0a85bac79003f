"""Cost of the one-pass gradient-norm probe against a plain backward pass and the naive probe.

The one-pass probe (`probe.hidden_grad_norms`) is designed to cost at most 3x one
plain backward pass, against the naive O(T^2) probe (T separate backward passes).
For each cell and each T this times, jitted, with a median over repeats after a
warm-up call (compile time measured separately, from `jit(...).lower(...).compile()`):

  backward  `jax.grad` w.r.t. params of loss(rj.unroll(cell, params, xs)[1])
  probe     `probe.hidden_grad_norms(cell, params, xs, loss)`
  naive     T backward passes in one compiled program (`lax.map` over k, sequential):
            for each k run the prefix to h_k, then differentiate the suffix (later
            steps and the loss) w.r.t. h_k. Equal to `probe.naive_hidden_grad_norms`
            (checked to 1e-5 before timing), which is a Python loop of T programs.

loss(ys) = mean over the batch of sum over time of ys @ w, w a fixed [H] vector, so
every step's output feeds the loss.

Where the full naive probe is predicted to take over `--naive-max-s` seconds (from a
timed subset of k), only that subset of k is timed and the figure is extrapolated
linearly in the number of k (every k costs the same here: all scans are full-length
and masked); such rows say `"extrapolated": true`.

    python -m benchmarks.probe_cost            # all cells, T in {64, 256, 1024}
    python -m benchmarks.probe_cost --quick    # tanh only, T in {64, 256}

Writes one JSON object per measurement to benchmarks/results/probe_cost.jsonl and
prints a table with the ratios probe/backward and naive/probe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import rnnjax as rj
from benchmarks.timing import compile_fn, device_description, time_fn
from rnnjax import probe

CELL_MAKERS = {
    "tanh": lambda h: rj.SimpleRNN(hidden_size=h),            # tanh by default
    "lstm": lambda h: rj.LSTM(hidden_size=h),
    "gru": lambda h: rj.GRU(hidden_size=h),
}

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "probe_cost.jsonl")


# -- the three computations ---------------------------------------------------------

def make_loss(hidden, key):
    """loss(ys [B, T, H]) = mean_b sum_t ys[b, t] @ w."""
    w = jax.random.normal(key, (hidden,)) / math.sqrt(hidden)
    return lambda ys: jnp.mean(jnp.sum(ys @ w, axis=1))


def make_backward(cell, loss_fn):
    def loss_of_params(params, xs):
        return loss_fn(rj.unroll(cell, params, xs)[1])
    return jax.jit(jax.grad(loss_of_params))


def make_probe(cell, loss_fn):
    return jax.jit(lambda params, xs: probe.hidden_grad_norms(cell, params, xs, loss_fn))


def naive_norms(cell, params, xs, loss_fn, ks, map_batch=None):
    """||dL/dh_k|| for each k in `ks`, one backward pass per k: [len(ks), B].

    The jittable form of `probe.naive_hidden_grad_norms`: `lax.map` over k (one k at a
    time unless `map_batch`), each k a full-length masked scan for the prefix (carry
    frozen after step k) and a full-length masked scan for the suffix differentiated
    w.r.t. h_k (carry frozen up to step k).
    """
    batch, steps = xs.shape[:2]
    carry0 = cell.initial_carry((batch,), xs.dtype)
    xp = jnp.swapaxes(cell.project_inputs(params, xs), 0, 1)      # [T, B, G*H]
    ts = jnp.arange(steps)

    def masked_scan(carry, active):
        def body(c, inputs):
            xp_t, on = inputs
            new, y = cell.step(params, c, xp_t)
            c = jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), new, c)
            return c, jnp.where(on, y, jnp.zeros_like(y))
        return lax.scan(body, carry, (xp, active))

    def one_k(k):
        carry_k, ys_head = masked_scan(carry0, ts <= k)              # prefix: steps 0..k
        carry_k = lax.stop_gradient(carry_k)
        ys_head = lax.stop_gradient(ys_head)                         # [T, B, H]

        def loss_of_h(h_k):
            _, ys_tail = masked_scan(cell.replace_hidden(carry_k, h_k), ts > k)
            t = ts[:, None, None]
            ys = jnp.where(t < k, ys_head, jnp.where(t == k, h_k[None], ys_tail))
            return loss_fn(jnp.swapaxes(ys, 0, 1))

        g = jax.grad(loss_of_h)(cell.hidden(carry_k))                # [B, H]
        return jnp.linalg.norm(g, axis=-1)                           # [B]

    return lax.map(one_k, ks, batch_size=map_batch)


def make_naive(cell, loss_fn, map_batch=None):
    return jax.jit(lambda params, xs, ks: naive_norms(cell, params, xs, loss_fn, ks,
                                                      map_batch))


def check_naive(cell_name, hidden, key):
    """The jitted naive probe equals `probe.naive_hidden_grad_norms` (and the one-pass
    probe) on a small case, to 1e-5."""
    cell = CELL_MAKERS[cell_name](hidden)
    k_p, k_x, k_w = jax.random.split(key, 3)
    params = cell.init(k_p, 3)
    xs = jax.random.normal(k_x, (2, 9, 3))
    loss_fn = make_loss(hidden, k_w)
    reference = probe.naive_hidden_grad_norms(cell, params, xs, loss_fn)     # [B, T]
    ours = make_naive(cell, loss_fn)(params, xs, jnp.arange(9)).T            # [B, T]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    one_pass = probe.hidden_grad_norms(cell, params, xs, loss_fn, per_example=True)
    np.testing.assert_allclose(one_pass, reference, rtol=1e-5, atol=1e-6)
    err = float(jnp.max(jnp.abs(ours - reference) / (jnp.abs(reference) + 1e-6)))
    return err


# -- the run -------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="tanh only, T in {64, 256}")
    ap.add_argument("--cells", nargs="+", choices=sorted(CELL_MAKERS),
                    default=["tanh", "lstm", "gru"])
    ap.add_argument("--steps", nargs="+", type=int, default=[64, 256, 1024])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=20,
                    help="timed calls of backward and probe (fewer past --budget-s)")
    ap.add_argument("--naive-repeats", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=3.0,
                    help="stop repeating a measurement after 3 calls once this is spent")
    ap.add_argument("--naive-max-s", type=float, default=60.0,
                    help="time only a subset of k (and extrapolate) when the full naive "
                         "probe is predicted to take longer than this")
    ap.add_argument("--naive-subset", type=int, default=64,
                    help="number of k timed first to predict the full naive probe")
    ap.add_argument("--naive-map-batch", type=int, default=None,
                    help="lax.map batch_size for the naive probe (default: one k at a "
                         "time, i.e. T sequential backward passes)")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.cells, args.steps = ["tanh"], [s for s in args.steps if s <= 256] or [64, 256]

    device_name = device_description()
    common = dict(B=args.batch, H=args.hidden, F=args.input, device=device_name,
                  jax_version=jax.__version__)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    print(f"jax {jax.__version__} on {device_name}; B={args.batch} H={args.hidden} "
          f"F={args.input}; writing {args.out}", flush=True)

    key = jax.random.key(args.seed)
    if not args.skip_naive:
        for name in args.cells:
            err = check_naive(name, 5, jax.random.fold_in(key, 99))
            print(f"check {name}: jitted naive == probe.naive_hidden_grad_norms == "
                  f"one-pass probe (max rel err {err:.1e})", flush=True)

    rows = []
    with open(args.out, "w") as out:
        def record(**row):
            row = {**row, **common}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            extra = f" (extrapolated from {row['k_timed']} of {row['T']} k)" \
                if row.get("extrapolated") else ""
            print(f"  {row['cell']:5s} T={row['T']:5d} {row['what']:8s} "
                  f"median {row['median_s'] * 1e3:10.2f} ms  compile {row['compile_s']:6.2f} s"
                  f"  x{row['repeats']}{extra}", flush=True)

        for name in args.cells:
            cell = CELL_MAKERS[name](args.hidden)
            cell_key = jax.random.fold_in(key, list(CELL_MAKERS).index(name))
            k_p, k_x, k_w = jax.random.split(cell_key, 3)
            params = cell.init(k_p, args.input)
            loss_fn = make_loss(args.hidden, k_w)
            backward = make_backward(cell, loss_fn)
            one_pass = make_probe(cell, loss_fn)
            naive = make_naive(cell, loss_fn, args.naive_map_batch)
            for steps in args.steps:
                xs = jax.random.normal(k_x, (args.batch, steps, args.input))
                base = dict(cell=name, T=steps)
                for what, fn in (("backward", backward), ("probe", one_pass)):
                    compiled, compile_s = compile_fn(fn, params, xs)
                    times = time_fn(compiled, (params, xs), args.repeats, args.budget_s)
                    record(**base, what=what, median_s=statistics.median(times),
                           min_s=min(times), compile_s=compile_s, repeats=len(times),
                           extrapolated=False, k_timed=steps)
                if args.skip_naive:
                    continue
                # naive: time a subset of k first; the full program if it is cheap enough
                subset = min(args.naive_subset, steps)
                ks = jnp.linspace(0, steps - 1, subset).round().astype(jnp.int32)
                compiled, compile_s = compile_fn(naive, params, xs, ks)
                times = time_fn(compiled, (params, xs, ks), args.naive_repeats,
                                max(args.budget_s, 15.0))
                per_k = statistics.median(times) / subset
                if subset < steps and per_k * steps <= args.naive_max_s:
                    ks = jnp.arange(steps, dtype=jnp.int32)
                    compiled, compile_s = compile_fn(naive, params, xs, ks)
                    times = time_fn(compiled, (params, xs, ks), args.naive_repeats,
                                    max(args.budget_s, 15.0))   # one repeat past 15 s
                    subset, per_k = steps, statistics.median(times) / steps
                record(**base, what="naive", median_s=per_k * steps,
                       min_s=min(times) / subset * steps, compile_s=compile_s,
                       repeats=len(times), extrapolated=subset < steps, k_timed=subset)

    print_table(rows)
    return rows


def print_table(rows):
    by = {(r["cell"], r["T"], r["what"]): r for r in rows}
    keys = sorted({(r["cell"], r["T"]) for r in rows},
                  key=lambda ct: (list(CELL_MAKERS).index(ct[0]), ct[1]))
    print()
    print("| cell | T | backward ms | probe ms | naive ms | probe/backward | naive/probe |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cell, steps in keys:
        b, p = by[(cell, steps, "backward")], by[(cell, steps, "probe")]
        n = by.get((cell, steps, "naive"))
        naive_ms = "-" if n is None else \
            f"{n['median_s'] * 1e3:.1f}" + ("*" if n["extrapolated"] else "")
        naive_ratio = "-" if n is None else f"{n['median_s'] / p['median_s']:.0f}"
        print(f"| {cell} | {steps} | {b['median_s'] * 1e3:.2f} | {p['median_s'] * 1e3:.2f} | "
              f"{naive_ms} | {p['median_s'] / b['median_s']:.2f} | {naive_ratio} |")
    if any(r.get("extrapolated") for r in rows):
        print("* naive extrapolated linearly from a subset of k (see k_timed in the JSON)")


if __name__ == "__main__":
    main()
