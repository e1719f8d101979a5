"""How long the sidecar's one lock is held (what every gateway stream's batch waits behind),
side by side with the way it was held before (the old way replayed on the same state, in the
same run, ratios printed)::

    python -m benchmarks locks [--quick]

A ``TimedLock`` replaces ``Sidecar.lock`` and records every hold (``time.perf_counter`` from
acquired to released). On an in-process ``Sidecar`` (``data_store = off``):

- **ingest @1,024 directives**: ``Sidecar.apply_batch`` of 1,024- and 8,192-event batches of
  the load client's platform (``_load.platform_batch``) with 1,024 directives in the table
  (half by application, half by API name and version; the plausibility counts of
  ``server.hits``), the longest hold of each batch. Old: the counts made under the lock, one
  pass over the batch per directive (``_count_each_directive``), batches of both ways in turns.
- **status @25k subscriptions**: ``Sidecar.status`` with an inventory of 25,000 dated
  subscriptions never seen (the dormant-by-inventory path of ``classify.views``). Old: the
  inventory's dates looked up per row at each call (``_status_uncached``).
- **class poll @25k subscriptions**: the data writer's poll of the classes
  (``store.changes.ChangeTracker.poll_classes``, under the lock at every flush), a batch
  applied between two polls. Old: every row looked at each poll (the tracker made to forget
  what it saw).
- **inventory refresh**: the 25,000-subscription inventory applied by
  ``server.inventory_refresh.apply_sliced`` (500 entries per hold) against
  ``Inventory.apply_to`` in one hold: to a fresh state (the first refresh: its longest hold is
  the state's tables growing, ``State`` doubling its subscription arrays, which no slicing
  avoids) and again (the next refresh: rows held, dates replaced).

Median and longest hold in ms; the ratio is old / new.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

from benchmarks._harness import Result
from benchmarks._load import T0, platform_batch
from vigie.classify import silence
from vigie.server.core import Sidecar
from vigie.server.inventory_refresh import apply_sliced
from vigie.settings import load_settings
from vigie.sources.inventory import Api, Application, Inventory, Subscription
from vigie.store.changes import ChangeTracker
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire import tenants
from vigie.wire.columns import Events, StreamEncoder

DAY_US = 86_400_000_000


class TimedLock:
    """A ``threading.Lock`` that records how long each hold lasted (seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t = 0.0
        self.holds: list[float] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._t = time.perf_counter()
        return got

    def release(self) -> None:
        self.holds.append(time.perf_counter() - self._t)
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def take(self) -> list[float]:
        out, self.holds = self.holds, []
        return out


def _sidecar(tmp: str) -> tuple[Sidecar, TimedLock]:
    settings = load_settings(env={}, overrides={"state_dir": tmp, "data_store": "off"})
    sc = Sidecar(settings)
    lock = TimedLock()
    sc.lock = lock  # type: ignore[assignment]
    return sc, lock


def _ms(holds: list[float]) -> tuple[float, float]:
    return statistics.median(holds) * 1e3, max(holds) * 1e3


def _result(what: str, new: list[float], old: list[float], old_label: str) -> list[Result]:
    (med, top), (omed, otop) = _ms(new), _ms(old)
    return [
        Result(f"{what}: median hold", "ms", med, naive=omed, naive_label=old_label,
               higher_is_better=False, extra={"holds": len(new)}),
        Result(f"{what}: longest hold", "ms", top, naive=otop, naive_label=old_label,
               higher_is_better=False),
    ]  # fmt: skip


# ---- ingest with directives --------------------------------------------------------------------
def _directives(sc: Sidecar, n: int) -> None:
    for k in range(n):
        d = dpb.Directive(
            id=f"d{k:04d}", mode=dpb.DIRECTIVE_MODE_SHADOW,
            action=dpb.DIRECTIVE_ACTION_BLOCK, reason="bench",
            expires_at_us=int(time.time() * 1e6) + DAY_US,
        )  # fmt: skip
        if k % 2:
            d.application_id = f"app-{k % 600:04d}"
        else:
            d.api_name = f"api-{k % 600:03d}"
            d.api_version = "v1" if k % 4 else ""
        sc.directives.put(d, "bench", "bench")


class _Before:
    """The sidecar as it counted before: ``GatewayScopes`` seen as watching nothing (no
    groups made, nothing added after the lock) and ``State.apply`` followed, under the lock,
    by the counts one directive at a time."""

    def __init__(self, sc: Sidecar, gateway_id: str, channel: str) -> None:
        self.sc, self.real, self.apply = sc, sc.gateway_scopes, sc.state.apply
        count = _count_each_directive(sc)

        def apply(ev: Events) -> None:
            self.apply(ev)
            count(gateway_id, channel, ev, sc.state.interner)

        self.counting_apply = apply
        self.watching = False

    def follow(self, table: Any) -> None:
        self.real.follow(table)

    def add(self, *args: Any) -> None:
        pass

    def __enter__(self) -> None:
        self.sc.gateway_scopes = self  # type: ignore[assignment]
        self.sc.state.apply = self.counting_apply  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        self.sc.gateway_scopes = self.real
        self.sc.state.apply = self.apply  # type: ignore[method-assign]


def _count_each_directive(sc: Sidecar) -> Callable[..., None]:
    """The plausibility counts as they were made before: under the sidecar's lock, one pass
    over the batch's columns per directive (``GatewayScopes.count`` of main at cd6adfd)."""
    scopes = sc.gateway_scopes

    def count(gateway_id: str, channel: str, ev: Any, interner: Any) -> None:
        api_col, app_col = ev["api_name"], ev["application_id"]
        by_name: dict[str, list[int]] = {}
        for g in np.unique(api_col).tolist():
            by_name.setdefault(tenants.split(interner.string(g))[1], []).append(g)
        for w in scopes._watch.values():
            app, api, version, ch = w.scope
            if ch and ch != channel:
                continue
            parts = []
            if app:
                gid = interner.lookup(app)
                if gid is None:
                    continue
                parts.append(app_col == gid)
            if api:
                if api not in by_name:
                    continue
                keep = by_name[api]
                parts.append(api_col == keep[0] if len(keep) == 1 else np.isin(api_col, keep))
                if version:
                    vid = interner.lookup(version)
                    if vid is None:
                        continue
                    parts.append(ev["api_version"] == vid)
            mask = parts[0] if len(parts) == 1 else np.logical_and.reduce(parts)
            n = int(np.count_nonzero(mask))
            if n:
                w.sent[gateway_id] = w.sent.get(gateway_id, 0) + n

    return count


def ingest(quick: bool, events: int = 8192) -> list[Result]:
    n_batches = 40 if quick else 200
    with tempfile.TemporaryDirectory(prefix="vigie-bench-locks-") as tmp:
        sc, lock = _sidecar(tmp)
        _directives(sc, 1024)
        gs, dec = sc.open_stream(tpb.Hello(gateway_id="gw-1", channel="main"), "bench")
        enc = StreamEncoder()
        rng = np.random.default_rng(7)
        batches = []
        warm = 60  # kernels compiled, every row made and the tables grown before the turns
        for k in range(n_batches + warm):
            cols = platform_batch(enc, events, rng, T0 + k * 1_000_000)
            b = enc.batch(cols)
            b.sequence = k + 1
            batches.append(b)
        for b in batches[:warm]:
            sc.apply_batch(gs, dec, b)
        rest = batches[warm:]
        lock.take()
        holds: dict[str, list[float]] = {"new": [], "old": []}
        before = _Before(sc, "gw-1", "main")
        for i, b in enumerate(rest):  # the two ways in turns (the machine's load drifts)
            way = "old" if i % 2 else "new"
            if way == "old":
                with before:
                    sc.apply_batch(gs, dec, b)
            else:
                sc.apply_batch(gs, dec, b)
            holds[way].append(max(lock.take()))
        return _result(f"ingest @1,024 directives, {events:,}-event batches", holds["new"],
                       holds["old"],
                       "counted per directive, under the lock")  # fmt: skip


# ---- status with a dated inventory -------------------------------------------------------------
def _inventory(n_subs: int, now_us: int) -> Inventory:
    n_apis = 500
    apps = [Application(f"inv-app-{k:05d}", f"App {k}", "owner", "", now_us - 90 * DAY_US)
            for k in range(n_subs // n_apis)]  # fmt: skip
    apis = [Api(f"inv-api-{k:03d}", "v1", f"/inv{k}/v1", created_us=now_us - 90 * DAY_US)
            for k in range(n_apis)]  # fmt: skip
    subs = [
        Subscription(a.id, f"inv-api-{j:03d}", "v1", "Gold", "", now_us - 80 * DAY_US,
                     now_us - 40 * DAY_US)
        for j in range(n_apis) for a in apps
    ]  # fmt: skip
    return Inventory(apps, subs, apis, "carbon.super", now_us - 60_000_000)


def status(quick: bool) -> list[Result]:
    calls = 6 if quick else 20
    now_us = int(time.time() * 1e6)
    inv = _inventory(25_000, now_us)
    with tempfile.TemporaryDirectory(prefix="vigie-bench-locks-") as tmp:
        sc, lock = _sidecar(tmp)
        inv.apply_to(sc.state)
        gs, dec = sc.open_stream(tpb.Hello(gateway_id="gw-1", channel="main"), "bench")
        enc = StreamEncoder()
        b = enc.batch(platform_batch(enc, 1024, np.random.default_rng(3), now_us - 1_000_000))
        b.sequence = 1
        sc.apply_batch(gs, dec, b)
        sc.status()  # warmed
        lock.take()
        holds: dict[str, list[float]] = {"new": [], "old": []}
        for i in range(calls):
            way = "old" if i % 2 else "new"
            if way == "old":
                _status_uncached(sc)
            else:
                sc.status()
            holds[way].append(max(lock.take()))
        return _result("status @25k subscriptions", holds["new"], holds["old"],
                       "dates looked up per row, each call")  # fmt: skip


def poll(quick: bool) -> list[Result]:
    """The data writer's poll of the classes (``SidecarData._poll``: ``ChangeTracker.
    poll_classes`` under the sidecar's lock, every flush) at 25,000 subscriptions, a batch
    applied between two polls; old: every row looked at (the tracker made to forget)."""
    polls = 6 if quick else 20
    now_us = int(time.time() * 1e6)
    inv = _inventory(25_000, now_us)
    with tempfile.TemporaryDirectory(prefix="vigie-bench-locks-") as tmp:
        sc, lock = _sidecar(tmp)
        inv.apply_to(sc.state)
        gs, dec = sc.open_stream(tpb.Hello(gateway_id="gw-1", channel="main"), "bench")
        enc = StreamEncoder()
        rng = np.random.default_rng(3)
        tracker = ChangeTracker()
        holds: dict[str, list[float]] = {"new": [], "old": []}
        for i in range(polls + 1):
            b = enc.batch(platform_batch(enc, 1024, rng, now_us - 1_000_000 + i * 1000))
            b.sequence = i + 1
            sc.apply_batch(gs, dec, b)
            way = "old" if i % 2 else "new"
            if way == "old":
                tracker._released = -2  # every row looked at, as before
            lock.take()
            with sc.lock:
                tracker.poll_classes(sc.state)
            if i:  # the first poll sees every row either way
                holds[way].append(max(lock.take()))
        return _result("class poll @25k subscriptions", holds["new"], holds["old"],
                       "every row looked at, each poll")  # fmt: skip


def _status_uncached(sc: Sidecar) -> None:
    """``Sidecar.status`` with every row's inventory dates looked up again, as before the
    cache (``classify.silence.RowDates``, dropped first)."""
    silence._CACHES.pop(sc.state, None)
    sc.status()


# ---- the inventory refresh --------------------------------------------------------------------
def refresh(quick: bool) -> list[Result]:
    """The first refresh (every row made, the tables grown) and the next one (the rows held,
    the dates replaced), each in a fresh sidecar, the two ways alternated."""
    now_us = int(time.time() * 1e6)
    inv = _inventory(25_000, now_us)
    first: dict[str, list[float]] = {"new": [], "old": []}
    again: dict[str, list[float]] = {"new": [], "old": []}
    for i in range(2 if quick else 4):
        way = "old" if i % 2 else "new"
        with tempfile.TemporaryDirectory(prefix="vigie-bench-locks-") as tmp:
            sc, lock = _sidecar(tmp)
            for holds in (first, again):
                lock.take()
                if way == "old":
                    with sc.lock:
                        inv.apply_to(sc.state)
                else:
                    apply_sliced(inv, sc.state, sc.lock)
                holds[way].extend(lock.take())
    label = "applied in one hold"
    return [
        *_result("first inventory refresh, 25k subscriptions", first["new"], first["old"], label),
        *_result("next inventory refresh, 25k subscriptions", again["new"], again["old"], label),
    ]


def run(quick: bool) -> list[Result]:
    return [
        *ingest(quick, 1024),
        *ingest(quick, 8192),
        *status(quick),
        *poll(quick),
        *refresh(quick),
    ]


if __name__ == "__main__":  # one part: python -m benchmarks.bench_locks ingest [--quick]
    import sys

    from benchmarks._harness import table

    parts = {"ingest": ingest, "status": status, "poll": poll, "refresh": refresh}
    quick = "--quick" in sys.argv
    names = [a for a in sys.argv[1:] if a != "--quick"] or list(parts)
    print(table([r for n in names for r in parts[n](quick)]))
