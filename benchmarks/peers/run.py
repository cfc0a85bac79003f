"""`python -m benchmarks.peers`: the flags, the configurations, the timed rounds, the JSON lines."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import time

import jax

import benchmarks.peers
from benchmarks.peers import long_sequences
from benchmarks.peers.builders import (
    CELLS,
    JAX_BUILDERS,
    LIBRARIES,
    PEER_VARIANT,
    available_libraries,
    build_rnnjax,
    build_torch,
    rj_cell,
)
from benchmarks.peers.calls import MODES, jax_call, torch_call
from benchmarks.peers.check import check_equivalence
from benchmarks.peers.tables import print_config_table, print_summary
from benchmarks.timing import device_description, interleaved

CONFIGS = [(32, 128, 64, 256), (32, 128, 64, 64), (128, 64, 128, 512),
           (8, 512, 32, 128)]                                          # (B, T, I, H)
BENCHMARKS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(BENCHMARKS, "results", "peers.jsonl")
TORCH_WARMUPS = {"torch": 2, "torch1": 2}


def sweep_configs():
    """B=32, T=128, I=64, H=128 with T, B and H varied one at a time."""
    configs = [(32, t, 64, 128) for t in (32, 128, 512)]
    configs += [(b, 128, 64, 128) for b in (8, 32, 128)]
    configs += [(32, 128, 64, h) for h in (64, 256, 512)]
    return list(dict.fromkeys(configs))              # 8 unique (B=32, T=128 twice)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers",
                                 description=benchmarks.peers.__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="first config, LSTM, fwd+bwd")
    ap.add_argument("--sweep", action="store_true",
                    help="the T, B and H sweeps (B=32, T=128, I=64, H=128 varied one at "
                         "a time) instead of the four default configs")
    ap.add_argument("--long", action="store_true",
                    help="only the long-sequence study: remat vs plain BPTT, T=10,000 "
                         "(and 100,000)")
    ap.add_argument("--configs", nargs="+", metavar="B,T,I,H",
                    type=lambda v: tuple(int(n) for n in v.split(",")),
                    help="configurations to run instead of the default four (or the sweep)")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=CELLS)
    ap.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    ap.add_argument("--libs", nargs="+", choices=LIBRARIES, default=LIBRARIES)
    ap.add_argument("--repeats", type=int, default=20,
                    help="timed calls per measurement (at least 3; fewer past --budget-s)")
    ap.add_argument("--budget-s", type=float, default=2.5,
                    help="stop repeating a measurement after 3 calls once this is spent")
    ap.add_argument("--long-steps", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--long-max-s", type=float, default=10.0,
                    help="time remat at T > 10,000 only when predicted to take at most "
                         "this many seconds per fwd+bwd call")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.cells, args.modes = ["lstm"], ["fwd+bwd"]
    args.configs = args.configs or (sweep_configs() if args.sweep else CONFIGS)
    if args.quick:
        args.configs = args.configs[:1]
    return args


def versions():
    """The libraries' versions and the git commit."""
    out = {"jax": jax.__version__}
    for lib, dist in (("jaxlib", "jaxlib"), ("rnnjax", "rnnjax"), ("flax", "flax"),
                      ("equinox", "equinox"), ("haiku", "dm-haiku"), ("torch", "torch")):
        try:
            out[lib] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=BENCHMARKS)
        out["git"] = rev.stdout.strip() or None
    except OSError:
        out["git"] = None
    return out


def build_all(cell_name, hidden, params, xs, libs):
    """{library: (fn, weights)} for rnnjax and the JAX peers; {"torch": module} (shared
    by torch and torch1)."""
    built = {"rnnjax": build_rnnjax(cell_name, hidden, params)}
    for lib in libs:
        if lib in JAX_BUILDERS:
            result = JAX_BUILDERS[lib](cell_name, hidden, params, xs)
            if result is None:
                print(f"  {lib} has no {cell_name} cell: skipped", flush=True)
            else:
                built[lib] = result
        elif lib.startswith("torch") and "torch" not in built:
            built["torch"] = build_torch(cell_name, hidden, params)
    return built


