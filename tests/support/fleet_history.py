"""A 45-day WSO2-format history of two channels, split round-robin over 4 gateways per channel
as a load balancer would, for the fleet-equivalence test.

Each class with an absolute floor is built so that the whole traffic reaches the floor and no
single gateway's share does: a retry every 0.8 s (one gateway sees one every 3.2 s, past the
2 s retry gap), the same GET every 3 s (one gateway: every 12 s, past the 10 s window), 200
requests in 40 minutes 30 % 4xx (one gateway: 50 < 100), 12 throttled in 50 minutes (one
gateway: 3 < 10), 700 then 1,400 a week (one gateway: 350 < 1,000). Background consumers send
a little every day of the 45, on both channels.

The history is cut by event time into ``PHASES`` (``phase`` of an event: 0, 1, 2), so that a
test can stream one phase, kill an instance, stream the next to the survivor, and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.support.wso2log import App, LogWriter, at

GATEWAYS = 4  # per channel
CHANNELS = ("main", "sale")
DAYS = 45
# event-time cuts between the phases: [start, day 43), [day 43, day 44 10:40), [day 44 10:40, end)
CUTS = (at(days=43), at(days=44, hours=10, minutes=40))

Emit = Callable[[LogWriter], None]


@dataclass
class Channel:
    """One channel's events in arrival order at the load balancer (event time), each a
    closure writing one line, dealt round-robin to the gateways."""

    name: str
    events: list[tuple[datetime, Emit]] = field(default_factory=list)
    hitter: App | None = None

    def response(self, t: datetime, app: App, api: str, **kw: object) -> None:
        self.events.append((t, lambda w: w.response(t, app, api, **kw)))  # type: ignore[arg-type]

    def fault(self, t: datetime, app: App, api: str, **kw: object) -> None:
        self.events.append((t, lambda w: w.fault(t, app, api, **kw)))  # type: ignore[arg-type]


def phase_of(t: datetime) -> int:
    return sum(t >= c for c in CUTS)


def build(seed: int = 13) -> dict[str, Channel]:
    main, sale = Channel("main"), Channel("sale")
    quiet = [App(f"quiet-{k}") for k in range(6)]
    for day in range(DAYS):  # background: a few distinct POSTs a day on every channel
        for k, app in enumerate(quiet):
            ch = main if k % 2 == 0 else sale
            for j in range(6):
                ch.response(at(days=day, hours=6 + k, minutes=j * 7), app, "Accounts",
                            method="POST", resource=f"/a/{j}")  # fmt: skip
    grower, flat = App("grower"), App("flat")
    for day in range(31, DAYS):  # growing: 700 in the week before the last, then 1,400
        per_day = 100 if day < 38 else 200
        for k in range(per_day):
            main.response(at(days=day, hours=8, seconds=k * 30), grower, "Search", method="POST")
        for k in range(150):
            main.response(at(days=day, hours=8, seconds=k * 30 + 7), flat, "Search",
                          method="POST")  # fmt: skip
    # phase 1 (an instance is down): throttle_hitter, retry storms on both channels
    hitter = sale.hitter = App("hitter")
    for k in range(12):
        sale.fault(at(days=44, hours=7, minutes=k * 4.5), hitter, "Pricing", error_code=900803)
    for k in range(80):
        sale.response(at(days=44, hours=6, minutes=k * 3), hitter, "Pricing", method="POST",
                      resource=f"/p/{k}")  # fmt: skip
    storm, storm_sale = App("storm"), App("storm-sale")
    for k in range(120):
        main.response(at(days=44, hours=9, minutes=30, seconds=k * 0.8), storm, "Orders",
                      resource="/orders/{id}", status=503, latency_ms=30)  # fmt: skip
        sale.response(at(days=44, hours=10, seconds=k * 0.8), storm_sale, "Orders",
                      resource="/orders/{id}", status=503, latency_ms=30)  # fmt: skip
    # phase 2 (both again): error_prone and a redundant poller, in the last hour
    looper = App("looper")
    for k in range(200):
        main.response(at(days=44, hours=11, minutes=20, seconds=k * 12), looper, "Customers",
                      status=404 if k % 10 < 3 else 200, method="POST")  # fmt: skip
    poller = App("poller")
    for k in range(300):
        main.response(at(days=44, hours=11, minutes=15, seconds=k * 3), poller, "Catalog",
                      resource="/menu")  # fmt: skip
    for ch in (main, sale):
        ch.events.sort(key=lambda e: e[0])
    return {"main": main, "sale": sale}


def write(root: Path, seed: int = 13) -> History:
    """Write every gateway's log of every phase, each channel's whole log of every phase (one
    stream per channel), and every gateway's log of all phases."""
    root.mkdir(parents=True, exist_ok=True)
    chans = build(seed)
    h = History(root, hitter=chans["sale"].hitter)
    for name, ch in chans.items():
        per_gw = [[LogWriter(seed=seed + 100 * p + g) for g in range(GATEWAYS)] for p in range(3)]
        whole = [LogWriter(seed=seed + p) for p in range(3)]
        for n, (t, emit) in enumerate(ch.events):
            emit(per_gw[phase_of(t)][n % GATEWAYS])
            emit(whole[phase_of(t)])
            h.counts[phase_of(t)] += 1
        for p in range(3):
            for g in range(GATEWAYS):
                path = per_gw[p][g].write(root / f"{name}-gw{g}-phase{p}.log")
                h.phases[p].append(f"{name}={path}")
            h.whole[p].append(f"{name}={whole[p].write(root / f'{name}-whole-phase{p}.log')}")
        for g in range(GATEWAYS):  # one gateway's whole history (the per-pod layout)
            w = LogWriter(seed=seed + g)
            for n, (_, emit) in enumerate(ch.events):
                if n % GATEWAYS == g:
                    emit(w)
            h.per_gateway.append(f"{name}={w.write(root / f'{name}-gw{g}-whole.log')}")
    return h


@dataclass
class History:
    root: Path
    hitter: App | None  # the throttle hitter of phase 1 (sale)
    phases: list[list[str]] = field(default_factory=lambda: [[], [], []])  # replay sources
    whole: list[list[str]] = field(default_factory=lambda: [[], [], []])  # one per channel
    per_gateway: list[str] = field(default_factory=list)  # one source per gateway, all phases
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])  # events per phase

    @property
    def events(self) -> int:
        return sum(self.counts)
