"""The decode in two steps (``StreamDecoder.check`` outside the state lock, ``finish`` under
it): the same events as the decode it replaced, its values columns read-only views, nothing
shared touched before ``finish``, and the state a read-only batch builds the same as the one
its writable copy builds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vigie.errors import BatchRefused
from vigie.state.engine import State
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import (
    COLUMNS,
    DICTIONARY_COLUMNS,
    Events,
    Interner,
    StreamDecoder,
    StreamEncoder,
    map_ids,
)

T0 = 1_772_409_600_000_000


def _records(rng: np.random.Generator, n: int, with_optional: bool) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        rec: dict[str, Any] = {
            "event_time_us": T0 + k * 1000 + int(rng.integers(0, 999)),
            "application_id": f"app-{rng.integers(0, 40)}",
            "api_name": f"api-{rng.integers(0, 12)}",
            "api_version": f"v{rng.integers(1, 3)}",
            "http_status": int(rng.choice([200, 200, 200, 401, 404, 429, 503])),
        }
        if with_optional:
            rec |= {
                "resource_template": f"/r{rng.integers(0, 5)}",
                "http_method": int(rng.integers(1, 5)),
                "latency_us": int(rng.integers(100, 90_000)),
                "response_bytes": int(rng.integers(0, 5000)),
                "tenant": str(rng.choice(["", "carbon.super", "acme.com"])),
                "client_ip": f"10.0.0.{rng.integers(0, 9)}",
            }
        out.append(rec)
    return out


def _naive_decode(
    records: list[dict[str, Any]], interner: Interner, tenant: str
) -> dict[str, list[Any]]:
    """Each record's columns as the sidecar keys them: strings as strings, numbers as ints."""
    out: dict[str, list[Any]] = {s.name: [] for s in COLUMNS}
    for rec in records:
        for spec in COLUMNS:
            v = rec.get(spec.name, "" if spec.dictionary else spec.default)
            if spec.name == "tenant" and not v:
                v = tenant
            out[spec.name].append(v)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_decoded_columns_are_the_records(seed: int) -> None:
    rng = np.random.default_rng(seed)
    interner = Interner()
    tenant = ["", "acme.com"][seed % 2]
    dec = StreamDecoder(interner, 3, 10_000, 10_000, tenant)
    enc = StreamEncoder()
    for b in range(4):
        records = _records(rng, int(rng.integers(1, 300)), with_optional=bool((seed + b) % 2))
        ev = dec.decode(enc.batch_from_records(records))
        want = _naive_decode(records, interner, tenant)
        for spec in COLUMNS:
            got = ev[spec.name]
            if spec.name == "api_name":  # keyed by tenant: checked by tests/unit/wire/test_tenants
                continue
            if spec.dictionary:
                assert [interner.string(int(g)) for g in got] == want[spec.name], spec.name
            else:
                assert got.tolist() == [int(v) for v in want[spec.name]], spec.name
            assert got.dtype.isnative
        assert ev.channel.tolist() == [3] * len(records)


def test_values_columns_are_read_only_views_and_the_rest_their_own() -> None:
    dec = StreamDecoder(Interner(), 0, 1000, 1000)
    ev = dec.decode(
        StreamEncoder().batch_from_records(_records(np.random.default_rng(1), 50, True))
    )
    for spec in COLUMNS:
        col = ev[spec.name]
        assert col.flags.c_contiguous
        # read-only: a view of the message's bytes, or a default shared between batches
        assert col.flags.writeable == spec.dictionary, spec.name
    kept = ev.take(np.arange(0, 50, 2))
    for spec in COLUMNS:
        assert kept[spec.name].flags.writeable == spec.dictionary, spec.name


def test_check_touches_nothing_and_finish_goes_in_order() -> None:
    interner = Interner()
    dec = StreamDecoder(interner, 0, 1000, 1000)
    enc = StreamEncoder()
    recs = _records(np.random.default_rng(2), 20, True)
    first = enc.batch_from_records(recs)
    second = enc.batch_from_records(_records(np.random.default_rng(3), 20, True))
    held = interner.live
    checked = dec.check(first)
    assert dec.check(first).sequence == checked.sequence  # checking twice moves nothing
    assert interner.live == held and dec.dictionary_size == 1 and dec.next_sequence == 1
    with pytest.raises(BatchRefused, match="sequence 2"):
        dec.check(second)  # its sequence comes after the one not yet finished
    with pytest.raises(RuntimeError):
        dec.map(checked)  # its strings are not interned yet
    dec.intern(checked)
    dec.intern(checked)  # once only
    assert dec.dictionary_size == 1 + len(first.dictionary_additions)
    dec.map(checked)
    app = checked.mapped["application_id"]
    assert [interner.string(int(g)) for g in app] == [r["application_id"] for r in recs]
    assert dec.next_sequence == 1  # the stream moves on at finish only
    dec.finish(checked)
    assert interner.live > held and dec.next_sequence == 2
    with pytest.raises(BatchRefused):
        dec.finish(checked)  # a batch finished twice
    dec.finish(dec.check(second))
    assert dec.events_applied == 40


def test_a_batch_refused_at_check_interns_nothing() -> None:
    interner = Interner()
    dec = StreamDecoder(interner, 0, 1000, 1000)
    batch = StreamEncoder().batch_from_records(_records(np.random.default_rng(4), 10, True))
    batch.api_name = np.full(10, 999, dtype="<u4").tobytes()  # beyond the dictionary
    with pytest.raises(BatchRefused) as exc:
        dec.check(batch)
    assert exc.value.cause == "unknown_dictionary_id"
    assert interner.live == 1 and dec.dictionary_size == 1


def test_map_ids_is_the_fancy_index() -> None:
    rng = np.random.default_rng(5)
    l2g = rng.integers(0, 1 << 30, size=5000).astype(np.int32)
    for n in (1, 7, 8192):
        ids = rng.integers(0, 5000, size=n).astype("<u4")
        view = np.frombuffer(ids.tobytes(), dtype="<u4")  # read-only, as decoded
        assert np.array_equal(map_ids(l2g, view), l2g[view])


def _figures(state: State) -> dict[str, Any]:
    n, a = state.n_sub_rows, state.n_api_rows
    return {
        "counters": state.counters(),
        "subs": state.sub_i64[:n].copy(),
        "apis": state.api_i64[:a].copy(),
        "hist": state.sub_hist[:n].copy(),
    }


def test_read_only_columns_build_the_same_state_as_writable_copies() -> None:
    rng = np.random.default_rng(6)
    enc = StreamEncoder()
    batches = [enc.batch_from_records(_records(rng, 400, b % 2 == 0)) for b in range(5)]
    states = []
    for copy in (False, True):
        state = State()
        dec = StreamDecoder(state.interner, state.channel_index("main"), 1000, 10_000)
        for b in batches:
            ev = dec.decode(pb.EventBatch.FromString(b.SerializeToString()))
            if copy:
                ev = Events({k: v.copy() for k, v in ev.columns.items()}, ev.channel.copy())
                assert all(c.flags.writeable for c in ev.columns.values())
            state.apply(ev)
        states.append(_figures(state))
    ro, rw = states
    assert ro["counters"] == rw["counters"] and ro["counters"]["events_applied"] == 2000
    for k in ("subs", "apis", "hist"):
        assert np.array_equal(ro[k], rw[k]), k
    assert DICTIONARY_COLUMNS  # the columns mapped to global ids
