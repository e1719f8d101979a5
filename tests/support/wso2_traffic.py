"""Synthetic WSO2 analytics log lines (``apim_metrics.log`` format, as in WSO2's documentation
samples in ../shared/conformance) and the slow, obvious counts of what they say.

The lines are written the way WSO2's ``ELKCounterMetric`` reporter writes them: a log4j
prefix, ``apimMetrics: apim:response, properties :{json}`` (or ``apim:faulty`` for faults,
which carry ``errorType``/``errorCode`` and no resource). The counts are computed from the
JSON alone, without vigie's parser.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

APIS = [
    ("TrackAndTrace", "1.0.0", ["/parcels/{id}", "/parcels", "/events"]),
    ("TrackAndTrace", "2.0.0", ["/parcels/{id}", "/parcels"]),
    ("PizzaShackAPI", "1.0.0", ["/menu", "/order", "/order/{orderId}"]),
    ("Pricing", "3.1.0", ["/quote", "/tariffs"]),
]
APPS = [(f"app-{i:03d}", f"Application {i}", f"owner{i % 3}") for i in range(12)]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
THROTTLE_CODES = [900800, 900801, 900802, 900803, 900804, 900806]


def _ts(us: int) -> str:
    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(us // 1000) % 1000:03d}Z"


def make_records(seed: int, start_us: int, days: float, n: int) -> list[dict[str, Any]]:
    """``n`` events spread over ``days`` days from ``start_us``: a property dict each, plus
    ``_fault``."""
    rng = random.Random(seed)
    span = int(days * 86_400e6)
    out = []
    for _ in range(n):
        api, ver, resources = rng.choice(APIS)
        app_id, app_name, owner = rng.choice(APPS)
        t = start_us + rng.randrange(span)
        t -= t % 1000  # WSO2 writes milliseconds
        r = rng.random()
        rec: dict[str, Any] = {
            "apiName": api,
            "apiVersion": ver,
            "apiContext": f"/{api.lower()}/{ver}",
            "applicationId": app_id,
            "applicationName": app_name,
            "applicationOwner": owner,
            "keyType": "PRODUCTION",
            "requestTimestamp": _ts(t),
            "apiCreator": "admin",
            "apiCreatorTenantDomain": "carbon.super",
            "userAgent": "curl",
            "regionId": "default",
            "gatewayType": "SYNAPSE",
        }
        if r < 0.08:  # throttled: a fault event with a WSO2 throttle code
            rec |= {
                "errorType": "THROTTLED",
                "errorCode": rng.choice(THROTTLE_CODES),
                "errorMessage": "Message throttled out",
                "apiMethod": rng.choice(METHODS),
                "proxyResponseCode": 429,
                "_fault": True,
            }
        elif r < 0.11:  # backend down
            rec |= {
                "errorType": "TARGET_CONNECTIVITY",
                "errorCode": rng.choice([101503, 101504]),
                "errorMessage": "Error connecting to the back end",
                "apiMethod": rng.choice(METHODS),
                "proxyResponseCode": rng.choice([503, 504]),
                "_fault": True,
            }
        elif r < 0.13:  # authentication failure
            rec |= {
                "errorType": "AUTH",
                "errorCode": 900901,
                "errorMessage": "Invalid Credentials",
                "apiMethod": "GET",
                "_fault": True,
            }
        else:
            status = rng.choices([200, 201, 204, 304, 400, 404, 409, 500, 502], k=1)[0]
            rec |= {
                "apiMethod": rng.choice(METHODS),
                "apiResourceTemplate": rng.choice(resources),
                "proxyResponseCode": status,
                "targetResponseCode": status,
                "responseLatency": int(rng.lognormvariate(3.5, 1.0)),
                "backendLatency": int(rng.lognormvariate(3.0, 1.0)),
                "responseCacheHit": False,
                "_fault": False,
            }
        rec["_t"] = t
        out.append(rec)
    return out


def write_log(path: Path, records: list[dict[str, Any]], noise: bool = True) -> None:
    """Write records as WSO2 log lines, in time order, with some unrelated log lines."""
    with path.open("w") as f:
        for k, rec in enumerate(sorted(records, key=lambda r: r["_t"])):
            props = {key: v for key, v in rec.items() if not key.startswith("_")}
            kind = "faulty" if rec["_fault"] else "response"
            hhmmss = rec["requestTimestamp"][11:19]
            f.write(
                f"{hhmmss},{k % 1000:03d} [-] [PassThroughMessageProcessor-{k % 200}]  INFO "
                f"ELKCounterMetric apimMetrics: apim:{kind}, properties :"
                f"{json.dumps(props)}\n"
            )
            if noise and k % 97 == 0:
                f.write(f"{hhmmss},000 [-] [main]  INFO Something unrelated happened\n")


def outcome(rec: dict[str, Any]) -> str:
    """What a record counts as: throttled, server_errors, client_errors or successes."""
    status: int = rec.get("proxyResponseCode") or 0
    if not status and rec["_fault"]:
        status = {"THROTTLED": 429, "AUTH": 401, "TARGET_CONNECTIVITY": 503}.get(
            rec.get("errorType", ""), 500
        )
    code = int(rec.get("errorCode") or 0)
    if rec.get("errorType") == "THROTTLED" or 900800 <= code <= 900899 or status == 429:
        return "throttled"
    if status >= 500 or status < 100:
        return "server_errors"
    if status >= 400:
        return "client_errors"
    return "successes"


def expected_counts(
    records: list[dict[str, Any]],
) -> Counter[tuple[str, str, str, str]]:
    """(day, API, application id, outcome) -> requests, straight from the records."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    for rec in records:
        day = rec["requestTimestamp"][:10]
        out[(day, rec["apiName"], rec["applicationId"], outcome(rec))] += 1
        out[(day, rec["apiName"], rec["applicationId"], "requests")] += 1
    return out
