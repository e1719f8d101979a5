"""The kernels against their naive twins (tests/support/naive.py), on random event streams."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import naive
from vigie.state import _tables as T
from vigie.state import _windows as W
from vigie.state import layout as L
from vigie.state import primitives as P
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import CLASS_NAMES, Thresholds
from vigie.wire.columns import COLUMNS, ENGINE_DTYPES, Events

T0 = 1_772_409_600_000_000  # 2026-03-02T00:00:00Z in us

SMALL = Thresholds(
    retry_min_retries=3,
    error_min_requests=4,
    redundant_min_requests=4,
    throttle_min_per_window=2,
    growing_min_requests=5,
    growing_min_previous_hours=0,
    wrong_channel_min_requests=2,
    hold_seconds=3600,
    throttle_lookback_seconds=1800,
)


@st.composite
def event_streams(draw: Any, in_order: bool = False) -> list[dict[str, int]]:
    """Random records; ``in_order``: in request-time order (as the rule reads them), else with
    jumps back in time."""
    n = draw(st.integers(1, 160))
    t = T0 + draw(st.integers(0, 10**9))
    out = []
    for _ in range(n):
        gap = draw(
            st.sampled_from(
                ["same", "ms", "ms", "ms", "s", "s", "min", "hour", "day"]
                + ([] if in_order else ["back", "back"])
            )
        )
        t += {
            "same": 0,
            "ms": draw(st.integers(1, 999)) * 1000,
            "s": draw(st.integers(1, 4_000_000)),
            "min": draw(st.integers(60, 7200)) * 1_000_000,
            "hour": draw(st.integers(1, 30)) * L.HOUR_US,
            "day": draw(st.integers(1, 9)) * L.DAY_US,
            "back": -draw(st.integers(0, 7_500_000_000)),
        }[gap]
        status = draw(st.sampled_from([200, 200, 200, 201, 304, 404, 401, 400, 429, 500, 503]))
        out.append(
            {
                "event_time_us": max(t, 1),
                "application_id": draw(st.integers(0, 3)),
                "api_name": draw(st.sampled_from([0, 10, 10, 11])),
                "api_version": draw(st.sampled_from([20, 21])),
                "resource_template": draw(st.integers(0, 2)),
                "http_method": draw(st.sampled_from([0, 1, 1, 2, 3])),
                "http_status": status,
                "error_code": draw(st.sampled_from([0, 0, 0, 900803, 900800, 101503, 900901])),
                "latency_us": min(
                    2**32 - 1,
                    draw(
                        st.sampled_from(
                            [0, 1, 7, 999, 1000, 250_000, 1_000_000, 2_000_000, 2**32 - 1]
                        )
                    )
                    + draw(st.integers(0, 3)),
                ),
                "response_bytes": draw(st.sampled_from([-1, 0, 512])),
                "uri_hash": draw(st.sampled_from([0, 0, 7, 8])),
                "flags": draw(st.sampled_from([0, 0, 1])),
                "channel": draw(st.integers(0, 2)),
            }
        )
    return out


def to_events(records: list[dict[str, int]]) -> Events:
    cols: dict[str, Any] = {}
    for spec in COLUMNS:
        cols[spec.name] = np.array(
            [r.get(spec.name, spec.default) for r in records], dtype=ENGINE_DTYPES[spec.name]
        )
    return Events(cols, np.array([r["channel"] for r in records], dtype=np.uint8))


def new_state(th: Thresholds, initial: int = 2) -> State:
    s = State(th, Capacity(initial_subscriptions=initial, initial_apis=1, detector_entries=1 << 12))
    for k in range(40):  # gids 1..39 exist so that app ids index app_channel
        s.interner.intern(f"s{k}")
    for ch in ("main", "sale", "preparation"):
        s.channel_index(ch)
    return s


def route_counts(state: State) -> dict[tuple[int, ...], int]:
    """Requests per route row, keyed by the row's full identity (API name and version,
    resource, method, status, error code, channel, throttled); each identity on one row."""
    out: dict[tuple[int, ...], int] = {}
    for r in state.route_i64[1 : state.n_route_rows]:
        a = state.api_i64[r[L.R_API]]
        fields = (L.R_RESOURCE, L.R_METHOD, L.R_STATUS, L.R_ERROR_CODE, L.R_CHANNEL, L.R_THROTTLED)
        ident = (int(a[L.A_NAME]), int(a[L.A_VERSION]), *(int(r[f]) for f in fields))
        assert ident not in out, ident
        out[ident] = int(r[L.R_REQ])
    return out


def apply_both(
    state: State, nv: naive.NaiveState, records: list[dict[str, int]], cuts: list[int]
) -> None:
    """The records to both, in batches cut at ``cuts`` (indices, any order, repeats allowed)."""
    bounds = sorted({0, len(records), *(min(c, len(records)) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        part = records[lo:hi]
        state.apply(to_events(part))
        nv.apply(
            {
                name: [r.get(name, -1 if name == "response_bytes" else 0) for r in part]
                for name in (c.name for c in COLUMNS)
            },
            [r["channel"] for r in part],
        )


def compare(state: State, nv: naive.NaiveState) -> None:
    hold_keys = [(a, n, v) for (a, n, v) in nv.subs]
    assert len(state.sub_rows()) == len(hold_keys)
    for key, row in nv.subs.items():
        app, api_name, ver = key
        api_row = int(T.table_find(state.api_tkeys, state.api_tvals, (api_name << 32) | ver))
        srow = int(T.table_find(state.sub_tkeys, state.sub_tvals, (app << 32) | api_row))
        assert srow >= 0, key
        s = state.sub_i64[srow]
        c = row.counts
        assert s[L.S_REQ] == c["req"]
        assert s[L.S_2XX] == c["2xx"] and s[L.S_3XX] == c["3xx"]
        assert s[L.S_4XX] == c["4xx"] and s[L.S_5XX] == c["5xx"]
        assert s[L.S_CLIENT_ERR] == c["client_err"] and s[L.S_THROTTLED] == c["throttled"]
        assert s[L.S_RETRIES] == c["retries"], "retries"
        assert s[L.S_REPEATS] == c["repeats"], "repeats"
        for ch in range(3):
            assert s[L.S_CH_REQ + ch] == c[f"ch{ch}"]
        assert s[L.S_FIRST_SEEN] == row.first_seen and s[L.S_LAST_SEEN] == row.last_seen
        assert dict(row.hist) == {b: int(v) for b, v in enumerate(state.sub_hist[srow]) if v}
        assert dict(row.rate) == {b: int(v) for b, v in enumerate(state.sub_rate[srow]) if v}
        assert s[L.S_MAX_RPM] == row.max_rpm
        # the windows themselves, as the rules see them after the last event
        win = [e for k, e in row.short if k > row.short_cur - L.SHORT_SLOTS]
        for f, field in (
            (L.SW_REQ, "req"),
            (L.SW_CLIENT_ERR, "cerr"),
            (L.SW_READS, "reads"),
            (L.SW_REPEATS, "reps"),
            (L.SW_THROTTLED, "thr"),
        ):
            assert s[L.S_SW_SUM + f] == sum(e[field] for e in win), field
        rwin = [e for k, e in row.retry if k > row.retry_cur - L.RETRY_SLOTS]
        assert s[L.S_RW_SUM + L.RW_REQ] == sum(e["req"] for e in rwin)
        assert s[L.S_RW_SUM + L.RW_RETRIES] == sum(e["retry"] for e in rwin)
        for ch in range(3):
            in_window = sum(1 for d, c in row.days if c == ch and d > row.day_cur - L.DAY_SLOTS)
            assert s[L.S_DC_SUM + ch] == in_window
        cur = int(s[L.S_HOUR_CUR])
        assert W.hours_sum(state.sub_hour, srow, cur, cur - 400, cur) == sum(row.hours.values())
        for cls in range(L.N_WINDOWED_CLASSES):
            assert state.cls_last[srow, cls] == row.last_true.get(cls, 0), L.WINDOWED_CLASS_NAMES[
                cls
            ]
            assert state.cls_first[srow, cls] == row.first_true.get(cls, 0)
            if cls in row.evidence:
                np.testing.assert_allclose(state.cls_evid[srow, cls], row.evidence[cls])
        closed = [
            (L.WINDOWED_CLASS_NAMES.index(e.class_name), e.first_us, e.last_us)
            for e in state.episodes.get(key, [])
        ]
        assert closed == row.episodes
    for (name, ver), row in nv.apis.items():
        arow = int(T.table_find(state.api_tkeys, state.api_tvals, (name << 32) | ver))
        a = state.api_i64[arow]
        assert a[L.A_REQ] == row.counts["req"] and a[L.A_THROTTLED] == row.counts["throttled"]
        assert dict(row.hist) == {b: int(v) for b, v in enumerate(state.api_hist[arow]) if v}
        assert state.api_cls_last[arow, 0] == row.last_true.get(L.C_GROWING, 0)
    assert int(state.route_i64[: state.n_route_rows, L.R_REQ].sum()) == sum(nv.routes.values())
    assert route_counts(state) == dict(nv.routes)
    assert state.now_us == nv.now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(), st.integers(1, 5))
def test_kernel_matches_naive_twin(records: list[dict[str, int]], n_batches: int) -> None:
    state = new_state(SMALL)
    nv = naive.NaiveState(SMALL.params(), app_channel={2: 1}, bounded_retries=True)
    state.app_channel[2] = 1
    step = max(1, math.ceil(len(records) / n_batches))
    for k in range(0, len(records), step):
        part = records[k : k + step]
        state.apply(to_events(part))
        nv.apply(
            {
                name: [r.get(name, -1 if name == "response_bytes" else 0) for r in part]
                for name in (*(c.name for c in COLUMNS),)
            },
            [r["channel"] for r in part],
        )
    compare(state, nv)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(), st.lists(st.integers(-2 * L.HOUR_US, 10 * L.HOUR_US), max_size=4))
def test_held_matches_naive_twin(records: list[dict[str, int]], offsets: list[int]) -> None:
    """State.held / api_held (the kernel's hold rule and growing at query time) against the
    twin's reading of its episodes, at moments around the last event."""
    state = new_state(SMALL)
    nv = naive.NaiveState(SMALL.params(), app_channel={2: 1}, bounded_retries=True)
    state.app_channel[2] = 1
    state.apply(to_events(records))
    nv.apply(
        {
            name: [r.get(name, -1 if name == "response_bytes" else 0) for r in records]
            for name in (c.name for c in COLUMNS)
        },
        [r["channel"] for r in records],
    )
    names = list(CLASS_NAMES)
    for now in [nv.now + d for d in (0, 1, *offsets)]:
        held, _ = state.held(now)
        for key, row in nv.subs.items():
            app, api_name, ver = key
            api_row = int(T.table_find(state.api_tkeys, state.api_tvals, (api_name << 32) | ver))
            srow = int(T.table_find(state.sub_tkeys, state.sub_tvals, (app << 32) | api_row))
            got = {
                c for c, name in enumerate(L.WINDOWED_CLASS_NAMES) if held[srow, names.index(name)]
            }
            assert got == nv.held(row, now), (key, now)
        api_held, _ = state.api_held(now)
        for (name, ver), row in nv.apis.items():
            arow = int(T.table_find(state.api_tkeys, state.api_tvals, (name << 32) | ver))
            assert bool(api_held[arow, 1]) == (L.C_GROWING in nv.held(row, now)), (name, now)


def test_kernel_matches_naive_twin_with_default_thresholds() -> None:
    rng = np.random.default_rng(3)
    records = []
    t = T0
    for _ in range(5000):
        t += int(rng.exponential(400_000))
        records.append(
            {
                "event_time_us": t,
                "application_id": int(rng.integers(1, 4)),
                "api_name": 10,
                "api_version": 20,
                "resource_template": int(rng.integers(0, 2)),
                "http_method": 1,
                "http_status": int(rng.choice([200, 200, 404, 503, 429])),
                "error_code": 0,
                "latency_us": int(rng.integers(1000, 90_000)),
                "response_bytes": -1,
                "uri_hash": 0,
                "flags": 0,
                "channel": int(rng.integers(0, 3)),
            }
        )
    th = Thresholds(retry_min_retries=5, error_min_requests=20, redundant_min_requests=20)
    state = new_state(th)
    nv = naive.NaiveState(th.params())
    state.apply(to_events(records))
    nv.apply(
        {c.name: [r.get(c.name, c.default) for r in records] for c in COLUMNS},
        [r["channel"] for r in records],
    )
    compare(state, nv)


def test_repeat_identity_uses_uri_hash_else_template_status_and_size() -> None:
    base = {
        "application_id": 1,
        "api_name": 10,
        "api_version": 20,
        "resource_template": 1,
        "http_method": 1,
        "http_status": 200,
        "channel": 0,
    }
    cases = [  # (uri_hash, response_bytes) of two reads 1 s apart, repeat?
        ((0, 100), (0, 100), True),
        ((0, 100), (0, 200), False),
        ((0, -1), (0, -1), True),
        ((0, -1), (0, 100), False),
        ((5, 100), (5, 200), True),
        ((5, 100), (6, 100), False),
    ]
    for a, b, repeat in cases:
        records = [
            base | {"event_time_us": T0, "uri_hash": a[0], "response_bytes": a[1]},
            base | {"event_time_us": T0 + 1_000_000, "uri_hash": b[0], "response_bytes": b[1]},
        ]
        state = new_state(Thresholds())
        state.apply(to_events(records))
        nv = naive.NaiveState(Thresholds().params())
        nv.apply({c.name: [r.get(c.name, c.default) for r in records] for c in COLUMNS}, [0, 0])
        compare(state, nv)
        assert state.sub_i64[state.sub_rows()[0], L.S_REPEATS] == int(repeat), (a, b)


@settings(deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_latency_bucket_matches_otlp_definition(us: int) -> None:
    assert P.latency_bucket(us) == naive.latency_bucket(us)


@pytest.mark.parametrize(
    ("us", "bucket_index"),
    [(1_000_000, -1), (1_000_001, 0), (2_000_000, 7), (500_000, -9), (1, L.LAT_MIN_INDEX)],
)
def test_latency_bucket_known_values(us: int, bucket_index: int) -> None:
    # 1 s sits at the top of bucket -1 (2^(-1/8), 1]; 2 s at the top of bucket 7
    b = P.latency_bucket(us)
    assert b - 1 + L.LAT_MIN_INDEX == bucket_index


@settings(deadline=None)
@given(st.integers(1, 2**22))
def test_rate_bucket_matches_naive(count: int) -> None:
    assert P.rate_bucket(count) == naive.rate_bucket(count)


@settings(deadline=None)
@given(st.lists(st.integers(1, 2**62), min_size=1, max_size=300, unique=True))
def test_table_behaves_like_a_dict(keys: list[int]) -> None:
    size = 1
    while size < 2 * len(keys):
        size <<= 1
    tk = np.zeros(size, dtype=np.int64)
    tv = np.full(size, -1, dtype=np.int32)
    for i, k in enumerate(keys):
        T.table_insert(tk, tv, k, i)
    for i, k in enumerate(keys):
        assert T.table_find(tk, tv, k) == i
    assert T.table_find(tk, tv, 2**62 + 1) == -1
    rows = np.array([*keys, 0, 0], dtype=np.int64)
    T.table_rebuild(tk, tv, rows, len(rows))
    for i, k in enumerate(keys):
        assert T.table_find(tk, tv, k) == i


def test_eviction_keeps_inventory_and_counts() -> None:
    th = Thresholds()
    state = State(th, Capacity(memory_cap_bytes=1, initial_subscriptions=64))
    assert state.max_sub_rows == 64
    pinned_row = state.ensure_subscription("inventory-app", "Orders", "v1", "Gold")
    records = [
        {
            "event_time_us": T0 + k * 1000,
            "application_id": state.interner.intern(f"flood-{k}"),
            "api_name": state.interner.intern("Orders"),
            "api_version": state.interner.intern("v1"),
            "http_status": 200,
            "channel": 0,
        }
        for k in range(500)
    ]
    state.channel_index("main")
    state.apply(to_events(records))
    assert state.evicted >= 500 - 63
    assert state.sub_i64[pinned_row, L.S_KEY] != 0  # the inventory row survived
    assert len(state.sub_rows()) <= 64
    # the newest flood rows are the ones kept
    newest = records[-1]["application_id"]
    api_row = int(state.sub_i64[pinned_row, L.S_API])
    assert T.table_find(state.sub_tkeys, state.sub_tvals, (newest << 32) | api_row) >= 0
