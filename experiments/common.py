"""What the studies share: the command line and its checks, the training loop, the
results folder, the report's helpers and the plots.

Every study takes `--cells`, `--seeds`, `--steps`, `--out DIR` (default
results/<name>), `--quick`, `--track` (experiment trackers besides metrics.jsonl) and
`--no-compile-cache` (see `use_compile_cache`), plus a flag for every other entry of
its DEFAULTS;
writes `DIR/results.json` (numbers, config, versions), PNG plots and `DIR/report.md`.
A study trains with `train` (checkpoints in a run folder under DIR, resumed when the
same command runs again) and keeps other finished units of work in `DIR/parts/`, so
a rerun skips what is done. A new study needs only its data, its model (see
`rnnjax.models`) and its report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import optax

from rnnjax.cells import CELL_TYPES, make
from rnnjax.train import (
    MLflowLogger,
    TensorBoardLogger,
    WandbLogger,
    fit,
    make_train_step,
    provenance,
    read_metrics,
    sweep_states,
    sweep_step,
)


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def comma_list(kind=str):
    """argparse type: comma-separated values, each read by `kind`, at least one."""
    def parse(text: str) -> list:
        if not text:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list, got {text!r}")
        return [kind(item) for item in text.split(",")]
    return parse


def names_among(allowed, *, allow_none: bool = False):
    """argparse type: comma-separated names, each one of `allowed`; none at all ('')
    only where `allow_none`."""
    allowed = tuple(allowed)

    def parse(text: str) -> list[str]:
        names = [name for name in text.split(",") if name]
        unknown = [name for name in names if name not in allowed]
        if unknown or not (names or allow_none):
            raise argparse.ArgumentTypeError(f"must be among {','.join(allowed)}, got "
                                             f"{text!r}")
        return names
    return parse


def cell_name(text: str) -> str:
    """argparse type: the name of a cell type of `rnnjax.cells.make`."""
    if text not in CELL_TYPES:
        raise argparse.ArgumentTypeError(f"unknown cell {text!r}: the cells are "
                                         f"{','.join(sorted(CELL_TYPES))}")
    return text


#: flags more than one study has: name -> (type, help); a study gets those in its DEFAULTS
SHARED_FLAGS = {
    "hidden": (positive_int, "hidden size"),
    "batch": (positive_int, "training batch size"),
    "lr": (positive_float, "learning rate"),
    "lr_decay": (positive_float, "the learning rate at the last step, as a fraction of --lr, "
                                 "reached along a cosine (1: constant)"),
    "clip": (positive_float, "global gradient-norm clip"),
    "checkpoint_every": (positive_int, "training steps between checkpoints"),
    "eval_every": (positive_int, "training steps between two evaluations on held-out data"),
}


def parse_args(name: str, description: str, defaults: dict, quick: dict, argv=None,
               add_arguments=None, check=None):
    """The shared command line. `quick` overrides `defaults` for `--quick` runs,
    except where a flag is given explicitly. Every default must have a flag.

    A bad flag ends as a usage error (exit status 2, nothing created): sizes and
    counts must be positive, --cells must name cell types, --out must be a folder
    that can be written; then `check(args)` runs, and a ValueError it raises names
    the flag it rejects."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}",
                                     description=description)
    parser.add_argument("--cells", type=comma_list(cell_name), help="comma-separated cell names")
    parser.add_argument("--seeds", type=positive_int, help="seeds per cell")
    parser.add_argument("--steps", type=positive_int, help="training steps")
    parser.add_argument("--out", type=Path, default=Path("results") / name,
                        help=f"output folder (default results/{name})")
    parser.add_argument("--quick", action="store_true",
                        help="a small configuration that runs on a laptop CPU in minutes")
    parser.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                        help="do not keep compiled programs between runs (JAX's persistent "
                             "compilation cache, by default in ~/.cache/rnnjax/jax; "
                             "RNNJAX_COMPILE_CACHE sets another folder)")
    parser.add_argument("--track", type=names_among(TRACKERS, allow_none=True), default=[],
                        help="experiment trackers to log to besides metrics.jsonl, comma-"
                             f"separated among {','.join(TRACKERS)}, each in a folder of the "
                             "run (default none; extra tracking)")
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
    try:
        _check_out(args.out)
        if check is not None:
            check(args)
    except ValueError as error:
        parser.error(str(error))
    if args.compile_cache:
        use_compile_cache()
    return args


