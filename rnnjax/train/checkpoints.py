"""Checkpoints of a `TrainState` in a run's folder, and recovery from damaged ones.

    out_dir/checkpoints/<step>/          orbax checkpoints of the state after <step> updates
    out_dir/checkpoints/<step>.corrupt/  a damaged checkpoint, set aside (see below)

A save is whole or absent (orbax writes a tmp dir and renames it), but a checkpoint
can still be damaged on disk afterwards: a file cut short or overwritten, its tree
metadata lost, an empty step folder. Orbax or TensorStore then raise ValueError
reading it, or a leaf fails the CRC32 recorded in the checkpoint's metadata when it
was saved (orbax checksums its index nodes and small arrays, not the data of larger
ones). `Checkpoints.resume` then warns, renames the folder `<step>.corrupt` (kept for
inspection, never deleted; orbax no longer sees it, so that step is saved again) and
tries the next older checkpoint, down to the given initial state, which a last warning
names with every folder set aside. Damage is told from a user error by the metadata: a
checkpoint whose recorded structure, shapes or dtypes differ from the state's holds
another model and raises ValueError, setting nothing aside.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from rnnjax import _checks
from rnnjax.train._host import step_of, to_host

CHECKPOINTS = "checkpoints"


class Checkpoints:
    """The checkpoints of the run in `out_dir`, keeping the latest `keep` on disk.

    Creating it creates `out_dir/checkpoints` and writes a file there, so a run that
    could not save fails before its first step (ValueError), not at its first
    checkpoint (`write=False`: only read, nothing is created). Close it (or use it as a
    context manager) to wait for a save in flight.
    """

    def __init__(self, out_dir, keep: int | None, *, write: bool = True):
        self.directory = os.path.join(os.fspath(out_dir), CHECKPOINTS)
        if write:
            make_writable_dir(self.directory, os.fspath(out_dir))
        # Orbax writes each step into `<step>.orbax-checkpoint-tmp` and renames it when
        # complete, so a checkpoint is whole or absent: a killed save leaves only the
        # tmp dir, which restore ignores and `cleanup_tmp_directories` removes. The
        # item handler lets `manager.metadata(step)` read the tree's shapes and dtypes.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=write,
                                               cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_handlers=ocp.StandardCheckpointHandler())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Wait for a save in flight and release the manager."""
        self._manager.close()

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint (saves in flight finished first)."""
        self._manager.wait_until_finished()
        return self._manager.latest_step()

    def save(self, step: int, state) -> None:
        """Save `state` as checkpoint `step`, with the CRC32 of each leaf. Asynchronous:
        the arrays are copied to host here, written in the background to a tmp dir and
        renamed into place when complete."""
        storable = _storable(state)
        self._manager.save(step, args=ocp.args.StandardSave(storable), force=True,
                           custom_metadata={"crc32": _crc32s(storable)})

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def resume(self, like):
        """The newest checkpoint that restores into the structure of `like`, else `like`.

        Damaged ones are set aside with a warning each (see the module docstring); one
        holding another model raises ValueError.
        """
        set_aside = []
        try:
            for step in reversed(self.steps()):
                try:
                    return _restore(self._manager, step, like)
                except _Damaged as e:
                    set_aside.append(self._set_aside_damaged(step, e, "trying the next "
                                                                      "older checkpoint"))
            if set_aside:
                warnings.warn(f"no checkpoint in {self.directory} could be restored, "
                              f"all were damaged and set aside: {', '.join(set_aside)}; "
                              f"training from the given state (step {step_of(like)})",
                              stacklevel=3)
            return like
        finally:
            if set_aside:
                self._manager.reload()  # forget the steps set aside: they may be saved again

    def restore_step(self, step: int, like):
        """The checkpoint of `step` in the structure of `like`. ValueError when there is
        none, or when it is damaged (it is then set aside, as `resume` does)."""
        if step not in self.steps():
            raise ValueError(f"no checkpoint of step {step} in {self.directory}; its "
                             f"checkpoints are of steps {self.steps()}")
        try:
            return _restore(self._manager, step, like)
        except _Damaged as e:
            aside = self._set_aside_damaged(step, e, "not restored")
            self._manager.reload()
            raise ValueError(f"the checkpoint of step {step} is damaged and was moved to "
                             f"{aside}; its other checkpoints are of steps "
                             f"{self.steps()}") from e

    def _set_aside_damaged(self, step: int, error: Exception, then: str) -> str:
        """Set the damaged checkpoint of `step` aside with a warning; its new path."""
        folder = os.path.join(self.directory, str(step))  # orbax's step name
        aside = _set_aside(folder)
        warnings.warn(f"checkpoint {folder} is damaged: {error}. Moved it to {aside}; "
                      f"{then}", stacklevel=4)
        return aside


def restore(out_dir, state, step: int | None = None):
    """The state of the run in `out_dir`, loaded into the structure of `state`.

    `step=None` loads the newest checkpoint that is not damaged, as `fit` resumes
    (damaged ones are set aside with a warning each); an int loads that step's
    checkpoint. `state` is any state of the same structure, shapes and dtypes: the
    initial one a run starts from, for instance, to probe or evaluate its trained
    params. Raises ValueError when `out_dir` holds no checkpoint (or none that could be
    read), the step is not there, or the checkpoint holds another model.

    >>> state = restore("results/echo/tanh", init_state(params, optimizer, key))  # doctest: +SKIP
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    directory = os.path.join(out_dir, CHECKPOINTS)
    if not os.path.isdir(directory):
        raise ValueError(f"out_dir {out_dir} holds no checkpoints (no folder {directory})")
    if step is not None and not _checks.is_int(step):
        raise _checks.InputTypeError(f"step must be an int or None, got {step!r}")
    with Checkpoints(out_dir, None, write=False) as checkpoints:
        if step is not None:
            return checkpoints.restore_step(int(step), state)
        if not checkpoints.steps():
            raise ValueError(f"out_dir {out_dir} holds no checkpoints ({directory} is "
                             f"empty)")
        restored = checkpoints.resume(state)
        if restored is state:
            raise ValueError(f"no checkpoint in {directory} could be restored: all were "
                             f"damaged and set aside")
        return restored


