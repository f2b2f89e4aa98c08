"""The drift history of a table as a self-contained HTML page (inline SVG, no JavaScript)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from aietl.services.drift.tables import Detection, SchemaVersion

WIDTH, HEIGHT, MARGIN = 900, 260, 50
BASE = HEIGHT - MARGIN
BLUE = "#1565c0"
LINE = f'stroke="{BLUE}" stroke-width="2"'
STATUS_COLOURS = {"adapted": "#2e7d32", "pending": "#f9a825", "alerted": "#ef6c00", "blocked": "#c62828"}


def _timeline(versions: Sequence[SchemaVersion], detections: Sequence[Detection]) -> str:
    """Columns per version over time (steps) and one dot per detection, coloured by its status."""
    moments = [v.created_at for v in versions] + [d.created_at for d in detections]
    if not moments:
        return "<p>No observations yet.</p>"
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 1.0)
    most = max([len(v.columns) for v in versions] + [1])

    def x(moment) -> float:
        return MARGIN + (WIDTH - 2 * MARGIN) * (moment - start).total_seconds() / span

    def y(columns: int) -> float:
        return HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * columns / most

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">',
        f'<line x1="{MARGIN}" y1="{BASE}" x2="{WIDTH - MARGIN}" y2="{BASE}" stroke="#999"/>',
        f'<text x="{MARGIN}" y="20" font-size="12">columns per baseline version; dots: detections</text>',
    ]
    points = [(x(v.created_at), y(len(v.columns)), v) for v in versions]
    for (x1, y1, _), (x2, _, _) in zip(points, [*points[1:], (x(end), 0, None)], strict=True):
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y1:.1f}" {LINE}/>')
    for px, py, version in points:
        label = f"v{version.version}: {len(version.columns)} columns"
        parts.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{BLUE}"><title>{escape(label)}</title></circle>'
        )
        parts.append(f'<text x="{px + 5:.1f}" y="{py - 6:.1f}" font-size="11">v{version.version}</text>')
    for detection in detections:
        colour = STATUS_COLOURS.get(detection.status, "#555")
        label = f"{detection.status}: {len(detection.drifts)} drift(s), {detection.strategy}"
        parts.append(
            f'<circle cx="{x(detection.created_at):.1f}" cy="{HEIGHT - MARGIN + 15}" r="5" fill="{colour}">'
            f"<title>{escape(label)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def history_page(
    connector_id: str, table_name: str, versions: Sequence[SchemaVersion], detections: Sequence[Detection]
) -> str:
    title = escape(f"{connector_id}/{table_name}")
    rows = "".join(
        f"<tr><td>{escape(d.created_at.isoformat(timespec='seconds'))}</td><td>{d.baseline_version}</td>"
        f"<td>{d.new_version or ''}</td>"
        f"<td style='color:{STATUS_COLOURS.get(d.status, '#555')}'>{escape(d.status)}</td>"
        f"<td>{escape('; '.join(str(x.get('description', '')) for x in d.drifts))}</td></tr>"
        for d in sorted(detections, key=lambda d: d.created_at)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Schema drift: {title}</title></head>"
        f"<body style='font-family:sans-serif'><h1>Schema drift: {title}</h1>"
        f"{_timeline(versions, detections)}"
        "<h2>Detections</h2><table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>when</th><th>baseline</th><th>new version</th><th>status</th><th>drifts</th></tr>"
        f"{rows}</table></body></html>"
    )
