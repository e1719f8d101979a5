"""Ingest + classify from a separate client process over loopback, side by side with the tree
before the ingest path's rework (issue 16) and with gRPC alone; where the time of ingest goes,
stage by stage; freshness at the platform's peak, side by side with one message per event.

- **Loopback**: a real ``vigie serve`` (the state alone, ``data_store = off``) and a client
  process (``_ingest_client send``) streaming pre-encoded batches of 8,192 events on 1, 2 and 4
  streams as fast as the acks allow (4 unacknowledged batches per stream); events/s, and the
  CPU time the sidecar and the client spent per event (what bounds it on 2 cores: at 4 M
  events/s, the two processes together have 500 ns of CPU per event). The same runs against
  the tree of ``BEFORE`` (``git archive``, kept in the temporary directory) and against a
  server that acks every message unread (``_ingest_client echo``: gRPC's share); the three
  servers run side by side and are alternated, each figure the fastest of 2 (quick) or 3 runs.
- **Stages** (``stages``), in process, CPU time of the thread, best of 3: protobuf parse (the
  stream's deserializer), the columns checked and viewed (``StreamDecoder.check``) and the
  dictionary ids mapped (``map``), both outside the state lock, the rest of the decode
  (``finish``: tenants, under the lock), the whole decode, the mapping alone (a jitted pass
  per column, and numpy's fancy index as before), the kernel (``State.apply``; and on
  writable copies of the same columns), the ack, ``Sidecar.apply_batch`` whole (all of the
  above but the parse and the ack, plus the API-room check and the hit counts: the path of
  a batch without gRPC), and how much of its speed a Python thread keeps while the apply runs
  (1: the GIL released throughout); the same in the tree of ``BEFORE``, the two trees in
  fresh processes alternated twice, the best of each kept.

``python -m benchmarks ingest [--quick]``; the stages alone: ``python -m benchmarks.bench_ingest``;
every loopback run of both trees, alternated: ``python -m benchmarks.bench_ingest --runs 3``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import Result
from benchmarks._load import T0, platform_batch
from benchmarks._sidecar import free_port, load, sidecar
from vigie.server.core import Sidecar
from vigie.server.telemetry import decode_message
from vigie.settings import load_settings
from vigie.state.engine import State
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire import columns as wire_columns
from vigie.wire.columns import DICTIONARY_COLUMNS, Events, Interner, StreamDecoder, StreamEncoder

ROOT = Path(__file__).resolve().parent.parent
# main before the ingest path's rework (issue 16: decode outside the lock, zero-copy columns,
# jitted dictionary mapping)
BEFORE = "7a03adc0114d6991c46b8274fac461fb5dd67a6e"
WARM_EVENTS = 2_000_000
BATCH = 8192
STREAMS = (1, 2, 4)
WINDOW = 4  # unacknowledged batches per stream


def _payloads(n_batches: int) -> list[bytes]:
    """The messages of the columnar load client (``_load.columnar``): its traffic, serialised."""
    enc = StreamEncoder()
    cols = platform_batch(enc, BATCH, np.random.default_rng(1), T0)
    first = enc.batch(cols)
    template = pb.EventBatch()
    template.CopyFrom(first)
    del template.dictionary_additions[:]
    ts = cols["event_time_us"].astype("<i8")
    out = [pb.GatewayMessage(batch=first).SerializeToString()]
    for k in range(1, n_batches):
        template.sequence = k + 1
        template.dictionary_base = first.dictionary_base + len(first.dictionary_additions)
        template.event_time_us = (ts + k * 1_000_000).tobytes()
        out.append(pb.GatewayMessage(batch=template).SerializeToString())
    return out


def _best(f: Any, rounds: int = 3) -> float:
    """The least CPU time of this thread ``f()`` took, in ``rounds`` runs."""
    best = float("inf")
    for _ in range(rounds):
        t = time.thread_time()
        f()
        best = min(best, time.thread_time() - t)
    return best


def stages(quick: bool) -> dict[str, float]:
    """ns/event of each stage of the sidecar's work on the columnar client's batches, in this
    process, one stage at a time over all the batches (see the module's docstring); the
    stages this tree does not have (``check``, ``finish``, the jitted mapping) are left out."""
    payloads = _payloads(30 if quick else 120)
    n = (len(payloads) - 1) * BATCH  # the first batch (the dictionary) is not timed
    out: dict[str, float] = {}

    def parse() -> None:
        for p in payloads[1:]:
            decode_message(p)  # dropped, as the sidecar drops a batch once applied

    out["parse"] = _best(parse) / n
    batches = [m.batch for m in map(decode_message, payloads) if isinstance(m, pb.GatewayMessage)]

    def decoder() -> StreamDecoder:
        dec = StreamDecoder(Interner(), 0, BATCH, 10**6)
        dec.decode(batches[0])
        return dec

    staged = hasattr(StreamDecoder, "check")
    if staged:
        dec = decoder()

        def check(keep: list[Any] | None = None) -> None:
            for b in batches[1:]:
                dec.next_sequence = b.sequence  # checked in turn, the stream not moved on
                c = dec.check(b)
                if keep is not None:
                    keep.append(c)

        out["check"] = _best(check) / n
        checked: list[Any] = []
        check(checked)

        def map_all() -> None:
            for c in checked:
                dec.next_sequence = c.sequence
                dec.map(c)

        out["map"] = _best(map_all) / n

        def finish() -> None:
            dec = decoder()
            for c in checked:
                dec.finish(c)

        out["finish"] = _best(finish) / n

    def decode() -> None:
        dec = decoder()
        for b in batches[1:]:
            dec.decode(b)

    out["decode"] = _best(decode) / n
    l2g = np.arange(1 << 16, dtype=np.int32)
    ids = [
        [np.frombuffer(getattr(b, c), dtype="<u4") for c in DICTIONARY_COLUMNS if getattr(b, c)]
        for b in batches[1:]
    ]

    def mapping(f: Any) -> None:
        for cols in ids:
            for c in cols:
                f(c)

    out["map_fancy_index"] = _best(lambda: mapping(l2g.__getitem__)) / n
    map_ids = getattr(wire_columns, "map_ids", None)
    if map_ids is not None:
        map_ids(l2g, ids[0][0])  # compiled (or loaded) first
        out["map_jitted"] = _best(lambda: mapping(lambda c: map_ids(l2g, c))) / n
    interner = Interner()
    dec = StreamDecoder(interner, 0, BATCH, 10**6)
    decoded = [dec.decode(b) for b in batches]
    runs = {"kernel": decoded}
    if any(not c.flags.writeable for c in decoded[1].columns.values()):
        # the same events in writable copies: what the zero-copy columns change in the kernel
        copies = [Events({k: v.copy() for k, v in e.columns.items()}, e.channel) for e in decoded]
        runs["kernel_copied_columns"] = copies
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(3):  # alternated: the machine's load moves both alike
        for name, evs in runs.items():
            best[name] = min(best[name], _kernel(interner, evs, 1))
    out |= best
    out["apply_batch"] = _apply_batch(batches)
    out["gil_free_share"] = _gil_free_share(interner, decoded) * 1e-9  # a share, not ns

    def ack() -> None:
        for b in batches[1:]:
            pb.SidecarMessage(
                ack=pb.Ack(sequence=b.sequence, events_applied=b.count)
            ).SerializeToString()

    out["ack"] = _best(ack) / n
    return {k: v * 1e9 for k, v in out.items()}  # ns/event


def _kernel(interner: Interner, decoded: list[Events], rounds: int = 3) -> float:
    """Seconds per event of ``State.apply`` on ``decoded`` but its first 4 batches (rows
    created, kernels loaded), best of ``rounds`` fresh states."""
    best = float("inf")
    for _ in range(rounds):
        state = State()
        state.interner = interner
        state.channel_index("main")
        for ev in decoded[:4]:
            state.apply(ev)
        t = time.thread_time()
        for ev in decoded[4:]:
            state.apply(ev)
        best = min(best, time.thread_time() - t)
    return best / ((len(decoded) - 4) * BATCH)


def _apply_batch(batches: list[pb.EventBatch]) -> float:
    """Seconds per event of ``Sidecar.apply_batch`` (the whole path of a batch but gRPC:
    checks, decode, the API-room check, the kernels, the hit counts), one stream, the data
    store off, best of 3 fresh sidecars."""
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp:
            settings = load_settings(env={}, overrides={"state_dir": tmp, "data_store": "off"})
            sc = Sidecar(settings)
            hello = pb.Hello(gateway_id="bench", channel="main", protocol_version=1)
            gs, dec = sc.open_stream(hello, "bench")
            for b in batches[:4]:
                sc.apply_batch(gs, dec, b)
            t = time.thread_time()
            for b in batches[4:]:
                sc.apply_batch(gs, dec, b)
            best = min(best, time.thread_time() - t)
    return best / ((len(batches) - 4) * BATCH)


def _gil_free_share(interner: Interner, decoded: list[Events]) -> float:
    """How much of its speed alone a Python thread keeps while ``State.apply`` runs in
    another (1: the apply holds no GIL; 0: it holds it throughout), the median of 5."""
    state = State()
    state.interner = interner
    state.channel_index("main")
    for ev in decoded[:4]:
        state.apply(ev)
    count = [0]
    running = [True]

    def spin() -> None:
        while running[0]:
            count[0] += 1

    def rate(work: Any) -> float:
        count[0], running[0] = 0, True
        t = threading.Thread(target=spin)
        start = time.perf_counter()
        t.start()
        work()
        running[0] = False
        t.join()
        return count[0] / (time.perf_counter() - start)

    def apply_all() -> None:
        for ev in decoded[4:]:
            state.apply(ev)

    ratios = []
    for _ in range(5):  # alternated; the median (the machine's load moves both)
        alone = rate(lambda: time.sleep(0.2))
        ratios.append(rate(apply_all) / alone)
    return float(np.median(ratios))


def before_tree() -> Path:
    """The tree of ``BEFORE`` (its ``sidecar``), extracted once into the temporary directory
    (its Numba cache kept there between runs)."""
    tree = Path(tempfile.gettempdir()) / f"vigie-ingest-before-{BEFORE[:12]}"
    if not (tree / "sidecar" / "vigie").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=tree.name + ".", dir=tree.parent))
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE, "sidecar"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        os.replace(tmp, tree)
    return tree


def _tree_env(tree: Path | None) -> dict[str, str]:
    """The environment that makes a child import ``vigie`` from ``tree`` (None: this one)."""
    if tree is None:
        return {}
    return {"PYTHONPATH": os.pathsep.join([str(tree / "sidecar"), str(ROOT)])}


def stages_in(tree: Path | None, quick: bool) -> dict[str, float]:
    """``stages`` in a fresh process that imports ``vigie`` from ``tree``."""
    args = [
        sys.executable,
        "-m",
        "benchmarks.bench_ingest",
        "--json",
        *(["--quick"] if quick else []),
    ]
    out = subprocess.run(
        args, env=os.environ | _tree_env(tree), cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def stages_alternated(tree: Path, quick: bool, rounds: int = 2) -> tuple[dict[str, float], ...]:
    """``stages`` of this tree and of ``tree``, in fresh processes alternated ``rounds`` times:
    per stage the least ns/event (the most for ``gil_free_share``)."""
    runs: list[list[dict[str, float]]] = [[], []]
    for _ in range(rounds):
        runs[0].append(stages_in(None, quick))
        runs[1].append(stages_in(tree, quick))
    pick = {k: (max if k == "gil_free_share" else min) for r in runs for s in r for k in s}
    return tuple({k: pick[k](s[k] for s in r) for k in r[0]} for r in runs)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _send(target: str, events: int, streams: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._ingest_client", "send", target, str(events),
         str(BATCH), str(streams), str(WINDOW)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ingest client failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"ingest client: {result['errors']}")
    return result


def _measure(target: str, pid: int, events: int, streams: int, check: bool) -> dict[str, Any]:
    """One run of the client: its figures, plus the server's CPU time per event."""
    cpu = _cpu_seconds(pid)
    r = _send(target, events, streams)
    r["server_cpu_ns"] = (_cpu_seconds(pid) - cpu) / r["events"] * 1e9
    r["client_cpu_ns"] = r["client_cpu_seconds"] / r["events"] * 1e9
    r["rate"] = r["events"] / r["seconds"]
    if check and r["applied"] != r["events"]:
        raise RuntimeError(f"the sidecar applied {r['applied']} of {r['events']} events")
    return r


def loopback(
    servers: dict[str, tuple[str, int, bool]], events: int, rounds: int
) -> dict[str, dict[int, dict[str, Any]]]:
    """Per server (name -> target, pid, whether it applies), per stream count: the fastest of
    ``rounds`` runs, the servers alternated (the machine's load moves them alike)."""
    for target, _, _ in servers.values():
        _send(target, 200_000, 1)  # warm-up: rows created, kernels loaded
    out: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in servers}
    for _ in range(rounds):
        for streams in STREAMS:
            for name, (target, pid, check) in servers.items():
                r = _measure(target, pid, events, streams, check)
                best = out[name].get(streams)
                if best is None or r["rate"] > best["rate"]:
                    out[name][streams] = r
    return out


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._ingest_client", "echo", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(60)


