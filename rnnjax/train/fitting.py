"""`fit`: a training loop that checkpoints, resumes exactly, evaluates, logs and stops on NaN.

`fit` drives a jitted `step_fn` over `batch_fn(step)` for the steps left to run. The
data is a pure function of the step number and the whole `TrainState` (params,
optimizer state, step, PRNG key) is checkpointed (`rnnjax.train.checkpoints`), so a
run that is killed and started again with the same arguments ends with the same bits
as one that never stopped. Everything a run leaves lives in `out_dir`:

    out_dir/checkpoints/   the checkpoints, damaged ones set aside (`checkpoints`)
    out_dir/metrics.jsonl  one JSON record per logged step (`metrics.read_metrics`)
    out_dir/runs.jsonl     one record per start: its first step and
                           `provenance.environment()` (versions, devices, git
                           commit, command)

Step numbers follow `state.step`, the count of updates done, which is also the data
position: the update from state.step == s reads `batch_fn(s)`, and its metrics (the
loss at the params of state s) are logged as step s. A checkpoint named s holds the
state with state.step == s, ready to run step s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from rnnjax import _checks
from rnnjax.train._host import step_of, to_host
from rnnjax.train.checkpoints import Checkpoints, make_writable_dir
from rnnjax.train.metrics import Logger, MetricsFile, make_record
from rnnjax.train.provenance import environment

RUNS = "runs.jsonl"


def fit(step_fn: Callable, state, batch_fn: Callable[[int], Any], num_steps: int,
        out_dir, *, checkpoint_every: int = 100, keep: int = 3, log_every: int = 10,
        evaluate: Callable | None = None, eval_every: int | None = None,
        loggers: Iterable[Logger] = (), progress: bool = True, desc: str = "train"):
    """Train until `state.step == num_steps`, resuming from `out_dir` when it holds a run.

    Args:
      step_fn: `step_fn(state, batch) -> (state, metrics)`, jitted by the caller (see
        `make_train_step`); it may be vmapped over a leading seeds axis, in which case
        every leaf has that axis and the step count is `max(state.step)`. `metrics`
        must hold `loss`.
      state: the initial `TrainState`. When `out_dir/checkpoints` holds checkpoints,
        the newest one that is not damaged is restored into this structure (shapes,
        dtypes and PRNG key types must match) and replaces it.
      batch_fn: `batch_fn(step) -> batch`, a pure function of the step, so a resumed
        run reads exactly the data it would have read.
      num_steps: the total number of updates of the run (not the number left).
      out_dir: the run's directory (created when missing); it must be writable.
      checkpoint_every: save after every this many updates, and always at the end.
      keep: how many of the latest checkpoints to keep on disk.
      log_every: write a metrics record every this many steps, and at the last step.
      evaluate: `evaluate(params) -> {name: value}` (values scalars, or per seed),
        run on the params of the state before the update at steps 0, eval_every,
        2 eval_every, ...; its values join those steps' records (which are always
        written), under names that must differ from the metrics'.
      eval_every: the steps between two evaluations; required with `evaluate`.
      loggers: `Logger`s (objects with `log(record)` and `close()`) that receive
        every record written after `out_dir/metrics.jsonl` does; closed when `fit`
        returns or raises.
      progress: show a tqdm bar with the loss and steps/s.
      desc: the progress bar's label.

    Returns:
      `(state, history)`: the final state and the list of logged records (those of
      earlier, interrupted runs in `out_dir` included). A record is
      `{"step": int, "time": unix seconds, <metric>: float, or a list per seed}`.

    Raises:
      FloatingPointError: a loss (of any seed) is NaN or Inf. That state is never
        saved, so the latest checkpoint is the last good one; the message names the
        step and that checkpoint.
      ValueError: `out_dir` holds a run past `num_steps` (load it with `restore`, or
        pass a larger `num_steps`); a count is not a positive int; `eval_every` is
        missing or given without `evaluate`; `out_dir` or its checkpoints folder
        cannot be created or written (a path under a file, a read-only directory; the
        OSError is the `__cause__`), found before the first step; or a checkpoint there
        holds another model (its structure, shapes or dtypes differ from `state`'s).
      TypeError: `evaluate` is not callable, or a logger lacks `log` or `close`.

    Warns:
      UserWarning: a checkpoint is damaged and set aside (one warning each, naming
        its folder and the error), and again when none was left to restore.
    """
    loggers = _check_arguments(num_steps, keep, checkpoint_every, log_every, evaluate,
                               eval_every, loggers)
    out_dir = os.path.abspath(os.fspath(out_dir))
    try:
        make_writable_dir(out_dir)
        checkpoints = Checkpoints(out_dir, keep)
    except BaseException:
        _close_all(loggers)
        raise
    # Several processes (jax.distributed) share out_dir: process 0 alone writes there.
    primary = jax.process_index() == 0
    log = None
    try:
        state = checkpoints.resume(state)
        start = step_of(state)
        # Records at steps >= start were written after the state we resume from (the
        # run died before its next checkpoint); the steps are about to run again.
        log = MetricsFile(out_dir, start, write=primary)
        history = log.kept
        if start > num_steps:
            raise ValueError(
                f"out_dir {out_dir} holds a run at step {start}, past num_steps="
                f"{num_steps}: pass num_steps >= {start} to go on with it, another "
                f"out_dir for a new run, or load its state with rnnjax.train.restore")
        if start == num_steps:
            return state, history
        if primary:
            with open(os.path.join(out_dir, RUNS), "a") as runs:
                runs.write(json.dumps({"start_step": start, "num_steps": num_steps,
                                       "time": time.time(), **environment()}) + "\n")
        receivers = [log, *loggers] if primary else []
        with tqdm(total=num_steps, initial=start, unit="step", desc=desc,
                  disable=not progress or not primary, dynamic_ncols=True) as bar:
            for step in range(start, num_steps):
                evaluated = evaluate is not None and step % eval_every == 0
                # On the params before the update, like the loss (dispatched first, so
                # a step_fn that donates its state cannot invalidate them).
                evaluation = evaluate(state.params) if evaluated else {}
                new_state, metrics = step_fn(state, batch_fn(step))
                # One scalar (per seed) to the host each step: the check must come
                # before this state can reach a checkpoint.
                loss = to_host(metrics["loss"])
                if not np.all(np.isfinite(loss)):
                    raise FloatingPointError(_nan_message(loss, step,
                                                          checkpoints.latest_step()))
                state = new_state
                if evaluated or step % log_every == 0 or step == num_steps - 1:
                    record = make_record(step, _joined(metrics, evaluation))
                    for receiver in receivers:
                        receiver.log(dict(record))
                    history.append(record)
                done = step + 1
                if done % checkpoint_every == 0 or done == num_steps:
                    if step_of(state) != done:
                        raise ValueError(f"step_fn must advance state.step by one per call; "
                                         f"after {done} updates state.step is {step_of(state)}")
                    checkpoints.save(done, state)
                bar.set_postfix(loss=f"{float(np.mean(loss)):.4g}", refresh=False)
                bar.update(1)
    finally:
        checkpoints.close()  # waits for a save in flight, also on errors and Ctrl-C
        _close_all([log, *loggers])
    return state, history


def _check_arguments(num_steps, keep, checkpoint_every, log_every, evaluate, eval_every,
                     loggers) -> list:
    """ValueError or TypeError naming the first bad argument of `fit`; the loggers as a list."""
    for name, value, least in (("num_steps", num_steps, 0), ("keep", keep, 1),
                               ("checkpoint_every", checkpoint_every, 1),
                               ("log_every", log_every, 1)):
        if not _checks.is_int(value) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"evaluate must be callable or None, got {type(evaluate).__name__}")
    if evaluate is not None and (not _checks.is_int(eval_every) or eval_every < 1):
        raise ValueError(f"eval_every must be an int >= 1 when evaluate is given, "
                         f"got {eval_every!r}")
    if evaluate is None and eval_every is not None:
        raise ValueError(f"eval_every={eval_every!r} is given without evaluate")
    if isinstance(loggers, (str, bytes)) or not isinstance(loggers, Iterable):
        raise TypeError(f"loggers must be an iterable of loggers, got "
                        f"{type(loggers).__name__}")
    loggers = list(loggers)
    for i, logger in enumerate(loggers):
        if not isinstance(logger, Logger):
            raise TypeError(f"loggers[{i}] must have log(record) and close() methods, "
                            f"got {type(logger).__name__}")
    return loggers


def _joined(metrics: dict, evaluation: dict) -> dict:
    clash = sorted(metrics.keys() & evaluation.keys())
    if clash:
        raise ValueError(f"evaluate returned names the step's metrics already use: {clash}")
    return {**metrics, **evaluation}


def _close_all(loggers) -> None:
    """Close every logger, even when one fails; the first failure is raised after."""
    error = None
    for logger in loggers:
        if logger is None:
            continue
        try:
            logger.close()
        except Exception as e:
            error = error or e
    if error is not None:
        raise error


def _nan_message(loss, step: int, last_checkpoint) -> str:
    bad = ~np.isfinite(loss)
    value = loss[bad].flat[0] if loss.ndim else loss
    where = f" (seeds {np.flatnonzero(bad).tolist()})" if loss.ndim else ""
    saved = ("no checkpoint was written" if last_checkpoint is None
             else f"the last good checkpoint is step {last_checkpoint}")
    return f"loss is {value} at step {step}{where}; {saved}"
