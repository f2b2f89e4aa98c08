"""Charts as inline SVG built on the server: no script, no inline style (colours come from the
console's stylesheet through classes), a <title> and <desc> for screen readers, text labels on the
marks that matter. Every piece of text is escaped here, so a chart is safe markup to place in a page.

Pure functions of their data; pages put a data table beside each chart for exact values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

_ids = itertools.count(1)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LANE_CHARACTERS = 36


def _frame(width: int, height: int, title: str, description: str, body: list[str], css: str) -> Markup:
    ident = f"chart-{next(_ids)}"
    # Every text that reaches the markup went through `escape` (or is a number): safe by construction.
    return Markup(  # noqa: S704
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: object, css: str = "label", anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{escape(str(text))}</text>'


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


def _short(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1_000:.0f}k"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}"


@dataclass(frozen=True)
class ForecastPoint:
    time: datetime
    mean: float
    lower: float
    upper: float


def forecast_chart(
    title: str,
    unit: str,
    history: Sequence[tuple[datetime, float]],
    forecast: Sequence[ForecastPoint],
    capacity: float | None,
) -> Markup:
    """History as a line, the forecast's mean as a dashed line inside its interval band, capacity as a
    horizontal line; the time axis spans both."""
    width, height, left, right, top, bottom = 960, 320, 64, 16, 28, 44
    times = [t for t, _ in history] + [p.time for p in forecast]
    if not times:
        return _frame(width, height, title, "No data.", [_text(left, height / 2, "No data")], "forecast")
    start, end = min(times).timestamp(), max(times).timestamp()
    span = max(end - start, 1.0)
    highest = max(
        [v for _, v in history]
        + [p.upper for p in forecast]
        + ([capacity] if capacity is not None else [])
        + [0.0]
    )
    y_max = _nice_max(highest * 1.05)

    def x(moment: datetime) -> float:
        return left + (moment.timestamp() - start) / span * (width - left - right)

    def y(value: float) -> float:
        return top + (1 - max(value, 0.0) / y_max) * (height - top - bottom)

    body = _axes(width, height, left, right, top, bottom, y_max, unit)
    body += _time_ticks(start, end, x, height - bottom)
    if forecast:
        band = [f"{x(p.time):.1f},{y(p.upper):.1f}" for p in forecast]
        band += [f"{x(p.time):.1f},{y(p.lower):.1f}" for p in reversed(forecast)]
        body.append(
            f'<polygon class="band" points="{" ".join(band)}"><title>forecast interval</title></polygon>'
        )
        mean = " ".join(f"{x(p.time):.1f},{y(p.mean):.1f}" for p in forecast)
        body.append(f'<polyline class="mean" points="{mean}"/>')
        body.append(
            f'<line class="now" x1="{x(forecast[0].time):.1f}" y1="{top}" '
            f'x2="{x(forecast[0].time):.1f}" y2="{height - bottom}"/>'
        )
        body.append(_text(x(forecast[0].time) + 4, top + 12, "forecast", "label muted"))
    if history:
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in history)
        body.append(f'<polyline class="history" points="{line}"/>')
    if capacity is not None:
        body.append(
            f'<line class="capacity" x1="{left}" y1="{y(capacity):.1f}" '
            f'x2="{width - right}" y2="{y(capacity):.1f}"/>'
        )
        body.append(
            _text(
                width - right - 4,
                y(capacity) - 5,
                f"capacity {_short(capacity)} {unit}",
                "label capacity-label",
                "end",
            )
        )
    description = (
        f"{len(history)} hourly observations and a {len(forecast)}-hour forecast in {unit}"
        + (
            f"; peak forecast {_short(max(p.mean for p in forecast))}, "
            f"upper bound {_short(max(p.upper for p in forecast))}"
            if forecast
            else ""
        )
        + (f"; capacity {_short(capacity)}" if capacity is not None else "")
        + "."
    )
    body += _legend(
        left,
        height - 8,
        [
            ("history", "history"),
            ("mean", "forecast"),
            ("band", "interval"),
            *([("capacity", "capacity")] if capacity is not None else []),
        ],
    )
    return _frame(width, height, title, description, body, "forecast")


def _axes(
    width: int, height: int, left: int, right: int, top: int, bottom: int, y_max: float, unit: str
) -> list[str]:
    body = [
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>'
    ]
    for step in range(5):
        value = y_max * step / 4
        level = top + (1 - step / 4) * (height - top - bottom)
        body.append(
            f'<line class="grid" x1="{left}" y1="{level:.1f}" x2="{width - right}" y2="{level:.1f}"/>'
        )
        body.append(_text(left - 6, level + 4, _short(value), "label tick", "end"))
    body.append(_text(left - 6, top - 12, unit, "label muted", "end"))
    return body


def _time_ticks(start: float, end: float, x: Callable[[datetime], float], baseline: float) -> list[str]:
    body = []
    for step in range(5):
        moment = datetime.fromtimestamp(start + (end - start) * step / 4, UTC)
        anchor = "start" if step == 0 else "end" if step == 4 else "middle"
        body.append(_text(x(moment), baseline + 16, moment.strftime("%m-%d %H:%M"), "label tick", anchor))
    return body


def _legend(x: float, y: float, items: list[tuple[str, str]]) -> list[str]:
    body = []
    for css, label in items:
        body.append(f'<rect class="key {css}" x="{x:.1f}" y="{y - 8:.1f}" width="14" height="8"/>')
        body.append(_text(x + 18, y, label, "label"))
        x += 26 + 7 * len(label)
    return body


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    flagged: bool = False
    note: str = ""


def bar_chart(title: str, unit: str, bars: Sequence[Bar], *, flag_name: str = "anomaly") -> Markup:
    """Vertical bars (e.g. cost per day); flagged bars get their own colour, a marker and a label."""
    width, height, left, right, top, bottom = 960, 280, 64, 16, 36, 44
    if not bars:
        return _frame(width, height, title, "No data.", [_text(left, height / 2, "No data")], "bars")
    y_max = _nice_max(max(b.value for b in bars) * 1.1)
    body = _axes(width, height, left, right, top, bottom, y_max, unit)
    slot = (width - left - right) / len(bars)
    label_every = max(1, math.ceil(len(bars) / 12))
    for index, bar in enumerate(bars):
        bar_height = max(bar.value, 0) / y_max * (height - top - bottom)
        x0 = left + index * slot + slot * 0.15
        css = "bar flagged" if bar.flagged else "bar"
        tip = f"{bar.label}: {_short(bar.value)} {unit}" + (
            f" — {flag_name}: {bar.note}" if bar.flagged else ""
        )
        body.append(
            f'<rect class="{css}" x="{x0:.1f}" y="{height - bottom - bar_height:.1f}" '
            f'width="{slot * 0.7:.1f}" '
            f'height="{bar_height:.1f}"><title>{escape(tip)}</title></rect>'
        )
        if bar.flagged:
            body.append(
                _text(
                    x0 + slot * 0.35,
                    height - bottom - bar_height - 6,
                    "▲ " + flag_name,
                    "label flag",
                    "middle",
                )
            )
        if index % label_every == 0:
            body.append(_text(x0 + slot * 0.35, height - bottom + 16, bar.label, "label tick", "middle"))
    flagged = [b.label for b in bars if b.flagged]
    description = f"{len(bars)} bars in {unit}; " + (
        f"{flag_name} on {', '.join(flagged)}." if flagged else f"no {flag_name}."
    )
    return _frame(width, height, title, description, body, "bars")


def horizontal_bars(title: str, unit: str, items: Sequence[tuple[str, float]]) -> Markup:
    """One labelled bar per item (e.g. consumer lag per topic and group), the value written beside it."""
    row, left, width = 26, 300, 960
    height = max(row * len(items) + 24, 60)
    if not items:
        return _frame(width, 60, title, "Nothing to show.", [_text(8, 34, "Nothing to show")], "hbars")
    x_max = _nice_max(max(v for _, v in items) * 1.05) if any(v > 0 for _, v in items) else 1.0
    body = []
    for index, (label, value) in enumerate(items):
        y0 = 12 + index * row
        length = value / x_max * (width - left - 80)
        body.append(_text(left - 8, y0 + 14, label, "label", "end"))
        body.append(
            f'<rect class="bar" x="{left}" y="{y0 + 3}" width="{max(length, 1):.1f}" height="{row - 8}"/>'
        )
        body.append(_text(left + length + 6, y0 + 14, f"{_short(value)} {unit}", "label"))
    description = "; ".join(f"{label}: {_short(value)} {unit}" for label, value in items)
    return _frame(width, height, title, description, body, "hbars")


@dataclass(frozen=True)
class Mark:
    lane: str
    time: datetime
    label: str
    severity: str
    """low, medium, high or critical: the mark's colour class."""


