"""Hidden-state tracking: can a recurrent network learn the exact Bayes filter of a state
it never sees?

The pet of the course material is hungry, full, sleepy or relieving; we only see what it
does (goes to the kitchen, lies down on its pillow, goes to the potty, plays), and what
it does moves its state on (`rnnjax.tasks.hidden_state`). Each cell reads the actions
(one-hot) and outputs a distribution over the hidden state at every step, trained on
the cross-entropy against the true state of fresh sampled sequences. Its minimiser is
the posterior p(s_t | a_1 .. a_t), which `filters.discrete_filter` computes exactly: a
cell's test cross-entropy over the filter's is at least 1 up to sampling noise, and 1.0
is the optimum. The actions are blurred by a swept noise level (at 1 they say nothing
of the state); a second model, a near-deterministic cycle seen through a rare landmark,
needs memory over many steps.

    python -m experiments.hidden_state --quick          # about two minutes on a CPU
    python -m experiments.hidden_state --cells lstm,gru --noises 0,0.5 --systems pet

Writes results/hidden_state/{results.json, report.md, noise.png, cycle.png,
posterior.png, training.png}; every run (system x noise x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from experiments.common import cell_label, check_cells, spread
from rnnjax import filters
from rnnjax.models import cell_with_head
from rnnjax.tasks import hidden_state

NAME = "hidden_state"
DEFAULTS = dict(cells=["tanh", "lstm", "gru"], seeds=3, steps=3000, systems=["pet", "cycle"],
                noises=[0.0, 0.25, 0.5, 0.75, 1.0], length=50, hidden=32, batch=64, lr=3e-3,
                clip=1.0, eval_every=250, checkpoint_every=1000, test_size=2000,
                cycle_states=[6, 12, 24])
QUICK = dict(seeds=2, steps=400, cells=["lstm", "gru"], noises=[0.0, 0.5], batch=32,
             eval_every=100, checkpoint_every=400, test_size=500, cycle_states=[6])
#: the target of the study: the best cell's cross-entropy within this factor of the filter's
TARGET_RATIO = 1.05
#: the learning rate decays from --lr to this fraction of it over --steps (cosine)
FINAL_LR_FRACTION = 0.02
#: keys of the held-out sequences and of the training stream
TEST_KEY, TRAIN_KEY = 10_000, 1
#: the cycle model's other settings (`hidden_state.cycle_model`)
CYCLE = dict(slip=0.02, landmark=0.8, false_alarm=0.05)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One hidden-state model to track, with its names for reports."""

    key: str                       # 'pet, noise 0.25'
    system: str                    # 'pet' or 'cycle'
    noise: float
    model: filters.DiscreteStateModel
    states: tuple[str, ...]
    actions: tuple[str, ...]


def problems(args) -> list[Problem]:
    """The pet at every noise of --noises, and the cycle of every size of --cycle-states
    (noise 0), as --systems asks."""
    out = []
    if "pet" in args.systems:
        out += [Problem(f"pet, noise {noise:g}", "pet", noise, hidden_state.pet_model(noise),
                        hidden_state.PET_STATES, hidden_state.PET_ACTIONS)
                for noise in args.noises]
    if "cycle" in args.systems:
        out += [Problem(f"cycle of {size}", "cycle", 0.0,
                        hidden_state.cycle_model(size, **CYCLE),
                        tuple(f"phase {i}" for i in range(size)), ("nothing", "landmark"))
                for size in args.cycle_states]
    return out


def scores(log_probs, states, exact) -> dict:
    """Per-step cross-entropy [..., T] against the true states, accuracy of the most
    likely state [..., T], and KL(exact posterior || log_probs) [..., T], each a mean
    over the test sequences (the axis before T); log_probs [..., B, T, S]."""
    log_probs = jnp.asarray(log_probs)
    states = jnp.broadcast_to(states, log_probs.shape[:-1])
    picked = jnp.take_along_axis(log_probs, states[..., None], axis=-1)[..., 0]
    hits = (jnp.argmax(log_probs, -1) == states).astype(jnp.float32)
    kl = jnp.sum(jnp.exp(exact) * (exact - log_probs), axis=-1)
    return {"cross_entropy": np.asarray(-picked.mean(-2)), "accuracy": np.asarray(hits.mean(-2)),
            "kl": np.asarray(kl.mean(-2))}


