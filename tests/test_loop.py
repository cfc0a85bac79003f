"""fit: exact resume (in process and after SIGKILL), NaN stops, seeds, retention, logs."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from loop_worker import batch_fn, flat_params, problem

from rnnjax.train import fit, plot_metrics, read_metrics

WORKER = os.path.join(os.path.dirname(__file__), "loop_worker.py")


def run(out, num_steps, seeds=None, **kw):
    step_fn, state = problem(seeds)
    kw = {"checkpoint_every": 4, "log_every": 2, "progress": False, **kw}
    return fit(step_fn, state, batch_fn, num_steps, out, **kw)


def assert_same_state(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_log_continues(resumed, reference):
    """Each step logged once, in order, and equal to the reference where both logged."""
    steps = [r["step"] for r in resumed]
    assert steps == sorted(set(steps))
    by_step = {r["step"]: r for r in resumed}
    for ref in reference:
        got = by_step[ref["step"]]
        assert {k: v for k, v in got.items() if k != "time"} == \
               {k: v for k, v in ref.items() if k != "time"}


def steps_on_disk(out):
    return sorted(int(d) for d in os.listdir(os.path.join(out, "checkpoints")) if d.isdigit())


def test_resume_is_bitwise_equal_and_log_has_no_duplicates(tmp_path):
    full, full_history = run(tmp_path / "full", 20)
    part, _ = run(tmp_path / "split", 10)
    assert int(part.step) == 10
    resumed, history = run(tmp_path / "split", 20)
    assert int(resumed.step) == 20
    assert_same_state(resumed, full)
    np.testing.assert_array_equal(flat_params(resumed), flat_params(full))
    assert history == read_metrics(tmp_path / "split")
    assert_log_continues(history, full_history)
    assert [r["step"] for r in full_history] == list(range(0, 20, 2)) + [19]
    again, history_again = run(tmp_path / "split", 20)  # already done: returns at once
    assert_same_state(again, full)
    assert history_again == history
    # one provenance record per start that ran steps, none for the call with nothing to do
    with open(tmp_path / "split" / "runs.jsonl") as f:
        starts = [json.loads(line) for line in f]
    assert [(r["start_step"], r["num_steps"]) for r in starts] == [(0, 10), (10, 20)]
    assert starts[0]["versions"]["jax"] == jax.__version__
    assert starts[0]["devices"] == [str(d) for d in jax.devices()]


def test_save_cut_short_is_ignored_and_its_log_lines_dropped(tmp_path):
    """A kill during the save of step 8 leaves `8.orbax-checkpoint-tmp`, half written,
    and log lines past step 4: resume restores 4, drops those lines and runs again."""
    full, full_history = run(tmp_path / "full", 12)
    out = tmp_path / "run"
    run(out, 8)
    ckpts = out / "checkpoints"
    assert steps_on_disk(out) == [4, 8]
    torn = ckpts / "8.orbax-checkpoint-tmp"
    os.rename(ckpts / "8", torn)
    for root, _, files in os.walk(torn):
        for name in files[::2]:
            os.remove(os.path.join(root, name))
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "time": 1.0, "loss": 0.')  # a line torn by the same kill
    assert [r["step"] for r in read_metrics(out)] == [0, 2, 4, 6, 7]
    resumed, history = run(out, 12)
    assert_same_state(resumed, full)
    assert steps_on_disk(out) == [4, 8, 12] and not torn.exists()  # 8 written anew
    assert history == read_metrics(out)
    assert_log_continues(history, full_history)
    assert [r["step"] for r in history] == [r["step"] for r in full_history]


def test_kill_and_resume_subprocess(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def command(name, sleep):
        return [sys.executable, WORKER, str(tmp_path / name), "40", "5", str(sleep),
                str(tmp_path / f"{name}.npy")]

    reference = subprocess.Popen(command("reference", 0), env=env)
    killed = command("killed", 0.05)
    proc = subprocess.Popen(killed, env=env)
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 60
    while not (ckpt_dir.exists() and steps_on_disk(tmp_path / "killed")):
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # a few steps past the checkpoint: those get logged, then lost
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < steps_on_disk(tmp_path / "killed")[-1] < 40
    assert not (tmp_path / "killed.npy").exists()
    subprocess.run(killed, env=env, check=True, timeout=120)  # the same command again
    assert reference.wait(timeout=120) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "killed.npy"),
                                  np.load(tmp_path / "reference.npy"))
    assert_log_continues(read_metrics(tmp_path / "killed"), read_metrics(tmp_path / "reference"))
    assert len(read_metrics(tmp_path / "killed")) == len(read_metrics(tmp_path / "reference"))


def kill_at_random_times(tmp_path, trials: int, seed: int) -> list[str]:
    """Kill the worker with SIGKILL `trials` times, each at a random time within its run,
    and run it again to completion: every time the params end bitwise equal to one
    uninterrupted run's, and its log has each step once.

    Each delay, counted from the moment `fit` creates out_dir, is drawn up to the time
    the uninterrupted run spent from its first step to its last (the reference compiles
    the step, the others load it from the session's compilation cache), so kills land
    in the restore, the compile, the steps and the saves: with a save every 2 steps of
    ~70 ms, one is in flight about 40% of the time. The reruns skip the sleep.
    Returns where each kill landed, as seen on disk.
    """
    # The worker's small compiles too go to the session's cache: each start ~0.5 s less.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    num_steps, every, sleep = 20, 2, 0.05

    def command(out, pause):
        return [sys.executable, WORKER, str(out), str(num_steps), str(every), str(pause),
                f"{out}.npy"]

    def start_when_fit_starts(out):
        proc = subprocess.Popen(command(out, sleep), env=env)
        deadline = time.monotonic() + 120
        while not out.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        return proc, time.monotonic()

    reference = tmp_path / "reference"
    proc, _ = start_when_fit_starts(reference)
    assert proc.wait(timeout=120) == 0
    want_params, want_log = np.load(f"{reference}.npy"), read_metrics(reference)
    assert [r["step"] for r in want_log] == list(range(num_steps))
    training_s = want_log[-1]["time"] - want_log[0]["time"]

    rng = np.random.default_rng(seed)
    landed = []
    for trial in range(trials):
        out = tmp_path / f"trial{trial}"
        proc, started = start_when_fit_starts(out)
        time.sleep(max(0.0, started + rng.uniform(0, training_s) - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:
            landed.append("after the end")
        elif not read_metrics(out):
            landed.append("before the first step")
        elif any("tmp" in d for d in os.listdir(out / "checkpoints")):
            landed.append("during a save")
        else:
            landed.append("between saves")
        subprocess.run(command(out, 0), env=env, check=True, timeout=120)
        np.testing.assert_array_equal(np.load(f"{out}.npy"), want_params)
        log = read_metrics(out)
        assert [r["step"] for r in log] == list(range(num_steps))
        assert_log_continues(log, want_log)
        # A kill never leaves a damaged checkpoint (none set aside), nor a tmp dir.
        assert all(d.isdigit() for d in os.listdir(out / "checkpoints"))
    return landed


def test_kill_at_random_times_and_resume(tmp_path):
    print(kill_at_random_times(tmp_path, trials=2, seed=1))  # shown with -s


@pytest.mark.slow  # 2 minutes of random kills; the default run kills at a few random times
def test_kill_at_random_times_and_resume_many(tmp_path):
    landed = kill_at_random_times(tmp_path, trials=20, seed=0)
    print({phase: landed.count(phase) for phase in sorted(set(landed))})  # shown with -s


@pytest.mark.parametrize("seeds", [None, 2])
def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, seeds):
    step_fn, state = problem(seeds, batched_data=seeds is not None)

    def poisoned(step):
        xs, ys = batch_fn(step)
        if seeds is not None:  # a batch per seed; only seed 1 sees the NaN
            xs, ys = np.stack([xs, xs]), np.stack([ys, ys])
            if step == 7:
                xs[1, 0, 0, 0] = np.nan
        elif step == 7:
            xs[0, 0, 0] = np.nan
        return xs, ys

    match = "loss is nan at step 7" + (r" \(seeds \[1\]\)" if seeds else "") + \
            "; the last good checkpoint is step 6"
    with pytest.raises(FloatingPointError, match=match):
        fit(step_fn, state, poisoned, 20, tmp_path, checkpoint_every=3, log_every=1,
            progress=False)
    assert steps_on_disk(tmp_path) == [3, 6]
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(7))
    # The checkpoint left restores (a run already past num_steps returns it as is).
    good, _ = fit(step_fn, state, poisoned, 6, tmp_path, progress=False)
    assert np.all(np.asarray(good.step) == 6)
    assert np.isfinite(flat_params(good)).all()


def test_vmapped_seeds_checkpoint_and_resume(tmp_path):
    full, full_history = run(tmp_path / "full", 12, seeds=2)
    run(tmp_path / "split", 6, seeds=2)
    resumed, history = run(tmp_path / "split", 12, seeds=2)
    assert resumed.step.shape == (2,) and resumed.key.shape == (2,)
    assert_same_state(resumed, full)
    assert_log_continues(history, full_history)
    assert len(history[0]["loss"]) == 2 and history[0]["loss"][0] != history[0]["loss"][1]
    assert os.path.getsize(plot_metrics(tmp_path / "split")) > 0
    with pytest.raises(ValueError, match="does not match the given state"):
        run(tmp_path / "split", 20)  # an unbatched state cannot take the seeds' checkpoint


def test_keeps_only_the_last_checkpoints_and_shows_progress(tmp_path, capsys):
    _, _history = run(tmp_path, 11, checkpoint_every=2, keep=2, progress=True, desc="tiny")
    assert steps_on_disk(tmp_path) == [10, 11]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "11"]  # no tmp dirs
    err = capsys.readouterr().err
    assert "tiny" in err and "loss=" in err and "step/s" in err


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(tmp_path, 4, checkpoint_every=0)
