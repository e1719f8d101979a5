"""Alerts for real: a real ``vigie serve`` posts to a real Alertmanager (built from the Go
module proxy by ``make alertmanager-path``, part of ``make backends``), which routes everything
to a webhook receiver in this test. A retry storm and a normal consumer stream in through the
gateway wire: the webhook gets the storm's alert firing with its labels, then resolved when the
episode ends, and nothing about the normal consumer — while the other Alertmanager of the pair
is down; two replicas give one notification; the storm's suggestion alerts while it awaits
review."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SidecarProcess, free_port, start_sidecar
from tests.e2e.test_export_backends import Process, wait_for
from tests.support.policy_sidecar import cli_json
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


def _serve(
    tmp_path: Path, alertmanager: str, name: str = "state", alert_on: str = "episodes"
) -> SidecarProcess:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'alertmanager_urls = "{alertmanager}"\n'
        f'alert_on = "{alert_on}"\n'
        # the behaviour classes only: the storm's 101503s also make Stock backend_down (the
        # health classes' own test is tests/e2e/test_health_alerts.py)
        'alert_classes = "retry_storm,error_prone,redundant,throttle_hitter,wrong_channel"\n'
        "policy_refresh_seconds = 1\n"
        "alert_check_seconds = 1\n"
        "alert_resend_seconds = 30\n"
        'data_store = "off"\n'
        "[thresholds]\n"
        "hold_seconds = 120\n"
    )
    return start_sidecar(tmp_path / name, "--config", str(config))


@pytest.fixture
def sidecar(tmp_path: Path, alertmanager: str) -> Iterator[SidecarProcess]:
    # the first of the HA pair is down (nothing listens on its port): the other is still told
    dead = f"http://127.0.0.1:{free_port()}"
    sp = _serve(tmp_path, f"{dead},{alertmanager}")
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


def _posted(sp: SidecarProcess) -> Callable[[], bool]:
    """Whether ``sp`` has posted an alert (its ``alerts_posted`` counter, in vigie status)."""

    def check() -> bool:
        return int(cli_json(sp, "status")["counters"].get("alerts_posted", 0)) >= 1

    return check


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
        counters = cli_json(sidecar, "status")["counters"]
        assert int(counters["alert_post_failures"]) >= 1  # the dead one: counted, not raised
    finally:
        client.close()
    notifications = webhook.received()
    assert [n["status"] for n in notifications] == ["firing", "resolved"]
    assert all(n["groupLabels"]["application_id"] == "app-storm" for n in notifications)
    assert "app-ok" not in json.dumps(notifications)


def test_two_replicas_seeing_the_same_storm_give_one_notification(
    tmp_path: Path, alertmanager: str, webhook: Webhook
) -> None:
    """A fleet relies on Alertmanager's deduplication: both sidecars post the storm's alert
    with the same labels (no instance among them), and the receiver is notified once."""
    start = (int(time.time()) // 60 - 30) * 60 * 1_000_000
    traffic = retry_storm("app-storm", start) + steady("app-ok", start, 3, 30)
    replicas = [_serve(tmp_path, alertmanager, f"replica-{i}") for i in range(2)]
    clients = []
    try:
        for sp in replicas:
            client = StreamClient(sp.telemetry, gateway_id=f"gw-{sp.state_dir.name}")
            clients.append(client)
            _send(client, StreamEncoder(), traffic)
        for sp in replicas:  # each replica posted it
            wait_for(f"{sp.state_dir.name} posting its alert", _posted(sp), 90, sp)
        wait_for("the notification", lambda: _alerts(webhook, "firing"), 90)
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=10) as r:
            held = json.load(r)
        assert [a["labels"]["application_id"] for a in held] == ["app-storm"]
    finally:
        for client in clients:
            client.close()
        for sp in replicas:
            sp.stop()
    notifications = webhook.received()
    assert [n["status"] for n in notifications] == ["firing"]
    assert [a["labels"]["alertname"] for a in notifications[0]["alerts"]] == ["VigieRetryStorm"]


def test_the_storm_s_suggestion_is_notified_while_it_awaits_review_then_resolved(
    tmp_path: Path, alertmanager: str, webhook: Webhook
) -> None:
    sp = _serve(tmp_path, alertmanager, alert_on="episodes,suggestions,directives,data")
    start = (int(time.time()) // 60 - 30) * 60 * 1_000_000
    client = StreamClient(sp.telemetry, gateway_id="gw-alerts")
    enc = StreamEncoder()
    try:
        _send(client, enc, retry_storm("app-storm", start) + steady("app-ok", start, 3, 30))

        def both_firing() -> list[str]:
            names = sorted({a["labels"]["alertname"] for a in _alerts(webhook, "firing")})
            return names if len(names) == 2 else []

        assert wait_for("the class and its suggestion", both_firing, 90, sp) == [
            "VigieRetryStorm",
            "VigieSuggestion",
        ]
        # (its requests fail with WSO2 101503: the API's backend_down has its own suggestion)
        (suggestion,) = [
            a
            for a in _alerts(webhook, "firing")
            if a["labels"]["alertname"] == "VigieSuggestion"
            and a["labels"]["class"] != "backend_down"
        ]
        assert suggestion["labels"]["class"] == "retry_storm"
        assert suggestion["labels"]["application_id"] == "app-storm"
        sid = suggestion["labels"]["suggestion"]
        assert suggestion["annotations"]["command"] == f"vigie suggestions show {sid}"
        listed = cli_json(sp, "suggestions", "list")
        assert sid in json.dumps(listed)

        # the episode ends: the class resolves, and the proposal is withdrawn, which resolves it
        _send(client, enc, steady("app-ok", start + 3 * MINUTE, 12, 30))

        def both_resolved() -> list[str]:
            names = sorted({a["labels"]["alertname"] for a in _alerts(webhook, "resolved")})
            return names if len(names) == 2 else []

        assert wait_for("both resolved", both_resolved, 90, sp) == [
            "VigieRetryStorm",
            "VigieSuggestion",
        ]
    finally:
        client.close()
        sp.stop()
    assert "app-ok" not in json.dumps(webhook.received())
