"""Prometheus alerting rules: valid structure, and only metrics and labels the code registers."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy import project
from tests.deploy.promql import check_expression

PROMETHEUS = project.DEPLOY / "prometheus"


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_prometheus_loads_the_rules_compose_mounts() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    compose = yaml.safe_load((project.ROOT / "docker-compose.yml").read_text())
    mounts = dict(
        volume.split(":")[1::-1]
        for volume in compose["services"]["prometheus"]["volumes"]
        if volume.startswith("./")
    )
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"{rule_file} is not mounted into the Prometheus container"
        assert (project.ROOT / mounts[rule_file]).is_file()


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_are_well_formed(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    grouped = check_expression(rule["alert"], rule["expr"])
    for text in rule["annotations"].values():
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in grouped | {"instance", "job"}, f"{rule['alert']}: {label} is not in the result"
