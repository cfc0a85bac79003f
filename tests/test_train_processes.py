"""A sweep over 2 processes (jax.distributed on the CPU backend, gloo collectives)
trains bit for bit as one process does, and `fit`'s orbax checkpoints, written by
both processes together, restore into both.

tests/sweep_processes.py is one process; the tests start 2 of them on this machine,
with 2 CPU devices each, and the 4 models of the tiny sweep of tests/sweep_devices.py
spread one per device. The reference runs in this process, on its one device: the
same sweep, one model at a time. That is the program each of the 4 devices runs, so
the results are bitwise equal. (The whole sweep vmapped over 4 models on one device
differs from it in the last float32 bits, as XLA blocks a batch of 4 matrix products
differently from a batch of 1: tests/test_train_sweep.py compares those to 1e-6.)
"""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import sweep_devices as sd
import sweep_processes as sp

from rnnjax.train import make_train_step, read_metrics
from rnnjax.train.sweep import sweep_states, sweep_step

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "sweep_processes.py")
PROCESSES = 2
SPLIT, STEPS = 3, 6   # phase 1 trains to SPLIT steps, phase 2 resumes to STEPS
TIMEOUT_S = 300


def gloo_missing():
    """Why this jax cannot run CPU collectives over gloo, or None when it can."""
    if "jax_cpu_collectives_implementation" not in jax.config.values:
        return f"jax {jax.__version__} has no jax_cpu_collectives_implementation option"
    try:  # jaxlib's extension module: there is no public name for this
        from jax._src.lib import _jax
    except ImportError:
        return f"jax {jax.__version__}: cannot find jaxlib's _jax extension"
    if not hasattr(_jax, "make_gloo_tcp_collectives"):
        return f"jaxlib {jax.__version__} is built without gloo CPU collectives"
    return None


