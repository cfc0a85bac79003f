"""fit on damaged checkpoints (set aside, an older one restored, the same end bits) and
on an out_dir it cannot write (an error before the first step)."""

import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from loop_worker import problem
from test_loop import assert_log_continues, assert_same_state, run, steps_on_disk

from rnnjax.train import fit, init_state, make_train_step, read_metrics

# After a failed read, TensorStore's threads print "Event loop is closed" tracebacks
# that pytest reports as unraisable exceptions; they are harmless here.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def largest_data_file(step_dir):
    """The largest file in the checkpoint's OCDBT data folders (`d/`). Of two equal ones
    the root's: orbax's merge leaves a copy of the process's b-tree node there, which is
    the one restore reads."""
    files = [os.path.join(root, name) for root, _, names in os.walk(step_dir)
             if os.path.basename(root) == "d" for name in names]
    return max(files, key=lambda path: (os.path.getsize(path), -path.count(os.sep)))


def truncate_largest_data_file(step_dir):
    path = largest_data_file(step_dir)
    os.truncate(path, os.path.getsize(path) // 2)


def overwrite_middle_of_largest_data_file(step_dir):
    path = largest_data_file(step_dir)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff" * 16)


def delete_tree_metadata(step_dir):
    os.remove(os.path.join(step_dir, "default", "_METADATA"))


def empty_step_folder(step_dir):
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run(tmp_path_factory.mktemp("full"), 12)


@pytest.mark.parametrize("damage", [truncate_largest_data_file,
                                    overwrite_middle_of_largest_data_file,
                                    delete_tree_metadata, empty_step_folder])
def test_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_restored(
        tmp_path, uninterrupted, damage):
    full, full_history = uninterrupted
    run(tmp_path, 8)  # checkpoints 4 and 8; logs steps 0, 2, 4, 6 and the last, 7
    ckpts = tmp_path / "checkpoints"
    damage(ckpts / "8")
    with pytest.warns(UserWarning) as caught:
        resumed, history = run(tmp_path, 12)
    [warning] = caught
    assert str(warning.message).startswith(f"checkpoint {ckpts / '8'} is damaged: ")
    assert str(warning.message).endswith(f"Moved it to {ckpts / '8.corrupt'}; "
                                         f"trying the next older checkpoint")
    assert_same_state(resumed, full)
    assert steps_on_disk(tmp_path) == [4, 8, 12]  # 8 saved again, beside the one set aside
    assert sorted(os.listdir(ckpts)) == ["12", "4", "8", "8.corrupt"]
    # Restored at 4: the lines of steps 4 to 7 were dropped and logged again, once.
    assert history == read_metrics(tmp_path)
    assert [r["step"] for r in history] == [r["step"] for r in full_history]
    assert_log_continues(history, full_history)


def test_every_checkpoint_damaged_starts_over_naming_each(tmp_path, uninterrupted):
    full, full_history = uninterrupted
    run(tmp_path, 8)
    ckpts = tmp_path / "checkpoints"
    truncate_largest_data_file(ckpts / "8")
    empty_step_folder(ckpts / "4")
    os.mkdir(ckpts / "8.corrupt")  # left by an earlier fall back: the name is taken
    with pytest.warns(UserWarning) as caught:
        resumed, history = run(tmp_path, 12)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3
    assert messages[0].startswith(f"checkpoint {ckpts / '8'} is damaged: ")
    assert f"Moved it to {ckpts / '8.corrupt2'};" in messages[0]
    assert messages[1].startswith(f"checkpoint {ckpts / '4'} is damaged: ")
    assert messages[2] == (f"no checkpoint in {ckpts} could be restored, all were damaged "
                           f"and set aside: {ckpts / '8.corrupt2'}, {ckpts / '4.corrupt'}; "
                           f"training from the given state (step 0)")
    assert_same_state(resumed, full)
    assert [r["step"] for r in history] == [r["step"] for r in full_history]
    assert_log_continues(history, full_history)


def wide_problem():
    """A linear regression whose arrays (8 KiB each) orbax stores outside its
    checksummed b-tree nodes (it inlines values up to 1 KiB), compressed by zstd. Random
    floats do not compress, so zstd stores them raw: bytes overwritten there restore
    without an error, and only the CRC32s that fit records find them."""
    optimizer = optax.adam(1e-2)
    loss_fn = lambda params, batch, key: (jnp.mean((batch[0] @ params["w"] - batch[1]) ** 2),
                                          {})
    w = jax.random.normal(jax.random.key(0), (1024, 2))
    state = init_state({"w": w}, optimizer, jax.random.key(1))

    def batch_fn(step):
        xs = np.random.default_rng(step).normal(size=(4, 1024)).astype(np.float32)
        return xs, xs[:, :2]

    return jax.jit(make_train_step(loss_fn, optimizer)), state, batch_fn


def test_overwritten_array_data_fail_their_crc32(tmp_path):
    step_fn, state, batch_fn = wide_problem()
    full, _ = fit(step_fn, state, batch_fn, 8, tmp_path / "full", checkpoint_every=4,
                  progress=False)
    out = tmp_path / "run"
    fit(step_fn, state, batch_fn, 8, out, checkpoint_every=4, progress=False)
    path = largest_data_file(out / "checkpoints" / "8")
    assert os.path.basename(os.path.dirname(os.path.dirname(path))) == "ocdbt.process_0"
    overwrite_middle_of_largest_data_file(out / "checkpoints" / "8")
    # Raw (incompressible) blocks fail only their CRC32; where the bytes hit a zstd
    # frame's header, zstd notices first. Either way nothing restores silently.
    with pytest.warns(UserWarning, match=r"checkpoints/8 is damaged: (\S+ fails the CRC32 "
                                         r"recorded when it was saved|orbax cannot read "
                                         r"it \(.*Data corruption detected.*\))\. "
                                         r"Moved it to "):
        resumed, _ = fit(step_fn, state, batch_fn, 8, out, checkpoint_every=4,
                         progress=False)
    assert_same_state(resumed, full)


def test_a_leaf_that_fails_its_recorded_crc32_is_damage(tmp_path):
    """The CRC32 path alone: a recorded checksum that no longer matches the data."""
    full, _ = run(tmp_path / "full", 12)
    out = tmp_path / "run"
    run(out, 12)
    meta_path = out / "checkpoints" / "12" / "_CHECKPOINT_METADATA"
    meta = json.loads(meta_path.read_text())
    name = sorted(meta["custom_metadata"]["crc32"])[0]
    meta["custom_metadata"]["crc32"][name] ^= 1
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=rf"checkpoints/12 is damaged: {re.escape(name)} "
                                         rf"fails the CRC32 recorded when it was saved"):
        resumed, _ = run(out, 12)
    assert_same_state(resumed, full)


