"""Ingest + classify from a separate client process over loopback, and freshness at the
platform's peak, side by side with one gRPC message per event."""

from __future__ import annotations

from benchmarks._harness import Result
from benchmarks._sidecar import load, sidecar

WARM_EVENTS = 2_000_000


def run(quick: bool) -> list[Result]:
    events = 1_000_000 if quick else 8_000_000
    per_event_n = 3_000 if quick else 20_000
    seconds = "8" if quick else "30"
    with sidecar(env={"VIGIE_DATA_STORE": "off"}) as s:  # the state alone
        load("columnar", s.telemetry, "100000", "8192")  # warm-up: rows created
        col = load("columnar", s.telemetry, str(events), "8192")
        one = load("per-event", s.telemetry, str(per_event_n))
        assert col["applied"] == col["events"] and one["applied"] == one["events"]
        applied = s.status().events_applied
    with sidecar() as s:  # everything on, as deployed: rollup store, suggestions
        load("columnar", s.telemetry, "100000", "8192")
        stored = load("columnar", s.telemetry, str(events), "8192")
    # Freshness at the platform's peak, in a sidecar that is not still writing the rollups of
    # the burst above (8 M events is an hour and a half of peak traffic in a few seconds)
    with sidecar() as s:
        # the same traffic first, untimed: rows created, arrays at their size
        fresh = load("freshness", s.telemetry, "1500", seconds, "5", str(WARM_EVENTS))
        fresh_one = load("freshness", s.telemetry, "1500", seconds, "0")
    col_rate = col["events"] / col["seconds"]
    return [
        Result(
            "ingest+classify, client process over loopback",
            "events/s",
            col_rate,
            one["events"] / one["seconds"],
            "one gRPC message per event",
            target=4_000_000,
            notes=f"8192 events per batch; {col['events']:,} events; sidecar applied {applied:,}",
        ),
        Result(
            "ingest+classify with the rollup store and suggestions on (default)",
            "events/s",
            stored["events"] / stored["seconds"],
            col_rate,
            "the state alone",
            notes="the store's writer thread shares the 2 cores",
        ),
        Result(
            "freshness at 1,500 TPS (batch handed to gRPC -> state updated), p99",
            "ms",
            fresh["p99_ms"],
            fresh_one["p99_ms"],
            "one message per event",
            target=10.0,
            higher_is_better=False,
            notes=f"a batch every 5 ms ({fresh['events_per_batch']} events), everything on, "
            f"after {WARM_EVENTS:,} events of the same traffic; "
            f"p50 {fresh['p50_ms']:.2f} ms; per-event p50 {fresh_one['p50_ms']:.2f} ms",
            extra={"columnar": fresh, "per_event": fresh_one},
        ),
    ]
