"""The rollup kernel (vigie.store._rollup_kernels, driven by its owner ``Accumulator``) against
its naive twin (tests/support/naive.py ``NaiveRollup``) on random event streams: the minute
rows, their latency histograms and the daily rows, across growth, eviction and late events."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import naive
from vigie.store.rollup import Accumulator, Rows
from vigie.wire.columns import COLUMNS, ENGINE_DTYPES, METHOD_NAMES, Events, Interner

T0 = 1_764_547_200_000_000  # 2025-12-01T00:00:00Z
MINUTE = 60_000_000
CHANNELS = ("c0", "c1", "c2")
STRINGS = ["", *(f"s{k}" for k in range(1, 9))]


@st.composite
def batches(draw: Any) -> list[list[dict[str, int]]]:
    t = T0 + draw(st.integers(0, 10**10))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        batch = []
        for _ in range(draw(st.integers(0, 120))):
            step = draw(st.sampled_from(["same", "ms", "ms", "s", "min", "hour", "day", "back"]))
            t += {
                "same": 0,
                "ms": draw(st.integers(1, 999)) * 1000,
                "s": draw(st.integers(1, 40)) * 1_000_000,
                "min": draw(st.integers(1, 9)) * MINUTE,
                "hour": 3_600_000_000,
                "day": 86_400_000_000,
                "back": -draw(st.integers(1, 20)) * MINUTE,  # older than the eviction slack
            }[step]
            batch.append(
                {
                    "event_time_us": max(t, 1),
                    "api_name": draw(st.sampled_from([0, 1, 1, 2])),
                    "api_version": draw(st.sampled_from([3, 4])),
                    "resource_template": draw(st.integers(0, 2)),
                    "http_method": draw(st.sampled_from([0, 1, 2, 3])),
                    "application_id": draw(st.integers(0, 3)),
                    "application_name": draw(st.sampled_from([0, 5, 6])),
                    "http_status": draw(st.sampled_from([0, 99, 200, 304, 401, 429, 500, 503])),
                    "error_code": draw(st.sampled_from([0, 0, 900800, 900899, 900900, 101503])),
                    "flags": draw(st.sampled_from([0, 0, 1, 4, 5])),
                    "latency_us": draw(
                        st.sampled_from([0, 1, 7, 999, 250_000, 2_000_000, 2**32 - 1])
                    ),
                    "backend_latency_us": draw(st.integers(0, 100_000)),
                    "request_bytes": draw(st.sampled_from([-1, 0, 77])),
                    "response_bytes": draw(st.sampled_from([-1, 0, 512])),
                    "channel": draw(st.integers(0, 2)),
                }
            )
        out.append(batch)
    return out


def _events(records: list[dict[str, int]]) -> Events:
    cols: dict[str, Any] = {}
    for spec in COLUMNS:
        cols[spec.name] = np.array(
            [r.get(spec.name, spec.default) for r in records], dtype=ENGINE_DTYPES[spec.name]
        )
    return Events(cols, np.array([r["channel"] for r in records], dtype=np.uint8))


def _back(rows: Rows, name: str, i: int) -> int:
    """A key of a drained row as the number the events carried."""
    v = rows.keys[name][i]
    if name == "method":
        return {n: m for m, n in METHOD_NAMES.items()}[str(v)]
    if name == "channel":
        return CHANNELS.index(str(v))
    if name in ("minute_us", "day_us", "status", "error_code"):
        return int(v)
    return STRINGS.index(str(v))


def _measures(rows: Rows, key_names: tuple[str, ...]) -> dict[tuple[int, ...], list[int]]:
    out = {}
    for i in range(len(rows)):
        key = tuple(_back(rows, k, i) for k in key_names)
        assert key not in out, "one row per key"
        out[key] = [int(v) for v in rows.measures[i]]
    return out


MINUTE_KEY = (
    "minute_us",
    "api",
    "api_version",
    "resource",
    "method",
    "application_id",
    "application_name",
    "channel",
    "status",
    "error_code",
)
DAILY_KEY = ("day_us", *MINUTE_KEY[1:8], "error_code")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_rollup_kernel_equals_its_naive_twin(stream: list[list[dict[str, int]]]) -> None:
    acc = Accumulator(initial_rows=4)  # grows and evicts many times
    twin = naive.NaiveRollup()
    for batch in stream:
        acc.add(_events(batch))
        cols = {c.name: [r.get(c.name, c.default) for r in batch] for c in COLUMNS}
        twin.add(cols, [r["channel"] for r in batch])
    interner = Interner(STRINGS)
    drained = acc.drain(interner.string, list(CHANNELS))
    if not twin.measures:
        assert drained is None
        return
    assert drained is not None
    minute, daily = drained
    assert _measures(minute, MINUTE_KEY) == twin.measures
    hist = minute.dense_hist()
    for i in range(len(minute)):
        key = tuple(_back(minute, k, i) for k in MINUTE_KEY)
        want = np.zeros(hist.shape[1], dtype=np.int64)
        for b, c in twin.hist[key].items():
            want[b] = c
        assert hist[i].tolist() == want.tolist(), key
        lo, hi = minute.hist_off[i], minute.hist_off[i + 1]
        assert list(minute.hist_idx[lo:hi]) == sorted(twin.hist[key]), "ascending buckets"
    assert _measures(daily, DAILY_KEY) == twin.daily()
