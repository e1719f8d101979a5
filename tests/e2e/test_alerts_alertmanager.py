"""Alerts for real: a real ``vigie serve`` posts to a real Alertmanager (built from the Go
module proxy by ``make alertmanager-path``, part of ``make backends``), which routes everything
to a webhook receiver in this test. A retry storm and a normal consumer stream in through the
gateway wire: the webhook gets the storm's alert firing with its labels, then resolved when the
episode ends, and nothing about the normal consumer."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SidecarProcess, free_port, start_sidecar
from tests.e2e.test_export_backends import Process, wait_for
from tests.support.policy_traffic import MINUTE, retry_storm, steady
from tests.support.streams import StreamClient
from vigie.wire.columns import StreamEncoder

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Webhook:
    """Alertmanager's webhook notifications, as received."""

    url: str
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.notifications)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with hook.lock:
                hook.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[str]:
    binary = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "alertmanager-path"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "route": {
                    "receiver": "test",
                    "group_by": ["alertname", "application_id", "api"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "24h",
                },
                "receivers": [
                    {
                        "name": "test",
                        "webhook_configs": [{"url": webhook.url, "send_resolved": True}],
                    }
                ],
            }
        )
    )
    port = free_port()
    proc = Process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: one instance, loopback only
        ],
        tmp_path / "alertmanager.log",
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as r:
            return bool(r.status == 200)

    try:
        wait_for("alertmanager ready", ready, 60, proc)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def sidecar(tmp_path: Path, alertmanager: str) -> Iterator[SidecarProcess]:
    config = tmp_path / "vigie.toml"
    config.write_text(
        f'alertmanager_urls = "{alertmanager}"\n'
        'alert_on = "episodes"\n'
        "alert_check_seconds = 1\n"
        "alert_resend_seconds = 30\n"
        'data_store = "off"\n'
        "[thresholds]\n"
        "hold_seconds = 120\n"
    )
    sp = start_sidecar(tmp_path / "state", "--config", str(config))
    try:
        yield sp
    finally:
        sp.stop()


def _send(client: StreamClient, enc: StreamEncoder, records: list[dict[str, Any]]) -> None:
    ordered = sorted(records, key=lambda r: r["event_time_us"])
    for i in range(0, len(ordered), 2048):
        batch = enc.batch_from_records(ordered[i : i + 2048])
        client.send(batch)
        client.wait_ack(batch.sequence)


def _alerts(hook: Webhook, status: str) -> list[dict[str, Any]]:
    return [a for n in hook.received() for a in n["alerts"] if a["status"] == status]


def test_a_retry_storm_is_notified_then_resolved_and_the_normal_consumer_never(
    sidecar: SidecarProcess, webhook: Webhook
) -> None:
    start = (int(time.time()) // 60 - 30) * 60 * 1_000_000  # half an hour ago, event time
    client = StreamClient(sidecar.telemetry, gateway_id="gw-alerts")
    enc = StreamEncoder()
    try:
        _send(client, enc, retry_storm("app-storm", start) + steady("app-ok", start, 3, 30))
        firing = wait_for(
            "the storm's alert, through Alertmanager",
            lambda: _alerts(webhook, "firing"),
            90,
            sidecar,
        )
        (alert,) = firing
        assert alert["labels"] == {
            "alertname": "VigieRetryStorm",
            "class": "retry_storm",
            "application": "name-app-storm",
            "application_id": "app-storm",
            "api": "Stock",
            "api_version": "v1",
            "channel": "main",
            "severity": "warning",
        }
        assert alert["annotations"]["summary"] == (
            "retry_storm: application name-app-storm on Stock v1"
        )
        assert alert["annotations"]["owner"] == "team-a"
        assert alert["annotations"]["evidence"].startswith("retries=")
        assert alert["annotations"]["command"] == (
            "vigie consumers --application app-storm --api Stock"
        )

        # the normal consumer carries on past the hold time: the storm's episode ends
        _send(client, enc, steady("app-ok", start + 3 * MINUTE, 12, 30))
        resolved = wait_for(
            "the storm's alert resolved", lambda: _alerts(webhook, "resolved"), 90, sidecar
        )
        assert [a["labels"] for a in resolved] == [alert["labels"]]
    finally:
        client.close()
    notifications = webhook.received()
    assert [n["status"] for n in notifications] == ["firing", "resolved"]
    assert all(n["groupLabels"]["application_id"] == "app-storm" for n in notifications)
    assert "app-ok" not in json.dumps(notifications)
