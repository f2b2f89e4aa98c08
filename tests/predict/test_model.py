"""The failure model's parts: the flat forest, its safe storage, calibration without ties, the
survival curve over horizons, and factors that tell the truth (no services)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.domain import forest as forest_format
from aietl.services.predict.domain.features import FEATURES
from aietl.services.predict.domain.forest import FlatForest
from aietl.services.predict.simulator import Simulation, simulate


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(pipelines=16, days=24, seed=4)


@pytest.fixture(scope="module")
def model(sim: Simulation) -> failure_domain.FailureModel:
    return failure_domain.train(sim.runs, [6, 24, 72], now=datetime.now(UTC), trees=40)


def small_forest() -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2_000, 6))
    features[::4, 2] = np.nan  # missing values take the side the tree learnt
    labels = (np.nan_to_num(features[:, 0]) + 0.5 * features[:, 1] + rng.normal(size=2_000) > 0.4).astype(int)
    forest = RandomForestClassifier(
        30, min_samples_leaf=5, class_weight="balanced_subsample", random_state=0
    ).fit(features, labels)
    probe = rng.normal(size=(300, 6))
    probe[::3, 2] = np.nan
    return forest, probe


def test_flat_forest_answers_exactly_as_scikit_learn_and_its_contributions_add_up() -> None:
    forest, probe = small_forest()
    flat = FlatForest.from_random_forest(forest)
    np.testing.assert_allclose(flat.scores(probe), forest.predict_proba(probe)[:, 1], atol=1e-12)
    scores, contributions = flat.contributions(probe[:20])
    np.testing.assert_allclose(flat.base_score + contributions.sum(axis=1), scores, atol=1e-12)
    assert np.abs(contributions[:, 0]).mean() > np.abs(contributions[:, 5]).mean()  # x0 drives the label


def test_stored_models_are_arrays_only_and_forged_bytes_are_refused(
    model: failure_domain.FailureModel,
) -> None:
    blob = model.to_bytes()
    loaded = failure_domain.FailureModel.from_bytes(blob)
    row = np.zeros(len(FEATURES))
    assert loaded.probability(row, 24) == pytest.approx(model.probability(row, 24))
    assert loaded.data_hash == model.data_hash and loaded.metrics == model.metrics

    pickled = io.BytesIO()
    np.savez(pickled, meta=np.array([{"a": 1}], dtype=object))  # an object array is a pickle inside
    with pytest.raises(ValueError, match="allow_pickle"):
        forest_format.load(pickled.getvalue())

    arrays = forest_format.load(blob)
    arrays["h0.left"] = np.zeros_like(arrays["h0.left"])  # children pointing back: not a tree
    with pytest.raises(ValueError, match="not a valid set of trees"):
        failure_domain.FailureModel.from_bytes(forest_format.dump(arrays))


def test_calibration_keeps_distinct_scores_distinct_and_ordered() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 400)
    labels = (rng.uniform(0, 1, 400) < scores**3).astype(float)  # few positives, skewed
    calibration = failure_domain.Calibration.fit(scores, labels)
    assert calibration.slope > 0
    sixty = np.sort(rng.uniform(0.01, 0.99, 60))
    calibrated = calibration(sixty)
    assert len(np.unique(calibrated)) == 60  # isotonic regression made 21 values of these
    assert np.all(np.diff(calibrated) > 0)


def test_served_probabilities_of_pipelines_stay_distinct(
    sim: Simulation, model: failure_domain.FailureModel
) -> None:
    rows = [
        failure_domain.pipeline_state(runs.tail(24 * 14)).latest
        for _, runs in sim.runs.groupby("pipeline_id")
    ]
    raw = [model.horizons[24.0].forest.scores(row[None, :])[0] for row in rows]
    served = [model.probability(row, 24) for row in rows]
    assert len(set(np.round(served, 6))) == len(set(np.round(raw, 9)))
    assert np.all(np.argsort(raw, kind="stable") == np.argsort(served, kind="stable"))


def test_risk_never_falls_as_the_horizon_grows(sim: Simulation, model: failure_domain.FailureModel) -> None:
    for _, runs in sim.runs.groupby("pipeline_id"):
        row = failure_domain.pipeline_state(runs.tail(24 * 14)).latest
        curve = [model.probability(row, hours) for hours in (1, 3, 6, 12, 24, 36, 48, 72)]
        assert np.all(np.diff(curve) >= -1e-12), curve
        assert 0 < model.curve(row).median_hours() <= 24 * 14


def test_version_metrics_are_time_ordered_and_beside_the_baseline(model: failure_domain.FailureModel) -> None:
    for horizon in model.horizons.values():
        metrics: dict[str, Any] = horizon.metrics
        assert set(failure_domain.RANKING_FIGURES) == {
            "roc_auc",
            "pr_auc",
            *(f"recall_at_{n}pct_fpr" for n in (1, 5, 10)),
        }
        assert set(failure_domain.RANKING_FIGURES) <= set(metrics)
        assert pd.Timestamp(metrics["validation_from"]) > pd.Timestamp(model.window_start)
        assert metrics["roc_auc"] > metrics["baseline_last_run_failed"]["roc_auc"]


def storm_moment(sim: Simulation) -> pd.DataFrame:
    """Runs of an error-storm pipeline up to the last success before a storm's first failure."""
    causes = pd.Series(sim.causes, index=sim.runs.index)
    first_failure = sim.runs[causes == "storm"].sort_values("started_at").iloc[0]
    runs = sim.runs[sim.runs["pipeline_id"] == first_failure["pipeline_id"]].sort_values("started_at")
    return runs[runs["started_at"] < first_failure["started_at"]]


def test_factors_name_an_error_rate_far_past_its_threshold(
    sim: Simulation, model: failure_domain.FailureModel
) -> None:
    runs = storm_moment(sim)
    state = failure_domain.pipeline_state(runs.tail(24 * 14))
    error_rate = state.latest[FEATURES.index("error_rate_24h")]
    assert error_rate > 5 * model.horizons[24.0].rules["error_rate_24h"].threshold  # the defect's case
    factors = model.factors(state.latest, state.usual, 24)
    assert factors, "a storm with errors far past normal lists no factor"
    error_factors = [f for f in factors if f.factor.startswith("error_rate")]
    assert error_factors and error_factors[0].contribution >= 0.05
    assert error_factors[0].severity != "low"
    assert [f.contribution for f in factors] == sorted((f.contribution for f in factors), reverse=True)
    for factor in factors:
        assert factor.contribution >= failure_domain.MIN_FACTOR_CONTRIBUTION
        assert factor.severity == failure_domain.factor_severity(factor.contribution)
        assert factor.usual_value is not None or factor.current_value is None


def test_low_risk_pipelines_list_no_drivers_that_lower_risk(
    sim: Simulation, model: failure_domain.FailureModel
) -> None:
    calm = []
    for _, runs in sim.runs.groupby("pipeline_id"):
        state = failure_domain.pipeline_state(runs.tail(24 * 14))
        probability = model.probability(state.latest, 24)
        calm.append((probability, state))
    probability, state = min(calm, key=lambda item: item[0])
    factors = model.factors(state.latest, state.usual, 24)
    assert len(factors) <= 2, factors  # not ten "main drivers" for the calmest pipeline
    assert all(f.factor != "hours_since_last_failure" for f in factors)  # "no failure in 14 days"
    assert all(f.contribution >= failure_domain.MIN_FACTOR_CONTRIBUTION for f in factors)
