"""`vigie replay` lines per second on WSO2's analytics log format, side by side with the naive
way: the standard json module per line feeding the same rules in plain Python."""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks._harness import Result
from tests.support import naive
from tests.support.wso2log import App, LogWriter, at
from vigie.replay import run_replay
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import COLUMNS, Interner


def write_log(path: Path, lines: int) -> None:
    """A day of a platform: 300 applications over 40 APIs, 3 % faults, 1 % 4xx."""
    rng = random.Random(5)
    apps = [App(f"app-{k}") for k in range(300)]
    apis = [f"api-{k}" for k in range(40)]
    w = LogWriter(seed=5)
    step = 86_400 / lines
    for k in range(lines):
        t = at(seconds=k * step) + timedelta(microseconds=rng.randrange(1000))
        app, api = rng.choice(apps), rng.choice(apis)
        r = rng.random()
        if r < 0.03:
            w.fault(t, app, api, error_code=900803)
        else:
            w.response(
                t,
                app,
                api,
                resource=f"/r{rng.randrange(8)}",
                status=404 if r < 0.04 else 200,
                latency_ms=rng.randrange(5, 300),
            )
    w.write(path)


def naive_replay(path: Path, limit: int) -> float:
    interner = Interner()
    nv = naive.NaiveState(Thresholds().params())
    t = time.perf_counter()
    n = 0
    with path.open() as f:
        for line in f:
            if n >= limit:
                break
            d = json.loads(line[line.index("properties :") + 12 :])
            rec = {c.name: c.default for c in COLUMNS}
            rec["event_time_us"] = int(
                time.mktime(time.strptime(d["requestTimestamp"][:19], "%Y-%m-%dT%H:%M:%S")) * 1e6
            )
            rec["application_id"] = interner.intern(d.get("applicationId", ""))
            rec["api_name"] = interner.intern(d["apiName"])
            rec["api_version"] = interner.intern(d["apiVersion"])
            rec["resource_template"] = interner.intern(d.get("apiResourceTemplate", ""))
            rec["http_status"] = int(d["proxyResponseCode"])
            rec["error_code"] = int(d.get("errorCode", 0))
            rec["latency_us"] = int(d["responseLatency"]) * 1000
            nv.apply({k: [v] for k, v in rec.items()}, [0])
            n += 1
    return n / (time.perf_counter() - t)


def run(quick: bool) -> list[Result]:
    lines = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "apim_metrics.log"
        write_log(path, lines)
        run_replay([str(path)], None, None)  # warm-up: kernels loaded
        best = 0.0
        for _ in range(2):
            report = run_replay([f"main={path}"], None, None)
            assert report.stats.events == lines and report.stats.rejected == 0
            best = max(best, lines / report.seconds)
        slow = naive_replay(path, 20_000 if not quick else 5_000)
        size = path.stat().st_size
    return [
        Result(
            "vigie replay of apim_metrics.log",
            "lines/s",
            best,
            slow,
            "json per line + the rules in plain Python",
            target=150_000,
            notes=f"{lines:,} lines, {size / lines:.0f} bytes per line",
        )
    ]
