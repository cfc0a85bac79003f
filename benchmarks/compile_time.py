"""Time from a fresh process to the first result: import, init, compile, run.

Small runs on a CPU spend most of their time compiling, so this measures what a user
waits for, each in a new Python process (nothing cached in memory):

- `first_step`, per cell: `import rnnjax` (and `rnnjax.train`), an eager
  `cell.init` (H = 128, I = 32), the compilation of a jitted Adam `make_train_step`
  on B = 32, T = 100, and its first call; total = all four.
- `study`, per study: the wall time of `python -m experiments.<study> --quick`, with
  the seconds JAX reports for tracing, lowering and XLA compilation summed over the
  run (`JAX_LOG_COMPILES`; CPU seconds, summed over the study's worker processes).

Each is run with JAX's persistent compilation cache off, cold (an empty folder) and
warm (the same folder again). JSON lines to benchmarks/results/compile_time.jsonl.

    python -m benchmarks.compile_time                         # cells, and the quick start
    python -m benchmarks.compile_time --studies echo,adding --cells lstm
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import device_description

RESULTS = Path("benchmarks/results/compile_time.jsonl")
CELLS = ["tanh", "lstm", "gru", "peephole", "clockwork", "lru"]

FIRST_STEP = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, jax.numpy as jnp, optax
import rnnjax as rj
from rnnjax.cells import make
from rnnjax.train import init_state, make_train_step, mse
t1 = time.perf_counter()
cell = make(sys.argv[1], hidden_size=128)
params = jax.block_until_ready(cell.init(jax.random.key(0), 32))
t2 = time.perf_counter()

def loss_fn(p, batch, key):
    xs, ys = batch
    _, hs = rj.unroll(cell, p, xs)
    return mse(hs[:, -1, :1], ys), {}

optimizer = optax.adam(1e-3)
state = init_state(params, optimizer, jax.random.key(1))
batch = (jnp.ones((32, 100, 32)), jnp.zeros((32, 1)))
step = jax.jit(make_train_step(loss_fn, optimizer)).lower(state, batch).compile()
t3 = time.perf_counter()
state, metrics = step(state, batch)
jax.block_until_ready(metrics["loss"])
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "compile": t3 - t2, "run": t4 - t3,
                  "total": t4 - t0}))
"""

_LOGGED = {"trace": r"Finished tracing .* in ([\d.]+) sec",
           "lower": r"Finished jaxpr to MLIR module conversion .* in ([\d.]+) sec",
           "compile": r"Finished XLA compilation of .* in ([\d.]+) sec"}


def _environment(cache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "RNNJAX_COMPILE_CACHE"))}
    if cache is not None:
        env["RNNJAX_COMPILE_CACHE"] = str(cache)
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def first_step(cell: str, cache: Path | None) -> dict:
    out = subprocess.run([sys.executable, "-c", FIRST_STEP, cell], env=_environment(cache),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def study(name: str, cache: Path | None, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        env = {**_environment(cache), "JAX_LOG_COMPILES": "1"}
        command = [sys.executable, "-m", f"experiments.{name}", "--quick", "--out", out,
                   *extra] + ([] if cache is not None else ["--no-compile-cache"])
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        results = json.loads((Path(out) / "results.json").read_text())
    logged = {k: sum(float(x) for x in re.findall(pattern, done.stderr))
              for k, pattern in _LOGGED.items()}
    count = len(re.findall(_LOGGED["compile"], done.stderr))
    return {"wall": wall, **{f"{k}_cpu": v for k, v in logged.items()},
            "compilations": count, "results_digest": _digest(results)}


def _digest(results: dict) -> str:
    """A short hash of a study's numbers (not its config, versions or timings), to see
    that a cached run gives the same results."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in sorted(obj.items())
                    if k not in ("config", "environment", "seconds", "versions", "time",
                                 "wall_seconds", "command")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return hashlib.sha256(json.dumps(strip(results), sort_keys=True).encode()).hexdigest()[:12]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--studies", default="compare_cells")
    parser.add_argument("--study-args", default="", help="extra flags for every study")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = device_description()
    rows = []
    with args.out.open("a") as sink, tempfile.TemporaryDirectory() as caches:
        def record(kind, name, mode, figures):
            row = {"benchmark": "compile_time", "kind": kind, "name": name, "cache": mode,
                   **figures, "device": device, "time": time.time()}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            rows.append(row)
            print(json.dumps(row), flush=True)

        for cell in filter(None, args.cells.split(",")):
            cache = Path(caches) / f"cell-{cell}"
            for mode, folder in (("off", None), ("cold", cache), ("warm", cache)):
                record("first_step", cell, mode, first_step(cell, folder))
        for name in filter(None, args.studies.split(",")):
            cache = Path(caches) / f"study-{name}"
            for mode, folder in (("off", None), ("cold", cache), ("warm", cache)):
                record("study", name, mode, study(name, folder, args.study_args.split()))
    print(table(rows))


def table(rows: list[dict]) -> str:
    lines = ["| kind | name | cache | import | init | compile | run | total / wall |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "first_step":
            cells = [f"{r[k]:.2f}" for k in ("import", "init", "compile", "run", "total")]
        else:
            cells = ["", "", f"{r['compile_cpu'] + r['lower_cpu'] + r['trace_cpu']:.1f} cpu "
                     f"({r['compilations']})", "", f"{r['wall']:.1f}"]
        lines.append(f"| {r['kind']} | {r['name']} | {r['cache']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