def timeline(title: str, marks: Sequence[Mark]) -> Markup:
    """One lane per table, a mark per detection at its time, coloured by severity, labelled by status."""
    lanes = list(dict.fromkeys(m.lane for m in marks))
    left, right, row, width = 280, 24, 34, 960
    height = 44 + row * max(len(lanes), 1)
    if not marks:
        return _frame(width, 60, title, "No detections.", [_text(8, 34, "No detections yet")], "timeline")
    start = min(m.time for m in marks).timestamp()
    end = max(m.time for m in marks).timestamp()
    span = max(end - start, 1.0)

    def x(moment: datetime) -> float:
        return left + (moment.timestamp() - start) / span * (width - left - right - 60) + 10

    body = []
    for index, lane in enumerate(lanes):
        y0 = 20 + index * row
        shown = lane if len(lane) <= LANE_CHARACTERS else lane[: LANE_CHARACTERS - 1] + "…"
        body.append(f"<g>{_text(left - 10, y0 + 4, shown, 'label', 'end')}<title>{escape(lane)}</title></g>")
        body.append(f'<line class="lane" x1="{left}" y1="{y0}" x2="{width - right}" y2="{y0}"/>')
    for mark in marks:
        y0 = 20 + lanes.index(mark.lane) * row
        body.append(
            f'<circle class="mark {escape(mark.severity)}" cx="{x(mark.time):.1f}" cy="{y0}" r="7">'
            f"<title>{escape(f'{mark.lane} — {mark.label} ({mark.severity}) at {mark.time:%Y-%m-%d %H:%M}')}"
            " UTC</title></circle>"
        )
        body.append(_text(x(mark.time) + 10, y0 - 8, mark.label, "label small"))
    baseline = height - 14
    body.append(
        _text(left, baseline, datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M"), "label tick")
    )
    body.append(
        _text(
            width - right,
            baseline,
            datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M"),
            "label tick",
            "end",
        )
    )
    description = f"{len(marks)} detections on {len(lanes)} tables: " + "; ".join(
        f"{m.lane} {m.label} ({m.severity})" for m in marks[:20]
    )
    return _frame(width, height, title, description, body, "timeline")


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str


def layered_graph(
    title: str, layers: Sequence[tuple[str, Sequence[Node]]], edges: Sequence[tuple[str, str]]
) -> Markup:
    """Columns of nodes (e.g. sources → pipelines → feature views → features → on-demand views) with
    arrows between them; each node labelled, each column headed."""
    column, row, box_w, box_h = 190, 40, 160, 28
    tallest = max((len(nodes) for _, nodes in layers), default=0)
    width, height = max(column * len(layers), 200), 40 + row * max(tallest, 1)
    where: dict[str, tuple[float, float]] = {}
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path class="arrowhead" d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>'
    ]
    for index, (heading, nodes) in enumerate(layers):
        x0: float = 10 + index * column
        body.append(_text(x0, 16, heading, "label heading"))
        for position, node in enumerate(nodes):
            y0: float = 30 + position * row
            where[node.id] = (x0, y0)
    for source, target in edges:
        if source in where and target in where:
            (x1, y1), (x2, y2) = where[source], where[target]
            body.append(
                f'<path class="edge" d="M {x1 + box_w:.1f} {y1 + box_h / 2:.1f} '
                f"C {x1 + box_w + 20:.1f} {y1 + box_h / 2:.1f}, {x2 - 20:.1f} {y2 + box_h / 2:.1f}, "
                f'{x2:.1f} {y2 + box_h / 2:.1f}" marker-end="url(#arrow)"/>'
            )
    for _, nodes in layers:
        for node in nodes:
            x0, y0 = where[node.id]
            label = node.label if len(node.label) <= 22 else node.label[:21] + "…"
            body.append(
                f'<g class="node {escape(node.kind)}">'
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{box_w}" height="{box_h}" rx="5"/>'
                f"<title>{escape(node.kind)}: {escape(node.label)}</title>"
                + _text(x0 + 8, y0 + 18, label, "label")
                + "</g>"
            )
    description = "; ".join(
        f"{heading}: {', '.join(n.label for n in nodes) or 'none'}" for heading, nodes in layers
    )
    return _frame(width, height, title, description, body, "graph")


