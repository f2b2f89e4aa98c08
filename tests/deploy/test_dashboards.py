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
