"""Real series for forecasting: the shipped data, the baselines, the walk-forward test
(no look-ahead), the metrics, and the forecasting study end to end at a tiny size."""

import json
import math

import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import common, forecasting
from rnnjax.tasks import series as ts

SHORT = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, 8.0])


def test_sunspots_ships_309_yearly_values():
    s = ts.sunspots()
    assert s.values.dtype == np.float64 and s.values.shape == (309,)
    assert s.values[0] == 5.0 and s.values[-1] == 2.9 and s.period == 11
    assert s.time[0] == np.datetime64("1700") and s.time[-1] == np.datetime64("2008")
    assert np.all(np.diff(s.time.astype(int)) == 1)            # one value a year, no gaps


def test_airline_ships_144_monthly_values():
    s = ts.load("airline")
    assert s.values.shape == (144,) and s.values[0] == 112.0 and s.values[-1] == 432.0
    assert s.time[0] == np.datetime64("1949-01") and s.time[-1] == np.datetime64("1960-12")
    assert s.period == 12 and np.all(np.diff(s.time.astype(int)) == 1)
    with pytest.raises(ValueError, match="series name must be one of"):
        ts.load("lynx")


def test_baselines_against_hand_computed_values():
    # persistence: y_hat[t] = y[t-1]; seasonal naive with s = 3: y_hat[t] = y[t-3]
    assert ts.persistence(SHORT, 9).tolist() == [5.0, 3.0, 5.0]
    assert ts.seasonal_naive(SHORT, 9, 3).tolist() == [2.0, 6.0, 5.0]
    assert ts.seasonal_naive(SHORT, 3, 3).tolist() == SHORT[:9].tolist()
    with pytest.raises(ValueError, match=r"start must lie in \[3, 11\]"):
        ts.seasonal_naive(SHORT, 2, 3)
    with pytest.raises(ValueError, match="values must be a 1-D series"):
        ts.persistence(SHORT[None], 2)


def test_metrics_arithmetic():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    forecasts = np.array([[1.0, 2.0, 3.0, 6.0], [2.0, 1.0, 4.0, 3.0]])
    np.testing.assert_allclose(ts.rmse(forecasts, truth), [math.sqrt(4 / 4), 1.0])
    np.testing.assert_allclose(ts.mae(forecasts, truth), [2 / 4, 1.0])
    assert ts.rmse(truth + 3.0, truth) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"forecast must have shape \[\.\.\., 4\]"):
        ts.mae(truth[:3], truth)