def compile_cache_dir() -> Path:
    """Where the studies keep compiled programs: $RNNJAX_COMPILE_CACHE, else
    $XDG_CACHE_HOME/rnnjax/jax (~/.cache/rnnjax/jax); outside the repository."""
    if os.environ.get("RNNJAX_COMPILE_CACHE"):
        return Path(os.environ["RNNJAX_COMPILE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnjax" / "jax"


def use_compile_cache(directory: Path | None = None) -> Path:
    """Turn on JAX's persistent compilation cache in `directory` (default
    `compile_cache_dir()`), for this process and the worker processes it starts.

    A study compiles the same programs (its train step, evaluation and probe per cell
    and shape) every time it runs; from the cache a rerun, or a --quick run after
    another, loads them instead of compiling. Every program is kept, however fast it
    compiled: small runs spend most of their time on many small compilations. A cache
    already configured in the environment (JAX_COMPILATION_CACHE_DIR) is left as it is.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    directory = Path(directory or compile_cache_dir())
    settings = {"jax_compilation_cache_dir": str(directory),
                "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)   # read by spawned workers' jax
    return directory


def _check_out(out: Path) -> None:
    """Fail (before creating anything) on an output folder that cannot be written."""
    existing = Path(os.path.abspath(out))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {out} cannot be created: {existing} is not a folder")
    try:   # a folder made and removed at once: permissions, read-only file systems
        os.rmdir(tempfile.mkdtemp(prefix=".out-check-", dir=existing))
    except OSError as error:
        raise ValueError(f"--out {out} cannot be written: no permission to write in "
                         f"{existing} ({error.strerror})") from None


def eval_interval(args) -> int:
    """Steps between test evaluations; --steps must be a multiple of it."""
    every = min(args.eval_every, args.steps)
    if args.steps <= 0 or args.steps % every:
        raise ValueError(f"--steps must be a positive multiple of {every} (the evaluation "
                         f"interval), got {args.steps}")
    return every


def cosine_adam(steps: int, final_fraction: float):
    """`optimizer(learning_rate)`: Adam whose rate decays along a cosine from
    `learning_rate` to `final_fraction` of it over `steps` (for `train`'s `optimizer`).
    The schedule spans the run: a run so trained can be resumed, not extended."""
    return lambda learning_rate: optax.adam(
        optax.cosine_decay_schedule(learning_rate, steps, alpha=final_fraction))


def check_cells(args) -> None:
    """Fail on a cell the options cannot make, or a --steps that is not a multiple of
    --eval-every."""
    for name in args.cells:
        make(name, args.hidden)
    eval_interval(args)


def cell_label(name: str) -> str:
    """The class a cell name makes, with the name after it: 'SimpleRNN (tanh)'."""
    cls = type(make(name, 64)).__name__   # 64: a size every cell type accepts
    return cls if cls.lower() == name else f"{cls} ({name})"


def folder(key: str) -> str:
    """A run's key as a folder path: 'copy T=100/lstm' -> 'copy_T100/lstm'."""
    return "/".join(re.sub(r"[^A-Za-z0-9]+", "_", part.replace("=", "")).strip("_")
                    for part in key.split("/"))


def spread(values, digits: int = 3) -> str:
    """'median (min-max)' of per-seed values."""
    v = np.asarray(values, np.float64)
    if v.size == 1:
        return f"{v[0]:.{digits}g}"
    return f"{np.median(v):.{digits}g} ({v.min():.{digits}g}-{v.max():.{digits}g})"


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


class Trained(NamedTuple):
    """What `train` returns."""
    initial: dict          # params at initialisation, leading models axis
    params: dict | None    # params after training; None when a loss went non-finite
    history: list[dict]    # the logged records of `fit`
    grid: list[dict]       # model index -> {"seed": s, hyperparameter: value}


def train(run_dir: Path, init, loss_fn, batch_fn, args, *, hyper: dict, settings: dict,
          clip: float | None = None, optimizer=optax.adam, evaluate=None, eval_every=None,
          log_every: int = 10, desc: str = "train", flossing=None):
    """Train `args.seeds` models at once, one per seed, for `args.steps` steps.

    The models are stacked by `sweep_states` and trained by one compiled step
    (`sweep_step` of `make_train_step`, clipped to global norm `clip` when given) in
    `fit`: checkpoints every `args.checkpoint_every` steps, metrics in
    `run_dir/metrics.jsonl` (and to the trackers of `args.track`: `trackers`), and a
    rerun resumes from the latest checkpoint. `init(key)` gives one model's params;
    `loss_fn(params, batch, key) -> (loss, metrics)`;
    `batch_fn(step)` is the data, a pure jax function of the step (jitted here), shared
    by the models; `hyper` the optimizer's numeric arguments (`optimizer` is wrapped in
    `optax.inject_hyperparams`). `evaluate(params) -> {name: [models]}`, when given,
    runs on the params before steps 0, eval_every, 2 eval_every, ... and lands in
    those steps' records. `flossing` (a `rnnjax.train.Flossing`) adds gradient
    flossing to the step. `settings` (the values the run depends on) are saved in
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
    step = sweep_step(make_train_step(loss_fn, optimizer_fn(**hyper), clip_norm=clip,
                                      flossing=flossing))
    if evaluate is not None:
        log_every = eval_every  # a record at each evaluation, none between
    else:
        eval_every = None
    try:
        state, history = fit(step, state, jax.jit(batch_fn), args.steps, run_dir,
                             checkpoint_every=args.checkpoint_every, log_every=log_every,
                             evaluate=evaluate, eval_every=eval_every,
                             loggers=trackers(run_dir, args, settings), desc=desc)
    except FloatingPointError as error:
        # fit stops at the first non-finite loss (of any model): the run is reported as
        # diverged, with the records it logged up to there
        print(f"{desc.strip()}: {error}", file=sys.stderr)
        return Trained(initial, None, read_metrics(run_dir), grid)
    return Trained(initial, state.params, history, grid)


#: the experiment trackers of --track (each a logger of rnnjax.train)
TRACKERS = ("tensorboard", "wandb", "mlflow")


def trackers(run_dir: Path, args, settings: dict) -> list:
    """The loggers `args.track` names, each writing in its own folder of run_dir
    (`tensorboard/`, `wandb/`, `mlflow/`), the run's settings as its config or params;
    none on processes other than 0 (`fit` logs on process 0 only)."""
    names = dict.fromkeys(getattr(args, "track", None) or ())
    if not names or jax.process_index() != 0:
        return []
    run_dir, config = Path(run_dir), {"steps": args.steps, **settings}
    build = {"tensorboard": lambda: TensorBoardLogger(run_dir / "tensorboard"),
             "wandb": lambda: WandbLogger(run_dir / "wandb", name=str(run_dir), config=config),
             "mlflow": lambda: MLflowLogger(run_dir / "mlflow", run_name=str(run_dir),
                                            params=config)}
    loggers = []
    try:
        for name in names:
            loggers.append(build[name]())
    except BaseException:   # (a package missing): close those already open
        for logger in loggers:
            logger.close()
        raise
    return loggers


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
    # --lr-decay of the memory-task studies; before it, their learning rate was constant
    ("lr_decay",): 1.0,
    # flossing of the memory-task studies; before it, none
    ("flossing",): None,
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


def timed(fn, *args, repeats: int, examples: int):
    """(seconds per example, outputs) of the jitted `fn(*args)`, compiled first: the
    median of `repeats` timed calls (each waited for) divided by the number of
    `examples` the call handles; outputs as NumPy arrays."""
    fn = jax.jit(fn)
    outputs = jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / examples, jax.tree_util.tree_map(np.asarray, outputs)


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


#: flags that change how a study runs, not what it computes
EXECUTION_FLAGS = ("compile_cache", "track")


def config_of(args) -> dict:
    """The run's settings as JSON-ready values (not the `EXECUTION_FLAGS`)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in EXECUTION_FLAGS}


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
