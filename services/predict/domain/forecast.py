"""Seasonal forecasts with prediction intervals: resource usage per hour, cost per day.

The series is decomposed into nested seasonal profiles (hour of day, then day of week; or month
of year) estimated on the detrended interior, and statsforecast's AutoETS forecasts the seasonally
adjusted remainder (level and trend) with its intervals; the profiles are added back. Strictly
positive series are modelled in log space, so seasonality and errors scale with the level. This is
MSTL's idea with a cheap decomposition: a forecast takes milliseconds, not the ~0.5 s of STL on a
168-hour period.

The ETS interval ignores the uncertainty of the seasonal profile and any misspecification, so it
is calibrated (split-conformal) on the series' own past: forecasts are replayed from recent origins
inside the history (profile re-estimated on the data before each origin, the fitted ETS filtered
through it) and the interval is widened (never narrowed) until it would have covered `level`% of
those errors.

scipy and statsforecast are imported where they are used: together they took 1.6 s of `aietl up`'s
start (the gateway's readers import this module), and most processes never forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALIBRATION_HORIZONS = 6  # origins are taken from the last 6 horizons of history: recent behaviour
CALIBRATION_ORIGINS = 24  # at most this many origins (each costs a profile estimate)


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: int
    seasons: tuple[int, ...]
    log_scale: bool
    calibration_origins: int  # backtest origins that calibrated the interval (0: the model's own)

    def exceedance_probability(self, capacity: float) -> np.ndarray:
        """P(value > capacity) at each step, from the normal (or log-normal) implied by the interval."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + self.level / 200))
        transform = np.log if self.log_scale else (lambda v: v)
        if self.log_scale and capacity <= 0:
            return np.ones_like(self.mean)
        centre = transform(self.mean)
        spread = np.maximum((transform(self.upper) - transform(self.lower)) / (2 * z), 1e-12)
        return 1 - norm.cdf((transform(np.asarray(capacity)) - centre) / spread)


def usable_seasons(length: int, seasons: tuple[int, ...]) -> tuple[int, ...]:
    """Seasons with at least two full cycles in the history (a profile needs repetition)."""
    return tuple(m for m in sorted(seasons) if length >= 2 * m)