def run_problem(problem: Problem, args) -> dict:
    """Train every cell on the problem; score the cells, the exact filter and the
    marginal (the model without the actions) on held-out sequences."""
    model, num_actions = problem.model, len(problem.actions)
    test_states, test_actions = filters.simulate(model, jax.random.key(TEST_KEY), args.length,
                                                 args.test_size)
    exact = filters.discrete_filter(model, test_actions)
    marginal = jnp.broadcast_to(hidden_state.marginal_log_probs(model, args.length),
                                exact.shape).astype(exact.dtype)
    references = {name: scores(log_probs, test_states, exact)
                  for name, log_probs in (("filter", exact), ("marginal", marginal))}
    filter_ce = float(references["filter"]["cross_entropy"].mean())
    summary = lambda s: {k: float(v.mean()) for k, v in s.items()}
    example = {"states": np.asarray(test_states[0]).tolist(),
               "actions": np.asarray(test_actions[0]).tolist(),
               "posteriors": {"filter": np.exp(np.asarray(exact[0])).tolist()}}

    def batch_fn(step):
        states, actions = filters.simulate(
            model, jax.random.fold_in(jax.random.key(TRAIN_KEY), step), args.length, args.batch)
        return jax.nn.one_hot(actions, num_actions), states

    test_inputs = jax.nn.one_hot(test_actions, num_actions)
    cells = {}
    for cell in args.cells:
        net = cell_with_head(cell, args.hidden, num_actions, len(problem.states))
        # every model's log-posteriors on the test set [models, B, T, S]
        predict = jax.jit(jax.vmap(
            lambda p: jax.nn.log_softmax(net.outputs(p, test_inputs), axis=-1)))

        def relative(params):
            log_probs = predict(params)
            picked = jnp.take_along_axis(log_probs, test_states[None, ..., None], axis=-1)
            return -picked.mean((1, 2, 3)) / filter_ce

        def loss_fn(params, batch, key):
            xs, states = batch
            logits = net.outputs(params, xs)
            return optax.softmax_cross_entropy_with_integer_labels(logits, states).mean(), {}

        trained = common.train(
            args.out / common.folder(problem.key) / cell, net.init, loss_fn, batch_fn, args,
            hyper={"learning_rate": args.lr}, clip=args.clip,
            optimizer=common.cosine_adam(args.steps, FINAL_LR_FRACTION),
            evaluate=lambda p: {"test_relative": relative(p)},
            eval_every=min(args.eval_every, args.steps),
            # the schedule spans --steps: a run cannot be extended, only rerun or resumed
            settings={"problem": problem.key, "cell": cell, "hidden": args.hidden,
                      "batch": args.batch, "length": args.length, "decay_steps": args.steps,
                      "model": [np.asarray(m).tolist() for m in model]},
            desc=f"{problem.key}, {cell}")
        log_probs = common.on_trained(predict, trained)                 # [seeds, B, T, S]
        per_step = scores(log_probs, test_states, exact)              # NaN if diverged
        ce = per_step["cross_entropy"].mean(-1)
        best = int(np.nanargmin(ce)) if np.isfinite(ce).any() else 0
        steps, values = common.series(trained.history, "test_relative")
        cells[cell] = {
            "cell_class": cell_label(cell), "nonfinite": trained.params is None,
            "cross_entropy": ce.tolist(), "relative": (ce / filter_ce).tolist(),
            "accuracy": per_step["accuracy"].mean(-1).tolist(),
            "kl": per_step["kl"].mean(-1).tolist(),
            "curve": [*zip(steps, values.tolist()), (args.steps, (ce / filter_ce).tolist())],
            "best_seed": best,
            "cross_entropy_per_step_best": per_step["cross_entropy"][best].tolist(),
            "seconds": common.train_seconds(trained.history)}
        example["posteriors"][cell] = np.exp(log_probs[best, 0]).tolist()
    return {"system": problem.system, "noise": problem.noise, "states": list(problem.states),
            "actions": list(problem.actions),
            "model": {name: np.asarray(m).tolist() for name, m in zip(model._fields, model)},
            "references": {name: {**summary(s),
                                  "cross_entropy_per_step": s["cross_entropy"].tolist()}
                           for name, s in references.items()},
            "cells": cells, "example": example}


def best_cell(r: dict) -> tuple[str | None, float]:
    """The cell whose median relative cross-entropy over seeds is lowest, and that median."""
    medians = {c: float(np.nanmedian(v["relative"])) for c, v in r["cells"].items()
               if np.isfinite(v["relative"]).any()}
    if not medians:
        return None, float("nan")
    cell = min(medians, key=medians.get)
    return cell, medians[cell]


# -- report and plots -----------------------------------------------------------------------
def _matrix(rows, row_names, col_names, digits=2) -> str:
    return common.markdown_table(["", *col_names], [
        [name, *(f"{v:.{digits}f}" for v in row)] for name, row in zip(row_names, rows)])


