"""Forecasting real series: recurrent cells against a sliding-window MLP and naive baselines.

One-step-ahead forecasts of two real series (`rnnjax.tasks.series`): yearly sunspot
numbers 1700-2008 and monthly airline passengers 1949-1960. The last
`--test-fraction` of each series is its test period. Each model reads a window of
the last `--window` values (transformed: log for `--log` series, first differences
for `--difference` series, then standardised with statistics of the training part
only) and forecasts the next one. The models are trained once, on the windows of the
training part; the test is walk-forward without refitting: at each test time the
forecast comes from the true history up to that time. The models: each recurrent
cell (the cell reads the window, a Dense reads the forecast from its last state), an
MLP on the same window (one tanh hidden layer of `--hidden` units), persistence
(y_t+1 = y_t) and seasonal naive (y_t+1 = y_t+1-s; s = 12 months, 11 years for the
sunspot cycle). Scores: RMSE and MAE over the test period in the series' own units.

The series are short (a few hundred training windows), so longer training mostly
memorises them: the default 500 steps were chosen on the training part alone (its
last quarter held out), where the held-out error was lowest after 200-500 steps and
rose with longer training (3000 steps) for every model.

    python -m experiments.forecasting --quick        # about a minute on a CPU
    python -m experiments.forecasting --cells lstm --series airline

Writes results/forecasting/{results.json, report.md, forecasts.png, training.png};
every trained model (series x model) checkpoints to its own folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj
from experiments import common
from rnnjax.cells import make
from rnnjax.models import CellWithHead, cell_with_head, combine, part
from rnnjax.tasks import series as ts

NAME = "forecasting"
MLP = "mlp"
DEFAULTS = dict(cells=["tanh", "lstm", "gru"], seeds=5, steps=500,
                series=["sunspots", "airline"], window=24, test_fraction=0.25,
                log=["airline"], difference=["airline"], hidden=32, batch=64, lr=3e-3,
                weight_decay=0.0, clip=1.0, eval_every=50, checkpoint_every=500)
QUICK = dict(seeds=2, steps=300, checkpoint_every=300)


def add_arguments(parser) -> None:
    parser.add_argument("--series", type=common.names_among(ts.LOADERS),
                        help="series to forecast, comma-separated")
    parser.add_argument("--window", type=common.positive_int,
                        help="values each model reads per forecast")
    parser.add_argument("--test-fraction", dest="test_fraction", type=float,
                        help="the last part of each series kept for the walk-forward test")
    parser.add_argument("--log", type=common.names_among(ts.LOADERS, allow_none=True),
                        help="series modelled in log space, comma-separated ('' for none)")
    parser.add_argument("--difference",
                        type=common.names_among(ts.LOADERS, allow_none=True),
                        help="series modelled as first differences, comma-separated "
                             "('' for none)")
    parser.add_argument("--weight-decay", dest="weight_decay", type=float,
                        help="AdamW's decoupled weight decay (0: plain Adam)")


# -- models: windows [n, width] -> forecasts [n] of the next transformed value ------------
@dataclasses.dataclass(frozen=True)
class WindowRNN:
    """A recurrent cell reads the window; a Dense reads the forecast from its last state."""

    model: CellWithHead

    def init(self, key):
        return self.model.init(key)

    def predict(self, params, windows):
        return self.model.last(params, windows[..., None])[..., 0]


@dataclasses.dataclass(frozen=True)
class WindowMLP:
    """The window as one input vector, one tanh hidden layer, a linear output."""

    hidden: rj.Dense
    out: rj.Dense
    width: int

    def init(self, key):
        return combine(part("hidden", lambda k: self.hidden.init(k, self.width)),
                       part("out", lambda k: self.out.init(k, self.hidden.features)))(key)

    def predict(self, params, windows):
        return self.out(params["out"], jnp.tanh(self.hidden(params["hidden"], windows)))[..., 0]


def build(name: str, args):
    """The model `name`: a cell name, or MLP."""
    if name == MLP:
        return WindowMLP(rj.Dense(args.hidden), rj.Dense(1), args.window)
    return WindowRNN(cell_with_head(name, args.hidden, 1, 1))


def label(name: str, args) -> str:
    return f"MLP (window {args.window})" if name == MLP else common.cell_label(name)


# -- data ---------------------------------------------------------------------------------
class Prepared(NamedTuple):
    """A series split for the walk-forward test, with the training windows."""

    series: ts.Series
    transform: ts.Transform
    split: int                  # the first test time
    train_inputs: jax.Array     # [n, window] float32
    train_targets: jax.Array    # [n]
    fit_times: np.ndarray       # training-part times every model is scored on in-sample

    @property
    def test_times(self) -> np.ndarray:
        return np.arange(self.split, len(self.series.values))

    @property
    def test_windows(self):
        """The test period's windows [n, window] and targets [n] on the model's scale."""
        z = self.transform(self.series.values)
        width = self.train_inputs.shape[1]
        return (jnp.asarray(ts.windows(z, self.test_times, width), jnp.float32),
                jnp.asarray(z[self.test_times], jnp.float32))


def prepare(series: ts.Series, args) -> Prepared:
    """Split, fit the transform on the training part, and cut its windows."""
    values = series.values
    split = ts.split_point(len(values), args.test_fraction)
    transform = ts.Transform.fit(values, split, log=series.name in args.log,
                                 difference=series.name in args.difference)
    first = ts.first_time(args.window, transform)
    if first >= split:
        raise ValueError(f"--window {args.window} leaves no training windows in the "
                         f"{split} training values of {series.name}")
    times = np.arange(first, split)
    z = transform(values)
    return Prepared(series, transform, split,
                    jnp.asarray(ts.windows(z, times, args.window), jnp.float32),
                    jnp.asarray(z[times], jnp.float32),
                    np.arange(max(first, series.period), split))


def scores(forecasts, prepared: Prepared, in_sample) -> dict:
    """Test RMSE and MAE per seed, the forecasts, and the in-sample RMSE."""
    truth = prepared.series.values[prepared.split:]
    forecasts = np.atleast_2d(forecasts)
    return {"rmse": ts.rmse(forecasts, truth).tolist(), "mae": ts.mae(forecasts, truth).tolist(),
            "train_rmse": np.atleast_1d(
                ts.rmse(in_sample, prepared.series.values[prepared.fit_times])).tolist(),
            "forecast": forecasts.tolist()}


def baselines(prepared: Prepared) -> dict:
    values, period, fit_start = prepared.series.values, prepared.series.period, \
        prepared.fit_times[0]
    train = values[:prepared.split]
    return {
        "persistence": {"label": "persistence", **scores(
            ts.persistence(values, prepared.split), prepared, ts.persistence(train, fit_start))},
        "seasonal naive": {"label": f"seasonal naive (s = {period})", **scores(
            ts.seasonal_naive(values, prepared.split, period), prepared,
            ts.seasonal_naive(train, fit_start, period))},
    }


def train_model(name: str, prepared: Prepared, args) -> dict:
    """Train `args.seeds` models `name` at once on the training windows; score them."""
    model = build(name, args)
    inputs, targets = prepared.train_inputs, prepared.train_targets

    def loss_fn(params, batch, key):
        x, y = batch
        return jnp.mean((model.predict(params, x) - y) ** 2), {}

    def batch_fn(step):   # windows drawn with replacement, a pure function of the step
        rows = jax.random.randint(jax.random.fold_in(jax.random.key(1), step), (args.batch,),
                                  0, len(targets))
        return inputs[rows], targets[rows]

    test_inputs, test_targets = prepared.test_windows
    test_mse = jax.jit(jax.vmap(
        lambda p: jnp.mean((model.predict(p, test_inputs) - test_targets) ** 2)))
    series = prepared.series.name
    trained = common.train(
        args.out / series / name, model.init, loss_fn, batch_fn, args,
        hyper={"learning_rate": args.lr, "weight_decay": args.weight_decay},
        optimizer=optax.adamw, clip=args.clip, desc=f"{series}, {name}",
        evaluate=lambda p: {"test_mse": test_mse(p)}, eval_every=min(args.eval_every, args.steps),
        settings={"series": series, "model": name, "window": args.window,
                  "hidden": args.hidden, "batch": args.batch,
                  "transform": dataclasses.asdict(prepared.transform)})
    predict = jax.jit(jax.vmap(model.predict, in_axes=(0, None)))

    # one call for the in-sample and the test forecasts: one compilation
    times = np.concatenate([prepared.fit_times, prepared.test_times])
    forecasts = ts.walk_forward(lambda w: common.on_trained(lambda p: predict(p, w), trained),
                                prepared.series.values, prepared.transform, times, args.window)
    in_sample, test = np.split(forecasts, [len(prepared.fit_times)], axis=-1)

    curves = {}
    for key in ("loss", "test_mse"):
        steps, values = common.series(trained.history, key)
        curves[key] = [steps, values.tolist()]
    return {"label": label(name, args),
            **scores(test, prepared, in_sample),
            "nonfinite": trained.params is None, "curves": curves,
            "seconds": common.train_seconds(trained.history)}


def run_series(series: ts.Series, args) -> dict:
    prepared = prepare(series, args)
    models = baselines(prepared)
    for name in [*args.cells, MLP]:
        models[name] = train_model(name, prepared, args)
    persistence = models["persistence"]
    for r in models.values():
        for metric in ("rmse", "mae"):
            r[metric + "_ratio"] = (np.asarray(r[metric]) / persistence[metric][0]).tolist()
    return {"length": len(series.values), "split": prepared.split,
            "train_windows": len(prepared.train_targets), "period": series.period,
            "units": series.units, "transform": dataclasses.asdict(prepared.transform),
            "time": [str(t) for t in series.time], "values": series.values.tolist(),
            "models": models}


# -- report --------------------------------------------------------------------------------
def report(results: dict, args) -> str:
    sections = []
    for name, r in results.items():
        transform = r["transform"]
        steps = " then ".join([*(["log"] if transform["log"] else []),
                               *(["first difference"] if transform["difference"] else []),
                               "standardised"])
        rows = [[m["label"], common.spread(m["rmse"]), common.spread(m["mae"]),
                 common.spread(m["rmse_ratio"], 2), common.spread(m["mae_ratio"], 2),
                 common.spread(m["train_rmse"])] for m in r["models"].values()]
        sections += [
            f"## {name}", "",
            f"{r['length']} values ({r['time'][0]} to {r['time'][-1]}), in {r['units']}; "
            f"test period {r['time'][r['split']]} to {r['time'][-1]} "
            f"({r['length'] - r['split']} one-step forecasts); {r['train_windows']} "
            f"training windows; model inputs: {steps}.", "",
            common.markdown_table(["model", "test RMSE", "test MAE", "RMSE / persistence",
                                   "MAE / persistence", "train RMSE"], rows), ""]
        diverged = [m["label"] for m in r["models"].values() if m.get("nonfinite")]
        if diverged:
            sections += [f"Diverged (a non-finite loss; NaN scores): {', '.join(diverged)}.",
                         ""]
    return "\n".join([
        "# Forecasting real series: recurrent cells vs a sliding-window MLP", "",
        f"Command: `{common.command_line()}`", "",
        f"One-step-ahead walk-forward test on the last {args.test_fraction:.0%} of each "
        f"series: each forecast reads the true last {args.window} values; models are "
        "trained once on the training part (no refit in the test period); transforms "
        f"use training statistics only. Hidden size {args.hidden} (cells and MLP); "
        f"{args.seeds} seeds per model; Adam lr {args.lr}, global-norm clip {args.clip}, "
        f"batch {args.batch} windows, {args.steps} steps, MSE on the transformed scale.", "",
        "Scores in the series' own units, median (min-max) over seeds (one value for the "
        "deterministic baselines), every seed counted; ratios: the model's score over "
        "persistence's (below 1: better than persistence); train RMSE: one-step "
        "forecasts over the training part (in-sample). Seasonal naive uses 11 years for "
        "the sunspot cycle, whose length varies (9-14 years).", "",
        *sections, "Plots: forecasts.png (test period, median forecast over seeds with its "
        "range), training.png (training loss, and the test MSE on the model's scale during "
        "training: a diagnostic of overfitting, not used to choose anything).", ""])


def plot(results: dict, out: Path) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(len(results), 1, figsize=(10, 4 * len(results)), squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], results.items()):
        time = np.asarray(r["time"], dtype="datetime64")
        split = r["split"]
        shown = slice(max(0, split - (r["length"] - split)), r["length"])
        ax.plot(time[shown], np.asarray(r["values"])[shown], color="k", lw=2, label="truth")
        ax.axvline(time[split], color="k", lw=0.8, ls=":")
        for i, m in enumerate(r["models"].values()):
            forecast = np.asarray(m["forecast"]).T    # [test steps, seeds]
            if len(m["rmse"]) == 1:
                ax.plot(time[split:], forecast[:, 0], ls="--", lw=1, color=f"C{i}",
                        label=m["label"])
            else:
                common.band(ax, time[split:], forecast, f"C{i}", m["label"])
        ax.set(title=f"{name}: one-step forecasts over the test period", ylabel=r["units"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    common.save_figure(fig, out / "forecasts.png")

    fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 7), squeeze=False)
    for column, (name, r) in enumerate(results.items()):
        trained = [m for m in r["models"].values() if "curves" in m]
        for ax, key, text in zip(axes[:, column], ("loss", "test_mse"),
                                 ("training MSE", "test MSE")):
            for i, m in enumerate(trained):
                steps, values = m["curves"][key]
                if steps:
                    common.band(ax, steps, np.asarray(values).reshape(len(steps), -1),
                                f"C{i + 2}", m["label"])
            ax.set(xlabel="training step", ylabel=f"{text} (model scale)", title=name,
                   yscale="log")
            ax.grid(alpha=0.3)
        axes[0, column].legend(fontsize=8)
    common.save_figure(fig, out / "training.png")


def check_args(args) -> None:
    """Fail on a bad name or setting before any work."""
    for cell in args.cells:
        make(cell, args.hidden)
    ts.split_point(100, args.test_fraction)


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check_args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {name: run_series(ts.load(name), args) for name in args.series}
    plot(results, args.out)
    common.write_results(args, {"results": results}, report(results, args))
    return results


if __name__ == "__main__":
    main()