def _stage_table(now: dict[str, float], before: dict[str, float]) -> str:
    rows = [f"{'stage (ns/event)':<22} {'now':>8} {'before':>8} {'before/now':>10}"]
    for k, v in now.items():
        b = before.get(k)
        ratio = f"{b / v:>9.2f}x" if b and v else f"{'-':>10}"
        rows.append(f"{k:<22} {v:>8.1f} {b if b is not None else float('nan'):>8.1f} {ratio}")
    rows.append("(gil_free_share: a share, 1 = the GIL released throughout the apply)")
    return "\n".join(rows)


def _loopback_results(
    now: dict[int, dict[str, Any]],
    before: dict[int, dict[str, Any]],
    grpc_only: dict[int, dict[str, Any]],
) -> list[Result]:
    out = []
    for streams in STREAMS:
        r, b, g = now[streams], before[streams], grpc_only[streams]
        out.append(
            Result(
                f"ingest+classify, client process over loopback, {streams} stream(s)",
                "events/s",
                r["rate"],
                b["rate"],
                f"the tree of {BEFORE[:7]} (before the rework), same run",
                target=4_000_000,
                notes=f"CPU ns/event: sidecar {r['server_cpu_ns']:.0f} (before "
                f"{b['server_cpu_ns']:.0f}), client {r['client_cpu_ns']:.0f}; gRPC alone "
                f"{g['rate']:,.0f} events/s (server CPU {g['server_cpu_ns']:.0f} ns/event)",
                extra={"now": r, "before": b, "grpc_only": g},
            )
        )
    return out


