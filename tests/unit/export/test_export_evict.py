"""The per-subscription series across evictions (a real State, real kernels, the real builder):
an API eviction renumbers API rows, so a subscription's row key (application << 32 | API row)
changes while it stays the same subscription, and another one's old key may come back. Each
export is checked against a naive count of the events per (application, API) by name."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.unit.export.test_export_series import FakeSidecar, by_attrs, events, metric
from vigie.export import _catalogue as C
from vigie.export import _points as P
from vigie.export._builder import Builder
from vigie.export._collect import collect
from vigie.export._points import NumberPoints, attrs_of
from vigie.export._series import BuildOptions
from vigie.state import layout as L
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds

T0 = 1_700_000_000_000_000
Series = tuple[str, str]  # (application id, API name)


def _rec(t: int, app: str, api: str, status: int = 200) -> dict[str, Any]:
    return {
        "event_time_us": t,
        "application_id": app,
        "application_name": app.upper(),
        "api_name": api,
        "api_version": "v1",
        "resource_template": "/r",
        "http_method": "GET",
        "http_status": status,
        "latency_us": 1000,
        "uri_hash": t,  # distinct reads: not redundant
    }


class Feed:
    """A state whose API table is full (16 rows) and the naive count of what it was sent."""

    def __init__(self) -> None:
        self.state = State(Thresholds(), Capacity(max_apis=16, initial_apis=16))
        self.sent: Counter[Series] = Counter()
        self.failed: Counter[Series] = Counter()
        self.t = T0

    def send(self, pairs: list[tuple[str, str]], status: int = 200) -> None:
        recs = []
        for app, api in pairs:
            self.t += 1000
            recs.append(_rec(self.t, app, api, status))
            self.sent[(app, api)] += 1
            self.failed[(app, api)] += 400 <= status < 500
        self.state.apply(events(self.state, recs))

    def live(self) -> set[Series]:
        """The (application, API) of every subscription row in use, by name."""
        st = self.state
        out = set()
        for row in st.sub_rows().tolist():
            s = st.sub_i64[row]
            api = st.string(int(st.api_i64[int(s[L.S_API]), L.A_NAME]))
            out.add((st.string(int(s[L.S_APP])), api.split("/")[-1]))
        return out


def _full_table() -> Feed:
    """APIs Api-0..Api-15 in rows 0..15. Application a calls Api-0 once (the coldest API with
    Api-1) and Api-14 often; b calls Api-1 once and Api-15 often; c<k> call Api-<k> (c5 only
    thrice). An eviction of the two coldest moves Api-14 into row 0 and Api-15 into row 1: a's
    Api-14 subscription then has the key a's Api-0 subscription had, and b's Api-15 b's
    Api-1's."""
    feed = Feed()
    owner = {0: "a", 1: "b", 14: "a", 15: "b"}
    feed.send([(owner.get(k, f"c{k}"), f"Api-{k}") for k in range(16)])  # rows in this order
    feed.send(
        [
            (owner.get(k, f"c{k}"), f"Api-{k}")
            for k in range(2, 16)
            for _ in range(2 if k == 5 else 20)
        ]
    )
    return feed


def _by_sub(p: NumberPoints) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for a, v in zip(attrs_of(p), p.values, strict=True):
        key = (str(a.get("wso2.application.id", "")), str(a.get("wso2.api.name", "")))
        key3 = (*key, str(a.get("vigie.failure", "")))
        assert key3 not in out, f"two series with the same attributes: {a}"
        out[key3] = int(v)
    return out


def _members(p: NumberPoints) -> dict[Series, int]:
    """The member series of a metric without vigie.failure (``other`` left out)."""
    return {(app, api): v for (app, api, _), v in _by_sub(p).items() if api}


