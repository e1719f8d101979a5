"""``python -m tests.fuzz TARGET SECONDS``: atheris on a target, starting from its corpus.

``python -m tests.fuzz seed`` writes the seed corpus (valid streams and log lines, and inputs
drawn from a fixed random seed). New inputs atheris finds interesting are written to
``tests/fuzz/corpus/<target>/``; a crash is written to ``tests/fuzz/crashes/`` and stops the run.
Keep the corpus small: ``make fuzz`` minimises it at the end (-merge).
"""

from __future__ import annotations

import gc
import hashlib
import random
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzz.targets import CORPUS, SEPARATOR, TARGETS


def seed() -> None:
    from tests.support.wso2log import App, LogWriter, at  # noqa: PLC0415
    from vigie.v1 import telemetry_pb2 as pb  # noqa: PLC0415
    from vigie.wire.columns import StreamEncoder  # noqa: PLC0415

    rng = random.Random(20261128)
    for name in TARGETS:
        d = CORPUS / name
        d.mkdir(parents=True, exist_ok=True)
        for k in range(24):
            data = bytes([k * 2]) + rng.randbytes(rng.randrange(16, 400))
            (d / f"seed-structured-{k:02d}").write_bytes(data)
    # valid streams, as raw messages
    enc = StreamEncoder()
    recs = [
        {
            "event_time_us": 1_772_409_600_000_000 + k * 1000,
            "application_id": f"app-{k % 3}",
            "api_name": "Orders",
            "api_version": "v1",
            "http_status": (200, 404, 503)[k % 3],
            "latency_us": 1000 + k,
        }
        for k in range(20)
    ]
    msgs = [
        pb.GatewayMessage(hello=pb.Hello(gateway_id="gw", channel="main", protocol_version=1)),
        pb.GatewayMessage(batch=enc.batch_from_records(recs[:10])),
        pb.GatewayMessage(report=pb.GatewayReport(offered=20, sent=20)),
        pb.GatewayMessage(batch=enc.batch_from_records(recs[10:])),
    ]
    raw = SEPARATOR.join(m.SerializeToString() for m in msgs)
    (CORPUS / "decoder" / "seed-valid-stream").write_bytes(b"\x01" + raw)
    (CORPUS / "decoder" / "seed-truncated-stream").write_bytes(b"\x01" + raw[: len(raw) * 2 // 3])
    for name, bad in _hostile_batches(recs).items():
        stream = [msgs[0], msgs[1], *bad]
        data = SEPARATOR.join(m.SerializeToString() for m in stream)
        (CORPUS / "decoder" / f"seed-{name}").write_bytes(b"\x01" + data)
    w = LogWriter(seed=3)
    shop = App("shop")
    for k in range(12):
        w.response(at(seconds=k), shop, "Orders", status=(200, 404, 503)[k % 3])
    w.fault(at(seconds=13), shop, "Orders")
    w.fault(at(seconds=2), None, "Orders", error_code=900901, status=401, error_type="AUTH")
    w.noise(at(seconds=14))
    with tempfile.TemporaryDirectory() as tmp:
        text = w.write(Path(tmp) / "x.log").read_bytes()
    (CORPUS / "wso2_log" / "seed-valid-lines").write_bytes(b"\x01" + text)


def _hostile_batches(recs: list[dict[str, int | str]]) -> dict[str, list[Any]]:
    """One stream per way a batch can break the contract (after a good first batch), and a
    few that bend values without breaking it."""
    from vigie.v1 import telemetry_pb2 as pb  # noqa: PLC0415
    from vigie.wire.columns import StreamEncoder  # noqa: PLC0415

    def second(**change: Any) -> list[Any]:
        enc = StreamEncoder()
        enc.batch_from_records(recs[:10])
        b = enc.batch_from_records(recs[10:])
        for k, v in change.items():
            if k == "additions":
                b.dictionary_additions.extend(v)
            else:
                setattr(b, k, v)
        return [pb.GatewayMessage(batch=b)]

    t = np.array([1_772_409_600_000_000 - k * 10**9 for k in range(10)], dtype="<i8")
    return {
        "bad-sequence": second(sequence=7),
        "bad-count": second(count=0),
        "count-too-large": second(count=5000),
        "bad-dictionary-base": second(dictionary_base=9),
        "missing-column": second(event_time_us=b""),
        "column-length": second(http_status=b"\x01\x02\x03"),
        "unknown-dictionary-id": second(api_name=np.full(10, 99, "<u4").tobytes()),
        "negative-time": second(event_time_us=np.full(10, -5, "<i8").tobytes()),
        "year-3000": second(event_time_us=np.full(10, 2**62, "<i8").tobytes()),
        "string-too-long": second(additions=["x" * 5000]),
        "dictionary-full": second(additions=[f"s{k}" for k in range(5000)]),
        "second-hello": [pb.GatewayMessage(hello=pb.Hello(gateway_id="again"))],
        "time-backwards": second(event_time_us=t.tobytes()),
        "absurd-values": second(
            latency_us=np.full(10, 2**32 - 1, "<u4").tobytes(),
            http_status=np.full(10, 65535, "<u2").tobytes(),
            http_method=np.full(10, 255, "u1").tobytes(),
            error_code=np.full(10, -(2**31), "<i4").tobytes(),
            request_bytes=np.full(10, -(2**63), "<i8").tobytes(),
            flags=np.full(10, 255, "u1").tobytes(),
            key_type=np.full(10, 255, "u1").tobytes(),
        ),
    }


def _instrument_vigie(atheris: Any) -> None:
    """Coverage for vigie's own Python and the targets: every function loaded from them but the
    Numba kernels, whose bytecode Numba compiles (and instrumentation would break)."""
    skip = (
        "vigie.state._",
        "vigie.state.primitives",
        "vigie.state.codes",
        "vigie.store._rollup_kernels",
        "vigie.v1",
    )
    funcs = [
        o
        for o in gc.get_objects()
        if isinstance(o, types.FunctionType)
        and (o.__module__ or "").startswith(("vigie", "tests.fuzz"))
        and not (o.__module__ or "").startswith(skip)
    ]
    for f in funcs:
        atheris.instrument_func(f)
    print(f"INFO: instrumented {len(funcs)} functions of vigie", file=sys.stderr)


def fuzz(name: str, seconds: int) -> None:
    import atheris  # noqa: PLC0415 - only `make fuzz` installs it

    from tests.fuzz.targets import make  # noqa: PLC0415

    target = make(name)
    # Numba compiles the kernels from their bytecode, which instrumentation changes: run the
    # corpus once first (every kernel compiled for the dtypes the targets use), then
    # instrument everything loaded
    for path in sorted((CORPUS / name).iterdir()):
        target.run(path.read_bytes())
    _instrument_vigie(atheris)
    corpus = CORPUS / name
    crashes = Path(__file__).parent / "crashes"
    crashes.mkdir(exist_ok=True)
    work = Path(__file__).parent / "work" / name  # what the run finds (not committed)
    work.mkdir(parents=True, exist_ok=True)

    def one(data: bytes) -> None:
        target.run(data)

    sys.argv = [
        sys.argv[0],
        str(work),
        str(corpus),
        f"-max_total_time={seconds}",
        "-max_len=4096",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={crashes}/{name}-",
        "-print_final_stats=1",
    ]
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


def merge(name: str, limit: int = 200) -> None:
    """Adds the last run's inputs (libFuzzer kept in work/ only those that reached new code)
    to the committed corpus, by content hash, at most ``limit`` of them; each is replayed
    first and must pass."""
    from tests.fuzz.targets import make  # noqa: PLC0415

    work = Path(__file__).parent / "work" / name
    corpus = CORPUS / name
    have = {hashlib.sha1(p.read_bytes()).hexdigest() for p in corpus.iterdir()}
    target = make(name)
    added = 0
    for path in sorted(work.iterdir()) if work.is_dir() else []:
        data = path.read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if digest in have or added >= limit:
            continue
        target.run(data)
        (corpus / f"found-{digest[:16]}").write_bytes(data)
        have.add(digest)
        added += 1
    print(f"{name}: {added} inputs added to {corpus}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        seed()
    elif sys.argv[1:2] == ["merge"]:
        merge(sys.argv[2])
    else:
        fuzz(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
