"""Grafana dashboards: generated from deploy/grafana/dashboards.py and querying only registered metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy import project
from tests.deploy.promql import check_expression, parse_promql

GRAFANA = project.DEPLOY / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_dashboards", GRAFANA / "dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def targets() -> list[tuple[str, str, str]]:
    return [
        (f"{path.name}: {panel['title']}", target["expr"], target.get("legendFormat", ""))
        for path in DASHBOARD_FILES
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def test_parser_finds_metrics_and_labels() -> None:
    metrics, grouped = parse_promql(
        "histogram_quantile(0.95, sum by (le, route) "
        '(rate(aietl_http_request_seconds_bucket{route=~"a.*"}[5m])))'
        " / sum(rate(aietl_handler_seconds_count[$__rate_interval]))"
    )
    assert metrics == {"aietl_http_request_seconds_bucket": {"route"}, "aietl_handler_seconds_count": set()}
    assert grouped == {"le", "route"}


def test_json_files_are_what_the_generator_writes() -> None:
    rendered = generator().render()
    assert {path.name for path in DASHBOARD_FILES} == set(rendered)
    for path in DASHBOARD_FILES:
        assert path.read_text() == rendered[path.name], (
            f"run python deploy/grafana/dashboards.py ({path.name})"
        )


def test_the_four_dashboards_of_the_seed_exist() -> None:
    titles = " | ".join(json.loads(path.read_text())["title"] for path in DASHBOARD_FILES).lower()
    for topic in (
        "vector db query performance",
        "feature store serving latency",
        "schema drift",
        "maintenance",
    ):
        assert topic in titles


@pytest.mark.parametrize(("where", "expr", "legend"), targets(), ids=[t[0] for t in targets()])
def test_queries_use_registered_metrics_and_labels(where: str, expr: str, legend: str) -> None:
    grouped = check_expression(where, expr)
    assert set(LEGEND_LABEL.findall(legend)) <= grouped, f"{where}: legend names a label the query drops"


def test_dashboards_have_unique_uids_and_panel_ids() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))
    for path in DASHBOARD_FILES:
        ids = [panel["id"] for panel in json.loads(Path(path).read_text())["panels"]]
        assert len(ids) == len(set(ids))


def test_the_drift_dashboard_shows_the_specifications_key_metrics() -> None:
    """The specification's "Key Metrics to Track" for schema drift, each on a panel that queries the
    metric measuring it: drifts per day by type and severity, auto-adaptation success rate, and
    time to resolution (detection to decision)."""
    drift = json.loads((GRAFANA / "dashboards" / "aietl-schema-drift.json").read_text())
    queries = {panel["title"]: " ".join(t["expr"] for t in panel["targets"]) for panel in drift["panels"]}

    def panel(words: str) -> str:
        found = [expr for title, expr in queries.items() if words in title.lower()]
        assert found, f"no panel titled like {words!r} in {sorted(queries)}"
        return found[0]

    per_day = panel("per day")
    assert "aietl_drift_events_total" in per_day and "[1d]" in per_day
    assert parse_promql(per_day)[1] >= {"drift_type", "severity"}
    rate = panel("auto-adaptation success rate")
    assert 'status="adapted"' in rate and "aietl_drift_detections_total" in rate and " / " in rate
    resolution = panel("time to resolution")
    assert "histogram_quantile" in resolution and "aietl_drift_resolution_seconds_bucket" in resolution
