"""What every experiment script shares: the command line, the model, the training
loop, the results folder, the report and the plots.

Every script takes `--cells`, `--seeds`, `--steps`, `--out DIR` (default
results/<name>) and `--quick`, plus a flag for every other entry of its DEFAULTS;
writes `DIR/results.json` (numbers, config, versions), PNG plots and `DIR/report.md`.
A study trains with `train` (checkpoints in a run folder under DIR, resumed when the
same command runs again) and keeps other finished units of work in `DIR/parts/`, so
a rerun skips what is done. A new study needs only its task, its model and its report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import optax

import rnnjax as rj
from rnnjax import probe
from rnnjax.cells import make
from rnnjax.train import (
    fit,
    make_train_step,
    provenance,
    read_metrics,
    sweep_states,
    sweep_step,
)

#: flags more than one study has: name -> (type, help); a study gets those in its DEFAULTS
SHARED_FLAGS = {
    "hidden": (int, "hidden size"),
    "batch": (int, "training batch size"),
    "lr": (float, "learning rate"),
    "clip": (float, "global gradient-norm clip"),
    "checkpoint_every": (int, "training steps between checkpoints"),
    "eval_every": (int, "training steps between two evaluations on held-out data"),
}


def parse_args(name: str, description: str, defaults: dict, quick: dict, argv=None,
               add_arguments=None):
    """The shared command line. `quick` overrides `defaults` for `--quick` runs,
    except where a flag is given explicitly. Every default must have a flag."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}",
                                     description=description)
    parser.add_argument("--cells", type=lambda s: s.split(","), help="comma-separated cell names")
    parser.add_argument("--seeds", type=int, help="seeds per cell")
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--out", type=Path, default=Path("results") / name,
                        help=f"output folder (default results/{name})")
    parser.add_argument("--quick", action="store_true",
                        help="a small configuration that runs on a laptop CPU in minutes")
    for key, (kind, text) in SHARED_FLAGS.items():
        if key in defaults:
            parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, help=text)
    if add_arguments:
        add_arguments(parser)
    for action in parser._actions:  # each default (and --quick's) in the help text
        if action.dest in defaults:
            quick_text = (f"; --quick: {_flag_value(quick[action.dest])}"
                          if action.dest in quick else "")
            action.help = (f"{action.help or ''} (default "
                           f"{_flag_value(defaults[action.dest])}{quick_text})")
    args = parser.parse_args(argv)
    missing = sorted((set(defaults) | set(quick)) - set(vars(args)))
    if missing:
        raise ValueError(f"settings without a command-line flag: {missing}")
    chosen = {**defaults, **(quick if args.quick else {})}
    for key, value in chosen.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _check_settings(args)
    return args


#: flags that must be > 0 wherever a study has them
POSITIVE_FLAGS = ("seeds", "steps", "hidden", "batch", "lr", "clip", "checkpoint_every",
                  "eval_every")


def _check_settings(args) -> None:
    """Fail before any work (and before creating anything) on non-positive sizes and
    counts, and on an output folder that cannot be written."""
    require_positive(args, [k for k in POSITIVE_FLAGS if getattr(args, k, None) is not None])
    existing = Path(os.path.abspath(args.out))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {args.out} cannot be created: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {args.out} cannot be written: no permission to write "
                         f"in {existing}")


def require_positive(args, names) -> None:
    """Fail before any work when one of the flags `names` is not positive."""
    for name in names:
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got "
                             f"{getattr(args, name)}")


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclasses.dataclass(frozen=True)
class Readout:
    """A recurrent cell with a Dense readout of its hidden state: the model of every
    study. Params are `{"cell": ..., "head": ...}`."""

    cell: rj.Cell
    head: rj.Dense
    input_size: int

    def init(self, key):
        k_cell, k_head = jax.random.split(key)
        return {"cell": self.cell.init(k_cell, self.input_size),
                "head": self.head.init(k_head, self.cell.hidden_size)}

    def outputs(self, params, xs):
        """The readout at every step: [B, T, F] -> [B, T, outputs]."""
        _, ys = rj.unroll(self.cell, params["cell"], xs)
        return self.head(params["head"], ys)

    def last(self, params, xs):
        """The readout of the last step's output only: [B, T, F] -> [B, outputs]."""
        _, ys = rj.unroll(self.cell, params["cell"], xs)
        return self.head(params["head"], ys[:, -1])

    def grad_flow(self, params, xs, loss_fn):
        """||dL/dh_k|| for every step k, one backward pass; `loss_fn` maps the readout
        at every step [B, T, outputs] to the scalar loss L."""
        return probe.hidden_grad_norms(self.cell, params["cell"], xs,
                                       lambda ys: loss_fn(self.head(params["head"], ys)))


