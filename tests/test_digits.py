"""The sequential-digits loader against scikit-learn's images, its fixed permutation
and split, and the sequential-digits study at a tiny size."""

import json

import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import sequential_digits
from rnnjax.tasks.digits import load_digits_sequences, pixel_permutation, stratified_split

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    return sklearn_datasets.load_digits()


@pytest.mark.parametrize("split", ["train", "test"])
def test_row_and_pixel_readings_equal_the_images(digits, split):
    rows = load_digits_sequences(split, "rows")
    pixels = load_digits_sequences(split, "pixels")
    images = digits.images[rows.index] / 16.0                 # [N, 8, 8]
    assert rows.xs.shape == (len(rows.index), 8, 8) and rows.xs.dtype == np.float32
    assert pixels.xs.shape == (len(rows.index), 64, 1)
    np.testing.assert_array_equal(pixels.index, rows.index)
    n, r, c = 5, 3, 6                                          # one pixel, by hand
    assert rows.xs[n, r, c] == np.float32(images[n, r, c])
    assert pixels.xs[n, 8 * r + c, 0] == np.float32(images[n, r, c])
    np.testing.assert_allclose(rows.xs, images, rtol=1e-7)          # step t = row t
    np.testing.assert_allclose(pixels.xs[..., 0], images.reshape(-1, 64), rtol=1e-7)
    assert rows.xs.min() == 0.0 and rows.xs.max() == 1.0
    np.testing.assert_array_equal(rows.labels, digits.target[rows.index])
    assert set(rows.lengths.tolist()) == {8} and set(pixels.lengths.tolist()) == {64}
    assert rows.classes == tuple("0123456789")


def test_the_permutation_is_fixed_by_its_seed(digits):
    order = pixel_permutation(7)
    assert sorted(order.tolist()) == list(range(64))
    np.testing.assert_array_equal(order, pixel_permutation(7))
    assert not np.array_equal(order, pixel_permutation(8))
    assert not np.array_equal(order, np.arange(64))
    permuted = load_digits_sequences("test", "pixels", permutation_seed=7)
    flat = digits.images[permuted.index].reshape(-1, 64) / 16.0
    np.testing.assert_allclose(permuted.xs[..., 0], flat[:, order], rtol=1e-7)
    # read by rows, the same pixel order cut into 8 steps of 8
    by_rows = load_digits_sequences("test", "rows", permutation_seed=7)
    np.testing.assert_array_equal(by_rows.xs.reshape(-1, 64), permuted.xs[..., 0])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        pixel_permutation(-1)


def test_the_split_is_fixed_disjoint_and_stratified(digits):
    train = load_digits_sequences("train")
    test = load_digits_sequences("test")
    assert len(train.index) == 1347 and len(test.index) == 450
    assert not set(train.index.tolist()) & set(test.index.tolist())
    assert sorted([*train.index.tolist(), *test.index.tolist()]) == list(range(1797))
    counts = np.bincount(digits.target)
    assert np.bincount(test.labels).tolist() == [round(0.25 * n) for n in counts]
    again, _ = stratified_split(digits.target)
    np.testing.assert_array_equal(stratified_split(digits.target)[1], test.index)
    np.testing.assert_array_equal(again, train.index)
    with pytest.raises(ValueError, match="reading must be one of"):
        load_digits_sequences("train", "columns")
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits_sequences("validation")


def test_sequential_digits_study_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "digits"
    sequential_digits.main([
        "--cells", "tanh", "--readings", "rows-permuted", "--seeds", "2", "--steps", "4",
        "--eval-every", "2", "--hidden", "4", "--batch", "16", "--out", str(out)])
    for name in ("results.json", "report.md", "accuracy.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["permutation_seed"] == 0
    r = saved["results"]["rows-permuted/tanh"]
    assert [step for step, _ in r["curve"]] == [0, 2, 4]
    assert r["curve"][-1][1] == r["final"]["test_accuracy"]
    for values in r["final"].values():
        assert len(values) == 2 and np.all(np.isfinite(values))
    accuracy = np.asarray(r["final"]["test_accuracy"])
    assert np.allclose(accuracy * 450, np.round(accuracy * 450))     # whole images
    assert r["chance"] == pytest.approx(46 / 450) and not r["nonfinite"]
    assert "| SimpleRNN (tanh) |" in (out / "report.md").read_text()
    assert_usage_error(capsys, sequential_digits.main,
                       ["--readings", "columns", "--out", str(tmp_path / "x")],
                       "argument --readings: must be among")
