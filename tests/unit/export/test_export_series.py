"""The export's figures against naive counts of the same events (a real State, real kernels)."""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from vigie.classify import views
from vigie.directives.table import DirectiveTable
from vigie.export import _catalogue as C
from vigie.export._builder import Builder
from vigie.export._collect import collect
from vigie.export._points import (
    DELTA,
    Batch,
    ExpHistogramPoints,
    HistogramPoints,
    NumberPoints,
    attrs_of,
)
from vigie.export._series import BuildOptions, error_family
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.state.thresholds import CLASS_NAMES, HEALTH_CLASS_NAMES
from vigie.wire.columns import COLUMN_NAMES, ENGINE_DTYPES, Events, method_number

T0 = 1_700_000_000_000_000  # event time origin (us)


def events(state: State, rows: list[dict[str, Any]]) -> Events:
    """Events from readable records (strings interned in ``state``)."""
    strings = {
        "application_id",
        "application_name",
        "application_owner",
        "api_name",
        "api_version",
        "api_context",
        "resource_template",
        "subscription_tier",
        "tenant",
    }
    cols: dict[str, list[int]] = {n: [] for n in COLUMN_NAMES}
    channel: list[int] = []
    for r in rows:
        for n in COLUMN_NAMES:
            v = r.get(n)
            if n in strings:
                cols[n].append(state.interner.intern(v) if v else 0)
            elif n == "http_method":
                cols[n].append(method_number(v))
            elif v is None:
                cols[n].append(-1 if n in ("request_bytes", "response_bytes") else 0)
            else:
                cols[n].append(int(v))
        channel.append(state.channel_index(r.get("channel", "main")))
    return Events(
        {n: np.array(v, dtype=ENGINE_DTYPES[n]) for n, v in cols.items()},
        np.array(channel, dtype=np.uint8),
    )


@dataclass
class FakeSidecar:
    """The few things the export reads from ``vigie.server.core.Sidecar``."""

    state: State
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counter[str] = field(default_factory=Counter)
    streams: dict[int, Any] = field(default_factory=dict)
    directives: DirectiveTable = field(default_factory=lambda: DirectiveTable(None))
    started_at_us: int = T0
    sidecar_id: str = "test-sidecar"


def random_records(n: int, seed: int = 1, apps: int = 12) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        status = int(rng.choice([200, 201, 304, 400, 401, 404, 429, 500, 503, 0]))
        code = {401: 900901, 429: 900804, 503: 101503, 0: 101504}.get(status, 0)
        if status == 429 and rng.random() < 0.3:
            code = 900807
        out.append(
            {
                "event_time_us": T0 + i * 1000,
                "application_id": f"app-{int(rng.integers(apps))}",
                "application_name": None,
                "api_name": f"Api{int(rng.integers(3))}",
                "api_version": "v1",
                "resource_template": str(rng.choice(["/items", "/items/{id}", ""])),
                "http_method": str(rng.choice(["GET", "POST", "PATCH"])),
                "http_status": status,
                "error_code": code,
                "latency_us": int(rng.choice([0, 3, 950, 12_000, 80_000, 2_500_000])),
                "flags": 1 if (status == 200 and rng.random() < 0.05) else 0,
                "channel": str(rng.choice(["main", "sale"])),
            }
        )
    for r in out:
        r["application_name"] = r["application_id"].replace("app", "name")
    return out


def naive_outcome(r: Mapping[str, Any]) -> str:
    st, code = r["http_status"], r["error_code"]
    if r["flags"] & 1 or 900800 <= code <= 900899:
        return "throttled"
    if st >= 500 or (st < 100 and code):
        return "server_error"
    if 400 <= st < 500:
        return "client_error"
    return "success"


def by_attrs(p: NumberPoints) -> dict[frozenset[tuple[str, Any]], int]:
    return {frozenset(a.items()): int(v) for a, v in zip(attrs_of(p), p.values, strict=True)}


def metric(batch: Batch, spec: C.MetricSpec) -> Any:
    (found,) = [m for m in batch.metrics if m.spec is spec]
    return found


