"""Loggers that send `fit`'s records to experiment trackers: TensorBoard, Weights & Biases
and MLflow, each writing to a local folder (no server, no account, no network).

Each meets the `Logger` protocol (`fit(..., loggers=[...])`) and imports its package when
it is constructed, so rnnjax needs none of them; a missing one is an ImportError naming
the extra to install (`pip install 'rnnjax[tracking]'` installs all three).

A record becomes scalars at `record["step"]` (`scalars`): every numeric metric under its
own name, a list (one value per seed of a sweep) as `<metric>/seed<i>`; `step` and
`time` are not metrics (`time` is the wall time where the tracker takes one). NaN and
infinities go to the tracker as they are: all three accept them (MLflow's SQL store keeps
an infinity as +-1.8e308, the largest float).

`out_dir/metrics.jsonl` stays the record of truth: a resumed run (`fit` starting again
from a checkpoint) opens a new run in W&B and MLflow, and a new event file in TensorBoard.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path

import numpy as np

from rnnjax._optional import require

__all__ = ["MLflowLogger", "TensorBoardLogger", "WandbLogger", "scalars"]

#: record keys that are not metrics
NOT_METRICS = ("step", "time")


def scalars(record: dict) -> dict[str, float]:
    """The metrics of a record as `{name: float}`: a scalar under its name, a list per
    seed as `<name>/seed<i>` (a deeper nesting adds `/<j>` per axis); `step`, `time` and
    values that are not numbers are left out."""
    out = {}
    for name, value in record.items():
        if name in NOT_METRICS:
            continue
        try:
            array = np.asarray(value)
        except ValueError:                # a ragged list
            continue
        if array.dtype.kind not in "biuf":   # text, None, objects: not a metric
            continue
        array = array.astype(np.float64)
        if array.ndim == 0:
            out[name] = float(array)
            continue
        for index in np.ndindex(array.shape):
            path = "/".join([f"seed{index[0]}", *map(str, index[1:])])
            out[f"{name}/{path}"] = float(array[index])
    return out


@contextlib.contextmanager
def _environ_defaults(**values: str):
    """Set environment variables that are not set, for the `with` block only."""
    added = [key for key in values if key not in os.environ]
    for key in added:
        os.environ[key] = values[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class TensorBoardLogger:
    """Records as TensorBoard scalars, in event files under `log_dir` (tensorboardX).

    Values are stored as float32 (TensorBoard's scalar type), at the record's step and
    wall time; each record is flushed to disk when logged. Extra: `tensorboard`.

    Arguments:
      log_dir: the folder of the event files (created when missing); point
        `tensorboard --logdir` at it or a folder above.
    """

    def __init__(self, log_dir):
        tensorboardx = require("tensorboardX", "tensorboard", needed_by="TensorBoardLogger")
        self.log_dir = os.fspath(log_dir)
        self._writer = tensorboardx.SummaryWriter(logdir=self.log_dir)

    def log(self, record: dict) -> None:
        step, walltime = int(record["step"]), record.get("time")
        for name, value in scalars(record).items():
            self._writer.add_scalar(name, value, global_step=step, walltime=walltime)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


#: wandb.init modes; "offline" writes the run under `directory` only (`wandb sync` uploads it)
WANDB_MODES = ("offline", "online", "disabled")


class WandbLogger:
    """Records as a Weights & Biases run, offline by default: the run is written under
    `directory/wandb/` (upload it later with `wandb sync`), with no login and no network.

    Each record is one `run.log(..., step=record["step"])` (W&B stamps its own wall
    time). The run is a separate one (`reinit="create_new"`), so it neither finishes nor
    replaces a run the caller has open. Offline, system metrics, machine and git
    metadata and error reports are off, since they may reach out to the network; the
    settings are the run's own, and the one environment variable set
    (`WANDB_ERROR_REPORTING=false`, unless set) is unset after `wandb.init`. Extra: `wandb`.

    Arguments:
      directory: where the run's files go (created when missing).
      project: the W&B project.
      name: the run's display name (None: W&B makes one up).
      config: the run's settings (a dict of JSON values), shown beside its metrics.
      mode: "offline", "online" (needs a login) or "disabled" (logs nothing).
    """

    def __init__(self, directory, project: str = "rnnjax", name: str | None = None,
                 config: dict | None = None, mode: str = "offline"):
        if mode not in WANDB_MODES:
            raise ValueError(f"mode must be one of {WANDB_MODES}, got {mode!r}")
        offline = mode == "offline"
        # wandb starts its service process during init; it reads this variable then
        with _environ_defaults(**({"WANDB_ERROR_REPORTING": "false"} if offline else {})):
            wandb = require("wandb", "wandb", needed_by="WandbLogger")
            self.directory = os.fspath(directory)
            os.makedirs(self.directory, exist_ok=True)
            quiet = dict(x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True,
                         disable_git=True, disable_job_creation=True, save_code=False,
                         x_save_requirements=False) if offline else {}
            settings = wandb.Settings(reinit="create_new", silent=True, console="off", **quiet)
            self._run = wandb.init(dir=self.directory, project=project, name=name,
                                   config=config, mode=mode, settings=settings)

    def log(self, record: dict) -> None:
        self._run.log(scalars(record), step=int(record["step"]))

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


#: MLflow takes at most this many metrics, and this many params, in one log_batch call
_MLFLOW_BATCH = {"metrics": 1000, "params": 100}


class MLflowLogger:
    """Records as an MLflow run, in a local SQLite store under `directory`
    (`directory/mlflow.db`; artifacts would go to `directory/artifacts`).

    Each metric is logged at the record's step and wall time; `params` become the run's
    params (strings; a nested dict's keys are joined with "."). The logger talks to its
    store through its own `MlflowClient`, so it never changes MLflow's global tracking
    URI or active run; importing MLflow here turns its usage telemetry off
    (`MLFLOW_DISABLE_TELEMETRY=true`, unless set, for the import only). Browse with
    `mlflow ui --backend-store-uri sqlite:///DIRECTORY/mlflow.db`. Extra: `mlflow`.

    Arguments:
      directory: the store's folder (created when missing).
      experiment: the MLflow experiment the run belongs to (created when missing).
      run_name: the run's name (None: MLflow makes one up).
      params: the run's settings, a dict (nested dicts allowed).
    """

    def __init__(self, directory, experiment: str = "rnnjax", run_name: str | None = None,
                 params: dict | None = None):
        with _environ_defaults(MLFLOW_DISABLE_TELEMETRY="true"):
            mlflow = require("mlflow", "mlflow", needed_by="MLflowLogger")
        self._entities = require("mlflow.entities", "mlflow", needed_by="MLflowLogger")
        self.directory = os.path.abspath(os.fspath(directory))
        os.makedirs(self.directory, exist_ok=True)
        self.tracking_uri = "sqlite:///" + os.path.join(self.directory, "mlflow.db")
        with warnings.catch_warnings():
            # MLflow's SQL store uses a loader strategy SQLAlchemy >= 2.1 calls deprecated;
            # nothing a caller can act on
            warnings.filterwarnings("ignore", message=".*noload.*", category=DeprecationWarning)
            self._client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
            experiment_id = (found.experiment_id if found is not None else
                             self._client.create_experiment(
                                 experiment,
                                 artifact_location=Path(self.directory, "artifacts").as_uri()))
            self.run_id = self._client.create_run(experiment_id,
                                                  run_name=run_name).info.run_id
        self._open = True
        if params:
            entries = [self._entities.Param(key, str(value))
                       for key, value in _flat(params).items()]
            self._log_batch(params=entries)

    def log(self, record: dict) -> None:
        stamp = round(1000 * record.get("time", time.time()))   # milliseconds
        step = int(record["step"])
        self._log_batch(metrics=[self._entities.Metric(name, value, stamp, step)
                                 for name, value in scalars(record).items()])

    def close(self) -> None:
        if self._open:
            self._client.set_terminated(self.run_id)
            self._open = False

    def _log_batch(self, **entries) -> None:
        """`log_batch` in chunks of the sizes MLflow accepts."""
        for kind, items in entries.items():
            size = _MLFLOW_BATCH[kind]
            for start in range(0, len(items), size):
                self._client.log_batch(self.run_id, **{kind: items[start:start + size]})


def _flat(config: dict, prefix: str = "") -> dict:
    """A nested dict as one level, its keys joined with '.'."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out

