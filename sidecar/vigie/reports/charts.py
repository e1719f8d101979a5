"""The report's SVG charts: stacked bars, lines and horizontal bars, inline and script-free,
with every label fitted to its room (``fit``) so none is clipped."""

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


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


# average advance of a character of the report's sans-serif font, in ems (digits and lower
# case are ~0.5-0.56, capitals up to 0.72): a label is fitted against this, so it never clips
CHAR_EM: Final = 0.62


def fit(text: str, width_px: float, font_px: float = 12) -> str:
    """SVG text content for ``text`` in ``width_px``: as is when its estimated width fits,
    else cut with an ellipsis and the full text as a tooltip."""
    room = int(width_px / (font_px * CHAR_EM))
    if len(text) <= room:
        return _e(text)
    return f"{_e(text[: max(1, room - 1)])}…<title>{_e(text)}</title>"


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    p = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * p >= v:
            return m * p
    return 10.0 * p


INCOMPLETE_COLOR: Final = "#b03a3a"


def stacked_bars(
    points: Sequence[dict[str, Any] | None],
    labels: Sequence[str],
    w: int = 1080,
    h: int = 260,
    incomplete: Sequence[int] = (),
) -> str:
    """Stacked bars of the four outcomes per time bucket; a bucket without data (None) is a
    hatched gap, not a zero; a bucket whose data was partly dropped (``incomplete``: events
    not stored per bucket, 0: none) has a red band on top of it and says so."""
    if not any(points):
        return '<p class="muted">No traffic in this period.</p>'
    left, bottom, top = 64, 28, 10
    pw, ph = w - left - 10, h - bottom - top
    ymax = _nice_max(max(p["requests"] for p in points if p))
    bw = pw / len(points)
    out = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img">']
    for k in range(5):
        y = top + ph - ph * k / 4
        out.append(
            f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e6eaef"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6b7c">{ymax * k / 4:,.0f}</text>'
        )
    out.append(
        '<defs><pattern id="gap" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f6f9"/>'
        '<line y2="6" stroke="#c3cbd5" stroke-width="2"/></pattern></defs>'
    )
    for i, p in enumerate(points):
        y = top + ph
        x = left + i * bw
        lost = incomplete[i] if i < len(incomplete) else 0
        why = f"data incomplete, {lost:,} events not stored" if lost > 0 else "no data"
        if not p or lost > 0:
            out.append(
                f'<rect x="{x:.1f}" y="{top}" width="{bw:.1f}" height="{ph}" '
                f'fill="{"url(#gap)" if not p else "#fbeaea"}"><title>{_e(labels[i])}: '
                f"{why}</title></rect>"
            )
        if lost > 0:
            out.append(
                f'<rect x="{x:.1f}" y="{top}" width="{bw:.1f}" height="4" '
                f'fill="{INCOMPLETE_COLOR}"/>'
            )
        if not p:
            continue
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
            f'text-anchor="middle" fill="#5b6b7c">{fit(labels[i], bw * step, 11)}</text>'
        )
    out.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLORS[o]}"></i>{LABELS[o]}</span>' for o in COLORS
    )
    if not all(points):
        legend += '<span><i style="background:#c3cbd5"></i>no data</span>'
    if any(v > 0 for v in incomplete):
        legend += f'<span><i style="background:{INCOMPLETE_COLOR}"></i>data incomplete</span>'
    return "".join(out) + f'<div class="legend">{legend}</div>'


def lines(
    series: Sequence[tuple[str, Sequence[int | None]]],
    labels: Sequence[str],
    w: int = 1080,
    h: int = 260,
) -> str:
    """One line per consumer over time, broken where a bucket has no data (None)."""
    if not series or not labels:
        return '<p class="muted">No growing consumer in this period.</p>'
    left, bottom, top = 64, 28, 10
    pw, ph = w - left - 190, h - bottom - top
    ymax = _nice_max(max((v or 0) for _, vals in series for v in [0, *vals]))
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
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vals):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{left + i * dx:.1f},{top + ph - ph * v / ymax:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{c}"/>')
            elif run:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{c}" '
                    f'stroke-width="2"><title>{_e(name)}</title></polyline>'
                )
        ly = top + 14 + j * 18
        out.append(
            f'<rect x="{left + pw + 14}" y="{ly - 9}" width="10" height="10" fill="{c}"/>'
            f'<text x="{left + pw + 30}" y="{ly}" font-size="12">'
            f"{fit(name, w - left - pw - 34, 12)}</text>"
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        out.append(
            f'<text x="{left + i * dx:.1f}" y="{h - 8}" font-size="11" '
            f'text-anchor="middle" fill="#5b6b7c">{fit(labels[i], dx * step, 11)}</text>'
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
            f'<text x="0" y="{y + 14}" font-size="12">{fit(label, 164, 12)}</text>'
            f'<rect x="170" y="{y + 3}" width="{max(bw, 1):.1f}" height="14" fill="{c}" '
            f'rx="2"/><text x="{176 + bw:.1f}" y="{y + 14}" font-size="12" '
            f'fill="#5b6b7c">{v:,}</text>'
        )
    out.append("</svg>")
    return "".join(out)