def _evict_twice(feed: Feed, check: Any) -> None:
    """Two API evictions, traffic on the moved subscriptions after each; ``check`` after each
    step."""
    check()
    feed.send([("n1", "New-1")])  # full: Api-0 and Api-1 (1 request each) evicted
    assert feed.state.counters()["api_rows_evicted"] == 2
    assert ("a", "Api-0") not in feed.live() and ("a", "Api-14") in feed.live()
    feed.send([("a", "Api-14")] * 7 + [("b", "Api-15")] * 3, status=404)
    feed.send([("n1", "New-1")] * 5)
    check()
    feed.send([("n2", "New-2")])  # the last free row
    check()
    # New-2 (1 request) and Api-5 (3) evicted: New-1 moves from row 14 into Api-5's row 5, and
    # New-3 takes row 14: n1's New-3 subscription has the key n1's New-1 subscription had
    feed.send([("n1", "New-3")])
    assert feed.state.counters()["api_rows_evicted"] == 4
    assert ("c5", "Api-5") not in feed.live() and ("n1", "New-3") in feed.live()
    feed.send([("n1", "New-3")] * 4 + [("n1", "New-1")] * 2 + [("a", "Api-14")] * 5)
    check()


def test_member_series_keep_their_own_names_and_counts_across_api_evictions() -> None:
    feed = _full_table()
    builder = Builder(BuildOptions(top_k=50))  # every subscription with traffic is a member
    sidecar = FakeSidecar(feed.state)

    def check() -> None:
        batch = builder.build(collect(sidecar))
        live = feed.live()
        reqs = _members(metric(batch, C.SUB_REQUESTS))
        # every member counted all its requests (members from their first one), under its name
        assert reqs == {s: n for s, n in feed.sent.items() if s in live}
        fails = metric(batch, C.SUB_FAILURES)
        client = {
            (app, api): v
            for (app, api, kind), v in _by_sub(fails).items()
            if api and kind == "client_error"
        }
        assert client == {s: n for s, n in feed.failed.items() if s in live}
        assert _by_sub(metric(batch, C.SUB_REQUESTS))[("", "", "")] == 0  # nothing in other

    _evict_twice(feed, check)


def test_member_series_in_delta_add_up_to_the_naive_counts_across_api_evictions() -> None:
    feed = _full_table()
    builder = Builder(BuildOptions(top_k=50, delta=True))
    sidecar = FakeSidecar(feed.state)
    summed: dict[Series, int] = defaultdict(int)

    def check() -> None:
        p = metric(builder.build(collect(sidecar)), C.SUB_REQUESTS)
        assert (p.values >= 0).all()
        for s, v in _members(p).items():
            summed[s] += v
        live = feed.live()
        # a live subscription's deltas add up to its requests; an evicted one's stopped
        assert {s: v for s, v in summed.items() if s in live} == {
            s: n for s, n in feed.sent.items() if s in live
        }
        for s, v in summed.items():
            assert v <= feed.sent[s], s

    _evict_twice(feed, check)


def test_members_and_other_add_up_to_the_traffic_across_api_evictions() -> None:
    """With few members, every request is counted once: members since they joined, other, and
    the members that left (their last figures); an eviction neither loses nor repeats any."""
    feed = _full_table()
    builder = Builder(BuildOptions(top_k=2))
    sidecar = FakeSidecar(feed.state)
    last: dict[tuple[str, str, str], int] = {}

    def check() -> None:
        p = metric(builder.build(collect(sidecar)), C.SUB_REQUESTS)
        now = _by_sub(p)
        for k, v in now.items():
            assert v >= last.get(k, 0), f"{k} went down"
        last.update(now)
        assert sum(last.values()) == sum(feed.sent.values())

    _evict_twice(feed, check)


# ---------------------------------------------------------------------------------------------
# the exporter's caches do not keep the series of what went away
# ---------------------------------------------------------------------------------------------


def _series(p: Any) -> dict[frozenset[tuple[str, Any]], tuple[int, int]]:
    """Each point's attributes -> (start time, value or count)."""
    counts = p.values if isinstance(p, NumberPoints) else p.count
    return {
        frozenset(a.items()): (int(s), int(v))
        for a, s, v in zip(attrs_of(p), p.start_ns, counts, strict=True)
    }


