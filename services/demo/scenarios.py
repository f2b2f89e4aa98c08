"""The six numbered steps of `aietl demo`, each a user's REST calls that check the answer they get."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from aietl.services.demo.client import Api, ApiError, Context, DemoFailed, Report, Unexpected, expect, poll

DEMO_PROJECT = "demo"
CONNECTOR = "crm"


# --- 1. log in -------------------------------------------------------------------------------------


def log_in(ctx: Context, username: str, password: str) -> str:
    """A bearer token for the rest; administrators get a project of the demo's own, others their own."""
    token = ctx.api.call("POST", "/api/v1/auth/login", json={"username": username, "password": password})
    ctx.api.http.headers["Authorization"] = f"Bearer {token['access_token']}"
    me = ctx.api.call("GET", "/api/v1/auth/me")
    if me["is_admin"]:
        ctx.api.call(
            "POST", "/api/v1/projects", json={"id": DEMO_PROJECT, "name": "aietl demo"}, ok=(201, 409)
        )
        ctx.api.project = DEMO_PROJECT
    else:
        expect(bool(me["projects"]), f"user {me['username']!r} belongs to no project")
        ctx.api.project = me["projects"][0]
    role = "administrator" if me["is_admin"] else "member"
    ctx.say(f"logged in as {me['username']} ({role}); working in project {ctx.api.project!r}")
    return f"logged in as {me['username']}"


# --- 2. schema drift -------------------------------------------------------------------------------

SCHEMA_V1: list[dict[str, Any]] = [
    {"name": "customer_id", "type": "integer", "nullable": False, "primary_key": True},
    {"name": "customer_name", "type": "varchar(100)", "nullable": False},
    {"name": "lifetime_value", "type": "integer"},
    {"name": "email", "type": "varchar(255)", "nullable": False},
]
# A rename, a widened type, a nullability change and a new column.
SCHEMA_V2: list[dict[str, Any]] = [
    {"name": "customer_id", "type": "integer", "nullable": False, "primary_key": True},
    {"name": "customerName", "type": "varchar(100)", "nullable": False},
    {"name": "lifetime_value", "type": "bigint"},
    {"name": "email", "type": "varchar(255)", "nullable": True},
    {"name": "loyalty_tier", "type": "text"},
]
DRIFT = "/api/v1/advanced/schema-drift"


def schema_drift(ctx: Context) -> str:
    """Publish two observations of a table as an upstream system would; the drift worker compares them."""
    api, table = ctx.api, ctx.table
    where = {"connector_id": CONNECTOR, "table_name": table}

    def observe(columns: list[dict[str, Any]]) -> str:
        event = {"project_id": api.project, **where, "dialect": "postgres", "columns": columns}
        return str(api.call("POST", "/api/v1/events/schema-observed", json=event)["event_id"])

    observe(SCHEMA_V1)
    versions = poll(lambda: api.call("GET", f"{DRIFT}/history", params=where)["versions"], "baseline v1")
    ctx.say(
        f"published schema.observed for {CONNECTOR}.{table} ({len(SCHEMA_V1)} columns): "
        f"baseline v{versions[-1]['version']} recorded"
    )
    observe(SCHEMA_V2)
    detections = poll(lambda: api.call("GET", f"{DRIFT}/detections", params=where), "the drift detection")
    detection = detections[0]
    policy = api.call("GET", f"{DRIFT}/policies/effective", params=where)["strategies"]
    ctx.say(f"published the changed schema: {len(detection['drifts'])} drifts detected")
    for drift in detection["drifts"]:
        mapping = drift["suggested_mapping"] or {}
        ctx.say(
            f"  - {drift['drift_type']}: {drift['description']} | severity {drift['severity']}, "
            f"confidence {drift['confidence_score']:.2f}, action {policy[drift['severity']]}"
        )
        ctx.say(f"      SQL: {mapping.get('transformation_logic')}")
    renames = [d for d in detection["drifts"] if d["drift_type"] == "renamed_column"]
    expect(
        any(d["previous_name"] == "customer_name" and d["column_name"] == "customerName" for d in renames),
        "the rename customer_name -> customerName was not detected",
    )
    ctx.say(
        f"decision: {detection['strategy']} -> status {detection['status']} "
        f"(the strictest action wins; baseline stays v{detection['baseline_version']})"
    )
    adapted = api.call("POST", f"{DRIFT}/detections/{detection['id']}/adapt", json={"strategy": "auto_adapt"})
    ctx.say(f"accepted it (POST .../adapt): status {adapted['status']}, baseline v{adapted['new_version']}")
    ctx.say(f"history page: {api.url(f'{DRIFT}/history/page', **where)} (with the bearer token)")
    return f"{len(detection['drifts'])} drifts on {CONNECTOR}.{table} (customer_name -> customerName)"


