"""Approving a suggestion -> the directive is on every connected gateway.

A real ``vigie serve`` process holds an inventory of dormant subscriptions (one suggestion
each, with a BLOCK directive; two requests a month apart make them judged dormant). Four
gateway streams are connected (``GatewayProbe``, the gateway's side of the stream contract)
and, in the same run, a naive gateway that polls ``ListDirectives`` every second. Each approval
is timed from the moment the approve call is made to the moment the directive is in the table
of *every* connected gateway:

- ``approve (admin RPC) -> every gateway``: the approve call the CLI makes, from a client
  that is already running (the path the issue's target is about);
- ``approve (a new vigie process) -> every gateway``: ``vigie suggestions approve ID`` run as
  a new process, Python start-up and imports included;

each side by side with the polling gateway's latency for the same approvals. Both are measured
idle and while simulated gateways stream traffic into the sidecar.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks._harness import Result
from benchmarks._sidecar import Served, sidecar
from vigie.cli.client import AdminClient
from vigie.sources import simulator
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc

TARGET_MS = 100.0
POLL_S = 1.0


class Poller:
    """The naive gateway: ListDirectives every second; when each directive id first shows."""

    def __init__(self, admin: str, token: str) -> None:
        self._ch = grpc.insecure_channel(admin)
        self._stub = apb_grpc.AdminStub(self._ch)
        self._md = (("authorization", f"Bearer {token}"),)
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            table = self._stub.ListDirectives(apb.ListDirectivesRequest(), metadata=self._md)
            now = time.perf_counter()
            with self._cond:
                for d in table.directives:
                    self.seen.setdefault(d.id, now)
                self._cond.notify_all()
            self._stop.wait(max(0.0, POLL_S - (time.perf_counter() - t)))

    def wait(self, directive_id: str, timeout: float = 5.0) -> float:
        with self._cond:
            self._cond.wait_for(lambda: directive_id in self.seen, timeout)
            return self.seen[directive_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._ch.close()


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _measure(
    ids: list[str],
    admin: str,
    token: str,
    token_file: Path,
    probes: list[GatewayProbe],
    poller: Poller,
    via_cli: bool,
) -> tuple[list[float], list[float]]:
    streamed: list[float] = []
    polled: list[float] = []
    client = AdminClient(admin, token)
    env = os.environ | {"VIGIE_ACTOR": "bench"}
    rng = random.Random(7)
    try:
        for sid in ids:
            time.sleep(rng.uniform(0.0, 0.3))  # no lock-step with the poller
            t0 = time.perf_counter()
            if via_cli:
                subprocess.run(
                    [sys.executable, "-m", "vigie.cli", "suggestions", "approve", sid,
                     "--admin", admin, "--token-file", str(token_file), "--json"],
                    check=True, capture_output=True, env=env,
                )  # fmt: skip
            else:
                client.call(
                    client.stub.ApproveSuggestion,
                    apb.ApproveSuggestionRequest(id=sid, actor="bench", reason="benchmark"),
                )
            arrivals = []
            for p in probes:
                if not p.wait_for(lambda q, sid=sid: sid in q.table, 10):
                    raise RuntimeError(f"{sid} never reached {p}: {p.error}")
                at = p.arrival_of(sid, t0)
                assert at is not None
                arrivals.append(at)
            streamed.append((max(arrivals) - t0) * 1000)
            polled.append((poller.wait(sid) - t0) * 1000)
    finally:
        client.close()
    return streamed, polled


def _wait_ingesting(admin: str, token: str, timeout: float = 60.0) -> None:
    """Until the simulated gateways' events are being applied."""
    with AdminClient(admin, token) as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = c.call(c.stub.GetStatus, apb.StatusRequest())
            simulated = [g for g in st.gateways if g.gateway_id.startswith("sim-gw")]
            if st.ingest_rate > 0 and len(simulated) == len(simulator.CHANNELS):
                return
            time.sleep(0.5)
    raise RuntimeError("the simulated load never started")


def _observe_a_month(probe: GatewayProbe) -> None:
    """Two requests 31 days apart: vigie has observed the platform long enough to call the
    inventory's never-called subscriptions dormant (before that they are unknown)."""
    now = int(time.time() * 1e6)
    marks = [
        {"event_time_us": t, "application_id": "bench-clock", "api_name": "Clock",
         "api_version": "v1", "api_context": "/clock/v1", "resource_template": "/t",
         "http_method": 1, "http_status": 200, "latency_us": 1000}
        for t in (now - 31 * 86_400_000_000, now - 60_000_000)
    ]  # fmt: skip
    probe.send_records(marks)
    if not probe.wait_for(lambda p: p.acked_events >= len(marks), 30):
        raise RuntimeError(f"the observation marks were not acknowledged: {probe.error}")


