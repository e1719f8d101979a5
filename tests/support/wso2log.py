"""Writes WSO2 ELK analytics log lines (apim_metrics.log) for test scenarios.

The shape follows WSO2's documented lines (../shared/conformance/apim_metrics_samples.log):
``<time> [<ip>-<host>] [<thread>]  INFO ELKCounterMetric apimMetrics: apim:response,
properties :{json}`` and ``apim:faulty`` for faults, whose properties lack apiMethod,
apiResourceTemplate, userIp and userAgent and add errorType, errorCode, errorMessage. Keys are
shuffled, as WSO2's map gives no order.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE = datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC)  # a Monday
SUPER = "carbon.super"  # WSO2's super tenant

THROTTLE_MESSAGES = {
    900800: "API_LEVEL_LIMIT_EXCEEDED",
    900802: "RESOURCE_LEVEL_LIMIT_EXCEEDED",
    900803: "APPLICATION_LEVEL_LIMIT_EXCEEDED",
    900804: "SUBSCRIPTION_LEVEL_LIMIT_EXCEEDED",
}


@dataclass
class App:
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    owner: str = "admin"


def ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class LogWriter:
    def __init__(self, seed: int = 1, style: str = "elk") -> None:
        self.rng = random.Random(seed)
        self.lines: list[tuple[datetime, str]] = []
        self.style = style

    def _common(
        self, t: datetime, app: App | None, api: str, version: str, tenant: str = SUPER
    ) -> dict[str, Any]:
        # APIM prefixes a tenant's contexts with /t/DOMAIN; its API UUIDs are its own
        context = f"/{api.lower()}/{version}"
        if tenant != SUPER:
            context = f"/t/{tenant}{context}"
        d: dict[str, Any] = {
            "requestTimestamp": ts(t),
            "correlationId": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "keyType": "PRODUCTION",
            "apiId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{api}/{version}")),
            "apiType": "HTTP",
            "apiName": api,
            "apiVersion": version,
            "apiCreator": "admin",
            "apiContext": context,
            "apiCreatorTenantDomain": tenant,
            "destination": f"https://backend.example/{api.lower()}",
            "regionId": "default",
            "gatewayType": "SYNAPSE",
            "platform": "Linux",
            "userName": "admin@carbon.super",
            "properties": {},
        }
        if app is not None:
            d |= {
                "applicationId": app.id,
                "applicationName": app.name,
                "applicationOwner": app.owner,
            }
        return d

    def _emit(self, t: datetime, kind: str, d: dict[str, Any]) -> None:
        items = list(d.items())
        self.rng.shuffle(items)
        body = json.dumps(dict(items), separators=(",", ":"))
        wall = t + timedelta(milliseconds=int(d.get("responseLatency", 0)))
        if self.style == "elk":
            prefix = (
                f"{wall.strftime('%H:%M:%S')},{wall.microsecond // 1000:03d} [-] "
                f"[PassThroughMessageProcessor-{self.rng.randint(1, 300)}]  INFO ELKCounterMetric"
            )
        else:
            prefix = "INFO - LogCounterMetric"
        self.lines.append((wall, f"{prefix} apimMetrics: apim:{kind}, properties :{body}"))

    def response(
        self,
        t: datetime,
        app: App | None,
        api: str,
        version: str = "1.0.0",
        resource: str = "/items",
        method: str = "GET",
        status: int = 200,
        latency_ms: int = 20,
        tenant: str = SUPER,
        user_ip: str = "10.1.2.3",
    ) -> None:
        d = self._common(t, app, api, version, tenant) | {
            "apiMethod": method,
            "apiResourceTemplate": resource,
            "proxyResponseCode": status,
            "targetResponseCode": status,
            "responseCacheHit": False,
            "responseLatency": latency_ms,
            "backendLatency": max(0, latency_ms - 2),
            "requestMediationLatency": 1,
            "responseMediationLatency": 1,
            "userIp": user_ip,
            "userAgent": "okhttp/4.12",
        }
        self._emit(t, "response", d)

    def fault(
        self,
        t: datetime,
        app: App | None,
        api: str,
        version: str = "1.0.0",
        error_code: int = 900803,
        status: int = 429,
        error_type: str = "THROTTLED",
        latency_ms: int = 2,
        tenant: str = SUPER,
    ) -> None:
        d = self._common(t, app, api, version, tenant) | {
            "errorType": error_type,
            "errorCode": error_code,
            "errorMessage": THROTTLE_MESSAGES.get(error_code, "ERROR"),
            "proxyResponseCode": status,
            "targetResponseCode": -1 if error_type != "TARGET_CONNECTIVITY" else 0,
            "responseCacheHit": False,
            "responseLatency": latency_ms,
            "backendLatency": 0,
            "requestMediationLatency": latency_ms,
            "responseMediationLatency": 0,
        }
        self._emit(t, "faulty", d)

    def noise(self, t: datetime, text: str = "INFO - API Gateway started") -> None:
        self.lines.append((t, f"{t.strftime('%H:%M:%S')},000 [-] [main]  {text}"))

    def write(self, path: Path) -> Path:
        # log files are in the order lines were written (response time), as WSO2 writes them
        path.write_text(
            "\n".join(line for _, line in sorted(self.lines, key=lambda x: x[0])) + "\n"
        )
        return path


def at(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return BASE + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