def seasonal_profile(values: np.ndarray, seasons: tuple[int, ...]) -> np.ndarray:
    """Additive nested seasonal component (same length as `values`), estimated on the detrended interior."""
    n = len(values)
    seasonal = np.zeros(n)
    if not seasons:
        return seasonal
    window = max(seasons)
    interior = slice(window // 2, n - window // 2)
    sums = np.concatenate(([0.0], np.cumsum(values)))
    first = np.arange(n)[interior] - window // 2  # a window of the longest period centred on each point
    remainder = values[interior] - (sums[first + window] - sums[first]) / window
    t = np.arange(n)
    block = 1
    for period in seasons:
        keys = (t % period) // block
        component = _grouped_median(remainder, keys[interior], period // block)
        component -= component.mean()
        seasonal += component[keys]
        remainder = remainder - component[keys[interior]]
        block = period
    return seasonal


def _grouped_median(values: np.ndarray, keys: np.ndarray, slots: int) -> np.ndarray:
    """Median of (non-empty) `values` per key in 0..slots-1, 0 for an empty slot; one sort, no loop."""
    counts = np.bincount(keys, minlength=slots)
    ordered = values[np.lexsort((values, keys))]
    starts = np.cumsum(counts) - counts
    low = ordered[np.minimum(starts + (counts - 1) // 2, len(ordered) - 1)]
    high = ordered[np.minimum(starts + counts // 2, len(ordered) - 1)]
    return np.where(counts > 0, (low + high) / 2, 0.0)


def forecast(values: np.ndarray, horizon: int, *, seasons: tuple[int, ...], level: int = 80) -> Forecast:
    """Forecast `horizon` steps after `values` with a `level`% prediction interval."""
    from scipy.stats import norm
    from statsforecast.models import AutoETS

    values = np.asarray(values, dtype=float)
    log_scale = bool(np.all(values > 0))
    series = np.log(values) if log_scale else values
    used = usable_seasons(len(series), seasons)
    seasonal = seasonal_profile(series, used)
    # No damped trend: it never won on the evaluation series, and its fit costs twice the other two.
    model = AutoETS(model="AZN", damped=False).fit(series - seasonal)
    sigma = standard_errors(model.model_, horizon)
    errors = backtest_errors(series, horizon, used, model.model_)
    z = float(norm.ppf(0.5 + level / 200))
    half = max(z, conformal_multiplier(errors, sigma, level)) * sigma
    future = np.arange(len(series), len(series) + horizon)
    mean = model.predict(h=horizon)["mean"] + _extend(seasonal, used, future)
    lower, upper = mean - half, mean + half
    if log_scale:
        mean, lower, upper = np.exp(mean), np.exp(lower), np.exp(upper)
    return Forecast(
        mean=mean,
        lower=lower,
        upper=upper,
        level=level,
        seasons=used,
        log_scale=log_scale,
        calibration_origins=len(errors),
    )


def standard_errors(ets: dict, horizon: int) -> np.ndarray:
    """Model standard error of each step ahead: sqrt(sigma^2 (1 + sum over j < h of (alpha + beta j)^2)).

    The closed form for additive-error ETS without seasonality (what statsforecast computes for
    its intervals, without building a scipy distribution per call).
    """
    alpha, beta = _smoothing(ets)
    weights = alpha + beta * np.arange(1, horizon)
    return np.sqrt(ets["sigma2"] * np.concatenate(([1.0], 1.0 + np.cumsum(weights**2))))


def _smoothing(ets: dict) -> tuple[float, float]:
    """(alpha, beta) of a fitted ETS; beta is 0 without a trend."""
    beta = float(ets["par"][1]) if ets["components"][1] != "N" else 0.0
    return float(ets["par"][0]), beta


def calibration_origins(length: int, horizon: int, seasons: tuple[int, ...]) -> np.ndarray:
    """Recent origins whose next `horizon` values lie inside the history, newest first.

    Each needs two cycles of its longest season before it (the same profile as the final fit);
    at most `CALIBRATION_ORIGINS`, evenly spaced over the last `CALIBRATION_HORIZONS` horizons.
    """
    last = length - horizon
    first = max(last - CALIBRATION_HORIZONS * horizon + 1, 2 * max(seasons, default=1))
    if last < first:
        return np.arange(0)
    candidates = np.arange(last, first - 1, -1)
    return candidates[:: -(-len(candidates) // CALIBRATION_ORIGINS)]


def backtest_errors(series: np.ndarray, horizon: int, seasons: tuple[int, ...], ets: dict) -> np.ndarray:
    """Errors (origins x steps) of forecasts replayed from `calibration_origins`, each seeing only its past.

    The seasonal profile is re-estimated at every origin; the ETS keeps the parameters fitted on
    the whole history (refitting it per origin would cost a fit each) but its level and trend are
    filtered from the data before the origin only.
    """
    origins = calibration_origins(len(series), horizon, seasons)
    if not len(origins):
        return np.empty((0, horizon))
    base, gain = _state_response(ets, int(origins[0]))
    steps = np.arange(1, horizon + 1)
    errors = np.empty((len(origins), horizon))
    for row, origin in enumerate(origins):
        profile = seasonal_profile(series[:origin], seasons)
        level, trend = base[origin] + gain[:origin][::-1].T @ (series[:origin] - profile)
        predicted = level + trend * steps + _extend(profile, seasons, origin + steps - 1)
        errors[row] = series[origin : origin + horizon] - predicted
    return errors


def _state_response(ets: dict, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, gain) with state after k observations = base[k] + sum over t < k of gain[k-1-t] * y[t].

    Additive-error ETS without seasonality and with fixed parameters is a linear filter of its
    input, x_t = F x_{t-1} + g y_t: base[k] = F^k x_0 and gain[k] = F^k g. Both sequences follow the
    characteristic polynomial of F (Cayley-Hamilton), so scipy's lfilter computes them. Without
    a trend, beta and the initial trend are 0, so the trend stays 0.
    """
    alpha, beta = _smoothing(ets)
    transition = np.array([[1 - alpha, 1 - alpha], [-beta, 1 - beta]])
    initial = np.array([ets["states"][0, 0], ets["states"][0, 1] if beta else 0.0])
    return _powers(transition, initial, length + 1), _powers(transition, np.array([alpha, beta]), length)


def _powers(matrix: np.ndarray, vector: np.ndarray, count: int) -> np.ndarray:
    """matrix^k @ vector for k = 0..count-1 (rows), for a 2x2 matrix."""
    from scipy.signal import lfilter

    (a, b), (c, d) = matrix
    impulse = np.zeros(count)
    impulse[:1] = 1.0
    denominator = [1.0, -(a + d), a * d - b * c]
    first = lfilter([vector[0], b * vector[1] - d * vector[0]], denominator, impulse)
    second = lfilter([vector[1], c * vector[0] - a * vector[1]], denominator, impulse)
    return np.column_stack([first, second])


def conformal_multiplier(errors: np.ndarray, sigma: np.ndarray, level: int) -> float:
    """Split-conformal quantile of |error| / sigma (finite-sample corrected); 0 when it cannot be computed.

    The interval's shape over the horizon comes from the model's own standard errors `sigma`;
    the backtest only scales it. The caller never narrows below the model's interval: a few
    calm recent windows are weak evidence that errors will be smaller than the fitted noise.
    """
    if not errors.size or not np.all(sigma > 0):  # nothing to learn from, or a noiseless fit
        return 0.0
    scores = (np.abs(errors) / sigma).ravel()
    rank = min(1.0, np.ceil(level / 100 * (len(scores) + 1)) / len(scores))
    return float(np.quantile(scores, rank))


def _extend(seasonal: np.ndarray, seasons: tuple[int, ...], steps: np.ndarray) -> np.ndarray:
    """The seasonal component at future steps: it repeats with the longest period."""
    if not seasons:
        return np.zeros(len(steps))
    period = max(seasons)
    last_cycle = seasonal[-period:]
    offset = len(seasonal) - period
    return last_cycle[(steps - offset) % period]


def seasonal_naive(values: np.ndarray, horizon: int, period: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.tile(values[-period:], horizon // period + 1)[:horizon]


def mase(train: np.ndarray, actual: np.ndarray, predicted: np.ndarray, period: int) -> float:
    """Mean absolute scaled error: out-of-sample MAE over the in-sample seasonal-naive MAE."""
    scale = np.mean(np.abs(train[period:] - train[:-period]))
    return float(np.mean(np.abs(actual - predicted)) / scale)
