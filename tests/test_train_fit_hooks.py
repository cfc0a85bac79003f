"""fit's evaluation hook and loggers: the steps evaluated, the records they land in,
the same records as a step wrapped to evaluate (the studies' former way), and loggers
receiving every record written."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loop_worker import batch_fn, problem

from rnnjax.train import Logger, fit, read_metrics


def weight_sum(params):
    """A stand-in for a held-out score: it changes with every update."""
    return {"weight_sum": sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(params))}


def per_seed_sum(params):
    leaves = jax.tree_util.tree_leaves(params)
    return {"weight_sum": sum(jnp.sum(x.reshape(x.shape[0], -1), axis=1) for x in leaves)}


class ListLogger:
    def __init__(self):
        self.records, self.closed = [], 0

    def log(self, record):
        self.records.append(record)

    def close(self):
        self.closed += 1


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def evaluating_step(step, evaluate, every):
    """The former way: a step whose metrics also hold `evaluate(params)` when the
    state's step (read to the host a second time) is a multiple of `every`."""
    def evaluated_step(state, batch):
        new_state, metrics = step(state, batch)
        if int(np.max(jax.device_get(state.step))) % every == 0:
            metrics = {**metrics, **evaluate(state.params)}
        return new_state, metrics
    return evaluated_step


def test_evaluation_lands_in_the_records_of_its_steps(tmp_path):
    step_fn, state = problem()
    calls = []

    def evaluate(params):
        calls.append(None)
        return weight_sum(params)

    final, history = fit(step_fn, state, batch_fn, 10, tmp_path, checkpoint_every=5,
                         log_every=3, evaluate=evaluate, eval_every=4, progress=False)
    # Records every 3 steps, at every evaluation (every 4) and at the last step.
    assert [r["step"] for r in history] == [0, 3, 4, 6, 8, 9]
    assert [r["step"] for r in history if "weight_sum" in r] == [0, 4, 8]
    assert len(calls) == 3  # evaluated at its steps only
    # By hand: the params before the updates of steps 0, 4 and 8.
    expected, params_at = {}, state
    for step in range(10):
        if step % 4 == 0:
            expected[step] = float(weight_sum(params_at.params)["weight_sum"])
        params_at, _ = step_fn(params_at, batch_fn(step))
    for record in history:
        if "weight_sum" in record:
            assert record["weight_sum"] == pytest.approx(expected[record["step"]], rel=1e-6)
    assert history == read_metrics(tmp_path)
    np.testing.assert_array_equal(final.params["out"], params_at.params["out"])


@pytest.mark.parametrize("seeds", [None, 2])
def test_records_equal_those_of_a_step_that_evaluates(tmp_path, seeds):
    step_fn, state = problem(seeds)
    evaluate = weight_sum if seeds is None else per_seed_sum
    every, steps = 3, 11
    _, hooked = fit(step_fn, state, batch_fn, steps, tmp_path / "hook", checkpoint_every=4,
                    log_every=every, evaluate=evaluate, eval_every=every, progress=False)
    _, wrapped = fit(evaluating_step(step_fn, evaluate, every), state, batch_fn, steps,
                     tmp_path / "wrapped", checkpoint_every=4, log_every=every,
                     progress=False)
    assert without_time(hooked) == without_time(wrapped)
    assert [r["step"] for r in hooked] == [0, 3, 6, 9, 10]
    assert all(("weight_sum" in r) == (r["step"] % every == 0) for r in hooked)
    if seeds:
        assert len(hooked[0]["weight_sum"]) == seeds


def test_resumed_run_evaluates_at_the_same_steps(tmp_path):
    step_fn, state = problem()
    kw = dict(checkpoint_every=3, log_every=5, evaluate=weight_sum, eval_every=2,
              progress=False)
    _, full = fit(step_fn, state, batch_fn, 12, tmp_path / "full", **kw)
    fit(step_fn, state, batch_fn, 7, tmp_path / "split", **kw)
    _, resumed = fit(step_fn, state, batch_fn, 12, tmp_path / "split", **kw)
    # The split run's step 6 record (its last) is kept; the full run has it as an
    # evaluation step as well, so both logs agree.
    assert without_time(resumed) == without_time(full)


def test_loggers_receive_every_record_written_and_are_closed(tmp_path):
    step_fn, state = problem()
    logger = ListLogger()
    assert isinstance(logger, Logger)
    fit(step_fn, state, batch_fn, 4, tmp_path, checkpoint_every=4, log_every=2,
        progress=False)
    _, history = fit(step_fn, state, batch_fn, 9, tmp_path, checkpoint_every=4, log_every=2,
                     evaluate=weight_sum, eval_every=4, loggers=[logger], progress=False)
    # Only the records this run wrote (the earlier run's steps 0, 2 and 3 are not resent).
    assert [r["step"] for r in logger.records] == [4, 6, 8]
    assert logger.records == history[3:]
    assert "weight_sum" in logger.records[0] and "loss" in logger.records[0]
    assert logger.closed == 1
    logger.records[0]["loss"] = "changed by the logger"  # a copy: the history keeps its own
    assert history[3]["loss"] != "changed by the logger"


def test_loggers_are_closed_when_fit_raises(tmp_path):
    step_fn, state = problem()

    def poisoned(step):
        xs, ys = batch_fn(step)
        if step == 3:
            xs[0, 0, 0] = np.nan
        return xs, ys

    logger = ListLogger()
    with pytest.raises(FloatingPointError, match="at step 3"):
        fit(step_fn, state, poisoned, 6, tmp_path, log_every=1, loggers=[logger],
            progress=False)
    assert [r["step"] for r in logger.records] == [0, 1, 2]
    assert logger.closed == 1


def test_rejects_bad_hook_arguments(tmp_path):
    step_fn, state = problem()

    def call(**kw):
        return fit(step_fn, state, batch_fn, 2, tmp_path, progress=False, **kw)

    with pytest.raises(ValueError, match="eval_every must be an int >= 1"):
        call(evaluate=weight_sum)
    with pytest.raises(ValueError, match="eval_every must be an int >= 1"):
        call(evaluate=weight_sum, eval_every=0)
    with pytest.raises(ValueError, match="eval_every=3 is given without evaluate"):
        call(eval_every=3)
    with pytest.raises(TypeError, match="evaluate must be callable"):
        call(evaluate={"weight_sum": 1.0}, eval_every=1)
    with pytest.raises(TypeError, match=r"loggers\[0\] must have log\(record\) and close"):
        call(loggers=[print])
    with pytest.raises(TypeError, match="loggers must be an iterable"):
        call(loggers=ListLogger())
    with pytest.raises(ValueError, match=r"names the step's metrics already use: \['loss'\]"):
        call(evaluate=lambda p: {"loss": 0.0}, eval_every=1)