GLOO_MISSING = gloo_missing()
pytestmark = pytest.mark.skipif(GLOO_MISSING is not None,
                                reason=f"no gloo CPU collectives: {GLOO_MISSING}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(out, *num_steps) -> list[dict]:
    """Run the sweep as PROCESSES processes, training to each of `num_steps` in turn
    in `out`; return the processes' reports. When one process fails, the others are
    killed (they would wait for it until a timeout) and the test fails with every
    process's output."""
    port = free_port()
    logs = [open(os.path.join(out, f"process_{i}.log"), "w+") for i in range(PROCESSES)]
    procs = [subprocess.Popen([sys.executable, WORKER, str(i), str(PROCESSES), str(port),
                               str(out), *map(str, num_steps)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
             for i, log in enumerate(logs)]
    deadline, timed_out = time.monotonic() + TIMEOUT_S, False
    try:
        while any(p.poll() is None for p in procs) and not any(p.returncode for p in procs):
            timed_out = time.monotonic() > deadline
            if timed_out:
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    codes = [p.returncode for p in procs]
    why = (f"still running after {TIMEOUT_S} s, killed" if timed_out
           else "a process failed (those still running were killed)")
    assert codes == [0] * PROCESSES, f"{why}; exit codes {codes}\n" + "\n".join(
        f"--- process {i}:\n{text[-6000:]}" for i, text in enumerate(outputs))
    reports = []
    for i in range(PROCESSES):
        with open(os.path.join(out, f"process_{i}.json")) as f:
            reports.append(json.load(f))
    return reports


@pytest.fixture(scope="module")
def reference():
    """This process, one device: `({steps: flat state}, losses [STEPS, M])` of the
    sweep trained one model at a time with the processes' batches."""
    state, grid = sweep_states(sd.init_params, sd.optimizer_fn, sd.SEEDS,
                               {"learning_rate": sd.LEARNING_RATES})
    step = sweep_step(make_train_step(sd.loss_fn, sd.optimizer_fn(learning_rate=1.0)))
    states, losses = {SPLIT: [], STEPS: []}, []
    for m in range(len(grid)):
        one = jax.tree_util.tree_map(lambda x: x[m:m + 1], state)
        model_losses = []
        for s in range(STEPS):
            one, metrics = step(one, sp.batch_fn(s))
            model_losses.append(float(metrics["loss"][0]))
            if s + 1 in states:
                states[s + 1].append(sd.flat(sp.storable(one)))
        losses.append(model_losses)
    states = {n: {name: np.concatenate([model[name] for model in per_model])
                  for name in per_model[0]} for n, per_model in states.items()}
    return states, np.array(losses).T


def assert_state_equal(out, num_steps, reference):
    got = dict(np.load(os.path.join(out, f"state_{num_steps}.npz")))
    want = reference[0][num_steps]
    assert got.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=f"{name} at {num_steps}")


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_two_processes_train_resume_and_log_like_one(tmp_path, reference):
    """Both processes call fit to SPLIT steps, then fit again from a fresh state to
    STEPS: the second call restores the SPLIT checkpoint in both."""
    reports = launch(tmp_path, SPLIT, STEPS)

    assert len(reports[0]["grid"]) == 4
    assert [r["process_index"] for r in reports] == list(range(PROCESSES))
    for r in reports:
        assert (r["process_count"], r["device_count"], r["local_device_count"]) == \
               (PROCESSES, PROCESSES * sp.DEVICES_PER_PROCESS, sp.DEVICES_PER_PROCESS)
        assert [c["ran"] for c in r["calls"]] == [list(range(SPLIT)),
                                                  list(range(SPLIT, STEPS))]
        assert all(c["all_sharded"] for c in r["calls"])   # restored leaves too
    held = [r["calls"][-1]["local_models"] for r in reports]
    assert held == [[0, 1], [2, 3]]

    assert_state_equal(tmp_path, SPLIT, reference)
    assert_state_equal(tmp_path, STEPS, reference)

    # Each process wrote its own shards of the checkpoint (orbax names them by process).
    checkpoint = tmp_path / "run" / "checkpoints" / str(STEPS)
    for i in range(PROCESSES):
        assert glob.glob(str(checkpoint / "**" / f"*process_{i}"), recursive=True), \
            f"no files of process {i} in {os.listdir(checkpoint)}"

    # One log, written by process 0, each step once, with the reference's losses; every
    # process returns the same history.
    log = read_metrics(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(STEPS))
    np.testing.assert_array_equal(np.array([r["loss"] for r in log]), reference[1])
    for r in reports:
        assert without_time(r["calls"][-1]["history"]) == without_time(log)
    # One provenance record per call, by process 0, seeing both processes' devices.
    with open(tmp_path / "run" / "runs.jsonl") as f:
        starts = [json.loads(line) for line in f]
    assert [r["start_step"] for r in starts] == [0, SPLIT]
    assert all(len(r["devices"]) == PROCESSES * sp.DEVICES_PER_PROCESS for r in starts)


@pytest.mark.slow  # the damaged-checkpoint test below resumes in fresh processes too
def test_fresh_processes_resume_from_the_checkpoint(tmp_path, reference):
    """The processes of phase 1 exit after SPLIT steps; 2 new ones restore the
    checkpoint and finish the run with the bits of one that never stopped."""
    first = launch(tmp_path, SPLIT)
    assert [r["calls"][0]["ran"] for r in first] == [list(range(SPLIT))] * PROCESSES
    assert_state_equal(tmp_path, SPLIT, reference)

    second = launch(tmp_path, STEPS)
    assert [r["calls"][0]["ran"] for r in second] == [list(range(SPLIT, STEPS))] * PROCESSES
    assert all(r["calls"][0]["all_sharded"] for r in second)
    assert_state_equal(tmp_path, STEPS, reference)
    log = read_metrics(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(STEPS))
    np.testing.assert_array_equal(np.array([r["loss"] for r in log]), reference[1])


def test_fresh_processes_set_a_damaged_checkpoint_aside_together(tmp_path, reference):
    """The last checkpoint loses its tree metadata between the phases: both new
    processes find it damaged, process 0 sets it aside once, both resume from the one
    before and end with the bits of a run that never stopped."""
    launch(tmp_path, SPLIT)
    checkpoints = tmp_path / "run" / "checkpoints"
    os.remove(checkpoints / str(SPLIT) / "default" / "_METADATA")
    second = launch(tmp_path, STEPS)
    previous = SPLIT - SPLIT % 2   # checkpoint_every=2 in the worker
    assert [r["calls"][0]["ran"] for r in second] == [list(range(previous, STEPS))] * PROCESSES
    assert_state_equal(tmp_path, STEPS, reference)
    assert sorted(os.listdir(checkpoints)) == sorted(
        [str(s) for s in range(2, STEPS + 1, 2)] + [f"{SPLIT}.corrupt"])
    log = read_metrics(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(STEPS))