# --- 3. feature store ------------------------------------------------------------------------------

FEATURES = "/api/v1/advanced/features"
THIRTY_DAYS = 30 * 86_400


def _number(value: Any) -> str:
    """Floats to two decimals for reading; anything else as the API sent it."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def feature_store(ctx: Context) -> str:
    """Register, write two points in time, serve the latest online, and show training rows see no future."""
    api = ctx.api
    api.call(
        "POST",
        f"{FEATURES}/feature-views",
        json={
            "name": "demo_customer_spend",
            "entity": "customer",
            "ttl_seconds": THIRTY_DAYS,
            "source": f"{CONNECTOR}.orders",
            "features": [
                {"name": "spend_30d", "feature_type": "float64"},
                {"name": "orders_30d", "feature_type": "int64"},
            ],
        },
    )
    api.call(
        "POST",
        f"{FEATURES}/on-demand-views",
        json={
            "name": "demo_basket",
            "inputs": ["spend_30d", "orders_30d"],
            "outputs": {"avg_order": {"feature_type": "float64", "expression": "spend_30d / orders_30d"}},
        },
    )
    ctx.say("registered view demo_customer_spend (spend_30d float64, orders_30d int64, TTL 30 d)")
    ctx.say("and on-demand view demo_basket (avg_order = spend_30d / orders_30d)")

    customer = f"cust-{ctx.tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    earlier, later = now - timedelta(days=3), now - timedelta(hours=1)
    values = [
        ("spend_30d", 120.0, earlier),
        ("orders_30d", 3, earlier),
        ("spend_30d", 310.5, later),
        ("orders_30d", 7, later),
    ]
    written = api.call(
        "POST",
        f"{FEATURES}/write",
        json={
            "features": [
                {"feature_name": name, "entity_id": customer, "value": value, "timestamp": _iso(at)}
                for name, value, at in values
            ],
            "storage": "both",
        },
    )["written"]
    ctx.say(
        f"wrote {customer}: spend_30d 120.0 and orders_30d 3 at {_iso(earlier)}, 310.5 and 7 at "
        f"{_iso(later)} -> online {written['online']}, offline {written['offline']}"
    )

    newcomer = f"cust-{ctx.tag}-new"
    vectors = api.call(
        "POST",
        f"{FEATURES}/get-online",
        json={"feature_names": ["spend_30d", "orders_30d", "avg_order"], "entity_ids": [customer, newcomer]},
    )["feature_vectors"]
    for vector in vectors:
        shown = ", ".join(
            f"{name}={_number(value)} ({vector['statuses'][name]})"
            for name, value in vector["features"].items()
        )
        ctx.say(f"online {vector['entity_id']}: {shown}")
    served = vectors[0]["features"]
    expect(served["spend_30d"] == 310.5, f"online spend_30d is {served['spend_30d']}, not the latest 310.5")

    between = now - timedelta(days=1)
    rows = api.call(
        "POST",
        f"{FEATURES}/historical",
        json={
            "feature_names": ["spend_30d", "orders_30d"],
            "entity_rows": [
                {"entity_id": customer, "timestamp": _iso(between)},
                {"entity_id": customer, "timestamp": _iso(now)},
            ],
        },
    )["rows"]
    for row in rows:
        shown = ", ".join(f"{name}={_number(value)}" for name, value in row["features"].items())
        ctx.say(f"training row as of {row['timestamp']}: {shown}")
    expect(
        rows[0]["features"]["spend_30d"] == 120.0,
        f"a training row before the 310.5 write got {rows[0]['features']['spend_30d']}: future leaked",
    )
    ctx.say("the row dated before the 310.5 write gets 120.0: no leakage from the future")
    return f"feature vector spend_30d=310.5 served for {customer}"


# --- 4. templates ----------------------------------------------------------------------------------

TEMPLATES = "/api/v1/advanced/templates"
# Pipelines never run on the platform's own database: the demo adds a SQLite file of its project as a
# connection, and falls back on the embedded sandboxed ClickHouse where a platform offers it.
DEMO_CONNECTION = "demo_warehouse"
TEMPLATE_TARGETS = (
    (DEMO_CONNECTION, "full_load_sqlite", "main"),
    ("clickhouse", "full_load_clickhouse", "default"),
)
SHOWN_SQL_LINES = 4


def _demo_connection(ctx: Context) -> None:
    """The project's own run target: a SQLite file in the project's folder (kept on a rerun)."""
    known = {c["name"] for c in ctx.api.call("GET", f"{TEMPLATES}/connections")}
    if DEMO_CONNECTION not in known:
        ctx.api.call(
            "POST", f"{TEMPLATES}/connections", json={"name": DEMO_CONNECTION, "url": "sqlite:///demo.db"}
        )
    tested = ctx.api.call("POST", f"{TEMPLATES}/connections/{DEMO_CONNECTION}/test")
    expect(tested["ok"], f"connection {DEMO_CONNECTION} failed its test: {tested['error']}")
    ctx.say(f"connection {DEMO_CONNECTION}: a SQLite file of the project, tested in {tested['seconds']} s")


def templates(ctx: Context) -> str:
    """A connection, a control-table row for a built-in template, then a dry run that renders and
    checks its SQL."""
    api, table = ctx.api, ctx.table
    _demo_connection(ctx)
    entry_id, generated = "", None
    for target, template_id, schema in TEMPLATE_TARGETS:
        entry = {
            "source_system": CONNECTOR,
            "source_object": f"{schema}.{table}",
            "target_system": target,
            "target_object": f"{schema}.dim_{table}",
            "template_id": template_id,
            "load_type": "full_load",
            "keys": ["customer_id"],
            "config": {
                "columns": [
                    {"name": "customer_id"},
                    {"name": "customer_name", "source": "customerName"},
                    {"name": "email"},
                ]
            },
        }
        if entry_id:
            api.call("PUT", f"{TEMPLATES}/control-table/{entry_id}", json=entry)
        else:
            entry_id = api.call("POST", f"{TEMPLATES}/control-table", json=entry)["id"]
        result = api.call("POST", f"{TEMPLATES}/generate", json={"dry_run": True})
        generated = next(p for p in result["pipelines"] if p["entry_id"] == entry_id)
        if not any(problem["pointer"] == "/target_system" for problem in generated["errors"]):
            break
        ctx.say(f"{template_id} cannot target {target!r}: {generated['errors'][0]['message']}")
    assert generated is not None  # TEMPLATE_TARGETS is not empty
    expect(not generated["errors"], f"the dry run reported {generated['errors']}")
    ctx.say(
        f"control-table entry {entry_id[:8]}: {CONNECTOR} {table} -> {generated['pipeline_name']} "
        f"with {generated['template_id']} {generated['template_version']} "
        "(customer_name read from the renamed customerName)"
    )
    lines = [line for line in generated["code"].splitlines() if line.strip()]
    ctx.say(
        f"dry run: {result['valid']} valid, {result['invalid']} invalid, nothing saved; "
        f"{len(lines)} SQL lines, first {SHOWN_SQL_LINES}:"
    )
    for line in lines[:SHOWN_SQL_LINES]:
        ctx.say(f"  | {line if len(line) <= 100 else line[:97] + '...'}")
    return f"{generated['pipeline_name']} rendered ({len(lines)} SQL lines)"


# --- 5. predictive maintenance ---------------------------------------------------------------------

PREDICT = "/api/v1/advanced/predict"
# In seed 25 of the simulator the latest memory leak builds up over a few days; cutting the
# history at 90% of it puts "now" about half a day before that pipeline starts failing.
SIMULATION_SEED, SIMULATED_PIPELINES, SIMULATED_DAYS = 25, 10, 21
LEAK_SHARE_ELAPSED = 0.9
DEGRADING_NAME = "payments_cdc"
MODEL_WAIT_SECONDS = 150
PIPELINE_NAMES = (
    "orders_load",
    "customers_sync",
    "payments_cdc",
    "inventory_snapshot",
    "clickstream_agg",
    "invoices_export",
    "shipments_merge",
    "returns_load",
    "reviews_ingest",
    "ledger_close",
)


@dataclass(frozen=True)
class History:
    runs: pd.DataFrame
    degrading: str
    healthy: str
    leak_started_hours_ago: float
    failures_in_hours: float


def simulated_history(now: datetime) -> History:
    """Simulated hourly runs ending now, with one pipeline's memory leak a day away from failures."""
    from aietl.services.predict.simulator import simulate

    simulation = simulate(
        project_id=DEMO_PROJECT, pipelines=SIMULATED_PIPELINES, days=SIMULATED_DAYS, seed=SIMULATION_SEED
    )
    leaking, leak = max(
        (
            (plan, d)
            for plan in simulation.pipelines
            for d in plan.degradations
            if d.mechanism == "memory_leak" and d.start_hour + d.ramp_hours <= 24 * SIMULATED_DAYS
        ),
        key=lambda found: found[1].start_hour,
    )
    failures = simulation.runs[simulation.runs["status"] == "failed"]["pipeline_id"].value_counts()
    healthy = min(
        (p for p in simulation.pipelines if p.kind != "memory_leak"),
        key=lambda p: (p.kind != "healthy", failures.get(p.pipeline_id, 0)),
    )
    others = iter(name for name in PIPELINE_NAMES if name != DEGRADING_NAME)
    names = {
        plan.pipeline_id: DEGRADING_NAME if plan is leaking else next(others) for plan in simulation.pipelines
    }
    cut_hour = leak.start_hour + LEAK_SHARE_ELAPSED * leak.ramp_hours
    start = simulation.runs["started_at"].min().floor("h")
    shift = pd.Timestamp(now) - (start + pd.Timedelta(hours=cut_hour))
    runs = simulation.runs.assign(
        started_at=simulation.runs["started_at"] + shift,
        ended_at=simulation.runs["ended_at"] + shift,
        pipeline_id=simulation.runs["pipeline_id"].map(names),
        run_id=simulation.runs["run_id"].str.replace("pipeline-", "demo-run-", regex=False),
    )
    return History(
        runs=runs[runs["started_at"] <= pd.Timestamp(now)],
        degrading=names[leaking.pipeline_id],
        healthy=names[healthy.pipeline_id],
        leak_started_hours_ago=cut_hour - leak.start_hour,
        failures_in_hours=leak.start_hour + leak.ramp_hours - cut_hour,
    )


