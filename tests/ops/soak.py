"""``make soak``: the long runs, with real processes on loopback, figures for the report.

1. soak: the Java load driver (the real handler core) offers ``--rate`` events/s (10 x the
   seed's 1,500/s peak) for ``--minutes`` into a real ``vigie serve``; every ``--every`` seconds
   the sidecar's and the JVM's RSS, the sidecar's state bytes and the handler's counters are
   sampled. At the end: offered = acknowledged + counted drops (exactly), and the RSS trend over
   the second half (bytes per minute, least squares) next to its mean.
2. flood: ``--flood`` new application ids through one gateway stream into a sidecar with a small
   memory cap (``tests.ops.flood``): RSS, evictions, interner size, known consumers' classes.

``python -m tests.ops.soak [--minutes 10] [--rate 15000] [--every 10] [--flood 1000000]``
Writes ``benchmarks/results/ops-soak.json`` (and ``ops-flood.json``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import start_sidecar
from tests.ops.harness import (
    Admin,
    LoadDriver,
    cpu_seconds,
    path_quantiles,
    rss_bytes,
    write_figures,
)

MIB = 1024 * 1024


def trend_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes) in bytes per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return 60.0 * sxy / sxx if sxx else 0.0


def soak(minutes: float, rate: int, every: float, work: Path) -> dict[str, Any]:
    sp = start_sidecar(work / "state", "--snapshot-interval", "60")
    driver = LoadDriver.start(
        sp.telemetry, work, rate=rate, threads=4, report_ms=1000, seconds=int(minutes * 60) + 300
    )
    admin = Admin(sp)
    samples: list[dict[str, Any]] = []
    try:
        driver.wait("the first acknowledgements", lambda ln: ln["acked"] > 0, 300)
        t0 = time.monotonic()
        end = t0 + minutes * 60
        while True:
            now = time.monotonic()
            ln = driver.latest()
            st = admin.status()
            samples.append(
                {
                    "t_s": round(now - t0, 1),
                    "sidecar_rss_mib": round(rss_bytes(sp.proc.pid) / MIB, 1),
                    "sidecar_cpu_s": round(cpu_seconds(sp.proc.pid), 1),
                    "driver_cpu_s": round(cpu_seconds(driver.proc.pid), 1),
                    "driver_rss_mib": round(rss_bytes(driver.proc.pid) / MIB, 1),
                    "state_mib": round(st.state_bytes / MIB, 1),
                    "subscriptions": st.subscriptions,
                    "events_applied": st.events_applied,
                    "ingest_rate": round(st.ingest_rate),
                    "offered": ln["offered"],
                    "acked": ln["acked"],
                    "dropped": ln["dropped"],
                    "queue_depth": ln["queue_depth"],
                }
            )
            print(json.dumps(samples[-1]), flush=True)
            if now >= end:
                break
            time.sleep(min(every, max(0.0, end - time.monotonic())))
        final = driver.stop()
    finally:
        admin.close()
        driver.kill()
        sp.stop()
    elapsed = samples[-1]["t_s"] - samples[0]["t_s"]
    half = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] / 2]
    rss_half = [(s["t_s"], int(s["sidecar_rss_mib"] * MIB)) for s in half]
    doc = {
        "minutes": minutes,
        "rate_target": rate,
        "offered_per_s": round((samples[-1]["offered"] - samples[0]["offered"]) / elapsed),
        "acked_per_s": round((samples[-1]["acked"] - samples[0]["acked"]) / elapsed),
        "sidecar_cpu_cores": round(
            (samples[-1]["sidecar_cpu_s"] - samples[0]["sidecar_cpu_s"]) / elapsed, 3
        ),
        "driver_cpu_cores": round(
            (samples[-1]["driver_cpu_s"] - samples[0]["driver_cpu_s"]) / elapsed, 3
        ),
        "final": {k: v for k, v in final.doc.items() if k != "path_log2_ns"},
        "accounting_exact": final["acked"] + final["dropped"] == final["offered"],
        "request_path": path_quantiles(final["path_log2_ns"]) | {"max_ns": final["path_max_ns"]},
        "sidecar_rss_mib": {
            "first": samples[0]["sidecar_rss_mib"],
            "min": min(s["sidecar_rss_mib"] for s in samples),
            "max": max(s["sidecar_rss_mib"] for s in samples),
            "last": samples[-1]["sidecar_rss_mib"],
            "second_half_mean": round(sum(v for _, v in rss_half) / len(rss_half) / MIB, 1),
            "second_half_trend_mib_per_min": round(trend_per_minute(rss_half) / MIB, 3),
        },
        "samples": samples,
    }
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.ops.soak")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=15_000)
    p.add_argument("--every", type=float, default=10.0)
    p.add_argument("--flood", type=int, default=1_000_000, help="0: no flood run")
    p.add_argument("--skip-soak", action="store_true")
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the flood with max_strings out of reach (the interner unbounded), for contrast",
    )
    a = p.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="vigie-soak-") as tmp:
        work = Path(tmp)
        if not a.skip_soak:
            doc = soak(a.minutes, a.rate, a.every, work)
            path = write_figures("soak", doc)
            r = doc["sidecar_rss_mib"]
            print(
                f"\nsoak {a.minutes:g} min at {a.rate}/s: offered {doc['offered_per_s']}/s, "
                f"acked {doc['acked_per_s']}/s, dropped {doc['final']['dropped']} "
                f"(accounting exact: {doc['accounting_exact']}); sidecar RSS {r['first']} -> "
                f"{r['last']} MiB (max {r['max']}), second-half trend "
                f"{r['second_half_trend_mib_per_min']} MiB/min -> {path}"
            )
            ok &= bool(doc["accounting_exact"])
        if a.flood:
            from tests.ops.flood import flood  # noqa: PLC0415

            fdoc = flood(a.flood, work / "flood", memory_cap="64MiB", max_strings=200_000)
            path = write_figures("flood", fdoc)
            print(f"\nflood of {a.flood} applications: {json.dumps(fdoc['summary'])} -> {path}")
            ok &= bool(fdoc["summary"]["known_consumers_unaffected"])
            if not a.no_compare:
                cdoc = flood(
                    a.flood, work / "flood-unbounded", memory_cap="64MiB", max_strings=10**9
                )
                path = write_figures("flood-unbounded", cdoc)
                print(f"\nthe same, strings unbounded: {json.dumps(cdoc['summary'])} -> {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
