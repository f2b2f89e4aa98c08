"""Jinja2 with autoescaping on (every value from the API is escaped unless a chart or the highlighter
built it as markup from escaped parts), and the filters the pages share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from aietl.services.console.session import Console

HERE = Path(__file__).resolve().parent
NAVIGATION = (
    ("overview", "Overview", "/console/"),
    ("drift", "Drift", "/console/drift"),
    ("features", "Features", "/console/features"),
    ("pipelines", "Pipelines", "/console/pipelines"),
    ("predict", "Maintenance", "/console/predict"),
    ("vectors", "Vectors", "/console/vectors"),
)
HTMX = "/console/static/vendor/htmx-2.0.11.min.js"


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def required_time(value: Any) -> datetime:
    """A timestamp the API always sends (a detection's creation, a forecast point)."""
    moment = parse_time(value)
    if moment is None:
        raise ValueError("a timestamp the API always sends is missing")
    return moment


def when(value: Any) -> str:
    """UTC time to the second, as people read it."""
    moment = parse_time(value)
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return "never"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def pretty_json(value: Any) -> str:
    """Indented JSON of a value, or of text that holds JSON; other text as it is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=when, ago=ago, number=number, pretty_json=pretty_json, percent=percent)
environment.globals.update(NAVIGATION=NAVIGATION, HTMX=HTMX)


def render(
    console: Console, template: str, *, page: str, title: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    html = environment.get_template(template).render(console=console, page=page, title=title, **context)
    return HTMLResponse(html, status_code=status_code)


def render_plain(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page without a session (login, errors before sign-in)."""
    return HTMLResponse(environment.get_template(template).render(**context), status_code=status_code)
