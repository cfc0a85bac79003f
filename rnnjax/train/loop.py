"""A training loop that checkpoints, resumes exactly, logs metrics and stops on NaN.

`fit` drives a jitted `step_fn` over `batch_fn(step)` for the steps left to run. The
data is a pure function of the step number and the whole `TrainState` (params,
optimizer state, step, PRNG key) is checkpointed, so a run that is killed and
started again with the same arguments ends with the same bits as one that never
stopped. Everything a run leaves lives in `out_dir`:

    out_dir/checkpoints/<step>/          orbax checkpoints of the state after <step> updates
    out_dir/checkpoints/<step>.corrupt/  a damaged checkpoint, set aside (see below)
    out_dir/metrics.jsonl                one JSON record per logged step
    out_dir/runs.jsonl                   one record per start: its first step and
                                         `provenance.environment()` (versions, devices,
                                         git commit, command)
    out_dir/curves.png                   `plot_metrics`

Step numbers follow `state.step`, the count of updates done, which is also the data
position: the update from state.step == s reads `batch_fn(s)`, and its metrics (the
loss at the params of state s) are logged as step s. A checkpoint named s holds the
state with state.step == s, ready to run step s.

A save is whole or absent (orbax writes a tmp dir and renames it), but a checkpoint
can still be damaged on disk afterwards: a file cut short or overwritten, its tree
metadata lost, an empty step folder. Orbax or TensorStore then raise ValueError
reading it, or a leaf fails the CRC32 recorded in the checkpoint's metadata when it
was saved (orbax checksums its index nodes and small arrays, not the data of larger
ones). `fit` then warns, renames the folder `<step>.corrupt` (kept for inspection,
never deleted; orbax no longer sees it, so that step is saved again) and tries the
next older checkpoint, down to the given initial state, which a last warning names
with every folder set aside. Damage is told from a user error by the metadata: a
checkpoint whose recorded structure, shapes or dtypes differ from the state's holds
another model and raises ValueError, setting nothing aside. An `out_dir` that cannot
be created or written raises ValueError too, before the first step.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from rnnjax import _checks
from rnnjax.train.provenance import environment

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
RUNS = "runs.jsonl"
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
      state: the initial `TrainState`. When `out_dir/checkpoints` holds checkpoints,
        the newest one that is not damaged is restored into this structure (shapes,
        dtypes and PRNG key types must match) and replaces it.
      batch_fn: `batch_fn(step) -> batch`, a pure function of the step, so a resumed
        run reads exactly the data it would have read.
      num_steps: the total number of updates of the run (not the number left).
      out_dir: the run's directory (created when missing); it must be writable.
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
      ValueError: `out_dir` or its checkpoints folder cannot be created or written
        (a path under a file, a read-only directory; the OSError is the `__cause__`),
        found before the first step; or a checkpoint there holds another model (its
        structure, shapes or dtypes differ from `state`'s).

    Warns:
      UserWarning: a checkpoint is damaged and set aside (one warning each, naming
        its folder and the error), and again when none was left to restore.
    """
    for name, value, least in (("num_steps", num_steps, 0), ("keep", keep, 1),
                               ("checkpoint_every", checkpoint_every, 1),
                               ("log_every", log_every, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    _make_writable_dirs(out_dir)
    log_path = os.path.join(out_dir, METRICS)
    manager = _checkpoint_manager(os.path.join(out_dir, CHECKPOINTS), keep)
    try:
        state = _resume(manager, state)
        start = _step_of(state)
        # Records at steps >= start were written after the state we resume from (the
        # run died before its next checkpoint); the steps are about to run again.
        history = _truncate_log(log_path, start)
        if start >= num_steps:
            return state, history
        # Several processes (jax.distributed) share out_dir: process 0 alone logs.
        primary = jax.process_index() == 0
        if primary:
            with open(os.path.join(out_dir, RUNS), "a") as runs:
                runs.write(json.dumps({"start_step": start, "num_steps": num_steps,
                                       "time": time.time(), **environment()}) + "\n")
        with open(log_path if primary else os.devnull, "a") as log, \
                tqdm(total=num_steps, initial=start, unit="step", desc=desc,
                     disable=not progress or not primary, dynamic_ncols=True) as bar:
            for step in range(start, num_steps):
                new_state, metrics = step_fn(state, batch_fn(step))
                # One scalar (per seed) to the host each step: the check must come
                # before this state can reach a checkpoint.
                loss = _host(metrics["loss"])
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
                    storable = _storable(state)
                    manager.save(done, args=ocp.args.StandardSave(storable), force=True,
                                 custom_metadata={"crc32": _crc32s(storable)})
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
    # The item handler lets `manager.metadata(step)` read the tree's shapes and dtypes.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(directory, options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def _make_writable_dirs(out_dir: str) -> None:
    """Create `out_dir` and its checkpoints folder and write a file in each, so a run
    that could not save fails before its first step, not at its first checkpoint."""
    for directory in (out_dir, os.path.join(out_dir, CHECKPOINTS)):
        try:
            os.makedirs(directory, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as e:
            raise ValueError(f"out_dir must be a directory this process can write files "
                             f"in; {out_dir} is not ({e})") from e


def _storable(state):
    """Typed PRNG keys as their raw uint32 data: orbax stores plain arrays only."""
    return jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if _checks.is_typed_key(x) else x, state)


class _Damaged(Exception):
    """A checkpoint that cannot be read back as it was saved."""


def _resume(manager: ocp.CheckpointManager, like):
    """The newest checkpoint that restores into the structure of `like`, else `like`.

    Damaged ones are set aside with a warning each (see the module docstring).
    """
    set_aside = []
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                return _restore(manager, step, like)
            except _Damaged as e:
                folder = os.path.join(manager.directory, str(step))  # orbax's step name
                set_aside.append(_set_aside(folder))
                warnings.warn(f"checkpoint {folder} is damaged: {e}. Moved it to "
                              f"{set_aside[-1]}; trying the next older checkpoint",
                              stacklevel=3)
        if set_aside:
            warnings.warn(f"no checkpoint in {manager.directory} could be restored, all "
                          f"were damaged and set aside: {', '.join(set_aside)}; training "
                          f"from the given state (step {_step_of(like)})", stacklevel=3)
        return like
    finally:
        if set_aside:
            manager.reload()  # forget the steps set aside, so they can be saved again


def _set_aside(folder: str) -> str:
    """Rename `folder` to `<folder>.corrupt` (`.corrupt2`, ... when taken); its new path.

    Several processes (jax.distributed) share the folder: each finds it damaged (the
    CRC32s are of gathered data, the files are the same), all choose the name, then
    process 0 alone renames it while the others wait.
    """
    aside, n = folder + ".corrupt", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{folder}.corrupt{n}"
    several = jax.process_count() > 1
    if several:
        multihost_utils.sync_global_devices(f"rnnjax: set aside {folder}")
    if jax.process_index() == 0:
        os.rename(folder, aside)
    if several:
        multihost_utils.sync_global_devices(f"rnnjax: {folder} set aside")
    return aside


def _restore(manager: ocp.CheckpointManager, step: int, like):
    """The checkpoint at `step` in the structure of `like`, typed keys re-wrapped.

    Raises ValueError when the checkpoint's metadata record another structure, shape
    or dtype than `like`'s (another model), and `_Damaged` when it cannot be read
    back as saved: its metadata unreadable, or, the metadata matching, its data
    unreadable, of another shape than recorded, or failing their CRC32s.

    Orbax restores a jax.Array committed to the template's device, but a fresh state
    is uncommitted and jit caches on that: such leaves go through host arrays and come
    back uncommitted, so the resumed run reuses the compiled step instead of
    compiling it again.
    """
    def target(x):
        x = jax.random.key_data(x) if _checks.is_typed_key(x) else x
        return np.empty(x.shape, x.dtype) if _uncommitted(x) else x

    def back(stored, x):
        if _uncommitted(x):
            stored = jnp.asarray(stored)
        if _checks.is_typed_key(x):
            stored = jax.random.wrap_key_data(stored, impl=jax.random.key_impl(x))
        return stored

    templates = jax.tree_util.tree_map(target, like)
    try:  # reads the tree's metadata and opens every array
        metadata = manager.metadata(step)
        tree = metadata.item_metadata
    except (ValueError, KeyError, TypeError) as e:  # garbled JSON, TensorStore, no item
        raise _Damaged(_unreadable(e)) from e
    if tree is None:  # orbax logs that it could not read the tree's metadata
        raise _Damaged("its tree metadata (default/_METADATA) are missing")
    wanted = ocp.tree.to_flat_dict(templates)
    saved = ocp.tree.to_flat_dict(tree.tree)
    mismatch = (f"the checkpoint at step {step} in {manager.directory} does not match "
                f"the given state (another model, optimizer or number of seeds?)")
    for key in sorted(saved.keys() | wanted.keys()):
        name = ".".join(key)
        if key not in saved or key not in wanted:
            has, lacks = ("checkpoint", "state") if key in saved else ("state", "checkpoint")
            raise ValueError(f"{mismatch}: the {has} has {name}, the {lacks} does not")
        if _spec(saved[key]) != _spec(wanted[key]):
            raise ValueError(f"{mismatch}: {name} is {_spec(saved[key])} in the checkpoint, "
                             f"{_spec(wanted[key])} in the state")
    try:
        stored = manager.restore(step, args=ocp.args.StandardRestore(templates))
    except ValueError as e:  # TensorStore's DATA_LOSS, OUT_OF_RANGE, NOT_FOUND, ...
        raise _Damaged(_unreadable(e)) from e
    # Checkpoints written before CRC32s were recorded, or whose step metadata were
    # lost (orbax logs that and returns none), are restored unchecked.
    crc32s = metadata.custom_metadata.get("crc32", {})
    for key, got in ocp.tree.to_flat_dict(_host(stored)).items():
        name = ".".join(key)
        # Orbax checks shapes against jax.Array templates only; numpy ones take any.
        if _spec(got) != _spec(wanted[key]):
            raise _Damaged(f"its data for {name} are {_spec(got)}, its metadata say "
                           f"{_spec(wanted[key])}")
        if name in crc32s and crc32s[name] != _crc32(got):
            raise _Damaged(f"{name} fails the CRC32 recorded when it was saved")
    return jax.tree_util.tree_map(back, stored, like)


def _unreadable(e: Exception) -> str:
    """Why orbax cannot read a checkpoint, without the JSON spec TensorStore appends."""
    return f"orbax cannot read it ({type(e).__name__}: {str(e).split(' [tensorstore_spec=')[0]})"


def _spec(x) -> str:
    """`float32[8, 24]`: the dtype and shape of an array or of orbax's metadata of one."""
    return f"{np.dtype(x.dtype)}{list(x.shape)}"


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _crc32s(tree) -> dict[str, int]:
    """The CRC32 of each leaf's bytes by its name in the checkpoint (`params.cell.W_h`)."""
    return {".".join(key): _crc32(leaf)
            for key, leaf in ocp.tree.to_flat_dict(_host(tree)).items()}


def _uncommitted(x) -> bool:
    return isinstance(x, jax.Array) and not x.committed


def _step_of(state) -> int:
    """Updates done: `state.step`, or its max over a leading seeds axis."""
    return int(np.max(_host(state.step)))


def _host(tree):
    """`tree` as NumPy arrays. An array sharded over several processes' devices is
    gathered from all of them: a collective, which every process reaches at the same
    point of `fit`."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))
    return jax.tree_util.tree_map(get, tree)


def _record(step: int, metrics) -> dict:
    record = {"step": step, "time": time.time()}
    for name, value in _host(metrics).items():
        value = np.asarray(value, np.float64)
        record[name] = value.item() if value.ndim == 0 else value.tolist()
    return record


def _truncate_log(path: str, start: int) -> list[dict]:
    """Keep the records of steps before `start` and return them.

    The file is rewritten (tmp file, then rename) even when nothing is dropped, so a
    line torn by a kill never has the next record appended to it. With several
    processes, process 0 alone writes it; the others only read it.
    """
    kept = [r for r in read_metrics(os.path.dirname(path)) if r["step"] < start]
    if jax.process_index() == 0 and os.path.exists(path):
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
