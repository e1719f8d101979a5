"""API and route rows are evicted coldest first (``vigie.state._evict``), in-process: the rule
picks the coldest, the kept rows' figures are those of a plain count of their events (the
eviction moved them, it changed nothing), the references (subscriptions, routes, baselines,
hash tables) follow the moves, and memory stays under the cap."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.state.test_kernels import T0, to_events
from vigie.state import _tables as T
from vigie.state import layout as L
from vigie.state import snapshot
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds

SECOND = 1_000_000


def _ev(
    state: State, t: int, api: str, app: str = "", res: str = "/r", status: int = 200
) -> dict[str, int]:
    it = state.interner
    return {
        "event_time_us": t,
        "application_id": it.intern(app) if app else 0,
        "api_name": it.intern(api),
        "api_version": it.intern("v1"),
        "resource_template": it.intern(res),
        "http_method": 1,
        "http_status": status,
        "latency_us": 1000 + t % 7919,
        "channel": 0,
    }


class Twin:
    """The plain count of the events applied, per API, subscription and route (by name)."""

    def __init__(self) -> None:
        self.api: dict[str, Counter[str]] = defaultdict(Counter)
        self.sub: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.route: Counter[tuple[str, str, int]] = Counter()
        self.api_hist: dict[str, Counter[int]] = defaultdict(Counter)

    def add(self, state: State, rec: dict[str, int]) -> None:
        api, res = state.string(rec["api_name"]), state.string(rec["resource_template"])
        for c in [self.api[api]] + (
            [self.sub[(state.string(rec["application_id"]), api)]] if rec["application_id"] else []
        ):
            c["req"] += 1
            c["5xx"] += rec["http_status"] >= 500
            c["lat"] += rec["latency_us"]
            c["first"] = min(c["first"] or rec["event_time_us"], rec["event_time_us"])
            c["last"] = max(c["last"], rec["event_time_us"])
        self.route[(api, res, rec["http_status"])] += 1


def _feed(state: State, twin: Twin, records: list[dict[str, int]]) -> None:
    for r in records:
        twin.add(state, r)
    state.apply(to_events(records))


def _api_row(state: State, api: str) -> int:
    name, ver = state.interner.lookup(api), state.interner.lookup("v1")
    if name is None or ver is None:
        return -1
    return int(T.table_find(state.api_tkeys, state.api_tvals, (name << 32) | ver))


def _check_consistent(state: State) -> None:
    """Every live row is found by its key in its table, and refers to rows in use."""
    n_api, n_route = state.n_api_rows, state.n_route_rows
    keys = state.api_i64[:n_api, L.A_KEY]
    assert (keys != 0).all()
    assert len(np.unique(keys)) == n_api
    for row, k in enumerate(keys.tolist()):
        assert T.table_find(state.api_tkeys, state.api_tvals, k) == row
    assert (state.api_i64[n_api:] == 0).all()
    for row in state.sub_rows().tolist():
        s = state.sub_i64[row]
        assert 0 <= s[L.S_API] < n_api
        assert s[L.S_KEY] == (s[L.S_APP] << 32) | s[L.S_API]
        assert T.table_find(state.sub_tkeys, state.sub_tvals, int(s[L.S_KEY])) == row
    for row in range(1, n_route):
        r = [int(x) for x in state.route_i64[row]]
        assert 0 <= r[L.R_API] < n_api
        ident = (r[L.R_API], r[L.R_RESOURCE], r[L.R_METHOD], r[L.R_STATUS])
        more = (r[L.R_ERROR_CODE], r[L.R_CHANNEL], r[L.R_THROTTLED])
        key = int(T.route_key(*ident, *more))
        assert r[L.R_KEY] == key
        assert T.find_route(_routes(state), key, *ident, *more) == row


def _routes(state: State) -> Any:
    return (
        state.route_i64,
        state.route_hist,
        state.route_tkeys,
        state.route_tvals,
        state.route_meta,
    )


def _check_figures(state: State, twin: Twin, apis: list[str]) -> None:
    """The rows of ``apis`` (and their subscriptions, routes) hold what the twin counted."""
    for api in apis:
        row = _api_row(state, api)
        assert row >= 0, api
        a, want = state.api_i64[row], twin.api[api]
        got = (a[L.A_REQ], a[L.A_5XX], a[L.A_LAT_SUM_US], a[L.A_FIRST_SEEN], a[L.A_LAST_SEEN])
        assert got == (want["req"], want["5xx"], want["lat"], want["first"], want["last"]), api
        assert state.api_hist[row].sum() == want["req"]
        routes = state.route_i64[1 : state.n_route_rows]
        mine = routes[routes[:, L.R_API] == row]
        by_res = {
            (state.string(int(r[L.R_RESOURCE])), int(r[L.R_STATUS])): int(r[L.R_REQ]) for r in mine
        }
        assert by_res == {(res, st): n for (x, res, st), n in twin.route.items() if x == api}
    for (app, api), want in twin.sub.items():
        if api not in apis:
            continue
        gid = state.interner.lookup(app)
        assert gid is not None
        row = int(
            T.table_find(state.sub_tkeys, state.sub_tvals, (gid << 32) | _api_row(state, api))
        )
        assert row >= 0, (app, api)
        s = state.sub_i64[row]
        got = (s[L.S_REQ], s[L.S_5XX], s[L.S_LAT_SUM_US], s[L.S_FIRST_SEEN], s[L.S_LAST_SEEN])
        assert got == (want["req"], want["5xx"], want["lat"], want["first"], want["last"])


def test_a_flood_of_new_apis_evicts_itself_and_keeps_the_busy_and_the_inventory() -> None:
    state = State(Thresholds(), Capacity(max_apis=64, initial_apis=16, initial_subscriptions=64))
    state.channel_index("main")
    state.ensure_api("Inventory", "v1")  # pinned
    state.ensure_subscription("inv-app", "InvSub", "v1")  # its API is kept for it
    twin = Twin()
    busy = [f"Busy-{k}" for k in range(6)]
    t = T0
    for b in range(40):
        batch = []
        for k, api in enumerate(busy):  # the busy APIs keep going, 5 requests a batch each
            for j in range(5):
                t += 1000
                batch.append(_ev(state, t, api, f"app-{k}", f"/b{j % 2}", 500 if j == 4 else 200))
        for j in range(50):  # 50 new APIs a batch, one request each, half with an application
            t += 1000
            n = b * 50 + j
            batch.append(_ev(state, t, f"Flood-{n}", f"fa-{n}" if n % 2 else "", f"/f{n}"))
        _feed(state, twin, batch)
        assert state.n_api_rows <= 64
        _check_consistent(state)
    c = state.counters()
    assert c["api_rows_evicted"] >= 2000 - 64
    assert state.n_api_rows + c["api_rows_evicted"] == 2 + len(busy) + 2000
    assert c["route_rows_evicted"] >= 2000 - 64  # each flood API's route went with it
    assert c["evicted_subscriptions"] >= 1000 - 64
    _check_figures(state, twin, busy)
    for api in ("Inventory", "InvSub"):
        assert _api_row(state, api) >= 0
    assert (state.sub_i64[state.sub_rows(), L.S_FLAGS] & L.ROW_PINNED).sum() == 1
    # a subscription is still on its own API
    for row in state.sub_rows().tolist():
        app = state.string(int(state.sub_i64[row, L.S_APP]))
        api = state.string(int(state.api_i64[state.sub_i64[row, L.S_API], L.A_NAME]))
        assert app.replace("fa-", "Flood-").replace("app-", "Busy-") == api or app == "inv-app"
    # the evicted APIs' names, resources and applications are referred to by nothing
    released = state.release_strings([], epoch=1)
    assert released >= 2 * (2000 - 64)
    assert state.interner.lookup("Flood-0") is None and state.interner.lookup("/f0") is None
    assert state.interner.lookup("Busy-0") is not None


def test_the_rule_unreferenced_then_fewest_requests_then_least_recent() -> None:
    state = State(Thresholds(), Capacity(max_apis=16, initial_apis=16))
    state.channel_index("main")
    twin = Twin()
    recs = []
    # referenced by a subscription: kept although the coldest of all (1 request, the oldest)
    recs.append(_ev(state, T0, "Sub-old", "app"))
    recs.append(_ev(state, T0 + 1, "Quiet-5", res="/a"))  # unreferenced, 5 requests, old
    recs += [_ev(state, T0 + 2 + k, "Quiet-5") for k in range(4)]
    recs.append(_ev(state, T0 + 100, "One-old"))  # unreferenced, 1 request
    recs.append(_ev(state, T0 + 200, "One-new"))
    for k in range(12):  # referenced, busy
        recs += [_ev(state, T0 + 300 + 10 * k + j, f"Busy-{k}", f"b{k}") for j in range(3)]
    _feed(state, twin, recs)
    assert state.n_api_rows == 16 and state.counters()["api_rows_evicted"] == 0
    before = {api: state.api_i64[_api_row(state, api)].copy() for api in ("Sub-old", "Quiet-5")}
    _feed(state, twin, [_ev(state, T0 + 1000, "Newcomer")])  # evicts 16 // 8 = 2
    assert state.counters()["api_rows_evicted"] == 2
    assert _api_row(state, "One-old") < 0 and _api_row(state, "One-new") < 0
    for api in ("Sub-old", "Quiet-5", "Newcomer", *(f"Busy-{k}" for k in range(12))):
        assert _api_row(state, api) >= 0, api
    for api, row in before.items():  # moved, not changed
        assert (state.api_i64[_api_row(state, api)] == row).all()
    _check_figures(state, twin, ["Sub-old", "Quiet-5", "Newcomer"])
    _check_consistent(state)
    # then the unreferenced with the fewest requests: Newcomer (1), then Quiet-5 (5)
    _feed(state, twin, [_ev(state, T0 + 2000 + k, f"Late-{k}", f"l{k}") for k in range(3)])
    assert _api_row(state, "Newcomer") < 0 and _api_row(state, "Quiet-5") < 0
    assert _api_row(state, "Sub-old") >= 0


def test_the_kept_apis_rows_and_baselines_equal_those_of_a_state_that_evicted_nothing() -> None:
    """The same events into a state whose API table is full (it evicts) and into one with
    room: every row the first kept, and its baselines, are those of the second."""
    states = [State(Thresholds(), Capacity(max_apis=m, initial_apis=16)) for m in (16, 64)]
    arrays = ("api_i64", "api_hour", "api_hist", "api_cls_first", "api_cls_last", "api_cls_evid")
    for state in states:
        state.channel_index("main")
        recs = [_ev(state, T0 + k * 60 * SECOND, f"Api-{k % 16}", f"a{k % 16}") for k in range(160)]
        recs += [_ev(state, T0 + 161 * 60 * SECOND + k, f"Api-{k}") for k in (3, 7)]  # busier
        state.apply(to_events(recs))
        state.apply(to_events([_ev(state, T0 + 162 * 60 * SECOND, "New")]))
    full, roomy = states
    assert full.counters()["api_rows_evicted"] == 2 and roomy.counters()["api_rows_evicted"] == 0
    gone = [k for k in range(16) if _api_row(full, f"Api-{k}") < 0]
    assert gone == [0, 1]  # all referenced, 10 requests each: the least recent two
    assert full.interner.strings() == roomy.interner.strings()  # the same ids in both
    names = [n for n in full.baselines.arrays if n.startswith("ba_")]
    assert any(roomy.baselines.arrays["ba_week"][: roomy.n_api_rows].ravel())
    for api in [f"Api-{k}" for k in range(2, 16)] + ["New"]:
        mine, twin = _api_row(full, api), _api_row(roomy, api)
        for n in arrays:
            assert (getattr(full, n)[mine] == getattr(roomy, n)[twin]).all(), (api, n)
        for n in names:
            a, b = full.baselines.arrays[n][mine], roomy.baselines.arrays[n][twin]
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (api, n)
    for n in names:  # nothing left behind in the freed rows
        assert not full.baselines.arrays[n][full.n_api_rows :].any(), n
    for sub in full.sub_rows().tolist():  # the subscriptions too, through their API's new row
        s = full.sub_i64[sub]
        api = full.string(int(full.api_i64[s[L.S_API], L.A_NAME]))
        twin = int(
            T.table_find(
                roomy.sub_tkeys, roomy.sub_tvals, (int(s[L.S_APP]) << 32) | _api_row(roomy, api)
            )
        )
        assert (full.sub_i64[sub, : L.S_KEY] == roomy.sub_i64[twin, : L.S_KEY]).all()
        assert (full.sub_hour[sub] == roomy.sub_hour[twin]).all()
    _check_consistent(full)


@pytest.mark.parametrize("cap_mb", [16, 32])
def test_apis_routes_and_their_baselines_stay_under_the_memory_cap(cap_mb: int) -> None:
    cap = cap_mb << 20
    state = State(
        Thresholds(),
        Capacity(memory_cap_bytes=cap, initial_subscriptions=64, detector_entries=1 << 12),
    )
    state.channel_index("main")
    twin = Twin()
    t = T0
    for b in range(30):
        batch = [_ev(state, t + k, "Busy", "busy-app", "/busy") for k in range(20)]
        batch += [_ev(state, t + 100 + k, f"F{b}-{k}", f"fa{b}-{k}", f"/x{k}") for k in range(500)]
        t += SECOND
        _feed(state, twin, batch)
        assert state.nbytes() <= cap, (b, state.nbytes(), cap)
    c = state.counters()
    assert c["api_rows_evicted"] > 0 and c["evicted_subscriptions"] > 0
    assert state.n_api_rows + c["api_rows_evicted"] == 1 + 30 * 500
    # the baselines are counted as they are once grown with the rows
    bl = sum(a.nbytes for a in state.baselines.arrays.values())
    assert bl <= state.baselines.nbytes(len(state.sub_i64), len(state.api_i64))
    _check_figures(state, twin, ["Busy"])
    _check_consistent(state)


def test_a_full_route_table_evicts_its_coldest_routes_into_route_0() -> None:
    state = State(Thresholds(), Capacity(max_routes=256))
    state.channel_index("main")
    twin = Twin()
    t = T0
    applied = 0
    for b in range(20):
        batch = [_ev(state, t + k, "Orders", "app", "/hot") for k in range(30)]
        batch += [_ev(state, t + 100 + k, "Orders", "app", f"/cold-{b}-{k}") for k in range(100)]
        t += SECOND
        _feed(state, twin, batch)
        applied += len(batch)
        assert state.n_route_rows <= 256
        _check_consistent(state)
    c = state.counters()
    assert c["route_rows_evicted"] > 0 and c["route_overflow"] == 0
    assert state.n_route_rows + c["route_rows_evicted"] == 1 + 1 + 2000
    # nothing lost from the totals: the evicted routes' figures are in route 0
    assert state.route_i64[: state.n_route_rows, L.R_REQ].sum() == applied
    assert state.route_hist[: state.n_route_rows].sum() == applied
    row = [
        r
        for r in range(1, state.n_route_rows)
        if state.string(int(state.route_i64[r, L.R_RESOURCE])) == "/hot"
    ]
    assert len(row) == 1 and state.route_i64[row[0], L.R_REQ] == 600
    assert state.route_i64[0, L.R_REQ] == c["route_rows_evicted"]  # one request each
    assert state.api_i64[_api_row(state, "Orders"), L.A_REQ] == applied


def test_a_snapshot_after_evictions_loads_back_with_its_counters(tmp_path: Path) -> None:
    cap = Capacity(max_apis=32, initial_apis=16, max_routes=128)
    state = State(Thresholds(), cap)
    state.channel_index("main")
    twin = Twin()
    for b in range(10):
        recs = [_ev(state, T0 + b * SECOND + k, "Keep", "k-app", "/k") for k in range(10)]
        recs += [
            _ev(state, T0 + b * SECOND + 50 + k, f"N{b}-{k}", f"n{b}{k}", f"/n{k}")
            for k in range(40)
        ]
        _feed(state, twin, recs)
    state.release_strings([], epoch=1)
    c = state.counters()
    assert c["api_rows_evicted"] > 0 and c["route_rows_evicted"] > 0
    path = snapshot.write_snapshot(state, tmp_path)
    back = snapshot.read_snapshot(path, Thresholds(), cap)
    for k in ("api_rows_evicted", "route_rows_evicted", "evicted_subscriptions"):
        assert back.counters()[k] == c[k]
    _check_consistent(back)
    _check_figures(back, twin, ["Keep"])
    # and it goes on evicting after the restart
    _feed(back, twin, [_ev(back, T0 + 20 * SECOND + k, f"After-{k}") for k in range(40)])
    assert back.counters()["api_rows_evicted"] > c["api_rows_evicted"]
    _check_figures(back, twin, ["Keep"])
    _check_consistent(back)


# ---------------------------------------------------------------------------------------------
# readers that copy rows in several holds of the lock see the rows move
# ---------------------------------------------------------------------------------------------
class _EvictingLock:
    """A lock whose ``n``-th acquisition first applies ``batch`` (which evicts API rows): an
    ingest that took the lock between two of a reader's holds."""

    def __init__(self, state: State, batch: list[dict[str, int]], n: int) -> None:
        self.state, self.batch, self.n, self.count = state, batch, n, 0

    def __enter__(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.state.apply(to_events(self.batch))

    def __exit__(self, *exc: object) -> None:
        return None


def _small_full_state() -> tuple[State, Twin]:
    state = State(Thresholds(), Capacity(max_apis=16, initial_apis=16))
    state.channel_index("main")
    twin = Twin()
    recs = [_ev(state, T0 + k, f"Api-{k % 16}", f"a{k % 16}", f"/r{k % 3}") for k in range(320)]
    recs += [_ev(state, T0 + 400 + k, "Api-5", "a5", "/r0") for k in range(30)]
    _feed(state, twin, recs)
    return state, twin


@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_chunked_copy_taken_while_apis_are_evicted_is_consistent(n: int) -> None:
    state, twin = _small_full_state()
    flood = [_ev(state, T0 + 1000 + k, f"New-{k}", f"n{k}") for k in range(3)]
    for r in flood:
        twin.add(state, r)
    lock = _EvictingLock(state, flood, n)
    copy = state.copy_chunked(lock, chunk_bytes=1)
    assert state.counters()["api_rows_evicted"] > 0
    assert copy.n_api_rows == state.n_api_rows
    for name in ("api_i64", "sub_i64", "route_i64"):
        assert (getattr(copy, name) == getattr(state, name)[: len(getattr(copy, name))]).all()
    kept = [a for a in twin.api if _api_row(state, a) >= 0]
    _check_figures(copy, twin, kept)
    _check_consistent(copy)


def test_the_route_metrics_follow_the_routes_when_apis_are_evicted() -> None:
    from tests.unit.export.test_export_series import FakeSidecar, by_attrs, metric  # noqa: PLC0415
    from vigie.export import _catalogue as C  # noqa: PLC0415
    from vigie.export._builder import Builder  # noqa: PLC0415
    from vigie.export._collect import collect  # noqa: PLC0415

    state, twin = _small_full_state()
    sidecar = FakeSidecar(state)
    builder = Builder()

    def requests() -> dict[str, int]:
        points = by_attrs(metric(builder.build(collect(sidecar)), C.API_REQUESTS))
        out: Counter[str] = Counter()
        for attrs, v in points.items():
            out[dict(attrs)["wso2.api.name"]] += v
        return dict(out)

    assert requests() == {a: c["req"] for a, c in twin.api.items()}
    _feed(state, twin, [_ev(state, T0 + 1000 + k, f"New-{k}", f"n{k}", "/new") for k in range(3)])
    assert state.counters()["api_rows_evicted"] > 0
    kept = {a: c["req"] for a, c in twin.api.items() if _api_row(state, a) >= 0}
    assert requests() == kept  # each kept API's own count, under its own name


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_an_export_collected_while_apis_are_evicted_counts_each_api_under_its_name(n: int) -> None:
    from tests.unit.export.test_export_series import FakeSidecar, by_attrs, metric  # noqa: PLC0415
    from vigie.export import _catalogue as C  # noqa: PLC0415
    from vigie.export._builder import Builder  # noqa: PLC0415
    from vigie.export._collect import collect  # noqa: PLC0415

    state, twin = _small_full_state()
    flood = [_ev(state, T0 + 1000 + k, f"New-{k}", f"n{k}", "/new") for k in range(3)]
    for r in flood:
        twin.add(state, r)
    sidecar = FakeSidecar(state, lock=_EvictingLock(state, flood, n))  # type: ignore[arg-type]
    frame = collect(sidecar, chunk_bytes=1)
    assert state.counters()["api_rows_evicted"] > 0
    points = by_attrs(metric(Builder().build(frame), C.API_REQUESTS))
    got: Counter[str] = Counter()
    for attrs, v in points.items():
        got[dict(attrs)["wso2.api.name"]] += v
    names = {state.string(int(a)) for a in frame.api_i64[: len(frame.api_i64), L.A_NAME]}
    # the frame is one state: before the eviction (all the old APIs) or after it (the kept)
    assert dict(got) == {a: c["req"] for a, c in twin.api.items() if a in names}
    assert ("New-2" in names) == (frame.row_epoch > 0)
