"""Loading a run's checkpoint (`rnnjax.train.restore`), and `fit` asked for fewer steps
than a run in its folder has done."""

import os

import jax
import numpy as np
import pytest
from loop_worker import problem
from test_loop import assert_same_state, run
from test_loop_faults import truncate_largest_data_file

from rnnjax.train import restore

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run of 12 steps, checkpointed at 4, 8 and 12, and its final state."""
    out = tmp_path_factory.mktemp("run")
    state, _ = run(out, 12)
    return out, state


def test_restore_loads_the_latest_or_a_given_step(finished):
    out, final = finished
    _, initial = problem(None)
    assert_same_state(restore(out, initial), final)
    at_8 = restore(out, initial, step=8)
    assert int(at_8.step) == 8
    partial, _ = run(out / "partial", 8)   # an independent run of 8 steps
    assert_same_state(at_8, partial)


def test_restore_refuses_what_it_cannot_load(finished, tmp_path):
    out, _ = finished
    _, initial = problem(None)
    with pytest.raises(ValueError, match=r"no checkpoint of step 5 .*steps \[4, 8, 12\]"):
        restore(out, initial, step=5)
    with pytest.raises(ValueError, match="holds no checkpoints"):
        restore(tmp_path / "nothing", initial)
    _, two_seeds = problem(2)
    with pytest.raises(ValueError, match="does not match the given state"):
        restore(out, two_seeds)
    with pytest.raises(TypeError, match="step must be an int"):
        restore(out, initial, step="8")


def test_restore_sets_a_damaged_checkpoint_aside_like_fit(tmp_path):
    out = tmp_path / "run"
    run(out, 12)
    _, initial = problem(None)
    truncate_largest_data_file(out / "checkpoints" / "12")
    with pytest.warns(UserWarning, match="is damaged"):
        state = restore(out, initial)
    assert int(state.step) == 8
    assert "12.corrupt" in os.listdir(out / "checkpoints")
    truncate_largest_data_file(out / "checkpoints" / "8")
    with pytest.warns(UserWarning, match="is damaged"):
        with pytest.raises(ValueError, match=r"step 8 is damaged and was moved to .*8\.corrupt"):
            restore(out, initial, step=8)


def test_fit_refuses_fewer_steps_than_the_run_has_done(finished):
    out, final = finished
    with pytest.raises(ValueError, match=r"at step 12, past num_steps=8.*restore"):
        run(out, 8)
    again, _ = run(out, 12)                 # the same number of steps: returns the run
    assert_same_state(again, final)
    np.testing.assert_array_equal(jax.random.key_data(again.key),
                                  jax.random.key_data(final.key))