def run(quick: bool) -> list[Result]:
    events = 1_000_000 if quick else 8_000_000
    per_event_n = 3_000 if quick else 20_000
    seconds = "8" if quick else "30"
    tree = before_tree()
    off = {"VIGIE_DATA_STORE": "off"}  # the state alone
    with (
        sidecar(env=off) as a,
        sidecar(env=off | _tree_env(tree)) as b,
        echo_server() as (target, pid),
    ):
        servers = {
            "now": (a.telemetry, a.proc.pid, True),
            "before": (b.telemetry, b.proc.pid, True),
            "grpc": (target, pid, False),
        }
        runs = loopback(servers, events, 2 if quick else 3)
    now, before, grpc_only = runs["now"], runs["before"], runs["grpc"]
    st, st_before = stages_alternated(tree, quick)
    print(_stage_table(st, st_before), file=sys.stderr)
    with sidecar(env=off) as s:
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
    staged = st["check"] + st["map"] + st["finish"] + st["kernel"] + st["ack"]
    return [
        *_loopback_results(now, before, grpc_only),
        Result(
            "decode in the sidecar (check + map + finish), in-process",
            "ns/event",
            st["check"] + st["map"] + st["finish"],
            st_before["decode"],
            f"the decode of {BEFORE[:7]}, same traffic",
            higher_is_better=False,
            notes=f"outside the state lock: check {st['check']:.0f}, map {st['map']:.0f}; "
            f"under it: finish {st['finish']:.0f}; dictionary mapping "
            f"{st['map_jitted']:.1f} jitted vs {st['map_fancy_index']:.1f} fancy index",
            extra={"now": st, "before": st_before},
        ),
        Result(
            "sidecar work per event (parse, check, map, finish, kernel, ack), in-process",
            "ns/event",
            st["parse"] + staged,
            st_before["parse"] + st_before["decode"] + st_before["kernel"] + st_before["ack"],
            f"the same stages of {BEFORE[:7]}",
            higher_is_better=False,
            notes=f"parse {st['parse']:.0f}, kernel {st['kernel']:.0f} (the kernel's own "
            f"benchmark: python -m benchmarks kernel); Sidecar.apply_batch {st['apply_batch']:.0f}"
            f" (before {st_before['apply_batch']:.0f}), of which outside the lock "
            f"{st['check'] + st['map']:.0f}",
        ),
        Result(
            "ingest+classify, one stream, the load client of the earlier rounds (_load.columnar)",
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


def each_run(rounds: int, events: int) -> None:
    """Every loopback run of this tree and of the tree before, alternated, printed."""
    off = {"VIGIE_DATA_STORE": "off"}
    with sidecar(env=off) as a, sidecar(env=off | _tree_env(before_tree())) as b:
        servers = {"now": (a.telemetry, a.proc.pid), "before": (b.telemetry, b.proc.pid)}
        for target, _ in servers.values():
            _send(target, 200_000, 1)
        for k in range(rounds):
            for streams in STREAMS:
                for name, (target, pid) in servers.items():
                    r = _measure(target, pid, events, streams, True)
                    print(
                        f"round {k} {streams} stream(s) {name:<6} {r['rate']:>11,.0f} events/s"
                        f"  CPU ns/event: sidecar {r['server_cpu_ns']:.0f}, client "
                        f"{r['client_cpu_ns']:.0f}",
                        flush=True,
                    )


def _main(argv: list[str]) -> None:
    """``[--quick]``: the stages of both trees; ``--runs ROUNDS [EVENTS]``: every loopback run
    of both trees, alternated."""
    quick = "--quick" in argv
    if "--json" in argv:  # a child of stages_in
        print(json.dumps(stages(quick)))
        return
    if "--runs" in argv:
        at = argv.index("--runs")
        rest = [int(a) for a in argv[at + 1 : at + 3] if a.isdigit()]
        each_run(rest[0] if rest else 3, rest[1] if len(rest) > 1 else 3_000_000)
        return
    print(_stage_table(*stages_alternated(before_tree(), quick)))


if __name__ == "__main__":
    _main(sys.argv[1:])
