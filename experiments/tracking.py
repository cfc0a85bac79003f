"""Tracking: can a recurrent network learn the Kalman filter, and go past the EKF and
UKF where the system is nonlinear?

Each cell reads the noisy observations z_1..z_t of a simulated state-space model and
outputs its estimate of the state x_t at every step, trained on the mean squared error
against the true state (fresh sequences at every training step). Test MSEs on held-out
sequences are compared with the model-based filters of `rnnjax.filters`:

- linear: a point at nearly constant velocity, its position observed with noise. The
  Kalman filter is the optimum, so MSE / MSE_Kalman >= 1 up to sampling noise.
- pendulum: its horizontal position sin(angle) observed with noise. The EKF and UKF
  are approximations; a bootstrap particle filter with many particles is close to
  the optimum.

    python -m experiments.tracking --quick          # about two minutes on a CPU
    python -m experiments.tracking --cells lstm,gru --systems pendulum

Writes results/tracking/{results.json, report.md, trajectory.png, mse_per_step.png,
training.png}; every run (system x cell) checkpoints to its own folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.common import cell_label, check_cells, spread
from rnnjax import filters
from rnnjax.models import cell_with_head

NAME = "tracking"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "gru"], seeds=3, steps=6000,
                systems=["linear", "pendulum"], length=50, hidden=32, batch=64, lr=5e-3,
                clip=1.0, eval_every=500, checkpoint_every=1000, test_size=1000,
                particles=5000)
QUICK = dict(seeds=2, steps=300, cells=["tanh", "lstm", "gru"], length=50, hidden=32,
             batch=32, lr=5e-3, eval_every=100, checkpoint_every=300, test_size=256,
             particles=500)
#: the systems' parameters (`filters.constant_velocity`, `filters.pendulum`)
LINEAR = dict(dims=1, dt=1.0, accel_noise=0.001, obs_std=1.0, position_std=1.0,
              velocity_std=0.1)
PENDULUM = dict(dt=0.05, gravity=9.81, accel_noise=0.1, obs_std=0.3, angle_std=1.0,
                rate_std=0.5)
_listed = lambda params: ", ".join(f"{k} {v}" for k, v in params.items())
#: what each system's table shows, in the report
NOTES = {
    "linear": ("A point at nearly constant velocity (1-d), its position observed with noise "
               f"({_listed(LINEAR)}). The Kalman filter is the optimum: a cell's ratio to it "
               "is at least 1 up to the sampling noise of the test set."),
    "pendulum": ("A pendulum observed through sin(angle) with noise "
                 f"({_listed(PENDULUM)}). The EKF and UKF (alpha 1, beta 2, kappa 0) "
                 "approximate the posterior by a Gaussian; "
                 "the bootstrap particle filter ({particles} particles) approaches the "
                 "optimum, so a cell's ratio to it shows how much is left to learn."),
}
#: the learning rate decays from --lr to this fraction of it over --steps (cosine): the
#: last steps average out the gradient noise, which matters near the optimum
FINAL_LR_FRACTION = 0.02
#: keys of the held-out sequences, the particle filter and the input/target scales
TEST_KEY, PARTICLE_KEY, SCALE_KEY = 10_000, 20_000, 30_000


@dataclasses.dataclass(frozen=True)
class System:
    """A state-space model with its reference filters; the first reference is the one
    training curves are measured against."""

    name: str
    model: object
    components: tuple[str, ...]                # the state's components, for reports
    references: dict[str, Callable]            # name -> (model, zs [B, T, m]) -> means
    observed: int | None = None                # the component observed directly, if any

    @property
    def primary(self) -> str:
        return next(iter(self.references))


def make_system(name: str, args) -> System:
    """The system called `name` ('linear' or 'pendulum') with its reference filters."""
    if name == "linear":
        model = filters.constant_velocity(**LINEAR)
        return System(name, model, ("position", "velocity"),
                      {"Kalman": lambda m, zs: filters.kalman_filter(m, zs)[0]}, observed=0)
    if name == "pendulum":
        particle_means = lambda m, zs: filters.particle_filter(
            m, zs, jax.random.key(PARTICLE_KEY), args.particles)[0]
        return System(name, filters.pendulum(**PENDULUM), ("angle", "angular velocity"), {
            "EKF": lambda m, zs: filters.extended_kalman_filter(m, zs)[0],
            "UKF": lambda m, zs: filters.unscented_kalman_filter(m, zs)[0],
            "particle": particle_means})
    raise ValueError(f"--systems must be among linear, pendulum, got {name!r}")


def squared_errors(estimates, states) -> np.ndarray:
    """Mean squared error per step and component [..., T, n], over the sequences (the
    axis before T)."""
    return np.asarray(jnp.mean((estimates - states) ** 2, axis=-3))


def run_system(system: System, args) -> dict:
    """Train every cell on the system and measure cells and references on the test set."""
    model = system.model
    test_xs, test_zs = filters.simulate(model, jax.random.key(TEST_KEY), args.length,
                                        args.test_size)
    # fixed scales of the inputs and targets, so that every cell sees values near 1
    scale_xs, scale_zs = filters.simulate(model, jax.random.key(SCALE_KEY), args.length,
                                          args.test_size)
    x_scale, z_scale = jnp.std(scale_xs, axis=(0, 1)), jnp.std(scale_zs, axis=(0, 1))

    references, examples = {}, {}
    for ref, estimate in system.references.items():
        means = estimate(model, test_zs)
        per_step = squared_errors(means, test_xs)
        references[ref] = {"mse": float(per_step.mean(0).sum()),
                           "mse_per_component": per_step.mean(0).tolist(),
                           "mse_per_step": per_step.tolist()}
        examples[ref] = np.asarray(means[0]).tolist()

    def batch_fn(step):
        xs, zs = filters.simulate(model, jax.random.fold_in(jax.random.key(1), step),
                                  args.length, args.batch)
        return zs / z_scale, xs / x_scale

    cells = {}
    for cell in args.cells:
        net = cell_with_head(cell, args.hidden, test_zs.shape[-1], test_xs.shape[-1])
        # every model's estimates of the test set [models, B, T, n], in the state's units
        predict = jax.jit(jax.vmap(lambda p: net.outputs(p, test_zs / z_scale) * x_scale))
        primary_mse = references[system.primary]["mse"]
        relative = lambda p: squared_errors(predict(p), test_xs).mean(-2).sum(-1) / primary_mse
        trained = common.train(
            args.out / system.name / cell, net.init,
            lambda params, batch, key: (jnp.mean((net.outputs(params, batch[0])
                                                  - batch[1]) ** 2), {}),
            batch_fn, args, hyper={"learning_rate": args.lr}, clip=args.clip,
            optimizer=common.cosine_adam(args.steps, FINAL_LR_FRACTION),
            evaluate=lambda p: {"test_relative": relative(p)},
            eval_every=min(args.eval_every, args.steps),
            # the schedule spans --steps: a run cannot be extended, only rerun or resumed
            settings={"system": system.name, "cell": cell, "hidden": args.hidden,
                      "batch": args.batch, "length": args.length, "decay_steps": args.steps},
            desc=f"{system.name}, {cell}")
        estimates = common.on_trained(predict, trained)               # [seeds, B, T, n]
        per_step = squared_errors(estimates, test_xs)                 # [seeds, T, n]
        per_component = per_step.mean(1)                              # [seeds, n]
        total = per_component.sum(-1)
        best = int(np.nanargmin(total)) if np.isfinite(total).any() else 0
        steps, values = common.series(trained.history, "test_relative")
        cells[cell] = {
            "cell_class": cell_label(cell), "nonfinite": trained.params is None,
            "mse": total.tolist(), "mse_per_component": per_component.tolist(),
            "relative": {ref: (total / r["mse"]).tolist() for ref, r in references.items()},
            "relative_per_component": {
                ref: (per_component / np.asarray(r["mse_per_component"])).tolist()
                for ref, r in references.items()},
            "curve": [*zip(steps, values.tolist()),
                      (args.steps, (total / primary_mse).tolist())],
            "best_seed": best, "mse_per_step_best": per_step[best].tolist(),
            "seconds": common.train_seconds(trained.history)}
        examples[cell] = estimates[best, 0].tolist()
    return {"components": list(system.components), "observed": system.observed,
            "primary": system.primary, "references": references, "cells": cells,
            "x_scale": np.asarray(x_scale).tolist(), "z_scale": np.asarray(z_scale).tolist(),
            "example": {"states": np.asarray(test_xs[0]).tolist(),
                        "observations": np.asarray(test_zs[0]).tolist(),
                        "estimates": examples}}


# -- report and plots -----------------------------------------------------------------------
def report(results: dict, args) -> str:
    lines = ["# Tracking: recurrent networks against Kalman filters", "",
             f"Command: `{common.command_line()}`", "",
             f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr} "
             f"(cosine decay to {FINAL_LR_FRACTION} x over the steps), "
             f"global-norm clip {args.clip}, batch {args.batch} fresh sequences of "
             f"{args.length} steps per training step, {args.steps} steps. Test: "
             f"{args.test_size} held-out sequences. MSE: the squared error summed over the "
             "state's components, averaged over sequences and steps; relative: a cell's MSE "
             "over a reference filter's (below 1: better than the filter). Median over seeds "
             "(range); every seed counts, including runs that failed to learn.", ""]
    for name, r in results.items():
        refs = list(r["references"])
        header = (["estimator", "MSE"] + [f"/ {ref}" for ref in refs]
                  + [f"{c} / {r['primary']}" for c in r["components"]])
        rows = [[ref, f"{v['mse']:.4g}"] + [f"{v['mse'] / r['references'][o]['mse']:.3f}"
                                             for o in refs]
                + [f"{c / p:.3f}" for c, p in zip(
                    v["mse_per_component"], r["references"][r["primary"]]["mse_per_component"])]
                for ref, v in r["references"].items()]
        for c in r["cells"].values():
            per_component = np.asarray(c["relative_per_component"][r["primary"]])
            rows.append([c["cell_class"] + (" (diverged)" if c["nonfinite"] else ""),
                         spread(c["mse"])] + [spread(c["relative"][ref]) for ref in refs]
                        + [spread(per_component[:, i]) for i in range(per_component.shape[1])])
        lines += [f"## {name}", "", NOTES[name].replace("{particles}", str(args.particles)), "",
                  common.markdown_table(header, rows), ""]
    lines += ["Plots: trajectory.png (a held-out sequence: the true state, the observations, "
              "the filters' and each cell's estimate, best seed), mse_per_step.png (the "
              "transient from the prior; best seed), training.png (test MSE relative to the "
              "first reference during training).", ""]
    return "\n".join(lines)


def plot(results: dict, out) -> None:
    plt = common.pyplot()
    systems = list(results)
    width = max(len(r["components"]) for r in results.values()) + 1
    traj, traj_axes = plt.subplots(len(systems), width, figsize=(4.8 * width, 3.6 * len(systems)),
                                   squeeze=False)
    steps_fig, step_axes = plt.subplots(len(systems), width - 1,
                                        figsize=(4.8 * (width - 1), 3.6 * len(systems)),
                                        squeeze=False)
    train_fig, train_axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 3.8),
                                         squeeze=False)
    for row, name in enumerate(systems):
        r = results[name]
        example = r["example"]
        states, zs = np.asarray(example["states"]), np.asarray(example["observations"])
        names = [*r["references"], *r["cells"]]
        for i, component in enumerate(r["components"]):
            ax = traj_axes[row, i]
            ax.plot(states[:, i], "k", lw=2, label="true state")
            if i == r["observed"]:
                ax.plot(zs[:, 0], ".", color="0.5", ms=3, label="observation")
            for j, key in enumerate(names):
                ax.plot(np.asarray(example["estimates"][key])[:, i], color=f"C{j}", lw=1,
                        ls="--" if key in r["references"] else "-", label=key)
            ax.set(title=f"{name}: {component}", xlabel="step")
            ax = step_axes[row, i]
            for j, key in enumerate(names):
                per_step = (r["references"][key]["mse_per_step"] if key in r["references"]
                            else r["cells"][key]["mse_per_step_best"])
                ax.plot(np.asarray(per_step)[:, i], color=f"C{j}",
                        ls="--" if key in r["references"] else "-", label=key)
            ax.set(title=f"{name}: {component}", xlabel="step", ylabel="test MSE", yscale="log")
        ax = traj_axes[row, width - 1]
        if r["observed"] is None:        # observations of no single component: a panel
            ax.plot(zs[:, 0], ".", color="0.5", ms=3, label="observation")
            ax.set(title=f"{name}: observations", xlabel="step")
        else:
            ax.axis("off")
        traj_axes[row, 0].legend(fontsize=7)
        step_axes[row, 0].legend(fontsize=7)
        ax = train_axes[0, row]
        for j, c in enumerate(r["cells"].values()):
            common.band(ax, [s for s, _ in c["curve"]], [v for _, v in c["curve"]],
                        f"C{j + len(r['references'])}", c["cell_class"])
        ax.axhline(1.0, color="k", ls="--", lw=1, label=r["primary"])
        ax.set(title=name, xlabel="training step", ylabel=f"test MSE / {r['primary']}",
               yscale="log")
        ax.legend(fontsize=7)
    for fig, file in ((traj, "trajectory.png"), (steps_fig, "mse_per_step.png"),
                      (train_fig, "training.png")):
        common.save_figure(fig, out / file)


def add_arguments(parser) -> None:
    parser.add_argument("--systems", type=common.names_among(("linear", "pendulum")),
                        help="linear, pendulum (comma-separated)")
    parser.add_argument("--length", type=common.positive_int, help="steps per sequence")
    parser.add_argument("--test-size", dest="test_size", type=common.positive_int,
                        help="held-out sequences")
    parser.add_argument("--particles", type=common.positive_int,
                        help="particles of the reference particle filter")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check_cells)
    systems = [make_system(name, args) for name in args.systems]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {system.name: run_system(system, args) for system in systems}
    plot(results, args.out)
    common.write_results(args, {"results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
