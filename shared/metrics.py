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
VECTOR_QUERY_SECONDS = Histogram(
    "aietl_vector_query_seconds",
    "Vector sink: search latency",
    ["store"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
VECTOR_CHUNKS_WRITTEN = Counter(
    "aietl_vector_chunks_written_total", "Vector sink: chunks upserted", ["store"]
)
PIPELINE_RUNS = Counter("aietl_pipeline_runs_total", "Templates: pipeline instance runs", ["status"])