@pytest.fixture
def fed() -> tuple[FakeSidecar, list[dict[str, Any]]]:
    st = State()
    recs = random_records(3000)
    for i, r in enumerate(recs):  # a third of the calls: the same API names in another tenant
        if i % 3 == 0:
            r["tenant"] = "acme.com"
    for k in range(0, len(recs), 300):  # batches: the route table grows between them
        st.apply(events(st, recs[k : k + 300]))
    assert st.g[L.G_ROUTE_OVERFLOW] == 0
    return FakeSidecar(st), recs


# ---------------------------------------------------------------------------------------------
# route rows (the kernel keys them by channel, WSO2 error code and throttling too)
# ---------------------------------------------------------------------------------------------


def test_route_rows_split_by_channel_error_code_and_throttling() -> None:
    st = State()
    base = {
        "application_id": "a",
        "api_name": "Orders",
        "api_version": "v1",
        "resource_template": "/o",
        "http_method": "GET",
        "http_status": 429,
        "latency_us": 1000,
    }
    variants = [
        {"channel": "main", "error_code": 900804, "flags": 1},
        {"channel": "sale", "error_code": 900804, "flags": 1},
        {"channel": "main", "error_code": 900807, "flags": 1},
        {"channel": "main", "error_code": 0, "flags": 0},
        {"channel": "main", "error_code": 0, "flags": 1},
    ]
    recs = [
        base | v | {"event_time_us": T0 + 10 * i + k}
        for i, v in enumerate(variants)
        for k in range(i + 1)
    ]
    st.apply(events(st, recs))
    rows = st.route_i64[1 : st.n_route_rows]
    assert len(rows) == len(variants)
    got = {
        (st.channels[int(r[L.R_CHANNEL])], int(r[L.R_ERROR_CODE]), int(r[L.R_THROTTLED])): int(
            r[L.R_REQ]
        )
        for r in rows
    }
    assert got == {
        ("main", 900804, 1): 1,
        ("sale", 900804, 1): 2,
        ("main", 900807, 1): 3,
        ("main", 0, 0): 4,
        ("main", 0, 1): 5,
    }


def test_routes_grow_before_a_batch_overflows() -> None:
    st = State()
    recs = [
        {
            "event_time_us": T0 + i,
            "application_id": "a",
            "api_name": "Orders",
            "api_version": "v1",
            "resource_template": f"/r{i}",
            "http_method": "GET",
            "http_status": 200,
        }
        for i in range(900)
    ]
    for k in range(0, 900, 300):  # batches of 300 new routes each, over a 1,024-row table
        st.apply(events(st, recs[k : k + 300]))
    assert st.g[L.G_ROUTE_OVERFLOW] == 0
    assert st.n_route_rows == 901


# ---------------------------------------------------------------------------------------------
# per-API figures
# ---------------------------------------------------------------------------------------------


def test_requests_by_api_channel_and_outcome_match_a_naive_count(
    fed: tuple[FakeSidecar, list[dict[str, Any]]],
) -> None:
    sc, recs = fed
    batch = Builder().build(collect(sc))
    want = Counter(
        frozenset(
            {
                "wso2.tenant": r.get("tenant") or "carbon.super",
                "wso2.api.name": r["api_name"],
                "wso2.api.version": "v1",
                "wso2.channel": r["channel"],
                "wso2.outcome": naive_outcome(r),
            }.items()
        )
        for r in recs
    )
    assert by_attrs(metric(batch, C.API_REQUESTS)) == dict(want)
    assert sum(want.values()) == len(recs)


def test_throttled_and_errors_by_wso2_code_match_a_naive_count(
    fed: tuple[FakeSidecar, list[dict[str, Any]]],
) -> None:
    sc, recs = fed
    batch = Builder().build(collect(sc))
    api = ("wso2.tenant", "wso2.api.name", "wso2.api.version", "wso2.channel")

    def key(r: Mapping[str, Any], extra: dict[str, Any]) -> frozenset[tuple[str, Any]]:
        tenant = r.get("tenant") or "carbon.super"
        base = dict(zip(api, (tenant, r["api_name"], "v1", r["channel"]), strict=True))
        return frozenset((base | extra).items())

    throttled = Counter(
        key(r, {"wso2.error.code": r["error_code"]})
        for r in recs
        if naive_outcome(r) == "throttled"
    )
    errors = Counter(
        key(
            r,
            {
                "wso2.error.code": r["error_code"],
                "wso2.error.family": error_family(r["error_code"]),
            },
        )
        for r in recs
        if r["error_code"]
    )
    assert by_attrs(metric(batch, C.API_THROTTLED)) == dict(throttled)
    assert by_attrs(metric(batch, C.API_ERRORS)) == dict(errors)
    assert error_family(900804) == "throttling"
    assert error_family(900901) == "authentication"
    assert error_family(101503) == "backend"
    assert error_family(303001) == "backend"


