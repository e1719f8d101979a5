"""`vigie replay --to`: a WSO2 history streamed over the gateway wire into real sidecars ends
with what a local replay of the same logs sees, on every target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SidecarProcess, free_port, start_sidecar
from tests.ops.certs import CA
from tests.support import cli_process
from tests.support.wso2log import App, LogWriter, at

pytestmark = pytest.mark.slow


def vigie(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli_process.vigie(*args, env=env, timeout=300)


def history(tmp_path: Path) -> list[str]:
    """Three gateways' logs, as a load balancer spreads one platform's traffic over them:
    a retry storm whose retries land on other gateways, a throttled consumer, a quiet one."""
    writers = [LogWriter(seed=k) for k in range(3)]
    storm, throttled, quiet = App("storm"), App("throttled"), App("quiet")
    for k in range(90):
        writers[k % 3].response(at(hours=3, seconds=k * 0.25), storm, "Orders", status=503)
    for k in range(40):
        writers[(k + 1) % 3].fault(at(hours=3, minutes=1, seconds=k), throttled, "Orders")
        writers[k % 3].response(at(hours=3, minutes=1, seconds=k + 0.5), throttled, "Orders")
    for k in range(30):
        writers[k % 3].response(at(hours=2, minutes=k), quiet, "Stock", resource="/s")
    for k in range(30):  # one request each: many strings, so small dictionaries fill up
        writers[k % 3].response(at(hours=1, minutes=k), App(f"once-{k}"), "Orders")
    writers[2].noise(at(hours=4))
    channels = ["main", "main", "sale"]
    return [
        f"{ch}={w.write(tmp_path / f'gw{n}.log')}"
        for n, (ch, w) in enumerate(zip(channels, writers, strict=True))
    ]


def subscriptions(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (s["application_id"], s["api"], s["requests"], tuple(s["classes"]))
        for s in doc["subscriptions"]
    )


def consumers(sp: SidecarProcess) -> dict[str, Any]:
    out = vigie(
        "consumers", "--state-dir", str(sp.state_dir), "--json", env={"VIGIE_ADMIN": sp.admin}
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def events_applied(sp: SidecarProcess) -> int:
    out = vigie("status", "--state-dir", str(sp.state_dir), "--json", env={"VIGIE_ADMIN": sp.admin})
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)["events_applied"])


def test_two_sidecars_end_with_what_a_local_replay_sees(tmp_path: Path) -> None:
    sources = history(tmp_path)
    local = vigie("replay", *sources, "--json")
    assert local.returncode == 0, local.stderr
    expected = json.loads(local.stdout)
    assert any("retry_storm" in s["classes"] for s in expected["subscriptions"])

    a = start_sidecar(tmp_path / "a")
    # b takes small batches and small dictionaries: the replay splits and starts new streams
    b = start_sidecar(
        tmp_path / "b",
        env={"VIGIE_MAX_BATCH_EVENTS": "64", "VIGIE_MAX_DICTIONARY_ENTRIES": "16"},
    )
    try:
        out = vigie("replay", *sources, "--to", f"{a.telemetry},{b.telemetry}", "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        assert doc["offered"] == expected["events"] == 90 + 80 + 30 + 30
        assert [(t["address"], t["acked"], t["dropped"]) for t in doc["targets"]] == [
            (a.telemetry, 230, 0),
            (b.telemetry, 230, 0),
        ]
        assert doc["targets"][0]["streams"] == 3 and doc["targets"][1]["streams"] > 3
        assert [g["gateway_id"] for g in doc["gateways"]] == ["replay-1", "replay-2", "replay-3"]
        for sp in (a, b):
            assert subscriptions(consumers(sp)) == subscriptions(expected)
            assert events_applied(sp) == 230
        # one file alone comes in long runs: a batch whose strings would not fit even a fresh
        # dictionary is halved until it does (it used to start new streams for ever)
        out = vigie("replay", sources[0], "--to", b.telemetry, "--gateway-id", "one", "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        (target,) = doc["targets"]
        assert target["acked"] == doc["offered"] > 64 and target["dropped"] == 0
        assert target["streams"] > 2
    finally:
        a.stop()
        b.stop()


def test_a_dead_target_is_counted_dropped_and_the_others_get_everything(tmp_path: Path) -> None:
    sources = history(tmp_path)
    a = start_sidecar(tmp_path / "a")
    dead = f"127.0.0.1:{free_port()}"
    try:
        out = vigie(
            "replay", *sources, "--to", dead, "--to", a.telemetry, "--gateway-id", "gw", "--json"
        )
        assert out.returncode == 2, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        by = {t["address"]: t for t in doc["targets"]}
        assert (by[dead]["acked"], by[dead]["dropped"]) == (0, 230)
        assert by[dead]["error"]
        assert (by[a.telemetry]["acked"], by[a.telemetry]["dropped"]) == (230, 0)
        assert f"dropped 230 events for {dead}" in out.stderr
        assert [g["gateway_id"] for g in doc["gateways"]] == ["gw-1", "gw-2", "gw-3"]
        assert events_applied(a) == 230
        assert sum(s["requests"] for s in consumers(a)["subscriptions"]) == 230
        # paced by slices of event time instead: everything still arrives, once
        out = vigie("replay", *sources, "--to", a.telemetry, "--slack", "5", "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        (target,) = json.loads(out.stdout)["targets"]
        assert (target["acked"], target["dropped"]) == (230, 0)
        assert events_applied(a) == 2 * 230
    finally:
        a.stop()


def test_exit_codes_and_refusals(tmp_path: Path) -> None:
    a = start_sidecar(tmp_path / "a")
    try:
        empty = tmp_path / "empty.log"
        empty.write_text("10:00:00,000 [-] [main]  INFO - API Gateway started\n")
        out = vigie("replay", str(empty), "--to", a.telemetry)
        assert out.returncode == 1 and "0 apimMetrics lines in 1 file" in out.stderr
        assert "0 events offered" in out.stdout

        out = vigie("replay", str(empty), "--to", f"{a.telemetry},{a.telemetry}")
        assert out.returncode != 0 and f"{a.telemetry} is given twice" in out.stderr

        out = vigie("replay", str(empty), "--to", a.telemetry, "--now", "2026-03-02T00:00:00Z")
        assert out.returncode == 2 and "--now: not with --to" in out.stderr
    finally:
        a.stop()


def test_over_mtls_as_the_deployed_fleet_listens(tmp_path: Path) -> None:
    """The deployed instances take the gateway stream over mTLS only: with the CA and a client
    certificate everything is acknowledged; without a client certificate the target refuses the
    handshake and everything is counted dropped for it."""
    ca = CA(tmp_path / "pki", "fleet-ca")
    server, client = ca.issue("vigie-0", server=True), ca.issue("replay", server=False)
    env = {
        "VIGIE_TLS_CERT_FILE": str(server.cert),
        "VIGIE_TLS_KEY_FILE": str(server.key),
        "VIGIE_TLS_CLIENT_CA_FILE": str(ca.pem),
    }
    sources = history(tmp_path)
    a = start_sidecar(tmp_path / "a", env=env)
    try:
        tls = ["--ca-file", str(ca.pem), "--cert-file", str(client.cert)]
        tls += ["--key-file", str(client.key), "--server-name", "vigie-sidecar"]
        out = vigie("replay", *sources, "--to", a.telemetry, *tls, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        (target,) = json.loads(out.stdout)["targets"]
        assert (target["acked"], target["dropped"]) == (230, 0)

        out = vigie("replay", *sources, "--to", a.telemetry, "--ca-file", str(ca.pem), "--json")
        assert out.returncode == 2, out.stdout + out.stderr
        (target,) = json.loads(out.stdout)["targets"]
        assert (target["acked"], target["dropped"]) == (0, 230) and target["error"]

        out = vigie("replay", *sources, "--to", a.telemetry, "--cert-file", str(client.cert))
        assert out.returncode != 0 and "--cert-file and --key-file go together" in out.stderr
        out = vigie("replay", *sources, "--ca-file", str(ca.pem))
        assert out.returncode == 2 and "--ca-file: only with --to" in out.stderr
    finally:
        a.stop()