def _run_payload(runs: pd.DataFrame) -> list[dict[str, Any]]:
    frame = runs.drop(columns=["project_id"])
    for column in ("started_at", "ended_at"):
        frame[column] = frame[column].dt.floor("us").map(lambda t: t.isoformat())
    return [{str(key): value for key, value in record.items()} for record in frame.to_dict(orient="records")]


def _failure_once_trained(ctx: Context, pipeline: str) -> dict[str, Any]:
    """The failure question; while the worker trains its first model the answer is 409 (with when)."""
    deadline = time.monotonic() + MODEL_WAIT_SECONDS
    said = False
    while True:
        try:
            return dict(ctx.api.call("GET", f"{PREDICT}/failure/{pipeline}", params={"horizon_hours": 24}))
        except ApiError as error:
            if "409" not in str(error) or time.monotonic() > deadline:
                raise
            if not said:
                ctx.say(
                    "the predict worker is training its first model in the background (409 meanwhile) ..."
                )
                said = True
            time.sleep(2)


def predictive_maintenance(ctx: Context) -> str:
    """Backfill run history in bulk, then ask for failure risk, its reasons, and a resource forecast."""
    api = ctx.api
    history = simulated_history(datetime.now(UTC))
    runs = history.runs
    stored = api.call("POST", f"{PREDICT}/runs", json={"runs": _run_payload(runs)})["stored"]
    days = (runs["started_at"].max() - runs["started_at"].min()).total_seconds() / 86_400
    ctx.say(
        f"bulk-ingested {stored} simulated runs of {runs['pipeline_id'].nunique()} pipelines "
        f"over {days:.0f} days (hourly, with failures)"
    )
    risk = _failure_once_trained(ctx, history.degrading)
    model = risk["model"]
    ctx.say(
        f"{history.degrading}: failure probability {risk['failure_probability']:.2f} within 24 h "
        f"(severity {risk['severity']}, confidence {risk['confidence_score']:.2f}, "
        f"prevention window {risk['prevention_window_hours']} h)"
    )
    ctx.say(
        f"  model: version {model['version']}, random forests on {model['training_runs']} runs, "
        f"validation ROC-AUC {model['validation']['roc_auc']} (later time, trained in the background)"
    )
    for factor in risk["contributing_factors"][:3]:
        ctx.say(
            f"  - {factor['factor']} {_number(factor['current_value'])} "
            f"(healthy threshold {_number(factor['threshold'])}): "
            f"contribution {factor['contribution']:.2f}, {factor['severity']}"
        )
    ctx.say(f"  recommended: {risk['recommended_actions'][0]}")
    ctx.say(
        f"  the simulation's hidden truth: memory leaking for {history.leak_started_hours_ago:.0f} h, "
        f"it hits the limit (failures) in {history.failures_in_hours:.0f} h"
    )
    calm = api.call("GET", f"{PREDICT}/failure/{history.healthy}", params={"horizon_hours": 24})
    ctx.say(f"for contrast, healthy {history.healthy}: {calm['failure_probability']:.2f}")
    expect(
        risk["failure_probability"] > calm["failure_probability"],
        "the degrading pipeline is not ranked riskier than the healthy one",
    )

    forecast = api.call(
        "GET",
        f"{PREDICT}/resources/{history.degrading}",
        params={"resource_type": "memory", "forecast_hours": 24},
    )
    peak = forecast["predicted_peak"]
    ctx.say(
        f"memory forecast, next 24 h: peak {peak['value']:.0f} MB (80% upper {peak['upper']:.0f}) "
        f"at {peak['at']}, capacity {forecast['capacity']:.0f} MB, "
        f"P(exceed) {forecast['probability_exceed_capacity']:.2f}"
    )
    ctx.say(f"  {forecast['model']}; plot: {api.base_url}{forecast['plot_url']}")
    return f"{history.degrading} failure probability {risk['failure_probability']:.2f}"


