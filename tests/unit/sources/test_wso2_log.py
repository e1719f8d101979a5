"""The WSO2 analytics log read as WSO2 writes it: one golden line per line shape, each giving
exactly the expected event, the same by the fast (Arrow) and the careful (line by line) way;
and files that are damaged, oversized or not logs at all."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO
from vigie.errors import InputError
from vigie.sources.wso2_log import (
    FLAG_FAULT,
    FLAG_THROTTLED,
    LOG_COUNTER_REASON,
    ReplayStats,
    read_logs,
)
from vigie.wire.columns import DICTIONARY_COLUMNS, Events, Interner

PREFIX = b"10:20:00,000 [10.0.0.1-gw] [PassThroughMessageProcessor-7]  INFO ELKCounterMetric "

# APIM 4.1+ (ELK reporter): a successful response, every response field
RESPONSE_4X = {
    "requestTimestamp": "2026-03-02T10:20:00.125Z",
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
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
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
    "properties": {"responseSize": 512, "responseContentType": "application/json"},
}
# APIM 4.2+: a fault keeps only the fault schema; its context is in properties
THROTTLED_FAULT_42 = {
    "requestTimestamp": "2026-03-02T10:20:01Z",
    "correlationId": "c2",
    "keyType": "PRODUCTION",
    "errorType": "THROTTLED",
    "errorCode": 900803,
    "errorMessage": "APPLICATION_LEVEL_LIMIT_EXCEEDED",
    "apiId": "af88b5f8-0000-0000-0000-7eb86b6a63ab",
    "apiType": "HTTP",
    "apiName": "Orders",
    "apiVersion": "1.0.0",
    "apiCreator": "admin",
    "apiCreatorTenantDomain": "carbon.super",
    "applicationId": "4c3f2a1e-0000-0000-0000-000000000001",
    "applicationName": "Shop",
    "applicationOwner": "alice",
    "regionId": "default",
    "gatewayType": "SYNAPSE",
    "proxyResponseCode": 429,
    "targetResponseCode": -1,
    "properties": {"apiContext": "/orders/1.0.0"},
}
# an authentication fault: WSO2 fills the application fields with the placeholder "UNKNOWN"
AUTH_FAULT_42 = {
    **THROTTLED_FAULT_42,
    "requestTimestamp": "2026-03-02T10:20:02Z",
    "correlationId": "c3",
    "keyType": "UNKNOWN",
    "errorType": "AUTH",
    "errorCode": 900901,
    "errorMessage": "API_AUTH_INVALID_CREDENTIALS",
    "applicationId": "UNKNOWN",
    "applicationName": "UNKNOWN",
    "applicationOwner": "UNKNOWN",
    "proxyResponseCode": 401,
}
# an anonymous call (a resource without security)
ANONYMOUS = {
    **RESPONSE_4X,
    "requestTimestamp": "2026-03-02T10:20:03Z",
    "applicationId": "anonymous",
    "applicationName": "anonymous",
    "applicationOwner": "anonymous",
    "keyType": "anonymous",
}
# a backend's own 429: an apim:response without a WSO2 code is not throttling
BACKEND_429 = {
    **RESPONSE_4X,
    "requestTimestamp": "2026-03-02T10:20:04Z",
    "proxyResponseCode": 429,
    "targetResponseCode": 429,
    "properties": {"responseSize": 17},
}
# the same API name and version in the tenant acme.com (APIM's tenant contexts are /t/DOMAIN/...)
TENANT_RESPONSE = {
    **RESPONSE_4X,
    "requestTimestamp": "2026-03-02T10:20:05Z",
    "apiId": "0b7e1c2d-0000-0000-0000-acme00000001",
    "apiContext": "/t/acme.com/orders/1.0.0",
    "apiCreatorTenantDomain": "acme.com",
    "applicationId": "9d1e0000-0000-0000-0000-acme00000002",
    "proxyResponseCode": 503,
    "targetResponseCode": 503,
}


def _line(kind: str, doc: dict[str, Any]) -> bytes:
    return PREFIX + f"apimMetrics: apim:{kind}, properties :".encode() + orjson.dumps(doc)


GOLDEN: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "response",
        RESPONSE_4X,
        {
            "event_time_us": 1772446800125000,
            "application_id": "4c3f2a1e-0000-0000-0000-000000000001",
            "application_name": "Shop",
            "application_owner": "alice",
            "api_name": "Orders",
            "api_version": "1.0.0",
            "api_context": "/orders/1.0.0",
            "resource_template": "/items/{id}",
            "http_method": 1,
            "http_status": 200,
            "error_code": 0,
            "latency_us": 41_000,
            "backend_latency_us": 35_000,
            "response_bytes": 512,
            "key_type": 1,
            "flags": 0,
            "tenant": "carbon.super",
            "api_id": "af88b5f8-0000-0000-0000-7eb86b6a63ab",
            "client_ip": "192.0.2.10",
            "target_status": 200,
        },
    ),
    (
        "faulty",
        THROTTLED_FAULT_42,
        {
            "event_time_us": 1772446801000000,
            "application_id": "4c3f2a1e-0000-0000-0000-000000000001",
            "application_name": "Shop",
            "api_context": "/orders/1.0.0",
            "resource_template": "",
            "http_method": 0,
            "http_status": 429,
            "error_code": 900803,
            "latency_us": 0,
            "response_bytes": -1,
            "flags": FLAG_FAULT | FLAG_THROTTLED,
            "target_status": 0,  # -1 in the line: the backend was never reached
            "client_ip": "",
        },
    ),
    (
        "faulty",
        AUTH_FAULT_42,
        {
            "application_id": "",
            "application_name": "",
            "application_owner": "",
            "api_name": "Orders",
            "api_context": "/orders/1.0.0",
            "http_status": 401,
            "error_code": 900901,
            "key_type": 0,
            "flags": FLAG_FAULT,
        },
    ),
    (
        "response",
        ANONYMOUS,
        {"application_id": "", "application_name": "", "application_owner": "", "key_type": 0},
    ),
    ("response", BACKEND_429, {"http_status": 429, "error_code": 0, "flags": 0}),
    # another tenant's API of the same name and version: keyed apart (vigie.wire.tenants)
    (
        "response",
        TENANT_RESPONSE,
        {
            "api_name": "acme.com\x1fOrders",
            "api_version": "1.0.0",
            "api_context": "/t/acme.com/orders/1.0.0",
            "tenant": "acme.com",
            "api_id": "0b7e1c2d-0000-0000-0000-acme00000001",
            "target_status": 503,
            "http_status": 503,
        },
    ),
]


def _read(path: Path, fast: bool) -> tuple[list[Events], Interner, ReplayStats]:
    interner, stats = Interner(), ReplayStats()
    return list(read_logs([(0, path)], interner, stats, fast=fast)), interner, stats


def _value(ev: Events, interner: Interner, name: str, i: int) -> object:
    v = ev[name][i]
    return interner.strings()[int(v)] if name in DICTIONARY_COLUMNS else int(v)


@pytest.mark.parametrize("fast", [True, False], ids=["arrow", "careful"])
def test_each_wso2_line_shape_gives_exactly_its_event(tmp_path: Path, fast: bool) -> None:
    path = tmp_path / "apim_metrics.log"
    path.write_bytes(b"\n".join(_line(kind, doc) for kind, doc, _ in GOLDEN) + b"\n")
    (ev,), interner, stats = _read(path, fast)
    assert stats.events == len(GOLDEN) and stats.rejected == 0
    assert stats.careful_chunks == (0 if fast else 1)
    for i, (_, _, want) in enumerate(GOLDEN):
        got = {name: _value(ev, interner, name, i) for name in want}
        assert got == want, i
    # the placeholders are never taken for application names
    assert "UNKNOWN" not in interner.strings() and "anonymous" not in interner.strings()


def test_log_counter_metric_lines_are_refused_with_the_reporter_to_enable(tmp_path: Path) -> None:
    path = tmp_path / "carbon.log"
    path.write_bytes(
        b"INFO - LogCounterMetric Metric Name: apim:response Metric Value: "
        b"{apiName=Orders, userAgent=Mozilla/5.0 (KHTML, like Gecko), proxyResponseCode=200}\n"
        b"INFO - something else\n"
    )
    parts, _, stats = _read(path, fast=True)
    assert parts == [] and stats.events == 0
    assert stats.rejected == 1 and stats.log_counter_lines == 1
    assert stats.first_rejects[0].line == 1 and stats.first_rejects[0].reason == LOG_COUNTER_REASON
    (problem,) = stats.closing_problems()
    assert "0 apimMetrics lines in 1 file" in problem and 'type = "elk"' in problem


def test_a_log_without_analytics_lines_says_so(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"INFO - API Gateway started\n")
    b.write_bytes(b"")
    interner, stats = Interner(), ReplayStats()
    assert list(read_logs([(0, a), (1, b)], interner, stats)) == []
    assert stats.closing_problems() == [
        '0 apimMetrics lines in 2 files: is [apim.analytics] enabled with type = "elk" '
        "(the lines go to repository/logs/apim_metrics.log)?"
    ]


def test_a_line_over_the_bound_is_rejected_with_its_place_and_never_held(tmp_path: Path) -> None:
    good = _line("response", RESPONSE_4X)
    path = tmp_path / "big.log"
    huge = _line("response", {**RESPONSE_4X, "userAgent": "x" * 5000})
    path.write_bytes(good + b"\n" + huge + b"\n" + good + b"\n")
    interner, stats = Interner(), ReplayStats()
    parts = list(read_logs([(0, path)], interner, stats, max_line_bytes=4096))
    assert sum(len(p) for p in parts) == 2 and stats.rejected == 1
    assert str(stats.first_rejects[0]) == f"{path}:2: line longer than 4,096 bytes"
    assert stats.closing_problems() == []


def test_a_truncated_gzip_keeps_what_was_read_and_says_where_it_ended(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(_line("response", RESPONSE_4X) + b"\n" for _ in range(50_000)))
    path = tmp_path / "apim_metrics.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    interner, stats = Interner(), ReplayStats()
    read = sum(len(p) for p in read_logs([(0, path)], interner, stats))
    assert 0 < read < 50_000 and stats.events == read
    (problem,) = stats.closing_problems()
    assert problem.startswith(f"{path}: {read:,} events read, the file ended early at byte ")
    assert f"{path.stat().st_size:,}" in problem


def test_a_directory_or_a_missing_file_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r": is a directory$"):
        list(read_logs([(0, tmp_path)], Interner(), ReplayStats()))
    with pytest.raises(InputError, match=r": no such file$"):
        list(read_logs([(0, tmp_path / "nope.log")], Interner(), ReplayStats()))


def test_wso2s_own_sample_lines_are_read() -> None:
    sample = REPO.parent / "shared" / "conformance" / "apim_metrics_samples.log"
    if not sample.is_file():
        pytest.skip("../shared/conformance is not here")
    for fast in (True, False):
        (ev,), interner, stats = _read(sample, fast)
        assert stats.rejected == 0 and stats.events == len(ev) >= 1
        assert all(_value(ev, interner, "api_name", i) for i in range(len(ev)))
