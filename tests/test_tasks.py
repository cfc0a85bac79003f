"""The task generators against their definitions: targets, conditional probabilities,
and the reference levels (baselines, entropies) by an independent computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.tasks import (
    ADDING_BASELINE_MSE,
    adding_batch,
    copy_memory_baseline,
    copy_memory_batch,
    double_dependency_batch,
    echo_batch,
    reference_cross_entropies,
)
from rnnjax.tasks.copy_memory import BLANK, DELIMITER, LONG_COPY, NUM_CLASSES
from rnnjax.tasks.double_dependency import probability_of_one
from rnnjax.train import softmax_cross_entropy


def binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0


# -- echo ---------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [1, 3, 17])
def test_echo_targets_are_the_input_delay_steps_back(delay):
    xs, ys = echo_batch(jax.random.key(delay), 64, 40, delay)
    bits = np.asarray(xs[..., 0])
    assert xs.shape == (64, 40, 1) and ys.dtype == jnp.int32
    assert set(np.unique(bits)) == {0.0, 1.0}
    for t in range(40):
        expected = bits[:, t - delay] if t >= delay else np.zeros(64)
        np.testing.assert_array_equal(ys[:, t], expected)
    assert abs(bits.mean() - 0.5) < 5 * 0.5 / math.sqrt(bits.size)


def test_echo_rejects_a_delay_as_long_as_the_sequence():
    with pytest.raises(ValueError, match="delay must be smaller than steps"):
        echo_batch(jax.random.key(0), 2, 5, 5)
    with pytest.raises(ValueError, match="delay must be a positive integer"):
        echo_batch(jax.random.key(0), 2, 5, 0)


# -- double dependency ------------------------------------------------------------------
def test_double_dependency_conditional_probabilities_match_the_definition():
    xs, ys = double_dependency_batch(jax.random.key(0), 4000, 60)
    x, y = np.asarray(xs[..., 0]).astype(int), np.asarray(ys)
    x3, x8, y = x[:, 5:-3], x[:, :-8], y[:, 8:]      # aligned at the steps t >= 8
    for a in (0, 1):
        for b in (0, 1):
            sel = (x3 == a) & (x8 == b)
            p = probability_of_one(a, b)
            se = math.sqrt(max(p * (1 - p), 1e-4) / sel.sum())
            assert abs(y[sel].mean() - p) < 5 * se + 1e-12, (a, b)
    # before the sequence the inputs count as 0: P = 0.5 for t < 3, 0.5 + 0.5 x_(t-3) at 3..7
    first = np.asarray(ys[:, :3], np.float64)
    assert abs(first.mean() - 0.5) < 5 * 0.5 / math.sqrt(first.size)
    early, x_first = np.asarray(ys[:, 3:8]), x[:, :5]
    assert np.all(early[x_first == 1] == 1)
    assert abs(early[x_first == 0].mean() - 0.5) < 5 * 0.5 / math.sqrt((x_first == 0).sum())


def test_reference_cross_entropies_by_hand_and_truncated_to_two_decimals():
    levels = reference_cross_entropies()
    # the marginal P(y=1) = 0.625; given x_(t-3): 0.375 or 0.875; given both: .5, 1, .25, .75
    assert levels["none"] == pytest.approx(binary_entropy(0.625), abs=1e-15)
    assert levels["first"] == pytest.approx(
        (binary_entropy(0.375) + binary_entropy(0.875)) / 2, abs=1e-15)
    assert levels["both"] == pytest.approx(
        (binary_entropy(0.5) + binary_entropy(1.0) + 2 * binary_entropy(0.25)) / 4, abs=1e-15)
    values = [levels[k] for k in ("none", "first", "both")]
    assert [math.floor(100 * v) / 100 for v in values] == [0.66, 0.51, 0.45]   # truncated
    assert [round(v, 2) for v in values] == [0.66, 0.52, 0.45]


def test_reference_cross_entropies_are_what_the_best_predictors_score_on_data():
    xs, ys = double_dependency_batch(jax.random.key(1), 2000, 108)
    x, y = np.asarray(xs[..., 0]), np.asarray(ys[:, 8:], np.float64)
    x3, x8 = x[:, 5:-3], x[:, :-8]
    predictors = {"none": np.full_like(y, 0.625), "first": 0.375 + 0.5 * x3,
                  "both": probability_of_one(x3, x8)}
    for name, p in predictors.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = -np.where(y == 1, np.log(p), np.log1p(-p))
        loss = np.nan_to_num(loss)   # p = 1 where y = 1 always: no loss
        se = loss.std() / math.sqrt(loss.size)
        assert abs(loss.mean() - reference_cross_entropies()[name]) < 5 * se, name


# -- copy memory ---------------------------------------------------------------------------
def memoryless_logits(steps, copy_length, batch):
    """The memoryless strategy: certain blanks until the recall, then uniform over the 8
    symbols."""
    length = steps + 2 * copy_length
    logits = np.full((batch, length, NUM_CLASSES), -1e9, np.float32)
    logits[:, : steps + copy_length, BLANK] = 0.0
    logits[:, steps + copy_length:, 1:9] = 0.0
    return jnp.asarray(logits)


@pytest.mark.parametrize("form", [{"steps": 5}, {"steps": 100}, LONG_COPY])
def test_copy_memory_baseline_is_the_memoryless_predictors_loss(form):
    _, ys = copy_memory_batch(jax.random.key(0), 16, **form)
    copy_length = form.get("copy_length", 10)
    loss = softmax_cross_entropy(memoryless_logits(form["steps"], copy_length, 16), ys)
    assert float(loss) == pytest.approx(copy_memory_baseline(**form), rel=1e-5)
    if form == {"steps": 100}:
        assert copy_memory_baseline(100) == pytest.approx(10 * math.log(8) / 120)


def test_copy_memory_long_copy_layout():
    xs, ys = copy_memory_batch(jax.random.key(3), 8, **LONG_COPY)
    inputs = np.asarray(xs.argmax(-1))
    assert xs.shape == (8, 100, 10) and ys.shape == (8, 100)
    assert np.all((inputs[:, :40] >= 1) & (inputs[:, :40] <= 8))      # the first 40 random
    assert np.all(inputs[:, 40:59] == BLANK) and np.all(inputs[:, 60:] == BLANK)
    assert np.all(inputs[:, 59] == DELIMITER)                          # step 60 of 100
    shifted = np.concatenate([np.zeros((8, 60), int), inputs[:, :40]], axis=1)
    np.testing.assert_array_equal(ys, shifted)                         # the data shifted by 60
    assert copy_memory_baseline(**LONG_COPY) == pytest.approx(40 * math.log(8) / 100)


# -- adding ---------------------------------------------------------------------------------
def test_adding_targets_and_baseline():
    xs, target = adding_batch(jax.random.key(0), 20000, 30)
    values, marks = np.asarray(xs[..., 0]), np.asarray(xs[..., 1])
    np.testing.assert_array_equal(marks.sum(1), 2)
    assert np.all(marks[:, :15].sum(1) == 1) and np.all(marks[:, 15:].sum(1) == 1)
    np.testing.assert_allclose(target, (values * marks).sum(1), rtol=1e-6)
    err = (np.asarray(target, np.float64) - 1.0) ** 2            # always predicting 1
    assert abs(err.mean() - ADDING_BASELINE_MSE) < 5 * err.std() / math.sqrt(err.size)