# --- 6. vector sink --------------------------------------------------------------------------------

DOCUMENTS = [
    {
        "doc_id": "pw-reset",
        "text": "# Passwords\n\nReset a forgotten password from the login page; the link expires in an hour.",
        "metadata": {"year": 2025, "team": "support"},
        "source": "wiki",
    },
    {
        "doc_id": "vpn",
        "text": "# VPN\n\nConnect to the office VPN with the company client before opening dashboards.",
        "metadata": {"year": 2024, "team": "it"},
        "source": "wiki",
    },
    {
        "doc_id": "expenses",
        "text": "# Expenses\n\nSubmit travel expenses within 30 days, with receipts attached.",
        "metadata": {"year": 2023, "team": "finance"},
        "source": "handbook",
    },
    {
        "doc_id": "old-passwords",
        "text": "# Passwords (2022)\n\nPasswords were reset by calling the help desk.",
        "metadata": {"year": 2022, "team": "support"},
        "source": "wiki",
    },
]
VECTORS = "/api/v1/advanced/vectors"


def vector_sink(ctx: Context) -> str:
    """Documents into Milvus Lite via a connector; a re-ingest is a no-op; a filtered hybrid search."""
    api = ctx.api
    name = f"demo_kb_{ctx.tag}"
    connector = api.call(
        "POST",
        "/api/v1/connectors",
        json={"name": name, "type": "milvus", "config": {"metadata_schema": {"year": "int", "team": "str"}}},
    )
    ctx.say(
        f"connector {name} ({connector['type']}, embeddings {connector['config']['embedding_model']}, "
        f"{connector['config']['metric']})"
    )
    body = {"connector_id": name, "collection": "handbook", "documents": DOCUMENTS}
    first = api.call("POST", f"{VECTORS}/ingest", json=body)
    again = api.call("POST", f"{VECTORS}/ingest", json=body)
    ctx.say(
        f"ingested {first['changed_documents']} documents: {first['written_chunks']} chunks, "
        f"{first['embedded_texts']} embedded; again: {again['unchanged_documents']} unchanged, "
        f"{again['embedded_texts']} embedded"
    )
    query = "I forgot my password"
    hits = api.call(
        "POST",
        f"{VECTORS}/search",
        json={
            "connector_id": name,
            "collection": "handbook",
            "query": query,
            "top_k": 3,
            "hybrid": True,
            "filter": {"year": {"$gte": 2024}},
        },
    )["hits"]
    ctx.say(f"hybrid search {query!r} where year >= 2024:")
    for hit in hits:
        text = hit["text"].replace("\n", " ")
        ctx.say(f"  {hit['score']:.4f} {hit['metadata']['doc_id']} [{hit['id']}] {text[:60]}")
    expect(bool(hits) and hits[0]["metadata"]["doc_id"] == "pw-reset", f"unexpected top hit: {hits[:1]}")
    expect(all(hit["metadata"]["year"] >= 2024 for hit in hits), "the filter let an older document through")
    return f"top search hit {hits[0]['metadata']['doc_id']}"


# --- the scenario ----------------------------------------------------------------------------------


def run_scenario(base_url: str, username: str, password: str, report: Report) -> str:
    """The six steps in order, then a one-line summary; the first failure stops them and names its step."""
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(30.0, read=300.0)) as http:
        ctx = Context(Api(http, base_url=base_url), report)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("Log in", lambda: log_in(ctx, username, password)),
            ("Schema drift", lambda: schema_drift(ctx)),
            ("Feature store", lambda: feature_store(ctx)),
            ("Pipeline templates", lambda: templates(ctx)),
            ("Predictive maintenance", lambda: predictive_maintenance(ctx)),
            ("Vector sink", lambda: vector_sink(ctx)),
        ]
        outcomes = []
        for number, (title, step) in enumerate(steps, start=1):
            report(f"{number}. {title}")
            began = time.perf_counter()
            try:
                outcomes.append(step())
            except (ApiError, Unexpected, httpx.HTTPError) as error:
                raise DemoFailed(f"step {number} ({title}) failed: {error}") from error
            ctx.say(f"({time.perf_counter() - began:.1f} s)")
    return f"Demo passed in {time.perf_counter() - started:.0f} s: " + "; ".join(outcomes[1:]) + "."
