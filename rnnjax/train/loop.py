"""A training loop that checkpoints, resumes exactly, logs metrics and stops on NaN.

`fit` drives a jitted `step_fn` over `batch_fn(step)` for the steps left to run. The
data is a pure function of the step number and the whole `TrainState` (params,
optimizer state, step, PRNG key) is checkpointed, so a run that is killed and
started again with the same arguments ends with the same bits as one that never
stopped. Everything a run leaves lives in `out_dir`:

    out_dir/checkpoints/<step>/   orbax checkpoints of the state after <step> updates
    out_dir/metrics.jsonl         one JSON record per logged step
    out_dir/curves.png            `plot_metrics`

Step numbers follow `state.step`, the count of updates done, which is also the data
position: the update from state.step == s reads `batch_fn(s)`, and its metrics (the
loss at the params of state s) are logged as step s. A checkpoint named s holds the
state with state.step == s, ready to run step s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
CURVES = "curves.png"


def fit(step_fn: Callable, state, batch_fn: Callable[[int], Any], num_steps: int,
        out_dir, *, checkpoint_every: int = 100, keep: int = 3, log_every: int = 10,
        progress: bool = True, desc: str = "train"):
    """Train until `state.step == num_steps`, resuming from `out_dir` when it holds a run.

    Args:
      step_fn: `step_fn(state, batch) -> (state, metrics)`, jitted by the caller (see
        `make_train_step`); it may be vmapped over a leading seeds axis, in which case
        every leaf has that axis and the step count is `max(state.step)`. `metrics`
        must hold `loss`.
      state: the initial `TrainState`. When `out_dir/checkpoints` holds a checkpoint,
        the latest one is restored into this structure (shapes, dtypes and PRNG key
        types must match) and replaces it.
      batch_fn: `batch_fn(step) -> batch`, a pure function of the step, so a resumed
        run reads exactly the data it would have read.
      num_steps: the total number of updates of the run (not the number left).
      out_dir: the run's directory (created when missing).
      checkpoint_every: save after every this many updates, and always at the end.
      keep: how many of the latest checkpoints to keep on disk.
      log_every: append a metrics record every this many steps, and at the last step.
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
    """
    for name, value, least in (("num_steps", num_steps, 0), ("keep", keep, 1),
                               ("checkpoint_every", checkpoint_every, 1),
                               ("log_every", log_every, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, METRICS)
    manager = _checkpoint_manager(os.path.join(out_dir, CHECKPOINTS), keep)
    try:
        latest = manager.latest_step()
        if latest is not None:
            state = _restore(manager, latest, state)
        start = _step_of(state)
        # Records at steps >= start were written after the state we resume from (the
        # run died before its next checkpoint); the steps are about to run again.
        history = _truncate_log(log_path, start)
        if start >= num_steps:
            return state, history
        with open(log_path, "a") as log, tqdm(total=num_steps, initial=start, unit="step",
                                              desc=desc, disable=not progress,
                                              dynamic_ncols=True) as bar:
            for step in range(start, num_steps):
                new_state, metrics = step_fn(state, batch_fn(step))
                # One scalar (per seed) to the host each step: the check must come
                # before this state can reach a checkpoint.
                loss = np.asarray(jax.device_get(metrics["loss"]))
                if not np.all(np.isfinite(loss)):
                    manager.wait_until_finished()
                    raise FloatingPointError(_nan_message(loss, step, manager.latest_step()))
                state = new_state
                if step % log_every == 0 or step == num_steps - 1:
                    record = _record(step, metrics)
                    log.write(json.dumps(record) + "\n")
                    log.flush()  # on disk before any later checkpoint: no gaps on resume
                    history.append(record)
                done = step + 1
                if done % checkpoint_every == 0 or done == num_steps:
                    if _step_of(state) != done:
                        raise ValueError(f"step_fn must advance state.step by one per call; "
                                         f"after {done} updates state.step is {_step_of(state)}")
                    # Async: the arrays are copied to host here, written in the
                    # background to a tmp dir and renamed into place when complete.
                    manager.save(done, args=ocp.args.StandardSave(_storable(state)), force=True)
                bar.set_postfix(loss=f"{float(np.mean(loss)):.4g}", refresh=False)
                bar.update(1)
    finally:
        manager.close()  # waits for a save in flight, also on errors and Ctrl-C
    return state, history


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


def _checkpoint_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    # Orbax writes each step into `<step>.orbax-checkpoint-tmp` and renames it when
    # complete, so a checkpoint is whole or absent: a killed save leaves only the
    # tmp dir, which restore ignores and `cleanup_tmp_directories` removes.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(directory, options=options)


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _storable(state):
    """Typed PRNG keys as their raw uint32 data: orbax stores plain arrays only."""
    return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _restore(manager: ocp.CheckpointManager, step: int, like):
    """The checkpoint at `step` in the structure of `like`, typed keys re-wrapped.

    Orbax restores a jax.Array committed to the template's device, but a fresh state
    is uncommitted and jit caches on that: such leaves go through host arrays and come
    back uncommitted, so the resumed run reuses the compiled step instead of
    compiling it again.
    """
    def target(x):
        x = jax.random.key_data(x) if _is_key(x) else x
        return np.empty(x.shape, x.dtype) if _uncommitted(x) else x

    def back(stored, x):
        if _uncommitted(x):
            stored = jnp.asarray(stored)
        if _is_key(x):
            stored = jax.random.wrap_key_data(stored, impl=jax.random.key_impl(x))
        return stored

    mismatch = (f"the checkpoint at step {step} in {manager.directory} does not match "
                f"the given state (another model, optimizer or number of seeds?)")
    templates = jax.tree_util.tree_map(target, like)
    try:
        stored = manager.restore(step, args=ocp.args.StandardRestore(templates))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{mismatch}: {e}") from e
    # Orbax checks shapes against jax.Array templates only; numpy ones take any shape.
    for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(stored)[0],
                                 jax.tree_util.tree_leaves(templates)):
        if (np.shape(got), np.result_type(got)) != (np.shape(want), np.result_type(want)):
            raise ValueError(f"{mismatch}: {jax.tree_util.keystr(path)} is "
                             f"{np.result_type(got)}{list(np.shape(got))} in the checkpoint, "
                             f"{np.result_type(want)}{list(np.shape(want))} in the state")
    return jax.tree_util.tree_map(back, stored, like)


def _uncommitted(x) -> bool:
    return isinstance(x, jax.Array) and not x.committed


def _step_of(state) -> int:
    """Updates done: `state.step`, or its max over a leading seeds axis."""
    return int(np.max(jax.device_get(state.step)))


def _record(step: int, metrics) -> dict:
    record = {"step": step, "time": time.time()}
    for name, value in jax.device_get(metrics).items():
        value = np.asarray(value, np.float64)
        record[name] = value.item() if value.ndim == 0 else value.tolist()
    return record


def _truncate_log(path: str, start: int) -> list[dict]:
    """Keep the records of steps before `start` and return them.

    The file is rewritten (tmp file, then rename) even when nothing is dropped, so a
    line torn by a kill never has the next record appended to it.
    """
    kept = [r for r in read_metrics(os.path.dirname(path)) if r["step"] < start]
    if os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, path)
    return kept


def _nan_message(loss, step: int, last_checkpoint) -> str:
    bad = ~np.isfinite(loss)
    value = loss[bad].flat[0] if loss.ndim else loss
    where = f" (seeds {np.flatnonzero(bad).tolist()})" if loss.ndim else ""
    saved = ("no checkpoint was written" if last_checkpoint is None
             else f"the last good checkpoint is step {last_checkpoint}")
    return f"loss is {value} at step {step}{where}; {saved}"
