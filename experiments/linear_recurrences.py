"""Linear recurrences (LRU, minGRU, minLSTM) against the LSTM and the GRU: memory
tasks at growing T, gradient flow through time, and sensitivity to the parameters.

1. Copy memory and the adding problem at each length T, every cell type, several
   seeds (the memory-task runner of `experiments.memory_studies`: test metric against
   no-memory baselines, ||dL/dh_k|| at initialisation and after training).
2. Memory against sensitivity (Zucchet & Orvieto 2024): an LRU whose eigenvalues all
   have modulus r, and a linear RNN h_t = h_{t-1} W + x_t U with W = r * orthogonal
   (no normalisation), for r -> 1: the norm of dh_{T-1}/dh_0 (memory through time,
   r^(T-1) for both) against ||dh_{T-1}/dtheta|| for each parameter group.
3. ||dh_{T-1}/dtheta|| of every cell type at its default initialisation.

    python -m experiments.linear_recurrences --quick     # ~3 minutes on a CPU

Writes results/linear_recurrences/{results.json, report.md, training.png,
grad_flow.png, sensitivity.png}; the training runs checkpoint to their own folders
and the probes are kept in parts/, so a rerun resumes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax as rj
from experiments import common
from experiments import memory_studies as ms
from rnnjax import probe
from rnnjax.cells import LinearRecurrence, make

NAME = "linear_recurrences"
DEFAULTS = dict(cells=["lru", "mingru", "minlstm", "lstm", "gru"], seeds=3, steps=5000,
                copy_lengths=[50, 100, 200], adding_lengths=[100, 200, 400], hidden=64,
                batch=64, lr=2e-3, clip=1.0, eval_every=250, checkpoint_every=1000,
                workers=1, radii=[0.5, 0.9, 0.99, 0.999], probe_length=256,
                scan="associative")
QUICK = dict(seeds=2, steps=300, copy_lengths=[10], adding_lengths=[30], hidden=16,
             batch=32, lr=5e-3, eval_every=50, checkpoint_every=300, workers=2,
             radii=[0.5, 0.9, 0.99], probe_length=32)
PROBE_BATCH, INPUTS = 8, 4


def add_arguments(parser):
    ms.add_arguments(parser)
    ints = lambda s: [int(x) for x in s.split(",") if x]
    parser.add_argument("--copy-lengths", dest="copy_lengths", type=ints,
                        help="blank steps T of the copy problems, comma-separated ('' for none)")
    parser.add_argument("--adding-lengths", dest="adding_lengths", type=ints,
                        help="lengths T of the adding problems, comma-separated ('' for none)")
    parser.add_argument("--radii", type=lambda s: [float(x) for x in s.split(",")],
                        help="eigenvalue moduli r of the sensitivity study, comma-separated")
    parser.add_argument("--probe-length", dest="probe_length", type=common.positive_int,
                        help="sequence length T of the sensitivity probes")
    parser.add_argument("--scan", choices=["associative", "sequential"],
                        help="how the linear recurrences are trained: jax.lax.associative_scan "
                             "or a lax.scan of the multiply-add (the same numbers up to "
                             "rounding; sequential is the faster one on a CPU)")


@functools.partial(jax.jit, static_argnums=0)
def memory_and_sensitivity(cell, params, xs):
    """(||dh_T-1/dh_0||, {param: ||dh_T-1/dtheta||}), compiled once per cell and shape."""
    return probe.jacobian_norms(cell, params, xs)[0], probe.param_sensitivity(cell, params, xs)


def group_norms(sensitivity: dict) -> dict:
    """{param name: ||dh/dtheta||} plus the total over all of them."""
    values = {k: float(v) for k, v in sensitivity.items()}
    values["total"] = float(np.sqrt(sum(v ** 2 for v in values.values())))
    return values


def fixed_radius_models(r: float, hidden: int, key):
    """The LRU with every |lambda| = r and the unnormalised linear RNN with W = r * Q."""
    lru = rj.LRU(hidden_size=hidden, state_size=hidden)
    lru_params = lru.init(key, INPUTS)
    lru_params = {**lru_params, "nu_log": jnp.full((hidden,), np.log(-np.log(r)), jnp.float32)}
    linear = rj.SimpleRNN(hidden_size=hidden, activation="identity", recurrent_scale=r,
                          use_loop_rule=False)
    return {"LRU": (lru, lru_params), "linear RNN": (linear, linear.init(key, INPUTS))}


def sensitivity_study(args) -> dict:
    """Part 2: memory through time and parameter sensitivity against r, over seeds."""
    config = {k: getattr(args, k) for k in ("radii", "probe_length", "hidden", "seeds")}
    saved = common.load_part(args.out, "sensitivity", config)
    if saved is not None:
        return saved
    rows = {}
    for r in args.radii:
        for seed in range(args.seeds):
            key = jax.random.key(seed)
            xs = jax.random.normal(jax.random.fold_in(key, 1),
                                   (PROBE_BATCH, args.probe_length, INPUTS))
            for name, (cell, params) in fixed_radius_models(r, args.hidden, key).items():
                memory, sens = memory_and_sensitivity(cell, params, xs)
                rows.setdefault(f"{name}/{r}", []).append({"memory": float(memory),
                                                           **group_norms(sens)})
    result = {key: {field: [row[field] for row in runs] for field in runs[0]}
              for key, runs in rows.items()}
    common.save_part(args.out, "sensitivity", config, result)
    return result


def cell_sensitivity(args) -> dict:
    """Part 3: ||dh_{T-1}/dtheta|| (total) of every cell type at initialisation."""
    config = {k: getattr(args, k) for k in ("cells", "probe_length", "hidden", "seeds")}
    saved = common.load_part(args.out, "cell_sensitivity", config)
    if saved is not None:
        return saved
    result = {}
    for name in args.cells:
        cell = make(name, args.hidden)
        totals, memories = [], []
        for seed in range(args.seeds):
            key = jax.random.key(seed)
            params = cell.init(key, INPUTS)
            xs = jax.random.normal(jax.random.fold_in(key, 1),
                                   (PROBE_BATCH, args.probe_length, INPUTS))
            memory, sens = memory_and_sensitivity(cell, params, xs)
            totals.append(group_norms(sens)["total"])
            memories.append(float(memory))
        result[name] = {"total": totals, "memory": memories}
    common.save_part(args.out, "cell_sensitivity", config, result)
    return result


def plot_sensitivity(sensitivity: dict, args) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    gap = 1.0 - np.asarray(args.radii)
    for i, (name, groups) in enumerate((("LRU", ("nu_log", "theta_log", "B_re")),
                                        ("linear RNN", ("W_h", "W_x")))):
        for j, group in enumerate(groups):
            values = [np.median(sensitivity[f"{name}/{r}"][group]) for r in args.radii]
            axes[0].loglog(gap, values, "o-" if i == 0 else "s--", color=f"C{2 * i + j}",
                           label=f"{name}: {group}")
        memory = [np.median(sensitivity[f"{name}/{r}"]["memory"]) for r in args.radii]
        axes[1].semilogx(gap, memory, "o-" if i == 0 else "s--", label=name)
    axes[0].set(xlabel="1 - r", ylabel="||dh_T-1 / dtheta||",
                title=f"sensitivity to parameters, T = {args.probe_length}")
    axes[1].set(xlabel="1 - r", ylabel="||dh_T-1 / dh_0||",
                title="memory through time")
    for ax in axes:
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    common.save_figure(fig, args.out / "sensitivity.png")


def report(results, problems, sensitivity, cells_sens, args) -> str:
    lines = ["# Linear recurrences against the LSTM and the GRU", "",
             f"Command: `{common.command_line()}`", "",
             f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
             f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps; test "
             f"metrics on {ms.TEST_SIZE} held-out sequences. LRU, MinGRU and MinLSTM train "
             f"with the {args.scan} scan.", "",
             "## Memory tasks", "",
             "Median test metric over seeds (seeds that learned / seeds).", ""]
    rows = []
    for problem in problems:
        row = [problem.label, problem.metric, f"{problem.baseline:.4g}"]
        for cell in args.cells:
            r = results[f"{problem.label}/{cell}"]
            row.append(f"{np.median(r['final'][problem.metric]):.3g} ({ms.learned_count(r)})")
        rows.append(row)
    lines += [common.markdown_table(["task", "metric", "no memory"]
                                    + [common.cell_label(c) for c in args.cells], rows), ""]
    for problem in problems:
        detail = [ms.detail_row(results[f"{problem.label}/{cell}"]) for cell in args.cells]
        lines += [f"### {problem.label}", "", f"Learned: {problem.criterion()}.", "",
                  common.markdown_table(ms.DETAIL_HEADER, detail), ""]
    lines += [ms.GRADIENT_NOTE, "",
              "## Memory against sensitivity to the parameters", "",
              f"T = {args.probe_length}, hidden {args.hidden}, inputs N(0, 1), median over "
              f"{args.seeds} seeds. memory: ||dh_T-1/dh_0|| (r^(T-1) for both models); the "
              "other columns ||dh_T-1/dtheta|| per parameter group: the LRU's (normalised "
              "by gamma = sqrt(1 - r^2); its eigenvalues parametrised as exp(-exp(nu_log) "
              "+ i exp(theta_log))) and the unnormalised linear RNN's (W_h = r * "
              "orthogonal).", ""]
    rows = []
    for r in args.radii:
        lru, lin = sensitivity[f"LRU/{r}"], sensitivity[f"linear RNN/{r}"]
        med = lambda d, k: f"{np.median(d[k]):.3g}"
        rows.append([r, med(lru, "memory"), med(lru, "nu_log"), med(lru, "theta_log"),
                     med(lru, "B_re"), med(lin, "W_h"), med(lin, "W_x")])
    lines += [common.markdown_table(["r", "memory", "LRU nu_log", "LRU theta_log",
                                     "LRU B_re", "linear W_h", "linear W_x"],
                                    rows), "",
              "## Every cell at initialisation", "",
              common.markdown_table(
                  ["cell", "||dh_T-1/dtheta|| (total)", "||dh_T-1/dh_0||"],
                  [[common.cell_label(c), common.spread(cells_sens[c]["total"]),
                    common.spread(cells_sens[c]["memory"])] for c in args.cells]), "",
              "Plots: training.png, grad_flow.png, sensitivity.png.", ""]
    return "\n".join(lines)


def run_options(cell: str, args) -> dict:
    """The memory-task runner's options for `cell`: the scan of a linear recurrence."""
    if not isinstance(make(cell, 1), LinearRecurrence):
        return {}
    return {"cell_options": {"parallel_scan": args.scan == "associative"}}


def check(args) -> None:
    """Fail on a bad cell, size, --steps or radius before any work."""
    common.check_cells(args)
    if not all(0 < r < 1 for r in args.radii):
        raise ValueError(f"--radii must lie in (0, 1), got {args.radii}")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = ([ms.copy_memory(t) for t in args.copy_lengths]
             + [ms.adding(t) for t in args.adding_lengths])
    units = [(f"{problem.label}/{cell}", problem, cell, run_options(cell, args))
             for problem in problems for cell in args.cells]
    results = ms.run_all(units, args)
    ms.plot_problems(results, problems, args.cells, args.out)
    sensitivity = sensitivity_study(args)
    cells_sens = cell_sensitivity(args)
    plot_sensitivity(sensitivity, args)
    common.write_results(args, {"results": results, "sensitivity": sensitivity,
                                "cell_sensitivity": cells_sens},
                         report(results, problems, sensitivity, cells_sens, args))
    return results


if __name__ == "__main__":
    main()