def _semconv_attrs(r: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    a: dict[str, Any] = {"http.request.method": r["http_method"]}
    if r["http_method"] not in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        a["http.request.method"] = "_OTHER"
    if r["resource_template"]:
        a["http.route"] = r["resource_template"]
    if r["http_status"]:
        a["http.response.status_code"] = r["http_status"]
    if r["http_status"] >= 500:
        a["error.type"] = str(r["http_status"])
    elif r["http_status"] < 100 and r["error_code"]:
        a["error.type"] = str(r["error_code"])
    a["wso2.tenant"] = r.get("tenant") or "carbon.super"
    a["wso2.api.name"] = r["api_name"]
    a["wso2.api.version"] = "v1"
    a["wso2.channel"] = r.get("channel", "main")  # the dashboard's channel filter (issue 13)
    return frozenset(a.items())


def test_request_duration_is_the_exact_base2_histogram_of_the_latencies(
    fed: tuple[FakeSidecar, list[dict[str, Any]]],
) -> None:
    sc, recs = fed
    batch = Builder().build(collect(sc))
    p = metric(batch, C.HTTP_SERVER_DURATION)
    assert isinstance(p, ExpHistogramPoints)
    assert (p.scale, p.index0) == (3, -136)
    want: dict[frozenset[tuple[str, Any]], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "sum": 0.0, "zero": 0, "buckets": Counter()}
    )
    for r in recs:
        w = want[_semconv_attrs(r)]
        w["count"] += 1
        s = r["latency_us"] / 1e6
        w["sum"] += s
        if s == 0:
            w["zero"] += 1
        else:  # OTLP scale 3: bucket i holds (2^(i/8), 2^((i+1)/8)]
            i = math.ceil(math.log2(s) * 8) - 1
            assert 2 ** (i / 8) < s <= 2 ** ((i + 1) / 8)
            w["buckets"][max(i, -136)] += 1
    got = {}
    for i, attrs in enumerate(attrs_of(p)):
        row = p.buckets[i]
        got[frozenset(attrs.items())] = {
            "count": int(p.count[i]),
            "sum": round(float(p.sum[i]), 6),
            "zero": int(p.zero[i]),
            "buckets": Counter({p.index0 + j: int(c) for j, c in enumerate(row) if c}),
        }
    for w in want.values():
        w["sum"] = round(w["sum"], 6)
    assert got == dict(want)


def test_explicit_buckets_count_each_latency_at_most_one_base2_bucket_high() -> None:
    st = State()
    rng = np.random.default_rng(5)
    lat = rng.lognormal(math.log(30_000), 1.2, size=4000).astype(np.int64) + 1
    recs = [
        {
            "event_time_us": T0 + i,
            "application_id": "a",
            "api_name": "A",
            "api_version": "v1",
            "http_method": "GET",
            "http_status": 200,
            "latency_us": int(v),
        }
        for i, v in enumerate(lat)
    ]
    st.apply(events(st, recs))
    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 2**-3, 1.0)  # 2^-3 and 1 are base-2 bounds
    b = Builder(BuildOptions(histogram="explicit", bounds=bounds))
    p = metric(b.build(collect(FakeSidecar(st))), C.HTTP_SERVER_DURATION)
    assert isinstance(p, HistogramPoints)
    assert list(p.bounds) == list(bounds)
    cum = np.cumsum(p.buckets[0])
    assert cum[-1] == len(lat) == p.count[0]
    s = lat / 1e6
    for j, bound in enumerate(bounds):
        le = int((s <= bound).sum())
        below = int((s <= bound / 2 ** (1 / 8)).sum())
        assert below <= cum[j] <= le
        if bound in (2**-3, 1.0):
            assert cum[j] == le  # aligned with the base-2 buckets: exact


# ---------------------------------------------------------------------------------------------
# per-subscription series: top-K and other
# ---------------------------------------------------------------------------------------------


