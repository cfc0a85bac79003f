"""rnnjax against its peers: flax.linen, equinox, haiku and PyTorch, timed in one run.

For each configuration (B, T, I, H), cell (LSTM, GRU, vanilla tanh RNN) and mode it
times, on batch-major inputs xs [B, T, I]:

  fwd       the outputs ys [B, T, H] of the whole sequence (torch: under
            `torch.inference_mode()`, i.e. without building the autograd graph)
  fwd+bwd   loss = sum(ys) and its gradients w.r.t. the params AND the inputs (what
            torch's `backward()` computes): `jax.grad(loss, argnums=(0, 1))`

with these implementations (a peer that does not import is skipped with a note):

  rnnjax    rj.unroll(rj.LSTM(H) | rj.GRU(H, reset_after=True) | rj.SimpleRNN(H), params, xs)
  flax      nn.RNN(nn.OptimizedLSTMCell(H) | nn.GRUCell(H) | nn.SimpleCell(H))
  equinox   eqx.nn.LSTMCell | eqx.nn.GRUCell, `lax.scan` over time, `vmap` over the
            batch (equinox has no vanilla RNN cell: skipped)
  haiku     hk.LSTM | hk.GRU | hk.VanillaRNN with hk.dynamic_unroll(time_major=False)
  torch     torch.nn.LSTM | GRU | RNN(batch_first=True), CPU at the default thread
            count, or CUDA (cuDNN) when JAX runs on a GPU and torch sees one
  torch1    the same modules timed with torch.set_num_threads(1) (then restored)

Every library gets the SAME weights, copied from the rnnjax params, and before any
timing a small case (B=3, T=7, I=5, H=6, random non-zero biases) checks that each
peer's outputs and d sum(ys) / d xs equal rnnjax's to 1e-4. Two peers compute a
different variant, checked against the matching rnnjax cell and timed as they are:
hk.GRU is the reset-before GRU (rj.GRU(reset_after=False), update gate negated and
gate order z, r, a) and hk.VanillaRNN is a ReLU RNN with two biases
(rj.SimpleRNN(activation="relu")); the tables compare them with the rnnjax cells
above all the same (same shapes and matmuls, a different elementwise tail).

Timing: each JAX function is jitted and compiled ahead with `jit(f).lower(...).compile()`
(compile time recorded separately); every library's call is warmed up (JAX once,
torch twice), then the libraries are timed in rounds, one call each per round, so
that a change in machine load hits all alike; each stops after `--repeats` calls,
or after 3 once its calls add up to `--budget-s` (20 ms pause before each call, so the
previous library's threads are idle); the median is reported. Memory (JAX only): the
compiled program's `memory_analysis()`: temp, argument and output bytes of XLA's
buffer assignment (what the program allocates, not a measured RSS), and XLA's
`peak_memory_in_bytes`, which on CPU came out below temp for these scans, so the
tables use temp. Torch memory is not measured (null in the JSON).

`--long`: backpropagation through T = 10,000 steps (B=8, I=32, H=128, LSTM,
fwd+bwd) with `rj.unroll(..., remat=True)` against plain autodiff (remat=False):
time and compiled memory of each; at T = 100,000 the compiled memory of both
(compiling costs no more at larger T) and the time with remat only when the
T = 10,000 figure predicts at most `--long-max-s` seconds per step. Beside it, for
reference, the same with a plain `lax.scan` of the whole cell step (the input
matmul inside the step, `jax.checkpoint` on the step): `scan-in-step`.

    python -m benchmarks.peers            # 4 issue configs x 3 cells x 2 modes, all libraries
    python -m benchmarks.peers --quick    # first config, LSTM, fwd+bwd
    python -m benchmarks.peers --sweep    # T, B and H sweeps instead of the issue configs
    python -m benchmarks.peers --long     # the long-sequence remat study only

JSON lines are appended to benchmarks/results/peers.jsonl (one object per
measurement; `run_id` tells the runs apart); a table per configuration is printed
with each library's median ms and the ratios rnnjax / peer (< 1: rnnjax faster).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import rnnjax as rj
from benchmarks.timing import block, compile_fn

# "torch1" is torch again with `torch.set_num_threads(1)` while it is timed: on a
# shared machine torch's OpenMP threads at the default count can stall on each other
# (see NOTES.md), and one thread shows what the kernels cost without that.
LIBRARIES = ["rnnjax", "flax", "equinox", "haiku", "torch", "torch1"]
JAX_PEERS = ["flax", "equinox", "haiku"]
CELLS = ["lstm", "gru", "vanilla"]
MODES = ["fwd", "fwd+bwd"]
ISSUE_CONFIGS = [(32, 128, 64, 256), (32, 128, 64, 64), (128, 64, 128, 512),
                 (8, 512, 32, 128)]                                    # (B, T, I, H)


def sweep_configs():
    configs = [(32, t, 64, 128) for t in (32, 128, 512)]
    configs += [(b, 128, 64, 128) for b in (8, 32, 128)]
    configs += [(32, 128, 64, h) for h in (64, 256, 512)]
    return list(dict.fromkeys(configs))              # 8 unique (B=32, T=128 twice)


DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "peers.jsonl")


# -- the rnnjax cells (and the variants two peers compute) --------------------------

def rj_cell(cell, hidden, variant=None):
    if cell == "lstm":
        return rj.LSTM(hidden)
    if cell == "gru":
        return rj.GRU(hidden, reset_after=variant != "reset_before")
    return rj.SimpleRNN(hidden, activation="relu" if variant == "relu" else "tanh")


# Which rnnjax cell each peer computes, where it is not the default one.
PEER_VARIANT = {("haiku", "gru"): "reset_before", ("haiku", "vanilla"): "relu"}


def blocks(a, n):
    return jnp.split(a, n, axis=-1)


def same_shapes(built, reference, what):
    """`built` has the pytree structure and leaf shapes of `reference`."""
    shapes = lambda t: jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), t)
    if shapes(built) != shapes(reference):
        raise AssertionError(f"{what}: mapped params {shapes(built)} != "
                             f"the library's own {shapes(reference)}")


# -- peers: each builder maps rnnjax params to the peer's weights ---------------------
# A JAX builder returns (fn, weights) with fn(weights, xs [B, T, I]) -> ys [B, T, H];
# the torch builder returns the module.

def build_rnnjax(cell_name, hidden, params, variant=None):
    cell = rj_cell(cell_name, hidden, variant)
    return (lambda p, xs: rj.unroll(cell, p, xs)[1]), params


def build_flax(cell_name, hidden, params, xs):
    import flax.linen as nn
    h = hidden
    if cell_name == "lstm":
        linen_cell = nn.OptimizedLSTMCell(h)
        wx, wh, b = blocks(params["W_x"], 4), blocks(params["W_h"], 4), blocks(params["b"], 4)
        p = {}
        for k, g in enumerate("ifgo"):
            p[f"i{g}"] = {"kernel": wx[k]}
            p[f"h{g}"] = {"kernel": wh[k], "bias": b[k]}
    elif cell_name == "gru":
        linen_cell = nn.GRUCell(h)
        wx, wh, b = blocks(params["W_x"], 3), blocks(params["W_h"], 3), blocks(params["b"], 3)
        p = {f"i{g}": {"kernel": wx[k], "bias": b[k]} for k, g in enumerate("rzn")}
        p.update({f"h{g}": {"kernel": wh[k]} for k, g in enumerate("rzn")})
        p["hn"]["bias"] = params["b_hn"]
    else:
        linen_cell = nn.SimpleCell(h)
        p = {"i": {"kernel": params["W_x"], "bias": params["b"]},
             "h": {"kernel": params["W_h"]}}
    model = nn.RNN(linen_cell)
    variables = {"params": {"cell": p}}
    same_shapes(variables, jax.eval_shape(model.init, jax.random.key(0), xs), "flax")
    return model.apply, variables


def build_equinox(cell_name, hidden, params, xs):
    import equinox as eqx
    input_size = params["W_x"].shape[0]
    key = jax.random.key(0)
    if cell_name == "lstm":
        cell = eqx.nn.LSTMCell(input_size, hidden, key=key)
        cell = eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias), cell,
                           (params["W_x"].T, params["W_h"].T, params["b"]))
        zeros = lambda: (jnp.zeros((hidden,)), jnp.zeros((hidden,)))
        out = lambda carry: carry[0]
    elif cell_name == "gru":
        cell = eqx.nn.GRUCell(input_size, hidden, key=key)
        cell = eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n), cell,
                           (params["W_x"].T, params["W_h"].T, params["b"], params["b_hn"]))
        zeros = lambda: jnp.zeros((hidden,))
        out = lambda carry: carry
    else:
        return None                                     # no vanilla RNN cell in equinox
    weights, static = eqx.partition(cell, eqx.is_array)

    def fn(w, xs):
        c = eqx.combine(w, static)

        def one_sequence(seq):                          # [T, I] -> [T, H]
            def body(carry, x):
                carry = c(x, carry)
                return carry, out(carry)
            return lax.scan(body, zeros(), seq)[1]
        return jax.vmap(one_sequence)(xs)
    return fn, weights


def build_haiku(cell_name, hidden, params, xs):
    import haiku as hk
    h = hidden
    if cell_name == "lstm":
        make = lambda: hk.LSTM(h)
        i, f, g, o = blocks(jnp.concatenate([params["W_x"], params["W_h"]], 0), 4)
        bi, bf, bg, bo = blocks(params["b"], 4)
        p = {"lstm/linear": {"w": jnp.concatenate([i, g, f, o], -1),     # haiku: i, g, f, o
                             "b": jnp.concatenate([bi, bg, bf - 1.0, bo])}}  # and f + 1 inside
    elif cell_name == "gru":
        # hk.GRU is the reset-before GRU with h' = (1 - z) h + z a and gates z, r, a:
        # rnnjax's z negated gives the same function (rj.GRU(reset_after=False)).
        make = lambda: hk.GRU(h)
        xr, xz, xn = blocks(params["W_x"], 3)
        hr, hz, hn = blocks(params["W_h"], 3)
        br, bz, bn = blocks(params["b"], 3)
        p = {"gru": {"w_i": jnp.concatenate([-xz, xr, xn], -1),
                     "w_h": jnp.concatenate([-hz, hr, hn], -1),
                     "b": jnp.concatenate([-bz, br, bn])}}
    else:
        make = lambda: hk.VanillaRNN(h)                 # ReLU, a bias on both linears
        p = {"vanilla_rnn/linear": {"w": params["W_x"], "b": params["b"]},
             "vanilla_rnn/linear_1": {"w": params["W_h"], "b": jnp.zeros((h,))}}
    batch = xs.shape[0]

    def forward(xs):
        core = make()
        return hk.dynamic_unroll(core, xs, core.initial_state(batch), time_major=False)[0]
    transformed = hk.without_apply_rng(hk.transform(forward))
    same_shapes(p, jax.eval_shape(transformed.init, jax.random.key(0), xs), "haiku")
    return transformed.apply, p


def torch_device():
    """"cuda" when JAX runs on a GPU and torch sees one (torch.nn.LSTM then runs on
    cuDNN), else "cpu"."""
    import torch
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def build_torch(cell_name, hidden, params):
    import torch
    cell = rj_cell(cell_name, hidden)
    module = rj.interop.to_torch(cell, params)        # batch_first=True
    assert module.batch_first
    return module.to(device=torch_device(), dtype=torch.float32)


JAX_BUILDERS = {"flax": build_flax, "equinox": build_equinox, "haiku": build_haiku}


def available_libraries(wanted):
    """{library: None if importable else the reason}."""
    modules = {"flax": "flax.linen", "equinox": "equinox", "haiku": "haiku",
               "torch": "torch", "torch1": "torch"}
    notes = {}
    for lib in wanted:
        if lib == "rnnjax":
            notes[lib] = None
            continue
        try:
            __import__(modules[lib])
            notes[lib] = None
        except Exception as e:                          # ImportError or a broken install
            notes[lib] = f"{type(e).__name__}: {e}"
    return notes


def versions():
    out = {"jax": jax.__version__, "jaxlib": _version("jaxlib"), "rnnjax": _version("rnnjax")}
    for lib, dist in (("flax", "flax"), ("equinox", "equinox"), ("haiku", "dm-haiku"),
                      ("torch", "torch")):
        out[lib] = _version(dist)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        out["git"] = rev.stdout.strip() or None
    except OSError:
        out["git"] = None
    return out


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the equivalence check --------------------------------------------------------------

def check_equivalence(cells, libs, key, tol=1e-4):
    """Each peer's ys and d sum(ys)/d xs equal rnnjax's (B=3, T=7, I=5, H=6). Returns
    {(lib, cell): description}; raises AssertionError on a mismatch."""
    b, t, i, h = 3, 7, 5, 6
    results = {}
    for cell_name in cells:
        k_p, k_b, k_x = jax.random.split(jax.random.fold_in(key, CELLS.index(cell_name)), 3)
        xs = jax.random.normal(k_x, (b, t, i))
        for lib in libs:
            if lib in ("rnnjax", "torch1"):                 # torch1: the torch modules
                continue
            variant = PEER_VARIANT.get((lib, cell_name))
            cell = rj_cell(cell_name, h, variant)
            params = cell.init(k_p, i)
            # non-zero biases, so that a bias mapped to the wrong place shows
            params = {**params, **{n: 0.5 * jax.random.normal(jax.random.fold_in(k_b, j),
                                                              params[n].shape)
                                   for j, n in enumerate(("b", "b_hn")) if n in params}}
            ref_fn, _ = build_rnnjax(cell_name, h, params, variant)
            ys_ref = ref_fn(params, xs)
            dx_ref = jax.grad(lambda x: ref_fn(params, x).sum())(xs)
            if lib == "torch":
                import torch
                module = build_torch(cell_name, h, params)
                x = torch.from_numpy(np.array(xs)).to(torch_device()).requires_grad_(True)
                ys_t, _ = module(x)
                ys_t.sum().backward()
                ys, dx = ys_t.detach().cpu().numpy(), x.grad.cpu().numpy()
            else:
                built = JAX_BUILDERS[lib](cell_name, h, params, xs)
                if built is None:
                    continue
                fn, weights = built
                ys = fn(weights, xs)
                dx = jax.grad(lambda x: fn(weights, x).sum())(xs)
            if np.shape(ys) != ys_ref.shape:
                raise AssertionError(f"{lib} {cell_name}: output shape {np.shape(ys)} != "
                                     f"rnnjax's {ys_ref.shape}")
            err_y = float(np.max(np.abs(np.asarray(ys) - np.asarray(ys_ref))))
            err_x = float(np.max(np.abs(np.asarray(dx) - np.asarray(dx_ref))))
            against = f"rj.{type(cell).__name__}" + (f" ({variant})" if variant else "")
            desc = (f"outputs and d sum(ys)/d xs equal {against} with copied weights: "
                    f"max abs err {err_y:.1e}, {err_x:.1e}")
            if not (err_y <= tol and err_x <= tol):
                raise AssertionError(f"{lib} {cell_name}: {desc} > {tol}")
            results[(lib, cell_name)] = desc
            print(f"check {cell_name:7s} {lib:8s} {desc}", flush=True)
    return results


# -- timing -------------------------------------------------------------------------------

def memory(compiled):
    try:
        m = compiled.memory_analysis()
    except Exception:                                   # not every backend has it
        return {}
    if m is None:
        return {}
    out = {}
    for field, attr in (("temp_bytes", "temp_size_in_bytes"),
                        ("argument_bytes", "argument_size_in_bytes"),
                        ("output_bytes", "output_size_in_bytes"),
                        ("peak_bytes", "peak_memory_in_bytes")):
        value = getattr(m, attr, None)
        out[field] = None if value is None else int(value)
    return out


def loss_and_grads(fn):
    """d sum(fn(w, xs)) w.r.t. (w, xs)."""
    return jax.grad(lambda w, xs: jnp.sum(fn(w, xs)), argnums=(0, 1))


# A pause before each timed call when several libraries alternate, so that the
# previous library's worker threads (XLA's and torch's OpenMP threads spin for a while
# after their work) are idle again: right after a JAX call a torch call measured
# ~15% slower here.
PAUSE_S = 0.02


def interleaved(calls, repeats, budget_s, warmups):
    """Time several calls against each other: `warmups[name]` warm-up calls each
    (fewer once one takes longer than `budget_s`), then rounds in which every call
    still running is timed once, so that a change in machine load hits all of them
    alike. A call stops after `repeats` times, or after 3 once its times add up to
    `budget_s` (after 1 when a warm-up call alone took longer). {name: [s, ...]}."""
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


def jax_call(fn, weights, xs, mode):
    """(call, compile_s, memory) of the jitted fwd or fwd+bwd program."""
    f = fn if mode == "fwd" else loss_and_grads(fn)
    compiled, compile_s = compile_fn(f, weights, xs)
    return (lambda: block(compiled(weights, xs))), compile_s, memory(compiled)


def torch_call(module, xs, mode, threads=None):
    """A call of the module's fwd (inference mode) or fwd+bwd, with `threads` torch
    threads while it runs (None: the default)."""
    import torch
    device = torch_device()
    x = torch.from_numpy(np.array(xs)).to(device)
    wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)  # async on GPU
    if mode == "fwd":
        def run():
            with torch.inference_mode():
                module(x)
            wait()
    else:
        x.requires_grad_(True)

        def run():
            module.zero_grad(set_to_none=True)
            x.grad = None
            ys, _ = module(x)
            ys.sum().backward()
            wait()
    if threads is None:
        return run

    def call():
        default = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run()
        finally:
            torch.set_num_threads(default)
    return call


# -- the run ------------------------------------------------------------------------------

def device_description():
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} ({os.cpu_count()} cpus, {platform.machine()})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="first config, LSTM, fwd+bwd")
    ap.add_argument("--sweep", action="store_true",
                    help="the T, B and H sweeps (B=32, T=128, I=64, H=128 varied one at "
                         "a time) instead of the four issue configs")
    ap.add_argument("--long", action="store_true",
                    help="only the long-sequence study: remat vs plain BPTT, T=10,000 "
                         "(and 100,000)")
    ap.add_argument("--configs", nargs="+", metavar="B,T,I,H",
                    type=lambda v: tuple(int(n) for n in v.split(",")),
                    help="configurations to run instead of the issue's four (or the sweep)")
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
    configs = args.configs or (sweep_configs() if args.sweep else ISSUE_CONFIGS)
    if args.quick:
        configs = configs[:1]

    notes = available_libraries(args.libs)
    libs = [lib for lib in args.libs if notes[lib] is None]
    for lib, why in notes.items():
        if why is not None:
            print(f"skipping {lib}: not importable ({why})", flush=True)
    torch_threads = None
    if "torch" in libs or "torch1" in libs:
        import torch
        torch_threads = torch.get_num_threads()

    vers = versions()
    device = device_description()
    run_id = time.strftime("%Y%m%dT%H%M%S")
    common = dict(run_id=run_id, device=device, versions=vers, torch_threads=torch_threads)
    print(f"{device}; load average {os.getloadavg()[0]:.2f}; "
          + ", ".join(f"{k} {v}" for k, v in vers.items() if v)
          + (f"; torch threads {torch_threads}" if torch_threads else "")
          + f"; appending to {args.out}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    key = jax.random.key(args.seed)

    rows = []
    with open(args.out, "a") as out:
        def record(**row):
            row = {**row, "loadavg": round(os.getloadavg()[0], 2), **common}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            return row

        if args.long:
            run_long(args, key, record)
            return rows

        checks = {}
        if not args.skip_check:
            checked = list(dict.fromkeys("torch" if lib == "torch1" else lib for lib in libs))
            checks = check_equivalence(args.cells, checked, jax.random.fold_in(key, 7))

        start_run = time.perf_counter()
        for config in configs:
            b, t, i, h = config
            for cell_name in args.cells:
                k_p, k_x = jax.random.split(
                    jax.random.fold_in(jax.random.fold_in(key, hash(config) % 2**31),
                                       CELLS.index(cell_name)))
                params = rj_cell(cell_name, h).init(k_p, i)
                xs = jax.random.normal(k_x, (b, t, i))
                built = {"rnnjax": build_rnnjax(cell_name, h, params)}
                for lib in libs:
                    if lib in JAX_BUILDERS:
                        result = JAX_BUILDERS[lib](cell_name, h, params, xs)
                        if result is None:
                            print(f"  {lib} has no {cell_name} cell: skipped", flush=True)
                            continue
                        built[lib] = result
                    elif lib == "torch" or (lib == "torch1" and "torch" not in built):
                        built["torch"] = build_torch(cell_name, h, params)
                for mode in args.modes:
                    calls, compile_s, mem = {}, {}, {}
                    for lib in libs:
                        if lib in ("torch", "torch1"):
                            calls[lib] = torch_call(built["torch"], xs, mode,
                                                    threads=1 if lib == "torch1" else None)
                        elif lib in built:
                            fn, weights = built[lib]
                            calls[lib], compile_s[lib], mem[lib] = jax_call(fn, weights,
                                                                            xs, mode)
                    times = interleaved(calls, args.repeats, args.budget_s,
                                        {"torch": 2, "torch1": 2})
                    for lib in calls:
                        row = record(
                            library=lib, cell=cell_name, mode=mode, B=b, T=t, I=i, H=h,
                            median_ms=statistics.median(times[lib]) * 1e3,
                            min_ms=min(times[lib]) * 1e3, compile_s=compile_s.get(lib),
                            repeats=len(times[lib]),
                            variant=PEER_VARIANT.get((lib, cell_name)),
                            check=checks.get(("torch" if lib == "torch1" else lib, cell_name)),
                            threads=(1 if lib == "torch1" else torch_threads)
                            if lib.startswith("torch") else None,
                            **{"temp_bytes": None, "argument_bytes": None,
                               "output_bytes": None, "peak_bytes": None, **mem.get(lib, {})})
                        c = compile_s.get(lib)
                        compile_txt = "" if c is None else f"  compile {c:5.2f} s"
                        print(f"  B={b:3d} T={t:4d} I={i:3d} H={h:3d} {cell_name:7s} "
                              f"{mode:7s} {lib:8s} median {row['median_ms']:9.2f} ms"
                              f"{compile_txt}  x{row['repeats']}", flush=True)
            print_config_table(rows, config, args.cells, args.modes, libs)
        print_summary(rows, configs, libs)
        print(f"\ntimed in {time.perf_counter() - start_run:.0f} s; load average now "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    return rows


def scan_in_step(cell, params, xs, remat):
    """The reference for `--long`: a plain `lax.scan` of the whole step `cell(params,
    carry, x_t)`, the input matmul inside the step (as flax, equinox and haiku do it),
    `jax.checkpoint` on the step when `remat`. Batch-major in and out."""
    def body(carry, x):
        return cell(params, carry, x)
    if remat:
        body = jax.checkpoint(body)
    carry = cell.initial_carry((xs.shape[0],), xs.dtype)
    return jnp.swapaxes(lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))[1], 0, 1)


LONG_IMPLS = {
    "rnnjax": lambda cell, remat: (lambda p, x: rj.unroll(cell, p, x, remat=remat)[1]),
    "scan-in-step": lambda cell, remat: (lambda p, x: scan_in_step(cell, p, x, remat)),
}


def run_long(args, key, record):
    """remat=True against remat=False over long sequences: time and compiled memory,
    for `rj.unroll` and for the reference `scan_in_step` (input matmul in the step)."""
    b, i, h = 8, 32, 128
    cell = rj.LSTM(h)
    k_p, k_x = jax.random.split(jax.random.fold_in(key, 10_000))
    params = cell.init(k_p, i)
    per_step_s = {}                                    # {(impl, remat): s per time step}
    results = []
    for steps in args.long_steps:
        xs = jax.random.normal(k_x, (b, steps, i))
        first = steps == args.long_steps[0]
        for impl, make in LONG_IMPLS.items():
            for remat in (False, True):
                fn = loss_and_grads(make(cell, remat))
                compiled, compile_s = compile_fn(fn, params, xs)
                mem = memory(compiled)
                predicted = per_step_s.get((impl, remat))
                predicted = None if first or predicted is None else predicted * steps
                # past the first T only rnnjax with remat, and only when it is cheap
                timed = first or (impl == "rnnjax" and remat and predicted is not None
                                  and predicted <= args.long_max_s)
                times = interleaved({"f": lambda: block(compiled(params, xs))},
                                    min(args.repeats, 5), max(args.budget_s, 10.0),
                                    {})["f"] if timed else []
                row = record(library=impl, cell="lstm", mode="fwd+bwd", study="long",
                             B=b, T=steps, I=i, H=h, remat=remat,
                             median_ms=statistics.median(times) * 1e3 if times else None,
                             min_ms=min(times) * 1e3 if times else None,
                             compile_s=compile_s, repeats=len(times),
                             predicted_s=predicted, **mem)
                if first and times:
                    per_step_s[(impl, remat)] = statistics.median(times) / steps
                results.append(row)
                ms = "not timed" if not times else \
                    f"median {row['median_ms']:9.1f} ms x{len(times)}"
                if not times and predicted is not None:
                    ms += f" (predicted {predicted:.1f} s)"
                print(f"  T={steps:6d} {impl:12s} remat={remat!s:5s} {ms}  "
                      f"compile {compile_s:5.2f} s  temp {_mb(mem.get('temp_bytes'))} MB",
                      flush=True)
    print()
    print("| T | implementation | remat | median ms | temp MB | argument MB | output MB "
          "| compile s |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        ms = "-" if r["median_ms"] is None else f"{r['median_ms']:.1f}"
        print(f"| {r['T']} | {r['library']} | {r['remat']} | {ms} | "
              f"{_mb(r.get('temp_bytes'))} | {_mb(r.get('argument_bytes'))} | "
              f"{_mb(r.get('output_bytes'))} | {r['compile_s']:.2f} |")
    print("temp: XLA's temp buffers of the compiled fwd+bwd program (memory_analysis); "
          "argument: params + xs; output: the gradients. scan-in-step: lax.scan of the "
          "whole cell step (input matmul inside, checkpointed with remat)")


def _mb(n):
    return "-" if n is None else f"{n / 2**20:.1f}"


SHORT = {"rnnjax": "rj", "flax": "flax", "equinox": "eqx", "haiku": "hk", "torch": "torch",
         "torch1": "torch1"}


def _median(rows, lib, config, cell, mode):
    b, t, i, h = config
    for r in reversed(rows):
        if (r.get("library"), r.get("cell"), r.get("mode"), r.get("B"), r.get("T"),
                r.get("I"), r.get("H")) == (lib, cell, mode, b, t, i, h) and \
                r.get("study") is None:
            return r["median_ms"]
    return None


def print_config_table(rows, config, cells, modes, libs):
    b, t, i, h = config
    peers = [lib for lib in libs if lib != "rnnjax"]
    print(f"\nB={b} T={t} I={i} H={h} (median ms; ratio rnnjax/peer, < 1: rnnjax faster)")
    print("| cell | mode | " + " | ".join(f"{lib} ms" for lib in ["rnnjax"] + peers) + " | "
          + " | ".join(f"rj/{SHORT[p]}" for p in peers) + " |")
    print("|---|---|" + "---:|" * (1 + 2 * len(peers)))
    for cell in cells:
        for mode in modes:
            ours = _median(rows, "rnnjax", config, cell, mode)
            values = [_median(rows, lib, config, cell, mode) for lib in peers]
            ms = ["-" if v is None else f"{v:.2f}" for v in [ours] + values]
            ratios = ["-" if v is None or ours is None else f"{ours / v:.2f}" for v in values]
            print(f"| {cell} | {mode} | " + " | ".join(ms) + " | " + " | ".join(ratios) + " |")


def print_summary(rows, configs, libs):
    """Per cell and mode: each config, each library's ms, rnnjax / best JAX peer and
    rnnjax / torch."""
    peers = [lib for lib in libs if lib != "rnnjax"]
    jax_peers = [lib for lib in peers if lib in JAX_PEERS]
    for cell in CELLS:
        for mode in MODES[::-1]:
            if not any(_median(rows, "rnnjax", c, cell, mode) for c in configs):
                continue
            print(f"\n{cell} {mode} (median ms)")
            print("| B | T | I | H | " + " | ".join(["rnnjax"] + peers)
                  + " | rj/best JAX peer | rj/torch | rj/torch1 |")
            print("|---:|---:|---:|---:|" + "---:|" * (len(peers) + 4))
            for config in configs:
                ours = _median(rows, "rnnjax", config, cell, mode)
                if ours is None:
                    continue
                values = {lib: _median(rows, lib, config, cell, mode) for lib in peers}
                jax_values = {k: v for k, v in values.items() if k in jax_peers and v}
                best = min(jax_values, key=jax_values.get) if jax_values else None
                best_txt = "-" if best is None else f"{ours / jax_values[best]:.2f} ({best})"
                torch_txt = " | ".join("-" if not values.get(t) else f"{ours / values[t]:.2f}"
                                       for t in ("torch", "torch1"))
                ms = " | ".join("-" if values[lib] is None else f"{values[lib]:.2f}"
                                for lib in peers)
                print(f"| {' | '.join(map(str, config))} | {ours:.2f} | {ms} | "
                      f"{best_txt} | {torch_txt} |")


if __name__ == "__main__":
    main()