def _inventory(path: Path, n: int) -> None:
    """``n`` applications with one subscription each, never called: one dormant suggestion
    (with a BLOCK directive) each."""
    doc = {
        "applications": [
            {"id": f"app-{k:04d}", "name": f"App{k}", "owner": "team", "channel": "main"}
            for k in range(n)
        ],
        "subscriptions": [
            {"application_id": f"app-{k:04d}", "api": f"Api{k % 7}", "api_version": "v1"}
            for k in range(n)
        ],
    }
    path.write_text(json.dumps(doc))


def _run_phase(label: str, ids: list[str], via_cli: bool, ctx: dict[str, Any]) -> Result:
    load_before = os.getloadavg()[0]
    streamed, polled = _measure(
        ids, ctx["admin"], ctx["token"], ctx["token_file"], ctx["probes"], ctx["poller"], via_cli
    )
    load_after = os.getloadavg()[0]
    what = "a new vigie process" if via_cli else "admin RPC"
    return Result(
        name=f"approve ({what}) -> every gateway, p99, {label}",
        unit="ms",
        vigie=_pct(streamed, 0.99),
        naive=_pct(polled, 0.99),
        naive_label=f"gateway polls ListDirectives every {POLL_S:g} s",
        target=None if via_cli else TARGET_MS,
        higher_is_better=False,
        notes=f"{len(ids)} approvals, {len(ctx['probes'])} gateway streams",
        extra={
            "p50_ms": round(_pct(streamed, 0.5), 2),
            "max_ms": round(max(streamed), 2),
            "naive_p50_ms": round(_pct(polled, 0.5), 2),
            "p90_ms": round(_pct(streamed, 0.9), 2),
            # the machine is shared: its load average (2 cores) says how far to trust the tail
            "load_average": [round(load_before, 2), round(load_after, 2)],
            "samples_ms": [round(x, 2) for x in streamed],
        },
    )


def _run_all(served: Served, n: int, n_cli: int, tps: float) -> list[Result]:
    results: list[Result] = []
    telemetry, admin = served.telemetry, served.admin
    token_file = served.state_dir / "admin.token"
    token = token_file.read_text().strip()
    probes = [GatewayProbe(telemetry, f"bench-gw-{ch}", ch) for ch in simulator.CHANNELS]
    poller = Poller(admin, token)
    try:
        for p in probes:
            if not p.wait_connected(30):
                raise RuntimeError(f"probe not connected: {p.error}")
        _observe_a_month(probes[0])
        with AdminClient(admin, token) as c:
            doc = c.call(c.stub.ListSuggestions, apb.ListSuggestionsRequest(refresh=True))
        ids = [s.id for s in doc.suggestions if s.HasField("directive")]
        if len(ids) < n + 2 * n_cli:
            raise RuntimeError(f"only {len(ids)} suggestions with a directive")
        ctx = {"admin": admin, "token": token, "token_file": token_file, "probes": probes,
               "poller": poller}  # fmt: skip
        half = n // 2
        results.append(_run_phase("idle", ids[:half], False, ctx))
        results.append(_run_phase("idle", ids[half : half + n_cli], True, ctx))
        rest = ids[half + n_cli :]
        # the same under load: simulated gateways (another process) stream into the sidecar
        load = subprocess.Popen(
            [sys.executable, "-m", "vigie.cli", "simulate", "--target", telemetry, "--tps",
             f"{tps:g}", "--duration", "0", "--apps", "200", "--apis", "40"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_ingesting(admin, token)
            label = f"{tps:g} events/s streaming"
            results.append(_run_phase(label, rest[:half], False, ctx))
            results.append(_run_phase(label, rest[half : half + n_cli], True, ctx))
        finally:
            load.terminate()
            load.wait(30)
    finally:
        poller.close()
        for p in probes:
            p.close()
    return results


def run(quick: bool) -> list[Result]:
    n = 12 if quick else 200
    n_cli = 4 if quick else 15
    tps = 300.0 if quick else 1000.0
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        inv = Path(tmp) / "inventory.json"
        _inventory(inv, n + 2 * n_cli + 4)
        with sidecar("--inventory", str(inv)) as served:
            results = _run_all(served, n, n_cli, tps)
    return results