def test_checkpoint_of_another_model_raises_and_sets_nothing_aside(tmp_path):
    run(tmp_path, 4)
    _, state = problem()
    wider = state._replace(params={**state.params, "out": jnp.zeros((8, 2))})
    fewer = state._replace(params={"cell": state.params["cell"]})
    never = lambda *args: pytest.fail("no step may run")
    with pytest.raises(ValueError, match=r"the checkpoint at step 4 in .* does not match "
                                         r"the given state .*: params\.out is "
                                         r"float32\[8, 1\] in the checkpoint, "
                                         r"float32\[8, 2\] in the state"):
        fit(never, wider, never, 8, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"does not match the given state .*: the "
                                         r"checkpoint has params\.out, the state does not"):
        fit(never, fewer, never, 8, tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]  # nothing set aside


def unwritable_cases(tmp_path):
    """(out_dir, a part of the OSError it meets) for the paths fit cannot write."""
    (tmp_path / "file").write_text("")
    yield tmp_path / "file" / "run", "Not a directory"
    yield tmp_path / "file", "File exists"
    if os.geteuid() != 0:  # root writes in read-only folders
        read_only = tmp_path / "read_only"
        read_only.mkdir(mode=0o555)
        yield read_only, "Permission denied"
        yield read_only / "run", "Permission denied"
        checkpoints_read_only = tmp_path / "writable"
        (checkpoints_read_only / "checkpoints").mkdir(parents=True, mode=0o555)
        yield checkpoints_read_only, "Permission denied"


def test_unwritable_out_dir_fails_before_the_first_step(tmp_path):
    calls = []
    step_fn = lambda state, batch: calls.append("step_fn")
    batch_fn = lambda step: calls.append("batch_fn")
    _, state = problem()
    for out_dir, reason in unwritable_cases(tmp_path):
        with pytest.raises(ValueError) as raised:
            fit(step_fn, state, batch_fn, 4, out_dir, progress=False)
        assert str(raised.value).startswith(f"out_dir must be a directory this process can "
                                            f"write files in; {out_dir} is not (")
        assert reason in str(raised.value) and isinstance(raised.value.__cause__, OSError)
    assert calls == []
