"""``vigie replay`` of WSO2 analytics lines with ``userIp``: authentication faults in the full
schema (the ELK reporter before publisher 1.2.3, APIM 4.1: every field, ``userIp`` too) make
their client IP ``auth_failing``; APIM 4.2+ faults carry only the fault schema (no ``userIp``):
they count at API level only. Normal responses (``userIp`` of their clients) hold nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from vigie.cli.main import main

PREFIX = b"10:20:00,000 [10.0.0.1-gw] [PassThroughMessageProcessor-7]  INFO ELKCounterMetric "
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RESPONSE = {
    "correlationId": "c1",
    "keyType": "PRODUCTION",
    "apiId": "af88b5f8-0000-0000-0000-7eb86b6a63ab",
    "apiType": "HTTP",
    "apiName": "Orders",
    "apiVersion": "1.0.0",
    "apiCreator": "admin",
    "apiMethod": "GET",
    "apiContext": "/orders/1.0.0",
    "apiResourceTemplate": "/items/{id}",
    "apiCreatorTenantDomain": "carbon.super",
    "destination": "https://backend/orders",
    "applicationId": "4c3f2a1e-0000-0000-0000-000000000001",
    "applicationName": "Shop",
    "applicationOwner": "alice",
    "regionId": "default",
    "gatewayType": "SYNAPSE",
    "userAgent": "curl/8.0",
    "platform": "Linux",
    "userName": "alice@carbon.super",
    "proxyResponseCode": 200,
    "targetResponseCode": 200,
    "responseCacheHit": False,
    "responseLatency": 41,
    "backendLatency": 35,
    "requestMediationLatency": 3,
    "responseMediationLatency": 3,
    "userIp": "192.0.2.10",
    "properties": {"responseSize": 512},
}
# APIM 4.1: a fault with every field, the placeholders for the application
AUTH_FAULT_41 = {
    **RESPONSE,
    "keyType": "UNKNOWN",
    "errorType": "AUTH",
    "errorCode": 900901,
    "errorMessage": "API_AUTH_INVALID_CREDENTIALS",
    "applicationId": "UNKNOWN",
    "applicationName": "UNKNOWN",
    "applicationOwner": "UNKNOWN",
    "proxyResponseCode": 401,
    "targetResponseCode": -1,
    "userIp": "192.0.2.66",
}
# APIM 4.2+: only the fault schema, no userIp
AUTH_FAULT_42 = {
    k: v
    for k, v in AUTH_FAULT_41.items()
    if k not in ("apiMethod", "apiContext", "apiResourceTemplate", "destination", "userAgent",
                 "platform", "userName", "responseCacheHit", "responseLatency", "backendLatency",
                 "requestMediationLatency", "responseMediationLatency", "userIp")
} | {"apiName": "Stock", "properties": {"apiContext": "/stock/1.0.0"}}  # fmt: skip


def _line(kind: str, doc: dict[str, Any], t: datetime) -> bytes:
    stamp = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = orjson.dumps(doc | {"requestTimestamp": stamp})
    return PREFIX + f"apimMetrics: apim:{kind}, properties :".encode() + body


def test_replayed_auth_faults_make_their_client_ip_auth_failing(tmp_path: Path) -> None:
    lines: list[bytes] = []
    for k in range(600):  # normal traffic, 10 minutes
        lines.append(_line("response", RESPONSE, T0 + timedelta(seconds=k)))
    for k in range(150):  # 150 invalid keys from one address (4.1 lines)
        lines.append(_line("faulty", AUTH_FAULT_41, T0 + timedelta(seconds=2 * k + 1)))
    for k in range(30):  # a few from another: below auth_min_failures (100)
        doc = AUTH_FAULT_41 | {"userIp": "192.0.2.77"}
        lines.append(_line("faulty", doc, T0 + timedelta(seconds=5 * k + 2)))
    for k in range(120):  # 4.2 faults: no address, the API counts them
        lines.append(_line("faulty", AUTH_FAULT_42, T0 + timedelta(seconds=3 * k + 1)))
    log = tmp_path / "apim_metrics.log"

    def stamp(line: bytes) -> bytes:
        return line[line.index(b"requestTimestamp") :]

    ordered: list[bytes] = sorted(lines, key=stamp)
    log.write_bytes(b"\n".join(ordered) + b"\n")
    res = CliRunner().invoke(main, ["replay", str(log), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["events"] == 600 + 150 + 30 + 120
    held = {(c["kind"], c["key"]): c for c in doc["clients"]}
    assert set(held) == {("ip", "192.0.2.66"), ("api", "Orders 1.0.0"), ("api", "Stock 1.0.0")}
    ip = held[("ip", "192.0.2.66")]["evidence"]
    assert ip["failures_last_hour"] == 150 and ip["codes"] == ["900901"]
    assert ip["apis"] == ["Orders 1.0.0"]
    assert held[("api", "Stock 1.0.0")]["evidence"]["client_ips"] == []  # 4.2: none known
    assert held[("api", "Orders 1.0.0")]["evidence"]["failures_last_hour"] == 180
    # the placeholder "UNKNOWN" is no application: no application key row, no subscription
    assert not any(c["kind"] == "app" for c in doc["clients"])
    assert {s["application_id"] for s in doc["subscriptions"]} == {RESPONSE["applicationId"]}
    deny = [s for s in doc["suggestions"] if s["class"] == "auth_failing"]
    assert [s["wso2"]["payload"]["conditionValue"] for s in deny] == [
        {"fixedIp": "192.0.2.66", "invert": False}
    ]
    text = CliRunner().invoke(main, ["replay", str(log)]).output
    assert "auth_failing: ip 192.0.2.66" in text and "192.0.2.77" not in text
