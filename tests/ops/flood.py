"""A cardinality flood with real processes: the Java load driver (the real handler core, which
rotates its dictionary at the sidecar's limit) offers events of ``n`` distinct new application
ids into a real ``vigie serve`` with a small memory cap, while a second gateway stream keeps two
known consumers busy (one error-prone, one normal).

The flood goes on until ``n`` events were acknowledged (not merely offered): on a busy machine
the handler sheds what its queue cannot hold (counted ``dropped_queue_full``, its documented
load shedding) and the sidecar still gets the whole flood.

Measured: the sidecar's RSS through the flood, subscriptions evicted, strings held and
released, and the known consumers' classes and request counts before and after.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import SidecarProcess, start_sidecar
from tests.ops.harness import Admin, LoadDriver, rss_bytes
from tests.support.streams import StreamClient
from vigie.v1 import admin_pb2 as apb
from vigie.wire.columns import StreamEncoder

MIB = 1024 * 1024
KNOWN = ("known-err", "known-ok")


class KnownConsumers:
    """A gateway stream of its own carrying two known consumers' traffic, in wall-clock time."""

    def __init__(self, target: str) -> None:
        self.client = StreamClient(target, channel="main", gateway_id="known-gateway")
        self.client.wait_for(lambda: bool(self.client.of_kind("welcome")))
        self.enc = StreamEncoder()
        self.sent = {k: 0 for k in KNOWN}
        self.batches = 0

    def send(self, per_app: int = 100) -> None:
        now = int(time.time() * 1e6)
        recs: list[dict[str, Any]] = []
        for k in range(per_app):
            for app in KNOWN:
                status = 404 if app == "known-err" and k % 2 else 200
                recs.append(
                    {
                        "event_time_us": now + k,
                        "application_id": app,
                        "application_name": app,
                        "api_name": "KnownAPI",
                        "api_version": "v1",
                        "resource_template": "/things",
                        "http_method": 1,
                        "http_status": status,
                        "latency_us": 3000,
                    }
                )
                self.sent[app] += 1
        self.client.send(self.enc.batch_from_records(recs))
        self.batches += 1
        self.client.wait_ack(self.batches)

    def close(self) -> None:
        self.client.close()


def known_view(admin: Admin) -> dict[str, tuple[int, list[str]]]:
    out: dict[str, tuple[int, list[str]]] = {}
    for app in KNOWN:
        subs = admin.stub.ListSubscriptions(
            apb.ListSubscriptionsRequest(application=app), metadata=admin.md, timeout=60
        ).subscriptions
        out[app] = (sum(s.requests for s in subs), sorted(c for s in subs for c in s.classes))
    return out


def flood(
    n: int,
    work: Path,
    memory_cap: str = "32MiB",
    max_strings: int = 100_000,
    max_dictionary: int = 16_384,
    rate: int = 30_000,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a flood of ``n`` new applications; return figures and a summary."""
    env = {
        "VIGIE_MAX_STRINGS": str(max_strings),
        "VIGIE_MAX_DICTIONARY_ENTRIES": str(max_dictionary),
    } | (extra_env or {})
    sp: SidecarProcess = start_sidecar(work / "state", "--memory-cap", memory_cap, env=env)
    admin = Admin(sp)
    known = KnownConsumers(sp.telemetry)
    samples: list[dict[str, Any]] = []
    driver: LoadDriver | None = None
    try:
        for _ in range(3):
            known.send()
        before = known_view(admin)
        rss0 = rss_bytes(sp.proc.pid)
        driver = LoadDriver.start(
            sp.telemetry,
            work,
            rate=rate,
            threads=2,
            apps=n,
            apis=1,
            gateway_id="flood-gateway",
            seconds=n // rate + 600,
        )
        t0 = time.monotonic()
        while True:
            time.sleep(1.0)
            known.send()
            ln = driver.latest()
            st = admin.status()
            c = dict(st.counters)
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0, 1),
                    "new_apps_offered": ln["offered"],
                    "acked": ln["acked"],
                    "dropped": ln["dropped"],
                    "rss_mib": round(rss_bytes(sp.proc.pid) / MIB, 1),
                    "state_mib": round(st.state_bytes / MIB, 2),
                    "subscriptions": st.subscriptions,
                    "evicted": c.get("evicted_subscriptions", 0),
                    "strings_held": c.get("strings_held", 0),
                    "strings_released": c.get("strings_released", 0),
                    "refused_strings_full": c.get("batch_refused:strings_full", 0),
                }
            )
            if ln["acked"] >= n:  # n events reached the sidecar, however many the load shed
                break
            if driver.proc.poll() is not None:
                raise AssertionError(f"the load driver exited: {driver.err()}")
        final = driver.stop()
        known.send()
        after = known_view(admin)
        st = admin.status()
        c = dict(st.counters)
        rss_end = rss_bytes(sp.proc.pid)
    finally:
        if driver is not None:
            driver.kill()
        known.close()
        admin.close()
        sp.stop()
    quarter = samples[len(samples) // 4]
    summary = {
        "applications": n,
        "accounting_exact": final["acked"] + final["dropped"] == final["offered"],
        "events_acked": final["acked"],
        "events_dropped": final["dropped"],
        # the handler's documented load shedding (its queue full: the machine could not keep
        # up with the pace) apart from drops that would be a fault
        "dropped_by_cause": {
            k: final[f"dropped_{k}"] for k in ("queue_full", "disconnected", "send_failed", "other")
        },
        "evicted_subscriptions": c.get("evicted_subscriptions", 0),
        "strings_released": c.get("strings_released", 0),
        "strings_held_end": c.get("strings_held", 0),
        "strings_held_max": max(s["strings_held"] for s in samples),
        "max_strings": max_strings,
        "state_bytes_end": st.state_bytes,
        "state_bytes_cap": st.state_bytes_cap,
        "rss_mib_before": round(rss0 / MIB, 1),
        "rss_mib_at_quarter": quarter["rss_mib"],
        "rss_mib_max": max(s["rss_mib"] for s in samples),
        "rss_mib_end": round(rss_end / MIB, 1),
        "known_before": before,
        "known_after": after,
        "known_sent": known.sent,
        # classes unchanged and every request of theirs counted (3 + flood + 1 batches)
        "known_consumers_unaffected": all(
            after[a][1] == before[a][1] and after[a][0] == known.sent[a] for a in KNOWN
        ),
    }
    return {"summary": summary, "samples": samples}
