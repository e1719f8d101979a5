"""``inventory_refresh.apply_sliced``: the inventory applied a slice at a time under the lock
leaves the state exactly as ``Inventory.apply_to`` in one hold does, and takes one hold per
slice (plus one for the dates)."""

from __future__ import annotations

import threading
from types import TracebackType

import numpy as np

from vigie.classify import views
from vigie.server.inventory_refresh import apply_sliced
from vigie.sources.inventory import NEVER, Api, Application, Inventory, Subscription
from vigie.state.engine import State

T0 = 1_780_000_000_000_000
DAY = 86_400_000_000


class CountingLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holds = 0

    def __enter__(self) -> bool:
        self.holds += 1
        return self._lock.acquire()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


def _inventory() -> Inventory:
    apps = [Application(f"app-{k}", f"App {k}", f"owner-{k % 3}", ("web", "mobile", "")[k % 3],
                        T0 - 90 * DAY) for k in range(11)]  # fmt: skip
    apis = [Api(f"api-{k}", "v1", f"/a{k}", f"id-{k}", tenant=("", "t1.com")[k % 2],
                created_us=T0 - 60 * DAY, last_used_us=T0 - k * DAY) for k in range(7)]  # fmt: skip
    subs = [
        Subscription(a.id, f"api-{j}", "v1", "Gold", ("", "t1.com")[j % 2], T0 - 50 * DAY,
                     (NEVER, 0, T0 - 20 * DAY)[(i + j) % 3])
        for i, a in enumerate(apps) for j in range(7) if (i + j) % 4
    ]  # fmt: skip
    return Inventory(apps, subs, apis, "carbon.super", T0)


def _picture(st: State) -> dict[str, object]:
    n, m = st.n_sub_rows, st.n_api_rows
    return {
        "subs": [s.to_json() for s in views.subscriptions(st, T0)],
        "apis": [a.to_json() for a in views.apis(st, T0)],
        "sub_rows": st.sub_i64[:n].tolist(),
        "api_rows": st.api_i64[:m].tolist(),
        "app_info": dict(st.app_info),
        "channels": list(st.channels),
        "strings": len(st.interner),
        "dates": st.inventory_dates,
    }


def test_applied_in_slices_the_state_is_the_same_as_applied_whole() -> None:
    inv = _inventory()
    whole, sliced = State(), State()
    inv.apply_to(whole)
    lock = CountingLock()
    holds = apply_sliced(inv, sliced, lock, size=4)
    # 11 applications, 7 APIs, 58 subscriptions by 4, then the dates
    assert holds == lock.holds == 3 + 2 + 15 + 1
    assert len(inv.subscriptions) == 58
    assert whole.n_sub_rows == 58 and whole.inventory_dates is not None
    assert _picture(sliced) == _picture(whole)
    assert np.array_equal(sliced.sub_i64, whole.sub_i64)
    # applied again (the next refresh), still the same
    inv.apply_to(whole)
    apply_sliced(inv, sliced, lock, size=500)
    assert _picture(sliced) == _picture(whole)
