"""Prometheus metrics every process registers; dashboards in deploy/grafana use these names."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("aietl_events_consumed_total", "Events received by a worker", ["topic", "group"])
EVENTS_PUBLISHED = Counter("aietl_events_published_total", "Events published", ["topic"])
EVENTS_FAILED = Counter(
    "aietl_events_failed_total", "Events whose handling failed for good", ["topic", "group"]
)
EVENTS_DEAD_LETTERED = Counter(
    "aietl_events_dead_lettered_total", "Events sent to a dead-letter topic", ["topic", "group"]
)
HANDLER_SECONDS = Histogram(
    "aietl_handler_seconds",
    "Time to handle one event, retries included",
    ["topic", "group"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "aietl_consumer_lag",
    "Messages between a consumer's position and its partition's end, as the last fetch reported it",
    ["topic", "partition", "group"],
)
CONSUMER_STALLED = Gauge(
    "aietl_consumer_stalled",
    "1 while a partition has lag and its consumer's position has not moved for AIETL_KAFKA_STALL_SECONDS",
    ["topic", "partition", "group"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "aietl_http_request_seconds",
    "Gateway request latency by route",
    ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- per service (recorded by the service named in the help text) ---
FEATURE_ONLINE_SECONDS = Histogram(
    "aietl_feature_online_read_seconds",
    "Feature store: online feature vector read latency",
    ["store"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
FEATURE_VALUES_WRITTEN = Counter(
    "aietl_feature_values_written_total", "Feature store: values written", ["storage"]
)
FEATURE_ONLINE_VALUES = Counter(
    "aietl_feature_online_values_total",
    "Feature store: values asked of the online store, by what it had: present (a hit), expired or missing",
    ["status"],
)
FEATURE_NEWEST_VALUE = Gauge(
    "aietl_feature_newest_value_timestamp_seconds",
    "Feature store: event time of the newest value written per feature view (freshness is time() - this)",
    ["project", "feature_view"],
)
DRIFT_EVENTS = Counter(
    "aietl_drift_events_total", "Schema drift: drifts detected", ["drift_type", "severity", "strategy"]
)
DRIFT_DETECTIONS = Counter(
    "aietl_drift_detections_total",
    "Schema drift: detections by the status they were given and who decided (policy at detection, "
    "person later); auto-adaptation rate = status adapted by policy / all by policy",
    ["status", "decided_by"],
)
DRIFT_RESOLUTION_SECONDS = Histogram(
    "aietl_drift_resolution_seconds",
    "Schema drift: time from a detection to its decision (0 when the policy adapts it at once)",
    ["strategy"],
    buckets=(1, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400),
)
PREDICTIONS = Counter("aietl_predictions_total", "Predictive maintenance: predictions served", ["kind"])
MAINTENANCE_ALERTS = Counter(
    "aietl_maintenance_alerts_total", "Predictive maintenance: alerts published", ["alert_type", "severity"]
)
FAILURE_MODEL_VALIDATION = Gauge(
    "aietl_failure_model_validation",
    "Predictive maintenance: validation figure (later time) of the failure model in use, per horizon",
    ["horizon_hours", "metric"],
)
FAILURE_MODEL_TRAINING_SECONDS = Histogram(
    "aietl_failure_model_training_seconds",
    "Predictive maintenance: time to train one failure model version (in the worker's training process)",
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
)
PREDICTION_OUTCOMES = Counter(
    "aietl_prediction_outcomes_total",
    "Predictive maintenance: alerting predictions scored once their horizon passed, by outcome",
    ["outcome"],
)
PREDICTION_FALSE_POSITIVE_RATE = Gauge(
    "aietl_prediction_false_positive_rate",
    "Predictive maintenance: share of predictions above the alert threshold with no failure in their horizon,"
    " among those without failure (scored in the last AIETL_PREDICT_OUTCOME_WINDOW_DAYS)",
)
PREDICTION_FALSE_NEGATIVE_RATE = Gauge(
    "aietl_prediction_false_negative_rate",
    "Predictive maintenance: share of failures that came with a prediction below the alert threshold"
    " (scored in the last AIETL_PREDICT_OUTCOME_WINDOW_DAYS)",
)
ALERT_OUTCOMES = Counter(
    "aietl_alert_outcomes_total",
    "Predictive maintenance: alerts whose horizon passed, by outcome (prevented: no failure in the window)",
    ["outcome"],
)
PREVENTION_SUCCESS_RATE = Gauge(
    "aietl_prevention_success_rate",
    "Predictive maintenance: share of alerts whose pipeline got through the predicted window without failing"
    " (resolved in the last AIETL_PREDICT_OUTCOME_WINDOW_DAYS)",
)
COST_SAVINGS_REALISED = Counter(
    "aietl_cost_savings_realised_usd_total",
    "Predictive maintenance: cost of the failure incidents that prevented alerts headed off (USD)",
)
VECTOR_QUERY_SECONDS = Histogram(
    "aietl_vector_query_seconds",
    "Vector sink: search latency",
    ["store"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
VECTOR_CHUNKS_WRITTEN = Counter(
    "aietl_vector_chunks_written_total", "Vector sink: chunks upserted", ["store"]
)
PIPELINE_RUNS = Counter(
    "aietl_pipeline_runs_total",
    "Templates: pipeline instance runs (template: a built-in's id, or custom)",
    ["status", "trigger", "template"],
)
TEMPLATE_USAGE = Counter(
    "aietl_template_usage_total",
    "Templates: pipeline instance versions rendered from a template (template: a built-in's id, or custom)",
    ["template", "pattern", "reason"],
)
PIPELINE_GENERATION_SECONDS = Histogram(
    "aietl_pipeline_generation_seconds",
    "Templates: time to validate a config and render one pipeline",
    ["reason"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SCHEDULED_SLOTS = Counter(
    "aietl_pipeline_schedule_slots_total",
    "Templates: scheduler decisions on due pipelines (ran, missed by the catch-up policy, busy, "
    "refused by the scope check or for a missing connection)",
    ["outcome"],
)

OUTBOX_PUBLISHED = Counter("aietl_outbox_published_total", "Outbox: events the relay published")
OUTBOX_PUBLISH_FAILURES = Counter(
    "aietl_outbox_publish_failures_total", "Outbox: relay rounds that could not publish (retried)"
)
OUTBOX_PENDING = Gauge(
    "aietl_outbox_pending", "Outbox: committed events not yet published, as the relay last saw"
)
