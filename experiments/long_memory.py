"""Long memory: can a remedy make a cell learn what its probe says it cannot?

Orthogonal recurrences (expRNN: W = expm(A); scoRNN: a scaled Cayley transform), the
chrono-initialised LSTM and the LRU against the LSTM, the GRU and the tanh RNN, and
gradient flossing (Engelken 2023: the k largest Lyapunov exponents pushed towards
zero, before and during training) on the tanh RNN, the LSTM and the GRU. Two tasks:
copy memory in its standard form (10 symbols recalled after T blank steps, Arjovsky,
Shah and Bengio 2016) as T grows, and delayed XOR (y_t = x_(t-d) XOR x_(t-d-1)) as
the delay d grows. Per method: the success rate over seeds at every T and d, the
largest T and d learned in every seed, and the probe before and after training (the
largest Lyapunov exponents, the gradient half-life).

    python -m experiments.long_memory --quick     # under three minutes on a CPU
    python -m experiments.long_memory             # copy up to T = 1000

Writes results/long_memory/{results.json, report.md, success.png, lyapunov.png,
training.png, grad_flow.png}; every run (task x method) checkpoints to its own
folder, so a rerun resumes.
"""

from __future__ import annotations

import numpy as np

from experiments import common
from experiments import memory_studies as ms

NAME = "long_memory"
FLOSSED = "+floss"
#: method -> the cell it trains (chrono: the LSTM with the chrono initialisation at
#: the task's span); a method ending in +floss adds gradient flossing
METHODS = {"tanh": "tanh", "lstm": "lstm", "gru": "gru", "chrono": "lstm", "lru": "lru",
           "exprnn": "exprnn", "scornn": "scornn", "tanh+floss": "tanh",
           "lstm+floss": "lstm", "gru+floss": "gru"}
DEFAULTS = dict(methods=list(METHODS), seeds=3, steps=1000, hidden=64, batch=64, lr=1e-3,
                clip=1.0, copy_lengths=[100, 200, 500, 1000], xor_delays=[5, 10, 20, 40, 80],
                floss_k=8, floss_before=100, floss_every=1, floss_weight=0.1,
                lyapunov_k=4, eval_every=100, checkpoint_every=500, workers=1)
QUICK = dict(methods=["tanh", "gru", "exprnn", "scornn", "tanh+floss"], seeds=2, steps=300,
             hidden=32, batch=32, lr=2e-3, copy_lengths=[20], xor_delays=[4, 12], floss_k=4,
             floss_before=30, eval_every=50, checkpoint_every=300, workers=2)


def add_arguments(parser):
    ms.add_arguments(parser)
    parser.add_argument("--methods", type=common.names_among(list(METHODS)),
                        help=f"comma-separated methods, of {','.join(METHODS)}")
    parser.add_argument("--copy-lengths", dest="copy_lengths",
                        type=common.comma_list(common.positive_int),
                        help="blank steps T of copy memory, comma-separated")
    parser.add_argument("--xor-delays", dest="xor_delays",
                        type=common.comma_list(common.positive_int),
                        help="delays d of delayed XOR, comma-separated")
    parser.add_argument("--floss-k", dest="floss_k", type=common.positive_int,
                        help="Lyapunov exponents that flossing pushes towards zero")
    parser.add_argument("--floss-before", dest="floss_before", type=int,
                        help="first training steps on the flossing loss alone")
    parser.add_argument("--floss-every", dest="floss_every", type=int,
                        help="after those, flossing added every this many steps (0: never)")
    parser.add_argument("--floss-weight", dest="floss_weight", type=common.positive_float,
                        help="the flossing loss's weight when added to the task loss")
    parser.add_argument("--lyapunov-k", dest="lyapunov_k", type=common.positive_int,
                        help="largest Lyapunov exponents the probe reports per run")


def check(args) -> None:
    common.eval_interval(args)
    for name in ("floss_before", "floss_every"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got "
                             f"{getattr(args, name)}")
    if args.floss_k > args.hidden or args.lyapunov_k > args.hidden:
        raise ValueError(f"--floss-k and --lyapunov-k must not exceed --hidden {args.hidden}, "
                         f"got {args.floss_k} and {args.lyapunov_k}")
    if args.floss_before >= args.steps and any(m.endswith(FLOSSED) for m in args.methods):
        raise ValueError(f"--floss-before must be smaller than --steps {args.steps}, got "
                         f"{args.floss_before}")


def problems(args) -> list[ms.Problem]:
    return ([ms.copy_memory(t) for t in args.copy_lengths]
            + [ms.delayed_xor(d) for d in args.xor_delays])


def run_options(method: str, problem: ms.Problem, args) -> dict:
    """ms.run's keyword arguments for `method` on `problem`."""
    options = {"lyapunov": args.lyapunov_k}
    if method == "chrono":
        options["cell_options"] = {"chrono": float(problem.span)}
    if method.endswith(FLOSSED):
        options["flossing"] = {"k": args.floss_k, "weight": args.floss_weight,
                               "every": args.floss_every, "before": args.floss_before}
    return options


def label(method: str) -> str:
    names = {"chrono": "LSTM, chrono init", "exprnn": "OrthogonalRNN (exp)",
             "scornn": "OrthogonalRNN (cayley)"}
    base = method.removesuffix(FLOSSED)
    text = names.get(base) or common.cell_label(METHODS[base])
    return text + (" + flossing" if method.endswith(FLOSSED) else "")


def largest_learned(results: dict, method: str, chosen: list[ms.Problem], kind: str):
    """The largest span among `kind`'s problems that `method` learned in every seed
    (None: none), with the problems in increasing span."""
    done = [p.span for p in chosen if p.label.startswith(kind)
            and all(results[f"{p.label}/{method}"]["learned"])]
    return max(done) if done else None


