"""The ingest kernel's cost per event, side by side with the naive ways: an OpenTelemetry SDK
call per event (a counter and a histogram, what an instrumented gateway plugin would do), and
the same rules in plain Python (tests/support/naive.py).

Against an earlier kernel, side by side in one run (absolute figures drift on a shared machine:
compare the two in the same run, alternated)::

    git archive <commit> | tar -x -C /tmp/base
    python -m benchmarks.bench_kernel --against /tmp/base [--rounds 2] [--quick]

runs the kernel measurement in a fresh process for each tree (its own ``vigie``, from
``<tree>/sidecar``), alternating the trees, and prints the ns/event of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import vigie
from benchmarks._harness import Result
from benchmarks._load import platform_batch
from tests.support import naive
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import COLUMNS, Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_409_600_000_000


def _events(n: int, seed: int = 1) -> tuple[Events, Interner]:
    rng = np.random.default_rng(seed)
    enc = StreamEncoder()
    cols = platform_batch(enc, n, rng, T0)
    cols["event_time_us"] = T0 + np.arange(n, dtype=np.int64) * 666  # 1,500 events/s
    interner = Interner()
    dec = StreamDecoder(interner, 0, n, 10**6)
    return dec.decode(enc.batch(cols)), interner


def _kernel_ns(
    ev: Events, interner: Interner, batch: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    state = State()
    state.interner = interner
    state.channel_index("main")
    state.apply(ev.take(slice(0, 20_000)))  # rows created, kernels loaded
    rest = ev.take(slice(20_000, None))
    best = float("inf")
    for _ in range(3):
        t = clock()
        for k in range(0, len(rest), batch):
            state.apply(rest.take(slice(k, k + batch)))
        best = min(best, (clock() - t) / len(rest) * 1e9)
    return best


def _otel_ns(ev: Events, interner: Interner, n: int) -> float:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("naive")
    requests = meter.create_counter("requests")
    latency = meter.create_histogram("latency", unit="s")
    app, api, st, lat = (
        ev[c][:n].tolist() for c in ("application_id", "api_name", "http_status", "latency_us")
    )
    t = time.perf_counter()
    for k in range(n):
        attrs = {
            "application": interner.string(app[k]),
            "api": interner.string(api[k]),
            "status": st[k] // 100,
        }
        requests.add(1, attrs)
        latency.record(lat[k] / 1e6, attrs)
    return (time.perf_counter() - t) / n * 1e9


def _python_ns(ev: Events, n: int) -> float:
    nv = naive.NaiveState(Thresholds().params())
    cols = {c.name: ev[c.name][:n].tolist() for c in COLUMNS}
    t = time.perf_counter()
    nv.apply(cols, [0] * n)
    return (time.perf_counter() - t) / n * 1e9


def run(quick: bool) -> list[Result]:
    n = 300_000 if quick else 2_000_000
    ev, interner = _events(n)
    kernel = _kernel_ns(ev, interner, 8192)
    kernel_small = _kernel_ns(ev, interner, 8)
    otel = _otel_ns(ev, interner, 20_000 if quick else 100_000)
    python = _python_ns(ev, 3_000 if quick else 10_000)
    return [
        Result(
            "kernel, 8,192-event batches, 2,500 subscriptions",
            "ns/event",
            kernel,
            otel,
            "an OTel SDK counter + histogram call per event",
            target=30,
            higher_is_better=False,
            extra={"plain_python_rules_ns": python},
        ),
        Result(
            "kernel, 8-event batches (a 1,500 TPS gateway flushing every 5 ms)",
            "ns/event",
            kernel_small,
            python,
            "the same rules in plain Python",
            higher_is_better=False,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# this kernel against an earlier one (see the module docstring)
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
_CHILD = "--child"


def kernel_figures(quick: bool) -> dict[str, float]:
    """The two kernel figures of ``run`` (ns/event), without the naive ways, in CPU time of
    the measuring thread (on a shared machine, wall time also counts the other processes)."""
    ev, interner = _events(300_000 if quick else 2_000_000)
    return {f"batch_{b}": _kernel_ns(ev, interner, b, time.thread_time) for b in (8192, 8)}


def _measure_in(tree: Path, quick: bool) -> dict[str, float]:
    """``kernel_figures`` in a fresh process that imports ``vigie`` from ``tree``."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree / "sidecar"), str(ROOT)])}
    args = [sys.executable, str(Path(__file__).resolve()), _CHILD, str(tree)]
    out = subprocess.run(
        [*args, *(["--quick"] if quick else [])],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return doc


def compare(base: Path, rounds: int, quick: bool) -> dict[str, dict[str, list[float]]]:
    """Each tree's figures, ``rounds`` times, alternating base and this tree."""
    trees = {"base": base.resolve(), "this": ROOT}
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            for k, v in _measure_in(tree, quick).items():
                runs[name].setdefault(k, []).append(v)
    return runs


def _main(argv: list[str]) -> None:
    if argv and argv[0] == _CHILD:  # the measuring process
        tree = Path(argv[1]).resolve()
        if not Path(vigie.__file__).resolve().is_relative_to(tree):
            raise SystemExit(f"vigie imported from {vigie.__file__}, not from {tree}")
        print(json.dumps(kernel_figures("--quick" in argv)))
        return
    ap = argparse.ArgumentParser(description="this kernel against an earlier tree's")
    ap.add_argument("--against", type=Path, required=True, help="a checkout of the earlier tree")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args(argv)
    runs = compare(opts.against, opts.rounds, opts.quick)
    print(f"{'figure':<12} {'base ns/event':>24} {'this ns/event':>24} {'this/base':>10}")
    for k in runs["base"]:
        b, t = runs["base"][k], runs["this"][k]
        ratio = min(t) / min(b)
        row = f"{k:<12} {' '.join(f'{v:7.1f}' for v in b):>24} "
        print(row + f"{' '.join(f'{v:7.1f}' for v in t):>24} {ratio:>10.3f}")
    print(json.dumps(runs))


if __name__ == "__main__":
    _main(sys.argv[1:])
