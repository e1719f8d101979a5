"""``SplitStore``: a restarted instance reads a peer's rollups before the minute it started from
and its own after it. Two in-memory minute tables stand for the stores (the real path, over
``QueryData`` between two ``vigie serve``, is ``tests/e2e/test_fleet_equivalence.py``)."""

from __future__ import annotations

from typing import Any

from vigie.server.fleet import MINUTE_US, SplitStore
from vigie.store.query import AggQuery, AggRow
from vigie.store.rollup import MEASURES


class Minutes:
    """A minute table: (minute start, application) -> requests; aggregates as a store does."""

    def __init__(self, rows: dict[tuple[int, str], int]) -> None:
        self.rows = rows
        self.asked: list[tuple[int, int]] = []

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        self.asked.append((q.from_us, q.to_us))
        out: dict[tuple[Any, ...], int] = {}
        for (t, app), n in self.rows.items():
            if q.from_us <= t < q.to_us:
                key = tuple(t if g == "time" else app for g in q.group_by)
                out[key] = out.get(key, 0) + n
        m = MEASURES.index("requests")
        return [
            AggRow(k, [n if i == m else 0 for i in range(len(MEASURES))])
            for k, n in sorted(out.items())
        ]

    def changes(self, from_us: int, to_us: int) -> list[dict[str, object]]:
        return []

    def extent(self) -> tuple[int, int]:
        return 0, 0


def test_each_side_of_the_split_is_read_from_its_store() -> None:
    split = 10 * MINUTE_US
    truth = {(m * MINUTE_US, app): m + len(app) for m in range(20) for app in ("a", "bb")}
    # the peer saw everything until now; this instance missed minutes 4..9 (down), and its own
    # store has the minutes after the split only partly before it
    peer = Minutes(dict(truth))
    own = Minutes({k: v for k, v in truth.items() if not 4 * MINUTE_US <= k[0] < split})
    store = SplitStore(peer, own, split)
    for frm, to in [(0, 20), (2, 15), (10, 20), (0, 10), (9, 11)]:
        q = AggQuery("minute", frm * MINUTE_US, to * MINUTE_US, ("application_id",)).validate()
        got = {r.key: r.get("requests") for r in store.aggregate(q)}
        want: dict[tuple[Any, ...], int] = {}
        for (t, app), n in truth.items():  # the naive twin: every minute of the range, whole
            if q.from_us <= t < q.to_us:
                want[(app,)] = want.get((app,), 0) + n
        assert got == want, (frm, to)
        by_time = AggQuery(
            "minute", q.from_us, q.to_us, ("time",), bucket_us=MINUTE_US, histogram=False
        ).validate()
        minutes = {r.key[0]: r.get("requests") for r in store.aggregate(by_time)}
        assert minutes == {
            t: sum(n for (tt, _), n in truth.items() if tt == t)
            for t in range(q.from_us, q.to_us, MINUTE_US)
        }
    # no query crosses the split on either store
    assert peer.asked and all(to <= split for _, to in peer.asked)
    assert own.asked and all(frm >= split for frm, _ in own.asked)
    # the own store alone would miss minutes 4..9
    q = AggQuery("minute", 0, 20 * MINUTE_US, ("application_id",)).validate()
    assert sum(r.get("requests") for r in own.aggregate(q)) < sum(truth.values())


def test_before_the_gap_the_own_store_is_read() -> None:
    """The own store is whole before the last day it held when it went down (``gap_from``)."""
    peer, own = Minutes({(0, "a"): 5}), Minutes({(0, "a"): 5})
    store = SplitStore(peer, own, split_us=20 * MINUTE_US, gap_from_us=10 * MINUTE_US)
    q = AggQuery("minute", 0, 10 * MINUTE_US, ("application_id",)).validate()
    assert [r.get("requests") for r in store.aggregate(q)] == [5]
    assert own.asked and not peer.asked
    daily = AggQuery("daily", 0, 86_400_000_000, ("application_id",)).validate()
    assert [r.get("requests") for r in store.aggregate(daily)] == [5]  # a whole day: the peer's
    assert peer.asked == [(0, 86_400_000_000)]
