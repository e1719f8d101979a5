"""The inventory's dates looked up once per subscription row (``classify.silence.RowDates``):
the views and ``class_counts`` are the same from the cache as looked up afresh, a second call
looks nothing up, and a replaced inventory, a row reused by another subscription or a string
released make the rows concerned looked up again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.support.policy_traffic import DAY, T0, feed, rec
from vigie.classify import silence, views
from vigie.server.core import Sidecar
from vigie.settings import load_settings
from vigie.sources.inventory import NEVER, Api, Application, Inventory, Subscription
from vigie.state import layout as L
from vigie.state.engine import State

NOW = T0 + 60 * DAY


def _inventory(last_used: int = NOW - 40 * DAY, extra: tuple[str, ...] = ()) -> Inventory:
    apps = [Application(f"app-{k}", created_us=NOW - 90 * DAY) for k in range(6)]
    apps += [Application(a, created_us=NOW - 90 * DAY) for a in extra]
    subs = [
        Subscription(a.id, api, "v1", "Gold", "", NOW - 80 * DAY,
                     (last_used, NEVER, NOW - DAY, 0)[(i + j) % 4])
        for i, a in enumerate(apps) for j, api in enumerate(("Orders", "Stock"))
    ]  # fmt: skip
    subs.append(Subscription("app-young", "Orders", "v1", created_us=NOW - 2 * DAY))
    apis = [Api("Orders", "v1", created_us=NOW - 90 * DAY), Api("Stock", "v1")]
    return Inventory(apps, subs, apis, "", NOW - 3600_000_000)


def _state() -> State:
    st = State()
    _inventory().apply_to(st)
    # the dates know one more application's subscriptions than the rows hold
    st.inventory_dates = _inventory(extra=("app-late",)).dates()
    # vigie has observed the platform for a day: the dates decide dormant
    feed(st, [rec(NOW - DAY, "app-other", "Other"), rec(NOW, "app-other", "Other")])
    st.observed_since_us = NOW - DAY
    return st


def _picture(st: State) -> tuple[Any, ...]:
    return (
        views.class_counts(st, NOW),
        [s.to_json() for s in views.subscriptions(st, NOW)],
    )


def _cold(st: State) -> tuple[Any, ...]:
    """The views with every row looked up afresh (the cache dropped first and after)."""
    silence._CACHES.pop(st, None)
    out = _picture(st)
    silence._CACHES.pop(st, None)
    return out


def _lookups(st: State) -> int:
    cache = silence._CACHES.get(st)
    return cache.lookups if cache is not None else 0


def test_cached_dates_give_the_same_views_and_are_looked_up_once() -> None:
    st = _state()
    cold = _cold(st)
    assert cold[0]["dormant"] >= 3 and cold[0]["unknown"] >= 1  # the dates decided some
    first = _picture(st)
    looked = _lookups(st)
    assert looked >= 10
    assert _picture(st) == first == cold
    assert _lookups(st) == looked  # nothing looked up again


def test_a_new_inventory_is_looked_up_again() -> None:
    st = _state()
    before = _picture(st)
    # used recently after all: not dormant
    _inventory(last_used=NOW - 2 * DAY, extra=("app-late",)).apply_to(st)
    after = _picture(st)
    assert after != before and after == _cold(st)
    assert after[0]["dormant"] < before[0]["dormant"]


def test_a_row_reused_by_another_subscription_is_looked_up_again() -> None:
    st = _state()
    # a subscription seen once, long ago, then silent: dormant, not in the inventory
    feed(st, [rec(NOW - 50 * DAY, "app-gone", "Orders")])
    _picture(st)  # its row cached: no dates
    gone = st.interner.lookup("app-gone")
    (row,) = np.flatnonzero(st.sub_i64[: st.n_sub_rows, L.S_APP] == gone).tolist()
    assert st.evict(1) == 1 and st.sub_i64[row, L.S_KEY] == 0  # its row freed
    # a subscription the dates know (the same dates: the cache is kept) takes it
    dates = st.inventory_dates
    assert dates is not None and ("app-late", "carbon.super", "Orders", "v1") in dates.subs
    st.ensure_subscription("app-late", "Orders", "v1")
    assert st.inventory_dates is dates
    late = st.interner.lookup("app-late")
    assert st.sub_i64[row, L.S_APP] == late
    assert _picture(st) == _cold(st)
    # used a day ago by the inventory: no class (the row's old entry, no dates, said unknown)
    late_orders = [s for s in views.subscriptions(st, NOW)
                   if s.application_id == "app-late" and s.api == "Orders"]  # fmt: skip
    assert [s.classes for s in late_orders] == [["normal"]]


def test_released_strings_drop_the_cache() -> None:
    st = _state()
    _picture(st)
    cache = silence._CACHES[st]
    st.interner.released += 1  # as a compaction does
    _picture(st)
    assert silence._CACHES[st] is not cache


def test_status_is_the_same_from_the_cache(tmp_path: Path) -> None:
    """``Sidecar.status`` (what ``vigie status`` prints): its classes and counts are the
    same with the dates from the cache as looked up afresh."""
    settings = load_settings(env={}, overrides={"state_dir": str(tmp_path), "data_store": "off"})
    sc = Sidecar(settings)
    _inventory(extra=("app-late",)).apply_to(sc.state)
    feed(sc.state, [rec(NOW - DAY, "app-other", "Other"), rec(NOW, "app-other", "Other")])
    sc.state.observed_since_us = NOW - DAY

    def seen() -> tuple[Any, ...]:
        st = sc.status()
        return dict(st.classes), st.subscriptions, st.apis

    silence._CACHES.pop(sc.state, None)
    cold = seen()
    assert cold[0]["dormant"] >= 3
    assert seen() == seen() == cold
    assert silence._CACHES[sc.state].lookups == cold[1] - 1  # once each quiet row (not Other)
