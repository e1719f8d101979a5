"""``auth_failing`` (vigie.state._security) against its naive twin, its bounds, its snapshot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import naive
from vigie.classify import security as views
from vigie.errors import ConfigError
from vigie.state import _security as S
from vigie.state.engine import State
from vigie.state.snapshot import read_snapshot, write_snapshot
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import StreamDecoder, StreamEncoder

T0 = 1_767_571_200_000_000  # 2026-01-05T00:00:00Z
MINUTE = 60_000_000
CODES = (900901, 900902, 900908, 0, 0, 0, 401)


def _random_batches(seed: int, n_batches: int) -> list[list[dict[str, int]]]:
    """Normal traffic of a few applications, failures of many IPs at low rates and of a few
    at floods, some late, gaps of more than an hour (episodes end)."""
    rng = np.random.default_rng(seed)
    t = T0
    out = []
    for _ in range(n_batches):
        t += int(rng.choice([MINUTE // 4, 3 * MINUTE, 70 * MINUTE], p=[0.8, 0.17, 0.03]))
        batch = []
        for _ in range(int(rng.integers(0, 60))):
            flood = rng.random() < 0.6
            ip = int(rng.integers(1, 4)) if flood else int(rng.integers(4, 200))
            code = int(rng.choice(CODES))
            status = 200 if code == 0 and rng.random() < 0.5 else (401 if code != 0 else 403)
            app = 0 if code != 0 or status != 200 else int(rng.integers(1, 5))
            if code == 900908:  # a known key not allowed here: the application is known
                app = int(rng.integers(1, 8))
            late = int(rng.integers(0, 90 * MINUTE)) if rng.random() < 0.05 else 0
            batch.append(
                {
                    "t": t - int(rng.integers(0, MINUTE // 4)) - late,
                    "ip": ip if rng.random() < 0.95 else 0,
                    "app": app,
                    "api": (int(rng.integers(1, 5)) << 32) | int(rng.integers(1, 3)),
                    "status": status,
                    "code": code,
                }
            )
        out.append(batch)
    return out


def _columns(batch: list[dict[str, int]]) -> dict[str, np.ndarray]:
    api = np.array([e["api"] for e in batch], dtype=np.int64)
    return {
        "event_time_us": np.array([e["t"] for e in batch], dtype=np.int64),
        "client_ip": np.array([e["ip"] for e in batch], dtype=np.int32),
        "application_id": np.array([e["app"] for e in batch], dtype=np.int32),
        "api_name": (api >> 32).astype(np.int32),
        "api_version": (api & 0xFFFFFFFF).astype(np.int32),
        "http_status": np.array([e["status"] for e in batch], dtype=np.uint16),
        "error_code": np.array([e["code"] for e in batch], dtype=np.int32),
    }


def _table_view(sec: S.Security) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for row in sec.held():
        r = sec.record(row)
        out[(r["kind"], r["key"])] = {
            "failures_last_hour": r["failures_last_hour"],
            "failures_total": r["failures_total"],
            "first_us": r["first_us"],
            "last_us": r["last_us"],
            "episode_first_us": r["episode_first_us"],
            "codes": sorted(r["codes"]),
            "n_others": len(r["others"]) + (1 if r["others_more"] else 0),
        }
    return out


def _run(batches: list[list[dict[str, int]]], min_failures: float) -> S.Security:
    sec = S.Security(rows=4)  # small: it grows
    for b in batches:
        sec.apply(_columns(b), min_failures, 1_000_000)
    return sec


@pytest.mark.parametrize("seed", range(6))
def test_rows_evidence_and_episodes_are_the_naive_twins(seed: int) -> None:
    batches = _random_batches(seed, 300)
    held, closed = naive.naive_auth_failing(batches, 40)
    sec = _run(batches, 40)
    got = _table_view(sec)
    for k in held:
        held[k]["n_others"] = min(held[k]["n_others"], S.OTHER_SLOTS + 1)
    assert got == held
    assert held, "the data must make someone hold the class"
    mine = sorted((e.kind, e.key, e.first_us, e.last_us) for e in sec.episodes)
    assert mine == sorted(closed)
    assert closed, "the data must close episodes"
    assert sec.failures == sum(
        naive.is_auth_failure(e["status"], e["code"], e["app"]) for b in batches for e in b
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 200 * MINUTE),  # offset
                st.integers(0, 3),  # ip
                st.integers(0, 2),  # app
                st.integers(1, 2),  # api
                st.sampled_from([(401, 900901), (403, 900908), (401, 0), (200, 0), (500, 0)]),
            ),
            max_size=30,
        ),
        max_size=20,
    ),
    st.integers(1, 12),
)
def test_property_any_stream_matches_the_twin(
    raw: list[list[tuple[int, int, int, int, tuple[int, int]]]], min_failures: int
) -> None:
    batches = [
        [
            {"t": T0 + o, "ip": ip, "app": app, "api": (api << 32) | 1, "status": s, "code": c}
            for o, ip, app, api, (s, c) in b
        ]
        for b in raw
    ]
    held, closed = naive.naive_auth_failing(batches, min_failures)
    sec = _run(batches, min_failures)
    assert _table_view(sec) == held
    assert sorted((e.kind, e.key, e.first_us, e.last_us) for e in sec.episodes) == sorted(closed)


def test_at_most_max_tracked_clients_the_coldest_evicted_and_counted() -> None:
    sec = S.Security(rows=4)
    # 50 IPs fail once each, a minute apart; then the flooding one
    for i in range(50):
        b = [{"t": T0 + i * MINUTE, "ip": 100 + i, "app": 0, "api": 1 << 32 | 1,
              "status": 401, "code": 900901}]  # fmt: skip
        sec.apply(_columns(b), 10, 20)
    ips = sorted(k for (kind, k) in sec.index if kind == S.K_IP)
    assert ips == list(range(130, 150))  # the 20 warmest
    assert sec.counters()["security_evicted_rows"] == 30
    flood = [{"t": T0 + 50 * MINUTE + k, "ip": 7, "app": 0, "api": 1 << 32 | 1,
              "status": 401, "code": 900901} for k in range(10)]  # fmt: skip
    sec.apply(_columns(flood), 10, 20)
    assert [sec.record(r)["key"] for r in sec.held() if sec.record(r)["kind"] == "ip"] == [7]
    assert len(sec.i64) <= 64  # bounded: rows reused, not grown without end


def _feed(state: State, events: list[tuple[int, str, str, str, int, int]]) -> None:
    """(t, client ip, application, api, status, code) through the wire codec."""
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index("main"), 1 << 16, 1 << 20)
    for i in range(0, len(events), 500):
        chunk = events[i : i + 500]
        cols = {
            "event_time_us": [e[0] for e in chunk],
            "client_ip": [enc.intern(e[1]) for e in chunk],
            "application_id": [enc.intern(e[2]) for e in chunk],
            "api_name": [enc.intern(e[3]) for e in chunk],
            "api_version": [enc.intern("v1")] * len(chunk),
            "http_status": [e[4] for e in chunk],
            "error_code": [e[5] for e in chunk],
            "uri_hash": list(range(i + 1, i + 1 + len(chunk))),
        }
        state.apply(dec.decode(enc.batch(cols)))


def test_state_views_and_snapshot(tmp_path: Any) -> None:
    th = Thresholds().replace(auth_min_failures=50)
    state = State(th)
    ev = [(T0 + k * 1_000_000, "h:00aa11bb22cc33dd", "", "Orders", 401, 900901) for k in range(60)]
    ev += [(T0 + k * 1_000_000, "10.0.0.9", "app-a", "Orders", 200, 0) for k in range(200)]
    ev += [(T0 + k * 1_000_000, "10.0.0.8", "", "Stock", 401, 900902) for k in range(5)]
    _feed(state, sorted(ev))
    clients = views.clients(state)
    held = [c for c in clients if c.classes == ["auth_failing"]]
    assert [(c.kind, c.key) for c in held] == [("api", "Orders v1"), ("ip", "h:00aa11bb22cc33dd")]
    assert {c.key for c in clients if c.classes == ["normal"]} == {"10.0.0.8", "Stock v1"}
    ip = held[1]
    assert ip.evidence["failures_last_hour"] == 60 and ip.evidence["codes"] == ["900901"]
    assert ip.evidence["apis"] == ["Orders v1"] and ip.hashed
    assert views.security_counts(state) == {"auth_failing": 1}
    back = read_snapshot(write_snapshot(state, tmp_path), th, state.capacity)
    assert [c.as_dict() for c in views.clients(back)] == [c.as_dict() for c in clients]


def test_a_threshold_out_of_range_is_refused_in_one_line() -> None:
    for bad in ({"auth_min_failures": 0}, {"max_tracked_clients": 1}):
        with pytest.raises(ConfigError, match="must be at least"):
            Thresholds().replace(**bad)
