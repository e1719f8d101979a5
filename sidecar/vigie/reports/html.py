"""A report or an autopsy as one self-contained HTML file: inline CSS and SVG charts, no
script, no fetch, so it opens anywhere and mails as one attachment."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from vigie.reports.charts import COLORS, LABELS, hbars, lines, stacked_bars
from vigie.state.codes import error_family

# what the WSO2 4.x throttle codes mean, short enough for a chart label (WSO2.md)
CODE_NAMES: Final = {
    900800: "API limit",
    900801: "hard limit",
    900802: "resource limit",
    900803: "app. limit",
    900804: "subscription",
    900805: "blocked",
    900806: "custom policy",
    900807: "burst",
    900808: "connections",
    900809: "app. burst",
}


def code_label(code: int) -> str:
    """``900803 app. limit``, ``101503 backend``: a code and what it is."""
    name = CODE_NAMES.get(code) or error_family(code)
    return f"{code} {name}" if name and name != "other" else str(code)


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
th,td{padding:5px 8px;border-bottom:1px solid #e6eaef;text-align:right;white-space:nowrap}
td.l,th.l{white-space:normal}
th{color:#5b6b7c;font-weight:600;background:#fafbfc}
td:first-child,th:first-child,td.l,th.l{text-align:left}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.muted{color:#5b6b7c}
.up{color:#2d7d46}.down{color:#b03a3a}
.banner{background:#fbeaea;border:1px solid #b03a3a;border-left:6px solid #b03a3a;
border-radius:8px;padding:12px 18px;margin-bottom:18px;color:#5c1d1d}
.banner b{color:#b03a3a}
.banner ul{margin:6px 0 0;padding-left:20px}
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


def _growth(v: float | None, new: bool = False) -> str:
    if new:
        return '<span class="up" title="under the growth floor before, traffic now">new</span>'
    if v is None:
        return '<span class="muted">–</span>'
    cls = "up" if v > 0 else "down" if v < 0 else ""
    return f'<span class="{cls}">{"+" if v > 0 else ""}{100 * v:.0f} %</span>'


LEFT: Final = (
    "application",
    "application_id",
    "api",
    "channel",
    "name",
    "who",
    "evidence",
    "from",
    "to",
    "owner",
    "tenant",
    "class",
    "action",
    "decision",
    "proposed",
    "decided",
    "summary",
    "mode",
    "busiest_application",
)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(
        f'<th class="l">{_e(t)}</th>' if k in LEFT else f"<th>{_e(t)}</th>" for k, t in cols
    )
    body = []
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            if k.endswith("_rate"):
                cells.append(f"<td>{_pct(v)}</td>")
            elif k == "growth":
                cells.append(f"<td>{_growth(v, bool(r.get('new')))}</td>")
            elif k in LEFT:
                cells.append(f'<td class="l">{_e(v)}</td>')
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
    if doc["kind"] == "report":  # whole days: the dates say it
        span = f"{doc['from'][:10]} → {doc['to'][:10]} ({doc['days']} days, UTC)"
    else:
        span = f"{doc['from'][:19].replace('T', ' ')} → {doc['to'][:19].replace('T', ' ')} UTC"
    return span + (f" · {f}" if f else "")


def _short(at: str | None, daily: bool) -> str:
    if not at:
        return ""
    return at[5:10] if daily else at[11:16]


def _episode_rows(eps: Sequence[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [
        e
        | {
            "who": e["application"] or e["application_id"] or "(every consumer)",
            "api": " ".join(x for x in (e["api"], e["api_version"]) if x) or "(every API)",
            "from": (e["from"] or "")[:16].replace("T", " "),
            "to": (e["to"] or "")[:16].replace("T", " ") or "ongoing",
        }
        for e in eps
        if e["kind"] in kinds
    ]


def _brief(doc: dict[str, Any]) -> str:
    """The period in a few sentences, for whoever reads no further."""
    eps = doc["episodes"]
    classes = Counter(e["name"] for e in eps if e["kind"] in ("class", "api_class"))
    directives = [e for e in eps if e["kind"] == "directive"]
    refused = sum(e.get("refused") or 0 for e in directives)
    states = Counter(s["state"] for s in doc["suggestions"])
    growers = doc["growth_series"]["consumers"]
    items = []
    if classes:
        items.append(
            "Behaviour classes: "
            + ", ".join(f"{n} × {c}" for c, n in sorted(classes.items(), key=lambda x: -x[1]))
            + "."
        )
    if doc["suggestions"]:
        items.append(
            f"{len(doc['suggestions'])} suggestion{'s' if len(doc['suggestions']) > 1 else ''}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(states.items()))
            + "."
        )
    if directives:
        items.append(
            f"{len(directives)} directive{'s' if len(directives) > 1 else ''}; {refused:,} "
            "requests refused in their scope."
        )
    if growers:
        g = growers[0]
        how = "new" if g["new"] else f"+{100 * (g['growth'] or 0):.0f} %"
        items.append(f"Fastest grower: {g['application'] or g['application_id']} ({how}).")
    if doc["missing_buckets"]:
        items.append(f"{len(doc['missing_buckets'])} day(s) without any data (drawn as gaps).")
    if not items:
        return ""
    return (
        "<section><h2>In brief</h2><ul>"
        + "".join(f"<li>{_e(i)}</li>" for i in items)
        + "</ul></section>"
    )


def _us(at: str) -> int:
    return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1_000_000)


def incomplete_banner(doc: dict[str, Any]) -> str:
    """The "data incomplete" banner (``reports.incomplete``) at the top of the page: the
    periods whose rollups were dropped, and what it means for the figures."""
    periods = doc.get("incomplete") or []
    if not periods:
        return ""
    total = sum(int(p["events"]) for p in periods)
    items = "".join(
        f"<li>{_e(p['from'][:16].replace('T', ' '))} → {_e(p['to'][:16].replace('T', ' '))}"
        f" UTC: {int(p['events']):,} events not stored</li>"
        for p in periods[:10]
    )
    more = f"<li>and {len(periods) - 10} more periods</li>" if len(periods) > 10 else ""
    return (
        f'<div class="banner" role="alert"><b>Data incomplete:</b> {total:,} events of this '
        "span were not stored (the data writer could not keep up); the figures of these "
        f"periods are low (marked in red on the charts).<ul>{items}{more}</ul></div>"
    )


def lost_per_bucket(doc: dict[str, Any], starts: Sequence[str | None], width_us: int) -> list[int]:
    """The events not stored in each bucket ``[start, start + width_us)``: a drop period's
    events spread over the buckets it overlaps, pro rata of the time (at least 1 in each)."""
    out = [0] * len(starts)
    for p in doc.get("incomplete") or []:
        lo, hi, n = _us(p["from"]), _us(p["to"]), int(p["events"])
        span = max(hi - lo, 1)
        for i, at in enumerate(starts):
            if not at:
                continue
            b0 = _us(at)
            overlap = min(hi, b0 + width_us) - max(lo, b0)
            if overlap > 0 or (lo == hi and b0 <= lo < b0 + width_us):
                out[i] += max(1, round(n * max(overlap, 0) / span))
    return out


def report_html(doc: dict[str, Any]) -> str:
    axis = doc["growth_series"]["at"]
    by_at = {s["at"]: s for s in doc["series"]}
    points = [by_at.get(at) for at in axis]
    labels = [_short(at, True) for at in axis]
    codes = [
        (
            code_label(int(c["error_code"])),
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
    lost = lost_per_bucket(doc, axis, int(doc["bucket_days"]) * 86_400_000_000)
    body = incomplete_banner(doc) + _kpis(doc["total"]) + _brief(doc)
    body += (
        f"<section><h2>Traffic over time (per {doc['bucket_days']} day"
        f"{'s' if doc['bucket_days'] > 1 else ''})</h2>"
        f"{stacked_bars(points, labels, incomplete=lost)}"
        + (
            f'<p class="muted">{len(doc["missing_buckets"])} bucket(s) without any data '
            "(no rollup received: a gap, not a quiet day).</p>"
            if doc["missing_buckets"]
            else ""
        )
        + "</section>"
    )
    cols = [
        ("name", "class"),
        ("who", "who"),
        ("api", "API"),
        ("from", "since"),
        ("to", "until"),
        ("evidence", "evidence"),
    ]
    body += (
        "<section><h2>Behaviour classes of the period</h2>"
        f"{_table(_episode_rows(doc['episodes'], 'class', 'api_class'), cols)}</section>"
    )
    cols = [
        ("who", "who"),
        ("class", "class"),
        ("action", "suggestion"),
        ("decision", "decision"),
        ("proposed", "proposed"),
        ("decided", "decided"),
        ("summary", "what vigie proposed"),
    ]
    note = doc.get("suggestions_note") or (
        ""
        if doc["suggestions"]
        else "No suggestion book was read for this report "
        "(--suggestions DIR, or a --store inside a sidecar's state directory)."
    )
    body += (
        "<section><h2>Suggestions and their decisions</h2>"
        f"{_table(doc['suggestions'], cols)}"
        + (f'<p class="muted">{_e(note)}</p>' if note else "")
        + "</section>"
    )
    cols = [
        ("name", "directive"),
        ("who", "who"),
        ("api", "API"),
        ("mode", "mode"),
        ("from", "since"),
        ("to", "until"),
        ("refused", "refused"),
        ("scope_requests", "requests in scope"),
        ("evidence", "what"),
    ]
    body += (
        "<section><h2>Directives enforced and their effect</h2>"
        f"{_table(_episode_rows(doc['episodes'], 'directive'), cols)}"
        '<p class="muted">refused: requests of its scope answered with its code (900805 block, '
        "900806 limit) on the days it was active — WSO2's own deny and custom policies answer "
        "the same codes.</p></section>"
    )
    body += (
        '<div class="grid"><section><h2>Outcome mix</h2>' + hbars(mix) + "</section>"
        "<section><h2>Error and throttle codes (WSO2)</h2>" + hbars(codes) + "</section></div>"
    )
    body += (
        "<section><h2>The fastest growers (requests per bucket; ranked by the increase of "
        "their median day, second half of the period over the first)</h2>"
        f"{lines(growth, labels)}</section>"
    )
    cols = [
        ("application", "application"),
        ("owner", "owner"),
        ("requests", "requests"),
        ("growth", "growth"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
        ("p95_ms", "p95 ms"),
    ]
    body += f"<section><h2>Top consumers</h2>{_table(doc['consumers'], cols)}</section>"
    cols = [
        ("owner", "owner"),
        ("applications", "applications"),
        ("requests", "requests"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
        ("classes", "class episodes"),
        ("suggestions", "suggestions"),
        ("busiest_application", "busiest application"),
    ]
    body += f"<section><h2>Per owner</h2>{_table(doc['owners'], cols)}</section>"
    if doc["tenants"]:
        cols = [("tenant", "tenant"), ("requests", "requests"), ("errors", "errors"),
                ("throttled", "throttled")]  # fmt: skip
        body += (
            f"<section><h2>Per tenant</h2>{_table(doc['tenants'], cols)}"
            f'<p class="muted">tenants from {_e(doc["tenant_source"])}.</p></section>'
        )
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
        ("channel", "channel"),
        ("requests", "requests"),
        ("error_rate", "errors"),
        ("throttle_rate", "throttled"),
    ]
    body += f"<section><h2>Per channel</h2>{_table(doc['channels'], cols)}</section>"
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
    starts = [s["at"] for s in doc["timeline"]]
    lost = lost_per_bucket(doc, starts, int(doc["bucket_seconds"]) * 1_000_000)
    body = incomplete_banner(doc) + _kpis(doc["total"])
    body += (
        f"<section><h2>Timeline (per {doc['bucket_seconds'] // 60} min)</h2>"
        f"{stacked_bars(doc['timeline'], labels, incomplete=lost)}</section>"
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
