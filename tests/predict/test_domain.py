"""Unit tests of the predict core on seeded simulated histories (no services)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from aietl.services.predict import evaluate
from aietl.services.predict.domain import InsufficientHistory, require_history
from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.domain import window as window_domain
from aietl.services.predict.domain.alerts import transition
from aietl.services.predict.domain.features import failure_labels, pipeline_features
from aietl.services.predict.domain.forecast import forecast
from aietl.services.predict.simulator import simulate
from aietl.services.predict.writer import BatchWriter


@pytest.fixture(scope="module")
def sim() -> evaluate.Simulation:
    return simulate(pipelines=12, days=28, seed=11)


def test_features_never_look_ahead(sim: evaluate.Simulation) -> None:
    runs = sim.runs[sim.runs["pipeline_id"] == "pipeline-001"].sort_values("started_at")
    full = pipeline_features(runs)
    for position in (30, 200, 500):
        prefix = pipeline_features(runs.iloc[: position + 1])
        pd.testing.assert_series_equal(full.iloc[position], prefix.iloc[-1], check_names=False)


def test_labels_mark_failures_within_the_horizon_and_leave_the_unobserved_tail_open() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = pd.DataFrame(
        {
            "started_at": [start + timedelta(hours=h) for h in range(10)],
            "status": ["success"] * 5 + ["failed"] + ["success"] * 4,
        }
    )
    labels = failure_labels(runs, horizon_hours=2).to_numpy()
    assert list(labels[:6]) == [0, 0, 0, 1, 1, 0]
    assert np.isnan(labels[-1]) and np.isnan(labels[-2])


def test_alert_episode_opens_once_and_closes_with_hysteresis() -> None:
    states, is_open = [], False
    for probability in (0.5, 0.75, 0.9, 0.68, 0.72, 0.5, 0.8):
        step = transition(episode_open=is_open, probability=probability, threshold=0.7, clear_margin=0.15)
        states.append(step)
        is_open = (is_open or step == "open") and step != "close"
    assert states == ["stay", "open", "stay", "stay", "stay", "close", "open"]


def test_labels_wait_for_the_whole_window_even_after_a_failure() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = pd.DataFrame(
        {
            "started_at": [start + timedelta(hours=h) for h in range(6)],
            "status": ["success"] * 4 + ["failed", "success"],
        }
    )
    labels = failure_labels(runs, horizon_hours=3).to_numpy()
    # Row 3 has seen the failure at hour 4 but its window (3, 6] is not over: a positive-only tail
    # would teach the model that recent runs are risky.
    assert list(labels[:3]) == [0, 1, 1] and np.isnan(labels[3:]).all()


def test_failure_model_ranks_on_held_out_time(sim: evaluate.Simulation) -> None:
    result = evaluate.evaluate_failure(sim, 24, trees=60)
    assert result["model_by_cause"]["degradation"]["roc_auc"] >= 0.85, result
    assert result["model"]["roc_auc"] >= 0.75, result  # sudden breaks are unpredictable by design
    assert result["model"]["roc_auc"] > result["last_run_failed"]["roc_auc"], result
    assert result["model"]["recall_at_5pct_fpr"] > result["last_run_failed"]["recall_at_5pct_fpr"], result


def test_learner_comparison_keeps_its_timings_when_the_held_out_time_has_no_failure(
    sim: evaluate.Simulation,
) -> None:
    """Ranking metrics need both classes; without them a learner still reports how long it trained
    (this used to raise TypeError: `None | dict`)."""
    runs = sim.runs.copy()
    runs.loc[runs["started_at"] >= runs["started_at"].quantile(0.6), "status"] = "success"
    results = evaluate.compare_learners(dataclasses.replace(sim, runs=runs), 24, trees=10)
    assert set(results) == {"random_forest", "hist_gradient_boosting", "survival_gradient_boosting"}
    for figures in results.values():
        assert set(figures) == {"training_seconds"} and figures["training_seconds"] >= 0


def test_failure_model_refuses_without_failures_to_learn_from() -> None:
    healthy = simulate(pipelines=3, days=8, seed=3, healthy_share=1.0).runs
    healthy = healthy.assign(status="success")
    with pytest.raises(InsufficientHistory, match="needs at least"):
        failure_domain.train(healthy, [24], now=datetime.now(UTC))


def test_short_history_says_how_much_more_is_needed() -> None:
    times = pd.Series(pd.date_range("2026-01-01", periods=49, freq="h", tz="UTC"))
    with pytest.raises(InsufficientHistory, match=r"5\.0 more days") as raised:
        require_history(times, 7, "a forecast")
    assert raised.value.need == 7 and raised.value.have == 2.0


def test_resource_forecasts_beat_seasonal_naive_with_calibrated_intervals(sim: evaluate.Simulation) -> None:
    chosen = sim.runs["pipeline_id"].isin(["pipeline-000", "pipeline-004"]).to_numpy()
    small = evaluate.Simulation(runs=sim.runs[chosen], pipelines=[], causes=sim.causes[chosen])
    result = evaluate.evaluate_simulated_forecasts(small)
    assert result["mase_mean"] < 1.0, result
    assert result["relative_mae_vs_seasonal_naive"] < 1.0, result
    assert 0.65 <= result["coverage_80"] <= 0.95, result


def test_forecast_on_a_real_series_shipped_offline() -> None:
    series = evaluate.real_series()
    air = evaluate.evaluate_monthly_forecasts(series["air_passengers"])
    assert air["mase_mean"] < 1.0 and 0.75 <= air["coverage_80"] <= 0.85, air
    co2 = evaluate.evaluate_monthly_forecasts(series["co2_monthly"])
    assert co2["mase_mean"] < 1.0 and 0.75 <= co2["coverage_80"] <= 0.85, co2


def test_exceedance_probability_follows_the_interval() -> None:
    values = (
        50 + 10 * np.sin(np.arange(24 * 10) * 2 * np.pi / 24) + np.random.default_rng(0).normal(0, 1, 240)
    )
    result = forecast(values, 24, seasons=(24,))
    assert result.exceedance_probability(1_000).max() < 0.01
    assert result.exceedance_probability(1).min() > 0.99
    peak = float(result.mean.max())
    assert 0.3 < result.exceedance_probability(peak).max() < 0.7


def test_cost_anomalies_beat_the_robust_z_score(sim: evaluate.Simulation) -> None:
    result = evaluate.evaluate_anomalies(sim)
    assert result["f1"] >= 0.85, result
    assert result["f1"] > result["robust_z_baseline"]["f1"], result
    assert result["kind_correct_share"] >= 0.8, result


def test_maintenance_window_regret_against_hindsight(sim: evaluate.Simulation) -> None:
    result = evaluate.evaluate_windows(sim, 21)
    assert result["regret_mean"] <= 0.10, result


def test_maintenance_window_respects_blackouts(sim: evaluate.Simulation) -> None:
    runs = sim.runs[sim.runs["pipeline_id"] == "pipeline-002"]
    blackout = window_domain.parse_blackout("Sat 00:00-Mon 08:00")
    chosen = window_domain.best_window(runs, 3, [blackout])
    assert all(not blackout.covers((chosen.start_hour_of_week + k) % 168) for k in range(3))
    assert 0.0 <= chosen.confidence <= 1.0
    with pytest.raises(window_domain.NoAllowedWindow):
        whole_week = [window_domain.parse_blackout(t) for t in ("Mon 00:00-Thu 00:00", "Thu 00:00-Mon 00:00")]
        window_domain.best_window(runs, 2, whole_week)
    with pytest.raises(ValueError, match="must look like"):
        window_domain.parse_blackout("weekends")


async def test_batch_writer_groups_concurrent_writes() -> None:
    written: list[int] = []

    async def write(rows: list[object]) -> None:
        await asyncio.sleep(0.01)
        written.append(len(rows))

    writer = BatchWriter(write, max_rows=100)  # type: ignore[arg-type]
    await asyncio.gather(*(writer.write([[i]]) for i in range(30)))
    assert sum(written) == 30
    assert len(written) < 30  # rows that arrived during a write went together