def _values(p: NumberPoints, key: str = "wso2.application.name") -> dict[str, int]:
    out: dict[str, int] = Counter()
    for a, v in zip(attrs_of(p), p.values, strict=True):
        out[str(a[key])] += int(v)
    return dict(out)


def _traffic(st: State, weights: dict[str, int], t: int) -> None:
    recs: list[dict[str, Any]] = []
    for app, n in weights.items():
        for k in range(n):
            recs.append(
                {
                    "event_time_us": t + k,
                    "application_id": app,
                    "application_name": app.upper(),
                    "api_name": "A",
                    "api_version": "v1",
                    "http_method": "GET",
                    "http_status": 200,
                    "latency_us": 1000,
                    "uri_hash": len(recs) + 1,  # distinct reads: not redundant
                }
            )
    recs.sort(key=lambda r: r["event_time_us"])
    st.apply(events(st, recs))


def test_top_k_subscriptions_and_other_add_up_to_the_traffic() -> None:
    st = State()
    weights = {f"app{i}": 10 * (i + 1) for i in range(12)}
    _traffic(st, weights, T0)
    sc = FakeSidecar(st)
    p = metric(Builder(BuildOptions(top_k=3)).build(collect(sc)), C.SUB_REQUESTS)
    got = _values(p)
    assert set(got) == {"APP11", "APP10", "APP9", "other"}
    assert got["APP11"] == 120
    assert sum(got.values()) == sum(weights.values())
    only_other = metric(Builder(BuildOptions(top_k=0)).build(collect(sc)), C.SUB_REQUESTS)
    assert _values(only_other) == {"other": sum(weights.values())}


def test_other_never_goes_down_when_the_top_k_changes() -> None:
    st = State()
    sc = FakeSidecar(st)
    b = Builder(BuildOptions(top_k=2))
    seen: dict[str, int] = {}
    total = 0
    plan = [
        {"a": 50, "b": 40, "c": 1, "d": 1},
        {"c": 500, "d": 400, "a": 1},  # c and d take over
        {"e": 900, "a": 3, "b": 3},  # e enters, a and b fall out of the top 2K
        {"a": 5},
    ]
    for i, weights in enumerate(plan):
        _traffic(st, weights, T0 + i * 10_000_000)
        total += sum(weights.values())
        p = metric(b.build(collect(sc)), C.SUB_REQUESTS)
        got = _values(p)
        for name, v in got.items():
            assert v >= seen.get(name, 0), f"{name} went down"
        seen.update(got)
        # everything counted once: the members' counts since they joined, plus other
        assert sum(got.values()) + _departed(seen, got) == total
    assert "E" in got


def _departed(seen: dict[str, int], now: dict[str, int]) -> int:
    return sum(v for k, v in seen.items() if k not in now)


def test_a_misbehaving_subscription_gets_its_own_series_whatever_its_traffic() -> None:
    st = State()
    _traffic(st, {f"big{i}": 400 for i in range(5)}, T0)
    recs = [
        {
            "event_time_us": T0 + 1000 + k * 1000,
            "application_id": "loop",
            "application_name": "Legacy-Portal",
            "api_name": "A",
            "api_version": "v1",
            "http_method": "GET",
            "http_status": 404 if k % 2 else 200,
            "latency_us": 500,
            "uri_hash": 10_000 + k,
        }
        for k in range(150)
    ]
    st.apply(events(st, recs))
    batch = Builder(BuildOptions(top_k=2)).build(collect(FakeSidecar(st)))
    reqs = _values(metric(batch, C.SUB_REQUESTS))
    assert reqs["Legacy-Portal"] == 150
    fails = metric(batch, C.SUB_FAILURES)
    assert {
        (a["wso2.application.name"], a["vigie.failure"]): int(v)
        for a, v in zip(attrs_of(fails), fails.values, strict=True)
        if a["wso2.application.name"] == "Legacy-Portal"
    } == {
        ("Legacy-Portal", "client_error"): 75,
        ("Legacy-Portal", "server_error"): 0,
        ("Legacy-Portal", "throttled"): 0,
    }
    classes = metric(batch, C.SUB_CLASSES)
    assert {(a["wso2.application.name"], a["vigie.class"]) for a in attrs_of(classes)} == {
        ("Legacy-Portal", "error_prone")
    }


