"""The metrics of a run: its records, the loggers they go to, the log file, and plots.

A record is `{"step": int, "time": unix seconds, <metric>: float, or a list per seed}`.
`fit` hands each record it writes to every logger, its own log file among them:

    out_dir/metrics.jsonl    one JSON record per logged step (`read_metrics`)
    out_dir/curves.png       `plot_metrics`

A logger is any object with `log(record)` and `close()` (the `Logger` protocol), so a
dashboard or experiment tracker plugs into `fit(..., loggers=[...])` without `fit`
knowing it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Protocol, runtime_checkable

import numpy as np

from rnnjax.train._host import to_host

METRICS = "metrics.jsonl"
CURVES = "curves.png"


@runtime_checkable
class Logger(Protocol):
    """Where `fit` sends its records, besides `out_dir/metrics.jsonl`.

    `log(record)` is called once per record written, in step order, on process 0 only
    (with jax.distributed); the record is a fresh dict of plain Python values, which
    the logger may keep. `close()` is called once when `fit` returns or raises.
    """

    def log(self, record: dict) -> None: ...

    def close(self) -> None: ...


def make_record(step: int, metrics) -> dict:
    """The record of `step`: `metrics` (arrays, on device or not) read to the host as
    floats, or lists of floats per seed."""
    record = {"step": step, "time": time.time()}
    for name, value in to_host(metrics).items():
        value = np.asarray(value, np.float64)
        record[name] = value.item() if value.ndim == 0 else value.tolist()
    return record


class MetricsFile:
    """The `Logger` that appends records to `out_dir/metrics.jsonl`, each flushed at
    once, so a checkpoint saved after it never leaves a gap in the log on resume.

    Opening it for a run that resumes at `start` drops the records of steps >= `start`
    (written after the state it resumes from; those steps run again): the file is
    rewritten (tmp file, then rename) even when nothing is dropped, so a line torn by
    a kill never has the next record appended to it. With several processes, pass
    `write=False` on all but process 0: those only read the file.
    """

    def __init__(self, out_dir, start: int, *, write: bool = True):
        self.path = os.path.join(os.fspath(out_dir), METRICS)
        self.kept = [r for r in read_metrics(out_dir) if r["step"] < start]
        self._file = None
        if write:
            if os.path.exists(self.path):
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in self.kept)
                os.replace(tmp, self.path)
            self._file = open(self.path, "a")

    def log(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(out_dir) -> list[dict]:
    """The records of `out_dir/metrics.jsonl` (empty when none); a torn last line is skipped."""
    path = os.path.join(os.fspath(out_dir), METRICS)
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                break
    return records


def plot_metrics(out_dir, keys=("loss", "grad_norm")) -> str:
    """Plot `keys` against the step from `out_dir/metrics.jsonl` into `out_dir/curves.png`.

    One panel per key found in the log, one line per seed when a metric is a list.
    Uses a bare Agg `Figure`, so it never switches the caller's pyplot backend.
    Returns the path of the PNG.
    """
    from matplotlib.figure import Figure  # matplotlib only when plotting

    records = read_metrics(out_dir)
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        raise ValueError(f"no records with any of the keys in {os.path.join(out_dir, METRICS)}")
    fig = Figure(figsize=(5 * len(keys), 3.5), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        rows = [(r["step"], r[key]) for r in records if key in r]
        steps = np.array([s for s, _ in rows])
        values = np.array([v for _, v in rows], dtype=np.float64)
        values = values.reshape(len(rows), -1)  # [N, seeds]
        for seed in range(values.shape[1]):
            ax.plot(steps, values[:, seed],
                    label=f"seed {seed}" if values.shape[1] > 1 else None)
        finite = values[np.isfinite(values)]
        if finite.size and (finite > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(key)
        if values.shape[1] > 1:
            ax.legend(fontsize="small")
    path = os.path.join(os.fspath(out_dir), CURVES)
    fig.savefig(path, dpi=100)
    return path
