"""Every metric vigie exports: OTel name, kind, unit, meaning, attributes.

This tuple is the one list: the exporter builds exactly these, the README lists them, and the
dashboard test derives the Prometheus names of the panels' queries from it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final


class Kind(enum.Enum):
    COUNTER = "counter"  # monotonic sum
    GAUGE = "gauge"  # a current value
    LATENCY = "latency"  # histogram in seconds: exponential (base-2 buckets) or explicit buckets
    HISTOGRAM = "histogram"  # histogram with explicit buckets


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]


API = ("wso2.tenant", "wso2.api.name", "wso2.api.version")  # an API is tenant x name x version
SUBSCRIPTION = ("wso2.application.id", "wso2.application.name", *API)

HTTP_SERVER_DURATION: Final = MetricSpec(
    "http.server.request.duration",
    Kind.LATENCY,
    "s",
    "Duration of HTTP server requests, as the WSO2 gateway measured them.",
    (
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "error.type",
        *API,
        "wso2.channel",
    ),
)
API_REQUESTS: Final = MetricSpec(
    "wso2.api.requests",
    Kind.COUNTER,
    "{request}",
    "Requests per API, version, channel and outcome (success, client_error, server_error, "
    "throttled).",
    (*API, "wso2.channel", "wso2.outcome"),
)
API_THROTTLED: Final = MetricSpec(
    "wso2.api.throttled",
    Kind.COUNTER,
    "{response}",
    "Throttled responses per API, version, channel and WSO2 error code (0: flagged throttled "
    "without a code).",
    (*API, "wso2.channel", "wso2.error.code"),
)
API_ERRORS: Final = MetricSpec(
    "wso2.api.errors",
    Kind.COUNTER,
    "{response}",
    "Responses carrying a WSO2 error code, per API, version, channel, error family and code.",
    (*API, "wso2.channel", "wso2.error.family", "wso2.error.code"),
)
SUBSCRIPTIONS: Final = MetricSpec(
    "vigie.subscriptions",
    Kind.GAUGE,
    "{subscription}",
    "Subscriptions holding each behaviour and health class now (normal: none).",
    ("vigie.class",),
)
APIS: Final = MetricSpec(
    "vigie.apis",
    Kind.GAUGE,
    "{api}",
    "APIs holding each API and health class now (normal: none).",
    ("vigie.class",),
)
SUB_REQUESTS: Final = MetricSpec(
    "vigie.subscription.requests",
    Kind.COUNTER,
    "{request}",
    "Requests of the top-K subscriptions (by traffic and by misbehaviour); the others are "
    "summed under wso2.application.name=other.",
    SUBSCRIPTION,
)
SUB_FAILURES: Final = MetricSpec(
    "vigie.subscription.failures",
    Kind.COUNTER,
    "{request}",
    "Failed requests of the top-K subscriptions by kind (client_error: 4xx but 429, "
    "server_error: 5xx, throttled); the others under other.",
    (*SUBSCRIPTION, "vigie.failure"),
)
SUB_RETRIES: Final = MetricSpec(
    "vigie.subscription.retries",
    Kind.COUNTER,
    "{request}",
    "Requests repeating a failed one within the retry gap, top-K subscriptions; the others "
    "under other.",
    SUBSCRIPTION,
)
SUB_CLASSES: Final = MetricSpec(
    "vigie.subscription.classes",
    Kind.GAUGE,
    "{class}",
    "1 for each behaviour or health class a top-K subscription holds now.",
    (*SUBSCRIPTION, "vigie.class"),
)
DIRECTIVES_ACTIVE: Final = MetricSpec(
    "vigie.directives.active",
    Kind.GAUGE,
    "{directive}",
    "Directives in force, by mode (shadow, enforce) and action (block, limit).",
    ("vigie.directive.mode", "vigie.directive.action"),
)
DIRECTIVE_HITS: Final = MetricSpec(
    "vigie.directive.hits",
    Kind.COUNTER,
    "{request}",
    "Requests a directive matched, as the gateways report them: shadow (would have been "
    "refused), enforced (refused), passed.",
    ("vigie.directive.id", "vigie.directive.result"),
)
INGEST_EVENTS: Final = MetricSpec(
    "vigie.ingest.events",
    Kind.COUNTER,
    "{event}",
    "Request events applied to the state.",
    (),
)
INGEST_DROPPED: Final = MetricSpec(
    "vigie.ingest.dropped",
    Kind.COUNTER,
    "{event}",
    "Request events lost: by the sidecar (without_api; future: dated more than "
    "max_clock_skew_seconds ahead of its clock, refused; missed: a fleet restart's gap) or "
    "reported lost by a gateway (queue_full, disconnected, send_failed, other).",
    ("vigie.drop.source", "vigie.drop.reason", "wso2.gateway.id"),
)
INGEST_REFUSED: Final = MetricSpec(
    "vigie.ingest.refused",
    Kind.COUNTER,
    "{refusal}",
    "Gateway batches and streams the sidecar refused, by cause.",
    ("vigie.refusal.cause",),
)
GATEWAY_EVENTS: Final = MetricSpec(
    "vigie.gateway.events",
    Kind.COUNTER,
    "{event}",
    "Events a connected gateway reports offered to its queue and sent to the sidecar.",
    ("wso2.gateway.id", "vigie.gateway.stage"),
)
GATEWAY_REFUSED: Final = MetricSpec(
    "vigie.gateway.refused",
    Kind.COUNTER,
    "{refusal}",
    "What was refused on a connected gateway's stream, by cause: future (its events the "
    "sidecar refused, dated more than max_clock_skew_seconds ahead of its clock), directive "
    "(directive upserts the gateway rejected), quota (local quotas it rejected).",
    ("wso2.gateway.id", "vigie.refusal.cause"),
)
FLEET_REFUSED: Final = MetricSpec(
    "vigie.fleet.refused",
    Kind.COUNTER,
    "{change}",
    "Changes a fleet peer sent that this instance refused, by cause: decision (a suggestion's "
    "decision it could not read), directive (a directive that failed validation).",
    ("vigie.refusal.cause",),
)
ADMIN_REFUSED: Final = MetricSpec(
    "vigie.admin.refused",
    Kind.COUNTER,
    "{request}",
    "Admin requests (the CLI's) refused, by cause; unauthenticated: without a valid token.",
    ("vigie.refusal.cause",),
)
GATEWAY_CLOCK_SKEW: Final = MetricSpec(
    "vigie.gateway.clock.skew",
    Kind.GAUGE,
    "s",
    "A connected gateway's clock minus the sidecar's, as its stream's hello said (its events "
    "dated more than max_clock_skew_seconds ahead are refused).",
    ("wso2.gateway.id",),
)
INGEST_LATE: Final = MetricSpec(
    "vigie.ingest.late",
    Kind.COUNTER,
    "{event}",
    "Events applied late: before the windows (vigie.late.for=windows: counted in the totals "
    "only) or over 15 minutes late (baselines: in no health window).",
    ("vigie.late.for",),
)
ROWS_EVICTED: Final = MetricSpec(
    "vigie.rows.evicted",
    Kind.COUNTER,
    "{row}",
    "State rows evicted to stay under memory_cap_bytes and the capacity limits, coldest "
    "first, by table: subscription (alone or with their API), api, route (into route 0 or "
    "with their API), security (auth_failing rows).",
    ("vigie.table",),
)
STATE_ROWS: Final = MetricSpec(
    "vigie.state.rows",
    Kind.GAUGE,
    "{row}",
    "State rows in use, by table (subscription, api, route, security).",
    ("vigie.table",),
)
STATE_MEMORY: Final = MetricSpec(
    "vigie.state.memory",
    Kind.GAUGE,
    "By",
    "Bytes of the state's arrays (vigie.memory=used) and memory_cap_bytes (cap), as vigie "
    "status shows them.",
    ("vigie.memory",),
)
STRINGS_HELD: Final = MetricSpec(
    "vigie.strings.held",
    Kind.GAUGE,
    "{string}",
    "Strings the sidecar holds (application ids, API names, resources, ...; max_strings "
    "bounds them).",
    (),
)
STRINGS_BYTES: Final = MetricSpec(
    "vigie.strings.bytes",
    Kind.GAUGE,
    "By",
    "Bytes of the strings the sidecar holds (max_string_bytes bounds them).",
    (),
)
DATA_DROPPED: Final = MetricSpec(
    "vigie.data.dropped",
    Kind.COUNTER,
    "{record}",
    "What the data store lost, as vigie status reports it: events not folded into the rollups "
    "(vigie.drop.reason=rollup_events, its queue was full) and unwritten rows dropped over its "
    "memory cap (minute_rows, daily_rows, sub_daily_rows, sub_monthly_rows, changes_rows).",
    ("vigie.drop.reason",),
)
DATA_DEGRADED: Final = MetricSpec(
    "vigie.data.degraded",
    Kind.GAUGE,
    "{store}",
    "1 while the data store cannot write (rows are kept in memory, up to its cap), else 0.",
    (),
)
ROUTE_OVERFLOW: Final = MetricSpec(
    "vigie.routes.overflow",
    Kind.COUNTER,
    "{event}",
    "Events whose route did not fit the route table (counted under http.route=_OTHER).",
    (),
)
EXPORT_DURATION: Final = MetricSpec(
    "vigie.export.duration",
    Kind.HISTOGRAM,
    "s",
    "Duration of vigie's export cycles (collect, build, encode, send).",
    (),
)
EXPORT_FAILURES: Final = MetricSpec(
    "vigie.export.failures",
    Kind.COUNTER,
    "{failure}",
    "Export cycles that failed, by error type.",
    ("error.type",),
)
EXPORT_SERIES: Final = MetricSpec(
    "vigie.export.series",
    Kind.GAUGE,
    "{series}",
    "Data points in the previous export.",
    (),
)

METRICS: Final[tuple[MetricSpec, ...]] = (
    HTTP_SERVER_DURATION,
    API_REQUESTS,
    API_THROTTLED,
    API_ERRORS,
    SUBSCRIPTIONS,
    APIS,
    SUB_REQUESTS,
    SUB_FAILURES,
    SUB_RETRIES,
    SUB_CLASSES,
    DIRECTIVES_ACTIVE,
    DIRECTIVE_HITS,
    INGEST_EVENTS,
    INGEST_DROPPED,
    INGEST_REFUSED,
    GATEWAY_EVENTS,
    GATEWAY_REFUSED,
    FLEET_REFUSED,
    ADMIN_REFUSED,
    GATEWAY_CLOCK_SKEW,
    INGEST_LATE,
    ROWS_EVICTED,
    STATE_ROWS,
    STATE_MEMORY,
    STRINGS_HELD,
    STRINGS_BYTES,
    DATA_DROPPED,
    DATA_DEGRADED,
    ROUTE_OVERFLOW,
    EXPORT_DURATION,
    EXPORT_FAILURES,
    EXPORT_SERIES,
)

# Prometheus' default OTLP name translation (translation_strategy UnderscoreEscapingWithSuffixes)
_UNIT_WORDS: Final = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "By": "bytes",
    "1": "",
}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")


def _prom_base(spec: MetricSpec) -> str:
    name = _INVALID.sub("_", spec.name).strip("_")
    name = re.sub(r"__+", "_", name)
    unit = re.sub(r"\{[^}]*\}", "", spec.unit)
    word = _UNIT_WORDS.get(unit, _INVALID.sub("_", unit).strip("_"))
    if spec.unit == "1" and spec.kind is Kind.GAUGE:
        word = "ratio"
    if word and not name.endswith("_" + word):
        name = f"{name}_{word}"
    return name


def prometheus_names(spec: MetricSpec, histogram: str = "exponential") -> tuple[str, ...]:
    """The series names Prometheus stores for ``spec`` when it receives it over OTLP
    (``histogram``: how latency histograms are exported, exponential or explicit)."""
    base = _prom_base(spec)
    if spec.kind is Kind.COUNTER:
        return (base + "_total",)
    if spec.kind is Kind.GAUGE:
        return (base,)
    if spec.kind is Kind.LATENCY and histogram == "exponential":
        return (base,)  # a native histogram
    return (base + "_bucket", base + "_count", base + "_sum")


def all_prometheus_names(histogram: str = "exponential") -> frozenset[str]:
    """Every series name vigie's export produces in Prometheus."""
    return frozenset(n for spec in METRICS for n in prometheus_names(spec, histogram))