def readout(name: str, hidden: int, input_size: int, outputs: int, **cell_options) -> Readout:
    """The cell `name` (see `rnnjax.cells.make`) with a Dense readout to `outputs`."""
    return Readout(make(name, hidden, **cell_options), rj.Dense(outputs), input_size)


class Trained(NamedTuple):
    """What `train` returns."""
    initial: dict          # params at initialisation, leading models axis
    params: dict | None    # params after training; None when a loss went non-finite
    history: list[dict]    # the logged records of `fit`
    grid: list[dict]       # model index -> {"seed": s, hyperparameter: value}


def train(run_dir: Path, init, loss_fn, batch_fn, args, *, hyper: dict, settings: dict,
          clip: float | None = None, optimizer=optax.adam, evaluate=None, eval_every=None,
          log_every: int = 10, desc: str = "train"):
    """Train `args.seeds` models at once, one per seed, for `args.steps` steps.

    The models are stacked by `sweep_states` and trained by one compiled step
    (`sweep_step` of `make_train_step`, clipped to global norm `clip` when given) in
    `fit`: checkpoints every `args.checkpoint_every` steps, metrics in
    `run_dir/metrics.jsonl`, and a rerun resumes from the latest checkpoint. `init(key)`
    gives one model's params; `loss_fn(params, batch, key) -> (loss, metrics)`;
    `batch_fn(step)` is the data, a pure jax function of the step (jitted here), shared
    by the models; `hyper` the optimizer's numeric arguments (`optimizer` is wrapped in
    `optax.inject_hyperparams`). `evaluate(params) -> {name: [models]}`, when given,
    runs on the params before steps 0, eval_every, 2 eval_every, ... and lands in
    those steps' records. `settings` (the values the run depends on) are saved in
    run_dir: resuming a run made with other settings raises.

    Returns a `Trained`: the params before and after (leading models axis; after is
    None when a loss went non-finite: `on_trained` then gives NaNs), the logged
    records (`fit`, earlier interrupted runs included) and the grid.
    """
    settings = {**settings, **hyper, "seeds": args.seeds, "clip": clip,
                "eval_every": eval_every if evaluate else None}
    claim_run_dir(Path(run_dir), settings, args.steps)
    optimizer_fn = optax.inject_hyperparams(optimizer)
    state, grid = sweep_states(init, optimizer_fn, seeds=list(range(args.seeds)),
                               hyperparams={k: [v] for k, v in hyper.items()})
    initial = state.params
    step = sweep_step(make_train_step(loss_fn, optimizer_fn(**hyper), clip_norm=clip))
    if evaluate is not None:
        log_every = eval_every  # a record at each evaluation, none between
    else:
        eval_every = None
    try:
        state, history = fit(step, state, jax.jit(batch_fn), args.steps, run_dir,
                             checkpoint_every=args.checkpoint_every, log_every=log_every,
                             evaluate=evaluate, eval_every=eval_every, desc=desc)
    except FloatingPointError as error:
        # fit stops at the first non-finite loss (of any model): the run is reported as
        # diverged, with the records it logged up to there
        print(f"{desc.strip()}: {error}", file=sys.stderr)
        return Trained(initial, None, read_metrics(run_dir), grid)
    return Trained(initial, state.params, history, grid)


def on_trained(fn, run: Trained) -> np.ndarray:
    """`fn(run.params)` as a NumPy array, or NaNs of its shape when the run diverged."""
    if run.params is None:
        shape = jax.eval_shape(fn, run.initial).shape
        return np.full(shape, np.nan)
    return np.asarray(fn(run.params))


#: settings that runs record only since a later version, as paths of keys into the
#: settings, with the value that runs saved before then used: `claim_run_dir` compares a
#: saved run that lacks one (where the settings now have it) as if it held that value
LATER_SETTINGS = {
    # --scan of the linear-recurrences study; before it, a linear recurrence trained with
    # its default, the associative scan (runs saved "options": {})
    ("options", "parallel_scan"): True,
}