def success_table(results: dict, chosen: list[ms.Problem], args) -> str:
    header = ["method"] + [p.label for p in chosen] + ["largest T (all seeds)",
                                                       "largest d (all seeds)"]
    rows = []
    for method in args.methods:
        row = [label(method)]
        for p in chosen:
            r = results[f"{p.label}/{method}"]
            ratio = np.asarray(r["final"][p.metric], np.float64)
            value = (f"{np.median(ratio):.3f}" if p.metric == "accuracy"
                     else f"{np.median(ratio) / p.baseline:.3f}x")
            row.append(f"{ms.learned_count(r)} ({value})")
        copy = largest_learned(results, method, chosen, "copy")
        xor = largest_learned(results, method, chosen, "delayed XOR")
        row += ["-" if copy is None else str(copy - 10),
                "-" if xor is None else str(xor - 1)]
        rows.append(row)
    return common.markdown_table(header, rows)


def probe_table(results: dict, chosen: list[ms.Problem], args) -> str:
    header = ["task", "method", "learned", "lambda_1 init", "lambda_1 trained",
              "half-life init", "half-life trained"]
    rows = []
    for p in chosen:
        for method in args.methods:
            r = results[f"{p.label}/{method}"]
            top = lambda key: common.spread([s[0] for s in r[key]])
            rows.append([p.label, label(method), ms.learned_count(r), top("lyapunov_init"),
                         top("lyapunov_trained"), ms.half_life(r["half_life_init"]),
                         ms.half_life(r["half_life_trained"])])
    return common.markdown_table(header, rows)


def report(results: dict, chosen: list[ms.Problem], args) -> str:
    return "\n".join([
        "# Long memory: orthogonal cells and gradient flossing", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per method (the same batches); Adam "
        f"lr {args.lr}, global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps. "
        f"Flossing (+floss): the {args.floss_k} largest Lyapunov exponents of the cell "
        f"driven by the training inputs, the mean of their squares as a loss: alone for the "
        f"first {args.floss_before} steps, then added with weight {args.floss_weight} every "
        f"{args.floss_every} steps (within the same step budget). Chrono: the LSTM's "
        "chrono initialisation with T_max the task's span.", "",
        "## Success", "",
        "Seeds that learned / seeds (median test metric: copy, loss / memoryless baseline, "
        f"learned below {ms.LEARNED_FRACTION}x; delayed XOR, accuracy on the scored steps, "
        f"learned at {ms.ECHO_LEARNED_ACCURACY} or more). Every seed counts, failures "
        "included; the last columns give the largest T and delay learned in every seed.", "",
        success_table(results, chosen, args), "",
        "## The probe before and after training", "",
        f"lambda_1: the largest Lyapunov exponent per step (median (range) over seeds) of "
        f"the cell driven by {ms.PROBE_SIZE} probe sequences; half-life: steps for "
        "||dL/dh_k|| of the last step's loss to halve (median; inf: no decay).", "",
        probe_table(results, chosen, args), "",
        "Plots: success.png (success rate against T and d per method), lyapunov.png "
        "(lambda_1 at initialisation and after training), training.png, grad_flow.png.", ""])


def plot_success(results: dict, chosen: list[ms.Problem], args) -> None:
    plt = common.pyplot()
    kinds = [k for k in ("copy", "delayed XOR") if any(p.label.startswith(k) for p in chosen)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        mine = [p for p in chosen if p.label.startswith(kind)]
        for i, method in enumerate(args.methods):
            rate = [np.mean(results[f"{p.label}/{method}"]["learned"]) for p in mine]
            ax.plot([p.span for p in mine], rate, "s--" if method.endswith(FLOSSED) else "o-",
                    color=f"C{i % 10}", label=label(method))
        ax.set_xscale("log")
        ax.set(xlabel="span (steps from an input to its target)", ylabel="seeds that learned",
               title=kind, ylim=(-0.05, 1.05))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    common.save_figure(fig, args.out / "success.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, method in enumerate(args.methods):
        for key, marker in (("lyapunov_init", "x"), ("lyapunov_trained", "o")):
            tops = [np.median([s[0] for s in results[f"{p.label}/{method}"][key]])
                    for p in chosen]
            ax.plot(range(len(chosen)), tops, marker, color=f"C{i % 10}",
                    label=label(method) if key == "lyapunov_trained" else None)
    ax.plot([], [], "x", color="k", label="at initialisation")
    ax.plot([], [], "o", color="k", label="after training")
    ax.axhline(0, color="k", lw=1)
    ax.set_xticks(range(len(chosen)), [p.label for p in chosen], rotation=30, ha="right",
                  fontsize=7)
    ax.set(ylabel="largest Lyapunov exponent (per step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    common.save_figure(fig, args.out / "lyapunov.png")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    chosen = problems(args)
    args.out.mkdir(parents=True, exist_ok=True)
    units = [(f"{p.label}/{method}", p, METHODS[method], run_options(method, p, args))
             for p in chosen for method in args.methods]
    results = ms.run_all(units, args)
    for method in args.methods:   # the methods' labels in place of the cells'
        for p in chosen:
            results[f"{p.label}/{method}"]["cell_class"] = label(method)
    plot_success(results, chosen, args)
    ms.plot_problems(results, chosen, args.methods, args.out)
    common.write_results(args, {"tasks": [p.label for p in chosen], "methods": args.methods,
                                "results": results}, report(results, chosen, args))
    return results


if __name__ == "__main__":
    main()