def test_subscriptions_per_class_match_the_views(
    fed: tuple[FakeSidecar, list[dict[str, Any]]],
) -> None:
    sc, _ = fed
    batch = Builder().build(collect(sc))
    subs = views.subscriptions(sc.state)
    want = Counter(c for s in subs for c in s.classes)  # a view without a class: ["normal"]
    got = _values(metric(batch, C.SUBSCRIPTIONS), "vigie.class")
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
    assert set(got) == {*CLASS_NAMES, *HEALTH_CLASS_NAMES, "normal"}


# ---------------------------------------------------------------------------------------------
# temporality, resource, collection
# ---------------------------------------------------------------------------------------------


def test_delta_temporality_adds_up_to_the_cumulative_figures() -> None:
    st = State()
    sc = FakeSidecar(st)
    cumulative = Builder(BuildOptions(top_k=2))
    delta = Builder(BuildOptions(top_k=2, delta=True))
    recs = random_records(2000, seed=9)
    sums: dict[str, Counter[frozenset[tuple[str, Any]]]] = defaultdict(Counter)
    last: dict[str, dict[frozenset[tuple[str, Any]], int]] = defaultdict(dict)
    previous_ns = 0
    for k in range(4):
        st.apply(events(st, recs[k * 500 : (k + 1) * 500]))
        frame = collect(sc)
        for p in delta.build(frame).metrics:
            if isinstance(p, NumberPoints) and p.gauge:
                continue
            assert p.temporality == DELTA
            if k:  # a series seen before starts where the previous export ended
                assert previous_ns in set(p.start_ns.tolist()) or len(p) == 0
            if isinstance(p, NumberPoints):
                assert (p.values >= 0).all()
                counts = p.values
            else:
                assert (p.buckets >= 0).all()
                counts = p.count
            if isinstance(p, ExpHistogramPoints):
                assert (p.count == p.buckets.sum(axis=1) + p.zero).all()
            for a, v in zip(attrs_of(p), counts, strict=True):
                sums[p.spec.name][frozenset(a.items())] += int(v)
        previous_ns = frame.time_ns
        for p in cumulative.build(frame).metrics:  # the latest cumulative value of each series
            if not (isinstance(p, NumberPoints) and p.gauge):
                counts = p.values if isinstance(p, NumberPoints) else p.count
                for a, v in zip(attrs_of(p), counts, strict=True):
                    last[p.spec.name][frozenset(a.items())] = int(v)
    assert set(sums) == set(last)
    for name, series in last.items():
        assert {k: v for k, v in sums[name].items() if v} == {
            k: v for k, v in series.items() if v
        }, name


def test_the_resource_is_fixed_by_the_settings_not_by_who_is_connected() -> None:
    @dataclass
    class Hello:
        gateway_id: str
        channel: str
        tenant: str

    @dataclass
    class Stream:
        hello: Hello
        report: Any = None

    sc = FakeSidecar(State())
    alone = Builder().resource(collect(sc))
    sc.streams[1] = Stream(Hello("gw-1", "main", "carbon.super"))
    assert Builder().resource(collect(sc)) == alone
    assert alone["service.name"] == "vigie"
    assert alone["service.instance.id"] == "test-sidecar"
    assert not {"wso2.gateway.id", "wso2.channel", "wso2.tenant"} & set(alone)
    opts = BuildOptions(gateway="gw-1", channel="main", resource={"service.name": "vigie-dc1"})
    res = Builder(opts).resource(collect(sc))
    assert (res["wso2.gateway.id"], res["wso2.channel"]) == ("gw-1", "main")
    assert "wso2.tenant" not in res
    assert res["service.name"] == "vigie-dc1"  # OTEL_RESOURCE_ATTRIBUTES wins


def test_collection_copies_rows_in_small_chunks(
    fed: tuple[FakeSidecar, list[dict[str, Any]]],
) -> None:
    sc, _ = fed
    st = sc.state
    f = collect(sc, chunk_bytes=4096)
    assert f.lock_holds > 10
    assert np.array_equal(f.route_hist, st.route_hist[: st.n_route_rows])
    assert np.array_equal(f.sub_i64, st.sub_i64[: st.n_sub_rows])
    held, _ = st.held(st.now_us)
    held = np.hstack([held, st.baselines.sub_held(st, st.now_us)])  # the health columns last
    assert np.array_equal(f.sub_held, held)
    assert not sc.lock.locked()
