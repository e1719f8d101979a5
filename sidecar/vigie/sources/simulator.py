"""A load generator that speaks the wire contract as WSO2 gateways with the handler would.

Four channels (one gateway stream each), hundreds of applications subscribed to tens of APIs,
a morning peak, and a few consumers that misbehave in the ways vigie recognises: a retry storm,
an error loop, useless repeated reads, throttle hitting, calls through the wrong channel, steady
growth (visible after a backfill of past days), and subscriptions nobody uses (in the
inventory the simulator writes).

Event generation is vectorised: one numpy draw per tick for the whole platform.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
import numpy as np
import numpy.typing as npt

from vigie import __version__
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc
from vigie.wire.columns import StreamEncoder

log = logging.getLogger(__name__)

CHANNELS: Final = ("main", "sale", "preparation", "delivery")
CHANNEL_WEIGHTS: Final = (0.5, 0.2, 0.15, 0.15)
METHOD_GET, METHOD_POST, METHOD_PUT, METHOD_DELETE = 1, 3, 4, 5
API_WORDS: Final = (
    "Orders",
    "Catalog",
    "Stock",
    "Pricing",
    "Customers",
    "Payments",
    "TrackAndTrace",
    "Delivery",
    "Returns",
    "Loyalty",
    "Stores",
    "Promotions",
    "Invoices",
    "Carts",
    "Search",
)
RESOURCES: Final = ("/items", "/items/{id}", "/search", "/status", "/summary")
DAY_S: Final = 86_400.0


def diurnal(hour_of_day: npt.NDArray[np.float64] | float) -> Any:
    """Share of the peak rate at an hour of the day (UTC): a morning peak around 09:00, a
    smaller one mid-afternoon, quiet nights."""
    h = np.asarray(hour_of_day, dtype=np.float64)
    v = 0.12 + 0.88 * np.exp(-(((h - 9.0) / 2.2) ** 2)) + 0.45 * np.exp(-(((h - 15.0) / 3.0) ** 2))
    return v / 1.0


@dataclass(slots=True)
class Misbehaviour:
    kind: str  # retry_storm, error_prone, redundant, throttle_hitter, wrong_channel, growing
    sub: int  # subscription index
    rate: float  # requests per second of its own traffic


@dataclass(slots=True)
class Platform:
    """The simulated platform: applications, APIs, subscriptions and who misbehaves."""

    app_ids: list[str]
    app_names: list[str]
    app_owners: list[str]
    app_channel: npt.NDArray[np.int64]
    api_names: list[str]
    api_versions: list[str]
    sub_app: npt.NDArray[np.int64]
    sub_api: npt.NDArray[np.int64]
    sub_tier: list[str]
    weights: npt.NDArray[np.float64]  # share of the normal traffic per subscription
    idle: npt.NDArray[np.bool_]  # subscriptions that never call (dormant)
    misbehaviours: list[Misbehaviour] = field(default_factory=list)
    # WSO2 tenant of each API ("" = the super tenant); empty: every API is the super tenant's
    api_tenants: list[str] = field(default_factory=list)

    def tenant_of(self, api: int) -> str:
        return self.api_tenants[api] if self.api_tenants else ""

    def context_of(self, api: int) -> str:
        """The API's context; APIM prefixes a tenant's contexts with /t/DOMAIN."""
        t = self.tenant_of(api)
        base = f"/{self.api_names[api].lower()}/{self.api_versions[api]}"
        return f"/t/{t}{base}" if t else base

    def _tenant(self, api: int) -> dict[str, str]:
        t = self.tenant_of(api)
        return {"tenant": t} if t else {}

    def inventory(self) -> dict[str, Any]:
        return {
            "applications": [
                {"id": a, "name": n, "owner": o, "channel": CHANNELS[int(c)]}
                for a, n, o, c in zip(
                    self.app_ids, self.app_names, self.app_owners, self.app_channel, strict=True
                )
            ],
            "subscriptions": [
                {
                    "application_id": self.app_ids[int(a)],
                    "api": self.api_names[int(p)],
                    "api_version": self.api_versions[int(p)],
                    "tier": t,
                }
                | self._tenant(int(p))
                for a, p, t in zip(self.sub_app, self.sub_api, self.sub_tier, strict=True)
            ],
            "apis": [
                {"name": n, "version": v, "context": self.context_of(k)} | self._tenant(k)
                for k, (n, v) in enumerate(zip(self.api_names, self.api_versions, strict=True))
            ],
        }

    def write_inventory(self, path: Path) -> None:
        path.write_text(json.dumps(self.inventory(), indent=1))


# the tenants of a multi-tenant platform, after the super tenant
TENANTS: Final = ("acme.com", "globex.com", "initech.com")


def build_platform(apps: int = 300, apis: int = 60, seed: int = 7, tenants: int = 1) -> Platform:
    """A platform; with ``tenants`` > 1, API k belongs to tenant k % tenants (0: the super
    tenant) and has the name and version of API k - k % tenants: every tenant has an API of
    the same name and version as the super tenant's (an API is tenant x name x version)."""
    rng = np.random.default_rng(seed)
    if apps < 10 or apis < 3:
        raise ValueError("the simulator needs at least 10 applications and 3 APIs")
    if not 1 <= tenants <= len(TENANTS) + 1:
        raise ValueError(f"the simulator makes 1 to {len(TENANTS) + 1} tenants")
    app_ids = [
        f"{int(rng.integers(1 << 32)):08x}-{k:04x}-4{k % 999:03d}-a{k % 777:03d}-"
        f"{int(rng.integers(1 << 48)):012x}"
        for k in range(apps)
    ]
    app_names = [f"app-{k:03d}" for k in range(apps)]
    app_owners = [f"team-{k % 40:02d}" for k in range(apps)]
    app_channel = rng.choice(len(CHANNELS), size=apps, p=CHANNEL_WEIGHTS)
    api_names = [
        f"{API_WORDS[k % len(API_WORDS)]}{'' if k < len(API_WORDS) else k // len(API_WORDS)}"
        for k in range(apis)
    ]
    api_versions = [f"v{1 + (k % 3)}" for k in range(apis)]
    api_tenants: list[str] = []
    if tenants > 1:
        api_tenants = [TENANTS[k % tenants - 1] if k % tenants else "" for k in range(apis)]
        api_names = [api_names[k - k % tenants] for k in range(apis)]
        api_versions = [api_versions[k - k % tenants] for k in range(apis)]
    sub_app_l: list[int] = []
    sub_api_l: list[int] = []
    for a in range(apps):
        for p in rng.choice(apis, size=int(rng.integers(1, 6)), replace=False):
            sub_app_l.append(a)
            sub_api_l.append(int(p))
    sub_app = np.array(sub_app_l)
    sub_api = np.array(sub_api_l)
    n = len(sub_app)
    sub_tier = [str(t) for t in rng.choice(["Bronze", "Silver", "Gold", "Unlimited"], size=n)]
    weights = rng.zipf(1.6, size=n).astype(np.float64)
    weights = np.minimum(weights, 200.0)
    idle = np.zeros(n, dtype=np.bool_)
    idle[rng.choice(n, size=max(3, n // 40), replace=False)] = True
    weights[idle] = 0.0
    weights /= weights.sum()
    # a few named consumers that misbehave, each on a subscription of its own
    specials = [
        ("retry_storm", "Courier-Tracker", 0.5),
        ("error_prone", "Legacy-Portal", 4.0),
        ("redundant", "Store-Widget", 4.0),
        ("throttle_hitter", "Promo-Bot", 0.5),
        ("wrong_channel", "Pick-App", 3.0),
        ("growing", "Mobile-Shop", 0.5),
    ]
    mis: list[Misbehaviour] = []
    for kind, name, rate in specials:
        a = len(app_ids)
        app_ids.append(f"{kind.replace('_', '')[:8]:0<8}-0000-4000-a000-{a:012x}")
        app_names.append(name)
        app_owners.append(f"team-{a % 40:02d}")
        app_channel = np.append(app_channel, 2 if kind == "wrong_channel" else 0)
        p = int(rng.integers(apis))
        sub_app = np.append(sub_app, a)
        sub_api = np.append(sub_api, p)
        sub_tier.append("Silver")
        weights = np.append(weights, 0.0)
        idle = np.append(idle, False)
        mis.append(Misbehaviour(kind, len(sub_app) - 1, rate))
    return Platform(
        app_ids,
        app_names,
        app_owners,
        app_channel,
        api_names,
        api_versions,
        sub_app,
        sub_api,
        sub_tier,
        weights,
        idle,
        mis,
        api_tenants,
    )


@dataclass(slots=True)
class Generated:
    """Events of one tick, platform-wide, as index columns (not yet dictionary-encoded)."""

    t_us: npt.NDArray[np.int64]
    sub: npt.NDArray[np.int64]
    channel: npt.NDArray[np.int64]
    resource: npt.NDArray[np.int64]
    method: npt.NDArray[np.int64]
    status: npt.NDArray[np.int64]
    error_code: npt.NDArray[np.int64]
    latency_us: npt.NDArray[np.int64]
    uri_hash: npt.NDArray[np.uint64]
    flags: npt.NDArray[np.int64]
    request_bytes: npt.NDArray[np.int64]
    response_bytes: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.t_us)


class TrafficModel:
    """Draws the platform's events for any interval of event time."""

    def __init__(
        self,
        platform: Platform,
        peak_tps: float,
        seed: int = 11,
        growth_origin_s: float | None = None,
        origin_s: float = 0.0,
    ) -> None:
        self.p = platform
        self.peak_tps = peak_tps
        self.rng = np.random.default_rng(seed)
        self.growth_origin_s = growth_origin_s
        self.origin_s = origin_s  # the time patterns (storms, bursts) start from
        self._redundant_hash = np.uint64(0x5EED5EED5EED5EED)

    def _normal(self, t0: float, t1: float, rate_scale: float) -> Generated:
        rng = self.rng
        mid_hour = ((t0 + t1) / 2 % DAY_S) / 3600.0
        lam = self.peak_tps * float(diurnal(mid_hour)) * (t1 - t0) * rate_scale
        n = int(rng.poisson(lam))
        sub = rng.choice(len(self.p.weights), size=n, p=self.p.weights)
        t = np.sort(rng.uniform(t0, t1, size=n))
        status = rng.choice(
            [200, 201, 304, 404, 401, 500, 503],
            size=n,
            p=[0.93, 0.03, 0.02, 0.012, 0.004, 0.002, 0.002],
        )
        method = rng.choice(
            [METHOD_GET, METHOD_POST, METHOD_PUT, METHOD_DELETE], size=n, p=[0.7, 0.2, 0.06, 0.04]
        )
        err = np.where(status == 401, 900901, np.where(status >= 500, 101503, 0))
        lat = np.minimum(rng.lognormal(math.log(40_000), 0.6, size=n), 60e6).astype(np.int64)
        return Generated(
            t_us=(t * 1e6).astype(np.int64),
            sub=sub,
            channel=self.p.app_channel[self.p.sub_app[sub]],
            resource=rng.integers(len(RESOURCES), size=n),
            method=method,
            status=status,
            error_code=err,
            latency_us=lat,
            uri_hash=rng.integers(1, np.iinfo(np.int64).max, size=n).astype(np.uint64),
            flags=np.zeros(n, dtype=np.int64),
            request_bytes=np.where(method == METHOD_GET, 0, rng.integers(200, 4000, size=n)),
            response_bytes=rng.integers(100, 20_000, size=n),
        )

    def _special(self, m: Misbehaviour, t0: float, t1: float, rate_scale: float) -> Generated:
        rng = self.rng
        rate = m.rate * rate_scale
        kind = m.kind
        if kind == "growing" and self.growth_origin_s is not None:
            days = max(0.0, (t0 - self.growth_origin_s) / DAY_S)
            rate *= 1.07**days
        o = self.origin_s
        if kind == "throttle_hitter":
            # bursts of 20 req/s for 3 s every minute, throttled after the first 5
            first = o + 5.0 + math.ceil((t0 - o - 5.0) / 60.0) * 60.0
            starts = np.arange(first, t1, 60.0)
            t = (
                np.concatenate([s + np.arange(60) * 0.05 for s in starts])
                if len(starts)
                else np.empty(0)
            )
            t = np.concatenate([t, rng.uniform(t0, t1, size=rng.poisson(rate * (t1 - t0)))])
        elif kind == "retry_storm":
            # storms of 90 s every 5 minutes: a retry every 200 ms
            grid = o + np.arange(math.ceil((t0 - o) / 0.2), math.ceil((t1 - o) / 0.2)) * 0.2
            t = grid[((grid - o) % 300.0) < 90.0]
            t = np.concatenate([t, rng.uniform(t0, t1, size=rng.poisson(rate * (t1 - t0)))])
        elif kind == "redundant":
            step = 1.0 / rate
            t = np.arange(math.ceil(t0 / step) * step, t1, step)
        else:
            t = rng.uniform(t0, t1, size=rng.poisson(rate * (t1 - t0)))
        t = np.sort(t)
        n = len(t)
        sub = np.full(n, m.sub)
        channel = np.full(n, self.p.app_channel[self.p.sub_app[m.sub]])
        method = np.full(n, METHOD_GET)
        status = np.full(n, 200)
        err = np.zeros(n, dtype=np.int64)
        flags = np.zeros(n, dtype=np.int64)
        uri = rng.integers(1, np.iinfo(np.int64).max, size=n).astype(np.uint64)
        resource = rng.integers(len(RESOURCES), size=n)
        if kind == "retry_storm":
            storm = ((t - o) % 300.0) < 90.0
            status = np.where(storm, 503, 200)
            err = np.where(storm, 101503, 0)
            resource[:] = 1
        elif kind == "error_prone":
            bad = rng.random(n) < 0.45
            status = np.where(bad, rng.choice([401, 404, 400], size=n), 200)
            err = np.where(status == 401, 900901, 0)
        elif kind == "redundant":
            uri[:] = self._redundant_hash
            resource[:] = 0
        elif kind == "throttle_hitter":
            phase = (t - o - 5.0) % 60.0
            burst = phase < 3
            k = (phase / 0.05).astype(np.int64)
            thr = burst & (k >= 5)
            status = np.where(thr, 429, 200)
            err = np.where(thr, 900804, 0)
            flags = np.where(thr, 1, 0)
        elif kind == "wrong_channel":
            stray = rng.random(n) < 0.08
            channel = np.where(stray, 0, channel)
        lat = np.where(status >= 500, 30_000, rng.integers(20_000, 90_000, size=n))
        return Generated(
            (t * 1e6).astype(np.int64),
            sub,
            channel,
            resource,
            method,
            status,
            err,
            lat.astype(np.int64),
            uri,
            flags,
            np.zeros(n, dtype=np.int64),
            rng.integers(100, 5000, size=n),
        )

    def events(self, t0: float, t1: float, kinds: frozenset[str] | None = None) -> Generated:
        """Every event of [t0, t1) (seconds since the epoch), sorted by time; ``kinds`` limits
        the misbehaving consumers that take part (default: all)."""
        parts = [self._normal(t0, t1, 1.0)]
        parts += [
            self._special(m, t0, t1, 1.0)
            for m in self.p.misbehaviours
            if kinds is None or m.kind in kinds
        ]
        cat = {
            name: np.concatenate([getattr(p, name) for p in parts]) for name in Generated.__slots__
        }
        order = np.argsort(cat["t_us"], kind="stable")
        return Generated(**{k: v[order] for k, v in cat.items()})


class ChannelEncoder:
    """Dictionary-encodes the platform's strings for one gateway stream."""

    def __init__(self, platform: Platform) -> None:
        self.enc = StreamEncoder()
        p = platform
        intern = self.enc.intern
        self.app = np.array([intern(s) for s in p.app_ids], dtype=np.uint32)
        self.app_name = np.array([intern(s) for s in p.app_names], dtype=np.uint32)
        self.app_owner = np.array([intern(s) for s in p.app_owners], dtype=np.uint32)
        self.api = np.array([intern(s) for s in p.api_names], dtype=np.uint32)
        self.ver = np.array([intern(s) for s in p.api_versions], dtype=np.uint32)
        self.ctx = np.array(
            [intern(p.context_of(k)) for k in range(len(p.api_names))], dtype=np.uint32
        )
        # 0 for the super tenant's APIs: the stream's Hello.tenant (carbon.super) applies
        self.tenant = np.array(
            [intern(t) if t else 0 for t in (p.api_tenants or [""] * len(p.api_names))],
            dtype=np.uint32,
        )
        self.res = np.array([intern(r) for r in RESOURCES], dtype=np.uint32)
        self.tier = np.array([intern(t) for t in p.sub_tier], dtype=np.uint32)
        self.p = platform

    def batch(self, g: Generated, idx: npt.NDArray[np.intp], sent_at_us: int) -> tpb.EventBatch:
        p = self.p
        sub = g.sub[idx]
        app = p.sub_app[sub]
        api = p.sub_api[sub]
        cols: dict[str, npt.NDArray[Any]] = {
            "event_time_us": g.t_us[idx],
            "application_id": self.app[app],
            "application_name": self.app_name[app],
            "application_owner": self.app_owner[app],
            "api_name": self.api[api],
            "api_version": self.ver[api],
            "api_context": self.ctx[api],
            "resource_template": self.res[g.resource[idx]],
            "http_method": g.method[idx],
            "http_status": g.status[idx],
            "error_code": g.error_code[idx],
            "latency_us": g.latency_us[idx],
            "backend_latency_us": (g.latency_us[idx] * 0.85).astype(np.int64),
            "request_bytes": g.request_bytes[idx],
            "response_bytes": g.response_bytes[idx],
            "key_type": np.ones(len(idx), dtype=np.int64),
            "subscription_tier": self.tier[sub],
            "uri_hash": g.uri_hash[idx],
            "flags": g.flags[idx],
        }
        if p.api_tenants:
            cols["tenant"] = self.tenant[api]
        return self.enc.batch(cols, sent_at_us=sent_at_us)


@dataclass(slots=True)
class SendStats:
    events: int = 0
    batches: int = 0
    acked_events: int = 0
    errors: list[str] = field(default_factory=list)


class GatewayStream:
    """One simulated gateway: a stream to the sidecar fed from a queue of batches."""

    def __init__(
        self,
        target: str,
        channel: str,
        platform: Platform,
        gateway_id: str,
        history: bool = False,
    ) -> None:
        """``history``: the stream sends past events (a backfill): the sidecar makes it wait
        for its data writer (``Hello.history``) instead of dropping rollups."""
        self.channel = channel
        self.encoder = ChannelEncoder(platform)
        self._q: queue.Queue[tpb.GatewayMessage | None] = queue.Queue(maxsize=64)
        self.stats = SendStats()
        self._chan = grpc.insecure_channel(target)
        self._stub = tpb_grpc.TelemetryStub(self._chan)
        self._hello = tpb.Hello(
            gateway_id=gateway_id,
            channel=channel,
            tenant="carbon.super",
            handler_version=f"vigie-simulator {__version__}",
            protocol_version=1,
            history=history,
        )
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{channel}", daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[tpb.GatewayMessage]:
        yield tpb.GatewayMessage(hello=self._hello)
        while True:
            msg = self._q.get()
            if msg is None:
                return
            yield msg

    def _run(self) -> None:
        try:
            for resp in self._stub.Stream(self._requests()):
                if resp.WhichOneof("kind") == "ack":
                    self.stats.acked_events = resp.ack.events_applied
        except grpc.RpcError as exc:
            self.stats.errors.append(f"{exc.code().name}: {exc.details()}")
        finally:
            self._done.set()

    def send(self, g: Generated, idx: npt.NDArray[np.intp]) -> None:
        if len(idx) == 0 or self._done.is_set():
            return
        batch = self.encoder.batch(g, idx, int(time.time() * 1e6))
        self._q.put(tpb.GatewayMessage(batch=batch))
        self.stats.events += len(idx)
        self.stats.batches += 1

    def close(self, timeout: float = 120.0) -> None:
        """End the stream once every batch is acknowledged (or ``timeout`` has passed)."""
        self._q.put(None)
        self._done.wait(timeout)
        self._chan.close()

    @property
    def failed(self) -> bool:
        return bool(self.stats.errors)


BACKFILL_CLOSE_S: Final = 3600.0  # the backfill's streams end once every batch is acknowledged


def run(
    target: str,
    tps: float,
    duration: float | None,
    platform: Platform,
    backfill_days: float = 0.0,
    backfill_tps: float = 5.0,
    max_batch: int = 4096,
    tick: float = 0.05,
    on_progress: Callable[[str, float, int], None] | None = None,
    stop: threading.Event | None = None,
    on_generated: Callable[[Generated], None] | None = None,
) -> dict[str, SendStats]:
    """Send traffic to ``target``: first ``backfill_days`` of past traffic as fast as the
    sidecar takes it (``backfill_tps`` at the peak, in event time; only the growing consumer
    misbehaves there), then live traffic peaking at ``tps`` for ``duration`` seconds (None:
    until ``stop`` is set). Give both rates the same value for a history without a jump.
    ``on_generated`` sees every generated block before it is sent (tests derive their expected
    figures from what was really sent)."""
    stop = stop or threading.Event()
    now = time.time()
    model = TrafficModel(platform, tps, growth_origin_s=now - backfill_days * DAY_S, origin_s=now)
    totals = {ch: SendStats() for ch in CHANNELS}
    streams: list[GatewayStream] = []

    def ship(g: Generated) -> None:
        if on_generated is not None:
            on_generated(g)
        for k, gw in enumerate(streams):
            idx = np.flatnonzero(g.channel == k)
            for s in range(0, len(idx), max_batch):
                gw.send(g, idx[s : s + max_batch])

    def close_all(timeout: float) -> None:
        for gw in streams:
            gw.close(timeout)
            t = totals[gw.channel]
            t.events += gw.stats.events
            t.batches += gw.stats.batches
            t.acked_events += gw.stats.acked_events
            t.errors += gw.stats.errors
        streams.clear()

    try:
        if backfill_days > 0:
            # the past on streams of their own, marked history: the sidecar makes them wait
            # for its data writer, up to the last event; then the live streams, never made to wait
            streams[:] = [
                GatewayStream(target, ch, platform, f"sim-gw-{ch}", history=True) for ch in CHANNELS
            ]
            model.peak_tps = backfill_tps
            t = now - backfill_days * DAY_S
            step = 600.0
            while t < now and not stop.is_set():
                t1 = min(t + step, now)
                ship(model.events(t, t1, kinds=frozenset({"growing"})))
                t = t1
                if on_progress:
                    on_progress("backfill", 1 - (now - t) / (backfill_days * DAY_S), 0)
            close_all(BACKFILL_CLOSE_S)  # every batch acknowledged
            model.peak_tps = tps
        streams[:] = [GatewayStream(target, ch, platform, f"sim-gw-{ch}") for ch in CHANNELS]
        start = time.time()
        t = start
        while not stop.is_set():
            if duration is not None and t - start >= duration:
                break
            wake = t + tick
            delay = wake - time.time()
            if delay > 0:
                stop.wait(delay)
            t1 = time.time()
            ship(model.events(t, t1))
            t = t1
            if on_progress:
                on_progress(
                    "live",
                    (t - start) / duration if duration else 0.0,
                    sum(s.stats.events for s in streams),
                )
    finally:
        close_all(120.0)
    return totals