def describe_pet() -> list[str]:
    """The pet's tables, as the report states them."""
    states, actions = hidden_state.PET_STATES, hidden_state.PET_ACTIONS
    rules = [f"- {s} x {a} -> {t}" for (s, a), t in hidden_state.PET_RULES.items()]
    return [
        "### The pet's model", "",
        "p(action | state) at noise 0 (noise q blurs it to (1 - q) E + q / 4):", "",
        _matrix(hidden_state.PET_EMISSION, states, actions), "",
        "p(next state | state) where no rule applies (the state-transition equation):", "",
        _matrix(hidden_state.PET_DRIFT, states, states), "",
        f"Rules (the state-prediction equation), each taken with probability "
        f"{hidden_state.PET_RULE_PROBABILITY}, the drift otherwise:", "", *rules, "",
        "The material gives the first three rules and the drift of full and sleepy; "
        "completed here: " + "; ".join(hidden_state.PET_COMPLETED) + ". The first state "
        "is uniform.", ""]


def report(results: dict, args) -> str:
    lines = ["# Hidden-state tracking: recurrent networks against the exact Bayes filter", "",
             f"Command: `{common.command_line()}`", "",
             f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr} "
             f"(cosine decay to {FINAL_LR_FRACTION} x), global-norm clip {args.clip}, batch "
             f"{args.batch} fresh sequences of {args.length} steps per training step, "
             f"{args.steps} steps. Test: {args.test_size} held-out sequences. Cross-entropy: "
             "-log q(s_t) of the true hidden state, in nats, averaged over sequences and "
             "steps; relative: over the exact filter's (1.0 is the optimum); KL: from the "
             "exact posterior to the cell's, per step. The marginal knows the model but not "
             "the actions. Median over seeds (range); every seed counts.", ""]
    rows = []
    for key, r in results.items():
        cell, ratio = best_cell(r)
        rows.append([key, f"{r['references']['filter']['cross_entropy']:.3f}",
                     f"{r['references']['filter']['accuracy']:.3f}",
                     f"{r['references']['marginal']['cross_entropy']:.3f}",
                     *(spread(c["relative"], 4) for c in r["cells"].values()),
                     f"{cell_label(cell) if cell else '-'}: {ratio:.3f}",
                     "met" if ratio <= TARGET_RATIO else "not met"])
    cells = next(iter(results.values()))["cells"] if results else {}
    lines += ["## Summary", "",
              f"Target: the best cell within {TARGET_RATIO} x the filter's cross-entropy.", "",
              common.markdown_table(["problem", "filter CE", "filter accuracy", "marginal CE",
                                     *(f"{c['cell_class']} / filter" for c in cells.values()),
                                     "best (median)", "target"], rows), ""]
    for key, r in results.items():
        table = [[name, f"{s['cross_entropy']:.4f}",
                  f"{s['cross_entropy'] / r['references']['filter']['cross_entropy']:.3f}",
                  f"{s['accuracy']:.3f}", f"{s['kl']:.4f}"]
                 for name, s in r["references"].items()]
        table += [[c["cell_class"] + (" (diverged)" if c["nonfinite"] else ""),
                   spread(c["cross_entropy"], 4), spread(c["relative"], 4),
                   spread(c["accuracy"]),
                   spread(c["kl"])] for c in r["cells"].values()]
        lines += [f"## {key}", "", common.markdown_table(
            ["estimator", "cross-entropy", "/ filter", "accuracy", "KL"], table), ""]
    if any(r["system"] == "pet" for r in results.values()):
        lines += describe_pet()
    if any(r["system"] == "cycle" for r in results.values()):
        lines += ["### The cycle", "",
                  f"{', '.join(map(str, args.cycle_states))} phases stepped in order, "
                  f"staying put with probability "
                  f"{CYCLE['slip']}; a landmark seen with probability {CYCLE['landmark']} in "
                  f"phase 0 and {CYCLE['false_alarm']} elsewhere. The phase is known only by "
                  "counting steps since the last landmark, across missed ones.", ""]
    lines += ["Plots: noise.png and cycle.png (relative cross-entropy and accuracy against "
              "the noise on the pet's actions and the size of the cycle), posterior.png (a "
              "held-out sequence: the true state, the filter's and each cell's "
              "posterior, best seed), training.png (test cross-entropy over the "
              "filter's during training).", ""]
    return "\n".join(lines)


