"""Writes the Grafana dashboards of deploy/grafana/dashboards/ from one description each.

Run `python deploy/grafana/dashboards.py` after changing a panel; tests/deploy checks that the JSON
files are current and that every metric and label they query is one shared/metrics.py registers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
WINDOW = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("aietl",))


def latency_quantiles(
    metric: str, by: str, selector: str = "", window: str = WINDOW
) -> tuple[tuple[str, str], ...]:
    """p50/p95/p99 of a histogram, one series per `by` label value (over `window`: a day for rare
    events, whose rate over minutes is mostly empty)."""
    return tuple(
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}[{window}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in QUANTILES
    )


def rate_by(metric: str, by: str, selector: str = "") -> tuple[str, str]:
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return f"sum by ({by}) (rate({metric}{selector}[{WINDOW}]))", legend


def increase_by(metric: str, by: str, selector: str = "") -> tuple[str, str]:
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return f"sum by ({by}) (increase({metric}{selector}[$__range]))", legend


def totals_in_range(title: str, metric: str, by: str, width: int = 12) -> Panel:
    """A stat panel: how many of `metric` in the dashboard's time range, one value per `by` label."""
    return Panel(title, (increase_by(metric, by),), kind="stat", width=width)


def worker_panels(group: str, topic: str) -> tuple[Panel, ...]:
    """What every worker dashboard shows about its consumer group: throughput, latency, failures."""
    selector = f'{{group="{group}"}}'
    return (
        Panel(
            f"{group}: events consumed / s",
            (rate_by("aietl_events_consumed_total", "topic", selector),),
            unit="ops",
            description=f"Events of {topic} received by the {group} consumer group (all replicas).",
        ),
        Panel(
            f"{group}: handler latency",
            latency_quantiles("aietl_handler_seconds", "topic", selector),
            unit="s",
            description="Time to handle one event, retries included.",
        ),
        Panel(
            f"{group}: failed and dead-lettered / s",
            (
                rate_by("aietl_events_failed_total", "topic", selector),
                rate_by("aietl_events_dead_lettered_total", "topic", selector),
            ),
            unit="ops",
            description="Events that went to <topic>.dlq; replay them once the cause is fixed.",
        ),
    )


