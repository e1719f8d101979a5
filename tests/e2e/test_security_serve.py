"""auth_failing for real: a real ``vigie serve`` gets, over real gRPC, normal traffic of three
applications from their client IPs, a few authentication failures of a careless client, and a
stream of invalid-key attempts (WSO2 900901/900902, 401, application "none") from one client
IP spread over two APIs. Exactly that client must hold ``auth_failing`` (``vigie clients``,
``vigie status``), with its evidence; its deny-policy suggestion must validate against WSO2's
``admin-v4.yaml`` and go through the lifecycle (approved, exported); the normal clients and
the careless one are untouched. A hashed client gets the lookup note instead of a payload."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import CONFORMANCE, SidecarProcess, start_sidecar
from tests.support.policy_sidecar import cli, cli_json, find
from tests.support.streams import StreamClient
from tests.support.wso2_spec import AdminSpec
from vigie.wire.columns import StreamEncoder

MINUTE = 60_000_000
ATTACKER = "203.0.113.7"
HASHED = "h:5f3a9c0e12ab77d4"
CARELESS = "198.51.100.20"
NORMAL = {"app-a": "10.0.0.1", "app-b": "10.0.0.2", "app-c": "10.0.0.3"}


def _columns(enc: StreamEncoder, t0: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, str, str, str, int, int]] = []  # t, app, ip, api, status, code
    for app, ip in NORMAL.items():
        for t in np.sort(rng.integers(0, 30 * MINUTE, 900)).tolist():
            status = 200 if rng.random() > 0.02 else 500
            rows.append((t0 + t, app, ip, "Orders" if app != "app-c" else "Stock", status, 0))
    for t in rng.integers(0, 30 * MINUTE, 12).tolist():  # a few typos: below the threshold
        rows.append((t0 + t, "", CARELESS, "Orders", 401, 900901))
    for ip, n in ((ATTACKER, 400), (HASHED, 150)):  # invalid keys, over 20 minutes
        for t in rng.integers(5 * MINUTE, 25 * MINUTE, n).tolist():
            api = "Orders" if rng.random() < 0.6 else "Stock"
            rows.append((t0 + t, "", ip, api, 401, int(rng.choice([900901, 900902]))))
    rows.sort()
    n = len(rows)
    return {
        "event_time_us": np.array([r[0] for r in rows], dtype=np.int64),
        "application_id": np.array([enc.intern(r[1]) for r in rows]),
        "client_ip": np.array([enc.intern(r[2]) for r in rows]),
        "api_name": np.array([enc.intern(r[3]) for r in rows]),
        "api_version": np.full(n, enc.intern("v1")),
        "api_context": np.array([enc.intern(f"/{r[3].lower()}/v1") for r in rows]),
        "http_method": np.ones(n, dtype=np.int64),
        "http_status": np.array([r[4] for r in rows], dtype=np.int64),
        "error_code": np.array([r[5] for r in rows], dtype=np.int64),
        "latency_us": np.full(n, 20_000, dtype=np.int64),
        "uri_hash": rng.integers(1, 2**62, n),
    }


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    tmp = tmp_path_factory.mktemp("security")
    config = tmp / "vigie.toml"
    config.write_text('data_store = "off"\n')
    sp = start_sidecar(tmp / "state", "--config", str(config))
    enc = StreamEncoder()
    client = StreamClient(sp.telemetry, gateway_id="gw-security")
    try:
        cols = _columns(enc, (int(time.time()) // 60 - 40) * MINUTE, 7)
        for i in range(0, len(cols["event_time_us"]), 500):
            batch = enc.batch({k: v[i : i + 500] for k, v in cols.items()})
            client.send(batch)
            client.wait_ack(batch.sequence, timeout=120)
        yield sp
    finally:
        client.close()
        sp.stop()


def test_exactly_the_failing_clients_hold_auth_failing(sidecar: SidecarProcess) -> None:
    held = cli_json(sidecar, "clients")["clients"]
    ips = {c["key"] for c in held if c["kind"] == "ip"}
    assert ips == {ATTACKER, HASHED}
    attacker = find(held, key=ATTACKER)
    ev = attacker["evidence"]
    assert ev["failures_last_hour"] == 400 and ev["failures_total"] == 400
    assert ev["codes"] == ["900901", "900902"]
    assert sorted(ev["apis"]) == ["Orders v1", "Stock v1"] and ev["distinct_apis"] == 2
    assert ev["first"] <= ev["episode_first"] <= ev["last"]
    assert not attacker["hashed"] and find(held, key=HASHED)["hashed"]
    # the APIs that received them hold it too (API level); nobody else
    assert {c["key"] for c in held if c["kind"] == "api"} == {"Orders v1", "Stock v1"}
    every = cli_json(sidecar, "clients", "--all", "--kind", "ip")["clients"]
    careless = find(every, key=CARELESS)
    assert careless["classes"] == ["normal"] and careless["evidence"]["failures_total"] == 12
    assert not any(c["key"] in NORMAL.values() for c in every)  # no failure: not even tracked
    status = cli_json(sidecar, "status")
    assert status["classes"]["auth_failing"] == 2
    assert int(status["counters"]["auth_failures"]) == 400 + 150 + 12
    # the subscriptions of the normal applications hold no security class
    subs = cli_json(sidecar, "consumers")["subscriptions"]
    assert {s["application_id"] for s in subs} == set(NORMAL)
    text = cli(sidecar, "clients").output
    assert ATTACKER in text and CARELESS not in text


def test_a_deny_policy_suggestion_valid_for_wso2_through_the_lifecycle(
    sidecar: SidecarProcess,
) -> None:
    doc = cli_json(sidecar, "suggestions", "list", "--class", "auth_failing")["suggestions"]
    assert len(doc) == 2
    plain = next(s for s in doc if s["evidence"]["client_ip"] == ATTACKER)
    hashed = next(s for s in doc if s["evidence"]["client_ip"] == HASHED)
    assert plain["action"] == "deny_ip" and plain["directive"] is None
    body = plain["wso2"]["payload"]
    assert body == {"conditionType": "IP", "conditionValue": {"fixedIp": ATTACKER,
                    "invert": False}, "conditionStatus": True}  # fmt: skip
    assert hashed["wso2"] is None and "look the address up" in hashed["summary"]
    assert "access log" in hashed["owner_note"] and HASHED in hashed["owner_note"]
    if CONFORMANCE.is_dir():
        spec = AdminSpec(CONFORMANCE / "admin-v4.yaml")
        assert spec.errors("BlockingCondition", body) == []
        assert spec.operation("POST", "/api/am/admin/v4" + plain["wso2"]["path"]) is not None
    cli(sidecar, "suggestions", "approve", plain["id"], "--reason", "credential stuffing")
    out = cli_json(sidecar, "policies", "export", "--format", "wso2-admin")
    deny = find(out["policies"], suggestion_id=plain["id"])
    assert deny["body"] == body and deny["path"] == "/throttling/deny-policies"
    shown = cli_json(sidecar, "suggestions", "show", plain["id"])
    assert shown["exported"] and shown["evidence"]["client_ip"] == ATTACKER
