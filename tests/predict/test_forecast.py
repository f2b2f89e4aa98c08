"""Interval calibration of the seasonal forecast: backtests stay inside the history, the ETS replay
matches statsforecast's own filter, and calibration repairs an interval the model gets too narrow."""

from __future__ import annotations

import numpy as np
import pytest
from statsforecast.models import AutoETS

from aietl.services.predict.domain import forecast as forecast_module
from aietl.services.predict.domain.forecast import calibration_origins, forecast, standard_errors


def _trending(seed: int, length: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + 0.02 * np.arange(length) + np.cumsum(rng.normal(0, 0.1, length)) + rng.normal(0, 0.3, length)


def _level_only(seed: int, length: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + np.cumsum(rng.normal(0, 0.1, length)) + rng.normal(0, 0.5, length)


def _noisier_lately(seed: int, length: int = 24 * 28) -> np.ndarray:
    """Hourly series whose noise is six times larger in its last 12 days than before."""
    rng = np.random.default_rng(seed)
    hours = np.arange(length)
    spread = np.where(hours < length - 24 * 12, 0.5, 3.0)
    return 50 + 8 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, length) * spread


@pytest.mark.parametrize(
    ("length", "horizon", "seasons"), [(792, 48, (24, 168)), (96, 12, (12,)), (40, 30, (7,))]
)
def test_calibration_origins_forecast_only_inside_the_history(
    length: int, horizon: int, seasons: tuple[int, ...]
) -> None:
    origins = calibration_origins(length, horizon, seasons)
    assert len(origins) <= forecast_module.CALIBRATION_ORIGINS
    assert np.all(origins + horizon <= length)
    assert np.all(origins >= 2 * max(seasons))  # the same seasonal profile as the final fit
    if len(origins):
        assert origins[0] == length - horizon  # the newest possible backtest is always used


@pytest.mark.parametrize(("values", "trend"), [(_trending(0), "A"), (_level_only(3), "N")])
def test_the_replayed_ets_filter_is_statsforecasts(values: np.ndarray, trend: str) -> None:
    ets = AutoETS(model="AZN", damped=False).fit(values).model_
    assert ets["components"][1] == trend
    base, gain = forecast_module._state_response(ets, len(values))
    for seen in (1, 50, len(values) - 1, len(values)):
        state = base[seen] + gain[:seen][::-1].T @ values[:seen]
        expected = ets["states"][seen, :2] if trend == "A" else [ets["states"][seen, 0], 0.0]
        np.testing.assert_allclose(state, expected, rtol=1e-9, atol=1e-12)


def test_model_standard_errors_are_those_of_statsforecasts_interval() -> None:
    model = AutoETS(model="AZN", damped=False).fit(_trending(1))
    interval = model.predict(h=24, level=[80])
    implied = (interval["hi-80"] - interval["lo-80"]) / (2 * 1.2815515655446004)
    np.testing.assert_allclose(standard_errors(model.model_, 24), implied, rtol=1e-9)


def test_calibration_widens_an_interval_the_model_makes_too_narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    def coverage() -> float:
        hits = []
        for seed in range(8):
            values = _noisier_lately(seed)
            result = forecast(values[:-48], 48, seasons=(24, 168))
            hits.append(np.mean((values[-48:] >= result.lower) & (values[-48:] <= result.upper)))
        return float(np.mean(hits))

    calibrated = coverage()
    monkeypatch.setattr(forecast_module, "CALIBRATION_HORIZONS", 0)  # no backtest: the ETS interval alone
    uncalibrated = coverage()
    assert uncalibrated < 0.7 <= calibrated, (uncalibrated, calibrated)


def test_too_short_a_history_keeps_the_model_interval() -> None:
    values = _trending(2, length=40)
    result = forecast(values, 30, seasons=(7,))
    assert result.calibration_origins == 0
    assert np.all(result.lower < result.mean) and np.all(result.mean < result.upper)