def make_writable_dir(directory: str, name=None) -> None:
    """Create `directory` and write a file in it; ValueError naming `name` (the folder
    the user gave) when that fails."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        name = directory if name is None else name
        raise ValueError(f"out_dir must be a directory this process can write files "
                         f"in; {name} is not ({e})") from e


def _storable(state):
    """Typed PRNG keys as their raw uint32 data: orbax stores plain arrays only."""
    return jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if _checks.is_typed_key(x) else x, state)


class _Damaged(Exception):
    """A checkpoint that cannot be read back as it was saved."""


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
        if _checks.spec(saved[key]) != _checks.spec(wanted[key]):
            raise ValueError(f"{mismatch}: {name} is {_checks.spec(saved[key])} in the checkpoint, "
                             f"{_checks.spec(wanted[key])} in the state")
    try:
        stored = manager.restore(step, args=ocp.args.StandardRestore(templates))
    except ValueError as e:  # TensorStore's DATA_LOSS, OUT_OF_RANGE, NOT_FOUND, ...
        raise _Damaged(_unreadable(e)) from e
    # Checkpoints written before CRC32s were recorded, or whose step metadata were
    # lost (orbax logs that and returns none), are restored unchecked.
    crc32s = metadata.custom_metadata.get("crc32", {})
    for key, got in ocp.tree.to_flat_dict(to_host(stored)).items():
        name = ".".join(key)
        # Orbax checks shapes against jax.Array templates only; numpy ones take any.
        if _checks.spec(got) != _checks.spec(wanted[key]):
            raise _Damaged(f"its data for {name} are {_checks.spec(got)}, its metadata say "
                           f"{_checks.spec(wanted[key])}")
        if name in crc32s and crc32s[name] != _crc32(got):
            raise _Damaged(f"{name} fails the CRC32 recorded when it was saved")
    return jax.tree_util.tree_map(back, stored, like)


def _unreadable(e: Exception) -> str:
    """Why orbax cannot read a checkpoint, without the JSON spec TensorStore appends."""
    return f"orbax cannot read it ({type(e).__name__}: {str(e).split(' [tensorstore_spec=')[0]})"


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _crc32s(tree) -> dict[str, int]:
    """The CRC32 of each leaf's bytes by its name in the checkpoint (`params.cell.W_h`)."""
    return {".".join(key): _crc32(leaf)
            for key, leaf in ocp.tree.to_flat_dict(to_host(tree)).items()}


def _uncommitted(x) -> bool:
    return isinstance(x, jax.Array) and not x.committed