DASHBOARDS = (
    Dashboard(
        uid="aietl-vector-db",
        title="AI-ETL / Vector DB query performance",
        description="Vector sink: search latency and throughput per store (Milvus, Weaviate, Pinecone).",
        panels=(
            Panel(
                "Search latency by store",
                latency_quantiles("aietl_vector_query_seconds", "store"),
                unit="s",
            ),
            Panel(
                "Searches / s by store",
                (rate_by("aietl_vector_query_seconds_count", "store"),),
                unit="reqps",
            ),
            Panel(
                "Mean search latency by store",
                (
                    (
                        "sum by (store) (rate(aietl_vector_query_seconds_sum[$__rate_interval]))"
                        " / sum by (store) (rate(aietl_vector_query_seconds_count[$__rate_interval]))",
                        "{{store}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Chunks upserted / s by store",
                (rate_by("aietl_vector_chunks_written_total", "store"),),
                unit="ops",
            ),
            *worker_panels("vector_sink", "documents.ingested"),
        ),
    ),
    Dashboard(
        uid="aietl-feature-store",
        title="AI-ETL / Feature store serving latency",
        description="Online feature vector reads (Redis or SQLite) and feature values written.",
        panels=(
            Panel(
                "Online read latency by store",
                latency_quantiles("aietl_feature_online_read_seconds", "store"),
                unit="s",
            ),
            Panel(
                "Online reads / s by store",
                (rate_by("aietl_feature_online_read_seconds_count", "store"),),
                unit="reqps",
            ),
            Panel(
                "Feature values written / s by storage",
                (rate_by("aietl_feature_values_written_total", "storage"),),
                unit="ops",
            ),
            Panel(
                "Feature freshness: age of the newest value per feature view",
                (
                    (
                        "time() - max by (project, feature_view) "
                        "(aietl_feature_newest_value_timestamp_seconds)",
                        "{{project}} / {{feature_view}}",
                    ),
                ),
                unit="s",
                description="Seconds since the event time of the newest value written to each view.",
            ),
            Panel(
                "Online store hit rate",
                (
                    (
                        f'sum(rate(aietl_feature_online_values_total{{status="present"}}[{WINDOW}]))'
                        f" / sum(rate(aietl_feature_online_values_total[{WINDOW}]))",
                        "hit rate",
                    ),
                ),
                unit="percentunit",
                description="Share of the values asked online that were present (not expired or missing).",
            ),
            Panel(
                "Gateway latency of feature routes (p95)",
                (
                    (
                        "histogram_quantile(0.95, sum by (le, route) (rate(aietl_http_request_seconds_bucket"
                        '{route=~".*/features.*"}[$__rate_interval])))',
                        "{{route}}",
                    ),
                ),
                unit="s",
            ),
            *worker_panels("features", "features.written"),
        ),
    ),
    Dashboard(
        uid="aietl-schema-drift",
        title="AI-ETL / Schema drift events",
        description="Drifts detected by type, severity and the strategy applied; auto-adaptation rate "
        "and time to resolution.",
        panels=(
            totals_in_range("Drifts in range by type", "aietl_drift_events_total", "drift_type", width=8),
            totals_in_range("Drifts in range by severity", "aietl_drift_events_total", "severity", width=8),
            totals_in_range("Drifts in range by strategy", "aietl_drift_events_total", "strategy", width=8),
            Panel(
                "Drifts / s by type and severity",
                (rate_by("aietl_drift_events_total", "drift_type, severity"),),
                unit="ops",
                width=24,
            ),
            Panel(
                "Drifts detected per day by type and severity",
                (
                    (
                        "sum by (drift_type, severity) (increase(aietl_drift_events_total[1d]))",
                        "{{drift_type}} {{severity}}",
                    ),
                ),
                description="Each point: the drifts detected in the day before it.",
                width=12,
            ),
            Panel(
                "Auto-adaptation success rate",
                (
                    (
                        'sum(increase(aietl_drift_detections_total{status="adapted", decided_by="policy"}'
                        "[$__range])) / sum(increase(aietl_drift_detections_total"
                        '{decided_by="policy"}[$__range]))',
                        "adapted by policy",
                    ),
                ),
                unit="percentunit",
                kind="stat",
                description="Detections the policy adapted at once, of all detections (the spec's "
                "auto-resolution of schema changes).",
                width=6,
            ),
            totals_in_range(
                "Decisions in range by status", "aietl_drift_detections_total", "status, decided_by", width=6
            ),
            Panel(
                "Time to resolution (detection to decision)",
                latency_quantiles("aietl_drift_resolution_seconds", "strategy", window="1d"),
                unit="s",
                description="Over the day before each point. 0 s for detections the policy adapts; "
                "a person's adapt or unblock otherwise.",
                width=24,
            ),
            *worker_panels("drift", "schema.observed"),
        ),
    ),
    Dashboard(
        uid="aietl-maintenance",
        title="AI-ETL / Predictive maintenance alerts",
        description="Alerts published on maintenance.alerts and predictions served.",
        panels=(
            totals_in_range("Alerts in range by type", "aietl_maintenance_alerts_total", "alert_type"),
            totals_in_range("Alerts in range by severity", "aietl_maintenance_alerts_total", "severity"),
            Panel(
                "Alerts / s by type and severity",
                (rate_by("aietl_maintenance_alerts_total", "alert_type, severity"),),
                unit="ops",
            ),
            Panel(
                "Predictions / s by kind",
                (rate_by("aietl_predictions_total", "kind"),),
                unit="ops",
            ),
            Panel(
                "Prediction accuracy: false positive and false negative rates",
                (
                    ("max(aietl_prediction_false_positive_rate)", "false positive rate"),
                    ("max(aietl_prediction_false_negative_rate)", "false negative rate"),
                ),
                unit="percentunit",
                description="Alerting predictions scored once their horizon passed and later runs are known "
                "(last AIETL_PREDICT_OUTCOME_WINDOW_DAYS): FP / (FP + TN) and FN / (FN + TP).",
            ),
            Panel(
                "Scored predictions in range by outcome",
                (increase_by("aietl_prediction_outcomes_total", "outcome"),),
                kind="stat",
            ),
            Panel(
                "Prevention success rate",
                (("max(aietl_prevention_success_rate)", "prevented"),),
                unit="percentunit",
                kind="stat",
                description="Alerts whose pipeline got through the predicted window without failing "
                "(includes false alarms: read it beside the false positive rate).",
            ),
            Panel(
                "Cost savings realised in range",
                (("sum(increase(aietl_cost_savings_realised_usd_total[$__range]))", "USD"),),
                unit="currencyUSD",
                kind="stat",
                description="Per prevented alert: the mean cost of one failure incident of that pipeline.",
            ),
            Panel(
                "Failure model validation (later time) by horizon",
                (
                    (
                        "max by (horizon_hours, metric) (aietl_failure_model_validation)",
                        "{{horizon_hours}} h {{metric}}",
                    ),
                ),
                unit="short",
            ),
            Panel(
                "Failure model training time (mean in range)",
                (
                    (
                        "sum(increase(aietl_failure_model_training_seconds_sum[$__range]))"
                        " / sum(increase(aietl_failure_model_training_seconds_count[$__range]))",
                        "seconds per version",
                    ),
                ),
                unit="s",
                kind="stat",
                description="Trained in the predict worker's training process, never in a request.",
            ),
            *worker_panels("predict", "metrics.ingested"),
        ),
    ),
    Dashboard(
        uid="aietl-templates",
        title="AI-ETL / Pipeline templates",
        description="Template usage, pipeline generation time, instance success rate and the scheduler.",
        panels=(
            Panel(
                "Template usage in range by template",
                (increase_by("aietl_template_usage_total", "template"),),
                kind="stat",
                description="Pipeline instance versions rendered per template (custom: project templates).",
            ),
            Panel(
                "Instance success rate in range by template",
                (
                    (
                        'sum by (template) (increase(aietl_pipeline_runs_total{status="success"}[$__range]))'
                        " / sum by (template) (increase(aietl_pipeline_runs_total[$__range]))",
                        "{{template}}",
                    ),
                ),
                unit="percentunit",
                kind="stat",
                description="Successful runs over all runs of the pipelines made from each template.",
            ),
            Panel(
                "Pipeline generation time",
                latency_quantiles("aietl_pipeline_generation_seconds", "reason"),
                unit="s",
                description="Validating a config and rendering one pipeline.",
            ),
            Panel(
                "Template usage / s by template and reason",
                (rate_by("aietl_template_usage_total", "template, reason"),),
                unit="ops",
            ),
            Panel(
                "Pipeline runs / s by trigger and status",
                (rate_by("aietl_pipeline_runs_total", "trigger, status"),),
                unit="ops",
                description="schedule: the worker's scheduler; manual: REST; drift: after an adaptation.",
            ),
            Panel(
                "Scheduler decisions / s by outcome",
                (rate_by("aietl_pipeline_schedule_slots_total", "outcome"),),
                unit="ops",
                description="ran; missed: slots the catch-up policy gave up or folded; busy: a run was on.",
            ),
            *worker_panels("templates", "drift.detected"),
        ),
    ),
    Dashboard(
        uid="aietl-platform",
        title="AI-ETL / Platform overview",
        description="Every topic and consumer group, and the gateway's request latency by route.",
        panels=(
            Panel(
                "Events consumed / s by group",
                (rate_by("aietl_events_consumed_total", "group"),),
                unit="ops",
            ),
            Panel(
                "Events published / s by topic",
                (rate_by("aietl_events_published_total", "topic"),),
                unit="ops",
            ),
            Panel(
                "Handler latency p95 by group",
                (
                    (
                        "histogram_quantile(0.95, sum by (le, group) "
                        "(rate(aietl_handler_seconds_bucket[$__rate_interval])))",
                        "{{group}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Dead-lettered / s by topic and group",
                (rate_by("aietl_events_dead_lettered_total", "topic, group"),),
                unit="ops",
            ),
            Panel(
                "Consumer lag by group and topic",
                (("sum by (group, topic) (aietl_consumer_lag)", "{{group}} {{topic}}"),),
                unit="short",
            ),
            Panel(
                "Gateway latency p95 by route",
                (
                    (
                        "histogram_quantile(0.95, sum by (le, route) "
                        "(rate(aietl_http_request_seconds_bucket[$__rate_interval])))",
                        "{{route}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Gateway responses / s by status",
                (rate_by("aietl_http_request_seconds_count", "status"),),
                unit="reqps",
            ),
            Panel(
                "Pipeline runs / s by status",
                (rate_by("aietl_pipeline_runs_total", "status"),),
                unit="ops",
            ),
        ),
    ),
)


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    height = 5 if panel.kind == "stat" else 8
    body: dict[str, object] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(panel.targets)
        ],
    }
    if panel.kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"}
        for target in body["targets"]:  # type: ignore[attr-defined]
            target["instant"] = True
    return body


def dashboard_json(dashboard: Dashboard) -> dict[str, object]:
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(panel_json(panel, panel_id, x, y))
        row_height = max(row_height, 5 if panel.kind == "stat" else 8)
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{dashboard.uid}.json": json.dumps(dashboard_json(dashboard), indent=2) + "\n"
        for dashboard in DASHBOARDS
    }


def main() -> None:
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (DASHBOARDS_DIR / name).write_text(text)
        print(DASHBOARDS_DIR / name)


if __name__ == "__main__":
    main()
