"""Real univariate series for forecasting, and the pieces of a walk-forward test.

Two series ship inside package wheels (nothing is downloaded):

- `sunspots()`: YEARLY mean sunspot numbers 1700-2008 (309 values), from statsmodels.
  (Monthly sunspot series exist elsewhere; statsmodels ships the yearly one.)
- `airline()`: monthly international airline passengers 1949-1960 (144 values, in
  thousands), Box and Jenkins' series G, from aeon.

A one-step-ahead walk-forward test splits a series at `split_point`: the model and the
`Transform` are fitted on the values before it; at each test time t the forecast of
y[t] is made from the true values y[0..t-1] only (`walk_forward`). `persistence` and
`seasonal_naive` are the reference forecasts; `rmse` and `mae` score them all in the
series' own units. The data side works on NumPy float64 arrays; models see float32.

>>> y = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
>>> persistence(y, start=4), seasonal_naive(y, start=4, period=2)
(array([ 8., 16.]), array([4., 8.]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rnnjax import _checks
from rnnjax.tasks._optional import require

#: the seasonal-naive lag of the sunspot series: the Schwabe cycle, ~11 years on
#: average (single cycles run 9 to 14 years)
SUNSPOT_CYCLE_YEARS = 11


class Series(NamedTuple):
    """A univariate series: `values` [T] float64, `time` [T] datetime64 (years for a
    yearly series, months for a monthly one) and the seasonal period in steps, the
    lag of the seasonal-naive forecast."""

    name: str
    values: np.ndarray
    time: np.ndarray
    period: int
    units: str


def sunspots() -> Series:
    """Yearly mean sunspot numbers 1700-2008 (statsmodels; 309 values).

    The period is `SUNSPOT_CYCLE_YEARS` = 11: the solar cycle is not a fixed season,
    so the seasonal-naive forecast 11 years back is a rough reference, not an exact
    seasonal model.
    """
    module = require("statsmodels.datasets.sunspots", "forecasting")
    frame = module.load_pandas().data
    years = frame["YEAR"].to_numpy().astype(int)
    return Series("sunspots", frame["SUNACTIVITY"].to_numpy(np.float64),
                  years.astype(str).astype("datetime64[Y]"), SUNSPOT_CYCLE_YEARS,
                  "sunspot number")


def airline() -> Series:
    """Monthly international airline passengers, Jan 1949 - Dec 1960 (aeon; 144 values,
    in thousands); the period is 12 months."""
    datasets = require("aeon.datasets", "forecasting")
    values = np.asarray(datasets.load_airline(), np.float64)
    start = np.datetime64("1949-01", "M")
    return Series("airline", values, start + np.arange(len(values)), 12,
                  "passengers (thousands)")


LOADERS: dict[str, Callable[[], Series]] = {"sunspots": sunspots, "airline": airline}


def load(name: str) -> Series:
    """The series called `name` (a key of `LOADERS`)."""
    if name not in LOADERS:
        raise ValueError(f"series name must be one of {sorted(LOADERS)}, got {name!r}")
    return LOADERS[name]()


# -- the walk-forward test ---------------------------------------------------------------
def _series(name: str, values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D series [T], got shape {values.shape}")
    return values


def _start(start, length: int, least: int = 1) -> int:
    start = _checks.positive_int("start", start)
    if not least <= start < length:
        raise ValueError(f"start must lie in [{least}, {length - 1}] for a series of "
                         f"length {length}, got {start}")
    return start


def split_point(length: int, test_fraction: float) -> int:
    """The first test time: the last `round(test_fraction * length)` values are the
    test period (at least one), the rest the training part."""
    length = _checks.positive_int("length", length)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    split = length - max(1, round(test_fraction * length))
    if split < 1:
        raise ValueError(f"a series of length {length} leaves no training part at "
                         f"test_fraction {test_fraction}")
    return split


@dataclasses.dataclass(frozen=True)
class Transform:
    """What a model sees of a series: z_t = (g(y_t) - g(y_{t-1}) - mean) / scale when
    `difference`, else (g(y_t) - mean) / scale, with g = log when `log`, else identity.

    `fit` takes mean and scale from the training part only, so nothing of the test
    period leaks into the inputs. `inverse` turns a forecast of z_t back into one of
    y_t, given the true y_{t-1}.
    """

    log: bool
    difference: bool
    mean: float
    scale: float

    @classmethod
    def fit(cls, values, split: int, *, log: bool = False, difference: bool = False):
        """Fit on `values[:split]`."""
        values = _series("values", values)
        split = _start(split, len(values) + 1, least=2 if difference else 1)
        stationary = cls(log, difference, 0.0, 1.0)(values[:split])
        stationary = stationary[int(difference):]
        scale = float(np.std(stationary))
        return cls(log, difference, float(np.mean(stationary)), scale if scale > 0 else 1.0)

    def _g(self, values):
        if not self.log:
            return values
        if np.any(values <= 0):
            raise ValueError(f"a log transform needs positive values, got a minimum of "
                             f"{values.min()}")
        return np.log(values)

    def __call__(self, values) -> np.ndarray:
        """z [T] float64 of `values` [T]; z[0] is NaN when differenced (no y_{-1})."""
        g = self._g(_series("values", values))
        if self.difference:
            g = np.concatenate([[np.nan], np.diff(g)])
        return (g - self.mean) / self.scale

    def inverse(self, z_forecast, previous) -> np.ndarray:
        """Forecasts of y_t from forecasts of z_t and the true y_{t-1} (`previous`)."""
        level = np.asarray(z_forecast, np.float64) * self.scale + self.mean
        if self.difference:
            level = level + self._g(np.asarray(previous, np.float64))
        return np.exp(level) if self.log else level


def windows(z, times, width: int) -> np.ndarray:
    """[len(times), width]: row i holds z[t - width .. t - 1] for t = times[i], the
    values a model reads to forecast z[t]."""
    z = _series("z", z)
    width = _checks.positive_int("width", width)
    times = np.asarray(times, int)
    if times.ndim != 1 or (times.size and (times.min() < width or times.max() > len(z))):
        raise ValueError(f"times must be a 1-D array of times in [{width}, {len(z)}] "
                         f"(width {width}, series length {len(z)}), got "
                         f"{times.min() if times.size else None}..."
                         f"{times.max() if times.size else None}")
    rows = z[times[:, None] - width + np.arange(width)]
    if np.isnan(rows).any():
        raise ValueError(f"the windows of width {width} at times {times.min()}..."
                         f"{times.max()} reach undefined values (a differenced series "
                         f"starts at t = 1)")
    return rows


def first_time(width: int, transform: Transform) -> int:
    """The first time whose window of `width` values is defined under `transform`."""
    return width + int(transform.difference)


def walk_forward(predict: Callable, values, transform: Transform, times, width: int):
    """One-step-ahead forecasts [..., len(times)] of `values[t]` for each t in `times`,
    each from the true values before t only. `predict(windows [n, width] float32)`
    gives forecasts of z, [..., n] (leading axes: e.g. one row per seed); it is called
    once for all times: the model is not refitted in between."""
    values = _series("values", values)
    times = np.asarray(times, int)
    inputs = windows(transform(values), times, width).astype(np.float32)
    z_forecast = np.asarray(predict(inputs), np.float64)
    if z_forecast.shape[-1:] != (len(times),):
        raise ValueError(f"predict must return forecasts [..., {len(times)}] (one per "
                         f"window), got shape {z_forecast.shape}")
    return transform.inverse(z_forecast, values[times - 1])


def persistence(values, start: int) -> np.ndarray:
    """y_hat[t] = y[t-1] for t = start .. T-1."""
    values = _series("values", values)
    start = _start(start, len(values))
    return values[start - 1:-1]


def seasonal_naive(values, start: int, period: int) -> np.ndarray:
    """y_hat[t] = y[t - period] for t = start .. T-1."""
    values = _series("values", values)
    period = _checks.positive_int("period", period)
    start = _start(start, len(values), least=period)
    return values[start - period:len(values) - period]


def _pair(forecast, truth):
    forecast, truth = np.asarray(forecast, np.float64), np.asarray(truth, np.float64)
    if forecast.shape[-1:] != truth.shape:
        raise ValueError(f"forecast must have shape [..., {truth.shape[0]}] to match truth "
                         f"{truth.shape}, got {forecast.shape}")
    return forecast, truth


def rmse(forecast, truth) -> np.ndarray:
    """Root mean squared error over the last axis (forecasts [..., n], truth [n])."""
    forecast, truth = _pair(forecast, truth)
    return np.sqrt(np.mean((forecast - truth) ** 2, axis=-1))


def mae(forecast, truth) -> np.ndarray:
    """Mean absolute error over the last axis (forecasts [..., n], truth [n])."""
    forecast, truth = _pair(forecast, truth)
    return np.mean(np.abs(forecast - truth), axis=-1)