def plot_sweep(group: dict, xs: list, xlabel: str, title: str, path) -> None:
    """Relative cross-entropy and accuracy of every cell (median and range over seeds),
    the filter and the marginal, against the swept setting `xs` of the problems in
    `group`."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for j, cell in enumerate(next(iter(group.values()))["cells"]):
        for ax, metric in zip(axes, ("relative", "accuracy")):
            values = np.asarray([r["cells"][cell][metric] for r in group.values()])
            common.band(ax, xs, values, f"C{j}", cell_label(cell))
            ax.plot(xs, np.median(values, axis=1), "o", color=f"C{j}", ms=3)
    axes[0].axhline(1.0, color="k", ls="--", lw=1, label="exact filter")
    for name, style in (("filter", "--"), ("marginal", ":")):
        axes[1].plot(xs, [r["references"][name]["accuracy"] for r in group.values()], style,
                     color="k" if name == "filter" else "0.4", lw=1,
                     label="exact filter" if name == "filter" else "marginal (actions unseen)")
    axes[0].set(xlabel=xlabel, ylabel="test cross-entropy / filter's",
                title=f"{title}: distance to the optimum")
    axes[1].set(xlabel=xlabel, ylabel="accuracy of the most likely state",
                title=f"{title}: state recovered")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    common.save_figure(fig, path)


def plot(results: dict, out) -> None:
    plt = common.pyplot()
    pet = {k: r for k, r in results.items() if r["system"] == "pet"}
    cycles = {k: r for k, r in results.items() if r["system"] == "cycle"}
    cells = list(next(iter(results.values()))["cells"])
    if len(pet) > 1:
        plot_sweep(pet, [r["noise"] for r in pet.values()], "noise on the actions", "the pet",
                   out / "noise.png")
    if len(cycles) > 1:
        plot_sweep(cycles, [len(r["states"]) for r in cycles.values()], "phases of the cycle",
                   "the cycle", out / "cycle.png")
    shown = [k for k in results if k == next(iter(pet), None) or results[k]["system"] == "cycle"]
    fig, axes = plt.subplots(len(shown), 1 + len(cells), squeeze=False,
                             figsize=(3.6 * (1 + len(cells)), 3.2 * len(shown)))
    for row, key in enumerate(shown):
        r = results[key]
        example = r["example"]
        for col, name in enumerate(["filter", *cells]):
            ax = axes[row, col]
            ax.imshow(np.asarray(example["posteriors"][name]).T, aspect="auto",
                      origin="lower", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
            ax.plot(example["states"], ".", color="C3", ms=3, label="true state")
            title = "exact filter" if name == "filter" else cell_label(name)
            ax.set(title=f"{key}: {title}", xlabel="step")
            names = r["states"] if len(r["states"]) <= 6 else range(len(r["states"]))
            ax.set_yticks(range(len(r["states"])), names, fontsize=7)
        axes[row, 0].legend(fontsize=7, loc="upper right")
    common.save_figure(fig, out / "posterior.png")
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (key, r) in zip(axes[0], results.items()):
        for j, c in enumerate(r["cells"].values()):
            common.band(ax, [s for s, _ in c["curve"]], [v for _, v in c["curve"]], f"C{j}",
                        c["cell_class"])
        ax.axhline(1.0, color="k", ls="--", lw=1, label="exact filter")
        ax.set(title=key, xlabel="training step", ylabel="test cross-entropy / filter's",
               yscale="log")
        ax.legend(fontsize=7)
    common.save_figure(fig, out / "training.png")


def add_arguments(parser) -> None:
    parser.add_argument("--systems", type=common.names_among(("pet", "cycle")),
                        help="pet, cycle (comma-separated)")
    parser.add_argument("--noises", type=common.comma_list(float),
                        help="noise levels on the pet's actions, each in [0, 1]")
    parser.add_argument("--length", type=common.positive_int, help="steps per sequence")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="held-out sequences")
    parser.add_argument("--cycle-states", dest="cycle_states",
                        type=common.comma_list(common.positive_int),
                        help="sizes of the cycle model (phases, each at least 2)")


def check(args) -> None:
    """Fail on a bad cell, noise level or cycle size before any work."""
    check_cells(args)
    bad = [q for q in args.noises if not 0.0 <= q <= 1.0]
    if bad:
        raise ValueError(f"--noises must lie in [0, 1], got {bad}")
    if min(args.cycle_states) < 2:
        raise ValueError(f"--cycle-states must each be at least 2, got {args.cycle_states}")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {p.key: run_problem(p, args) for p in problems(args)}
    plot(results, args.out)
    common.write_results(args, {"results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
