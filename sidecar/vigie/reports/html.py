"""A report or an autopsy as one self-contained HTML file: inline CSS and SVG charts, no
script, no fetch, so it opens anywhere and mails as one attachment."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any, Final

COLORS: Final = {
    "successes": "#3a9d5d",
    "client_errors": "#e0a526",
    "server_errors": "#d64545",
    "throttled": "#7b61c9",
}
LABELS: Final = {
    "successes": "successes",
    "client_errors": "client errors (4xx)",
    "server_errors": "server errors (5xx)",
    "throttled": "throttled",
}
LINE_COLORS: Final = (
    "#2f6fb0",
    "#d9822b",
    "#3a9d5d",
    "#c23b7a",
    "#7b61c9",
    "#2a9d9a",
    "#8c6d31",
    "#666666",
)

CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2733;
margin:0;background:#f4f6f9}
header{background:#1d3a5c;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;opacity:.8}
main{padding:20px 32px;max-width:1180px}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:18px}
.kpi{background:#fff;border-radius:8px;padding:12px 18px;min-width:140px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi b{display:block;font-size:22px}
.kpi span{color:#5b6b7c;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #e6eaef;text-align:right}
th{color:#5b6b7c;font-weight:600;background:#fafbfc}
td:first-child,th:first-child,td.l,th.l{text-align:left}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.muted{color:#5b6b7c}
.up{color:#2d7d46}.down{color:#b03a3a}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _growth(v: float | None) -> str:
    if v is None:
        return '<span class="muted">–</span>'
    cls = "up" if v > 0 else "down" if v < 0 else ""
    return f'<span class="{cls}">{"+" if v > 0 else ""}{100 * v:.0f} %</span>'


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    p = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * p >= v:
            return m * p
    return 10.0 * p


def stacked_bars(
    points: Sequence[dict[str, Any]], labels: Sequence[str], w: int = 1080, h: int = 260
) -> str:
    """Stacked bars of the four outcomes per time bucket."""
    if not points:
        return '<p class="muted">No traffic in this period.</p>'
    left, bottom, top = 64, 28, 10
    pw, ph = w - left - 10, h - bottom - top
    ymax = _nice_max(max(p["requests"] for p in points))
    bw = pw / len(points)
    out = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img">']
    for k in range(5):
        y = top + ph - ph * k / 4
        out.append(
            f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e6eaef"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6b7c">{ymax * k / 4:,.0f}</text>'
        )
    for i, p in enumerate(points):
        y = top + ph
        x = left + i * bw
        for o in ("successes", "client_errors", "server_errors", "throttled"):
            v = p.get(o, 0) or 0
            if v <= 0:
                continue
            bh = ph * v / ymax
            y -= bh
            out.append(
                f'<rect x="{x + bw * 0.1:.1f}" y="{y:.1f}" width="{max(bw * 0.8, 1):.1f}" '
                f'height="{bh:.1f}" fill="{COLORS[o]}"><title>{_e(labels[i])}: '
                f"{v:,} {LABELS[o]}</title></rect>"
            )
    step = max(1, len(points) // 8)
    for i in range(0, len(points), step):
        out.append(
            f'<text x="{left + (i + 0.5) * bw:.1f}" y="{h - 8}" font-size="11" '
            f'text-anchor="middle" fill="#5b6b7c">{_e(labels[i])}</text>'
        )
    out.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLORS[o]}"></i>{LABELS[o]}</span>' for o in COLORS
    )
    return "".join(out) + f'<div class="legend">{legend}</div>'


def lines(
    series: Sequence[tuple[str, Sequence[int]]], labels: Sequence[str], w: int = 1080, h: int = 260
) -> str:
    """One line per consumer over time."""
    if not series or not labels:
        return '<p class="muted">No consumers in this period.</p>'
    left, bottom, top = 64, 28, 10
    pw, ph = w - left - 150, h - bottom - top
    ymax = _nice_max(max((max(v) if v else 0) for _, v in series))
    n = len(labels)
    dx = pw / max(1, n - 1)
    out = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img">']
    for k in range(5):
        y = top + ph - ph * k / 4
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e6eaef"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6b7c">{ymax * k / 4:,.0f}</text>'
        )
    for j, (name, vals) in enumerate(series):
        c = LINE_COLORS[j % len(LINE_COLORS)]
        pts = " ".join(
            f"{left + i * dx:.1f},{top + ph - ph * v / ymax:.1f}" for i, v in enumerate(vals)
        )
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2">'
            f"<title>{_e(name)}</title></polyline>"
        )
        ly = top + 14 + j * 18
        out.append(
            f'<rect x="{left + pw + 14}" y="{ly - 9}" width="10" height="10" fill="{c}"/>'
            f'<text x="{left + pw + 30}" y="{ly}" font-size="12">{_e(name[:18])}</text>'
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        out.append(
            f'<text x="{left + i * dx:.1f}" y="{h - 8}" font-size="11" '
            f'text-anchor="middle" fill="#5b6b7c">{_e(labels[i])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def hbars(items: Sequence[tuple[str, int, str]], w: int = 520) -> str:
    """Horizontal bars: (label, value, color)."""
    if not items:
        return '<p class="muted">None.</p>'
    vmax = max(v for _, v, _ in items) or 1
    row = 22
    h = row * len(items) + 6
    out = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" style="max-width:{w}px">']
    for i, (label, v, c) in enumerate(items):
        y = 4 + i * row
        bw = (w - 230) * v / vmax
        out.append(
            f'<text x="0" y="{y + 14}" font-size="12">{_e(label[:28])}</text>'
            f'<rect x="170" y="{y + 3}" width="{max(bw, 1):.1f}" height="14" fill="{c}" '
            f'rx="2"/><text x="{176 + bw:.1f}" y="{y + 14}" font-size="12" '
            f'fill="#5b6b7c">{v:,}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{_e(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            if k.endswith("_rate"):
                cells.append(f"<td>{_pct(v)}</td>")
            elif k == "growth":
                cells.append(f"<td>{_growth(v)}</td>")
            else:
                cells.append(f"<td>{_num(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kpis(t: dict[str, Any]) -> str:
    items = [
        ("requests", _num(t.get("requests"))),
        ("success rate", _pct(t["successes"] / t["requests"]) if t.get("requests") else "–"),
        ("error rate", _pct(t.get("error_rate"))),
        ("throttle rate", _pct(t.get("throttle_rate"))),
        ("p95 latency", f"{_num(t.get('p95_ms'))} ms"),
    ]
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><span>{k}</span><b>{v}</b></div>' for k, v in items)
        + "</div>"
    )


def _page(title: str, subtitle: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{CSS}</style></head><body><header><h1>{_e(title)}</h1><p>"
        f"{_e(subtitle)}</p></header><main>{body}</main></body></html>\n"
    )


def _scope_text(doc: dict[str, Any]) -> str:
    f = ", ".join(f"{k} {v}" for k, v in doc["filters"].items())
    return f"{doc['from']} → {doc['to']}" + (f" · {f}" if f else "")


def _short(at: str | None, daily: bool) -> str:
    if not at:
        return ""
    return at[5:10] if daily else at[11:16]


def report_html(doc: dict[str, Any]) -> str:
    labels = [_short(s["at"], True) for s in doc["series"]]
    codes = [
        (
            f"{c['error_code']}",
            c["requests"],
            COLORS["throttled"]
            if c["throttled"] >= c["requests"] / 2
            else COLORS["server_errors"]
            if c["server_errors"] >= c["requests"] / 2
            else COLORS["client_errors"],
        )
        for c in doc["error_codes"][:12]
    ]
    mix = [(LABELS[o], doc["total"][o], COLORS[o]) for o in COLORS]
    growth = [
        (c["application"] or c["application_id"], c["requests"])
        for c in doc["growth_series"]["consumers"]
    ]
    body = _kpis(doc["total"])
    body += (
        f"<section><h2>Traffic over time (per {doc['bucket_days']} day"
        f"{'s' if doc['bucket_days'] > 1 else ''})</h2>"
        f"{stacked_bars(doc['series'], labels)}</section>"
    )
    body += (
        '<div class="grid"><section><h2>Outcome mix</h2>' + hbars(mix) + "</section>"
        "<section><h2>Error and throttle codes (WSO2)</h2>" + hbars(codes) + "</section></div>"
    )
    body += (
        "<section><h2>Growth of the busiest consumers (requests per bucket)</h2>"
        f"{lines(growth, labels)}</section>"
    )
    cols = [
        ("application", "application"),
        ("application_id", "id"),
        ("requests", "requests"),
        ("growth", "growth"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
        ("p95_ms", "p95 ms"),
    ]
    body += f"<section><h2>Top consumers</h2>{_table(doc['consumers'], cols)}</section>"
    cols = [
        ("api", "API"),
        ("api_version", "version"),
        ("requests", "requests"),
        ("growth", "growth"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
    ]
    body += f"<section><h2>APIs</h2>{_table(doc['apis'], cols)}</section>"
    cols = [
        ("application", "application"),
        ("application_id", "id"),
        ("api", "API"),
        ("api_version", "version"),
        ("requests_before", "requests before"),
    ]
    body += (
        f"<section><h2>Dormant subscriptions (no request in the last "
        f"{doc['dormant_after_days']} days)</h2>"
        f"{_table(doc['dormant_subscriptions'], cols)}</section>"
    )
    cols = [("api", "API"), ("api_version", "version"), ("requests_before", "requests before")]
    body += f"<section><h2>Retired APIs</h2>{_table(doc['retired_apis'], cols)}</section>"
    return _page("vigie — usage report", _scope_text(doc), body)


def autopsy_html(doc: dict[str, Any]) -> str:
    daily = doc["bucket_seconds"] >= 86_400
    labels = [_short(s["at"], daily) for s in doc["timeline"]]
    body = _kpis(doc["total"])
    body += (
        f"<section><h2>Timeline (per {doc['bucket_seconds'] // 60} min)</h2>"
        f"{stacked_bars(doc['timeline'], labels)}</section>"
    )
    codes = [
        (f"{c['status']} / {c['error_code'] or '-'}", c["requests"], COLORS[c["outcome"]])
        for c in doc["codes"][:14]
    ]
    body += f"<section><h2>Status / WSO2 error code</h2>{hbars(codes)}</section>"
    cols = [
        ("application", "application"),
        ("application_id", "id"),
        ("requests", "requests"),
        ("client_errors", "4xx"),
        ("server_errors", "5xx"),
        ("throttled", "throttled"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
    ]
    body += (
        f"<section><h2>Consumers involved ({doc['consumers_involved']})</h2>"
        f"{_table(doc['consumers'], cols)}</section>"
    )
    cols = [
        ("api", "API"),
        ("method", "method"),
        ("resource", "resource"),
        ("requests", "requests"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
        ("p95_ms", "p95 ms"),
    ]
    body += f"<section><h2>Resources</h2>{_table(doc['resources'], cols)}</section>"
    cols = [
        ("kind", "kind"),
        ("name", "class / directive"),
        ("application_id", "application"),
        ("api", "API"),
        ("from", "from"),
        ("to", "to"),
    ]
    body += (
        f"<section><h2>Classes and directives active then</h2>"
        f"{_table(doc['active'], cols)}</section>"
    )
    return _page("vigie — autopsy", _scope_text(doc), body)