def week_grid(
    title: str, values: Sequence[float], highlight: set[int], *, value_name: str = "impact"
) -> Markup:
    """7 rows (Monday first) by 24 hours (UTC), shaded by value in five steps; highlighted hours (the
    recommended window) outlined and marked."""
    cell, left, top = 26, 44, 24
    width, height = left + 24 * cell + 10, top + 7 * cell + 30
    highest = max(values, default=0) or 1.0
    body = [
        _text(left + hour * cell + cell / 2, top - 8, f"{hour:02d}", "label tick", "middle")
        for hour in range(0, 24, 3)
    ]
    for day in range(7):
        body.append(_text(left - 6, top + day * cell + cell * 0.65, DAYS[day], "label", "end"))
        for hour in range(24):
            slot = day * 24 + hour
            value = values[slot] if slot < len(values) else 0.0
            level = min(4, int(value / highest * 5)) if value > 0 else 0
            chosen = slot in highlight
            css = f"cell level-{level}" + (" chosen" if chosen else "")
            body.append(
                f'<rect class="{css}" x="{left + hour * cell}" y="{top + day * cell}" '
                f'width="{cell - 2}" height="{cell - 2}">'
                f"<title>{DAYS[day]} {hour:02d}:00 UTC — {value_name} {_short(value)}"
                f"{' (recommended window)' if chosen else ''}</title></rect>"
            )
            if chosen:
                body.append(
                    _text(
                        left + hour * cell + cell / 2 - 1,
                        top + day * cell + cell * 0.65,
                        "✓",
                        "label on-dark",
                        "middle",
                    )
                )
    body += _legend(
        left,
        height - 6,
        [("level-0", "quiet"), ("level-2", "busier"), ("level-4", "busiest"), ("chosen", "window")],
    )
    # the window's first hour: the one whose predecessor is outside it (a window may wrap past Sunday)
    start = next((h for h in sorted(highlight) if (h - 1) % 168 not in highlight), None)
    description = (
        f"{value_name} per hour of the week (UTC)"
        + (
            f"; recommended window {DAYS[start // 24]} {start % 24:02d}:00 for {len(highlight)} h"
            if start is not None
            else ""
        )
        + "."
    )
    return _frame(width, height, title, description, body, "week")