def claim_run_dir(run_dir: Path, settings: dict, steps: int, *,
                  later: dict = LATER_SETTINGS) -> None:
    """Record `settings` in run_dir/settings.json; raise when run_dir holds a checkpoint
    of a run with other settings, or one past `steps` (a run may only be extended).

    A setting that `later` names and the saved run lacks counts as the value `later`
    gives it: the one that run used, recorded or not.
    """
    path = run_dir / "settings.json"
    done = [int(p.name) for p in (run_dir / "checkpoints").glob("*") if p.name.isdigit()]
    if done and path.exists():
        saved = json.loads(path.read_text())
        for keys, value in later.items():
            saved = _with_missing(saved, settings, keys, value)
        changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        if changed:
            raise ValueError(f"{run_dir} holds a run with other settings (saved, now: "
                             f"{changed}): pass another --out, or remove {run_dir}")
    if done and max(done) > steps:
        raise ValueError(f"{run_dir} holds a run at step {max(done)}, past --steps {steps}: "
                         f"pass another --out, or remove {run_dir}")
    write_json(path, settings)


def _with_missing(saved: dict, now: dict, keys: tuple, value) -> dict:
    """`saved` with `value` at the path `keys` where `now` has that path and `saved`
    lacks it; otherwise `saved` as it is."""
    if not (isinstance(saved, dict) and isinstance(now, dict) and keys[0] in now):
        return saved
    if len(keys) == 1:
        return saved if keys[0] in saved else {**saved, keys[0]: value}
    inner = saved.get(keys[0], {})
    return {**saved, keys[0]: _with_missing(inner, now[keys[0]], keys[1:], value)}


def series(history: list[dict], key: str):
    """`(steps, values [records, models])` of the records that hold `key`."""
    rows = [(r["step"], r[key]) for r in history if key in r]
    values = np.asarray([v for _, v in rows], np.float64)
    return [s for s, _ in rows], values.reshape(len(rows), -1) if rows else values[:, None]


def train_seconds(history: list[dict]) -> float:
    """Wall time from the first logged step to the last (a resumed run's includes the
    pause)."""
    return history[-1]["time"] - history[0]["time"] if history else 0.0


def log10_relative(norms) -> np.ndarray:
    """log10(||dL/dh_k|| / ||dL/dh_(T-1)||) [seeds, T], indexed by the distance T-1-k
    from the loss (column 0 is the last step)."""
    norms = np.asarray(norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(norms / norms[:, -1:])[:, ::-1]


def environment() -> dict:
    """`rnnjax.train.provenance.environment` of this checkout, with the command as typed; recorded
    in every results.json."""
    return {**provenance.environment(Path(__file__).resolve().parent.parent),
            "command": command_line()}


def command_line() -> str:
    """The command as typed, quoted for a shell (an empty argument shows as ''):
    `python -m experiments.NAME ARGS` for a script run with -m."""
    script = Path(sys.argv[0])
    if script.parent.name == "experiments":
        return " ".join([f"python -m experiments.{script.stem}", shlex.join(sys.argv[1:])]).rstrip()
    return shlex.join(sys.argv)


def write_json(path: Path, obj) -> None:
    """Write whole or not at all: a temporary file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def load_part(out: Path, key: str, config: dict):
    """A finished unit of work saved by `save_part` under the same config, or None."""
    path = out / "parts" / f"{key}.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved["result"] if saved.get("config") == config else None


def save_part(out: Path, key: str, config: dict, result) -> None:
    write_json(out / "parts" / f"{key}.json", {"config": config, "result": result})


def config_of(args) -> dict:
    """The run's settings as JSON-ready values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def write_results(args, payload: dict, report_text: str) -> None:
    """DIR/results.json (config, environment and `payload`) and DIR/report.md."""
    seeds = {"seeds_used": list(range(args.seeds))} if isinstance(
        getattr(args, "seeds", None), int) else {}
    write_json(args.out / "results.json", {"config": config_of(args), **seeds,
                                           "environment": environment(), **payload})
    (args.out / "report.md").write_text(report_text)
    print(f"wrote {args.out}/report.md")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def band(ax, steps, values, color, label) -> None:
    """The median over seeds of `values` [steps, seeds] as a line, min to max as a band."""
    values = np.asarray(values)
    ax.plot(steps, np.median(values, axis=1), color=color, label=label)
    ax.fill_between(steps, values.min(axis=1), values.max(axis=1), color=color, alpha=0.15)


def save_figure(fig, path: Path) -> None:
    """Lay out, write as PNG and close a matplotlib figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
