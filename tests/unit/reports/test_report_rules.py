"""The report's rules on their own: growth floored on tiny baselines, labels fitted to their
room, lines and bars broken where data is missing."""

from __future__ import annotations

from vigie.reports import build
from vigie.reports import charts as html
from vigie.store.query import AggRow
from vigie.store.rollup import MEASURES

DAY = build.DAY


def _row(requests: int) -> AggRow:
    m = [0] * len(MEASURES)
    m[MEASURES.index("requests")] = requests
    return AggRow(key=("app",), measures=m)


def test_growth_is_a_ratio_only_above_the_floor() -> None:
    # 10 days each half: 100 then 300 requests a day
    g = build._growth_of(_row(1000), _row(4000), 10 * DAY, 10 * DAY)
    assert g == {"growth": 2.0, "_new": False, "_delta": 200.0}
    # 1 request in the first half, 44,065 in the second: new, not +4,406,400 %
    g = build._growth_of(_row(1), _row(44_066), 10 * DAY, 10 * DAY)
    assert g["growth"] is None and g["_new"] is True and g["_delta"] > 4000
    # nothing before and too little now: neither a percentage nor new
    g = build._growth_of(None, _row(5), 10 * DAY, 10 * DAY)
    assert g["growth"] is None and g["_new"] is False
    # exactly at the floor, the ratio is shown
    floor = int(build.GROWTH_FLOOR_PER_DAY * 10)
    assert build._growth_of(_row(floor), _row(2 * floor), 10 * DAY, 10 * DAY)["growth"] == 0.0


def test_a_label_that_does_not_fit_is_ellipsized_with_a_tooltip() -> None:
    assert html.fit("Application 10", 120, 12) == "Application 10"
    long = "Logistics Partner Integration <Northern Europe>"
    out = html.fit(long, 120, 12)
    shown = out.split("<title>")[0]
    assert shown.endswith("…") and len(shown) <= 120 / (12 * html.CHAR_EM)
    assert "<title>Logistics Partner Integration &lt;Northern Europe&gt;</title>" in out


def test_missing_buckets_are_gaps_not_zeros() -> None:
    pts = [
        {"requests": 5, "successes": 5},
        None,
        {"requests": 3, "successes": 3},
    ]
    svg = html.stacked_bars(pts, ["a", "b", "c"])
    assert "b: no data" in svg and "a: 5 successes" in svg
    svg = html.lines([("x", [1, 2, None, 4, 5])], ["1", "2", "3", "4", "5"])
    assert svg.count("<polyline") == 2  # broken at the gap, not joined, not dropped to 0
