"""Pure parts of the console: charts escape every text and draw what their data says; the drift diff
pairs renamed columns; CSRF tokens are bound to the session; API refusals read as one line; a role's
status follows its live instances."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aietl.services.console import charts
from aietl.services.console.client import describe
from aietl.services.console.pages.drift import side_by_side
from aietl.services.console.session import csrf_token
from aietl.services.ops.api import ProcessOut, role_status

HOSTILE = '<img src=x onerror=alert(1)>"><script>alert(1)</script>'
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _no_live_markup(svg: str) -> None:
    assert "<img" not in svg and "<script" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg


def test_every_chart_escapes_its_text() -> None:
    point = charts.ForecastPoint(T0, 1.0, 0.5, 1.5)
    _no_live_markup(charts.forecast_chart(HOSTILE, HOSTILE, [(T0, 1.0)], [point], 2.0))
    _no_live_markup(charts.bar_chart(HOSTILE, "USD", [charts.Bar(HOSTILE, 3.0, True, HOSTILE)]))
    _no_live_markup(charts.horizontal_bars(HOSTILE, "records", [(HOSTILE, 4.0)]))
    _no_live_markup(charts.timeline(HOSTILE, [charts.Mark(HOSTILE, T0, HOSTILE, "high")]))
    _no_live_markup(charts.layered_graph(HOSTILE, [(HOSTILE, [charts.Node("a", HOSTILE, "feature")])], []))
    _no_live_markup(charts.week_grid(HOSTILE, [1.0] * 168, {0}))


def test_a_forecast_draws_its_band_and_capacity_where_the_values_are() -> None:
    points = [charts.ForecastPoint(T0 + timedelta(hours=h), 10.0, 5.0, 15.0) for h in range(1, 5)]
    svg = str(charts.forecast_chart("memory", "MB", [(T0, 8.0)], points, 20.0))
    band = re.findall(r'<polygon class="band" points="([^"]+)"', svg)[0].split()
    assert len(band) == 2 * len(points)
    capacity = re.findall(r'<line class="capacity" x1="[\d.]+" y1="([\d.]+)"', svg)[0]
    upper = band[0].split(",")[1]
    assert float(capacity) < float(upper)  # 20 is drawn above 15 (SVG y grows downwards)
    assert "capacity 20 MB" in svg and 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_the_week_grid_marks_the_window_even_across_sunday_midnight() -> None:
    window = {(167 + h) % 168 for h in range(3)}  # Sunday 23:00 for three hours
    svg = str(charts.week_grid("impact", [float(h % 24) for h in range(168)], window))
    assert (
        svg.count('class="cell level-') == 168 and len(re.findall(r'class="cell level-\d chosen"', svg)) == 3
    )
    assert "Sun 23:00 UTC" in svg and "Mon 00:00 UTC" in svg
    assert "recommended window Sun 23:00 for 3 h" in svg


def test_flagged_bars_are_marked_and_named() -> None:
    bars = [charts.Bar("01-05", 3.0), charts.Bar("01-06", 9.0, True, "pipeline-001 spiked")]
    svg = str(charts.bar_chart("cost", "USD", bars))
    assert (
        svg.count('class="bar flagged"') == 1 and "anomaly on 01-06" in svg and "pipeline-001 spiked" in svg
    )


def test_the_diff_sets_a_renamed_column_beside_its_new_name() -> None:
    diff = {
        "from_columns": [
            {"name": "id", "type": "bigint"},
            {"name": "customer_name", "type": "text"},
            {"name": "amount", "type": "integer"},
            {"name": "gone", "type": "text"},
        ],
        "to_columns": [
            {"name": "id", "type": "bigint"},
            {"name": "customer_full_name", "type": "text"},
            {"name": "amount", "type": "bigint"},
            {"name": "fresh", "type": "date"},
        ],
        "drifts": [
            {
                "drift_type": "renamed_column",
                "column_name": "customer_full_name",
                "previous_name": "customer_name",
                "severity": "medium",
            },
            {
                "drift_type": "type_change",
                "column_name": "amount",
                "previous_name": None,
                "severity": "low",
                "change_class": "widening",
            },
            {
                "drift_type": "removed_column",
                "column_name": "gone",
                "previous_name": None,
                "severity": "high",
            },
            {"drift_type": "new_column", "column_name": "fresh", "previous_name": None, "severity": "low"},
        ],
    }
    rows = side_by_side(diff)
    kinds = [
        (r["kind"], r["old"]["name"] if r["old"] else None, r["new"]["name"] if r["new"] else None)
        for r in rows
    ]
    assert kinds == [
        ("same", "id", "id"),
        ("renamed", "customer_name", "customer_full_name"),
        ("changed", "amount", "amount"),
        ("removed", "gone", None),
        ("added", None, "fresh"),
    ]
    assert rows[3]["drifts"][0]["severity"] == "high"


def test_csrf_tokens_are_bound_to_the_session_and_the_key() -> None:
    assert csrf_token("key", "session-a") == csrf_token("key", "session-a")
    assert csrf_token("key", "session-a") != csrf_token("key", "session-b")
    assert csrf_token("other", "session-a") != csrf_token("key", "session-a")


def test_api_refusals_read_as_one_line() -> None:
    assert describe("plain") == "plain"
    field = {"pointer": "/body/event/columns", "message": "Field required"}
    assert (
        describe({"detail": "body.event.columns: Field required", "errors": [field], "context": {}})
        == "body.event.columns: Field required"
    )
    assert describe({"detail": "needs 7 days", "errors": [], "context": {"have": 2}}) == "needs 7 days"
    config = {"detail": "/columns: required", "errors": [{"pointer": "/columns", "message": "required"}]}
    assert describe({**config, "context": {}}) == "/columns: required"


def _process(ready: bool, stale: bool) -> ProcessOut:
    return ProcessOut(
        role="drift",
        instance="host:1",
        ready=ready,
        stale=stale,
        checks={},
        lag=[],
        started_at=T0,
        last_seen=T0,
    )


def test_a_role_is_ready_only_when_every_live_instance_is() -> None:
    assert role_status([]) == "missing"
    assert role_status([_process(True, stale=True)]) == "stale"
    assert role_status([_process(True, False), _process(False, stale=True)]) == "ready"  # the stale one left
    assert role_status([_process(True, False), _process(False, False)]) == "not_ready"