def time_mode(built, libs, xs, mode, args):
    """({library: [s, ...]}, {library: compile_s}, {library: memory}) of one mode, the
    libraries timed against each other."""
    calls, compile_s, mem = {}, {}, {}
    for lib in libs:
        if lib.startswith("torch"):
            calls[lib] = torch_call(built["torch"], xs, mode,
                                    threads=1 if lib == "torch1" else None)
        elif lib in built:
            fn, weights = built[lib]
            calls[lib], compile_s[lib], mem[lib] = jax_call(fn, weights, xs, mode)
    return interleaved(calls, args.repeats, args.budget_s, TORCH_WARMUPS), compile_s, mem


def time_config(config, libs, args, key, checks, torch_threads, record):
    """Every cell and mode of one configuration (B, T, I, H): a row per library."""
    b, t, i, h = config
    for cell_name in args.cells:
        k_p, k_x = jax.random.split(jax.random.fold_in(
            jax.random.fold_in(key, hash(config) % 2**31), CELLS.index(cell_name)))
        params = rj_cell(cell_name, h).init(k_p, i)
        xs = jax.random.normal(k_x, (b, t, i))
        built = build_all(cell_name, h, params, xs, libs)
        for mode in args.modes:
            times, compile_s, mem = time_mode(built, libs, xs, mode, args)
            for lib, ts in times.items():
                torch_lib = lib.startswith("torch")
                row = record(
                    library=lib, cell=cell_name, mode=mode, B=b, T=t, I=i, H=h,
                    median_ms=statistics.median(ts) * 1e3, min_ms=min(ts) * 1e3,
                    compile_s=compile_s.get(lib), repeats=len(ts),
                    variant=PEER_VARIANT.get((lib, cell_name)),
                    check=checks.get(("torch" if torch_lib else lib, cell_name)),
                    threads=(1 if lib == "torch1" else torch_threads) if torch_lib else None,
                    **{"temp_bytes": None, "argument_bytes": None, "output_bytes": None,
                       "peak_bytes": None, **mem.get(lib, {})})
                c = compile_s.get(lib)
                compile_txt = "" if c is None else f"  compile {c:5.2f} s"
                print(f"  B={b:3d} T={t:4d} I={i:3d} H={h:3d} {cell_name:7s} {mode:7s} "
                      f"{lib:8s} median {row['median_ms']:9.2f} ms{compile_txt}  "
                      f"x{row['repeats']}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    notes = available_libraries(args.libs)
    libs = [lib for lib in args.libs if notes[lib] is None]
    for lib, why in notes.items():
        if why is not None:
            print(f"skipping {lib}: not importable ({why})", flush=True)
    torch_threads = None
    if any(lib.startswith("torch") for lib in libs):
        import torch
        torch_threads = torch.get_num_threads()

    vers, device = versions(), device_description()
    common = dict(run_id=time.strftime("%Y%m%dT%H%M%S"), device=device, versions=vers,
                  torch_threads=torch_threads)
    print(f"{device}; load average {os.getloadavg()[0]:.2f}; "
          + ", ".join(f"{k} {v}" for k, v in vers.items() if v)
          + (f"; torch threads {torch_threads}" if torch_threads else "")
          + f"; appending to {args.out}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    key = jax.random.key(args.seed)

    rows = []
    with open(args.out, "a") as out:
        def record(**row):
            """One JSON line per measurement, with the load and the run's common fields."""
            row = {**row, "loadavg": round(os.getloadavg()[0], 2), **common}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            return row

        if args.long:
            long_sequences.run(key, record, args.long_steps, args.repeats, args.budget_s,
                               args.long_max_s)
            return rows
        checks = {}
        if not args.skip_check:
            checked = list(dict.fromkeys("torch" if lib == "torch1" else lib for lib in libs))
            checks = check_equivalence(args.cells, checked, jax.random.fold_in(key, 7))
        start = time.perf_counter()
        for config in args.configs:
            time_config(config, libs, args, key, checks, torch_threads, record)
            print_config_table(rows, config, args.cells, args.modes, libs)
        print_summary(rows, args.configs, libs)
        print(f"\ntimed in {time.perf_counter() - start:.0f} s; load average now "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    return rows
