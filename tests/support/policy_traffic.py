"""Traffic that makes each behaviour class hold, as gateway records (column name -> value).

The records go through the real wire path (``StreamEncoder`` -> ``StreamDecoder`` -> ``State``)
in unit tests, or over a real gateway stream to a ``vigie serve`` process in integration tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from vigie.state.engine import State
from vigie.wire.columns import StreamDecoder, StreamEncoder

MINUTE: Final = 60_000_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
T0: Final = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

Record = dict[str, Any]


def rec(t: int, app: str, api: str = "Orders", ver: str = "v1", status: int = 200,
        **extra: Any) -> Record:  # fmt: skip
    r: Record = {
        "event_time_us": t,
        "application_id": app,
        "application_name": extra.pop("name", f"name-{app}"),
        "application_owner": extra.pop("owner", "team-a"),
        "api_name": api,
        "api_version": ver,
        "api_context": f"/{api.lower()}/{ver}",
        "resource_template": extra.pop("resource", "/items"),
        "http_method": extra.pop("method", 1),  # GET
        "http_status": status,
        "latency_us": extra.pop("latency_us", 20_000),
    }
    r.update(extra)
    return r


def feed(state: State, records: Iterable[Record], channel: str = "main") -> None:
    """Apply records to a state through the real wire path, in time order, in batches."""
    ordered = sorted(records, key=lambda r: r["event_time_us"])
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index(channel), 1 << 16, 1 << 20)
    for i in range(0, len(ordered), 4096):
        state.apply(dec.decode(enc.batch_from_records(ordered[i : i + 4096])))


def steady(app: str, start: int, minutes: int, per_minute: int, api: str = "Orders",
           tier: str = "Silver", **extra: Any) -> list[Record]:  # fmt: skip
    """``per_minute`` successful requests each minute, spread over the minute."""
    out = []
    for m in range(minutes):
        for k in range(per_minute):
            t = start + m * MINUTE + (k * MINUTE) // per_minute
            out.append(rec(t, app, api, subscription_tier=tier, uri_hash=t, **extra))
    return out


def throttle_hitter(app: str, start: int, minutes: int = 120, per_minute: int = 40,
                    api: str = "Orders", tier: str = "Silver") -> list[Record]:  # fmt: skip
    """Steady traffic where one request a minute is throttled (WSO2 900804, 429)."""
    out = steady(app, start, minutes, per_minute, api, tier)
    for m in range(minutes):
        r = out[m * per_minute]
        r.update(http_status=429, error_code=900804, flags=1 | 4)
    return out


def retry_storm(app: str, start: int, n: int = 120, gap_us: int = 500_000,
                api: str = "Stock") -> list[Record]:  # fmt: skip
    """A request every ``gap_us`` on the same resource, each failing with a 503."""
    return [
        rec(start + k * gap_us, app, api, status=503, resource="/items/{id}", error_code=101503)
        for k in range(n)
    ]


def redundant(app: str, start: int, n: int = 300, every_us: int = 5_000_000,
              api: str = "Catalog") -> list[Record]:  # fmt: skip
    """The same successful GET (same URI hash) every ``every_us``."""
    return [rec(start + k * every_us, app, api, uri_hash=4242) for k in range(n)]


def error_prone(app: str, start: int, n: int = 200, api: str = "Payments") -> list[Record]:
    """40 % 400 Bad Request."""
    return [
        rec(start + k * 10_000_000, app, api, status=400 if k % 5 < 2 else 200, uri_hash=k)
        for k in range(n)
    ]


def growing(app: str, end: int, per_hour_before: int = 10, per_hour_after: int = 40,
            api: str = "Delivery", tier: str = "Bronze") -> list[Record]:  # fmt: skip
    """14 days ending at ``end``: the last 7 days at ``per_hour_after`` an hour, the 7 before at
    ``per_hour_before``, each hour's requests in its first minutes (busy minutes)."""
    out = []
    for h in range(14 * 24):
        t_hour = end - (14 * 24 - h) * HOUR
        n = per_hour_after if h >= 7 * 24 else per_hour_before
        for k in range(n):
            out.append(rec(t_hour + k * 2_000_000, app, api, subscription_tier=tier, uri_hash=k))
    return out


END: Final = T0 + 14 * DAY  # "now" of the rich state


def rich_state() -> State:
    """A state where every class holds somewhere, at ``END``."""
    st = State()
    # vigie has observed the platform for 31 days: dormant and retired can be judged
    feed(st, [rec(END - 31 * DAY, "app-half", "Legacy", "v0", name="Half", owner="team-h")])
    st.register_application("app-wrong", "Picker", "team-w", channel="main")
    feed(st, growing("app-grow", END))
    feed(st, throttle_hitter("app-thr", END - 3 * HOUR))
    feed(st, throttle_hitter("app-thr", END - 3 * HOUR, api="Stock"))
    feed(st, throttle_hitter("app-gold", END - 3 * HOUR, per_minute=2500, minutes=12))
    feed(st, retry_storm("app-retry", END - 10 * MINUTE))
    feed(st, redundant("app-red", END - 40 * MINUTE))
    feed(st, error_prone("app-err", END - 40 * MINUTE))
    feed(st, steady("app-wrong", END - 2 * HOUR, 60, 5), "main")
    feed(st, steady("app-wrong", END - 30 * MINUTE, 20, 1), "sale")
    st.ensure_api("Legacy", "v0", "/legacy/v0")
    st.register_application("app-idle", "Idle", "team-i")
    st.ensure_subscription("app-idle", "Legacy", "v0", "Gold")
    st.ensure_subscription("app-idle", "Orders", "v2", "Gold")
    st.register_application("app-half", "Half", "team-h")
    st.ensure_subscription("app-half", "Legacy", "v0", "Gold")
    feed(st, steady("app-half", END - 2 * HOUR, 30, 2))
    return st


def elk_lines(records: Iterable[Record]) -> list[str]:
    """Records as lines of WSO2's ELK analytics log (``apim_metrics.log``)."""
    import json  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    methods = {1: "GET", 2: "HEAD", 3: "POST", 4: "PUT", 5: "DELETE"}
    out = []
    for r in records:
        dt = datetime.fromtimestamp(r["event_time_us"] / 1e6, tz=UTC)
        ts = dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        props = {
            "apiName": r["api_name"],
            "apiVersion": r["api_version"],
            "apiContext": r["api_context"],
            "apiMethod": methods.get(int(r.get("http_method", 1)), "GET"),
            "apiResourceTemplate": r["resource_template"],
            "applicationId": r["application_id"],
            "applicationName": r["application_name"],
            "applicationOwner": r["application_owner"],
            "proxyResponseCode": r["http_status"],
            "targetResponseCode": r["http_status"],
            "requestTimestamp": ts,
            "responseLatency": int(r.get("latency_us", 20_000)) // 1000,
            "backendLatency": 10,
            "keyType": "PRODUCTION",
            "responseCacheHit": False,
            "properties": {},
        }
        clock = dt.strftime("%H:%M:%S,") + f"{dt.microsecond // 1000:03d}"
        out.append(
            f"{clock} [-] [PassThroughMessageProcessor-7]  INFO ELKCounterMetric apimMetrics: "
            f"apim:response, properties :{json.dumps(props)}"
        )
    return out
