"""Every figure of ``vigie status`` that says whether vigie's figures are whole (what was
refused, evicted or missed, the state's rows, memory and strings, a gateway's clock) is
exported, with the value the status shows (a real State that evicted, the real builder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.unit.export.test_export_evict import _full_table
from tests.unit.export.test_export_series import FakeSidecar, metric
from vigie.export import _catalogue as C
from vigie.export._builder import Builder
from vigie.export._collect import collect
from vigie.export._points import Batch, NumberPoints, attrs_of
from vigie.state import layout as L
from vigie.v1 import telemetry_pb2 as tpb

# the words of the counters ``vigie status`` prints on its "refused / dropped" line
LOST = ("refused", "evicted", "stream_events_missed")


@dataclass
class Hello:
    gateway_id: str
    channel: str = "main"
    tenant: str = ""


@dataclass
class Stream:
    hello: Hello
    report: Any = None
    refused: int = 0
    clock_skew_us: int | None = None


def _values(batch: Batch, spec: C.MetricSpec) -> dict[frozenset[tuple[str, Any]], float]:
    p = metric(batch, spec)
    assert isinstance(p, NumberPoints)
    return {frozenset(a.items()): float(v) for a, v in zip(attrs_of(p), p.values, strict=True)}


def _exported(batch: Batch, name: str) -> float:
    """The exported value of status counter ``name`` (the naive map of the catalogue)."""
    kind, _, cause = name.partition(":")
    if kind in ("batch_refused", "stream_refused"):
        spec, attrs = C.INGEST_REFUSED, {"vigie.refusal.cause": name}
    elif name == "event_refused:future":
        spec, attrs = C.INGEST_DROPPED, {"vigie.drop.source": "sidecar", "vigie.drop.reason": cause}
    elif name == "stream_events_missed":
        spec, attrs = (
            C.INGEST_DROPPED,
            {"vigie.drop.source": "sidecar", "vigie.drop.reason": "missed"},
        )
    elif kind in ("fleet_refused", "admin_refused"):
        spec = C.FLEET_REFUSED if kind == "fleet_refused" else C.ADMIN_REFUSED
        attrs = {"vigie.refusal.cause": cause}
    else:
        table = {
            "evicted_subscriptions": "subscription",
            "api_rows_evicted": "api",
            "route_rows_evicted": "route",
            "security_evicted_rows": "security",
        }[name]
        spec, attrs = C.ROWS_EVICTED, {"vigie.table": table}
    return _values(batch, spec)[frozenset(attrs.items())]


def test_every_refused_evicted_or_missed_status_counter_is_exported_with_its_value() -> None:
    feed = _full_table()
    for k in range(6):  # API evictions, their subscriptions and routes with them
        feed.send([(f"f{k}", f"Flood-{k}")])
    st = feed.state
    sc = FakeSidecar(st)
    sc.counters.update(
        {
            "batch_refused:bad_string": 3,
            "stream_refused:hello_evicted": 2,
            "event_refused:future": 17,
            "stream_events_missed": 6,
            "fleet_refused:decision": 1,
            "admin_refused:invalid_argument": 4,
            "admin_unauthenticated": 5,
            "string_compactions": 9,  # not a loss
        }
    )
    sc.directives.remote_refused = 2
    batch = Builder().build(collect(sc))
    # what Sidecar.status puts together, then what vigie status prints as lost
    shown = dict(sc.counters) | st.counters() | st.security.counters()
    shown["fleet_refused:directive"] = sc.directives.remote_refused
    lost = {k: v for k, v in shown.items() if any(w in k for w in LOST)}
    assert st.counters()["api_rows_evicted"] >= 6 and st.counters()["evicted_subscriptions"] > 0
    assert len(lost) == 11, sorted(lost)  # 7 of the sidecar, 4 of the state
    for name, v in lost.items():
        assert _exported(batch, name) == v, name
    admin = _values(batch, C.ADMIN_REFUSED)
    assert admin[frozenset({("vigie.refusal.cause", "unauthenticated")})] == 5


def test_a_gateways_refusals_and_clock_are_exported_per_gateway() -> None:
    feed = _full_table()
    sc = FakeSidecar(feed.state)
    report = tpb.GatewayReport(directives_rejected=2, quotas_rejected=1)
    sc.streams[1] = Stream(Hello("gw-ahead"), report, refused=17, clock_skew_us=3_600_000_000)
    sc.streams[2] = Stream(Hello("gw-ahead"), None, refused=3)  # a second stream, no report
    sc.streams[3] = Stream(Hello("gw-ok"), None, clock_skew_us=-250_000)
    batch = Builder().build(collect(sc))
    refused = {
        (dict(a)["wso2.gateway.id"], dict(a)["vigie.refusal.cause"]): v
        for a, v in _values(batch, C.GATEWAY_REFUSED).items()
    }
    assert refused == {
        ("gw-ahead", "future"): 20,
        ("gw-ahead", "directive"): 2,
        ("gw-ahead", "quota"): 1,
        ("gw-ok", "future"): 0,
    }
    skew = {dict(a)["wso2.gateway.id"]: v for a, v in _values(batch, C.GATEWAY_CLOCK_SKEW).items()}
    assert skew == {"gw-ahead": 3600.0, "gw-ok": -0.25}


def test_the_states_rows_memory_and_strings_are_exported_as_the_status_shows_them() -> None:
    feed = _full_table()
    feed.send([("late", "Api-2")])
    st = feed.state
    sc = FakeSidecar(st)
    batch = Builder().build(collect(sc))
    rows = {dict(a)["vigie.table"]: v for a, v in _values(batch, C.STATE_ROWS).items()}
    assert rows == {
        "subscription": len(st.sub_rows()),  # Status.subscriptions
        "api": st.n_api_rows,  # Status.apis
        "route": st.n_route_rows,
        "security": st.security.counters()["security_tracked_rows"],
    }
    memory = {dict(a)["vigie.memory"]: v for a, v in _values(batch, C.STATE_MEMORY).items()}
    assert memory == {"used": st.nbytes(), "cap": st.capacity.memory_cap_bytes}
    (held,) = _values(batch, C.STRINGS_HELD).values()
    assert held == st.counters()["strings_held"] == st.interner.live
    (size,) = _values(batch, C.STRINGS_BYTES).values()
    assert size == st.interner.bytes > 0
    late = {dict(a)["vigie.late.for"]: v for a, v in _values(batch, C.INGEST_LATE).items()}
    assert late == {
        "windows": int(st.g[L.G_LATE]),
        "baselines": st.counters()["events_late_for_baselines"],
    }