def test_split_and_windows():
    assert ts.split_point(309, 0.25) == 232 and ts.split_point(144, 0.25) == 108
    assert ts.split_point(10, 0.01) == 9                        # at least one test value
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\)"):
        ts.split_point(10, 1.0)
    z = np.arange(6.0)
    np.testing.assert_array_equal(ts.windows(z, [2, 5], 2), [[0.0, 1.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"times in \[3, 6\]"):
        ts.windows(z, [2], 3)


def test_transform_uses_the_training_part_only_and_inverts():
    y = np.exp(np.linspace(0.0, 2.0, 12)) + SHORT       # positive, for the log
    split = 8
    t = ts.Transform.fit(y, split, log=True, difference=True)
    steps = np.diff(np.log(y[:split]))
    assert t.mean == pytest.approx(steps.mean()) and t.scale == pytest.approx(steps.std())
    future = y.copy()
    future[split:] *= 10.0                                 # the test period cannot move it
    assert ts.Transform.fit(future, split, log=True, difference=True) == t
    z = t(y)
    assert np.isnan(z[0])
    np.testing.assert_allclose(t.inverse(z[1:], y[:-1]), y[1:], rtol=1e-12)
    plain = ts.Transform.fit(y, split)
    np.testing.assert_allclose(plain(y), (y - y[:split].mean()) / y[:split].std())
    with pytest.raises(ValueError, match="log transform needs positive values"):
        ts.Transform.fit(SHORT - 2.0, split, log=True)


@pytest.mark.parametrize("log,difference", [(False, False), (True, True)])
def test_walk_forward_never_reads_the_future(log, difference):
    """A change of y[k] may move the forecasts after k, never those up to k."""
    y = np.abs(np.sin(np.arange(40.0))) * 10 + 1
    width, times, k = 6, np.arange(28, 40), 33
    weights = np.random.default_rng(0).normal(size=width).astype(np.float32)
    predict = lambda windows: windows @ weights          # reads every value of its window
    t = ts.Transform.fit(y, 28, log=log, difference=difference)
    before = ts.walk_forward(predict, y, t, times, width)
    changed = y.copy()
    changed[k] += 5.0
    after = ts.walk_forward(predict, changed, t, times, width)
    np.testing.assert_array_equal(after[times <= k], before[times <= k])
    assert np.all(after[times == k + 1] != before[times == k + 1])
    # the forecast at t from the window y[t-width .. t-1], by hand
    i = 3
    z = t(y)
    expected = t.inverse(z[times[i] - width:times[i]].astype(np.float32) @ weights, y[times[i] - 1])
    assert before[i] == pytest.approx(expected, rel=1e-6)


def test_study_training_windows_hold_no_test_values():
    import argparse
    args = argparse.Namespace(test_fraction=0.25, window=5, log=["airline"],
                              difference=["airline"])
    series = ts.Series("airline", np.linspace(100.0, 200.0, 40) + np.tile(SHORT[:4], 10),
                       np.arange(40), 4, "units")
    prepared = forecasting.prepare(series, args)
    altered = forecasting.prepare(series._replace(values=np.concatenate(
        [series.values[:30], series.values[30:] * 3.0])), args)
    assert prepared.split == altered.split == 30
    assert prepared.transform == altered.transform
    np.testing.assert_array_equal(prepared.train_inputs, altered.train_inputs)
    np.testing.assert_array_equal(prepared.train_targets, altered.train_targets)
    assert prepared.train_targets.shape == (30 - 6,)       # t = 6 .. 29 (differenced)


def test_forecasting_study_at_a_tiny_size(tmp_path):
    results = forecasting.main([
        "--cells", "gru", "--seeds", "2", "--steps", "4", "--eval-every", "2", "--hidden", "4",
        "--batch", "8", "--window", "13", "--series", "airline", "--out", str(tmp_path)])
    for name in ("results.json", "report.md", "forecasts.png", "training.png",
                 "airline/gru/metrics.jsonl", "airline/mlp/metrics.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"].keys() == results.keys() == {"airline"}
    for r in saved["results"].values():
        values, split = np.asarray(r["values"]), r["split"]
        truth, n_test = values[split:], r["length"] - split
        assert set(r["models"]) == {"persistence", "seasonal naive", "gru", "mlp"}
        persistence = r["models"]["persistence"]
        assert persistence["rmse"] == [pytest.approx(ts.rmse(values[split - 1:-1], truth))]
        assert persistence["rmse_ratio"] == [1.0]
        for m in r["models"].values():
            seeds = 1 if "curves" not in m else 2
            assert np.asarray(m["forecast"]).shape == (seeds, n_test)
            assert np.all(np.isfinite(m["forecast"])) and len(m["train_rmse"]) == seeds
            np.testing.assert_allclose(m["rmse"], ts.rmse(m["forecast"], truth))
            np.testing.assert_allclose(m["mae_ratio"],
                                       np.asarray(m["mae"]) / persistence["mae"][0])
        steps, losses = r["models"]["gru"]["curves"]["test_mse"]
        assert steps == [0, 2] and np.asarray(losses).shape == (2, 2)
    report = (tmp_path / "report.md").read_text()
    assert "| GRU |" in report and "| MLP (window 13) |" in report
    assert "| persistence | " in report and "seasonal naive (s = 12)" in report


def test_bad_settings_fail_before_any_work(tmp_path, capsys):
    assert_usage_error(capsys, forecasting.main, ["--series", "lynx", "--out",
                                                  str(tmp_path / "x")],
                       "argument --series: must be among sunspots,airline")
    with pytest.raises(ValueError, match="--window 300 leaves no training windows"):
        forecasting.main(["--series", "airline", "--window", "300", "--cells", "gru",
                          "--out", str(tmp_path / "y")])
    assert not (tmp_path / "x").exists()


def test_every_default_has_a_flag():
    for key, value in forecasting.DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        args = common.parse_args(forecasting.NAME, "", forecasting.DEFAULTS, forecasting.QUICK,
                                 ["--quick", flag, text], forecasting.add_arguments)
        assert getattr(args, key) == value, key
