"""Just enough PromQL reading to check that queries use metrics and labels the code registers."""

from __future__ import annotations

import re

from tests.deploy import project

PROMQL_KEYWORDS = {"and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)(?!\s*[\w(])")
# Series every Prometheus target has, and labels Prometheus attaches to every scraped sample.
PROMETHEUS_SERIES: dict[str, frozenset[str]] = {"up": frozenset()}
TARGET_LABELS = frozenset({"job", "instance", "service", "pod", "namespace"})


def parse_promql(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> label names matched on it, label names grouped by)."""
    metrics: dict[str, set[str]] = {}
    for name, matchers in SELECTOR.findall(expr):
        metrics.setdefault(name, set()).update(MATCHER.findall(matchers))
    grouped = {
        label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()
    }
    rest = GROUPING.sub(" ", SELECTOR.sub(r"\1", expr))
    rest = re.sub(r"\[[^\]]*\]", " ", re.sub(r'"[^"]*"', " ", rest))
    for name in IDENTIFIER.findall(rest):
        if name not in PROMQL_KEYWORDS and not name.startswith("$"):
            metrics.setdefault(name, set())
    return metrics, grouped


def check_expression(where: str, expr: str) -> set[str]:
    """Assert every metric and label in `expr` exists; returns the labels it groups by."""
    registered = project.registered_metrics()
    metrics, grouped = parse_promql(expr)
    assert metrics, f"{where}: no metric in {expr}"
    available: set[str] = set(TARGET_LABELS)
    for name, labels in metrics.items():
        if name in PROMETHEUS_SERIES:
            family_labels = PROMETHEUS_SERIES[name] | TARGET_LABELS
        else:
            assert name in registered, f"{where}: {name} is not registered by shared/metrics.py"
            family_labels = registered[name][1] | TARGET_LABELS
        assert labels <= family_labels, f"{where}: {name} has no label {sorted(labels - family_labels)}"
        available |= family_labels
    missing = grouped - available
    assert not missing, f"{where}: grouping by labels the metrics lack: {sorted(missing)}"
    return grouped
