"""``vigie.store.codes``: the throttle codes of each subscription as the rollups hold them,
against a naive count of the same records; the daily fallback when no minute is kept; and
``ThrottleCodes`` reading the document back (dominant code, busiest resource)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from tests.support.policy_traffic import HOUR, MINUTE, T0, Record, rec
from vigie.policy.codes import SubCodes, ThrottleCodes
from vigie.state.engine import State
from vigie.store.codes import CodesCache, throttle_codes
from vigie.store.service import ReplayRecorder
from vigie.wire.columns import StreamDecoder, StreamEncoder

NOW = T0 + 5 * HOUR


def _records() -> list[Record]:
    out = []
    for m in range(60):
        t = NOW - HOUR + m * MINUTE
        out += [rec(t + k, "app-a", "Orders") for k in range(10)]
        out.append(rec(t + 20, "app-a", "Orders", status=429, error_code=900803, flags=1))
        if m % 3 == 0:  # fewer 900804 than 900803: 900803 dominates
            out.append(rec(t + 21, "app-a", "Orders", status=429, error_code=900804, flags=1))
        out += [rec(t + 30 + k, "app-b", "Maps", resource="/tiles/{z}") for k in range(5)]
        out.append(rec(t + 40, "app-b", "Maps", status=429, error_code=900802, flags=1,
                       resource="/tiles/{z}"))  # fmt: skip
        out.append(rec(t + 41, "app-c", "Maps", status=429, error_code=900800, flags=1))
        out.append(rec(t + 42, "app-c", "Maps", status=403, error_code=900805, flags=1))
    return sorted(out, key=lambda r: r["event_time_us"])


def _store(root: Path, records: list[Record]) -> ReplayRecorder:
    state = State()
    recorder = ReplayRecorder(root, state)
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index("main"), 1 << 16, 1 << 20)
    for i in range(0, len(records), 1000):
        ev = dec.decode(enc.batch_from_records(records[i : i + 1000]))
        state.apply(ev)
        recorder.on_batch(ev)
    recorder.close()
    return recorder


def _naive(records: list[Record]) -> dict[tuple[str, str, str], Counter[int]]:
    out: dict[tuple[str, str, str], Counter[int]] = {}
    for r in records:
        code = int(r.get("error_code", 0))
        if code in (900800, 900802, 900803, 900804, 900806, 900807):
            key = (r["application_id"], r["api_name"], r["api_version"])
            out.setdefault(key, Counter())[code] += 1
    return out


def test_codes_by_subscription_match_a_naive_count(tmp_path: Path) -> None:
    records = _records()
    rec_ = _store(tmp_path / "store", records)
    doc = throttle_codes(rec_.store, NOW)
    assert "per-minute" in doc["window"]
    codes = ThrottleCodes.from_json(doc)
    naive = _naive(records)
    assert {k: dict(v.codes) for k, v in codes.subs.items()} == {
        k: dict(v) for k, v in naive.items()
    }
    assert codes.subs[("app-a", "Orders", "v1")].dominant() == 900803
    assert codes.subs[("app-b", "Maps", "v1")].resource() == ("GET", "/tiles/{z}")
    assert ("app-c", "Maps", "v1") in codes.subs  # 900800; its 900805 is not a policy's code
    assert 900805 not in codes.subs[("app-c", "Maps", "v1")].codes
    # busiest minutes over every consumer: Maps gets 5 + 1 + 1 + 1 (app-b, app-c) a minute
    per_minute = Counter(r["event_time_us"] // MINUTE for r in records if r["api_name"] == "Maps")
    assert codes.api_peak[("Maps", "v1")] == max(per_minute.values())
    tiles = Counter(
        r["event_time_us"] // MINUTE
        for r in records
        if r["api_name"] == "Maps" and r["resource_template"] == "/tiles/{z}"
    )
    assert codes.resource_peak[("Maps", "v1", "GET", "/tiles/{z}")] == max(tiles.values())


def test_without_minutes_the_codes_come_from_the_days(tmp_path: Path) -> None:
    records = _records()
    rec_ = _store(tmp_path / "store", records)
    shutil.rmtree(rec_.store.root / "minute")  # as after short_retention_days
    doc = throttle_codes(rec_.store, NOW)
    assert "daily" in doc["window"]
    codes = ThrottleCodes.from_json(doc)
    assert {k: dict(v.codes) for k, v in codes.subs.items()} == {
        k: dict(v) for k, v in _naive(records).items()
    }
    assert not codes.api_peak and not codes.resource_peak  # sized from the state's rates


def test_dominant_ties_go_to_the_lowest_code() -> None:
    assert SubCodes({900804: 3, 900803: 3}).dominant() == 900803
    assert SubCodes({900801: 9}).dominant() is None  # a hard limit names no policy
    assert SubCodes().dominant() is None


def test_the_cache_reads_again_only_after_a_write_or_another_window(tmp_path: Path) -> None:
    """``CodesCache``: the document of a "now" whose window covers the same rows comes from
    the cache and equals a fresh read; a write (the sink's generation) or a window over other
    rows reads again."""
    records = _records()
    first = [r for r in records if r["event_time_us"] < NOW - 30 * MINUTE]
    rec_ = _store(tmp_path / "store", first)
    cache = CodesCache(lambda: rec_.sink.generation)
    # "now"s of the same minute and across minute and hour edges: always a fresh read's answer
    nows = [NOW + s * 1_000_000 for s in (0, 1, 17, 59, 60, 61, 119, 3600, 3601)]
    for now in nows:
        assert cache.get(rec_.store, now) == throttle_codes(rec_.store, now), now
    assert cache.reads == 5 and cache.hits == 4  # 1-60 s share a window, so do 61-119 s
    doc = cache.get(rec_.store, NOW + 3602 * 1_000_000)
    assert cache.hits == 5 and doc is cache.get(rec_.store, NOW + 3603 * 1_000_000)
    # the rest of the hour written: read again, and the new throttled responses are in it
    generation = rec_.sink.generation
    state = rec_.state
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index("main"), 1 << 16, 1 << 20)
    rest = [r for r in records if r["event_time_us"] >= NOW - 30 * MINUTE]
    ev = dec.decode(enc.batch_from_records(rest))
    state.apply(ev)
    rec_.on_batch(ev)
    rec_.sink.flush()
    assert rec_.sink.generation > generation
    before = cache.get(rec_.store, NOW)
    assert cache.reads == 6 and before == throttle_codes(rec_.store, NOW)
    total = ThrottleCodes.from_json(before).subs[("app-a", "Orders", "v1")].codes[900803]
    assert total == 60  # every minute's, the first half's and the second's
