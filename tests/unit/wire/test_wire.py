"""The wire contract: generated code is fresh, the shared vectors decode and re-encode, and a
batch that breaks the rules is refused with the cause named."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vigie.errors import BatchRefused
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire import codegen
from vigie.wire.columns import COLUMNS, Interner, StreamDecoder, StreamEncoder

VECTORS = sorted((Path(__file__).parents[2] / "vectors").glob("*.json"))


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generated = codegen.generate(tmp_path)
    committed = Path(codegen.ROOT / "sidecar" / "vigie" / "v1")
    names = sorted(p.name for p in generated)
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file()), "make proto"
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "vigie" / "v1", committed, names, shallow=False
    )
    assert not mismatch and not errors, f"stale generated code {mismatch}: run `make proto`"


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vectors_encode_to_the_same_bytes(path: Path) -> None:
    doc = json.loads(path.read_text())
    enc = StreamEncoder()
    for b in doc["batches"]:
        batch = enc.batch_from_records(b["events"], sent_at_us=b["sent_at_us"])
        assert pb.GatewayMessage(batch=batch).SerializeToString().hex() == b["gateway_message_hex"]


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vectors_decode_to_the_same_events(path: Path) -> None:
    doc = json.loads(path.read_text())
    interner = Interner()
    dec = StreamDecoder(interner, 0, 1000, 1000)
    for b in doc["batches"]:
        msg = pb.GatewayMessage.FromString(bytes.fromhex(b["gateway_message_hex"]))
        ev = dec.decode(msg.batch)
        for k, rec in enumerate(b["events"]):
            for spec in COLUMNS:
                got = ev[spec.name][k]
                want: Any = rec.get(spec.name, "" if spec.dictionary else spec.default)
                if spec.dictionary:
                    assert interner.string(int(got)) == want, spec.name
                else:
                    assert int(got) == int(want), spec.name


def _batch(**over: Any) -> pb.EventBatch:
    enc = StreamEncoder()
    b = enc.batch_from_records(
        [
            {
                "event_time_us": 5,
                "application_id": "a",
                "api_name": "P",
                "api_version": "1",
                "http_status": 200,
            }
        ]
        * 3
    )
    for k, v in over.items():
        if isinstance(v, list):
            del getattr(b, k)[:]
            getattr(b, k).extend(v)
        else:
            setattr(b, k, v)
    return b


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"sequence": 2}, "bad_sequence"),
        ({"count": 0}, "bad_count"),
        ({"count": 100_000}, "bad_count"),
        ({"dictionary_base": 0}, "bad_dictionary_base"),
        ({"http_status": b"\x00"}, "column_length"),
        ({"event_time_us": b""}, "missing_column"),
        ({"application_id": np.array([1, 1, 99], "<u4").tobytes()}, "unknown_dictionary_id"),
        ({"event_time_us": np.array([5, -1, 5], "<i8").tobytes()}, "bad_event_time"),
        ({"event_time_us": np.array([5, 2**60, 5], "<i8").tobytes()}, "bad_event_time"),
        ({"dictionary_additions": ["x" * 5000]}, "string_too_long"),
    ],
)
def test_bad_batches_are_refused_with_their_cause(change: dict[str, Any], cause: str) -> None:
    interner = Interner()
    dec = StreamDecoder(interner, 0, 1000, 1000)
    with pytest.raises(BatchRefused) as info:
        dec.decode(_batch(**change))
    assert info.value.cause == cause
    assert len(interner) == 1  # nothing of a refused batch reaches the dictionary
    assert dec.next_sequence == 1


def test_dictionary_full_is_refused() -> None:
    dec = StreamDecoder(Interner(), 0, 1000, 3)
    with pytest.raises(BatchRefused) as info:
        dec.decode(_batch())
    assert info.value.cause == "dictionary_full"