def test_departed_members_series_are_pruned_and_deltas_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new busiest application every export (top 1): the series of those that left are
    dropped from the caches; the delta exporter's points still add up to the cumulative ones
    (a series that restarts has a new start time, its delta is its value)."""
    monkeypatch.setattr(P, "PRUNE_FLOOR", 0)
    feed = Feed()
    cumulative = Builder(BuildOptions(top_k=1))
    delta = Builder(BuildOptions(top_k=1, delta=True))
    sidecar = FakeSidecar(feed.state)
    before: dict[frozenset[tuple[str, Any]], tuple[int, int]] = {}
    for k in range(30):
        feed.send([(f"app{k}", "Api-0")] * (10 + k) + [("steady", "Api-1")] * 2)
        frame = collect(sidecar)
        cum = _series(metric(cumulative.build(frame), C.SUB_REQUESTS))
        dlt = _series(metric(delta.build(frame), C.SUB_REQUESTS))
        assert set(dlt) == set(cum)
        for attrs, (start, value) in cum.items():
            old = before.get(attrs)
            same = old is not None and old[0] == start
            assert dlt[attrs][1] == (value - old[1] if same and old else value), (k, attrs)
        before = cum
    cache = cumulative.subscriptions._sub_caches[C.SUB_REQUESTS.name]
    assert len(cache) <= P.PRUNE_AT * 3  # other and the (at most 2) members exported
    assert cache.epoch > 0
    assert sum(v for _, v in before.values()) <= sum(feed.sent.values())


def test_the_route_series_of_evicted_apis_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "PRUNE_FLOOR", 0)
    monkeypatch.setattr(P, "PRUNE_AT", 1)  # pruned as soon as a series went away
    feed = _full_table()
    builder = Builder(BuildOptions(top_k=5))
    sidecar = FakeSidecar(feed.state)
    for k in range(40):  # new APIs, each evicting older ones
        feed.send([(f"f{k}", f"Flood-{k}")] * 2)
        batch = builder.build(collect(sidecar))
        got: Counter[str] = Counter()
        for attrs, v in by_attrs(metric(batch, C.API_REQUESTS)).items():
            got[dict(attrs)["wso2.api.name"]] += v
        live_apis = {
            feed.state.string(int(a)) for a in feed.state.api_i64[: feed.state.n_api_rows, L.A_NAME]
        }
        want: Counter[str] = Counter()
        for (_, api), n in feed.sent.items():
            if api in live_apis:
                want[api] += n
        assert got == want, k
    assert feed.state.counters()["api_rows_evicted"] >= 30
    # one series per API and outcome (a's and b's 404s too) and the overflow's, no more
    assert len(builder.routes.requests.cache) <= feed.state.n_api_rows + 2 + 1
    assert len(builder.routes.duration.cache) <= feed.state.n_route_rows + 2
    for view in (builder.routes.requests, builder.routes.duration):
        assert view.cache.epoch > 0


# ---------------------------------------------------------------------------------------------
# route evictions: a series keeps what its evicted routes counted (``RouteFold``)
# ---------------------------------------------------------------------------------------------


def _route_flood(state: State, b: int) -> list[dict[str, Any]]:
    """A batch: 30 requests on Orders' /hot (a third of them 503), 3 throttled ones with a
    code of their own (a route row of their own, soon evicted, whose duration series is
    /hot's 429s), 100 on new routes."""
    t = T0 + b * 1_000_000
    recs = [_rec(t + k, "app", "Orders", 503 if k % 3 == 0 else 200) for k in range(30)]
    for k in range(3):
        recs.append(_rec(t + 50 + k, "app", "Orders", 429))
        recs[-1]["error_code"] = 900800 + b
    for r in recs:
        r["resource_template"] = "/hot"
    for k in range(100):
        r = _rec(t + 100 + k, "app", "Orders")
        r["resource_template"] = f"/cold-{b}-{k}"
        recs.append(r)
    return recs


def _sent_by_outcome(recs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        {429: "throttled", 503: "server_error"}.get(r["http_status"], "success") for r in recs
    )


@pytest.mark.parametrize("delta", [False, True])
def test_route_series_keep_what_their_evicted_routes_counted(delta: bool) -> None:
    state = State(Thresholds(), Capacity(max_routes=256))
    builder = Builder(BuildOptions(delta=delta))
    sidecar = FakeSidecar(state)
    sent: Counter[str] = Counter()
    hot = 0
    total: Counter[frozenset[tuple[str, Any]]] = Counter()
    last: dict[frozenset[tuple[str, Any]], int] = {}
    for b in range(20):
        recs = _route_flood(state, b)
        state.apply(events(state, recs))
        sent += _sent_by_outcome(recs)
        hot += 33
        batch = builder.build(collect(sidecar))
        reqs = metric(batch, C.API_REQUESTS)
        dur = metric(batch, C.HTTP_SERVER_DURATION)
        assert (dur.count == dur.buckets.sum(axis=1) + dur.zero).all()
        got: dict[str, int] = {}
        for series, v in zip(attrs_of(reqs), reqs.values.tolist(), strict=True):
            key = frozenset(series.items())
            if delta:
                assert v >= 0
                total[key] += v
                v = total[key]
            else:
                assert v >= last.get(key, 0), f"{series} went down"
                last[key] = v
            got[f"{series['wso2.api.name']}/{series['wso2.outcome']}"] = v
        # Orders' own counts, whole, whatever its routes evicted; nothing under _OTHER (the
        # table never overflowed within a batch)
        assert {k: v for k, v in got.items() if v} == {f"Orders/{o}": n for o, n in sent.items()}
        if not delta:
            by_route: Counter[Any] = Counter()
            for a, c in zip(attrs_of(dur), dur.count.tolist(), strict=True):
                by_route[(a.get("http.route"), a.get("http.response.status_code"))] += int(c)
            # /hot's 429s: one series fed by a new row each batch, evicted: all of them there
            assert by_route[("/hot", 429)] == 3 * (b + 1)
            assert by_route[("/hot", 200)] + by_route[("/hot", 503)] == 30 * (b + 1)
            assert (OVERFLOW_ROUTE, None) not in by_route
    assert state.counters()["route_rows_evicted"] > 1000
    assert state.g[L.G_ROUTE_OVERFLOW] == 0


OVERFLOW_ROUTE = "_OTHER"


def test_route_evictions_the_state_forgot_leave_the_totals_whole() -> None:
    """More route evictions between two exports than the state remembers: the forgotten ones'
    figures stay under _OTHER, and every request is still counted once."""
    state = State(Thresholds(), Capacity(max_routes=256))
    builder = Builder()
    sidecar = FakeSidecar(state)
    builder.build(collect(sidecar))
    sent = 0
    for b in range(12):  # ~10 evictions, 4 remembered
        recs = _route_flood(state, b)
        state.apply(events(state, recs))
        sent += len(recs)
    assert state.route_folds[0].seq > 1
    reqs = metric(builder.build(collect(sidecar)), C.API_REQUESTS)
    assert int(reqs.values.sum()) == sent
    got = {a["wso2.api.name"]: int(v) for a, v in zip(attrs_of(reqs), reqs.values, strict=True)}
    assert got[OVERFLOW_ROUTE] > 0  # the forgotten evictions' routes


@pytest.mark.parametrize("top_k", [0, 2, 50])
def test_what_an_evicted_subscription_counted_after_the_last_export_is_in_other(
    top_k: int,
) -> None:
    """A subscription evicted (with its API) between two exports: its requests since the
    previous export count under other, so members plus other still add up to every request."""
    feed = _full_table()
    builder = Builder(BuildOptions(top_k=top_k))
    sidecar = FakeSidecar(feed.state)
    last: dict[tuple[str, str, str], int] = {}

    def total() -> int:
        p = metric(builder.build(collect(sidecar)), C.SUB_REQUESTS)
        last.update(_by_sub(p))
        return sum(last.values())

    assert total() == sum(feed.sent.values())
    feed.send([("a", "Api-0")] * 1 + [("b", "Api-1")] * 1)  # 2 requests each now
    feed.send([("n1", "New-1")])  # evicts Api-0 and Api-1 with their subscriptions
    assert ("a", "Api-0") not in feed.live() and ("b", "Api-1") not in feed.live()
    assert total() == sum(feed.sent.values())
    feed.send([("n1", "New-1")] * 4 + [("n2", "New-2")])
    feed.send([("n3", "New-3")])  # evicts New-2 (1 request, never exported) and the next
    assert total() == sum(feed.sent.values())
